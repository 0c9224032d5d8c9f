"""The chunk worker: one bucket of a run's contacts, deduplicated, sent in bulk imports.

Progress is checkpointed after every accepted batch (position in the bucket, sent, rejected), so
a redelivered chunk resumes where the last delivery stopped and a chunk that succeeded sends
nothing. Each checkpoint is conditional on the chunk row's ETag: if another delivery of the same
message claimed the chunk in between, this one stops instead of sending alongside it.
"""
from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

from exports.activecampaign import (
    MAX_CONTACTS_PER_IMPORT,
    MAX_IMPORT_BYTES,
    Fatal,
    ImportRejected,
    KeyRejected,
    Transient,
    contact_cost,
    import_payload,
)
from exports.blobs import BlockWriter, csv_line
from exports.config import NotFound
from exports.context import AppContext
from exports.pipeline import part_name, rejects_part_prefix, settle
from exports.runs import CHUNK_FINAL, FINAL_STATUSES, RunNotFound, chunk_row, segment_row
from shared.logging import get_logger
from shared.secrets import SecretNotFound

log = get_logger(__name__)
Item = tuple[str, int, dict]  # (source blob, row number, contact)
LIST_CHECK_SECONDS = 60.0
MIN_CONTACTS_PER_IMPORT = 10  # ActiveCampaign's advice for bulk imports (FACTS.md)
_SEGMENT_ROWS_END = "seg-~"  # sorts after every segment row (runs.segment_row: "seg-00000" ...)


class Superseded(Exception):
    """Another delivery of this chunk took it over."""


def send_chunk(ctx: AppContext, run_id: str, index: int) -> None:
    try:
        run = ctx.runs.get_run(run_id)
    except RunNotFound:
        log.warning("chunk message for unknown run %s ignored", run_id)
        return
    row = chunk_row(index)
    chunk = ctx.runs.get_piece(run_id, row)
    if chunk["status"] in CHUNK_FINAL or run["status"] in FINAL_STATUSES:
        settle(ctx, run_id)
        return
    try:
        _send(ctx, run, row, chunk)
    except Superseded:
        log.info("chunk %s of run %s was taken over by another delivery", index, run_id)
        return
    settle(ctx, run_id)


def fail_chunk(ctx: AppContext, run_id: str, index: int, reason: str) -> None:
    ctx.runs.update_piece(run_id, chunk_row(index), {"status": "failed", "error": f"chunk {index}: {reason}"})
    log.warning("chunk failed: run=%s chunk=%d %s", run_id, index, reason)


def stop_reason(ctx: AppContext, run: dict) -> str | None:
    """Why nothing more may be sent for this run (export or connection removed, run cancelled), if so."""
    run_id = run["PartitionKey"]
    current = ctx.runs.get_run(run_id)
    if current.get("cancelRequested"):
        return "the run was cancelled"
    if ctx.config.find_export(run["exportId"]) is None:
        return "the export was deleted, so nothing more is sent for it"
    try:
        ctx.config.get_connection(run["connectionId"])
    except NotFound:
        return "the connection was deleted, so nothing more is sent for it"
    return None


