"""How a run's contacts are partitioned: by a stable hash of the email into buckets, one chunk per bucket.

Why buckets instead of cutting each blob into chunks: a duplicate email must be sent once per run
even when its copies sit in different blobs, which different splitter instances read at the same
time. Each splitter routes a contact to the bucket of its email, so every copy of an email lands
in the same bucket; once all blobs are split, one chunk per bucket goes to a worker, which reads
that bucket's parts from every blob and keeps the first copy. Memory stays flat (one bucket at a
time).

A bucket is a contiguous range of the sync state's shards (exports/store/sync_state.py), so the
worker of a bucket compares its contacts with exactly the shards that can hold them, however many
buckets the run has.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from exports.store.sync_state import SHARDS, shard_of

MAX_BUCKETS = SHARDS  # a bucket holds at least one whole shard
_BYTES_PER_ROW = 64  # a lean profile row; over-estimating rows only makes chunks smaller
_GZIP_RATIO = 6


def bucket_count(blobs: Iterable, chunk_size: int) -> int:
    """Buckets for a segment of these blobs (name, size), so that a bucket holds about `chunk_size` contacts."""
    estimated_rows = sum(blob.size * (_GZIP_RATIO if blob.name.lower().endswith(".gz") else 1)
                         for blob in blobs) / _BYTES_PER_ROW
    return max(1, min(MAX_BUCKETS, math.ceil(estimated_rows / chunk_size)))


def bucket_of(email: str, buckets: int) -> int:
    return shard_of(email) * buckets // SHARDS


def shards_of(bucket: int, buckets: int) -> range:
    """The shards whose emails go to `bucket`: those s with s * buckets // SHARDS == bucket."""
    return range(-(-bucket * SHARDS // buckets), -(-(bucket + 1) * SHARDS // buckets))


def bucket_totals(per_segment: Iterable[Sequence[int]], buckets: int) -> list[int]:
    """Contacts per bucket over all segment blobs."""
    totals = [0] * buckets
    for counts in per_segment:
        for bucket, count in enumerate(counts):
            totals[bucket] += count
    return totals
