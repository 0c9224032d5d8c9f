"""Reading segment blobs: streamed CSV and JSON Lines, chunk boundaries anywhere, bad rows kept apart."""
from __future__ import annotations

import gzip
import json
import re
from itertools import cycle

import pytest

from exports.errors import SegmentError
from exports.segments.readers import Record, read_records

BOM = "\ufeff".encode()
COLUMNS = {"email": "Email", "firstName": "First Name", "lastName": "Last Name"}
# Values that make chunk boundaries interesting: commas, quotes and newlines inside quoted fields,
# and 2-, 3- and 4-byte UTF-8 characters.
PEOPLE = [
    {"Email": "zoe@example.com", "First Name": "Zoë", "Last Name": "O\"Neil, Jr."},
    {"Email": "li@example.com", "First Name": "李", "Last Name": "line one\r\nline two"},
    {"Email": "emoji@example.com", "First Name": "😀 Ann", "Last Name": "a\nb,\"c\""},
    {"Email": "plain@example.com", "First Name": "", "Last Name": "Smith"},
]


def chunked(data: bytes, size: int | None = None):
    """`data` in chunks of `size` bytes, or of 1, 2, ... 7 bytes in turn when no size is given."""
    sizes = cycle([size] if size else range(1, 8))
    position = 0
    while position < len(data):
        step = next(sizes)
        yield data[position:position + step]
        position += step


def quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def csv_bytes(header: list[str], rows: list[list[str]], bom: bool = False, eol: str = "\r\n") -> bytes:
    """RFC 4180 text, every field quoted, written by hand so the reader is not checked against itself."""
    lines = [",".join(quote(field) for field in line) for line in [header, *rows]]
    return (BOM if bom else b"") + (eol.join(lines) + eol).encode("utf-8")


def people_csv(bom: bool = False) -> bytes:
    header = ["Email", "First Name", "Last Name", "Notes"]
    return csv_bytes(header, [[p[h] if h in p else "x, \"y\"\nz" for h in header] for p in PEOPLE], bom=bom)


def expected_people(first_row: int = 2) -> list[Record]:
    return [Record(first_row + i, values={field: person[column] for field, column in COLUMNS.items()})
            for i, person in enumerate(PEOPLE)]


def read(name: str, data: bytes, columns=COLUMNS, size: int | None = None) -> list[Record]:
    return list(read_records(name, chunked(data, size), columns))


# --- CSV ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("compressed", [False, True], ids=["csv", "csv.gz"])
@pytest.mark.parametrize("bom", [False, True], ids=["no-bom", "bom"])
@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 6, 7, None])
def test_csv_rows_are_the_same_wherever_the_chunks_break(size, bom, compressed):
    data = people_csv(bom=bom)
    name = "seg/part-0.csv.gz" if compressed else "seg/part-0.csv"
    assert read(name, gzip.compress(data) if compressed else data, size=size) == expected_people()


def test_columns_match_by_name_case_insensitively_ignoring_spaces():
    data = csv_bytes([" phone ", "LAST NAME", "e-mail", " EMAIL"], [["+49 30 1", "Doe", "other", "jo@example.com"]])
    columns = {"email": "email ", "lastName": "last name", "phone": "Phone"}
    assert read("a.csv", data, columns) == [
        Record(2, values={"email": "jo@example.com", "lastName": "Doe", "phone": "+49 30 1"})]


def test_a_missing_mapped_column_names_the_columns_available():
    data = csv_bytes(["mail", "First Name"], [["a@example.com", "A"]])
    with pytest.raises(SegmentError) as raised:
        read("seg/a.csv", data, {"email": "Email", "firstName": "first name"})
    message = str(raised.value)
    assert "seg/a.csv" in message and "'Email'" in message
    assert "'mail'" in message and "'First Name'" in message
    assert "'first name'" not in message  # it matched 'First Name', so it is not reported missing


def test_row_numbers_count_records_not_lines_and_skip_blank_lines():
    text = ('email,first\n'
            'a@example.com,"two\nlines"\n'
            '\n'
            'b@example.com,B\n'
            '\r\n'
            '\n'
            'c@example.com,C\n')
    records = read("a.csv", text.encode(), {"email": "email", "firstName": "first"})
    assert [(r.row, r.values["email"]) for r in records] == [(2, "a@example.com"), (3, "b@example.com"),
                                                             (4, "c@example.com")]
    assert records[0].values["firstName"] == "two\nlines"


