"""Reading one segment blob (CSV, JSON Lines, gzip) row by row, the mapped columns picked out.

Nothing is loaded whole: bytes are pulled from the download stream as the CSV or JSON Lines
reader asks for them, and no physical line is held beyond LINE_LIMIT characters, so memory stays
bounded whatever the blob holds.

A CSV whose syntax breaks (a quote not closed, a line or a record over its limit) fails the blob:
from there on the reader's place is unknown (rows after a broken quote may be pieces of one
field), and sending the rows before it would make a sync treat the rest as leavers. A JSON Lines
line stands alone, so a broken line is only a rejected row.
"""
from __future__ import annotations

import codecs
import csv
import gzip
import io
import itertools
import json
import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial

from exports.errors import MissingColumns, SegmentError
from exports.segments.wording import quoted, some_names

# No physical line, and no CSV record over several lines (line breaks in quoted fields), is held
# beyond this many characters: a profile has a few hundred, and at worst (a million one-character
# fields) a record at the limit takes about 50 MB.
LINE_LIMIT = RECORD_LIMIT = 1 << 20
# The csv module's own limit only has to let through any field of a record within RECORD_LIMIT. It
# is kept per process, so configure_csv() sets it at startup (exports/startup.py).
CSV_FIELD_LIMIT = RECORD_LIMIT
SNIFF_BYTES = 64 * 1024  # the start of the text, read first to tell its encoding
_UNDECODABLE = re.compile("[\udc80-\udcff]")  # what surrogateescape turns bytes that are not UTF-8 into
_DECODED_NON_ASCII = re.compile("[\u0080-\ud7ff\ue000-\U0010ffff]")  # a character beyond ASCII that was UTF-8


def configure_csv() -> None:
    csv.field_size_limit(CSV_FIELD_LIMIT)


