"""Queue functions: the splitter, the chunk worker, and their poison-queue handlers."""
from __future__ import annotations

import logging

import azure.functions as func

from exports.context import get_context
from exports.names import CHUNKS_POISON_QUEUE, CHUNKS_QUEUE, SEGMENTS_POISON_QUEUE, SEGMENTS_QUEUE, STORAGE_CONNECTION
from exports.run.messages import BadMessage, ChunkMessage, SegmentMessage
from exports.run.poison import give_up_chunk, give_up_segment, record_chunk_error, record_segment_error
from exports.run.send import send_chunk
from exports.run.split import split_segment

bp = func.Blueprint()
log = logging.getLogger(__name__)


def _parse(msg: func.QueueMessage, kind):
    try:
        return kind.parse(msg.get_body())
    except BadMessage as error:
        # Retrying cannot mend a malformed message; dropping it with a log line loses nothing of a run.
        log.error("queue message %s dropped: %s", msg.id, error)
        return None


@bp.queue_trigger(arg_name="msg", queue_name=SEGMENTS_QUEUE, connection=STORAGE_CONNECTION)
def split_segment_blob(msg: func.QueueMessage) -> None:
    message = _parse(msg, SegmentMessage)
    if message is None:
        return
    ctx = get_context()
    try:
        split_segment(ctx, message)
    except Exception as error:
        record_segment_error(ctx, message, error)
        raise  # the host retries, then moves the message to the poison queue


@bp.queue_trigger(arg_name="msg", queue_name=CHUNKS_QUEUE, connection=STORAGE_CONNECTION)
def send_chunk_batches(msg: func.QueueMessage) -> None:
    message = _parse(msg, ChunkMessage)
    if message is None:
        return
    ctx = get_context()
    try:
        send_chunk(ctx, message)
    except Exception as error:
        record_chunk_error(ctx, message, error)
        raise


@bp.queue_trigger(arg_name="msg", queue_name=SEGMENTS_POISON_QUEUE, connection=STORAGE_CONNECTION)
def segment_poison(msg: func.QueueMessage) -> None:
    message = _parse(msg, SegmentMessage)
    if message is not None:
        give_up_segment(get_context(), message)


@bp.queue_trigger(arg_name="msg", queue_name=CHUNKS_POISON_QUEUE, connection=STORAGE_CONNECTION)
def chunk_poison(msg: func.QueueMessage) -> None:
    message = _parse(msg, ChunkMessage)
    if message is not None:
        give_up_chunk(get_context(), message)
