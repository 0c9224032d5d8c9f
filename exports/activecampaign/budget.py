"""ActiveCampaign's per-account limits, kept with the shared rate budget (shared/ratelimit.py).

FACTS.md: 5 requests a second per account, 100 multi-contact bulk imports a minute, and 20
single-contact imports a minute on top. Whether bulk imports also count against the 5/s is not
documented, so they are assumed to.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import pairwise

from shared.ratelimit import SharedRateBudget

_CLOSE = 1e-6  # an interval's float rounding: `after` of exactly one interval stays one

# ActiveCampaign counts its windows on its own clock and requests reach it with varying delay, so
# slots are spaced wider than the documented limits (and wider still, for a while, after it
# throttled: shared/ratelimit.py's stretch).
# - Imports: a minute-long window. An import that reaches it up to BULK_MARGIN x 60 s (0.3 s) later
#   than its slot, while the one a window later is on time, still leaves that window within the
#   limit; a sender later than LATE_TOLERANCE (the outcome read before it took longer than its
#   share, say) takes a fresh slot instead. The imports bound a run's speed, so their margin is
#   kept small: 0.5% of the ceiling.
# - Requests: a one-second window, where a delay of a few milliseconds is a large part of the
#   0.2 s interval; at the bulk limit a run uses about two thirds of it, so a wide margin costs nothing.
#   A request up to REQUEST_MARGIN x 1 s later than its slot leaves the window within the limit in
#   the same way; an outcome read whose slot was reserved with an import or with other reads
#   (exports/run/outcomes.py) and is passed by more than half that takes a fresh slot instead.
BULK_MARGIN = 0.005
REQUEST_MARGIN = 0.03
LATE_TOLERANCE_SECONDS = BULK_MARGIN * 60.0 / 2
REQUEST_LATE_TOLERANCE_SECONDS = REQUEST_MARGIN * 1.0 / 2
SINGLE_CONTACT_IMPORTS_PER_MINUTE = 20
# How long an answer of the account takes, as this process has seen (averaged), to begin with; it
# is what a sender leaves between an outcome read's slot and the slot of the import after it.
FIRST_RESPONSE_SECONDS = 0.05
# How long a sender takes from an import's slot until it is ready for its next one (the import's answer,
# then the chunk's checkpoint), to begin with; it is what a sender leaves between two import slots it
# reserves together. A slower cycle than this many times the average is not taken in whole: it is a
# retry's wait (after a 429, say), not the sender's pace.
FIRST_IMPORT_CYCLE_SECONDS = 0.1
IMPORT_CYCLE_OUTLIER = 4.0
# Chunks of one account that send imports at once in a process. host.json lets an instance work on twice
# as many chunk messages: the others read their bucket and compare, or read their last outcomes and
# commit, so when the senders' chunks end (together: their buckets are the same size and they share
# the budget evenly) prepared chunks take over at once instead of the account's imports pausing for
# a chunk's end and the next one's start (tests/bench cli: 0.85-0.88 of the ceiling before, 0.94 after).
SENDERS_PER_PROCESS = 3
# The cells each kind of request takes a slot of.
_CELLS = {"request": ("requests",), "bulk": ("requests", "imports"), "single": ("requests", "imports", "singleImports")}


class AccountBudget:
    def __init__(self, table_client, hostname: str, requests_per_second: float, bulk_per_minute: float,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep):
        self._clock = clock
        self._shared = SharedRateBudget(
            table_client, hostname,
            {"requests": 1.0 / requests_per_second, "imports": 60.0 / bulk_per_minute,
             "singleImports": 60.0 / SINGLE_CONTACT_IMPORTS_PER_MINUTE},
            {"requests": REQUEST_MARGIN, "imports": BULK_MARGIN, "singleImports": BULK_MARGIN},
            clock=clock, sleep=sleep)
        # Kept for the process's life: every chunk learns from them.
        self.response_seconds = FIRST_RESPONSE_SECONDS
        self.import_cycle_seconds = FIRST_IMPORT_CYCLE_SECONDS
        self._import_cycle_observed = False
        # Spacing while never throttled (the budget's floor).
        self.request_interval = self._shared.spacing("requests")
        self.bulk_interval = self._shared.spacing("imports")
        self.single_interval = self._shared.spacing("singleImports")
        self._turns = threading.Condition()
        self._sending = 0  # turns held
        self._waiting_first = 0  # chunks waiting for a turn ahead of the others

    @contextmanager
    def sending(self, first: bool = False) -> Iterator[bool]:
        """One of SENDERS_PER_PROCESS turns to send imports, for as long as the block runs; yields whether it had to
        wait for one (the run may have been cancelled meanwhile). `first`: ahead of every chunk waiting without it."""
        with self._turns:
            waited = not self._may_take_turn(first)
            if waited:
                self._waiting_first += first
                try:
                    self._turns.wait_for(lambda: self._may_take_turn(first))
                finally:
                    self._waiting_first -= first
            self._sending += 1
        try:
            yield waited
        finally:
            with self._turns:
                self._sending -= 1
                self._turns.notify_all()

    def _may_take_turn(self, first: bool) -> bool:
        return self._sending < SENDERS_PER_PROCESS and (first or not self._waiting_first)

    def others_sending(self) -> bool:
        """Whether any chunk of the account holds a sending turn in this process (the caller holds none)."""
        with self._turns:
            return self._sending > 0

    @staticmethod
    def bulk_kind(contacts: int) -> str:
        """The slot kind a bulk import of `contacts` needs: one of a single contact has a limit of its own."""
        return "single" if contacts == 1 else "bulk"

    def reserve(self, kind: str) -> float:
        """Reserve the next free slot of `kind` (request, bulk, single) for this account; returns its time."""
        return self._shared.reserve(_CELLS[kind])

    def wait_until(self, slot: float) -> None:
        self._shared.wait_until(slot)

    def reserve_request_then_bulk(self, contacts: int, after: float) -> tuple[float | None, float]:
        """A request slot and, in the same reservation, the slot of a bulk import of `contacts` at least `after`
        seconds later: the sender reads an earlier import's outcome while it waits for its import's slot. The
        request slot is None when the read would put the import later than its slot without it (few senders,
        an import slot free now): the read waits for a sender with time to spare, or the chunk's end."""
        read, bulk = self._shared.reserve_series(
            [(_CELLS["request"], 0.0), (_CELLS[self.bulk_kind(contacts)], after)], first_if_free=True)
        return read, bulk

    def reserve_imports(self, count: int, after: float) -> list[float]:
        """`count` slots of multi-contact bulk imports in one reservation, the k-th at least k x `after` seconds
        after the first: a sender with several imports to send one after another takes the next ones' slots
        with this one's, one budget write for them all.

        Each slot's distance from the first is rounded up to a whole number of intervals: a gap shorter than one
        between two of them would fit no other sender's import, and the account's imports would slip by it
        (tests/bench ceiling: 0.98 instead of 0.99, every chunk's first two imports leaving such a gap). The
        distance is rounded, not each step: with `after` 1.2 intervals, the slots are 2, 3 and 4 intervals
        after the first, not 2, 4 and 6 (a sender whose cycle is just over two thirds of an interval, at
        scaled-up limits, sent at half the account's rate whenever it set the pace alone)."""
        whole = [math.ceil(k * after / self.bulk_interval - _CLOSE) for k in range(count)]  # 0 for the first
        return self._shared.reserve_series(
            [(_CELLS["bulk"], (this - before) * self.bulk_interval) for before, this in pairwise([0, *whole])])

    def observe_response(self, seconds: float) -> None:
        """A request to the account took `seconds`: the average moves a fifth of the way to it."""
        self.response_seconds += 0.2 * (seconds - self.response_seconds)

    def observe_import_cycle(self, seconds: float) -> None:
        """A sender was ready for its next import `seconds` after the slot of its last one: the average moves a
        fifth of the way to it (to IMPORT_CYCLE_OUTLIER times the average at most). The first one replaces the
        starting guess, as a first round trip does TCP's (RFC 6298): moving from the guess a fifth at a time,
        a process's first dozen imports left their cycle twice over (tests/bench ceiling, at scaled-up limits:
        a lone sender at a third of the account's rate at the start of a run)."""
        seconds = min(seconds, IMPORT_CYCLE_OUTLIER * self.import_cycle_seconds)
        if self._import_cycle_observed:
            self.import_cycle_seconds += 0.2 * (seconds - self.import_cycle_seconds)
        else:
            self.import_cycle_seconds, self._import_cycle_observed = seconds, True

    def too_late(self, slot: float) -> bool:
        """Whether a bulk import for `slot` now would come so late that the imports a minute later could overrun
        the account's minute window (see BULK_MARGIN): the sender then takes a fresh slot."""
        return self._clock() - slot > LATE_TOLERANCE_SECONDS

    def reserve_reads(self, count: int) -> list[float]:
        """`count` request slots in one reservation, for outcome reads one after the other (a chunk's last
        imports). While the account's imports are being sent, the reads keep clear of the request slots its
        next imports will need at their pace: taken one after another, the reads of chunks ending together
        held every request slot for a while, and the imports of the other senders slipped (tests/bench
        ceiling: gaps of 0.1-0.2 s at 12x the limits, where a read fits between two imports)."""
        return self._shared.reserve_series([(_CELLS["request"], 0.0)] * count, keep_pace_of="imports")

    def too_late_for_request(self, slot: float) -> bool:
        """Whether a request for `slot` now would come too late for the account's one-second window (see
        REQUEST_MARGIN): the sender then takes a fresh slot."""
        return self._clock() - slot > REQUEST_LATE_TOLERANCE_SECONDS

    def before_request(self) -> None:
        self.wait_until(self.reserve("request"))

    def before_bulk(self, contacts: int) -> None:
        self.wait_until(self.reserve(self.bulk_kind(contacts)))

    def penalize(self, pause_seconds: float) -> None:
        """ActiveCampaign throttled us: no worker sends for this account before the pause is over."""
        self._shared.penalize(pause_seconds)