def _send(ctx: AppContext, run: dict, row: str, chunk: dict) -> None:
    run_id, index = run["PartitionKey"], int(row.split("-")[1])
    reason = stop_reason(ctx, run)
    if reason:
        fail_chunk(ctx, run_id, index, reason)
        return
    items, duplicates = _load_bucket(ctx, run, int(chunk["bucket"]))
    claim = uuid.uuid4().hex
    etag, chunk = _claim(ctx, run_id, row, claim, {"contacts": len(items), "duplicates": duplicates})
    position, sent, rejected = int(chunk.get("position", 0)), int(chunk.get("sent", 0)), int(chunk.get("rejected", 0))
    list_id, hostname = run["listId"], run["hostname"]
    try:
        client = ctx.activecampaign(hostname, run["apiKeySecretName"])
        budget = ctx.budget(hostname)
        on_retry = _on_retry(run_id, index, budget)
        _check_list(ctx, client, budget, run, on_retry)
        warnings = []
        for batch in _batches(items, position, list_id):
            try:
                accepted, refused = _import(client, ctx.backoff, budget, batch, list_id, on_retry,
                                            lambda: stop_reason(ctx, run))
            except _Stop as stop:
                fail_chunk(ctx, run_id, index, f"{stop} ({sent} contacts of this chunk were sent before)")
                return
            if refused:
                _write_rejects(ctx, run_id, index, position, refused)
            if accepted < len(batch) - len(refused):
                warnings.append(f"ActiveCampaign queued {accepted} of {len(batch) - len(refused)} contacts of a batch "
                                "(the account's contact limit may be reached)")
            position, sent, rejected = position + len(batch), sent + accepted, rejected + len(refused)
            etag = _checkpoint(ctx, run_id, row, claim, etag, {"position": position, "sent": sent, "rejected": rejected})
        fields = {"status": "succeeded"}
        if warnings:
            fields["error"] = f"chunk {index}: {warnings[0]}"
        _checkpoint(ctx, run_id, row, claim, etag, fields)
    except KeyRejected as error:
        ctx.secrets.forget(run["apiKeySecretName"])  # a rotated key is read afresh by the next delivery
        fail_chunk(ctx, run_id, index, str(error))
    except (Fatal, SecretNotFound) as error:
        fail_chunk(ctx, run_id, index, str(error))


def _check_list(ctx: AppContext, client, budget, run: dict, on_retry) -> None:
    """Fail early, with the list's id, when the run's list is missing or the key is refused.

    Once it passed, this process does not ask again for the same run for LIST_CHECK_SECONDS:
    the GET costs a request of the account's budget and a round trip to ActiveCampaign
    between two chunks, which one worker sending chunk after chunk would otherwise leave idle
    each time. A list deleted meanwhile is still caught: by the next check, at most that long
    after, or sooner by an import answered 404.
    """
    key = (run["PartitionKey"], run["listId"])
    if ctx.checked_lists.get(key, 0.0) > time.monotonic():
        return

    def check_list():
        budget.before_request()
        return client.get_list(run["listId"])

    ctx.backoff.run(check_list, on_retry=on_retry)
    ctx.checked_lists[key] = time.monotonic() + LIST_CHECK_SECONDS


def _on_retry(run_id: str, index: int, budget):
    def on_retry(error: Transient, wait: float) -> None:
        log.info("run=%s chunk=%d %s; retrying in %.1f s", run_id, index, error, wait)
        if error.throttled:
            budget.penalize(wait)  # the account is busier than our budget knew: every worker pauses
    return on_retry


class _Stop(Exception):
    """Nothing more may be sent for this run; the message says why."""


def _import(client, backoff, budget, batch: list[Item], list_id: str, on_retry,
            stop_check) -> tuple[int, list[tuple[Item, str]]]:
    """Send one batch; contacts ActiveCampaign refuses are taken out and the rest sent again.

    Before each send, `stop_check` (Table reads: run cancelled, export or connection deleted)
    runs between reserving the budget slot and the slot's time, so those reads overlap the
    wait for the budget instead of adding to it. Raises _Stop when it names a reason; the
    slot reserved for that send then goes unused, costing the account one interval once.
    """
    pending, refused = list(batch), []
    while pending:
        contacts = [contact for _, _, contact in pending]

        def call(contacts=contacts):
            slot = budget.reserve(budget.bulk_kind(len(contacts)))
            reason = stop_check()
            if reason:
                raise _Stop(reason)
            budget.wait_until(slot)
            return client.bulk_import(contacts, list_id)

        try:
            return backoff.run(call, on_retry=on_retry).queued_contacts, refused
        except ImportRejected as error:
            named = {i: reason for i, reason in error.failures.items() if 0 <= i < len(pending)}
            if not named:  # nothing to take out: the batch as a whole is refused, with ActiveCampaign's reason
                return 0, refused + [(item, str(error)) for item in pending]
            refused += [(pending[i], f"refused by ActiveCampaign: {reason}") for i, reason in sorted(named.items())]
            pending = [item for i, item in enumerate(pending) if i not in named]
    return 0, refused


def _write_rejects(ctx: AppContext, run_id: str, index: int, position: int, refused: list[tuple[Item, str]]) -> None:
    # Named by the batch's position, so a resent batch rewrites its own file.
    writer = BlockWriter(ctx.runs_container.get_blob_client(f"{rejects_part_prefix(run_id)}chunk-{index:05d}-{position:07d}.csv"))
    for (blob, row, contact), reason in refused:
        writer.write(csv_line((blob, row, contact["email"], reason)))
    writer.close()


