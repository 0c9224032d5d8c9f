"""A chunk's contacts against the export's sync state: what to send, and the state that follows.

Both functions depend only on their arguments, so a redelivered chunk works out the same contacts
to send (its checkpoint is a position among them) and commits the same state. Committing is
idempotent: applied to the state it produced, next_state gives that state again, so a worker
killed between two shard writes is simply run again.
"""
from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

from exports.run.batching import Item
from exports.store.sync_state import digest, shard_of

T = TypeVar("T")


class Action(StrEnum):
    ADD = "add"  # not in the state: sent
    UPDATE = "update"  # in the state with other values (or any values, in a full run): sent
    UNCHANGED = "unchanged"  # in the state with the same values: not sent
    LEAVE = "leave"  # in the state, not in the segment: what is sent is the export's leavers setting
    NOT_RESUBSCRIBED = "not_resubscribed"  # back in the segment, but this export unsubscribed them: not sent


# The state's entry for a contact this export unsubscribed from the list (not a digest: those are hex).
# It stays while the contact is out of the segment and when they come back: nothing the app sends
# re-subscribes them (a bulk import cannot, and the app never calls contactLists), so they are
# counted as not re-subscribed instead of being sent.
UNSUBSCRIBED = "~unsubscribed"


@dataclass
class Bucket:
    """One bucket of a run's contacts, read from every blob's part."""

    items: list[Item] = field(default_factory=list)  # first copy of each email, in blob and row order
    present: set[str] = field(default_factory=set)  # emails of rows rejected for another value: still in the segment
    duplicates: int = 0


@dataclass(frozen=True)
class Comparison:
    actions: tuple[Action, ...]  # one per item of the bucket
    leavers: tuple[str, ...]

    def to_send(self, items: list[Item]) -> list[Item]:
        return [item for item, action in zip(items, self.actions, strict=True)
                if action in (Action.ADD, Action.UPDATE)]

    def count(self, action: Action) -> int:
        return len(self.leavers) if action is Action.LEAVE else self.actions.count(action)


def by_shard(values: Iterable[T], email_of: Callable[[T], str] = str) -> dict[int, list[T]]:
    grouped: dict[int, list[T]] = {}
    for value in values:
        grouped.setdefault(shard_of(email_of(value)), []).append(value)
    return grouped


def compare(bucket: Bucket, shards: Iterable[int], read_shard: Callable[[int], Mapping[str, str]], key: bytes,
            full: bool) -> Comparison:
    """Each contact's action, reading one shard of the state at a time."""
    positions = {item.contact["email"]: index for index, item in enumerate(bucket.items)}
    grouped = by_shard(positions)
    actions: list[Action | None] = [None] * len(bucket.items)
    leavers = []
    for shard in shards:
        old = read_shard(shard)
        for email in grouped.get(shard, ()):
            index = positions[email]
            previous = old.get(email)
            if previous is None:
                actions[index] = Action.ADD
            elif previous == UNSUBSCRIBED:
                actions[index] = Action.NOT_RESUBSCRIBED
            elif full or previous != digest(bucket.items[index].contact, key):
                actions[index] = Action.UPDATE
            else:
                actions[index] = Action.UNCHANGED
        leavers += sorted(email for email, entry in old.items()
                          if entry != UNSUBSCRIBED and email not in positions and email not in bucket.present)
    if None in actions:
        raise ValueError("a contact of the bucket is in none of its shards")
    return Comparison(tuple(actions), tuple(leavers))


def next_state(old: Mapping[str, str], items: Iterable[Item], present: Collection[str], key: bytes,
               undelivered: Collection[str], leavers_stay: bool = False) -> dict[str, str]:
    """One shard's state after the run's sending: what ActiveCampaign took, and nothing else.

    A contact delivered now is recorded with the digest of what was sent. One that was not (refused,
    reported failed, outcome unknown) keeps its old entry, if any, so the next run sends it again.
    A row rejected for another value keeps its entry too, and so does a contact this export
    unsubscribed. Leavers are dropped, unless `leavers_stay`: then the leaver pass acts on them and
    records what it did (leaver_state), and until it has, they are still the export's.
    """
    state = {}
    for item in items:
        email = item.contact["email"]
        if old.get(email) == UNSUBSCRIBED or email in undelivered:
            if email in old:
                state[email] = old[email]
        else:
            state[email] = digest(item.contact, key)
    for email in present:
        if email in old and email not in state:
            state[email] = old[email]
    for email, entry in old.items():
        if email not in state and (leavers_stay or entry == UNSUBSCRIBED):
            state[email] = entry
    return state


def delivered_state(old: Mapping[str, str], delivered: Iterable[Item], key: bytes) -> dict[str, str]:
    """One shard's state once the remainder chunk's contacts ActiveCampaign took are recorded, with the digest
    of what was sent (as next_state records a chunk's own); the shard's other entries stay as they are."""
    state = dict(old)
    for item in delivered:
        state[item.contact["email"]] = digest(item.contact, key)
    return state


def leaver_state(old: Mapping[str, str], done: Collection[str], unsubscribed: bool) -> dict[str, str]:
    """One shard's state after the leaver pass: each leaver it acted on is marked unsubscribed, or (its
    membership field cleared) no longer the export's; the others stay, for the next run to try again."""
    state = dict(old)
    for email in done:
        if email in state:
            if unsubscribed:
                state[email] = UNSUBSCRIBED
            else:
                del state[email]
    return state
