"""How a chunk's contacts are cut into bulk imports: the same cut from every resume point.

A chunk is checkpointed after every batch (the position in its contact list), and a redelivered
chunk resumes at its checkpoint, so the cut must depend only on the contacts from that position
on: then a resumed delivery sends exactly the batches the first one would have sent next.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

from exports.activecampaign.client import MAX_CONTACTS_PER_IMPORT, MAX_IMPORT_BYTES, contact_cost, import_payload

MIN_CONTACTS_PER_IMPORT = 10  # ActiveCampaign's advice for bulk imports (FACTS.md)


class Item(NamedTuple):
    """One contact to send, with where it came from (for the rejects report)."""

    blob: str
    row: int
    contact: dict


def batches(items: Sequence[Item], start: int, list_id: str, exclude_automations: bool = False,
            list_action: str | None = "subscribe") -> Iterator[list[Item]]:
    """Batches of at most 250 contacts and 400,000 bytes, from items[start:].

    The last batch is topped up from the one before to MIN_CONTACTS_PER_IMPORT contacts when it
    would have fewer: ActiveCampaign asks for at least 10 contacts per bulk import, and a
    single-contact import draws on a budget of its own (20 a minute), so a chunk ending in a
    one-contact batch could wait seconds for it. Only the last two batches change, and only as a
    function of the contacts from `start` on.
    """
    overhead = len(import_payload([], list_id, exclude_automations, list_action))
    previous, batch, size = None, [], overhead
    for item in items[start:]:
        cost = contact_cost(item.contact, list_id, exclude_automations, list_action)
        if batch and (len(batch) == MAX_CONTACTS_PER_IMPORT or size + cost > MAX_IMPORT_BYTES):
            if previous:
                yield previous
            previous, batch, size = batch, [], overhead
        batch.append(item)
        size += cost
    if previous and len(batch) < MIN_CONTACTS_PER_IMPORT:
        # A few contacts more keep the last batch far under 400,000 bytes, and the one before only shrinks.
        moved = min(MIN_CONTACTS_PER_IMPORT - len(batch), len(previous) - MIN_CONTACTS_PER_IMPORT)
        if moved > 0:
            previous, batch = previous[:-moved], previous[-moved:] + batch
    if previous:
        yield previous
    if batch:
        yield batch
