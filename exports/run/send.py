"""Step 4, send: one chunk, that is one bucket of the run's contacts, deduplicated, compared with
the export's sync state, and what is new or changed sent in bulk imports.

A chunk goes through three stages, each recorded on its row:
1. compare (exports/run/compare.py): each contact is added, updated or unchanged, and the state's
   contacts missing from the segment are leavers; a dry run writes its preview and stops here;
2. send: progress is checkpointed after every accepted batch (position among the contacts to
   send, sent, rejected, the imports whose outcome is still to be read, exports/run/outcomes.py),
   so a redelivered chunk resumes where the last delivery stopped;
3. commit: once every outcome is known, each of the chunk's shards of the state is rewritten with
   what ActiveCampaign took. The state is not touched before, so a redelivery compares with the
   same state and finds the same contacts to send.
Each checkpoint is conditional on the chunk row's ETag (exports/store/runs.py ChunkClaim): if
another delivery of the same message claimed the chunk in between, this one stops instead of
sending alongside it; if the run was cancelled meanwhile (exports/run/cancel.py marks the row), it
records its progress and sends nothing more. A chunk that fails or is cancelled commits nothing:
the next run sends its contacts again.
"""
from __future__ import annotations

import json
import logging
import math
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING

from azure.core.exceptions import ResourceNotFoundError

from exports.activecampaign.budget import AccountBudget
from exports.activecampaign.client import MAX_CONTACTS_PER_IMPORT, ActiveCampaignClient, ImportAccepted
from exports.errors import Fatal, ImportRejected, KeyRejected, RunNotFound, Transient
from exports.model import Chunk, Leavers, Run, RunMode
from exports.run import cancel, finish, remainder
from exports.run.account import check_list
from exports.run.batching import Item, batches
from exports.run.buckets import shards_of
from exports.run.compare import Action, Bucket, by_shard, compare, delivered_state, leaver_state, next_state
from exports.run.files import (
    PREVIEW_HEADER,
    PREVIEW_JSON_COLUMNS,
    BlockWriter,
    PartIndex,
    batch_rejects_name,
    csv_line,
    part_index_name,
    part_name,
    preview_part_name,
)
from exports.run.messages import ChunkMessage
from exports.run.outcomes import Counts, Outcomes, read_undelivered, write_undelivered
from exports.store.runs import ChunkClaim, StopRequested, Superseded
from shared import compact_json
from shared.secrets import SecretNotFound

if TYPE_CHECKING:
    from exports.context import AppContext

log = logging.getLogger(__name__)


class _Stop(Exception):
    """Nothing more may be sent for this run; the message says why."""


_NOTHING_QUEUED = ImportAccepted(0, None)


def send_chunk(ctx: AppContext, message: ChunkMessage) -> None:
    try:
        run = ctx.runs.get_run(message.runId)
    except RunNotFound:
        log.warning("chunk message for unknown run %s ignored", message.runId)
        return
    chunk = ctx.runs.get_chunk(run.id, message.chunk, message.leaving)
    if not (chunk.state.final or run.final):
        try:
            (_leave if chunk.leaving else _send_remainder if chunk.remainder else _send)(ctx, run, chunk)
        except Superseded:
            log.info("chunk %s of run %s was taken over by another delivery", chunk.index, run.id)
            return
    finish.finish_when_sent(ctx, run.id)


def stop_reason(ctx: AppContext, run: Run, cancelled_only: bool = False, read_run: bool = True) -> str | None:
    """Why nothing more may be sent for this run (run cancelled, export or connection removed), if so.

    `cancelled_only` once a chunk is under way: deleting an export or a connection cancels its
    runs before it deletes anything (services/exports.py, services/connections.py), so the run row
    alone says it, in one Table read instead of three; a chunk still checks all three as it starts.
    Not `read_run` when `run` was read just now (as a piece starts): its cancellation is not read again.
    """
    cancellation = (ctx.runs.get_run(run.id) if read_run else run).cancellation
    if cancellation:
        return cancel.stop_text(cancellation)
    if cancelled_only:
        return None
    if ctx.config.find_export(run.export_id) is None:
        return "the export was deleted, so nothing more is sent for it"
    if ctx.config.find_connection(run.connection_id) is None:
        return "the connection was deleted, so nothing more is sent for it"
    return None


