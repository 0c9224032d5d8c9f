"""Command line for local runs: `python -m exports run SEGMENT... --host HOST --list-id N --email COLUMN`.

It goes through the same services as the API: it records a connection (checking the API key
with ActiveCampaign) and an export (checking the list, and the mapped columns against the first
file's header), then uploads the files to storage as the blobs of one segment (Azurite by
default), starts a run and drains the run's own queue messages in this process through the app's
own queue functions (exports/local_host.py), as many at once as an instance of the host
would (host.json's batchSize plus newBatchThreshold). SEGMENT is a file or a folder of them (a partitioned
export). What it created (connection, export, the copy of the files) is removed when the run
ends, unless --keep. With --export-name NAME the connection and export named NAME are kept and
reused by the next run with that name (its list and mapping updated from the arguments, the files
replacing its segment), so the next run sends only what changed; the copy of the files is still
removed. Progress goes to stderr; the final status document is one JSON
line on stdout. Exit code: 0 succeeded, 1 completed_with_errors, 2 failed or refused, 3
needs_approval (the guardrail held the leaver actions: `approve RUN_ID` sends them), 130
interrupted (Ctrl-C cancels the run: nothing more is sent).
"""
from __future__ import annotations

import argparse
import getpass
import json
import logging
import sys
import uuid
from pathlib import Path

