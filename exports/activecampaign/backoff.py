"""Retries of ActiveCampaign calls that failed for a passing reason (throttling, server errors, no answer).

Throttling and server errors are retried within the attempt budget; an account that does not
answer at all is given up on after `unreachable_seconds`, so a wrong hostname or a network outage
fails the chunk in minutes with the host's name instead of after every redelivery.
"""
from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from exports.errors import Transient, Unreachable


@dataclass
class Backoff:
    """Bounded exponential backoff with full jitter that never waits less than Retry-After asks."""

    max_attempts: int = 8
    base_seconds: float = 1.0
    cap_seconds: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)
    unreachable_seconds: float = 120.0
    clock: Callable[[], float] = time.monotonic

    def delay(self, attempt: int, error: Transient) -> float:
        ceiling = min(self.cap_seconds, self.base_seconds * 2 ** attempt)
        jittered = self.rng.uniform(ceiling / 2, ceiling)
        return max(jittered, error.retry_after or 0.0)

    def run(self, call: Callable[[], object], on_retry: Callable[[Transient, float], None] | None = None):
        silent_since = None  # when the current run of "no answer at all" began
        for attempt in range(self.max_attempts):
            try:
                return call()
            except Transient as error:
                wait = self.delay(attempt, error)
                if error.unreachable:
                    silent_since = self.clock() if silent_since is None else silent_since
                    silent = self.clock() - silent_since
                    if silent + wait > self.unreachable_seconds:
                        raise Unreachable(f"{error}; no answer for {silent:.0f} s, so this stops here: check the "
                                          "connection's hostname and the network") from None
                else:
                    silent_since = None
                if attempt + 1 >= self.max_attempts:
                    raise
                if on_retry:
                    on_retry(error, wait)
                self.sleep(wait)
        raise AssertionError("unreachable")