def test_a_row_with_the_wrong_number_of_fields_is_an_error_and_later_rows_still_come():
    data = csv_bytes(["email", "first"], [["a@example.com", "A"], ["b@example.com", "B", "extra"],
                                           ["c@example.com"], ["d@example.com", "D"]])
    records = read("a.csv", data, {"email": "email", "firstName": "first"}, size=3)
    assert [r.row for r in records] == [2, 3, 4, 5]
    assert records[0] == Record(2, values={"email": "a@example.com", "firstName": "A"})
    assert records[1].values is None and re.search(r"\b3\b", records[1].error) and re.search(r"\b2\b", records[1].error)
    assert records[2].values is None and re.search(r"\b1\b", records[2].error)
    assert records[3] == Record(5, values={"email": "d@example.com", "firstName": "D"})


def test_malformed_quoting_is_an_error_row_and_reading_goes_on():
    data = b'email,first\n"a@example.com"junk,A\nb@example.com,B\n'
    records = read("a.csv", data, {"email": "email", "firstName": "first"})
    assert records[0].row == 2 and records[0].values is None and records[0].error
    assert records[1] == Record(3, values={"email": "b@example.com", "firstName": "B"})


@pytest.mark.parametrize("bad", [b"\xff", b"\xc3", b"\xe6\x9d", b"\xed\xa0\x80"], ids=["ff", "cut-2", "cut-3", "surrogate"])
@pytest.mark.parametrize("size", [1, 2, 5])
def test_invalid_utf8_rejects_only_its_row(bad, size):
    data = b"email,first\r\na@example.com,\xc3\xa9\r\nb@example.com,X" + bad + b"Y\r\nc@example.com,\xe6\x9d\x8e\r\n"
    records = read("a.csv", data, {"email": "email", "firstName": "first"}, size=size)
    assert records[0] == Record(2, values={"email": "a@example.com", "firstName": "é"})
    assert records[1].row == 3 and records[1].values is None and "UTF-8" in records[1].error
    assert records[2] == Record(4, values={"email": "c@example.com", "firstName": "李"})


def test_a_header_only_csv_has_no_records():
    assert read("a.csv", b"email,first\r\n", {"email": "email"}) == []


@pytest.mark.parametrize("name,data", [("a.csv", b""), ("a.csv", BOM), ("a.csv.gz", gzip.compress(b""))],
                         ids=["empty", "bom-only", "empty-gzip"])
def test_an_empty_csv_is_a_segment_error(name, data):
    with pytest.raises(SegmentError, match=name.replace(".", r"\.")):
        read(name, data, {"email": "email"})


def _corrupt(data: bytes, start: int, end: int) -> bytes:
    return data[:start] + bytes(b ^ 0xFF for b in data[start:end]) + data[end:]


GOOD_GZIP = gzip.compress(b"email\n" + b"someone@example.com\n" * 2000)


