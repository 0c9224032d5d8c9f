"""Command line for local runs: `python -m exports run SEGMENT_FILE --host HOST --list-id N --email COLUMN`.

It uploads the file to storage as a segment (Azurite by default), records a connection and an
export, starts a run and drains the queues in this process through the app's own queue
functions (see exports/local_host.py). Progress goes to stderr; the final status document is one
JSON line on stdout. Exit code: 0 succeeded, 1 completed_with_errors, 2 failed.
"""
from __future__ import annotations

import argparse
import getpass
import json
import logging
import sys
import uuid
from pathlib import Path

EXIT_CODES = {"succeeded": 0, "completed_with_errors": 1}
EXIT_FAILED = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m exports", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="export a local segment file end to end on local parts")
    run.add_argument("segment_file", type=Path, help="a .csv, .csv.gz, .jsonl or .jsonl.gz file of profiles")
    run.add_argument("--host", required=True, help="ActiveCampaign REST endpoint hostname, e.g. myaccount.api-us1.com")
    run.add_argument("--list-id", required=True, help="id of the ActiveCampaign list to subscribe the contacts to")
    run.add_argument("--email", required=True, help="column holding the email address")
    run.add_argument("--first-name", help="column holding the first name")
    run.add_argument("--last-name", help="column holding the last name")
    run.add_argument("--phone", help="column holding the phone number")
    run.add_argument("--timeout", type=float, default=6 * 3600, help="give up after this many seconds (default 6 h)")
    commands.add_parser("init", help="create the queues, containers and tables in local storage")
    status = commands.add_parser("status", help="print a run's status document")
    status.add_argument("run_id")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    for noisy in ("azure", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from exports.context import build_context, set_context
    from shared.settings import SettingError

    try:
        ctx = build_context()
    except (SettingError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    set_context(ctx)
    if args.command == "init":
        ctx.ensure_resources()
        print("queues, containers and tables are ready", file=sys.stderr)
        return 0
    if args.command == "status":
        from exports.pipeline import run_status
        from exports.runs import RunNotFound

        try:
            print(json.dumps(run_status(ctx, args.run_id)))
        except RunNotFound as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_FAILED
        return 0
    return _run(ctx, args)


def _run(ctx, args) -> int:
    from exports.config import ConfigError
    from exports.local_host import LocalQueueHost
    from exports.names import SEGMENTS_CONTAINER
    from exports.pipeline import run_status, start_run
    from exports.segments import SEGMENT_SUFFIXES, is_segment_blob
    from function_app import app

    path: Path = args.segment_file
    if not path.is_file():
        print(f"error: {path} is not a file", file=sys.stderr)
        return EXIT_FAILED
    if not is_segment_blob(path.name):
        print(f"error: {path.name} must end in one of {', '.join(SEGMENT_SUFFIXES)}", file=sys.stderr)
        return EXIT_FAILED
    api_key = ctx.settings.local_api_key
    if not api_key:
        print("error: set ACTIVECAMPAIGN_API_KEY to the account's API key", file=sys.stderr)
        return EXIT_FAILED
    ctx.ensure_resources()
    actor = f"cli:{getpass.getuser()}"
    prefix = f"cli/{uuid.uuid4().hex}/"
    with path.open("rb") as data:
        ctx.storage.blobs.get_blob_client(SEGMENTS_CONTAINER, prefix + path.name).upload_blob(data, overwrite=True)
    try:
        connection = ctx.config.create_connection(display_name=f"CLI {args.host}", hostname=args.host,
                                                  allow_contributors=False, privacy_consent=True, actor=actor)
        ctx.secrets.set(connection.apiKeySecretName, api_key)
        mapping = {"email": args.email, "firstName": args.first_name, "lastName": args.last_name, "phone": args.phone}
        export = ctx.config.create_export(display_name=f"CLI {path.name}", connection_id=connection.id,
                                          list_id=args.list_id, container=SEGMENTS_CONTAINER, prefix=prefix,
                                          mapping={k: v for k, v in mapping.items() if v}, actor=actor)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    run_id = start_run(ctx, export.id, trigger="cli")
    print(f"run {run_id} started for {path.name}", file=sys.stderr)
    host = LocalQueueHost(ctx, app)
    last = {}

    def progress():
        doc = run_status(ctx, run_id)
        shown = {k: doc[k] for k in ("status", "rows", "sent", "rejected", "duplicates")} | {"chunks": doc["chunks"]}
        if shown != last:
            last.clear()
            last.update(shown)
            print(f"progress: {json.dumps(shown)}", file=sys.stderr)

    try:
        host.drain(lambda: run_status(ctx, run_id)["status"] in ("succeeded", "completed_with_errors", "failed", "cancelled"),
                   timeout_seconds=args.timeout, progress=progress)
    except TimeoutError as error:
        print(f"error: {error}", file=sys.stderr)
    doc = run_status(ctx, run_id)
    print(json.dumps(doc))
    return EXIT_CODES.get(doc["status"], EXIT_FAILED)
