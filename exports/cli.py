"""Command line for local runs: `python -m exports run SEGMENT_FILE --host HOST --list-id N --email COLUMN`.

It goes through the same services as the API: it records a connection (checking the API key
with ActiveCampaign) and an export (checking the list, and the mapped columns against the file's
header), then uploads the file to storage as a segment (Azurite by default), starts a run and
drains the queues in this process through the app's own queue functions (exports/local_host.py). Progress goes to stderr; the final status document is one
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
    from exports.errors import ExportsError
    from exports.startup import configure_process
    from shared.settings import SettingError

    configure_process()
    try:
        ctx = build_context()
    except (SettingError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    set_context(ctx)
    try:
        if args.command == "init":
            ctx.ensure_resources()
            print("queues, containers and tables are ready", file=sys.stderr)
            return 0
        if args.command == "status":
            from exports.services.runs import run_status

            print(json.dumps(run_status(ctx, _cli_caller(ctx), args.run_id)))
            return 0
        return _run(ctx, args)
    except ExportsError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return EXIT_FAILED


def _cli_caller(ctx):
    """Whoever runs the CLI on this machine acts as an admin: they hold the storage account's keys anyway."""
    from shared.auth import Caller, Principal

    principal = Principal(f"cli:{getpass.getuser()}", frozenset({ctx.settings.admin_role}), "cli")
    return Caller(principal, is_admin=True, is_contributor=False)


def _run(ctx, args) -> int:
    from exports.local_host import LocalQueueHost
    from exports.model import RunStatus, Trigger
    from exports.names import SEGMENTS_CONTAINER
    from exports.segments.blobs import HEADER_PROBE_BYTES, SEGMENT_SUFFIXES, is_segment_blob
    from exports.services import connections, exports, runs
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
    caller = _cli_caller(ctx)
    # The same checks as the API, in the same order, before anything is uploaded: the key, the
    # list, and the mapped columns against the file's own header.
    connection = connections.create_connection(ctx, caller, lambda: {
        "displayName": f"CLI {args.host}", "hostname": args.host, "apiKey": api_key, "privacyConsent": True})
    prefix = f"cli/{uuid.uuid4().hex}/"
    mapping = {"email": args.email, "firstName": args.first_name, "lastName": args.last_name, "phone": args.phone}
    with path.open("rb") as data:
        probe = exports.SegmentProbe(path.name, data.read(HEADER_PROBE_BYTES))
    export = exports.create_export(ctx, caller, lambda: {
        "displayName": f"CLI {path.name}", "connectionId": connection["id"], "listId": args.list_id,
        "segment": {"container": SEGMENTS_CONTAINER, "prefix": prefix},
        "mapping": {k: v for k, v in mapping.items() if v}}, probe=probe)
    with path.open("rb") as data:
        ctx.storage.blobs.get_blob_client(SEGMENTS_CONTAINER, prefix + path.name).upload_blob(data, overwrite=True)
    run_id = runs.start_run(ctx, caller, export["id"], Trigger.CLI)
    print(f"run {run_id} started for {path.name}", file=sys.stderr)

    def status() -> dict:
        return runs.run_status(ctx, caller, run_id)

    last = {}

    def progress():
        doc = status()
        shown = {k: doc[k] for k in ("status", "rows", "sent", "rejected", "duplicates")} | {"chunks": doc["chunks"]}
        if shown != last:
            last.clear()
            last.update(shown)
            print(f"progress: {json.dumps(shown)}", file=sys.stderr)

    host = LocalQueueHost(ctx, app)
    try:
        host.drain(lambda: RunStatus(status()["status"]).final, timeout_seconds=args.timeout, progress=progress)
    except TimeoutError as error:
        print(f"error: {error}", file=sys.stderr)
    doc = status()
    print(json.dumps(doc))
    return EXIT_CODES.get(doc["status"], EXIT_FAILED)