def fail_chunk(ctx: AppContext, run_id: str, index: int, reason: str, leaving: bool = False) -> None:
    ctx.runs.fail_chunk(run_id, index, reason, leaving=leaving)  # the status document says which chunks had it
    log.warning("%s failed: run=%s chunk=%d %s", "leaver piece" if leaving else "chunk", run_id, index, reason)


def _send(ctx: AppContext, run: Run, chunk: Chunk) -> None:
    reason = stop_reason(ctx, run, read_run=False)  # send_chunk read the run just now
    if reason:
        fail_chunk(ctx, run.id, chunk.index, reason)
        return
    bucket = _load_bucket(ctx, run, chunk.bucket)
    shards = shards_of(chunk.bucket, run.buckets)
    state = _StateOfRun(ctx, run, shards)
    claim = ctx.runs.claim_chunk(run.id, chunk.index, uuid.uuid4().hex, len(bucket.items), bucket.duplicates,
                                 read=chunk)
    before = claim.before
    if before.committing:  # every outcome was recorded by an earlier delivery: only the state is left to write
        _commit(ctx, run, chunk.index, bucket, shards, state)
        claim.succeed(before.error)
        return
    comparison = compare(bucket, shards, state.read, state.key, full=run.mode is RunMode.FULL)
    to_send, left_over = comparison.to_send(bucket.items), []
    if remainder.has_remainder_chunk(run):
        to_send, left_over = remainder.cut(to_send)
    if not before.compared:
        if left_over:  # before the comparison is recorded: a compared chunk has its remainder written
            remainder.leave_remainder(ctx, run, chunk.index, len(to_send), left_over)
        claim.record_comparison(*(comparison.count(a) for a in (
            Action.ADD, Action.UPDATE, Action.UNCHANGED, Action.LEAVE, Action.NOT_RESUBSCRIBED)))
        if remainder.has_remainder_chunk(run):
            finish.finish_when_sent(ctx, run.id)  # the last bucket compared starts the remainder chunk
    if run.dry_run:
        _write_preview(ctx, run, chunk.index, bucket, comparison)
        claim.succeed()
        return
    with _failing_the_piece(ctx, run, chunk):
        warning = _send_changes(ctx, run, claim, to_send)
        claim.start_commit(warning)
        _commit(ctx, run, chunk.index, bucket, shards, state)
        claim.succeed(warning)


def _send_remainder(ctx: AppContext, run: Run, chunk: Chunk) -> None:
    """The run's remainder chunk: every chunk's remainder sent in whole imports, then recorded in the state."""
    reason = stop_reason(ctx, run, read_run=False)  # send_chunk read the run just now
    if reason:
        fail_chunk(ctx, run.id, chunk.index, reason)
        return
    items = remainder.gathered(ctx, run)
    claim = ctx.runs.claim_chunk(run.id, chunk.index, uuid.uuid4().hex, 0, 0, read=chunk)  # counted by their chunks
    with _failing_the_piece(ctx, run, chunk):
        warning = claim.before.error
        if not claim.before.committing:
            # Ahead of the chunks waiting in this process: they would have it start once they end, and send alone
            # the run's last imports, slower than the account allows (tests/bench ceiling, at 12x the limits).
            warning = _send_changes(ctx, run, claim, items, first_turn=True)
            claim.start_commit(warning)
        if not remainder.buckets_final(ctx.runs.view(run.id)):
            return  # their commits write the same shards: the last of them queues this chunk's commit
        delivered = remainder.by_shard_delivered(items, read_undelivered(ctx, run.id, chunk.index))
        shards, existing = sorted(delivered), ctx.sync.existing_shards(run.export_id, run.state_id)
        for start in range(0, len(shards), _STATE_THREADS):  # a few shards at a time: memory stays bounded
            group = shards[start:start + _STATE_THREADS]
            state = _StateOfRun(ctx, run, group, existing)
            state.write({shard: delivered_state(state.read(shard), delivered[shard], state.key) for shard in group})
        claim.succeed(warning)


