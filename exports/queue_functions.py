"""Queue-triggered functions: the splitter, the chunk worker and their poison-queue handlers."""
from __future__ import annotations

import azure.functions as func

from exports.context import get_context
from exports.messages import BadMessage, parse
from exports.names import CHUNKS_POISON_QUEUE, CHUNKS_QUEUE, SEGMENTS_POISON_QUEUE, SEGMENTS_QUEUE, STORAGE_CONNECTION
from exports.pipeline import settle, split_segment
from exports.runs import CHUNK_FINAL, SEGMENT_FINAL, RunNotFound, chunk_row, segment_row
from exports.worker import send_chunk
from shared.logging import get_logger, redact

bp = func.Blueprint()
log = get_logger(__name__)


def _message(msg: func.QueueMessage, field: str) -> dict | None:
    try:
        return parse(msg.get_body(), field)
    except BadMessage as error:
        # Retrying cannot mend a malformed message; dropping it with a log line loses nothing of a run.
        log.error("queue message %s dropped: %s", msg.id, error)
        return None


def _work_on(msg: func.QueueMessage, field: str, work, row_of, what: str) -> None:
    """Do one piece of a run; when it fails, record why on the piece, then let the host retry."""
    message = _message(msg, field)
    if message is None:
        return
    ctx = get_context()
    try:
        work(ctx, message["runId"], message[field])
    except Exception as error:
        _record_last_error(ctx, message["runId"], row_of(message[field]), f"{what} {message[field]}: {error}")
        raise


@bp.queue_trigger(arg_name="msg", queue_name=SEGMENTS_QUEUE, connection=STORAGE_CONNECTION)
def split_segment_blob(msg: func.QueueMessage) -> None:
    _work_on(msg, "segment", split_segment, segment_row, "splitting segment blob")


@bp.queue_trigger(arg_name="msg", queue_name=CHUNKS_QUEUE, connection=STORAGE_CONNECTION)
def send_chunk_batches(msg: func.QueueMessage) -> None:
    _work_on(msg, "chunk", send_chunk, chunk_row, "chunk")


@bp.queue_trigger(arg_name="msg", queue_name=SEGMENTS_POISON_QUEUE, connection=STORAGE_CONNECTION)
def segment_poison(msg: func.QueueMessage) -> None:
    message = _message(msg, "segment")
    if message is not None:
        _give_up(message["runId"], segment_row(message["segment"]), SEGMENT_FINAL,
                 f"segment blob {message.get('blob')} could not be split")


@bp.queue_trigger(arg_name="msg", queue_name=CHUNKS_POISON_QUEUE, connection=STORAGE_CONNECTION)
def chunk_poison(msg: func.QueueMessage) -> None:
    message = _message(msg, "chunk")
    if message is not None:
        _give_up(message["runId"], chunk_row(message["chunk"]), CHUNK_FINAL, f"chunk {message['chunk']} could not be sent")


def _record_last_error(ctx, run_id: str, row: str, text: str) -> None:
    """Keep why this try failed; the host retries the message, and the poison handler reports this text."""
    try:
        ctx.runs.update_piece(run_id, row, {"lastError": redact(text)[:1000]})
    except Exception:  # recording is best effort: the original error is what the host must see
        log.exception("could not record the error of %s/%s", run_id, row)


def _give_up(run_id: str, row: str, final: tuple[str, ...], what: str) -> None:
    """The host gave up after maxDequeueCount tries: mark the piece failed so that the run still ends."""
    ctx = get_context()
    try:
        piece = ctx.runs.get_piece(run_id, row)
    except Exception:
        log.error("poison message for %s/%s: the piece no longer exists", run_id, row)
        return
    if piece["status"] not in final:
        reason = piece.get("lastError") or "no error was recorded"
        ctx.runs.update_piece(run_id, row, {"status": "failed", "error": f"{what} after repeated tries: {reason}"})
    try:
        settle(ctx, run_id)
    except RunNotFound:
        pass
