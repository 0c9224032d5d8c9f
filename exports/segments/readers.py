"""Reading one segment blob (CSV, JSON Lines, gzip) row by row, the mapped columns picked out.

Nothing is loaded whole: bytes are pulled from the download stream as the CSV or JSON Lines
reader asks for them.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from exports.errors import MissingColumns, SegmentError

_INVALID_UTF8 = re.compile("[\udc80-\udcff]")  # what surrogateescape turns undecodable bytes into
# A 1 MB cell is broken data, not a profile: the row is rejected, not the blob. The csv module
# keeps this limit per process, so configure_csv() sets it at startup (exports/startup.py).
CSV_FIELD_LIMIT = 1 << 20


def configure_csv() -> None:
    csv.field_size_limit(CSV_FIELD_LIMIT)


@dataclass(frozen=True)
class Record:
    """One data row: `values` maps contact field -> raw text, or `error` says why the row is unreadable."""

    row: int
    values: dict[str, str] | None = None
    error: str | None = None


class _ChunkStream(io.RawIOBase):
    """A readable file over an iterator of byte chunks (the blob download), for gzip and TextIOWrapper."""

    def __init__(self, chunks: Iterable[bytes]):
        self._chunks = iter(chunks)
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            try:
                self._pending = memoryview(next(self._chunks))
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def read_records(blob_name: str, chunks: Iterable[bytes], columns: dict[str, str]) -> Iterator[Record]:
    """Rows of one segment blob with the mapped `columns` (contact field -> column name) picked out.

    Column names match case-insensitively. Raises MissingColumns when a mapped column is missing, SegmentError when
    the blob as a whole is unreadable.
    """
    raw = io.BufferedReader(_ChunkStream(chunks), buffer_size=1 << 16)
    lower = blob_name.lower()
    binary = gzip.GzipFile(fileobj=raw, mode="rb") if lower.endswith(".gz") else raw
    # utf-8-sig drops a BOM if there is one; undecodable bytes become surrogates so one bad row
    # is rejected with its reason instead of failing the whole blob.
    text = io.TextIOWrapper(binary, encoding="utf-8-sig", errors="surrogateescape", newline="")
    try:
        if lower.endswith((".jsonl", ".jsonl.gz")):
            yield from _jsonl_records(blob_name, text, columns)
        else:
            yield from _csv_records(blob_name, text, columns)
    except (OSError, EOFError, zlib.error) as error:  # gzip.BadGzipFile is an OSError
        raise SegmentError(f"{blob_name} could not be read: {error}") from None


def _missing_columns(blob_name: str, missing: list[str], available: Iterable[str]) -> MissingColumns:
    names = ", ".join(repr(name) for name in available) or "none"
    wanted = ", ".join(repr(name) for name in missing)
    return MissingColumns(f"{blob_name}: mapped column {wanted} not found; the columns available are {names}", missing)


def _csv_records(blob_name: str, text: io.TextIOBase, columns: dict[str, str]) -> Iterator[Record]:
    reader = csv.reader(text, strict=True)
    try:
        header = next(reader)
        while not header:  # blank lines before the header are not the header
            header = next(reader)
    except StopIteration:
        raise SegmentError(f"{blob_name} is empty: a CSV segment needs a header row") from None
    except csv.Error as error:
        raise SegmentError(f"{blob_name}: the header row is not valid CSV ({error})") from None
    index: dict[str, int] = {}
    for position, name in enumerate(header):
        index.setdefault(name.strip().lower(), position)
    missing = [column for column in columns.values() if column.strip().lower() not in index]
    if missing:
        raise _missing_columns(blob_name, missing, [h.strip() for h in header])
    picks = {field: index[column.strip().lower()] for field, column in columns.items()}
    width = len(header)
    row = 1  # the header is row 1, so row numbers match what a spreadsheet shows
    while True:
        row += 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield Record(row, error=f"not valid CSV: {error}")
            continue
        if not fields:
            row -= 1  # a blank line is not a row
            continue
        if len(fields) != width:
            yield Record(row, error=f"has {len(fields)} fields where the header has {width}")
            continue
        values = {field: fields[position] for field, position in picks.items()}
        if any(_INVALID_UTF8.search(value) for value in values.values()):
            yield Record(row, error="is not valid UTF-8")
            continue
        yield Record(row, values=values)


def _jsonl_records(blob_name: str, text: io.TextIOBase, columns: dict[str, str]) -> Iterator[Record]:
    wanted = {field: column.strip().lower() for field, column in columns.items()}
    checked_keys = False
    for row, line in enumerate(text, start=1):
        if not line.strip():
            continue
        if _INVALID_UTF8.search(line):
            yield Record(row, error="is not valid UTF-8")
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            yield Record(row, error=f"is not valid JSON: {error.msg} at column {error.colno}")
            continue
        if not isinstance(item, dict):
            yield Record(row, error="is not a JSON object")
            continue
        keys = {key.strip().lower(): value for key, value in item.items()}
        if not checked_keys:
            # JSON Lines has no header: the first object stands for the file's columns.
            missing = [columns[field] for field, key in wanted.items() if key not in keys]
            if missing:
                raise _missing_columns(blob_name, missing, list(item))
            checked_keys = True
        values, problem = {}, None
        for field, key in wanted.items():
            value = keys.get(key)
            if isinstance(value, (dict, list)):
                problem = f"field {columns[field]!r} holds a JSON {type(value).__name__}, not a single value"
                break
            values[field] = "" if value is None else (value if isinstance(value, str) else json.dumps(value))
        yield Record(row, error=problem) if problem else Record(row, values=values)


def missing_columns(blob_name: str, probe: bytes, columns: dict[str, str]) -> MissingColumns | None:
    """Whether the first bytes of a blob have every mapped column (its header, or its first JSON object).

    None when they do, or when the probe cannot tell (an empty or unreadable blob is the run's to
    report: the mapping is not the problem).
    """
    try:
        for _ in read_records(blob_name, [probe], columns):
            break  # the header (or the first JSON object) was read: every column is there
    except MissingColumns as error:
        return error
    except SegmentError:
        return None
    return None