@contextmanager
def _failing_the_piece(ctx: AppContext, run: Run, piece: Chunk):
    """A stop, a refused key or a fatal answer fails the chunk (or leaver piece) with the reason. Nothing of it
    is committed then: the next run sends its contacts again."""
    try:
        yield
    except _Stop as stop:
        fail_chunk(ctx, run.id, piece.index, str(stop), leaving=piece.leaving)
    except KeyRejected as error:
        ctx.accounts.key_rejected(run.api_key_secret_name)  # a rotated key is read afresh by the next delivery
        fail_chunk(ctx, run.id, piece.index, str(error), leaving=piece.leaving)
    except (Fatal, SecretNotFound) as error:
        fail_chunk(ctx, run.id, piece.index, str(error), leaving=piece.leaving)


def _send_changes(ctx: AppContext, run: Run, claim: ChunkClaim, to_send: list[Item],
                  list_action: str | None = "subscribe", first_turn: bool = False) -> str | None:
    """Send the contacts from the checkpoint on and read every import's outcome; a warning for the chunk, if
    any. Raises _Stop when the run must stop. `first_turn`: the chunk takes a sending turn ahead of the chunks
    waiting for one without it (budget.py)."""
    before, index = claim.before, _files_index(claim.index, claim.leaving)
    position, sent, rejected = before.position, before.sent, before.rejected
    client = ctx.accounts.client(run.hostname, run.api_key_secret_name)
    budget = ctx.accounts.budget(run.hostname)
    on_retry = _on_retry(run.id, index, budget)
    if to_send or before.pending:
        check_list(ctx, client, budget, run, on_retry)
    outcomes = Outcomes(ctx, client, budget, run, index, to_send, before.pending,
                        Counts(before.failed, before.unconfirmed), on_retry)

    def stopped() -> _Stop:
        reason = stop_reason(ctx, run, cancelled_only=True) or cancel.CANCELLED
        return _Stop(f"{reason} ({sent} contacts of this chunk were sent before)")

    def checkpoint():
        try:
            claim.checkpoint(position, sent, rejected, outcomes.counts.failed, outcomes.counts.unconfirmed,
                             tuple(outcomes.pending))
        except StopRequested:  # the run was cancelled: this progress is recorded, nothing more is sent
            raise stopped() from None

    if before.stop_requested:
        raise stopped()
    warnings = []
    # Only the imports take a sending turn: the outcomes still to read and the commit leave it to the next chunk.
    with budget.sending(first=first_turn) as waited:
        if waited and stop_reason(ctx, run, cancelled_only=True):  # cancelled while this chunk waited its turn
            raise stopped()
        for batch in batches(to_send, position, run.list_id, run.exclude_automations, list_action):
            # An earlier import's outcome is read as this batch waits for its slot; one checkpoint then records
            # both, right after the send (an outcome is written to the run's files before a checkpoint drops it).
            contacts_after = len(to_send) - position - len(batch)
            accepted, refused = _import(ctx, client, budget, outcomes, batch, run, on_retry, list_action,
                                        imports_to_follow=math.ceil(contacts_after / MAX_CONTACTS_PER_IMPORT))
            if refused:
                _write_rejects(ctx, run.id, index, position, refused)
            if accepted.queued_contacts < len(batch) - len(refused):
                warnings.append(f"ActiveCampaign queued {accepted.queued_contacts} of {len(batch) - len(refused)} "
                                "contacts of a batch (the account's contact limit may be reached)")
            if accepted.queued_contacts:
                outcomes.add(position, len(batch), accepted.batch_id)
            position, sent, rejected = position + len(batch), sent + accepted.queued_contacts, rejected + len(refused)
            checkpoint()
    stop = outcomes.read_all(ctx.backoff.sleep, lambda: stop_reason(ctx, run, cancelled_only=True))
    if stop:
        raise _Stop(f"{stop} ({sent} contacts of this chunk were sent before)")
    checkpoint()
    if outcomes.counts.unconfirmed:
        warnings.append(f"{outcomes.counts.unconfirmed} contacts were sent but ActiveCampaign had not processed "
                        "their import in time: they are sent again by the next run")
    return warnings[0] if warnings else None


