"""The run lifecycle: start, split segment blobs into contact parts, plan chunks, finish.

Why split into hash buckets instead of cutting each blob into chunks: a duplicate email must be
sent once per run even when its copies sit in different blobs, which different splitter
instances read at the same time. Each splitter routes a contact to bucket crc32(email) % buckets,
so every copy of an email lands in the same bucket; once all blobs are split, one chunk per
non-empty bucket goes to a worker, which reads that bucket's parts from every blob and keeps
the first copy. Memory stays flat (one bucket at a time) and a blob that fails leaves nothing
half-sent, because sending starts only after every blob was read with its recorded ETag.
"""
from __future__ import annotations

import json
import math
import zlib

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

from exports.blobs import REJECTS_HEADER, BlockWriter, concatenate, csv_line
from exports.context import AppContext
from exports.mapping import to_contact
from exports.names import CHUNKS_QUEUE, SEGMENTS_QUEUE
from exports.runs import (
    CHUNK_FINAL,
    FINAL_STATUSES,
    RUN_ROW,
    SEGMENT_FINAL,
    RunNotFound,
    RunView,
    chunk_row,
    errors_of,
    segment_row,
    status_document,
    totals_of,
)
from exports.segments import SegmentError, list_segment_blobs, read_records
from shared.logging import get_logger

log = get_logger(__name__)
MAX_BUCKETS = 2000  # keeps a segment row's bucket counts well inside a Table property (32K chars)
_BYTES_PER_ROW = 64  # a lean profile row; over-estimating rows only makes chunks smaller
_GZIP_RATIO = 6


def bucket_count(blobs, chunk_size: int) -> int:
    estimated_rows = sum(blob.size * (_GZIP_RATIO if blob.name.lower().endswith(".gz") else 1)
                         for blob in blobs) / _BYTES_PER_ROW
    return max(1, min(MAX_BUCKETS, math.ceil(estimated_rows / chunk_size)))


def bucket_of(email: str, buckets: int) -> int:
    return zlib.crc32(email.encode("utf-8")) % buckets  # stable across processes, unlike hash()


def part_name(run_id: str, bucket: int, segment: int) -> str:
    return f"{run_id}/parts/b{bucket:05d}/s{segment:05d}.jsonl"


def rejects_part_prefix(run_id: str) -> str:
    return f"{run_id}/rejects/"


# --- start ---------------------------------------------------------------------------------------
class ExportDisabled(Exception):
    pass


def start_run(ctx: AppContext, export_id: str, trigger: str) -> str:
    """Record a queued run of the export and queue one message per segment blob; returns the run id.

    Raises config.NotFound for an unknown export, ExportDisabled, or runs.ActiveRunConflict.
    """
    export = ctx.config.get_export(export_id)
    if not export.enabled:
        raise ExportDisabled(f"export {export_id} is disabled; enable it to run it")
    connection = ctx.config.get_connection(export.connectionId)
    container = ctx.storage.blobs.get_container_client(export.segmentContainer)
    try:
        blobs = list_segment_blobs(container, export.segmentPrefix)
        missing_reason = None
    except ResourceNotFoundError:
        blobs, missing_reason = [], f"container {export.segmentContainer!r} does not exist"
    run_id = ctx.runs.create_run(export=export, connection=connection, trigger=trigger, blobs=blobs,
                                 buckets=bucket_count(blobs, ctx.settings.chunk_size))
    log.info("export run started: run=%s export=%s trigger=%s blobs=%d", run_id, export_id, trigger, len(blobs))
    if not blobs:
        reason = missing_reason or (
            f"the segment has no blobs: nothing under container {export.segmentContainer!r} prefix "
            f"{export.segmentPrefix!r} ends in .csv, .csv.gz, .jsonl or .jsonl.gz")
        _finish(ctx, ctx.runs.view(run_id), extra_errors=[reason], force_status="failed")
        return run_id
    queue = ctx.storage.queue(SEGMENTS_QUEUE)
    for index, blob in enumerate(blobs):
        queue.send_message(json.dumps({"runId": run_id, "segment": index, "blob": blob.name, "etag": blob.etag}))
    ctx.runs.mark_segments_enqueued(run_id)
    return run_id


