"""Retries: an account that does not answer at all is given up on after a bounded time."""
from __future__ import annotations

import pytest

from exports.activecampaign.backoff import Backoff
from exports.errors import Transient, Unreachable


class Clock:
    def __init__(self):
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def failing(errors):
    calls = []

    def call():
        calls.append(1)
        raise errors(len(calls))
    return call, calls


def test_no_answer_at_all_stops_within_the_bound_naming_the_error():
    clock = Clock()
    backoff = Backoff(max_attempts=100, base_seconds=1, cap_seconds=8, sleep=clock.sleep, clock=lambda: clock.now,
                      unreachable_seconds=30)
    call, calls = failing(lambda n: Transient("GET /api/3/lists/3: no answer from ActiveCampaign at acct.api-us1.com "
                                              "(ConnectionError)", unreachable=True))
    with pytest.raises(Unreachable, match="acct.api-us1.com") as raised:
        backoff.run(call)
    assert clock.now <= 30 and 1 < len(calls) < 100
    assert "check the connection's hostname" in str(raised.value)


def test_throttling_is_not_silence_and_keeps_its_attempt_budget():
    clock = Clock()
    backoff = Backoff(max_attempts=5, base_seconds=1, cap_seconds=8, sleep=clock.sleep, clock=lambda: clock.now,
                      unreachable_seconds=1)
    call, calls = failing(lambda n: Transient("throttled", retry_after=10, throttled=True))
    with pytest.raises(Transient) as raised:
        backoff.run(call)
    assert not isinstance(raised.value, Unreachable) and len(calls) == 5


def test_an_answer_in_between_starts_the_silence_over():
    clock = Clock()
    backoff = Backoff(max_attempts=7, base_seconds=4, cap_seconds=4, sleep=clock.sleep, clock=lambda: clock.now,
                      unreachable_seconds=10)
    # silent, silent, answered (500), silent, silent, then success: never 10 s of silence in a row
    outcomes = iter([True, True, False, True, True])

    def call():
        silent = next(outcomes, None)
        if silent is None:
            return "ok"
        raise Transient("no answer" if silent else "server error 500", unreachable=silent)

    assert backoff.run(call) == "ok"