@dataclass(frozen=True)
class Record:
    """One data row: `values` maps contact field -> raw text, or `error` says why the row is unreadable.

    Raw text may hold anything a file can (bytes that were not UTF-8 as surrogates, control
    characters): mapping.to_contact decides whether it can be sent.
    """

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

    Column names match trimmed and case-insensitively. Raises MissingColumns when a mapped column
    is missing from a CSV header, SegmentError when the blob as a whole cannot be read.
    """
    jsonl = _is_jsonl(blob_name)
    try:
        text = _open_text(blob_name, chunks, csv_text=not jsonl)
        yield from (_jsonl_records if jsonl else _csv_records)(blob_name, text, columns)
    except (OSError, EOFError, zlib.error) as error:  # gzip.BadGzipFile is an OSError
        raise SegmentError(f"{blob_name} could not be read: {error}") from None
    except UnicodeDecodeError as error:  # UTF-16 only: surrogateescape stands in for bad UTF-8 bytes
        raise SegmentError(f"{blob_name} is not valid UTF-16 ({error.reason}); nothing of this blob is sent: "
                           'save it as "CSV UTF-8" and upload it again') from None


def _is_jsonl(blob_name: str) -> bool:
    return blob_name.lower().endswith((".jsonl", ".jsonl.gz"))


def _open_text(blob_name: str, chunks: Iterable[bytes], csv_text: bool) -> io.TextIOWrapper:
    """The blob as text: UTF-8 (a BOM is dropped) or UTF-16 with a BOM; a CSV saved as Windows-1252 is refused."""
    binary = io.BufferedReader(_ChunkStream(chunks), buffer_size=1 << 16)
    if blob_name.lower().endswith(".gz"):
        binary = gzip.GzipFile(fileobj=binary, mode="rb")
    head = binary.read(SNIFF_BYTES)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"  # Excel's "Unicode Text"; the codec takes the byte order from the BOM and drops it
    else:
        encoding = "utf-8-sig"
        if csv_text and not head.startswith(codecs.BOM_UTF8):
            _refuse_single_byte_encoding(blob_name, head)
    rest = iter(partial(binary.read, 1 << 16), b"")
    stream = io.BufferedReader(_ChunkStream(itertools.chain([head], rest)), buffer_size=1 << 16)
    # Bytes that are not UTF-8 become surrogates, so one bad value rejects its row (mapping.py), not the blob.
    return io.TextIOWrapper(stream, encoding=encoding, errors="surrogateescape", newline="")


def _refuse_single_byte_encoding(blob_name: str, head: bytes) -> None:
    """Fails a CSV whose start is not UTF-8 the way Windows-1252 text is not: bytes that are not UTF-8,
    and no character beyond ASCII that is. A UTF-8 file with a stray bad byte has real UTF-8
    characters too; then only its bad rows are rejected."""
    text = codecs.getincrementaldecoder("utf-8")("surrogateescape").decode(head)  # a character cut at the end waits
    bad = _UNDECODABLE.search(text)
    if bad is None or _DECODED_NON_ASCII.search(text):
        return
    byte = ord(bad.group()) - 0xDC00
    try:
        meaning = f", {bytes([byte]).decode('cp1252')!r} in Windows-1252"
    except UnicodeDecodeError:
        meaning = ""
    line = text.count("\n", 0, bad.start()) + 1
    raise SegmentError(
        f"{blob_name} is not UTF-8: line {line} holds the byte 0x{byte:02X}{meaning}, and the start of the file has "
        "no UTF-8 character beyond ASCII, so it looks saved as Windows-1252 (Excel's \"CSV (Comma delimited)\"); "
        "nothing of this blob is sent: save it as \"CSV UTF-8 (Comma delimited)\" and upload it again")


def _missing_columns(blob_name: str, missing: list[str], available: Sequence[str], where: str) -> MissingColumns:
    wanted = ", ".join(quoted(name) for name in missing)
    return MissingColumns(f"{blob_name}: mapped column {wanted} not found {where}; the columns available are "
                          f"{some_names(available)}", missing)


# --- CSV -----------------------------------------------------------------------------------------
class _TooLong(Exception):
    """A line or a record over its limit, raised through the csv reader that asked for the line."""


def _line_ended(line: str) -> bool:
    # readline stops at LINE_LIMIT characters: a shorter line ended at a line break or at the end of the text.
    return len(line) < LINE_LIMIT or line.endswith("\n")


class _CsvLines:
    """The physical lines a csv.reader parses: none over LINE_LIMIT, and no record over RECORD_LIMIT."""

    def __init__(self, text: io.TextIOBase):
        self._text = text
        self._pushed_back: str | None = None
        self.record_length = 0  # characters given for the record being parsed; the caller resets it per record

    def __iter__(self) -> _CsvLines:
        return self

    def __next__(self) -> str:
        if self._pushed_back is not None:
            line, self._pushed_back = self._pushed_back, None
        else:
            line = self.physical()
        if not line:
            raise StopIteration
        self.record_length += len(line)
        if self.record_length > RECORD_LIMIT:
            raise _TooLong(f"is longer than {RECORD_LIMIT:,} characters (over several lines)")
        return line

    def physical(self) -> str:
        """The next physical line, "" at the end."""
        line = self._text.readline(LINE_LIMIT)
        if not _line_ended(line):
            raise _TooLong(f"has a line longer than {LINE_LIMIT:,} characters")
        return line

    def push_back(self, line: str) -> None:
        """Gives `line` again as the next line (the header's first, once its delimiter is known)."""
        self._pushed_back = line


def _broken(blob_name: str, row: int, reason: str) -> SegmentError:
    return SegmentError(
        f"{blob_name}: row {row} {reason}. After a broken quote or an overlong line the rows that follow cannot be "
        "proven to be rows, so nothing of this blob is sent: correct the file and upload it again")


def _next_fields(blob_name: str, reader, lines: _CsvLines, row: int) -> list[str] | None:
    """The next record (an empty list for a blank line), None at the end."""
    lines.record_length = 0
    try:
        return next(reader, None)
    except csv.Error as error:
        raise _broken(blob_name, row, f"is not valid CSV ({error}): look for a quote that is not closed or not "
                                      "doubled") from None
    except _TooLong as error:
        raise _broken(blob_name, row, str(error)) from None


def _delimiter(header_line: str) -> str:
    """',' unless the header has no comma but ';' or a tab: Excel writes ';' where ',' is the decimal mark."""
    if "," not in header_line and (";" in header_line or "\t" in header_line):
        return ";" if header_line.count(";") >= header_line.count("\t") else "\t"
    return ","


def _mapped_positions(blob_name: str, header: list[str], columns: dict[str, str]) -> dict[str, int]:
    """Where each mapped column is in the header; a mapped name there twice is refused, as it is unclear which to send."""
    wanted = {column.strip().lower() for column in columns.values()}
    found: dict[str, list[int]] = {}
    for position, name in enumerate(header):
        key = name.strip().lower()
        if key in wanted:
            found.setdefault(key, []).append(position)
    missing = [column for column in columns.values() if column.strip().lower() not in found]
    if missing:
        raise _missing_columns(blob_name, missing, [name.strip() for name in header], "in the header")
    for column in columns.values():
        places = found[column.strip().lower()]
        if len(places) > 1:
            first, second = places[:2]
            more = f" (and {len(places) - 2:,} more)" if len(places) > 2 else ""
            raise SegmentError(
                f"{blob_name}: the mapped column {quoted(column)} is in the header twice, as {quoted(header[first])} "
                f"in column {first + 1} and {quoted(header[second])} in column {second + 1}{more}; nothing of this "
                "blob is sent: rename or remove the other column so it is clear which one to send")
    return {field: found[column.strip().lower()][0] for field, column in columns.items()}


def _csv_records(blob_name: str, text: io.TextIOBase, columns: dict[str, str]) -> Iterator[Record]:
    lines = _CsvLines(text)
    row = 0  # row numbers are those a spreadsheet shows: blank lines count, a quoted line break does not
    try:
        first = lines.physical()
        while first and not first.strip("\r\n"):  # blank lines before the header are not the header
            row += 1
            first = lines.physical()
    except _TooLong as error:
        raise _broken(blob_name, row + 1, str(error)) from None
    if not first:
        raise SegmentError(f"{blob_name} is empty: a CSV segment needs a header row")
    lines.push_back(first)
    reader = csv.reader(lines, delimiter=_delimiter(first), strict=True)
    row += 1
    header = _next_fields(blob_name, reader, lines, row)
    positions = _mapped_positions(blob_name, header, columns)
    width = len(header)
    while True:
        row += 1
        fields = _next_fields(blob_name, reader, lines, row)
        if fields is None:
            return
        if not fields:
            continue  # a blank line: skipped, but counted
        if len(fields) != width:
            yield Record(row, error=f"has {len(fields)} fields where the header has {width}")
            continue
        yield Record(row, values={field: fields[position] for field, position in positions.items()})


# --- JSON Lines ----------------------------------------------------------------------------------
def _physical_lines(text: io.TextIOBase) -> Iterator[str | None]:
    """Each physical line, or None for one longer than LINE_LIMIT, whose rest is skipped as it streams by."""
    while line := text.readline(LINE_LIMIT):
        if _line_ended(line):
            yield line
            continue
        yield None
        while (part := text.readline(LINE_LIMIT)) and not _line_ended(part):
            pass


def _json_object(line: str) -> tuple[dict | None, str | None]:
    try:
        item = json.loads(line)
    except json.JSONDecodeError as error:
        return None, f"is not valid JSON: {error.msg} at column {error.colno}"
    except ValueError:  # Python refuses to convert an integer of thousands of digits
        return None, "holds a number with too many digits to read"
    except RecursionError:
        return None, "is nested too deeply to read"
    if not isinstance(item, dict):
        return None, "is not a JSON object"
    return item, None


def _jsonl_objects(text: io.TextIOBase) -> Iterator[tuple[int, dict | None, str | None]]:
    """(line number, object, None) for each non-blank line, or (line number, None, why it is no object)."""
    for row, line in enumerate(_physical_lines(text), start=1):
        if line is None:
            yield row, None, f"is longer than {LINE_LIMIT:,} characters"
        elif line.strip():
            yield row, *_json_object(line)


def _jsonl_records(blob_name: str, text: io.TextIOBase, columns: dict[str, str]) -> Iterator[Record]:
    # JSON Lines has no header, and writers leave out keys whose value is null: keys are looked up
    # line by line, a missing one is an empty value, and only a missing email rejects the line.
    wanted = {field: column.strip().lower() for field, column in columns.items()}
    for row, item, problem in _jsonl_objects(text):
        if problem:
            yield Record(row, error=problem)
            continue
        keys = {key.strip().lower(): value for key, value in item.items()}
        if "email" in wanted and wanted["email"] not in keys:
            yield Record(row, error=f"has no {quoted(columns['email'])} key")
            continue
        values, problem = {}, None
        for field, key in wanted.items():
            value = keys.get(key)
            if isinstance(value, (dict, list)):
                problem = f"field {quoted(columns[field])} holds a JSON {type(value).__name__}, not a single value"
                break
            values[field] = "" if value is None else (value if isinstance(value, str) else json.dumps(value))
        yield Record(row, error=problem) if problem else Record(row, values=values)


def _keys_missing_from_probe(blob_name: str, probe: bytes, columns: dict[str, str]) -> MissingColumns | None:
    spellings: dict[str, str] = {}  # every key of the probe's objects, lower-cased -> as first written
    try:
        for _, item, _ in _jsonl_objects(_open_text(blob_name, [probe], csv_text=False)):
            for key in item or ():
                spellings.setdefault(key.strip().lower(), key)
    except (OSError, EOFError, zlib.error, UnicodeDecodeError):
        pass  # the probe stops inside the blob (a gzip stream cut short): the objects before it count
    if not spellings:
        return None
    missing = [column for column in columns.values() if column.strip().lower() not in spellings]
    if not missing:
        return None
    return _missing_columns(blob_name, missing, list(spellings.values()), "in any object of the blob's start")


def missing_columns(blob_name: str, probe: bytes, columns: dict[str, str]) -> MissingColumns | None:
    """Whether the first bytes of a blob have every mapped column: in its CSV header, or for JSON
    Lines as a key of at least one object there (writers leave out null keys, so one object is not enough).

    None when they do, or when the probe cannot tell (an empty or unreadable blob is the run's to
    report: the mapping is not the problem).
    """
    if _is_jsonl(blob_name):
        return _keys_missing_from_probe(blob_name, probe, columns)
    try:
        for _ in read_records(blob_name, [probe], columns):
            break  # the header was read: every column is there
    except MissingColumns as error:
        return error
    except SegmentError:
        return None
    return None
