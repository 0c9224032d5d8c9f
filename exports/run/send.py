"""Step 4, send: one chunk, that is one bucket of the run's contacts, deduplicated, in bulk imports.

Progress is checkpointed after every accepted batch (position in the bucket, sent, rejected), so
a redelivered chunk resumes where the last delivery stopped and a chunk that succeeded sends
nothing. Each checkpoint is conditional on the chunk row's ETag (exports/store/runs.py
ChunkClaim): if another delivery of the same message claimed the chunk in between, this one
stops instead of sending alongside it.
"""
from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from azure.core.exceptions import ResourceNotFoundError

from exports.activecampaign.budget import AccountBudget
from exports.activecampaign.client import ActiveCampaignClient
from exports.errors import Fatal, ImportRejected, KeyRejected, RunNotFound, Transient
from exports.model import Chunk, Run
from exports.run import finish
from exports.run.account import check_list
from exports.run.batching import Item, batches
from exports.run.files import BlockWriter, batch_rejects_name, csv_line, part_name
from exports.run.messages import ChunkMessage
from exports.store.runs import Superseded
from shared.secrets import SecretNotFound

if TYPE_CHECKING:
    from exports.context import AppContext

log = logging.getLogger(__name__)


class _Stop(Exception):
    """Nothing more may be sent for this run; the message says why."""


def send_chunk(ctx: AppContext, message: ChunkMessage) -> None:
    try:
        run = ctx.runs.get_run(message.runId)
    except RunNotFound:
        log.warning("chunk message for unknown run %s ignored", message.runId)
        return
    chunk = ctx.runs.get_chunk(run.id, message.chunk)
    if not (chunk.state.final or run.final):
        try:
            _send(ctx, run, chunk)
        except Superseded:
            log.info("chunk %s of run %s was taken over by another delivery", chunk.index, run.id)
            return
    finish.finish_when_sent(ctx, run.id)


def stop_reason(ctx: AppContext, run: Run) -> str | None:
    """Why nothing more may be sent for this run (run cancelled, export or connection removed), if so."""
    if ctx.runs.get_run(run.id).cancellation:
        return "the run was cancelled"
    if ctx.config.find_export(run.export_id) is None:
        return "the export was deleted, so nothing more is sent for it"
    if ctx.config.find_connection(run.connection_id) is None:
        return "the connection was deleted, so nothing more is sent for it"
    return None


def fail_chunk(ctx: AppContext, run_id: str, index: int, reason: str) -> None:
    ctx.runs.fail_chunk(run_id, index, reason)  # the status document says which chunks, and how many, had it
    log.warning("chunk failed: run=%s chunk=%d %s", run_id, index, reason)


def _send(ctx: AppContext, run: Run, chunk: Chunk) -> None:
    reason = stop_reason(ctx, run)
    if reason:
        fail_chunk(ctx, run.id, chunk.index, reason)
        return
    items, duplicates = _load_bucket(ctx, run, chunk.bucket)
    claim = ctx.runs.claim_chunk(run.id, chunk.index, uuid.uuid4().hex, len(items), duplicates)
    position, sent, rejected = claim.before.position, claim.before.sent, claim.before.rejected
    try:
        client = ctx.accounts.client(run.hostname, run.api_key_secret_name)
        budget = ctx.accounts.budget(run.hostname)
        on_retry = _on_retry(run.id, chunk.index, budget)
        check_list(ctx, client, budget, run, on_retry)
        warnings = []
        for batch in batches(items, position, run.list_id):
            try:
                accepted, refused = _import(ctx, client, budget, batch, run, on_retry)
            except _Stop as stop:
                fail_chunk(ctx, run.id, chunk.index, f"{stop} ({sent} contacts of this chunk were sent before)")
                return
            if refused:
                _write_rejects(ctx, run.id, chunk.index, position, refused)
            if accepted < len(batch) - len(refused):
                warnings.append(f"ActiveCampaign queued {accepted} of {len(batch) - len(refused)} contacts of a batch "
                                "(the account's contact limit may be reached)")
            position, sent, rejected = position + len(batch), sent + accepted, rejected + len(refused)
            claim.checkpoint(position, sent, rejected)
        claim.succeed(warnings[0] if warnings else None)
    except KeyRejected as error:
        ctx.accounts.key_rejected(run.api_key_secret_name)  # a rotated key is read afresh by the next delivery
        fail_chunk(ctx, run.id, chunk.index, str(error))
    except (Fatal, SecretNotFound) as error:
        fail_chunk(ctx, run.id, chunk.index, str(error))


def _on_retry(run_id: str, index: int, budget: AccountBudget) -> Callable[[Transient, float], None]:
    def on_retry(error: Transient, wait: float) -> None:
        log.info("run=%s chunk=%d %s; retrying in %.1f s", run_id, index, error, wait)
        if error.throttled:
            budget.penalize(wait)  # the account is busier than our budget knew: every worker pauses
    return on_retry


def _import(ctx: AppContext, client: ActiveCampaignClient, budget: AccountBudget, batch: list[Item], run: Run,
            on_retry) -> tuple[int, list[tuple[Item, str]]]:
    """Send one batch; contacts ActiveCampaign refuses are taken out and the rest sent again.

    Before each send, the stop check (Table reads: run cancelled, export or connection deleted)
    runs between reserving the budget slot and the slot's time, so those reads overlap the wait
    for the budget instead of adding to it. Raises _Stop when it names a reason; the slot
    reserved for that send then goes unused, costing the account one interval once.
    """
    pending, refused = list(batch), []
    while pending:
        contacts = [item.contact for item in pending]

        def call(contacts=contacts):
            slot = budget.reserve(budget.bulk_kind(len(contacts)))
            reason = stop_reason(ctx, run)
            if reason:
                raise _Stop(reason)
            budget.wait_until(slot)
            return client.bulk_import(contacts, run.list_id)

        try:
            return ctx.backoff.run(call, on_retry=on_retry).queued_contacts, refused
        except ImportRejected as error:
            named = {i: reason for i, reason in error.failures.items() if 0 <= i < len(pending)}
            if not named:  # nothing to take out: the batch as a whole is refused, with ActiveCampaign's reason
                return 0, refused + [(item, str(error)) for item in pending]
            refused += [(pending[i], f"refused by ActiveCampaign: {reason}") for i, reason in sorted(named.items())]
            pending = [item for i, item in enumerate(pending) if i not in named]
    return 0, refused


def _write_rejects(ctx: AppContext, run_id: str, index: int, position: int, refused: list[tuple[Item, str]]) -> None:
    writer = BlockWriter(ctx.runs_container.get_blob_client(batch_rejects_name(run_id, index, position)))
    for item, reason in refused:
        writer.write(csv_line((item.blob, item.row, item.contact["email"], reason)))
    writer.close()


def _load_bucket(ctx: AppContext, run: Run, bucket: int) -> tuple[list[Item], int]:
    """The bucket's contacts from every blob's part, first copy of each email kept, in blob and row order."""
    container = ctx.runs_container
    items, seen, duplicates = [], set(), 0
    for segment in ctx.runs.segments(run.id):
        if not segment.bucket_counts[bucket]:
            continue
        name = part_name(run.id, bucket, segment.index)
        try:
            data = container.get_blob_client(name).download_blob().readall()
        except ResourceNotFoundError:
            raise Transient(f"part {name} is not readable yet") from None
        for line in data.splitlines():
            record = json.loads(line)
            email = record["c"]["email"]
            if email in seen:
                duplicates += 1
                continue
            seen.add(email)
            items.append(Item(run.blob_in_segment(segment.blob), record["r"], record["c"]))
    return items, duplicates