def _claim(ctx: AppContext, run_id: str, row: str, claim: str, fields: dict) -> tuple[str, dict]:
    """Mark the chunk as ours; returns the new ETag and the row as it was (with its checkpoint)."""
    for _ in range(5):
        chunk = ctx.runs.get_piece(run_id, row)
        if chunk["status"] in CHUNK_FINAL:
            raise Superseded()
        try:
            return ctx.runs.update_piece(run_id, row, {"status": "sending", "claim": claim, **fields},
                                         etag=chunk.metadata["etag"]), chunk
        except ResourceModifiedError:
            continue  # the splitter marked it queued in between, or another delivery claimed it: look again
    raise Superseded()


def _checkpoint(ctx: AppContext, run_id: str, row: str, claim: str, etag: str, fields: dict) -> str:
    try:
        return ctx.runs.update_piece(run_id, row, fields, etag=etag)
    except ResourceModifiedError:
        if ctx.runs.get_piece(run_id, row).get("claim") != claim:
            raise Superseded() from None
        return ctx.runs.update_piece(run_id, row, fields)  # our own row, changed only by a status reader's merge


def _load_bucket(ctx: AppContext, run: dict, bucket: int) -> tuple[list[Item], int]:
    """The bucket's contacts from every blob's part, first copy of each email kept, in blob and row order."""
    run_id, container = run["PartitionKey"], ctx.runs_container
    items, seen, duplicates = [], set(), 0
    # Every segment row in one query rather than one read each: this sits between two chunks.
    segments = {entity["RowKey"]: entity for entity in ctx.runs.runs.query_entities(
        "PartitionKey eq @pk and RowKey ge @first and RowKey lt @after",
        parameters={"pk": run_id, "first": segment_row(0), "after": _SEGMENT_ROWS_END})}
    for segment_index in range(int(run["segmentsTotal"])):
        segment = segments[segment_row(segment_index)]
        if not json.loads(segment["bucketCounts"])[bucket]:
            continue
        try:
            data = container.get_blob_client(part_name(run_id, bucket, segment_index)).download_blob().readall()
        except ResourceNotFoundError:
            raise Transient(f"part {part_name(run_id, bucket, segment_index)} is not readable yet") from None
        for line in data.splitlines():
            record = json.loads(line)
            email = record["c"]["email"]
            if email in seen:
                duplicates += 1
                continue
            seen.add(email)
            items.append((segment["blob"], record["r"], record["c"]))
    return items, duplicates


def _batches(items: list[Item], start: int, list_id: str) -> Iterator[list[Item]]:
    """Batches of at most 250 contacts and 400,000 bytes, cut the same way on every delivery.

    The last batch is topped up from the one before to MIN_CONTACTS_PER_IMPORT contacts when it
    would have fewer: ActiveCampaign asks for at least 10 contacts per bulk import, and a
    single-contact import draws on a budget of its own (20 a minute), so a chunk ending in a
    one-contact batch could wait seconds for it. Only the last two batches change, and only as
    a function of the contacts from `start` on, so a delivery that resumes at a checkpoint cuts
    the rest exactly as the first delivery did.
    """
    overhead = len(import_payload([], list_id))
    previous, batch, size = None, [], overhead
    for item in items[start:]:
        cost = contact_cost(item[2], list_id)
        if batch and (len(batch) == MAX_CONTACTS_PER_IMPORT or size + cost > MAX_IMPORT_BYTES):
            if previous:
                yield previous
            previous, batch, size = batch, [], overhead
        batch.append(item)
        size += cost
    if previous and len(batch) < MIN_CONTACTS_PER_IMPORT:
        # A few contacts more keep the last batch far under 400,000 bytes, and the one before only shrinks.
        moved = min(MIN_CONTACTS_PER_IMPORT - len(batch), len(previous) - MIN_CONTACTS_PER_IMPORT)
        if moved > 0:
            previous, batch = previous[:-moved], previous[-moved:] + batch
    if previous:
        yield previous
    if batch:
        yield batch
