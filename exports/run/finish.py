"""Step 5, finish: once every chunk is done, the run's status, totals, errors and rejects report.

Any worker may call finish_when_sent after recording its own chunk; the run row's ETag makes
exactly one of several concurrent callers record the final status. Then the export's run index
is updated and its active-run lock released, so the next run can start.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from azure.core.exceptions import AzureError

from exports.model import ChunkStatus, Phase, Run, RunStatus, RunView, SegmentStatus, Totals
from exports.run import leavers, remainder
from exports.run.files import (
    PREVIEW_HEADER,
    REJECTS_HEADER,
    concatenate,
    csv_line,
    parts_prefix,
    preview_prefix,
    preview_report_name,
    rejects_prefix,
    rejects_report_name,
)
from shared.storage import delete_blobs

if TYPE_CHECKING:
    from exports.context import AppContext

log = logging.getLogger(__name__)


def finish_when_sent(ctx: AppContext, view: RunView | str) -> None:
    """Move the run on as its pieces get done (pass a view already read, or the run id): once every bucket's
    chunk has compared, the remainder chunk if they left any (it sends beside the last of them); once those
    are all final, the leaver pass (or the guardrail's hold), else the end; after the leaver pass, the end."""
    if isinstance(view, str):
        if ctx.runs.any_chunk_to_compare(view):
            return  # nothing moves on yet, as buckets_compared would say after reading every row
        view = ctx.runs.view(view)
    if view.final:
        return
    if view.run.phase is Phase.SENDING:
        if not remainder.buckets_compared(view):
            return  # a bucket's chunk may still leave a remainder
        if remainder.queue_remainder_chunk(ctx, view) or not remainder.buckets_final(view):
            return  # the run moves on once those are done too
        if not leavers.after_sending(ctx, view):
            finish(ctx, view)
    elif view.run.phase is Phase.LEAVING:
        leavers.queue_leaver_pass(ctx, view)  # what a crashed queuer left, once the run row said "leaving"
        if all(piece.state.final for piece in ctx.runs.view(view.run.id).leaves):
            finish(ctx, ctx.runs.view(view.run.id))


def decide(view: RunView, totals: Totals) -> tuple[RunStatus, list[str]]:
    """The final status of a run whose pieces are all done, and an error that explains it if needed."""
    if any(s.state is SegmentStatus.FAILED for s in view.segments):
        return RunStatus.FAILED, []
    if view.run.cancellation:
        return RunStatus.CANCELLED, []
    if totals.rows and not totals.contacts:
        return RunStatus.FAILED, [f"none of the {totals.rows} rows could be sent: every row was rejected (see rejectsBlob)"]
    if totals.chunks_total and not totals.chunks_succeeded:
        return RunStatus.FAILED, []
    if totals.rejected or totals.chunks_failed or totals.unconfirmed:
        return RunStatus.COMPLETED_WITH_ERRORS, []
    failed_leavers = sum(p.failed for p in view.leaves)
    if failed_leavers or any(p.state is ChunkStatus.FAILED for p in view.leaves):
        return RunStatus.COMPLETED_WITH_ERRORS, [
            f"the leaver actions did not all go ({failed_leavers} reported failed by ActiveCampaign, "
            f"{sum(p.state is ChunkStatus.FAILED for p in view.leaves)} pieces failed): those contacts are still the "
            "export's and the next run acts on them again"]
    return RunStatus.SUCCEEDED, []


def finish(ctx: AppContext, view: RunView, extra_errors: Sequence[str] = (), force_status: RunStatus | None = None,
           held: int = 0) -> None:
    """Record the run's status once. `held`: the leaver actions the guardrail holds (status needs_approval)."""
    run = view.run
    would_hold = _would_hold(view)
    totals = view.totals()
    totals = replace(totals, held=held or (totals.left if would_hold else 0))
    status, explained = decide(view, totals)
    status = force_status or status
    errors = [*extra_errors, *([f"a real run would hold its leaver actions: {would_hold}"] if would_hold else []),
              *explained, *view.errors()]
    rejects_blob = _assemble(ctx, rejects_prefix(run.id), rejects_report_name(run.id), REJECTS_HEADER) \
        if totals.rejected else None
    preview_blob = _assemble(ctx, preview_prefix(run.id), preview_report_name(run.id), PREVIEW_HEADER) \
        if run.dry_run and status is not RunStatus.FAILED else None
    finished_at = ctx.runs.finish(run, status, totals, errors, rejects_blob, preview_blob)
    if finished_at is None:
        return  # another instance finished it first
    ctx.history.record_status(run, status, finished_at)
    ctx.lock.release(run.export_id, run.id)
    log.info("export run finished: run=%s export=%s status=%s", run.id, run.export_id, status.value)
    if status is RunStatus.NEEDS_APPROVAL:
        return  # the parts are what an approved leaver pass reads; approve or cancel deletes them
    _delete_working_files(ctx, run.id)
    if not run.dry_run and totals.chunks_succeeded:
        _delete_former_states(ctx, run)


def _would_hold(view: RunView) -> str | None:
    """A dry run shows whether the guardrail would hold its leaver actions: why, if so."""
    return leavers.hold_reason(view, view.totals()) if view.run.dry_run else None


def _delete_working_files(ctx: AppContext, run_id: str) -> None:
    """Every contact's email, name and phone sit in the parts: they serve the run only. The rejects
    report stays for EXPORT_RETENTION_DAYS (exports/services/retention.py)."""
    container = ctx.runs_container
    try:
        for prefix in (parts_prefix(run_id), rejects_prefix(run_id), preview_prefix(run_id)):
            delete_blobs(container, prefix)
    except AzureError as error:  # the storage lifecycle policy deletes what is left (infra/modules/storage.bicep)
        log.warning("run %s: its working files could not all be deleted (%s)", run_id, type(error).__name__)


def _delete_former_states(ctx: AppContext, run: Run) -> None:
    """The export's states of an account, list or mapping it no longer has: this run wrote the current one."""
    try:
        ctx.sync.delete_other_states(run.export_id, keep=run.state_id)
    except AzureError as error:  # the next run that finishes tries again
        log.warning("export %s: its former sync states could not all be deleted (%s)", run.export_id,
                    type(error).__name__)


def _assemble(ctx: AppContext, prefix: str, target: str, header: tuple[str, ...]) -> str:
    """One report from a run's parts (rejects, or a dry run's preview), with a header line."""
    container = ctx.runs_container
    parts = sorted(blob.name for blob in container.list_blobs(name_starts_with=prefix))
    concatenate(container, target, parts, header=csv_line(header))
    return f"{container.container_name}/{target}"
