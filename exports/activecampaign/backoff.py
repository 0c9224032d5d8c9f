"""Retries of ActiveCampaign calls that failed for a passing reason (throttling, server errors, no answer)."""
from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from exports.errors import Transient


@dataclass
class Backoff:
    """Bounded exponential backoff with full jitter that never waits less than Retry-After asks."""

    max_attempts: int = 8
    base_seconds: float = 1.0
    cap_seconds: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int, error: Transient) -> float:
        ceiling = min(self.cap_seconds, self.base_seconds * 2 ** attempt)
        jittered = self.rng.uniform(ceiling / 2, ceiling)
        return max(jittered, error.retry_after or 0.0)

    def run(self, call: Callable[[], object], on_retry: Callable[[Transient, float], None] | None = None):
        for attempt in range(self.max_attempts):
            try:
                return call()
            except Transient as error:
                if attempt + 1 >= self.max_attempts:
                    raise
                wait = self.delay(attempt, error)
                if on_retry:
                    on_retry(error, wait)
                self.sleep(wait)
        raise AssertionError("unreachable")
