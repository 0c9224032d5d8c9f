"""The rejects file people open in a spreadsheet: no cell runs as a formula, and any rejected value can be written."""
from __future__ import annotations

import csv
import io

import pytest

from exports.run.files import REJECTS_HEADER, csv_line


def cells(line: bytes) -> list[str]:
    return next(csv.reader(io.StringIO(line.decode("utf-8"), newline="")))


@pytest.mark.parametrize("value", ["=1+1", "=HYPERLINK(\"http://x.example\",\"x\")", "+49 30 1", "-2+3", "@SUM(A1:A2)",
                                   "\tx", "\rx"])
def test_a_cell_a_spreadsheet_would_run_as_a_formula_starts_with_a_quote(value):
    written = cells(csv_line(("seg/a.csv", 3, value, value)))
    assert written[2:] == ["'" + value, "'" + value]
    assert written[:2] == ["seg/a.csv", "3"]


@pytest.mark.parametrize("value", ["ann@example.com", "a=b@example.com", "x-y+z@example.com", "O'Brien, \"Jr.\"\nline 2",
                                   "row has 3 fields where the header has 2", ""])
def test_other_cells_are_written_as_they_are(value):
    assert cells(csv_line(("seg/a.csv", 12, value, "reason")))[2] == value


@pytest.mark.parametrize("value", ["e\ud83d@example.com", "caf\udce9@example.com", "\ud83d"])
def test_a_value_utf8_cannot_encode_is_escaped_not_a_crash(value):
    line = csv_line(("seg/a.jsonl", 7, value, "email holds U+D83D"))
    escaped = value.encode("utf-8", errors="backslashreplace").decode("ascii")
    assert cells(line) == ["seg/a.jsonl", "7", escaped, "email holds U+D83D"]


def test_the_header_line_is_unchanged():
    assert csv_line(REJECTS_HEADER) == b"blob,row,email,reason\r\n"
