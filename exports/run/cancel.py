"""Cancelling a run: nothing more is sent for it, and it finishes "cancelled".

The run row gets a cancellation, which a worker checks as it starts a chunk; chunks no worker has
claimed yet are failed here, and the ones being sent are told to stop on their own rows (the
sender's next checkpoint finds its row changed and stops before its next batch), so the run
finishes as soon as they get there. A run still splitting finishes once the split ends:
splitting sends nothing.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from exports.errors import Conflict, RunFinished
from exports.model import Cancellation, ChunkStatus, RunStatus, RunView
from exports.run import finish

if TYPE_CHECKING:
    from exports.context import AppContext

log = logging.getLogger(__name__)
CANCELLED = "the run was cancelled"
CANCELLED_BEFORE_SENDING = "the run was cancelled before this chunk was sent"


def by_person(actor: str) -> str:
    """The reason recorded when a person cancels a run (other reasons say what removed its export or connection)."""
    return f"cancelled by {actor}"


def stop_text(cancellation: Cancellation) -> str:
    """What a chunk stopped by the cancellation says: the reason too, unless it only names who cancelled."""
    why = cancellation.reason
    return CANCELLED + ("" if not why or why == by_person(cancellation.requested_by) else f" because {why}")


def cancel_run(ctx: AppContext, run_id: str, actor: str, reason: str) -> RunView:
    """The run after the request; raises RunNotFound, or RunFinished for a final run."""
    for _ in range(10):
        run = ctx.runs.get_run(run_id)
        if run.status is RunStatus.NEEDS_APPROVAL:
            return discard_held(ctx, run_id, actor, reason)
        if run.final:
            raise RunFinished(run_id, run.status.value)
        if run.cancellation:
            break  # asked before: cancelling again only tells the senders again
        if ctx.runs.request_cancel(run, actor, reason):
            log.info("run cancel requested: run=%s export=%s by=%s reason=%s", run_id, run.export_id, actor, reason)
            break
        # the run moved on meanwhile (perhaps to a final status): look again
    else:
        raise Conflict(f"run {run_id} kept changing while it was being cancelled; cancelling it again should work")
    view = ctx.runs.view(run_id)
    for piece in (*view.chunks, *view.leaves):
        if piece.state.final:
            continue
        # Conditional: a worker that claimed it just now is told to stop instead, as one already sending it is.
        if piece.state not in (ChunkStatus.PENDING, ChunkStatus.QUEUED) or not ctx.runs.fail_chunk(
                run_id, piece.index, CANCELLED_BEFORE_SENDING, etag=piece.etag, leaving=piece.leaving):
            ctx.runs.request_stop(run_id, piece.index, piece.leaving)
    finish.finish_when_sent(ctx, run_id)
    return ctx.runs.view(run_id)


def discard_held(ctx: AppContext, run_id: str, actor: str, reason: str) -> RunView:
    """A held run's leaver actions are discarded: nothing is sent for its leavers and it finishes cancelled.

    The sync state keeps them as the export's, so the next run works them out again (and holds
    them again if the drop is still there)."""
    for _ in range(10):
        run = ctx.runs.get_run(run_id)
        if run.status is not RunStatus.NEEDS_APPROVAL:
            break
        if run.cancellation or ctx.runs.request_cancel(run, actor, reason):
            finish.finish(ctx, ctx.runs.view(run_id), force_status=RunStatus.CANCELLED)
            log.info("held leaver actions discarded: run=%s export=%s by=%s reason=%s", run_id, run.export_id, actor,
                     reason)
            break
    return ctx.runs.view(run_id)
