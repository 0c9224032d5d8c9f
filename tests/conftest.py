"""Session-wide set-up for both tiers: the process configured as the app's startup does, every log
record kept (so a test can prove no secret reached one), and the suite's contract and leak checks."""
from __future__ import annotations

import logging

import pytest

from exports.startup import configure_process

# Session-wide checks: responses against exports/openapi.json, no API key in any log record.
pytest_plugins = ("tests.support.suite_checks",)

configure_process()


class _Records(logging.Handler):
    """Every log record of the session, formatted, so a test can prove no secret reached a log line."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


_records = _Records()
_records.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))


@pytest.fixture(scope="session")
def log_lines():
    root = logging.getLogger()
    root.addHandler(_records)
    root.setLevel(logging.DEBUG)
    yield _records.lines
