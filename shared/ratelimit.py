"""A rate budget shared by every process through Table storage: the generic cell rate algorithm.

Why this mechanism: a limit that applies to an account of some remote API (and not to one
process) cannot be kept by a limiter in one process when the Functions host runs the same
function on several instances. Each budget is one entity holding, per named cell, the next free
time; every grant moves the next free time of the cells it uses on by their interval. A worker
reserves the next free slot with an ETag-conditional update, sleeps until it, then sends.
Compared with a lease that lets one sender pace for all:
- nothing is held: a worker that dies after reserving wastes one slot (one interval) and no
  lease has to time out before the others go on;
- slots are spaced evenly, so the remote side's sliding windows never see a burst, whatever the
  number of workers (N workers just queue up one interval apart);
- when the remote side throttles anyway (another client of the same account), `penalize` moves
  every cell past the pause it asked for, so every worker pauses once, together, and the
  schedule then continues at the ceiling by itself.
The cost is one entity read and one conditional write per request.

Spacing adapts to what the remote side says. Each cell's slots are spaced its interval times
(1 + its margin + the budget's stretch): the margin is the cell's fixed floor, the stretch starts
at 0, is raised by every penalize (doubled, at least STRETCH_STEP, at most MAX_STRETCH) and halves
every STRETCH_HALF_LIFE_SECONDS after that. A budget that is never throttled runs at its floors; a
remote side whose clock or counting differs from ours widens the spacing for every worker at once,
since the stretch lives in the shared entity.

"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

_ROW = "budget"
_TRIES = 100
STRETCH_STEP = 0.01
MAX_STRETCH = 0.10
STRETCH_HALF_LIFE_SECONDS = 600.0
_STRETCH, _STRETCHED_AT = "stretch", "stretchedAt"  # entity properties beside the cells


class RateBudgetBusy(RuntimeError):
    """The budget entity stayed contended for every try (never expected in practice)."""


class SharedRateBudget:
    """`intervals` maps each cell (an entity property) to the seconds one grant of it takes at the
    remote side's limit; `margins` to how much wider than that its slots are at least spaced."""

    def __init__(self, table_client, key: str, intervals: Mapping[str, float], margins: Mapping[str, float],
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep):
        self._table = table_client
        self._key = key.lower()
        self.intervals = dict(intervals)
        self.margins = {cell: margins.get(cell, 0.0) for cell in self.intervals}
        self._clock, self._sleep = clock, sleep

    def spacing(self, cell: str, stretch: float = 0.0) -> float:
        """Seconds between two slots of `cell` with the budget stretched by `stretch`."""
        return self.intervals[cell] * (1.0 + self.margins[cell] + stretch)

    def stretch(self, entity: Mapping, now: float) -> float:
        """The budget's stretch now: the last one penalize set, halved every STRETCH_HALF_LIFE_SECONDS since."""
        stretch = entity.get(_STRETCH, 0.0)
        return stretch * 0.5 ** (max(0.0, now - entity.get(_STRETCHED_AT, now)) / STRETCH_HALF_LIFE_SECONDS) if stretch else 0.0

    def reserve(self, cells: tuple[str, ...]) -> float:
        """Reserve the next slot free in every one of `cells`; returns its time."""
        for _ in range(_TRIES):
            entity, etag = self._read()
            now = self._clock()
            slot = max([now] + [entity.get(cell, 0.0) for cell in cells])
            stretch = self.stretch(entity, now)
            update = {"PartitionKey": self._key, "RowKey": _ROW,
                      **{cell: slot + self.spacing(cell, stretch) for cell in cells}}
            try:
                self._table.update_entity(update, etag=etag, match_condition=MatchConditions.IfNotModified)
                return slot
            except ResourceModifiedError:
                continue  # another worker took that slot: take the next one
        raise RateBudgetBusy(f"could not reserve a slot of the budget {self._key}")

    def wait_until(self, slot: float) -> None:
        """Sleep until a slot reserve() returned. A caller that has work to do before sending
        (reading Table storage, building the request) does it between reserve() and this."""
        delay = slot - self._clock()
        if delay > 0:
            self._sleep(delay)

    def penalize(self, pause_seconds: float) -> None:
        """The remote side throttled: no worker uses any cell of this budget before the pause is over, and
        slots are spaced wider from then on (the stretch).

        Several workers throttled by the same burst each call this; the ones that find every cell
        already past their pause leave the stretch as the first of them set it, so one burst widens
        the spacing once."""
        now = self._clock()
        until = now + pause_seconds
        for _ in range(_TRIES):
            entity, etag = self._read()
            if all(entity.get(cell, 0.0) >= until for cell in self.intervals):
                return
            stretch = min(MAX_STRETCH, max(STRETCH_STEP, 2 * self.stretch(entity, now)))
            update = {"PartitionKey": self._key, "RowKey": _ROW, _STRETCH: stretch, _STRETCHED_AT: now,
                      **{cell: max(entity.get(cell, 0.0), until) for cell in self.intervals}}
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
                                               **{cell: 0.0 for cell in self.intervals}})
                except ResourceExistsError:
                    pass
