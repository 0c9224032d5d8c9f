"""Step 3, plan: once every segment blob is split, one chunk per bucket, queued.

Every bucket gets a chunk, even one the segment put no contact in: its shards of the sync state
may hold contacts that left the segment.

Any splitter may call after_split once it has recorded its own blob. Each writes the chunk rows
that are not there yet, then the run row's ETag makes exactly one of them move the run to
"sending" and queue the chunks. Chunk rows are written before the run moves on and before their
messages are queued, so a planner that crashes in between is resumed by the redelivered split
message, which queues the chunks still pending.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from azure.core.exceptions import HttpResponseError

from exports.model import Chunk, ChunkStatus, Phase, RunView, SegmentStatus
from exports.names import CHUNKS_QUEUE
from exports.run import finish
from exports.run.buckets import bucket_totals
from exports.run.messages import ChunkMessage

if TYPE_CHECKING:
    from exports.context import AppContext

log = logging.getLogger(__name__)


def after_split(ctx: AppContext, run_id: str) -> None:
    """Move the run on after a segment blob was recorded (split or failed), or when a split message is redelivered."""
    view = ctx.runs.view(run_id)
    if view.final:
        return
    run = view.run
    if run.phase is Phase.SENDING:
        enqueue(ctx, [c for c in view.chunks if c.state is ChunkStatus.PENDING])  # what a crashed planner left
        finish.finish_when_sent(ctx, view)
        return
    if len(view.segments) < run.segments_total or not all(s.state.final for s in view.segments):
        return  # other blobs are still being split
    if run.cancellation or any(s.state is SegmentStatus.FAILED for s in view.segments):
        finish.finish(ctx, view)
        return
    # Every chunk row is written before the run says "sending": a view that says so has them all, so
    # nobody finishes a run whose chunks are still being added.
    ctx.runs.add_chunks(planned_chunks(view))
    if ctx.runs.start_sending(run):
        chunks = ctx.runs.view(run_id).chunks
        enqueue(ctx, chunks)
        log.info("chunks queued: run=%s chunks=%d", run_id, len(chunks))
        return
    now = ctx.runs.view(run_id)
    if now.run.phase is Phase.SPLITTING and now.run.cancellation and not now.final:
        finish.finish(ctx, now)  # cancelled as it was planned: nobody else would move it on


def planned_chunks(view: RunView) -> list[Chunk]:
    run = view.run
    totals = bucket_totals((s.bucket_counts for s in view.segments), run.buckets)
    return [Chunk(run_id=run.id, index=bucket, status=ChunkStatus.PENDING.value, bucket=bucket, records=count)
            for bucket, count in enumerate(totals)]


def enqueue(ctx: AppContext, chunks: Iterable[Chunk]) -> None:
    queue = ctx.storage.queue(CHUNKS_QUEUE)
    for chunk in chunks:
        sent = queue.send_message(ChunkMessage(chunk.run_id, chunk.index, chunk.leaving).to_json())
        # Marks the message as sent, so a redelivered split does not queue it again; a worker that
        # already claimed the chunk has changed the ETag, and its state wins.
        if not ctx.runs.mark_chunk_queued(chunk):
            _withdraw(queue, sent)


def _withdraw(queue, sent) -> None:
    """The chunk's row changed since it was read: another worker queued it too (its message went before its
    mark), a delivery claimed it, or it was failed. That message does the work, so this one is taken back:
    delivered beside it, it would take the chunk over mid-send and send a batch again (two chunks ending
    together both queued the run's remainder chunk). Already delivered (its pop receipt changed, or it is
    gone), it is the one that claimed the chunk, and stays."""
    try:
        queue.delete_message(sent.id, sent.pop_receipt)
    except HttpResponseError as error:  # also when the delete fails otherwise: a duplicate costs one batch at most
        log.info("chunk message %s not taken back: %s", sent.id, getattr(error, "error_code", None) or error.status_code)
