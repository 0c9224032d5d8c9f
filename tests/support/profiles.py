"""Generated segments with known contents, for tests, the demo and the benchmarks.

The generator decides every row's fate as it writes it (valid, a duplicate of an earlier email,
an invalid email, an empty email, a broken row), so tests compare the app's results with what the
data was made to contain, not with figures copied from an earlier run.

By hand: python -m tests.support.profiles --rows 50000 --out segment.csv
"""
from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

HEADER = ("Email", "First Name", "Last Name", "Phone", "Plan")
FIRST = ("Ada", "Grace", "Linus", "Zoë", "O'Brien", "Smith, Jr.", 'Say "hi"', "Line\nbreak", "  Padded  ")


@dataclass
class Expected:
    rows: int = 0
    emails: set[str] = field(default_factory=set)  # what must reach the list, normalised
    rejected: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)  # what the status document must count
    duplicates: int = 0
    first_names: dict[str, str] = field(default_factory=dict)  # email -> first name of its first row

    @property
    def contacts(self) -> int:
        return len(self.emails)

    def reject(self, reason: str) -> None:
        self.rejected += 1
        self.rejected_by_reason[reason] = self.rejected_by_reason.get(reason, 0) + 1


def _rows(count: int, rng: random.Random, expected: Expected, start: int, bad: bool):
    """Yields (email, first, last, phone, plan) or a short row (broken) and records the expectation."""
    seen = sorted(expected.emails) if bad else []
    for n in range(start, start + count):
        expected.rows += 1
        roll = rng.random() if bad else 1.0
        if roll < 0.02:
            expected.reject("email_invalid")
            yield (f"not-an-email-{n}", "Bad", "Email", "", "free")
        elif roll < 0.03:
            expected.reject("email_missing")
            yield ("", "No", "Email", "", "free")
        elif roll < 0.035:
            expected.reject("row_unreadable")
            yield (f"short{n}@example.com", "Too few fields")
        elif roll < 0.07 and seen:
            expected.duplicates += 1
            email = rng.choice(seen)
            yield (f"  {email.upper()} ", "Dup", "Licate", "", "pro")
        else:
            email = f"person{n}@example.com"
            first = rng.choice(FIRST)
            expected.emails.add(email)
            expected.first_names[email] = first.strip()
            if bad:
                seen.append(email)
            yield (f"Person{n}@Example.com", first, f"Last{n}", f"+1555{n:07d}" if n % 3 else "", "pro")


def csv_bytes(rows, bom: bool = False) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
    return (b"\xef\xbb\xbf" if bom else b"") + out.getvalue().encode("utf-8")


def jsonl_bytes(rows) -> bytes:
    lines = []
    for row in rows:
        if len(row) < len(HEADER):
            lines.append("[\"not an object\"]")  # the JSON Lines kind of broken row
            continue
        lines.append(json.dumps(dict(zip(HEADER, row, strict=True)), ensure_ascii=False))
    return ("\n".join(lines) + "\n").encode("utf-8")


def make_segment(rows: int = 20_000, blobs: int = 3, seed: int = 7, bad: bool = True) -> tuple[list[tuple[str, bytes]], Expected]:
    """A segment of `blobs` files in rotating formats (CSV with BOM, CSV gzip, JSON Lines)."""
    rng, expected, files = random.Random(seed), Expected(), []
    per_blob = [rows // blobs + (1 if i < rows % blobs else 0) for i in range(blobs)]
    start = 0
    for index, count in enumerate(per_blob):
        part = list(_rows(count, rng, expected, start, bad))
        start += count
        kind = index % 3
        if kind == 0:
            files.append((f"part-{index:05d}.csv", csv_bytes(part, bom=True)))
        elif kind == 1:
            files.append((f"part-{index:05d}.csv.gz", gzip.compress(csv_bytes(part), compresslevel=1)))
        else:
            files.append((f"part-{index:05d}.jsonl", jsonl_bytes(part)))
    return files, expected


def main() -> None:
    parser = argparse.ArgumentParser(description="Write a CSV segment of generated profiles.")
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--clean", action="store_true", help="no bad rows or duplicates")
    args = parser.parse_args()
    rng, expected = random.Random(args.seed), Expected()
    args.out.write_bytes(csv_bytes(_rows(args.rows, rng, expected, 0, not args.clean)))
    print(json.dumps({"file": str(args.out), "rows": expected.rows, "contacts": expected.contacts,
                      "rejected": expected.rejected, "duplicates": expected.duplicates}))


if __name__ == "__main__":
    main()