# The leaver pass's files (rejects, undelivered contacts) are named by chunk index like the chunks'
# own; its pieces' indexes are shifted past every chunk's so the two never share a name.
_LEAVER_FILES_OFFSET = 100_000


def _files_index(index: int, leaving: bool) -> int:
    return index + _LEAVER_FILES_OFFSET if leaving else index


def _leave(ctx: AppContext, run: Run, piece: Chunk) -> None:
    """One bucket's leavers: unsubscribed from the list, or their membership field cleared; then recorded.

    As a chunk does, it sends from its checkpoint and writes the state only once every import's
    outcome is known. The leavers are worked out from the state, which nothing else changes while
    the pass runs (the export's lock); a delivery that finds the commit begun recomputes them from
    the state it left, and re-applying the commit to what is done already changes nothing.
    """
    reason = stop_reason(ctx, run, read_run=False)  # send_chunk read the run just now
    if reason:
        fail_chunk(ctx, run.id, piece.index, reason, leaving=True)
        return
    bucket = _load_bucket(ctx, run, piece.bucket)
    shards = shards_of(piece.bucket, run.buckets)
    state = _StateOfRun(ctx, run, shards)
    leavers = compare(bucket, shards, state.read, state.key, full=False).leavers
    claim = ctx.runs.claim_chunk(run.id, piece.index, uuid.uuid4().hex, len(leavers), 0, leaving=True, read=piece)
    unsubscribe = run.leavers is Leavers.UNSUBSCRIBE
    with _failing_the_piece(ctx, run, piece):
        if not claim.before.committing:
            items = [Item(LEAVER_BLOB, 0, _leaver_contact(run, email)) for email in leavers]
            warning = _send_changes(ctx, run, claim, items, "unsubscribe" if unsubscribe else None)
            claim.start_commit(warning)
        undelivered = read_undelivered(ctx, run.id, _files_index(piece.index, True))
        done = by_shard(email for email in leavers if email not in undelivered)
        state.write({shard: leaver_state(state.read(shard), emails, unsubscribe) for shard, emails in done.items()})
        claim.succeed(claim.before.error)


LEAVER_BLOB = "(left the segment)"  # where a leaver "comes from" in the rejects report: no blob has them any more


def _leaver_contact(run: Run, email: str) -> dict:
    if run.leavers is Leavers.UNSUBSCRIBE:
        return {"email": email}
    # An empty value clears the field; no list is named, so the contact's subscription is left as it is.
    return {"email": email, "fields": [{"id": int(run.mapping.membership.id), "value": ""}]}


