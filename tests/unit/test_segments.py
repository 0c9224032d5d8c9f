"""Reading segment blobs: streamed CSV and JSON Lines, chunk boundaries anywhere, bad rows kept apart."""
from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import re
import tracemalloc
import zlib
from itertools import cycle

import pytest

from exports.errors import MissingColumns, SegmentError
from exports.run.files import csv_line
from exports.segments.mapping import to_contact
from exports.segments.readers import CSV_FIELD_LIMIT, RECORD_LIMIT, Record, missing_columns, read_records

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


def test_row_numbers_are_a_spreadsheets_blank_lines_skipped_but_counted_a_quoted_line_break_not():
    text = ('email,first\n'
            'a@example.com,"two\nlines"\n'
            '\n'
            'b@example.com,B\n'
            '\r\n'
            '\n'
            'c@example.com,C,extra\n'
            '\r'
            'd@example.com,D\n')
    records = read("a.csv", text.encode(), {"email": "email", "firstName": "first"})
    # What a spreadsheet shows: the header is row 1, the quoted line break stays inside row 2.
    assert [(r.row, (r.values or {}).get("email")) for r in records] == [
        (2, "a@example.com"), (4, "b@example.com"), (7, None), (9, "d@example.com")]
    assert records[0].values["firstName"] == "two\nlines"
    assert "3 fields" in records[2].error


def test_blank_lines_before_the_header_are_counted_too():
    data = b"\r\n\n" + csv_bytes(["Email", "First Name", "Last Name"], [["a@example.com", "A", "B"], ["b@example.com"]])
    records = read("seg/leading-blank.csv", data)
    assert [r.row for r in records] == [4, 5]
    assert records[0].values == {"email": "a@example.com", "firstName": "A", "lastName": "B"}
    assert records[1].error


def test_a_row_with_the_wrong_number_of_fields_is_an_error_and_later_rows_still_come():
    data = csv_bytes(["email", "first"], [["a@example.com", "A"], ["b@example.com", "B", "extra"],
                                           ["c@example.com"], ["d@example.com", "D"]])
    records = read("a.csv", data, {"email": "email", "firstName": "first"}, size=3)
    assert [r.row for r in records] == [2, 3, 4, 5]
    assert records[0] == Record(2, values={"email": "a@example.com", "firstName": "A"})
    assert records[1].values is None and re.search(r"\b3\b", records[1].error) and re.search(r"\b2\b", records[1].error)
    assert records[2].values is None and re.search(r"\b1\b", records[2].error)
    assert records[3] == Record(5, values={"email": "d@example.com", "firstName": "D"})


def read_until_refused(name: str, data, columns, size: int | None = None) -> tuple[list[Record], str]:
    """The records read before the blob was refused, and the refusal; fails when the blob is not refused."""
    records = []
    chunks = data if not isinstance(data, bytes) else chunked(data, size)
    with pytest.raises(SegmentError) as raised:
        for record in read_records(name, chunks, columns):
            records.append(record)
    return records, str(raised.value)


def assert_refused_at(message: str, blob: str, row: int) -> None:
    assert blob in message and re.search(rf"\brow {row}\b", message), message
    assert "nothing of this blob is sent" in message
    assert len(message) < 600


def test_malformed_quoting_fails_the_blob_naming_the_row():
    data = b'email,first\na@example.com,A\n"b@example.com"junk,B\nc@example.com,C\n'
    records, message = read_until_refused("seg/a.csv", data, {"email": "email", "firstName": "first"})
    assert records == [Record(2, values={"email": "a@example.com", "firstName": "A"})]
    assert_refused_at(message, "seg/a.csv", 3)
    assert "not valid CSV" in message


def test_a_quote_never_closed_fails_the_blob():
    data = b'email,first\na@example.com,"A\nb@example.com,B\n'
    records, message = read_until_refused("seg/a.csv", data, {"email": "email", "firstName": "first"}, size=5)
    assert records == []
    assert_refused_at(message, "seg/a.csv", 2)


