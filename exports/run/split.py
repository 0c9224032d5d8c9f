"""Step 2, split: read one segment blob into a part holding its contacts by bucket, and a rejects part.

The blob is streamed once, with the ETag the run started with; each row is mapped and checked,
and a valid contact goes to its bucket's part (exports/run/buckets.py). Nothing is sent here,
so a blob that fails leaves nothing half-sent: sending starts only once every blob is split.
"""
from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

from exports.errors import Fatal, KeyRejected, RunNotFound, SegmentError
from exports.model import RejectReason, Run, RunStatus, Segment
from exports.run import plan
from exports.run.account import check_list
from exports.run.buckets import bucket_of
from exports.run.files import BlockWriter, BucketedPartWriter, csv_line, part_index_name, part_name, segment_rejects_name
from exports.run.messages import SegmentMessage
from exports.segments.mapping import Rejection, to_contact
from exports.segments.readers import read_records
from shared import compact_json
from shared.secrets import SecretNotFound

if TYPE_CHECKING:
    from exports.context import AppContext

log = logging.getLogger(__name__)
# Blobs split at once in a process: each buffers up to two part blocks (files.py PART_BLOCK_BYTES), and
# host.json lets an instance work on 6 messages of a queue (for the chunks' sake, send.py), so memory
# would otherwise grow with them.
SPLITS_PER_PROCESS = 3
_splitting = threading.BoundedSemaphore(SPLITS_PER_PROCESS)


def split_segment(ctx: AppContext, message: SegmentMessage) -> None:
    try:
        run = ctx.runs.get_run(message.runId)
    except RunNotFound:
        log.warning("segment message for unknown run %s ignored", message.runId)
        return
    segment = ctx.runs.get_segment(run.id, message.segment)
    if run.status in (RunStatus.FAILED, RunStatus.CANCELLED) or segment.state.final:
        plan.after_split(ctx, run.id)  # a redelivery: finish what the first delivery began
        return
    if ctx.runs.mark_running(run):
        ctx.history.record_status(run, RunStatus.RUNNING)
    problem = _account_problem(ctx, run)
    if problem:
        ctx.runs.fail_segment(run.id, segment.index, problem)
        log.warning("segment not read: run=%s %s", run.id, problem)
        plan.after_split(ctx, run.id)
        return
    try:
        with _splitting:
            rows, rejected_by_reason, counts = _split(ctx, run, segment)
    except SegmentError as error:
        ctx.runs.fail_segment(run.id, segment.index, str(error))
        log.warning("segment failed: run=%s %s", run.id, error)
    else:
        ctx.runs.record_split(run.id, segment.index, rows, rejected_by_reason, counts)
        log.info("segment split: run=%s blob=%s rows=%d rejected=%d", run.id, segment.blob, rows,
                 sum(rejected_by_reason.values()))
    plan.after_split(ctx, run.id)


def _account_problem(ctx: AppContext, run: Run) -> str | None:
    """Why nothing could be sent to the run's account, if so: then the segment is not even read."""
    try:
        check_list(ctx, ctx.accounts.client(run.hostname, run.api_key_secret_name), ctx.accounts.budget(run.hostname), run)
    except KeyRejected as error:
        ctx.accounts.key_rejected(run.api_key_secret_name)
        return str(error)
    except (Fatal, SecretNotFound) as error:
        return str(error)
    return None


def _split(ctx: AppContext, run: Run, segment: Segment) -> tuple[int, dict[str, int], list[int]]:
    """(rows, rejected rows by RejectReason, lines per bucket) of the blob; its part, the part's index and its
    rejects are written."""
    source = ctx.storage.blobs.get_blob_client(run.segment_container, segment.blob)
    container = ctx.runs_container
    part = BucketedPartWriter(container.get_blob_client(part_name(run.id, segment.index)), run.buckets)
    counts = [0] * run.buckets
    rejects = BlockWriter(container.get_blob_client(segment_rejects_name(run.id, segment.index)))
    rows, rejected = 0, {}
    try:
        download = source.download_blob(etag=segment.blob_etag, match_condition=MatchConditions.IfNotModified)
        for record in read_records(segment.blob, download.chunks(), run.columns):
            rows += 1
            if record.error:
                contact, reason = None, Rejection(f"row {record.error}", RejectReason.ROW_UNREADABLE)
            else:
                contact, reason = to_contact(record.values, run.mapping)
            if contact is None:
                rejected[reason.reason_class] = rejected.get(reason.reason_class, 0) + 1
                email = (record.values or {}).get("email", "")
                rejects.write(csv_line((run.blob_in_segment(segment.blob), record.row, email.strip(), reason)))
                if reason.email is None:
                    continue
                # Still in the segment, only not sendable as it is: the worker keeps the person's sync
                # state as it was (not a leaver, and the row is retried by the next run).
                line, email = {"r": record.row, "present": reason.email}, reason.email
            else:
                line, email = {"r": record.row, "c": contact}, contact["email"]
            bucket = bucket_of(email, run.buckets)
            part.write(bucket, compact_json.dumps(line) + b"\n")
            counts[bucket] += 1  # lines of the part: a worker reads the parts that have any
    except ResourceModifiedError:
        raise SegmentError(f"{segment.blob} changed after the run started (it no longer has ETag {segment.blob_etag}); "
                           "the run stops rather than mix two versions of the segment: start a new run") from None
    except ResourceNotFoundError:
        raise SegmentError(f"{segment.blob} was deleted after the run started") from None
    index = part.close()
    # Written before the split is recorded: a worker reads a bucket only of segments recorded split.
    container.get_blob_client(part_index_name(run.id, segment.index)).upload_blob(index.to_json(), overwrite=True)
    if rejected:
        rejects.close()
    return rows, rejected, counts