# --- splitter ------------------------------------------------------------------------------------
def split_segment(ctx: AppContext, run_id: str, index: int) -> None:
    try:
        run = ctx.runs.get_run(run_id)
    except RunNotFound:
        log.warning("segment message for unknown run %s ignored", run_id)
        return
    row = segment_row(index)
    segment = ctx.runs.get_piece(run_id, row)
    if run["status"] in ("failed", "cancelled") or segment["status"] in SEGMENT_FINAL:
        settle(ctx, run_id, resume_planning=True)  # a redelivery: finish what the first delivery began
        return
    ctx.runs.mark_running(run_id)
    try:
        fields = {"status": "split", **_split(ctx, run, segment, index)}
        log.info("segment split: run=%s blob=%s rows=%d rejected=%d", run_id, segment["blob"], fields["rows"],
                 fields["rejected"])
    except SegmentError as error:
        fields = {"status": "failed", "error": str(error)}
        log.warning("segment failed: run=%s %s", run_id, error)
    ctx.runs.update_piece(run_id, row, fields)
    settle(ctx, run_id, resume_planning=True)


def _split(ctx: AppContext, run: dict, segment: dict, index: int) -> dict:
    run_id, blob_name, buckets = run["PartitionKey"], segment["blob"], int(run["buckets"])
    columns = json.loads(run["mapping"])
    source = ctx.storage.blobs.get_blob_client(run["segmentContainer"], blob_name)
    runs_container = ctx.runs_container
    parts: dict[int, BlockWriter] = {}
    counts = [0] * buckets
    rejects = BlockWriter(runs_container.get_blob_client(f"{rejects_part_prefix(run_id)}seg-{index:05d}.csv"))
    rows = rejected = 0
    try:
        download = source.download_blob(etag=segment["etag"], match_condition=MatchConditions.IfNotModified)
        for record in read_records(blob_name, download.chunks(), columns):
            rows += 1
            contact, reason = (None, f"row {record.error}") if record.error else to_contact(record.values)
            if contact is None:
                rejected += 1
                email = (record.values or {}).get("email", "")
                rejects.write(csv_line((blob_name, record.row, email.strip(), reason)))
                continue
            bucket = bucket_of(contact["email"], buckets)
            writer = parts.get(bucket)
            if writer is None:
                writer = parts[bucket] = BlockWriter(runs_container.get_blob_client(part_name(run_id, bucket, index)))
            writer.write(json.dumps({"r": record.row, "c": contact}, separators=(",", ":"), ensure_ascii=False).encode() + b"\n")
            counts[bucket] += 1
    except ResourceModifiedError:
        raise SegmentError(f"{blob_name} changed after the run started (it no longer has ETag {segment['etag']}); "
                           "the run stops rather than mix two versions of the segment: start a new run") from None
    except ResourceNotFoundError:
        raise SegmentError(f"{blob_name} was deleted after the run started") from None
    for writer in parts.values():
        writer.close()
    if rejected:
        rejects.close()
    return {"rows": rows, "rejected": rejected, "records": rows - rejected, "bucketCounts": json.dumps(counts)}


# --- planning and finishing ----------------------------------------------------------------------
def settle(ctx: AppContext, run_id: str, resume_planning: bool = False) -> None:
    """Move the run on if its pieces allow: plan chunks once every blob is split, finish once every chunk is.

    Any instance may call this after recording its own piece; ETag checks make exactly one of
    several concurrent callers do each step.
    """
    view = ctx.runs.view(run_id)
    if view.final:
        return
    run = view.run
    if run["phase"] == "splitting":
        if len(view.segments) < int(run["segmentsTotal"]) or any(s["status"] not in SEGMENT_FINAL for s in view.segments):
            return
        if run.get("cancelRequested") or any(s["status"] == "failed" for s in view.segments):
            _finish(ctx, view)
            return
        try:
            ctx.runs.update_piece(run_id, RUN_ROW, {"phase": "sending"}, etag=run.metadata["etag"])
        except ResourceModifiedError:
            return  # another instance is planning
        _plan_chunks(ctx, ctx.runs.view(run_id))
        return
    if run["phase"] == "sending":
        if resume_planning:
            _enqueue_chunks(ctx, run_id, [c for c in view.chunks if c["status"] == "pending"])
        if all(c["status"] in CHUNK_FINAL for c in view.chunks):
            _finish(ctx, view)


def _plan_chunks(ctx: AppContext, view: RunView) -> None:
    run_id = view.run["PartitionKey"]
    totals = [0] * int(view.run["buckets"])
    for segment in view.segments:
        for bucket, count in enumerate(json.loads(segment["bucketCounts"])):
            totals[bucket] += count
    chunks = [{"PartitionKey": run_id, "RowKey": chunk_row(i), "bucket": bucket, "records": count, "status": "pending"}
              for i, (bucket, count) in enumerate((b, n) for b, n in enumerate(totals) if n)]
    if not chunks:
        _finish(ctx, view)
        return
    ctx.runs.insert_pieces(chunks)
    _enqueue_chunks(ctx, run_id, [ctx.runs.get_piece(run_id, c["RowKey"]) for c in chunks])
    log.info("chunks queued: run=%s chunks=%d", run_id, len(chunks))


