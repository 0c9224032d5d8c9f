"""A rate budget shared by every process through Table storage: a schedule of reserved slots per cell.

Why this mechanism: a limit that applies to an account of some remote API (and not to one
process) cannot be kept by a limiter in one process when the Functions host runs the same
function on several instances. Each budget is one entity holding, per named cell, the times
already reserved from now on; a grant takes the earliest time that is at least the cell's spacing
away from every reserved time of each cell it uses. A worker reserves its slot with an
ETag-conditional update, sleeps until it, then sends. Compared with a lease that lets one sender
pace for all:
- nothing is held: a worker that dies after reserving wastes one slot (one interval) and no
  lease has to time out before the others go on;
- slots are spaced evenly, so the remote side's sliding windows never see a burst, whatever the
  number of workers (N workers just queue up one interval apart);
- when the remote side throttles anyway (another client of the same account), `penalize` puts
  every new slot past the pause it asked for, so every worker pauses once, together, and the
  schedule then continues at the ceiling by itself.
The cost is one entity read and one conditional write per reservation, which may hold the slots
of several requests a sender makes one after the other (reserve_series); while no other worker
writes between two reservations of a process, the write alone (it writes from the entity as it
last wrote it, and the ETag condition tells it when that is no longer so).

Why a schedule and not one "next free time" per cell: a request that uses two cells (a bulk
import also counts as a request) may be reserved far ahead on the slower one. With a single next
free time, that reservation would hold back every later request of the faster cell until then,
and those requests would in turn push the next import further out: the slower cell's schedule
then slips. With the reserved times kept, a request takes a free place before an import that is
reserved further ahead, spaced from it as from any other.

Spacing adapts to what the remote side says. Each cell's slots are spaced its interval times
(1 + its margin + the budget's stretch): the margin is the cell's fixed floor, the stretch starts
at 0, is raised by every penalize (doubled, at least STRETCH_STEP, at most MAX_STRETCH) and halves
every STRETCH_HALF_LIFE_SECONDS after that. A budget that is never throttled runs at its floors; a
remote side whose clock or counting differs from ours widens the spacing for every worker at once,
since the stretch lives in the shared entity.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

_ROW = "budget"
_TRIES = 100
STRETCH_STEP = 0.01
MAX_STRETCH = 0.10
STRETCH_HALF_LIFE_SECONDS = 600.0
# Entity properties beside the cells' schedules (which are named "<cell>Slots").
_STRETCH, _STRETCHED_AT, _NOT_BEFORE = "stretch", "stretchedAt", "notBefore"
_CLOSE = 1e-6  # slots are written as text with microseconds


class RateBudgetBusy(RuntimeError):
    """The budget entity stayed contended for every try (never expected in practice)."""


class SharedRateBudget:
    """`intervals` maps each cell to the seconds one grant of it takes at the remote side's limit;
    `margins` to how much wider than that its slots are at least spaced."""

    def __init__(self, table_client, key: str, intervals: Mapping[str, float], margins: Mapping[str, float],
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep):
        self._table = table_client
        self._key = key.lower()
        self.intervals = dict(intervals)
        self.margins = {cell: margins.get(cell, 0.0) for cell in self.intervals}
        self._clock, self._sleep = clock, sleep
        # The threads of one process take turns instead of racing each other for the entity's ETag.
        self._turn = threading.Lock()
        # The entity as this process last wrote it, with the ETag of that write. While the entity is mostly still
        # so when this process reserves next (one sender, or few), a reservation writes from it without reading
        # first: one Table request instead of two, and a failed write then a read when another worker wrote in
        # between. Among many busy workers, that would cost more than it saves, so it reads first again.
        self._last_written: tuple[dict, str] | None = None
        self._unchanged_odds = 0.0  # how often it was unchanged (averaged over the last few reservations)

    def spacing(self, cell: str, stretch: float = 0.0) -> float:
        """Seconds between two slots of `cell` with the budget stretched by `stretch`."""
        return self.intervals[cell] * (1.0 + self.margins[cell] + stretch)

    def stretch(self, entity: Mapping, now: float) -> float:
        """The budget's stretch now: the last one penalize set, halved every STRETCH_HALF_LIFE_SECONDS since."""
        stretch = entity.get(_STRETCH, 0.0)
        return stretch * 0.5 ** (max(0.0, now - entity.get(_STRETCHED_AT, now)) / STRETCH_HALF_LIFE_SECONDS) if stretch else 0.0

    def reserve(self, cells: tuple[str, ...]) -> float:
        """Reserve the earliest slot free in every one of `cells`; returns its time."""
        return self.reserve_series([(cells, 0.0)])[0]

    def reserve_series(self, steps: Sequence[tuple[tuple[str, ...], float]], keep_pace_of: str | None = None,
                       first_if_free: bool = False) -> list[float | None]:
        """Reserve, in one write, the slots of requests a sender makes one after the other (an earlier import's
        outcome read then a bulk import, or several reads): each step's slot is the earliest free in every
        one of its cells, at least its number of seconds after the step before (the first: from now).

        With `keep_pace_of`, a cell in use (a slot of it reserved within its spacing of now, or later), the
        steps also keep clear of the slots it would take next at its pace, as if they were reserved: the
        requests that cell's grants make too then find their places free, and the cell keeps its pace.

        With `first_if_free`, the first step is reserved only if the others get the slots they would get
        without it; otherwise it is left out, and its slot is None."""
        with self._turn:
            for attempt in range(_TRIES):
                optimistic = attempt == 0 and self._last_written is not None and self._unchanged_odds > 0.5
                if optimistic:
                    entity, etag = self._last_written
                else:
                    entity, etag = self._read()
                    if attempt == 0 and self._last_written is not None:
                        self._observe_unchanged(etag == self._last_written[1])
                self._last_written = None
                now = self._clock()
                used = list(dict.fromkeys(cell for cells, _ in steps for cell in cells))
                spacing = {cell: self.spacing(cell, self.stretch(entity, now)) for cell in used}
                # Times before now minus the spacing cannot constrain a slot from now on: dropped.
                taken = {cell: [t for t in _slots(entity, cell) if t > now - spacing[cell]] for cell in used}
                paced = self._next_grants(entity, keep_pace_of, now, len(steps) + 1) if keep_pace_of else []
                begin = max(now, entity.get(_NOT_BEFORE, 0.0))
                slots, with_all = _place(steps, begin, taken, paced, spacing)
                if first_if_free:
                    rest, without_first = _place(steps[1:], begin, taken, paced, spacing)
                    if rest[-1] < slots[-1] - _CLOSE:
                        slots, with_all = [None, *rest], without_first
                taken = with_all
                update = {"PartitionKey": self._key, "RowKey": _ROW,
                          **{_property(cell): _text(sorted(taken[cell])) for cell in used}}
                try:
                    written = self._table.update_entity(update, etag=etag, match_condition=MatchConditions.IfNotModified)
                except ResourceModifiedError:
                    if optimistic:
                        self._observe_unchanged(False)
                    continue  # another worker reserved meanwhile: look again
                if optimistic:
                    self._observe_unchanged(True)
                self._last_written = ({**entity, **update}, written["etag"])
                return slots
        raise RateBudgetBusy(f"could not reserve a slot of the budget {self._key}")

    def _next_grants(self, entity: Mapping, cell: str, now: float, count: int) -> list[float]:
        """The next `count` slots `cell` would take at its pace after its last one, if it is in use."""
        pace = self.spacing(cell, self.stretch(entity, now))
        last = max((t for t in _slots(entity, cell) if t > now - pace), default=None)
        return [] if last is None else [last + pace * n for n in range(1, count + 1)]

    def _observe_unchanged(self, unchanged: bool) -> None:
        self._unchanged_odds += 0.2 * (float(unchanged) - self._unchanged_odds)

    def wait_until(self, slot: float) -> None:
        """Sleep until a slot reserve() returned. A caller that has work to do before sending
        (reading Table storage, building the request) does it between reserve() and this."""
        delay = slot - self._clock()
        if delay > 0:
            self._sleep(delay)

    def penalize(self, pause_seconds: float) -> None:
        """The remote side throttled: no worker gets a slot of this budget before the pause is over, and
        slots are spaced wider from then on (the stretch).

        Several workers throttled by the same burst each call this; the ones that find the budget
        already paused past their own pause leave the stretch as the first of them set it, so one
        burst widens the spacing once."""
        now = self._clock()
        until = now + pause_seconds
        self._last_written = None  # this write changes the entity too
        for _ in range(_TRIES):
            entity, etag = self._read()
            if entity.get(_NOT_BEFORE, 0.0) >= until:
                return
            stretch = min(MAX_STRETCH, max(STRETCH_STEP, 2 * self.stretch(entity, now)))
            update = {"PartitionKey": self._key, "RowKey": _ROW, _STRETCH: stretch, _STRETCHED_AT: now,
                      _NOT_BEFORE: until}
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
                    self._table.create_entity({"PartitionKey": self._key, "RowKey": _ROW, _NOT_BEFORE: 0.0})
                except ResourceExistsError:
                    pass