class _StateOfRun:
    """The run's sync state for one chunk: its shards read once, in parallel, and the changed ones written back.

    A chunk's shards hold about as many contacts as the chunk itself, so holding them keeps memory
    bounded by the chunk size; reading and writing them in parallel keeps a small segment, whose
    contacts are spread over every shard, from waiting on hundreds of blob requests in a row.
    """

    def __init__(self, ctx: AppContext, run: Run, shards: Iterable[int], existing: set[int] | None = None):
        """`existing`: the state's shards, when the caller listed them already."""
        self._ctx, self._run = ctx, run
        self.key = ctx.sync.key(run.export_id, run.state_id)
        if existing is None:
            existing = ctx.sync.existing_shards(run.export_id, run.state_id)
        existing = sorted(set(shards) & existing)
        self._shards = {shard: {} for shard in shards}
        self._shards.update(zip(existing, _in_parallel(self._read, existing), strict=True))

    def read(self, shard: int) -> dict[str, str]:
        return self._shards[shard]

    def write(self, changed: dict[int, dict[str, str]]) -> None:
        list(_in_parallel(lambda item: self._ctx.sync.write_shard(self._run.export_id, self._run.state_id, *item),
                          changed.items()))
        self._shards.update(changed)

    def _read(self, shard: int) -> dict[str, str]:
        return self._ctx.sync.read_shard(self._run.export_id, self._run.state_id, shard)


_STATE_THREADS = 8


def _in_parallel(function, values):
    values = list(values)
    if len(values) <= 1:
        return [function(value) for value in values]
    with ThreadPoolExecutor(max_workers=min(_STATE_THREADS, len(values))) as pool:
        return list(pool.map(function, values))


def _commit(ctx: AppContext, run: Run, index: int, bucket: Bucket, shards: range, state: _StateOfRun) -> None:
    """Write each of the chunk's shards: what ActiveCampaign took is recorded, the rest is sent again next run."""
    undelivered = read_undelivered(ctx, run.id, index)
    items = by_shard(bucket.items, lambda item: item.contact["email"])
    present = by_shard(bucket.present)
    changed = {}
    for shard in shards:
        old = state.read(shard)
        new = next_state(old, items.get(shard, ()), present.get(shard, ()), state.key, undelivered,
                         leavers_stay=run.leavers is not Leavers.KEEP)
        if new != old:
            changed[shard] = new
    state.write(changed)


def _write_preview(ctx: AppContext, run: Run, index: int, bucket: Bucket, comparison) -> None:
    """A dry run's part of the preview: each contact that would be sent, with its action, and each leaver."""
    writer = BlockWriter(ctx.runs_container.get_blob_client(preview_part_name(run.id, index)))
    for item, action in zip(bucket.items, comparison.actions, strict=True):
        if action is not Action.UNCHANGED:
            writer.write(csv_line((item.contact["email"], action.value, *_preview_values(item.contact))))
    leaver_action = {Leavers.KEEP: Action.LEAVE.value, Leavers.UNSUBSCRIBE: "unsubscribe", Leavers.FIELD: "unmark"}
    for email in comparison.leavers:
        writer.write(csv_line((email, leaver_action[run.leavers], *("" for _ in PREVIEW_HEADER[2:]))))
    writer.close()


def _preview_values(contact: dict) -> list[str]:
    values = []
    for name in PREVIEW_HEADER[2:]:
        value = contact.get(name)
        if name == "fields" and value:
            value = {str(field["id"]): field["value"] for field in value}
        values.append((json.dumps(value, ensure_ascii=False) if value else "") if name in PREVIEW_JSON_COLUMNS
                      else value or "")
    return values


def _on_retry(run_id: str, index: int, budget: AccountBudget) -> Callable[[Transient, float], None]:
    def on_retry(error: Transient, wait: float) -> None:
        log.info("run=%s chunk=%d %s; retrying in %.1f s", run_id, index, error, wait)
        if error.throttled:
            budget.penalize(wait)  # the account is busier than our budget knew: every worker pauses
    return on_retry