def test_the_lines_of_a_quoted_field_over_the_limit_never_become_rows():
    # The field goes past the limit while its lines look like rows; once the reader gives up,
    # those lines must not be read as rows (they would be sent).
    inside = "".join(f"smuggled{i}@example.com,S\n" for i in range(CSV_FIELD_LIMIT // 20))
    data = f'email,first\na@example.com,A\nb@example.com,"{inside}"\nc@example.com,C\n'.encode()
    records, message = read_until_refused("seg/a.csv", data, {"email": "email", "firstName": "first"}, size=1 << 16)
    assert records == [Record(2, values={"email": "a@example.com", "firstName": "A"})]
    assert_refused_at(message, "seg/a.csv", 3)
    assert f"{RECORD_LIMIT:,} characters" in message


def test_a_record_of_many_quoted_multi_line_fields_over_the_record_limit_fails_the_blob():
    field = quote(("y" * 999 + "\n") * 100)  # each field far under the limit, the record over it
    fields = RECORD_LIMIT // len(field) + 1
    data = (",".join(["email", *(f"c{i}" for i in range(fields))]) + "\n"
            + ",".join(["a@example.com", *[field] * fields]) + "\n").encode()
    records, message = read_until_refused("seg/a.csv", data, {"email": "email"}, size=1 << 16)
    assert records == []
    assert_refused_at(message, "seg/a.csv", 2)
    assert f"{RECORD_LIMIT:,}" in message


@pytest.mark.parametrize("bad", [b"\xff", b"\xc3", b"\xe6\x9d", b"\xed\xa0\x80"], ids=["ff", "cut-2", "cut-3", "surrogate"])
@pytest.mark.parametrize("size", [1, 2, 5])
def test_invalid_utf8_in_a_mapped_column_rejects_only_its_row(bad, size):
    data = b"email,first\r\na@example.com,\xc3\xa9\r\nb@example.com,X" + bad + b"Y\r\nc@example.com,\xe6\x9d\x8e\r\n"
    records = read("a.csv", data, {"email": "email", "firstName": "first"}, size=size)
    assert records[0] == Record(2, values={"email": "a@example.com", "firstName": "é"})
    assert records[1].row == 3
    contact, reason = to_contact(records[1].values)
    assert contact is None and "firstName" in reason and "UTF-8" in reason
    assert records[2] == Record(4, values={"email": "c@example.com", "firstName": "李"})


def test_invalid_utf8_in_a_column_not_mapped_lets_the_row_through():
    # Only mapped values are ever sent: refusing the row would lose a good contact.
    data = b"email,notes,first\r\na@example.com,caf\xe9,\xc3\xa9\r\n"
    records = read("a.csv", data, {"email": "email", "firstName": "first"})
    assert records == [Record(2, values={"email": "a@example.com", "firstName": "é"})]
    assert to_contact(records[0].values) == ({"email": "a@example.com", "first_name": "é"}, None)


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
        b'{"email": "g@example.com", "first": "G\xff"}',   # invalid UTF-8 in a mapped value
        b'{"email": "h@example.com", "first": "H", "notes": "caf\xe9"}',  # and in one not mapped
    ]
    data = b"\n".join(lines)
    records = read("a.jsonl", data, {"email": "email", "firstName": "first"}, size=4)
    assert [r.row for r in records] == [1, 3, 4, 5, 6, 7, 8, 9]
    assert records[0] == Record(1, values={"email": "a@example.com", "firstName": "A"})
    assert "JSON" in records[1].error and records[1].values is None
    assert all("not a JSON object" in r.error for r in records[2:4])
    assert "first" in records[4].error and "dict" in records[4].error
    assert "email" in records[5].error and "list" in records[5].error
    assert "UTF-8" in to_contact(records[6].values)[1]
    assert records[7] == Record(9, values={"email": "h@example.com", "firstName": "H"})


def test_hostile_json_values_reject_only_their_line():
    lines = [
        json.dumps({"email": "a@example.com", "first": "A"}),
        '{"email": "b@example.com", "score": ' + "9" * 5000 + "}",               # too many digits for int()
        '{"email": "c@example.com", "tree": ' + "[" * 100_000 + "]" * 100_000 + "}",  # too deep to parse
        json.dumps({"email": "d@example.com", "first": "Ann"}),
    ]
    records = read("seg/a.jsonl", "\n".join(lines).encode(), {"email": "email", "firstName": "first"}, size=4096)
    assert [r.row for r in records] == [1, 2, 3, 4]
    assert records[0] == Record(1, values={"email": "a@example.com", "firstName": "A"})
    assert records[1].values is None and "digits" in records[1].error
    assert records[2].values is None and "nested" in records[2].error
    assert records[3] == Record(4, values={"email": "d@example.com", "firstName": "Ann"})


@pytest.mark.parametrize("field,key", [("email", "email"), ("firstName", "first")])
def test_a_lone_surrogate_in_a_mapped_json_value_rejects_the_row_and_its_rejects_line_can_be_written(field, key):
    item = {"email": "ann@example.com", "first": "Ann"}
    item[key] = "\ud83d" + item[key]  # half of an emoji escaped as a pair: json.dumps writes "\ud83d"
    data = (json.dumps(item) + "\n" + json.dumps({"email": "bo@example.com"}) + "\n").encode()
    records = read("seg/a.jsonl", data, {"email": "email", "firstName": "first"})
    contact, reason = to_contact(records[0].values)
    assert contact is None and field in reason and "surrogate" in reason
    line = csv_line(("seg/a.jsonl", records[0].row, records[0].values["email"], reason)).decode("utf-8")
    assert next(csv.reader(io.StringIO(line)))[:2] == ["seg/a.jsonl", "1"]
    assert to_contact(records[1].values) == ({"email": "bo@example.com"}, None)


# --- JSON Lines columns ----------------------------------------------------------------------------
JL_COLUMNS = {"email": "email", "firstName": "First", "phone": "phone"}


def test_jsonl_keys_are_looked_up_per_line_a_missing_optional_key_is_empty_a_missing_email_rejects():
    objects = [{"Email": "a@example.com"},                      # writers leave out keys whose value is null
               {"email": "b@example.com", "first": "B", "phone": "+1 555"},
               {"first": "C", "phone": "+1 556"},               # no email key at all
               {"email": None, "first": "D"}]
    data = "".join(json.dumps(o) + "\n" for o in objects).encode()
    records = read("seg/a.jsonl", data, JL_COLUMNS)
    assert records[0] == Record(1, values={"email": "a@example.com", "firstName": "", "phone": ""})
    assert records[1] == Record(2, values={"email": "b@example.com", "firstName": "B", "phone": "+1 555"})
    assert records[2].row == 3 and records[2].values is None and "'email'" in records[2].error
    assert to_contact(records[3].values) == (None, "email is empty")


def test_the_save_time_probe_of_json_lines_reports_a_key_in_no_object_only():
    data = (json.dumps({"email": "a@example.com"}) + "\n" + json.dumps({"email": "b@example.com", "first": "B"}) + "\n"
            + json.dumps({"EMAIL": "c@example.com", "mobile": "1"}) + "\n").encode()
    assert missing_columns("seg/a.jsonl", data, {"email": "email", "firstName": "first"}) is None
    problem = missing_columns("seg/a.jsonl", data, {"email": "email", "phone": "phone"})
    assert isinstance(problem, MissingColumns) and problem.missing == ["phone"]
    assert "seg/a.jsonl" in str(problem) and "'phone' not found" in str(problem)
    assert "the columns available are 'email', 'first', 'mobile'" in str(problem)


def test_the_probe_of_a_gzip_cut_short_judges_by_the_objects_it_holds():
    lines = "".join(json.dumps({"email": f"p{i}@example.com", "first": f"{i:x}" * 20}) + "\n" for i in range(20_000))
    compressed = gzip.compress(lines.encode())
    probe = compressed[:len(compressed) // 3]
    assert missing_columns("seg/a.jsonl.gz", probe, {"email": "email", "firstName": "first"}) is None
    assert missing_columns("seg/a.jsonl.gz", probe, {"email": "e-mail"}).missing == ["e-mail"]


def test_a_probe_without_any_object_cannot_tell():
    assert missing_columns("seg/a.jsonl", b'["not", "objects"]\n{"cut', {"email": "email"}) is None


# --- bounded messages ------------------------------------------------------------------------------
def test_a_header_of_very_many_columns_gives_a_short_message_naming_a_few_and_the_count():
    header = [f"col{i}" for i in range(100_000)]
    message = read_until_refused("seg/wide.csv", (",".join(header) + "\n").encode(), {"email": "Email"})[1]
    assert len(message) < 600
    assert "'Email' not found" in message and "'col0'" in message and "'col9'" in message
    assert "'col10'" not in message and "100,000 in all" in message


def test_long_column_names_are_cut_in_messages():
    long_name = "N" * 100_000
    message = read_until_refused("seg/a.csv", f"{long_name},x\n".encode(), {"email": "E" * 100_000})[1]
    assert len(message) < 600 and "'NNNN" in message and "'EEEE" in message


def test_a_long_mapped_column_twice_gives_a_short_message():
    long_name = "N" * 100_000
    _, message = read_until_refused("seg/a.csv", f"{long_name},{long_name.lower()}\n".encode(), {"email": long_name})
    assert len(message) < 600 and "column 1" in message and "column 2" in message


def test_the_json_lines_probe_message_is_bounded_too():
    data = (json.dumps({f"key{i}": i for i in range(20_000)}) + "\n").encode()
    problem = missing_columns("seg/a.jsonl", data, {"email": "email"})
    assert len(str(problem)) < 600 and "20,000 in all" in str(problem)


# --- a mapped column twice -------------------------------------------------------------------------
def test_a_mapped_column_twice_in_the_header_is_refused_naming_both_positions():
    data = csv_bytes(["Email", "First Name", " EMAIL "], [["a@example.com", "A", "b@example.com"]])
    records, message = read_until_refused("seg/a.csv", data, {"email": "email", "firstName": "first name"})
    assert records == []
    assert "seg/a.csv" in message and "'Email'" in message and "' EMAIL '" in message
    assert "column 1" in message and "column 3" in message


def test_a_column_not_mapped_may_be_there_twice():
    data = csv_bytes(["Email", "x", "X"], [["a@example.com", "1", "2"]])
    assert read("seg/a.csv", data, {"email": "email"}) == [Record(2, values={"email": "a@example.com"})]


# --- bounded memory --------------------------------------------------------------------------------
FILLER = b"x" * (1 << 16)


def lazily(head: bytes, filler_bytes: int, tail: bytes):
    """head, then `filler_bytes` of x without a line break, then tail: generated as read, never held."""
    yield head
    for _ in range(filler_bytes // len(FILLER)):
        yield FILLER
    yield tail


def gzipped(chunks):
    compressor = zlib.compressobj(1, wbits=31)  # the fastest level; 31: a gzip container
    for chunk in chunks:
        if compressed := compressor.compress(chunk):
            yield compressed
    yield compressor.flush()


def peak_memory(read_all):
    tracemalloc.start()
    try:
        result = read_all()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("compressed", [False, True], ids=["csv", "csv.gz"])
def test_a_csv_line_of_hundreds_of_mb_fails_the_blob_in_bounded_memory(compressed):
    size = 512 << 20
    chunks = lazily(b"email,notes\na@example.com,ok\nb@example.com,", size, b"\nc@example.com,ok\n")
    name = "seg/huge.csv.gz" if compressed else "seg/huge.csv"
    (records, message), peak = peak_memory(
        lambda: read_until_refused(name, gzipped(chunks) if compressed else chunks, {"email": "email"}))
    assert records == [Record(2, values={"email": "a@example.com"})]
    assert_refused_at(message, name, 3)
    assert "line longer than" in message
    assert peak < 32 << 20, f"{peak:,} bytes at the peak"


@pytest.mark.parametrize("compressed", [False, True], ids=["jsonl", "jsonl.gz"])
def test_a_json_line_of_hundreds_of_mb_rejects_that_line_only_in_bounded_memory(compressed):
    size = 160 << 20
    chunks = lazily(b'{"email": "a@example.com"}\n{"email": "b@example.com", "notes": "', size,
                    b'"}\n{"email": "c@example.com"}\n')
    name = "seg/huge.jsonl.gz" if compressed else "seg/huge.jsonl"
    records, peak = peak_memory(
        lambda: list(read_records(name, gzipped(chunks) if compressed else chunks, {"email": "email"})))
    assert [(r.row, r.values) for r in records] == [(1, {"email": "a@example.com"}), (2, None),
                                                    (3, {"email": "c@example.com"})]
    assert "longer than" in records[1].error
    assert peak < 32 << 20, f"{peak:,} bytes at the peak"


# --- encodings and delimiters people have ------------------------------------------------------------
def people_text() -> str:
    return people_csv().decode("utf-8")


@pytest.mark.parametrize("encoding,bom", [("utf-16-le", codecs.BOM_UTF16_LE), ("utf-16-be", codecs.BOM_UTF16_BE)])
@pytest.mark.parametrize("compressed", [False, True], ids=["csv", "csv.gz"])
@pytest.mark.parametrize("size", [1, 3, None])
def test_utf16_with_a_bom_is_read(encoding, bom, compressed, size):
    data = bom + people_text().encode(encoding)
    name = "seg/u16.csv.gz" if compressed else "seg/u16.csv"
    assert read(name, gzip.compress(data) if compressed else data, size=size) == expected_people()


def test_excel_unicode_text_utf16_tab_separated_is_read():
    text = people_text().replace('","', '"\t"')
    assert read("seg/unicode.csv", codecs.BOM_UTF16_LE + text.encode("utf-16-le")) == expected_people()


@pytest.mark.parametrize("compressed", [False, True], ids=["csv", "csv.gz"])
def test_a_windows_1252_csv_is_refused_once_saying_what_to_do(compressed):
    data = "Email,First Name\r\nzoe@example.com,Zoë\r\nmuller@example.com,Müller\r\n".encode("cp1252")
    name = "seg/excel.csv.gz" if compressed else "seg/excel.csv"
    records, message = read_until_refused(name, gzip.compress(data) if compressed else data,
                                          {"email": "email", "firstName": "first name"})
    assert records == []
    assert name in message and "Windows-1252" in message and "CSV UTF-8" in message and "line 2" in message
    assert "0xEB" in message and "nothing of this blob is sent" in message


def test_a_utf8_csv_with_a_stray_windows_1252_byte_rejects_only_that_row():
    data = b"email,first\r\na@example.com,A\r\nb@example.com,M\xfcller\r\nc@example.com,\xc3\xa9\r\n"
    records = read("seg/a.csv", data, {"email": "email", "firstName": "first"})
    assert [r.row for r in records] == [2, 3, 4]
    assert "UTF-8" in to_contact(records[1].values)[1]
    assert records[2].values == {"email": "c@example.com", "firstName": "é"}


@pytest.mark.parametrize("delimiter", [";", "\t"], ids=["semicolon", "tab"])
@pytest.mark.parametrize("bom", [False, True], ids=["no-bom", "bom"])
def test_a_header_without_commas_but_with_semicolons_or_tabs_sets_the_delimiter(delimiter, bom):
    text = people_text().replace('","', f'"{delimiter}"')
    assert read("seg/europe.csv", (BOM if bom else b"") + text.encode(), size=3) == expected_people()


def test_semicolons_in_a_comma_separated_file_stay_data():
    data = b"email,notes\r\na@example.com,one;two\r\n"
    assert read("seg/a.csv", data, {"email": "email", "lastName": "notes"}) == [
        Record(2, values={"email": "a@example.com", "lastName": "one;two"})]
