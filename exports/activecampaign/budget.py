"""ActiveCampaign's per-account limits, kept with the shared rate budget (shared/ratelimit.py).

FACTS.md: 5 requests a second per account, 100 multi-contact bulk imports a minute, and 20
single-contact imports a minute on top. Whether bulk imports also count against the 5/s is not
documented, so they are assumed to.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from shared.ratelimit import SharedRateBudget

# ActiveCampaign counts its windows on its own clock and requests reach it with varying delay;
# spacing slots this much wider than the documented limit keeps a paced sender from being
# throttled now and then, at a cost of 3% of the ceiling.
SPACING_MARGIN = 0.03
SINGLE_CONTACT_IMPORTS_PER_MINUTE = 20
# The cells (entity properties) each kind of request takes a slot of.
_CELLS = {"request": ("nextRequestAt",), "bulk": ("nextRequestAt", "nextBulkAt"),
          "single": ("nextRequestAt", "nextBulkAt", "nextSingleAt")}


class AccountBudget:
    def __init__(self, table_client, hostname: str, requests_per_second: float, bulk_per_minute: float,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep):
        self.request_interval = (1.0 + SPACING_MARGIN) / requests_per_second
        self.bulk_interval = (1.0 + SPACING_MARGIN) * 60.0 / bulk_per_minute
        self.single_interval = (1.0 + SPACING_MARGIN) * 60.0 / SINGLE_CONTACT_IMPORTS_PER_MINUTE
        self._clock = clock
        self._shared = SharedRateBudget(table_client, hostname, {
            "nextRequestAt": self.request_interval, "nextBulkAt": self.bulk_interval,
            "nextSingleAt": self.single_interval}, clock=clock, sleep=sleep)

    @staticmethod
    def bulk_kind(contacts: int) -> str:
        """The slot kind a bulk import of `contacts` needs: one of a single contact has a limit of its own."""
        return "single" if contacts == 1 else "bulk"

    def reserve(self, kind: str) -> float:
        """Reserve the next free slot of `kind` (request, bulk, single) for this account; returns its time."""
        return self._shared.reserve(_CELLS[kind])

    def wait_until(self, slot: float) -> None:
        self._shared.wait_until(slot)

    def before_request(self) -> None:
        self.wait_until(self.reserve("request"))

    def before_bulk(self, contacts: int) -> None:
        self.wait_until(self.reserve(self.bulk_kind(contacts)))

    def penalize(self, pause_seconds: float) -> None:
        """ActiveCampaign throttled us: no worker sends for this account before the pause is over."""
        self._shared.penalize(pause_seconds)
