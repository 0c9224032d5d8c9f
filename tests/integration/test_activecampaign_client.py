"""The ActiveCampaign client against the simulator: each documented answer becomes the right error."""
from __future__ import annotations

import random

import pytest

from exports.activecampaign.backoff import Backoff
from exports.activecampaign.client import MAX_IMPORT_BYTES, ActiveCampaignClient, contact_cost, import_payload
from exports.errors import ImportRejected, KeyRejected, MissingInAccount, Transient
from tests.support.activecampaign import ActiveCampaignSimulator

KEY = "client-test-key-123"


@pytest.fixture
def sim():
    with ActiveCampaignSimulator(api_keys={KEY}, lists={"3": "News"}, requests_per_second=100,
                                 bulk_per_minute=1000) as simulator:
        yield simulator


def client(sim, key=KEY):
    return ActiveCampaignClient(sim.base_url, key, timeout=5)


def test_users_me_and_lists(sim):
    assert client(sim).users_me()["id"] == "1"
    assert client(sim).get_list("3")["name"] == "News"
    with pytest.raises(MissingInAccount, match="list 7 does not exist in this ActiveCampaign account"):
        client(sim).get_list("7")


def test_a_wrong_key_is_reported_without_the_key(sim):
    with pytest.raises(KeyRejected) as raised:
        client(sim, "wrong-key-abcdef").users_me()
    assert "wrong-key-abcdef" not in str(raised.value)


def test_bulk_import_subscribes_to_the_list(sim):
    result = client(sim).bulk_import([{"email": "a@example.com", "first_name": "A"}], "3")
    assert result.queued_contacts == 1 and result.batch_id
    assert sim.subscribed("3") == {"a@example.com"}


def test_a_refused_batch_names_the_refused_contacts(sim):
    sim.reject_emails = {"b@example.com"}
    with pytest.raises(ImportRejected) as raised:
        client(sim).bulk_import([{"email": "a@example.com"}, {"email": "b@example.com"}], "3")
    assert raised.value.failures == {1: "Field 'email' incorrect format"}
    assert sim.subscribed("3") == set()


def test_the_bulk_rate_limit_400_is_throttling_not_a_refusal(sim):
    sim.configure(bulk_per_minute=1)
    client(sim).bulk_import([{"email": "a@example.com"}], "3")
    with pytest.raises(Transient) as raised:
        client(sim).bulk_import([{"email": "b@example.com"}], "3")
    assert raised.value.throttled and "import rate limit" in str(raised.value)


@pytest.mark.parametrize("status", [429, 503])
def test_throttling_carries_retry_after_when_given(sim, status):
    sim.configure(requests_per_second=1, throttle_status=status)
    c = client(sim)
    c.users_me()
    with pytest.raises(Transient) as raised:
        c.users_me()
    assert raised.value.throttled
    assert (raised.value.retry_after or 0) >= (1 if status == 429 else 0)


def test_server_errors_and_dropped_connections_are_transient(sim):
    sim.fail_next(1, 502)
    with pytest.raises(Transient, match="server error 502"):
        client(sim).users_me()
    sim.configure(drop_rate=1.0)
    with pytest.raises(Transient, match="no answer"):
        client(sim).users_me()


def test_payload_sizes_are_exact():
    contacts = [{"email": f"user{i}@example.com", "first_name": "Zoë"} for i in range(3)]
    expected = len(import_payload(contacts, "3"))
    computed = len(import_payload([], "3")) + sum(contact_cost(c, "3") for c in contacts) - 1
    assert computed == expected
    with pytest.raises(ValueError):
        ActiveCampaignClient("http://127.0.0.1:9", KEY).bulk_import([{"email": "x" * MAX_IMPORT_BYTES}], "3")


def test_backoff_waits_at_least_retry_after_and_stops_after_its_attempts():
    waits = []
    backoff = Backoff(max_attempts=4, base_seconds=1, cap_seconds=8, sleep=waits.append, rng=random.Random(1))
    calls = []

    def always_throttled():
        calls.append(1)
        raise Transient("throttled", retry_after=5)

    with pytest.raises(Transient):
        backoff.run(always_throttled)
    assert len(calls) == 4 and len(waits) == 3
    assert all(wait >= 5 for wait in waits)
    assert all(wait <= 8 for wait in waits)


def test_backoff_grows_with_jitter_and_is_capped():
    backoff = Backoff(base_seconds=1, cap_seconds=8, rng=random.Random(2))
    delays = [backoff.delay(attempt, Transient("x")) for attempt in range(8)]
    assert delays[0] <= 1 and delays[3] >= 4 and max(delays) <= 8
    assert len(set(delays)) == len(delays), "jitter spreads workers that failed together"