def _place(steps: Sequence[tuple[tuple[str, ...], float]], start: float, taken: Mapping[str, list[float]],
           paced: list[float], spacing: Mapping[str, float]) -> tuple[list[float], dict[str, list[float]]]:
    """The steps' slots one after the other from `start`, and the cells' taken times with them."""
    taken = {cell: list(times) for cell, times in taken.items()}
    slots = []
    for cells, after in steps:
        start = _earliest(start + (after if slots else 0.0), {c: taken[c] + paced for c in cells}, spacing)
        slots.append(start)
        for cell in cells:
            taken[cell].append(start)
    return slots, taken


def _earliest(start: float, taken: Mapping[str, list[float]], spacing: Mapping[str, float]) -> float:
    """The earliest time from `start` at least each cell's spacing away from every time taken in it.

    The answer is `start` or one spacing after a taken time (the end of a gap); the latest of those
    is always free, so there is an answer."""
    candidates = sorted({start, *(t + spacing[cell] for cell, times in taken.items() for t in times
                                  if t + spacing[cell] > start)})
    for candidate in candidates:
        if all(abs(candidate - t) >= spacing[cell] - _CLOSE for cell, times in taken.items() for t in times):
            return candidate
    raise AssertionError("unreachable: the last candidate is free")


def _property(cell: str) -> str:
    return f"{cell}Slots"


def _slots(entity: Mapping, cell: str) -> list[float]:
    text = entity.get(_property(cell)) or ""
    return [float(t) for t in text.split(",") if t]


def _text(slots: list[float]) -> str:
    return ",".join(f"{t:.6f}" for t in slots)