EXIT_CODES = {"succeeded": 0, "completed_with_errors": 1, "needs_approval": 3}
EXIT_FAILED = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
CANCEL_WAIT_SECONDS = 120  # for the batch in flight to end after Ctrl-C


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m exports", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="export a local segment file end to end on local parts")
    run.add_argument("segment", type=Path, nargs="+",
                     help="a .csv, .csv.gz, .jsonl or .jsonl.gz file of profiles, several, or a folder of them")
    run.add_argument("--host", required=True, help="ActiveCampaign REST endpoint hostname, e.g. myaccount.api-us1.com")
    run.add_argument("--list-id", required=True, help="id of the ActiveCampaign list to subscribe the contacts to")
    run.add_argument("--email", required=True, help="column holding the email address")
    run.add_argument("--first-name", help="column holding the first name")
    run.add_argument("--last-name", help="column holding the last name")
    run.add_argument("--phone", help="column holding the phone number")
    run.add_argument("--tag", action="append", default=[], metavar="NAME",
                     help="a tag every contact gets (repeatable); a bulk import only ever adds tags")
    run.add_argument("--tags-column", metavar="COLUMN", help="column holding tag names, separated by --tags-separator")
    run.add_argument("--tags-separator", default=",", help="between the tag names in --tags-column (default ,)")
    run.add_argument("--field", action="append", default=[], metavar="COLUMN=FIELD", type=_field_argument,
                     help="send COLUMN to the custom field FIELD, given by id or personalisation tag (repeatable)")
    run.add_argument("--exclude-automations", action="store_true",
                     help="imports do not start the account's automations for these contacts")
    run.add_argument("--leavers", choices=("keep", "field", "unsubscribe"),
                     help="what is done for contacts that left the segment since the last run (default keep); "
                          "with --export-name only, since a one-off export has no earlier run")
    run.add_argument("--membership-field", metavar="FIELD",
                     help="with --leavers field: the custom field (id or personalisation tag) set for members")
    run.add_argument("--timeout", type=float, default=6 * 3600, help="give up after this many seconds (default 6 h)")
    run.add_argument("--keep", action="store_true",
                     help="keep the connection, the export and the uploaded copy of the files after the run")
    run.add_argument("--export-name", help="reuse the connection and export of this name across runs (created on "
                                           "first use): each run then sends only what changed since the last")
    run.add_argument("--full", action="store_true", help="send every contact and rebuild the export's sync state")
    run.add_argument("--dry-run", action="store_true",
                     help="work out what would be sent and write the preview; send nothing, change nothing")
    commands.add_parser("init", help="create the queues, containers and tables in local storage")
    status = commands.add_parser("status", help="print a run's status document")
    status.add_argument("run_id")
    approve = commands.add_parser("approve", help="send the leaver actions the guardrail held (needs_approval)")
    approve.add_argument("run_id")
    cancel = commands.add_parser("cancel", help="cancel a queued or running run: nothing more is sent for it")
    cancel.add_argument("run_id")
    rejects = commands.add_parser("rejects", help="write a run's rejects report (CSV: blob, row, email, reason)")
    rejects.add_argument("run_id")
    rejects.add_argument("-o", "--output", type=Path, help="file to write (default: standard output)")
    preview = commands.add_parser("preview", help="write a dry run's preview (CSV: email, action, values)")
    preview.add_argument("run_id")
    preview.add_argument("-o", "--output", type=Path, help="file to write (default: standard output)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # The Azure SDK's loggers get their level (AZURE_SDK_LOG_LEVEL) from configure_process below.
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    from exports.context import build_context, set_context
    from exports.errors import ExportsError
    from exports.startup import configure_process
    from shared.settings import SettingError
    from shared.storage import unreachable_reason

    configure_process()
    try:
        ctx = build_context()
    except (SettingError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    set_context(ctx)
    reason = unreachable_reason(ctx.settings.storage)
    if reason:
        print(f"error: {reason}: start Azurite (`npm run azurite` in this folder; `make demo` and `make start` "
              "start it themselves) or set AzureWebJobsStorage", file=sys.stderr)
        return EXIT_FAILED
    try:
        return _command(ctx, args)
    except ExportsError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return EXIT_FAILED


def _command(ctx, args) -> int:
    from exports.services import runs

    if args.command == "init":
        ctx.ensure_resources()
        print("queues, containers and tables are ready", file=sys.stderr)
        return 0
    if args.command == "status":
        print(json.dumps(runs.run_status(ctx, _cli_caller(ctx), args.run_id)))
        return 0
    if args.command == "approve":
        return _approve(ctx, args)
    if args.command == "cancel":
        print(json.dumps(runs.cancel_run(ctx, _cli_caller(ctx), args.run_id)))
        return 0
    if args.command in ("rejects", "preview"):
        read = runs.rejects_report if args.command == "rejects" else runs.preview_report
        report = read(ctx, _cli_caller(ctx), args.run_id)
        out = args.output.open("wb") if args.output else sys.stdout.buffer
        try:
            for chunk in report.chunks():
                out.write(chunk)
        finally:
            if args.output:
                out.close()
        if args.output:
            print(f"{report.size} bytes written to {args.output}", file=sys.stderr)
        return 0
    return _run(ctx, args)


def _cli_caller(ctx):
    """Whoever runs the CLI on this machine acts as an admin: they hold the storage account's keys anyway."""
    from shared.auth import Caller, Principal

    principal = Principal(f"cli:{getpass.getuser()}", frozenset({ctx.settings.admin_role}), "cli")
    return Caller(principal, is_admin=True, is_contributor=False)


def _field_argument(text: str) -> dict:
    column, equals, field = text.rpartition("=")  # a column name may hold "="; an id or a perstag does not
    if not equals or not column.strip() or not field.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: use COLUMN=FIELD, e.g. Tier=TIER or \"Lifetime value=12\"")
    return {"column": column.strip(), "field": field.strip()}


def _mapping(args) -> dict:
    mapping = {k: v for k, v in {"email": args.email, "firstName": args.first_name, "lastName": args.last_name,
                                 "phone": args.phone}.items() if v}
    if args.tag or args.tags_column:
        mapping["tags"] = {"names": args.tag, "column": args.tags_column, "separator": args.tags_separator}
    if args.field:
        mapping["fields"] = args.field
    return mapping


def _run(ctx, args) -> int:
    from exports.local_host import LocalQueueHost
    from exports.model import RunMode, RunStatus, Trigger
    from exports.names import SEGMENTS_CONTAINER
    from exports.segments.blobs import HEADER_PROBE_BYTES
    from exports.services import connections, exports, runs
    from function_app import app

    files = _segment_files(args.segment)
    if isinstance(files, str):
        print(f"error: {files}", file=sys.stderr)
        return EXIT_FAILED
    api_key = ctx.settings.local_api_key
    if not api_key:
        print("error: set ACTIVECAMPAIGN_API_KEY to the account's API key", file=sys.stderr)
        return EXIT_FAILED
    ctx.ensure_resources()
    caller = _cli_caller(ctx)
    created = _Created(ctx, caller, keep_records=bool(args.export_name))
    try:
        # The same checks as the API, in the same order, before anything is uploaded: the key, the
        # list, and the mapped columns against the first file's own header.
        with files[0][1].open("rb") as data:
            probe = exports.SegmentProbe(files[0][1].name, data.read(HEADER_PROBE_BYTES))
        name = args.export_name or f"CLI {files[0][1].name}"
        existing = next((e for e in ctx.config.list_exports() if args.export_name and e.displayName == name), None)
        connection = existing and ctx.config.find_connection(existing.connectionId)
        if connection and connection.hostname == args.host.lower():
            created.connection_id = connection.id
        else:
            created.connection_id = connections.create_connection(ctx, caller, lambda: {
                "displayName": args.export_name or f"CLI {args.host}", "hostname": args.host, "apiKey": api_key,
                "privacyConsent": True})["id"]
        prefix = existing.segmentPrefix if existing else f"cli/{uuid.uuid4().hex}/"
        body = {"displayName": name, "connectionId": created.connection_id, "listId": args.list_id,
                "segment": {"container": SEGMENTS_CONTAINER, "prefix": prefix},
                "mapping": _mapping(args), "excludeAutomations": args.exclude_automations,
                "leavers": args.leavers or "keep",
                **({"membershipField": args.membership_field} if args.membership_field else {})}
        if existing:
            created.export_id = exports.update_export(ctx, caller, existing.id, lambda: body, probe=probe)["id"]
        else:
            created.export_id = exports.create_export(ctx, caller, lambda: body, probe=probe)["id"]
        segments = ctx.storage.blobs.get_container_client(SEGMENTS_CONTAINER)
        for old in segments.list_blob_names(name_starts_with=prefix):  # the files replace the export's segment
            segments.delete_blob(old)
        for relative, file in files:
            created.segment_blobs.append(prefix + relative)
            with file.open("rb") as data:
                segments.upload_blob(prefix + relative, data, overwrite=True)
        options = runs.RunOptions(RunMode.FULL if args.full else RunMode.INCREMENTAL, args.dry_run)
        run_id = runs.start_run(ctx, caller, created.export_id, Trigger.CLI, options)
        print(f"run {run_id} started for {len(files)} file(s)", file=sys.stderr)

        def status() -> dict:
            return runs.run_status(ctx, caller, run_id)

        def final() -> bool:
            return RunStatus(status()["status"]).final

        last = {}

        def progress():
            doc = status()
            shown = {k: doc[k] for k in ("status", "rows", "added", "updated", "unchanged", "sent", "rejected",
                                         "duplicates")} | {"chunks": doc["chunks"]}
            if shown != last:
                last.clear()
                last.update(shown)
                print(f"progress: {json.dumps(shown)}", file=sys.stderr)

        host = LocalQueueHost(ctx, app, run_id=run_id)
        interrupted = False
        try:
            host.drain(final, timeout_seconds=args.timeout, progress=progress, executions=host.settings.executions)
        except TimeoutError as error:
            print(f"error: {error}", file=sys.stderr)
        except KeyboardInterrupt:
            interrupted = True
            print(f"interrupted: cancelling run {run_id}; nothing more is sent (Ctrl-C again to stop waiting)",
                  file=sys.stderr)
            runs.cancel_run(ctx, caller, run_id)
            try:
                # The chunks under way stop before their next batch.
                host.drain(final, timeout_seconds=CANCEL_WAIT_SECONDS, executions=host.settings.executions)
            except (TimeoutError, KeyboardInterrupt):
                pass
        doc = status()
        print(json.dumps(doc))
        return EXIT_INTERRUPTED if interrupted else EXIT_CODES.get(doc["status"], EXIT_FAILED)
    finally:
        if args.keep:
            created.report()
        else:
            created.remove()


def _approve(ctx, args) -> int:
    """Approve a held run's leaver actions and send them from this process, as `run` sends its chunks."""
    from exports.local_host import LocalQueueHost
    from exports.model import RunStatus
    from exports.services import runs
    from function_app import app

    caller = _cli_caller(ctx)
    runs.approve_run(ctx, caller, args.run_id)
    host = LocalQueueHost(ctx, app, run_id=args.run_id)
    host.drain(lambda: RunStatus(runs.run_status(ctx, caller, args.run_id)["status"]).final, timeout_seconds=6 * 3600,
               executions=host.settings.executions)
    doc = runs.run_status(ctx, caller, args.run_id)
    print(json.dumps(doc))
    return EXIT_CODES.get(doc["status"], EXIT_FAILED)


class _Created:
    """What a CLI run created, removed again when it ends (--keep keeps it): personal data has no
    business outliving the run, and a local account would otherwise fill with one-off records."""

    def __init__(self, ctx, caller, keep_records: bool):
        self.ctx, self.caller = ctx, caller
        self.keep_records = keep_records  # --export-name: the connection and export serve the next run
        self.connection_id: str | None = None
        self.export_id: str | None = None
        self.segment_blobs: list[str] = []

    def remove(self) -> None:
        from azure.core.exceptions import AzureError

        from exports.errors import ExportsError
        from exports.names import SEGMENTS_CONTAINER
        from exports.services import connections, exports

        try:
            for blob in self.segment_blobs:
                self.ctx.storage.blobs.get_blob_client(SEGMENTS_CONTAINER, blob).delete_blob()
            if self.keep_records:
                return
            if self.export_id:
                exports.delete_export(self.ctx, self.caller, self.export_id)
            if self.connection_id:
                connections.delete_connection(self.ctx, self.caller, self.connection_id, force=True)
        except (ExportsError, AzureError) as error:
            print(f"warning: could not remove what this run created ({error}); see `--keep` in the README",
                  file=sys.stderr)

    def report(self) -> None:
        if self.export_id:
            print(f"kept: connection {self.connection_id}, export {self.export_id}, blobs "
                  + ", ".join(f"segments/{blob}" for blob in self.segment_blobs), file=sys.stderr)


def _segment_files(paths: list[Path]) -> list[tuple[str, Path]] | str:
    """(name relative to the segment, file) of every segment file named or inside a named folder, or what is wrong."""
    from exports.segments.blobs import SEGMENT_SUFFIXES, is_segment_blob

    files = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and is_segment_blob(p.name))
            if not found:
                return f"{path} holds no file ending in one of {', '.join(SEGMENT_SUFFIXES)}"
            files += [(p.relative_to(path).as_posix(), p) for p in found]
        elif not path.is_file():
            return f"{path} is not a file or a folder"
        elif not is_segment_blob(path.name):
            return f"{path.name} must end in one of {', '.join(SEGMENT_SUFFIXES)}"
        else:
            files.append((path.name, path))
    names = [name for name, _ in files]
    if len(set(names)) < len(names):
        return "two of the files would have the same name in the segment: give them different names"
    return files