def _enqueue_chunks(ctx: AppContext, run_id: str, chunks: list[dict]) -> None:
    queue = ctx.storage.queue(CHUNKS_QUEUE)
    for chunk in chunks:
        index = int(chunk["RowKey"].split("-")[1])
        queue.send_message(json.dumps({"runId": run_id, "chunk": index}))
        try:
            # Marks the message as sent, so a redelivered splitter does not queue it again; a worker
            # that already claimed the chunk has changed the ETag, and its state wins.
            ctx.runs.update_piece(run_id, chunk["RowKey"], {"status": "queued"}, etag=chunk.metadata["etag"])
        except ResourceModifiedError:
            pass


def _decide(view: RunView, totals: dict) -> tuple[str, list[str]]:
    extra = []
    if any(s["status"] == "failed" for s in view.segments):
        return "failed", extra
    if view.run.get("cancelRequested"):
        return "cancelled", extra
    if totals["rows"] and not totals["contacts"]:
        return "failed", [f"none of the {totals['rows']} rows could be sent: every row was rejected (see rejectsBlob)"]
    if totals["chunks"]["total"] and not totals["chunks"]["succeeded"]:
        return "failed", extra
    if totals["rejected"] or totals["chunks"]["failed"]:
        return "completed_with_errors", extra
    return "succeeded", extra


def _finish(ctx: AppContext, view: RunView, extra_errors: list[str] = (), force_status: str | None = None) -> None:
    run_id = view.run["PartitionKey"]
    totals = totals_of(view)
    status, decided_errors = _decide(view, totals)
    status = force_status or status
    errors = list(extra_errors) + errors_of(view) + decided_errors
    rejects_blob = _assemble_rejects(ctx, run_id) if totals["rejected"] else None
    if ctx.runs.finish(view, status, totals, errors, rejects_blob):
        log.info("export run finished: run=%s export=%s status=%s", run_id, view.run["exportId"], status)


def _assemble_rejects(ctx: AppContext, run_id: str) -> str:
    container = ctx.runs_container
    target = f"{run_id}/rejects.csv"
    parts = sorted(blob.name for blob in container.list_blobs(name_starts_with=rejects_part_prefix(run_id)))
    concatenate(container, target, parts, header=csv_line(REJECTS_HEADER))
    return f"{container.container_name}/{target}"


# --- cancelling ----------------------------------------------------------------------------------
CANCELLED_BEFORE_SENDING = "the run was cancelled before this chunk was sent"


class RunFinished(Exception):
    def __init__(self, run_id: str, status: str):
        super().__init__(f"run {run_id} already finished with status {status}; only a queued or running run can be cancelled")
        self.run_id = run_id
        self.status = status


def cancel_run(ctx: AppContext, run_id: str, actor: str, reason: str) -> RunView:
    """Stop a queued or running run: nothing more is sent for it, and it finishes "cancelled".

    The run row gets cancelRequested (workers check it before every batch and fail their chunk);
    chunks no worker has claimed yet are failed here, so the run finishes as soon as the chunks
    being sent reach their next batch. A run still splitting its segment finishes once the
    split ends: splitting sends nothing. Raises RunNotFound, or RunFinished for a final run.
    """
    for _ in range(10):
        run = ctx.runs.get_run(run_id)
        if run["status"] in FINAL_STATUSES:
            raise RunFinished(run_id, run["status"])
        if run.get("cancelRequested"):
            break  # asked before: cancelling again changes nothing
        try:
            ctx.runs.update_piece(run_id, RUN_ROW, {"cancelRequested": True, "cancelRequestedBy": actor,
                                                    "cancelRequestedAt": ctx.runs.clock(), "cancelReason": reason},
                                  etag=run.metadata["etag"])
            log.info("run cancel requested: run=%s export=%s by=%s reason=%s", run_id, run["exportId"], actor, reason)
            break
        except ResourceModifiedError:
            continue  # the run moved on meanwhile (perhaps to a final status): look again
    else:
        raise RuntimeError(f"run {run_id} kept changing; cancelling it again should work")
    for chunk in ctx.runs.view(run_id).chunks:
        if chunk["status"] in ("pending", "queued"):
            try:
                ctx.runs.update_piece(run_id, chunk["RowKey"], {"status": "failed", "error": CANCELLED_BEFORE_SENDING},
                                      etag=chunk.metadata["etag"])
            except ResourceModifiedError:
                pass  # a worker claimed it just now; it stops before its next batch
    settle(ctx, run_id)
    return ctx.runs.view(run_id)


def run_status(ctx: AppContext, run_id: str) -> dict:
    return status_document(ctx.runs.view(run_id))
