"""Runs: start one (on demand or on the schedule), read its status document, list an export's runs, cancel one.

The status document is built here and only here: the API, the run list and the CLI return the same.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from azure.core.exceptions import ResourceNotFoundError

from exports import access
from exports.errors import (
    ConnectionMissing,
    ExportDisabled,
    ExportNotFound,
    Invalid,
    PreviewNotFound,
    RejectsNotFound,
    RunFinished,
    RunInProgress,
    RunNotFound,
)
from exports.model import Connection, Export, RunMode, RunStatus, RunView, Trigger
from exports.run import cancel, leavers, start
from exports.run.files import preview_report_name, rejects_report_name
from exports.schedule import latest_occurrence
from shared.auth import Caller
from shared.clock import format_timestamp, parse_timestamp
from shared.documents import check_document

if TYPE_CHECKING:
    from exports.context import AppContext

log = logging.getLogger(__name__)
MAX_LISTED_RUNS = 100


def status_document(view: RunView) -> dict:
    run = view.run
    doc = {
        "runId": run.id, "exportId": run.export_id, "trigger": run.trigger.value, "mode": run.mode.value,
        "dryRun": run.dry_run, "leavers": run.leavers.value, "status": run.status.value,
        **view.totals().to_document(),
        "startedAt": run.started_at, "finishedAt": run.finished_at, "errors": view.errors(),
        "rejectsBlob": run.rejects_blob, "previewBlob": run.preview_blob,
    }
    if run.cancellation:
        doc["cancellation"] = {"requestedBy": run.cancellation.requested_by, "requestedAt": run.cancellation.requested_at,
                               "reason": run.cancellation.reason}
    return doc


START_FIELDS = {"mode": (("string",), False), "dryRun": (("boolean",), False)}


@dataclass(frozen=True)
class RunOptions:
    """How a run on demand runs: incremental by default; `full` resends everyone; a dry run sends nothing."""

    mode: RunMode = RunMode.INCREMENTAL
    dry_run: bool = False


def run_options(body: object) -> RunOptions:
    """The options of POST /api/exports/{id}/runs (an empty body is the defaults), or Invalid."""
    if body is None:
        return RunOptions()
    problems = check_document(body, START_FIELDS)
    if not problems and body.get("mode", RunMode.INCREMENTAL.value) not in tuple(RunMode):
        problems.append({"field": "mode", "message": "must be \"incremental\" (send what changed since the last run) or "
                                                     "\"full\" (send everyone and rebuild the sync state)"})
    if problems:
        raise Invalid(problems)
    return RunOptions(RunMode(body.get("mode", RunMode.INCREMENTAL.value)), body.get("dryRun", False))


def start_run(ctx: AppContext, caller: Caller, export_id: str, trigger: Trigger = Trigger.HTTP,
              options: RunOptions = RunOptions()) -> str:
    """The new run's id. ExportDisabled, ConnectionMissing, or RunInProgress while another run is active."""
    export = access.export_for(ctx, caller, export_id)
    return start.start_run(ctx, export, _startable(ctx, export), trigger, options.mode, options.dry_run)


def _startable(ctx: AppContext, export: Export) -> Connection:
    if not export.enabled:
        raise ExportDisabled(f"export {export.id} is disabled; enable it (PUT with \"enabled\": true) to run it")
    connection = ctx.config.find_connection(export.connectionId)
    if connection is None:
        raise ConnectionMissing(f"export {export.id} uses connection {export.connectionId}, which was deleted: point "
                                "the export at another connection")
    return connection


def start_scheduled_runs(ctx: AppContext, now: datetime | None = None) -> dict[str, str]:
    """The scheduler's tick: a run of every enabled export whose schedule (its own, else EXPORT_SCHEDULE) has an
    occurrence not started yet. Export id -> run id started, or why it was skipped; exports not due are left out."""
    now = now or datetime.now(UTC)
    outcome = {}
    for export in ctx.config.list_exports():
        if not export.enabled:
            continue
        occurrence = latest_occurrence(export.schedule or ctx.settings.export_schedule, now)
        # An occurrence from before the schedule was set is not due: a new export waits for its first.
        if occurrence is None or occurrence < parse_timestamp(export.scheduleSetAt or export.createdAt):
            continue
        if not ctx.schedules.claim(export.id, format_timestamp(occurrence)):
            continue  # started for this occurrence already, by an earlier tick or another instance
        try:
            outcome[export.id] = start.start_run(ctx, export, _startable(ctx, export), Trigger.TIMER)
        except RunInProgress as conflict:
            outcome[export.id] = f"skipped: run {conflict.run_id} is still queued or running"
            log.warning("scheduled run of export %s skipped: run %s is still queued or running", export.id, conflict.run_id)
        except Exception:  # one broken export must not keep the others from their refresh
            outcome[export.id] = "skipped: could not start, see the log"
            log.exception("scheduled run of export %s could not start", export.id)
    return outcome


