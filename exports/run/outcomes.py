"""What became of a chunk's bulk imports: ActiveCampaign processes them after answering, so
`queued_contacts` is not the outcome. Each import is read back with import/info.

Reads are interleaved with the sending, at most one before each import and each import's first a
second after it was sent, so they use the request budget while the sender waits for its next
bulk slot (the read's slot and the import's are taken in one budget reservation, not one each,
and only when the read leaves the import its slot: budget.py reserve_request_then_bulk);
the ones still open when the chunk's last import is sent are read until known or until
ACTIVECAMPAIGN_OUTCOME_WAIT_SECONDS have passed since the import was sent (at once if no other
chunk of the account is sending in this process, else each a second after it was sent, as while
sending). Every outcome is written to the run's files (the rejects report, and the chunk's undelivered emails, which are
kept out of the sync state) before the checkpoint that drops it from the pending list, so a
redelivered chunk reads again only what it had not recorded.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from exports.activecampaign.budget import AccountBudget
from exports.activecampaign.client import ActiveCampaignClient, ImportOutcome
from exports.errors import MissingInAccount
from exports.model import PendingImport, Run
from exports.run.batching import Item
from exports.run.files import BlockWriter, csv_line, failed_rejects_name, undelivered_name, undelivered_prefix

if TYPE_CHECKING:
    from exports.context import AppContext

log = logging.getLogger(__name__)

# An import is first read a second after it was sent (FACTS.md: its status is false for about that
# long): a read too early is wasted, and reads share the account's 5 requests/s with the bulk
# imports themselves (1.7/s at the bulk limit; with the margins, the request slots between two
# imports hold one read), so more than about one read per import slows the sending. Once the
# chunk's last import is sent, the rest are read at once only if no other chunk of the account is
# sending in this process: reading them early then takes no slot an import needs, and the chunk
# ends sooner. (Read at once whatever the others did, a chunk's last imports cost the next chunks'
# imports a slot at every chunk boundary: tests/bench cli 0.94 of the ceiling, 0.99 with this rule.)
# While an import is not done, each read waits twice as long as the one before, up to the cap. An
# import not read yet that was sent after one found still processing is first read no earlier than
# that one's next read: ActiveCampaign takes its imports in turn, so a younger one is seldom done
# before (tests/bench pipeline: 1.6 reads an import with the account's limits lifted, where every
# chunk ends with a dozen imports in flight).
FIRST_READ_DELAY_SECONDS = 1.0
FIRST_READ_SECONDS = 0.25
MAX_READ_INTERVAL_SECONDS = 15.0
# A slot a sender reserves together with one before it is half as long again after that one as what the
# sender does in between takes (averaged over the process's life, budget.py), so that it seldom misses it:
# the import after a read, as long as the account's answers; the next import after an import, as long as
# the sender's cycle from one import's slot to being ready for the next.
FOLLOWING_SLOT_FACTOR = 1.5
# Imports whose slots a sender reserves in one budget write while the account has room for them (see
# import_slot): a Table read and write for four imports instead of for each. A slot held and not used (the
# delivery stopped) costs nothing then, since nothing else was waiting for it.
IMPORTS_RESERVED_AT_ONCE = 4
# Reads due together once the chunk's last import is sent share one reservation, five at most, in
# request slots the account's next imports leave free (budget.py reserve_reads).
READS_RESERVED_AT_ONCE = 5


@dataclass
class Counts:
    failed: int = 0
    unconfirmed: int = 0


class Outcomes:
    """The pending imports of one chunk delivery and what was learned of them."""

    def __init__(self, ctx: AppContext, client: ActiveCampaignClient, budget: AccountBudget, run: Run, chunk: int,
                 to_send: list[Item], pending: tuple[PendingImport, ...], counts: Counts, on_retry,
                 clock: Callable[[], float] = time.time):
        self._ctx, self._client, self._budget, self._run, self._chunk = ctx, client, budget, run, chunk
        self._to_send, self._on_retry, self._clock = to_send, on_retry, clock
        self.pending = list(pending)
        self.counts = counts
        self._reads: dict[str, tuple[int, float]] = {}  # batch id -> (reads by this delivery, when last read)
        # (when it was sent, when it is read next) of the last import a read found still processing
        self._processing: tuple[float, float] | None = None
        self._next_import_slots: list[float] = []  # reserved with an earlier import's, for the next ones
        self._send_starts_at: float | None = None  # when the last import whose slot was handed out went
        self._room_for_imports = False  # whether the last import reserved was granted less than an interval ahead

    def add(self, position: int, count: int, batch_id: str | None) -> None:
        pending = PendingImport(position, count, batch_id or "", self._clock())
        if batch_id:
            self.pending.append(pending)
        else:  # an acceptance without a batch id cannot be read back
            self._unconfirmed(pending, "ActiveCampaign's answer named no batchId")

    def import_slot(self, contacts: int, imports_to_follow: int = 0) -> float:
        """The next bulk import's slot. If an earlier import's read is due, it is read first, in a request slot
        of the same reservation (the import's slot then comes after the read is expected to be done). If none
        is, this delivery sends `imports_to_follow` more imports after this one (at least), and the account's
        imports had room for this sender's last one (it was granted less than an interval ahead: the sender
        sets the pace, not the account's limit), the next imports' slots are reserved with this one's and kept
        for them (IMPORTS_RESERVED_AT_ONCE in all), one budget write for them all. Not while senders queue for
        the account's slots: a gap left between two of them would be a place for another sender's import
        that a read can take (tests/bench ceiling 0.98)."""
        now = self._clock()
        if self._send_starts_at is not None:
            self._budget.observe_import_cycle(now - self._send_starts_at)
        slot = self._reserve_import(contacts, imports_to_follow, now)
        self._send_starts_at = max(slot, self._clock())  # the sender waits for the slot, then sends
        return slot

    def _reserve_import(self, contacts: int, imports_to_follow: int, now: float) -> float:
        kind = self._budget.bulk_kind(contacts)
        if self._next_import_slots and kind == "bulk":
            return self._next_import_slots.pop(0)
        slot = self._reserve_fresh(contacts, kind, imports_to_follow, now)
        self._room_for_imports = slot - self._clock() < self._budget.bulk_interval
        return slot

    def _reserve_fresh(self, contacts: int, kind: str, imports_to_follow: int, now: float) -> float:
        due = next((p for p in self.pending if now >= self._next_read_at(p, FIRST_READ_DELAY_SECONDS)), None)
        if due is None:
            if not (imports_to_follow and kind == "bulk" and self._room_for_imports):
                return self._budget.reserve(kind)
            slot, *self._next_import_slots = self._budget.reserve_imports(
                min(IMPORTS_RESERVED_AT_ONCE, 1 + imports_to_follow),
                FOLLOWING_SLOT_FACTOR * self._budget.import_cycle_seconds)
            return slot
        read_slot, slot = self._budget.reserve_request_then_bulk(
            contacts, FOLLOWING_SLOT_FACTOR * self._budget.response_seconds)
        if read_slot is None:  # the read would hold the import back: it is read later
            return slot
        self._budget.wait_until(read_slot)
        began = self._clock()
        self._read(due, None if self._budget.too_late_for_request(read_slot) else read_slot)
        self._budget.observe_response(self._clock() - began)
        return slot

    def read_all(self, sleep: Callable[[float], None], stop: Callable[[], str | None]) -> str | None:
        """Read until every import is known or given up on; the stop reason if the run must stop first.

        The reads due together take their slots in one reservation (at most READS_RESERVED_AT_ONCE); once
        one would be too late for its slot, the rest take a fresh reservation."""
        while self.pending:
            now = self._clock()
            first_delay = FIRST_READ_DELAY_SECONDS if self._budget.others_sending() else 0.0
            due = [p for p in self.pending if now >= self._next_read_at(p, first_delay)][:READS_RESERVED_AT_ONCE]
            if not due:
                reason = stop()
                if reason:
                    return reason
                wait = min(self._next_read_at(p, first_delay) for p in self.pending) - self._clock()
                sleep(max(0.0, min(wait, MAX_READ_INTERVAL_SECONDS)))
                continue
            for pending, slot in zip(due, self._budget.reserve_reads(len(due)), strict=True):
                if self._budget.too_late_for_request(slot) or not self._read(pending, slot):
                    break  # too late, or still processing: the younger ones are not read now (above)
        return None

    def _next_read_at(self, pending: PendingImport, first_delay: float) -> float:
        if pending.batch_id not in self._reads:
            first = pending.sent_at + first_delay
            if self._processing and pending.sent_at > self._processing[0]:
                first = max(first, self._processing[1])
            return min(first, pending.sent_at + self._wait_seconds())
        reads, last = self._reads[pending.batch_id]
        due = last + min(FIRST_READ_SECONDS * 2 ** (reads - 1), MAX_READ_INTERVAL_SECONDS)
        return min(due, pending.sent_at + self._wait_seconds())  # the last read comes when the wait is over

    def _wait_seconds(self) -> float:
        return self._ctx.settings.outcome_wait_seconds

    def _read(self, pending: PendingImport, slot: float | None = None) -> bool:
        """One read of the import's outcome, in `slot` if one was reserved for it (a retry reserves its own);
        whether the import is settled (its outcome recorded, or given up on)."""
        self._reads[pending.batch_id] = (self._reads.get(pending.batch_id, (0, 0.0))[0] + 1, self._clock())
        reserved = [] if slot is None else [slot]

        def call():
            if reserved:
                self._budget.wait_until(reserved.pop())
            else:
                self._budget.before_request()
            return self._client.import_info(pending.batch_id)

        try:
            outcome = self._ctx.backoff.run(call, on_retry=self._on_retry)
        except MissingInAccount:
            self._unconfirmed(pending, f"ActiveCampaign no longer knows import batch {pending.batch_id}")
            return True
        if outcome.done:
            self._record(pending, outcome)
        elif self._clock() - pending.sent_at >= self._wait_seconds():
            self._unconfirmed(pending, f"ActiveCampaign had not processed import batch {pending.batch_id} after "
                                       f"{self._wait_seconds():.0f} s (status {outcome.status or 'not started'})")
        else:
            self._processing = (pending.sent_at, self._next_read_at(pending, 0.0))
            return False
        return True

    def _record(self, pending: PendingImport, outcome: ImportOutcome) -> None:
        batch = self._to_send[pending.position:pending.position + pending.count]
        if outcome.status == "completed":
            failed = [item for item in batch if item.contact["email"] in outcome.failed]
            reason = (f"ActiveCampaign reported the contact failed when it processed import batch {pending.batch_id} "
                      "(import/info gives no reason: see the import's report in ActiveCampaign)")
        else:
            failed = batch
            reason = (f"ActiveCampaign's import batch {pending.batch_id} ended '{outcome.status}': none of its "
                      "contacts is known to be imported")
        if failed:
            container = self._ctx.runs_container
            rejects = BlockWriter(container.get_blob_client(failed_rejects_name(self._run.id, self._chunk, pending.position)))
            for item in failed:
                rejects.write(csv_line((item.blob, item.row, item.contact["email"], reason)))
            rejects.close()
            write_undelivered(self._ctx, self._run.id, self._chunk, pending.position, "failed", failed)
            self.counts.failed += len(failed)
            log.warning("run=%s chunk=%d: %d contacts of import batch %s failed (status %s)", self._run.id, self._chunk,
                        len(failed), pending.batch_id, outcome.status)
        self.pending.remove(pending)

    def _unconfirmed(self, pending: PendingImport, why: str) -> None:
        batch = self._to_send[pending.position:pending.position + pending.count]
        write_undelivered(self._ctx, self._run.id, self._chunk, pending.position, "unconfirmed", batch)
        self.counts.unconfirmed += len(batch)
        log.warning("run=%s chunk=%d: %s; its %d contacts are sent again by the next run", self._run.id, self._chunk,
                    why, len(batch))
        if pending in self.pending:
            self.pending.remove(pending)


def write_undelivered(ctx: AppContext, run_id: str, chunk: int, position: int, why: str, items: list[Item]) -> None:
    """Emails of a batch ActiveCampaign did not take, so the chunk's commit keeps them out of the sync state."""
    writer = BlockWriter(ctx.runs_container.get_blob_client(undelivered_name(run_id, chunk, position, why)))
    for item in items:
        writer.write(item.contact["email"].encode("utf-8") + b"\n")
    writer.close()


def read_undelivered(ctx: AppContext, run_id: str, chunk: int) -> set[str]:
    container = ctx.runs_container
    emails = set()
    for name in container.list_blob_names(name_starts_with=undelivered_prefix(run_id, chunk)):
        emails.update(container.get_blob_client(name).download_blob().readall().decode("utf-8").splitlines())
    return emails
