"""When a step keeps failing: each try's error is kept on its piece, and after the host's last try
(maxDequeueCount, then the poison queue) the piece is failed with that error, so the run still ends.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from exports.errors import PieceNotFound, RunNotFound
from exports.run import finish, plan
from exports.run.messages import ChunkMessage, SegmentMessage
from shared.logging import redact

if TYPE_CHECKING:
    from exports.context import AppContext

log = logging.getLogger(__name__)
MAX_ERROR_CHARS = 1000


def record_segment_error(ctx: AppContext, message: SegmentMessage, error: Exception) -> None:
    _record(lambda text: ctx.runs.record_segment_error(message.runId, message.segment, text),
            str(error), message.runId)


def record_chunk_error(ctx: AppContext, message: ChunkMessage, error: Exception) -> None:
    _record(lambda text: ctx.runs.record_chunk_error(message.runId, message.chunk, text, message.leaving),
            str(error), message.runId)


def _record(write, text: str, run_id: str) -> None:
    """Keep why this try failed; best effort: the original error is what the host must see."""
    try:
        write(redact(text)[:MAX_ERROR_CHARS])
    except Exception:
        log.exception("could not record the error of a piece of run %s", run_id)


def give_up_segment(ctx: AppContext, message: SegmentMessage) -> None:
    try:
        segment = ctx.runs.get_segment(message.runId, message.segment)
    except (RunNotFound, PieceNotFound):
        log.error("poison message for run %s segment %d: the run has no such piece", message.runId, message.segment)
        return  # nothing to fail; any other error propagates so the host retries this poison message
    if not segment.state.final:
        reason = segment.last_error or "no error was recorded"
        ctx.runs.fail_segment(message.runId, message.segment,
                              f"segment blob {segment.blob} could not be split after repeated tries: {reason}")
    plan.after_split(ctx, message.runId)


def give_up_chunk(ctx: AppContext, message: ChunkMessage) -> None:
    try:
        chunk = ctx.runs.get_chunk(message.runId, message.chunk, message.leaving)
    except (RunNotFound, PieceNotFound):
        log.error("poison message for run %s chunk %d: the run has no such piece", message.runId, message.chunk)
        return
    if not chunk.state.final:
        reason = chunk.last_error or "no error was recorded"
        ctx.runs.fail_chunk(message.runId, message.chunk, f"could not be sent after repeated tries: {reason}",
                            leaving=message.leaving)
    finish.finish_when_sent(ctx, message.runId)