def run_status(ctx: AppContext, caller: Caller, run_id: str) -> dict:
    access.run_for(ctx, caller, run_id)
    return status_document(ctx.runs.view(run_id))


def list_runs(ctx: AppContext, caller: Caller, export_id: str, limit: int) -> list[dict]:
    """The export's latest runs, newest first; a deleted export's runs are listed for admins only."""
    access.require_role(ctx, caller)
    export = access.find_export(ctx, export_id)
    if export is None:
        if not caller.is_admin or not access.RECORD_ID.fullmatch(export_id):
            raise ExportNotFound(export_id)
    elif not access.may_use(caller, access.find_connection(ctx, export.connectionId)):
        raise ExportNotFound(export_id)
    entries = ctx.history.recent(export_id, limit=limit)
    if not entries and export is None:
        raise ExportNotFound(export_id, f"export {export_id!r} does not exist and has no runs")
    connections: dict[str, Connection | None] = {}

    def find_connection(connection_id: str) -> Connection | None:
        if connection_id not in connections:
            connections[connection_id] = access.find_connection(ctx, connection_id)
        return connections[connection_id]

    lookup = ({export_id: export}.get, find_connection)
    documents = []
    for entry in entries:
        try:
            view = ctx.runs.view(entry.run_id)
        except RunNotFound:
            continue  # an index row whose run was never written (a start that crashed)
        if access.may_read_run(ctx, caller, view.run, lookup):
            documents.append(status_document(view))
    return documents


@dataclass(frozen=True)
class Report:
    """A run's report as CSV, read in chunks, never whole: the rejects (blob, row, email, reason) or a dry
    run's preview (email, action, the values that would be sent)."""

    run_id: str
    kind: str  # "rejects" or "preview"
    size: int
    chunks: Callable[[], Iterator[bytes]]


def rejects_report(ctx: AppContext, caller: Caller, run_id: str) -> Report:
    """The report of a finished run with rejected rows; same access as the run itself."""
    run = access.run_for(ctx, caller, run_id)
    if not run.rejects_blob:
        raise RejectsNotFound(run_id, f"run {run_id} has no rejects report: " + (
            "none of its rows was rejected" if run.final else "it is written when the run finishes"))
    return _report(ctx, run_id, "rejects", rejects_report_name(run.id), RejectsNotFound)


def preview_report(ctx: AppContext, caller: Caller, run_id: str) -> Report:
    """A finished dry run's preview; same access as the run itself."""
    run = access.run_for(ctx, caller, run_id)
    if not run.preview_blob:
        raise PreviewNotFound(run_id, f"run {run_id} has no preview: " + (
            "it is written when the dry run finishes" if run.dry_run and not run.final else
            "only a dry run (POST .../runs with {\"dryRun\": true}) that did not fail has one"))
    return _report(ctx, run_id, "preview", preview_report_name(run.id), PreviewNotFound)


def _report(ctx: AppContext, run_id: str, kind: str, name: str, not_found: type[RejectsNotFound | PreviewNotFound]) -> Report:
    blob = ctx.runs_container.get_blob_client(name)
    try:
        size = blob.get_blob_properties().size
    except ResourceNotFoundError:
        raise not_found(run_id, f"the {kind} report of run {run_id} was deleted: reports are kept "
                                      f"{ctx.settings.retention_days} days (EXPORT_RETENTION_DAYS)") from None
    return Report(run_id, kind, size, lambda: blob.download_blob().chunks())


def cancel_run(ctx: AppContext, caller: Caller, run_id: str) -> dict:
    """The run's status document after the request: still running until its workers reach their next batch."""
    access.run_for(ctx, caller, run_id)
    return status_document(cancel.cancel_run(ctx, run_id, caller.name, reason=cancel.by_person(caller.name)))


def approve_run(ctx: AppContext, caller: Caller, run_id: str) -> dict:
    """Send the leaver actions the guardrail held (admins only): the run's status document, running again."""
    access.run_for(ctx, caller, run_id)
    access.require_admin(ctx, caller, "approve held leaver actions (they unsubscribe or unmark contacts)")
    return status_document(leavers.approve(ctx, run_id, caller.name))


def cancel_active_runs(ctx: AppContext, export_id: str, actor: str, reason: str) -> list[str]:
    """Cancel the export's queued and running runs (its export or connection is being removed); their ids."""
    cancelled = []
    for entry in ctx.history.recent(export_id, limit=10):
        if entry.status.final and entry.status is not RunStatus.NEEDS_APPROVAL:  # held leaver actions are discarded
            continue
        try:
            cancel.cancel_run(ctx, entry.run_id, actor, reason=reason)
            cancelled.append(entry.run_id)
        except (RunFinished, RunNotFound):
            pass
    return cancelled