@pytest.mark.parametrize("data", [
    pytest.param(b"email\nsomeone@example.com\n", id="not-gzip"),
    pytest.param(GOOD_GZIP[:len(GOOD_GZIP) // 2], id="truncated"),
    pytest.param(_corrupt(GOOD_GZIP, len(GOOD_GZIP) - 8, len(GOOD_GZIP) - 4), id="bad-crc"),
    pytest.param(GOOD_GZIP + b"trailing junk", id="trailing-junk"),
    pytest.param(_corrupt(GOOD_GZIP, 20, 40), id="corrupt-deflate-data"),
])
def test_a_corrupt_gzip_is_a_segment_error(data):
    with pytest.raises(SegmentError, match=r"seg/broken\.csv\.gz"):
        read("seg/broken.csv.gz", data, {"email": "email"}, size=7)


def test_reading_is_streamed_not_loaded_whole():
    rows = 100_000
    data = b"email\n" + b"".join(f"user{i}@example.com\n".encode() for i in range(rows))
    pulled = 0

    def chunks():
        nonlocal pulled
        for chunk in chunked(data):
            pulled += len(chunk)
            yield chunk

    records = read_records("big.csv", chunks(), {"email": "email"})
    assert next(records) == Record(2, values={"email": "user0@example.com"})
    assert pulled < len(data) // 10  # about 2 MB in all; the first row needs only the first few kB
    assert sum(1 for _ in records) == rows - 1


# --- JSON Lines -----------------------------------------------------------------------------------
OBJECTS = [
    {"Email": "zoe@example.com", "first name": "Zoë \"Z\", née 李", "phone": 4915112345678},
    {"email": "emoji@example.com", "FIRST NAME": "😀", "phone": None, "tags": ["nested", "but", "unmapped"]},
    {"email": "nofirst@example.com", "phone": "+1 555 0100"},
]
JSONL_COLUMNS = {"email": "email", "firstName": "First Name", "phone": "Phone"}
EXPECTED_JSONL = [
    Record(1, values={"email": "zoe@example.com", "firstName": OBJECTS[0]["first name"], "phone": str(OBJECTS[0]["phone"])}),
    Record(2, values={"email": "emoji@example.com", "firstName": "😀", "phone": ""}),
    Record(3, values={"email": "nofirst@example.com", "firstName": "", "phone": "+1 555 0100"}),
]


@pytest.mark.parametrize("compressed", [False, True], ids=["jsonl", "jsonl.gz"])
@pytest.mark.parametrize("bom", [False, True], ids=["no-bom", "bom"])
@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 6, 7, None])
def test_jsonl_rows_are_the_same_wherever_the_chunks_break(size, bom, compressed):
    data = (BOM if bom else b"") + "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in OBJECTS).encode()
    name = "seg/part.jsonl.gz" if compressed else "seg/part.jsonl"
    assert read(name, gzip.compress(data) if compressed else data, JSONL_COLUMNS, size) == EXPECTED_JSONL


def test_jsonl_bad_lines_are_error_rows_numbered_by_line_and_reading_goes_on():
    lines = [
        json.dumps({"email": "a@example.com", "first": "A"}).encode(),
        b"",                                               # blank: skipped, yet it is line 2
        b'{"email": "b@example.com", "first": ',           # invalid JSON
        json.dumps(["c@example.com", "C"]).encode(),       # not an object
        b'"d@example.com"',                                # not an object either
        json.dumps({"email": "e@example.com", "first": {"given": "E"}}).encode(),  # nested value, mapped field
        json.dumps({"email": ["f@example.com"], "first": "F"}).encode(),
        b'{"email": "g@example.com", "first": "G\xff"}',   # invalid UTF-8
        json.dumps({"email": "h@example.com", "first": "H"}).encode(),
    ]
    data = b"\n".join(lines)
    records = read("a.jsonl", data, {"email": "email", "firstName": "first"}, size=4)
    assert [r.row for r in records] == [1, 3, 4, 5, 6, 7, 8, 9]
    assert records[0] == Record(1, values={"email": "a@example.com", "firstName": "A"})
    assert "JSON" in records[1].error and records[1].values is None
    assert all("not a JSON object" in r.error for r in records[2:4])
    assert "first" in records[4].error and "dict" in records[4].error
    assert "email" in records[5].error and "list" in records[5].error
    assert "UTF-8" in records[6].error
    assert records[7] == Record(9, values={"email": "h@example.com", "firstName": "H"})


def test_jsonl_first_object_without_a_mapped_key_names_the_keys_available():
    data = (json.dumps({"mail": "a@example.com", "Given": "A"}) + "\n").encode()
    with pytest.raises(SegmentError) as raised:
        read("seg/a.jsonl", data, {"email": "email"})
    assert "'email'" in str(raised.value) and "'mail'" in str(raised.value) and "'Given'" in str(raised.value)


def test_blank_lines_before_the_csv_header_are_skipped():
    data = b"\r\n\r\n" + csv_bytes(["Email", "First Name", "Last Name"], [["a@example.com", "A", "B"]])
    records = read("seg/leading-blank.csv", data)
    assert [r.values for r in records] == [{"email": "a@example.com", "firstName": "A", "lastName": "B"}]
