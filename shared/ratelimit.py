"""One rate budget per ActiveCampaign account, shared by every process through Table storage.

Why this mechanism: ActiveCampaign limits the ACCOUNT (5 requests/s, 100 bulk imports/min), and
the Functions host runs the chunk worker on several instances at once, so a limiter in one
process cannot know what the others send. Each account has one entity holding the next free
send time for any request and for a bulk import (the generic cell rate algorithm: every grant
moves the next free time on by one interval). A worker reserves the next free slot with an
ETag-conditional update, sleeps until it, then sends. Compared with a lease that lets one sender
pace for all:
- nothing is held: a worker that dies after reserving wastes one slot (one interval) and no
  lease has to time out before the others go on;
- slots are spaced evenly, so ActiveCampaign's sliding windows never see a burst, whatever the
  number of workers (N workers just queue up one interval apart);
- when ActiveCampaign throttles anyway (another integration on the same account), `penalize`
  moves the next free time past the pause it asked for, so every worker pauses once, together,
  and the schedule then continues at the ceiling by itself.
The cost is one entity read and one conditional write per request: small beside a bulk import.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

# ActiveCampaign counts its windows on its own clock and requests reach it with varying delay;
# spacing slots this much wider than the documented limit keeps a paced sender from being
# throttled now and then, at a cost of 3% of the ceiling.
SPACING_MARGIN = 0.03
_ROW = "budget"
# A bulk import of one contact has a limit of its own (FACTS.md); it also counts as a bulk import.
SINGLE_CONTACT_IMPORTS_PER_MINUTE = 20
_NEXT = {"request": ("nextRequestAt",), "bulk": ("nextRequestAt", "nextBulkAt"),
         "single": ("nextRequestAt", "nextBulkAt", "nextSingleAt")}


class RateBudgetBusy(RuntimeError):
    """The budget entity stayed contended for every try (never expected in practice)."""


class SharedRateBudget:
    def __init__(self, table_client, account: str, requests_per_second: float, bulk_per_minute: float,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep):
        self._table = table_client
        self._key = account.lower()
        self.request_interval = (1.0 + SPACING_MARGIN) / requests_per_second
        self.bulk_interval = (1.0 + SPACING_MARGIN) * 60.0 / bulk_per_minute
        self.single_interval = (1.0 + SPACING_MARGIN) * 60.0 / SINGLE_CONTACT_IMPORTS_PER_MINUTE
        self._clock, self._sleep = clock, sleep

    def before_request(self) -> None:
        self._wait_for(self.reserve("request"))

    def before_bulk(self, contacts: int) -> None:
        self._wait_for(self.reserve(self.bulk_kind(contacts)))

    @staticmethod
    def bulk_kind(contacts: int) -> str:
        """The slot kind a bulk import of `contacts` needs. Bulk imports are assumed to count against
        the 5/s budget too (FACTS.md), and one of a single contact has a limit of its own."""
        return "single" if contacts == 1 else "bulk"

    def wait_until(self, slot: float) -> None:
        """Sleep until a slot reserve() returned. A caller that has work to do before sending (reading
        Table storage, building the request) does it between reserve() and this, inside the wait."""
        self._wait_for(slot)

    def reserve(self, kind: str) -> float:
        """Reserve the next free slot of `kind` (request, bulk, single) for this account; returns its time."""
        intervals = {"nextRequestAt": self.request_interval, "nextBulkAt": self.bulk_interval,
                     "nextSingleAt": self.single_interval}
        for _ in range(100):
            entity, etag = self._read()
            slot = max([self._clock()] + [entity.get(name, 0.0) for name in _NEXT[kind]])
            update = {"PartitionKey": self._key, "RowKey": _ROW, **{name: slot + intervals[name] for name in _NEXT[kind]}}
            try:
                self._table.update_entity(update, etag=etag, match_condition=MatchConditions.IfNotModified)
                return slot
            except ResourceModifiedError:
                continue  # another worker took that slot: take the next one
        raise RateBudgetBusy(f"could not reserve a request slot for {self._key}")

    def penalize(self, pause_seconds: float) -> None:
        """ActiveCampaign throttled us: no worker sends for this account before the pause is over."""
        until = self._clock() + pause_seconds
        for _ in range(100):
            entity, etag = self._read()
            names = _NEXT["single"]
            if all(entity.get(name, 0.0) >= until for name in names):
                return
            update = {"PartitionKey": self._key, "RowKey": _ROW, **{name: max(entity.get(name, 0.0), until) for name in names}}
            try:
                self._table.update_entity(update, etag=etag, match_condition=MatchConditions.IfNotModified)
                return
            except ResourceModifiedError:
                continue

    def _read(self) -> tuple[dict, str]:
        while True:
            try:
                entity = self._table.get_entity(self._key, _ROW)
                return entity, entity.metadata["etag"]
            except ResourceNotFoundError:
                try:
                    self._table.create_entity({"PartitionKey": self._key, "RowKey": _ROW,
                                               **{name: 0.0 for name in _NEXT["single"]}})
                except ResourceExistsError:
                    pass

    def _wait_for(self, slot: float) -> None:
        delay = slot - self._clock()
        if delay > 0:
            self._sleep(delay)
