"""Partitioning contacts into buckets: stable, complete, and sized from the blobs."""
from __future__ import annotations

import os
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from exports.run.buckets import MAX_BUCKETS, bucket_count, bucket_of, bucket_totals

Blob = namedtuple("Blob", "name size")
ROOT = Path(__file__).resolve().parents[2]


@given(st.emails(), st.integers(1, MAX_BUCKETS))
def test_an_email_always_lands_in_the_same_bucket_in_range(email, buckets):
    assert 0 <= bucket_of(email, buckets) < buckets
    assert bucket_of(email, buckets) == bucket_of(str(email), buckets)


def test_the_bucket_of_an_email_does_not_depend_on_the_process():
    # Splitters on different instances must agree: hash() of a str is salted per process, crc32 is not.
    emails = [f"person{n}@example.com" for n in range(50)]
    code = f"from exports.run.buckets import bucket_of; print([bucket_of(e, 997) for e in {emails!r}])"
    seen = {subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONHASHSEED": seed},
                           capture_output=True, text=True, check=True).stdout.strip() for seed in ("1", "2")}
    assert seen == {str([bucket_of(e, 997) for e in emails])}


def test_bucket_count_estimates_rows_from_sizes_and_stays_in_range():
    assert bucket_count([], 5000) == 1
    assert bucket_count([Blob("a.csv", 64 * 5000)], 5000) == 1
    assert bucket_count([Blob("a.csv", 64 * 5001)], 5000) == 2
    # gzip compresses a profile file about six times: the same bytes count six times the rows
    assert bucket_count([Blob("a.csv.gz", 64 * 5000)], 5000) == 6
    assert bucket_count([Blob("a.csv", 64 * 5000), Blob("b.jsonl", 64 * 5000)], 5000) == 2
    assert bucket_count([Blob("huge.csv", 10**12)], 5000) == MAX_BUCKETS


@given(st.lists(st.lists(st.integers(0, 1000), min_size=7, max_size=7), max_size=20))
def test_bucket_totals_add_every_segment_count(per_segment):
    totals = bucket_totals(per_segment, 7)
    assert totals == [sum(counts[b] for counts in per_segment) for b in range(7)]
