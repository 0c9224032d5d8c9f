"""How a run's contacts are partitioned: by a stable hash of the email into buckets, one chunk per bucket.

Why buckets instead of cutting each blob into chunks: a duplicate email must be sent once per run
even when its copies sit in different blobs, which different splitter instances read at the same
time. Each splitter routes a contact to bucket crc32(email) % buckets, so every copy of an email
lands in the same bucket; once all blobs are split, one chunk per non-empty bucket goes to a
worker, which reads that bucket's parts from every blob and keeps the first copy. Memory stays
flat (one bucket at a time).
"""
from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Sequence

MAX_BUCKETS = 2000  # keeps a segment row's bucket counts well inside a Table property (32K chars)
_BYTES_PER_ROW = 64  # a lean profile row; over-estimating rows only makes chunks smaller
_GZIP_RATIO = 6


def bucket_count(blobs: Iterable, chunk_size: int) -> int:
    """Buckets for a segment of these blobs (name, size), so that a bucket holds about `chunk_size` contacts."""
    estimated_rows = sum(blob.size * (_GZIP_RATIO if blob.name.lower().endswith(".gz") else 1)
                         for blob in blobs) / _BYTES_PER_ROW
    return max(1, min(MAX_BUCKETS, math.ceil(estimated_rows / chunk_size)))


def bucket_of(email: str, buckets: int) -> int:
    return zlib.crc32(email.encode("utf-8")) % buckets  # stable across processes, unlike hash()


def bucket_totals(per_segment: Iterable[Sequence[int]], buckets: int) -> list[int]:
    """Contacts per bucket over all segment blobs."""
    totals = [0] * buckets
    for counts in per_segment:
        for bucket, count in enumerate(counts):
            totals[bucket] += count
    return totals
