"""Step 4b, leavers: once every chunk has sent its adds and updates, the guardrail, then the leaver pass.

The leaver pass acts on the contacts this export delivered that are no longer in the segment: it
unsubscribes them from the list, or clears the export's membership field, with bulk imports. Its
pieces are one per chunk with leavers, each sending only its own bucket's leavers, and it starts
only once every chunk is done: the guardrail needs the run's total before any leaver is touched.

The guardrail holds the whole pass (the run finishes `needs_approval`) when the leavers exceed the
export's share of the contacts it delivered, or when the segment has no rows while the state is
not empty: what a broken upstream export (a missing blob, an empty file) looks like. An admin then
approves (the pass is sent) or cancels (nothing is sent for the leavers); a newer run of the
export supersedes a held one.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from exports.errors import Conflict, RunNotHeld, RunSuperseded
from exports.model import Chunk, ChunkStatus, Leavers, Phase, RunStatus, RunView, Totals
from exports.run import plan

if TYPE_CHECKING:
    from exports.context import AppContext

log = logging.getLogger(__name__)


def delivered_before(totals: Totals) -> int:
    """Contacts the export had delivered (and not unsubscribed) before this run: what the guardrail's share is of."""
    return totals.updated + totals.unchanged + totals.left


def hold_reason(view: RunView, totals: Totals) -> str | None:
    """Why the guardrail holds this run's leaver actions, if it does."""
    run = view.run
    if run.leavers is Leavers.KEEP or not totals.left:
        return None
    delivered = delivered_before(totals)
    if not totals.rows:
        return (f"the segment has no rows while the export has delivered {delivered:,} contacts: a missing blob or an "
                f"empty file upstream looks like this, so nothing is {_done(run.leavers)} until an admin approves")
    if totals.left * 100 > run.max_leavers_percent * delivered:
        return (f"{totals.left:,} of the {delivered:,} contacts the export delivered left the segment "
                f"({totals.left * 100 / delivered:.1f}%, more than the {run.max_leavers_percent:g}% allowed), so they are "
                f"not {_done(run.leavers)} until an admin approves (POST /api/runs/{run.id}/approve) or cancels")
    return None


def _done(leavers: Leavers) -> str:
    return "unsubscribed" if leavers is Leavers.UNSUBSCRIBE else "unmarked"


def after_sending(ctx: AppContext, view: RunView) -> bool:
    """Every chunk is done: start the leaver pass, or hold it. False when the run has nothing of the kind to do
    (then it simply finishes)."""
    from exports.run import finish  # finish calls this module

    run, totals = view.run, view.totals()
    if (run.dry_run or run.leavers is Leavers.KEEP or run.cancellation or not totals.left
            or finish.decide(view, totals)[0] is RunStatus.FAILED):
        return False
    reason = hold_reason(view, totals)
    if reason:
        log.warning("run %s: leaver actions held: %s", run.id, reason)
        finish.finish(ctx, view, extra_errors=[reason], force_status=RunStatus.NEEDS_APPROVAL, held=totals.left)
        return True
    if ctx.runs.start_leaving(run):
        queue_leaver_pass(ctx, ctx.runs.view(run.id))
    return True


def queue_leaver_pass(ctx: AppContext, view: RunView) -> None:
    """One piece per chunk with leavers, written before their messages are queued (as chunks are)."""
    run = view.run
    if run.phase is not Phase.LEAVING:
        return
    pieces = [Chunk(run_id=run.id, index=chunk.index, status=ChunkStatus.PENDING.value, bucket=chunk.bucket,
                    records=chunk.left, leaving=True)
              for chunk in view.chunks if chunk.left]
    known = {piece.index for piece in view.leaves}
    ctx.runs.add_chunks([piece for piece in pieces if piece.index not in known])
    plan.enqueue(ctx, [piece for piece in ctx.runs.view(run.id).leaves if piece.state is ChunkStatus.PENDING])
    log.info("leaver pass queued: run=%s pieces=%d leavers=%d", run.id, len(pieces), sum(p.records for p in pieces))


def approve(ctx: AppContext, run_id: str, actor: str) -> RunView:
    """Send a held run's leaver actions: the run takes the export's lock again and its leaver pass is queued.

    RunNotHeld unless the run needs approval; RunSuperseded when a newer run of the export exists
    (its comparison is the current one); RunInProgress while another run is active."""
    run = ctx.runs.get_run(run_id)
    if run.status is not RunStatus.NEEDS_APPROVAL:
        raise RunNotHeld(run_id, run.status.value)
    newest = ctx.history.recent(run.export_id, limit=1)
    if newest and newest[0].run_id != run_id:
        raise RunSuperseded(run_id, newest[0].run_id)
    ctx.lock.acquire(run.export_id, run_id)
    if not ctx.runs.start_leaving(run):
        ctx.lock.release(run.export_id, run_id)
        raise Conflict(f"run {run_id} changed while it was being approved; look at its status and try again")
    ctx.history.record_status(run, RunStatus.RUNNING)
    log.info("held leaver actions approved: run=%s export=%s by=%s", run_id, run.export_id, actor)
    queue_leaver_pass(ctx, ctx.runs.view(run_id))
    return ctx.runs.view(run_id)
