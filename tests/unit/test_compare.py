"""The comparison with the sync state and the state that follows: pure functions, checked over many cases."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from exports.run.batching import Item
from exports.run.buckets import bucket_of, shards_of
from exports.run.compare import Action, Bucket, by_shard, compare, next_state
from exports.store.sync_state import SHARDS, digest, shard_of, state_id_of

KEY = b"k" * 32
EMAILS = st.sampled_from([f"p{n}@example.com" for n in range(40)])
NAMES = st.sampled_from(["Ada", "Grace", "Linus"])


def item(email: str, first: str) -> Item:
    return Item("part.csv", 2, {"email": email, "first_name": first})


def state_of(contacts: dict[str, str]) -> dict[str, str]:
    return {email: digest({"email": email, "first_name": first}, KEY) for email, first in contacts.items()}


def sharded(state: dict[str, str]):
    grouped = by_shard(state)
    return lambda shard: {email: state[email] for email in grouped.get(shard, ())}


CONTACTS = st.dictionaries(EMAILS, NAMES, max_size=30)


@given(old=CONTACTS, new=CONTACTS, full=st.booleans())
@settings(max_examples=200)
def test_every_contact_gets_the_action_its_old_and_new_values_call_for(old, new, full):
    bucket = Bucket(items=[item(email, first) for email, first in sorted(new.items())])

    result = compare(bucket, range(SHARDS), sharded(state_of(old)), KEY, full)

    for contact, action in zip(bucket.items, result.actions, strict=True):
        email = contact.contact["email"]
        if email not in old:
            assert action is Action.ADD
        elif full or old[email] != new[email]:
            assert action is Action.UPDATE
        else:
            assert action is Action.UNCHANGED
    assert set(result.leavers) == set(old) - set(new)
    assert len(result.to_send(bucket.items)) == sum(a is not Action.UNCHANGED for a in result.actions)


@given(old=CONTACTS, new=CONTACTS, undelivered=st.sets(EMAILS), present=st.sets(EMAILS))
@settings(max_examples=200)
def test_the_next_state_records_only_what_was_delivered_and_is_idempotent(old, new, undelivered, present):
    items = [item(email, first) for email, first in sorted(new.items())]
    before = state_of(old)

    after = next_state(before, items, present, KEY, undelivered)

    for email, first in new.items():
        if email not in undelivered:
            assert after[email] == digest({"email": email, "first_name": first}, KEY)
        elif email in before:
            assert after[email] == before[email]  # sent again next run: its old values are what the list has
        else:
            assert email not in after
    for email in set(before) - set(new):
        assert (email in after) == (email in present)  # a leaver is dropped; a rejected row keeps its entry
    assert next_state(after, items, present, KEY, undelivered) == after  # a killed commit is simply redone


def test_a_digest_depends_on_every_value_sent_and_on_the_key():
    contact = {"email": "a@example.com", "first_name": "Ada"}
    assert digest(contact, KEY) == digest(dict(reversed(list(contact.items()))), KEY)
    assert digest(contact, KEY) != digest({**contact, "first_name": "Adа"}, KEY)  # a Cyrillic a
    assert digest(contact, KEY) != digest({**contact, "phone": "+1"}, KEY)
    assert digest(contact, KEY) != digest(contact, b"other key")


@given(email=st.emails(), buckets=st.integers(1, SHARDS))
def test_an_email_goes_to_the_bucket_whose_shards_hold_it(email, buckets):
    assert shard_of(email) in shards_of(bucket_of(email, buckets), buckets)


@given(buckets=st.integers(1, SHARDS))
def test_the_buckets_cover_every_shard_once(buckets):
    covered = [shard for bucket in range(buckets) for shard in shards_of(bucket, buckets)]
    assert covered == list(range(SHARDS))


def test_a_new_account_list_or_mapping_is_another_state():
    base = state_id_of("a.api-us1.com", "3", {"email": "Email"})
    assert base == state_id_of("A.api-us1.com", "3", {"email": "Email"})  # hostnames are case-insensitive
    assert len({base, state_id_of("b.api-us1.com", "3", {"email": "Email"}),
                state_id_of("a.api-us1.com", "4", {"email": "Email"}),
                state_id_of("a.api-us1.com", "3", {"email": "Email", "firstName": "First"})}) == 4
