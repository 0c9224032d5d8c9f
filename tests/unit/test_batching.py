"""How a chunk is cut into bulk imports: within ActiveCampaign's limits, and the same from every resume point."""
from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from exports.activecampaign.client import MAX_CONTACTS_PER_IMPORT, MAX_IMPORT_BYTES, import_payload
from exports.run.batching import MIN_CONTACTS_PER_IMPORT, Item, batches

LIST_ID = "3"

# Contacts from tiny to large (a name of up to 3,000 characters), so that both limits, 250
# contacts and 400,000 bytes, decide where batches end.
contact_sizes = st.lists(st.one_of(st.integers(0, 40), st.integers(1000, 3000)), min_size=0, max_size=1200)


def items_of(sizes: list[int]) -> list[Item]:
    return [Item("seg/a.csv", row + 2, {"email": f"p{row}@example.com", "first_name": "x" * size})
            for row, size in enumerate(sizes)]


@settings(max_examples=60, deadline=None)
@given(contact_sizes)
def test_batches_keep_every_contact_in_order_within_both_limits(sizes):
    items = items_of(sizes)
    cut = list(batches(items, 0, LIST_ID))
    assert [item for batch in cut for item in batch] == items
    for batch in cut:
        assert 1 <= len(batch) <= MAX_CONTACTS_PER_IMPORT
        assert len(import_payload([item.contact for item in batch], LIST_ID)) <= MAX_IMPORT_BYTES


@settings(max_examples=60, deadline=None)
@given(contact_sizes)
def test_resuming_at_any_checkpoint_cuts_the_rest_exactly_as_the_first_delivery_did(sizes):
    items = items_of(sizes)
    cut = list(batches(items, 0, LIST_ID))
    checkpoints = itertools.accumulate((len(batch) for batch in cut), initial=0)
    for done, position in enumerate(checkpoints):
        assert list(batches(items, position, LIST_ID)) == cut[done:], f"resumed at {position}"


@settings(max_examples=60, deadline=None)
@given(st.integers(MIN_CONTACTS_PER_IMPORT, 2000))
def test_the_last_batch_is_topped_up_to_the_advised_minimum(count):
    cut = list(batches(items_of([5] * count), 0, LIST_ID))
    assert len(cut[-1]) >= MIN_CONTACTS_PER_IMPORT
    assert [len(batch) for batch in cut[:-2]] == [MAX_CONTACTS_PER_IMPORT] * max(0, len(cut) - 2)


def test_fewer_contacts_than_the_minimum_go_in_one_batch():
    assert [len(b) for b in batches(items_of([5] * 3), 0, LIST_ID)] == [3]
    assert list(batches([], 0, LIST_ID)) == []