def _import(ctx: AppContext, client: ActiveCampaignClient, budget: AccountBudget, outcomes: Outcomes,
            batch: list[Item], run: Run, on_retry, list_action: str | None,
            imports_to_follow: int) -> tuple[ImportAccepted, list[tuple[Item, str]]]:
    """Send one batch; contacts ActiveCampaign refuses are taken out and the rest sent again. `imports_to_follow`:
    how many batches the delivery sends after this one, at least.

    A slot this sender missed by more than budget.py's LATE_TOLERANCE_SECONDS goes unused, costing the
    account one interval once: the send takes a fresh one instead of arriving late."""
    pending, refused = list(batch), []
    while pending:
        contacts = [item.contact for item in pending]
        kind = budget.bulk_kind(len(contacts))
        reserved = [outcomes.import_slot(len(contacts), imports_to_follow)]  # a retry (after a 429, say) reserves its own

        def call(contacts=contacts, kind=kind, reserved=reserved):
            slot = reserved.pop() if reserved else budget.reserve(kind)
            if budget.too_late(slot):  # the read before it took longer than its share of the wait
                slot = budget.reserve(kind)
            budget.wait_until(slot)
            return client.bulk_import(contacts, run.list_id, run.exclude_automations, list_action)

        try:
            return ctx.backoff.run(call, on_retry=on_retry), refused
        except ImportRejected as error:
            named = {i: reason for i, reason in error.failures.items() if 0 <= i < len(pending)}
            if not named:  # nothing to take out: the batch as a whole is refused, with ActiveCampaign's reason
                return _NOTHING_QUEUED, refused + [(item, str(error)) for item in pending]
            refused += [(pending[i], f"refused by ActiveCampaign: {reason}") for i, reason in sorted(named.items())]
            pending = [item for i, item in enumerate(pending) if i not in named]
    return _NOTHING_QUEUED, refused


def _write_rejects(ctx: AppContext, run_id: str, index: int, position: int, refused: list[tuple[Item, str]]) -> None:
    writer = BlockWriter(ctx.runs_container.get_blob_client(batch_rejects_name(run_id, index, position)))
    for item, reason in refused:
        writer.write(csv_line((item.blob, item.row, item.contact["email"], reason)))
    writer.close()
    write_undelivered(ctx, run_id, index, position, "refused", [item for item, _ in refused])


# Part indexes read by this process, by (run id, segment index). An index never changes once its segment
# is recorded split, so each is read once per process instead of once per chunk; bounded for long-lived hosts.
_PART_INDEXES: dict[tuple[str, int], PartIndex] = {}
_PART_INDEXES_KEPT = 4096


def _part_index(ctx: AppContext, run_id: str, segment: int) -> PartIndex:
    index = _PART_INDEXES.get((run_id, segment))
    if index is None:
        name = part_index_name(run_id, segment)
        try:
            index = PartIndex.from_json(ctx.runs_container.get_blob_client(name).download_blob().readall())
        except ResourceNotFoundError:
            raise Transient(f"part index {name} is not readable yet") from None
        if len(_PART_INDEXES) >= _PART_INDEXES_KEPT:
            _PART_INDEXES.clear()
        _PART_INDEXES[(run_id, segment)] = index
    return index


def _load_bucket(ctx: AppContext, run: Run, bucket: int) -> Bucket:
    """The bucket's contacts from every blob's part, first copy of each email kept, in blob and row order."""
    container = ctx.runs_container
    loaded, seen = Bucket(), set()
    for segment in ctx.runs.segments(run.id):
        if not segment.bucket_counts[bucket]:
            continue
        name = part_name(run.id, segment.index)
        data = bytearray()
        try:
            for offset, length in _part_index(ctx, run.id, segment.index).ranges(bucket):
                data += container.get_blob_client(name).download_blob(offset=offset, length=length).readall()
        except ResourceNotFoundError:
            raise Transient(f"part {name} is not readable yet") from None
        for line in data.splitlines():
            record = compact_json.loads(line)
            if "present" in record:
                loaded.present.add(record["present"])
                continue
            email = record["c"]["email"]
            if email in seen:
                loaded.duplicates += 1
                continue
            seen.add(email)
            loaded.items.append(Item(run.blob_in_segment(segment.blob), record["r"], record["c"]))
    return loaded
