"""What a process sets up at startup, and only then: log redaction, the CSV field limit, the collector."""
from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

from shared.logging import register_secret

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_app_modules_changes_no_process_state_until_startup():
    code = (
        "import csv, gc, logging\n"
        "default_limit, default_factory = csv.field_size_limit(), logging.getLogRecordFactory()\n"
        "import exports.segments.readers, exports.run.send, exports.services.exports, shared.logging\n"
        "assert csv.field_size_limit() == default_limit, 'the CSV limit changed at import'\n"
        "assert logging.getLogRecordFactory() is default_factory, 'redaction was installed at import'\n"
        "assert gc.get_freeze_count() == 0, 'the collector was told at import'\n"
        "from exports.startup import configure_process\n"
        "configure_process()\n"
        "assert csv.field_size_limit() == exports.segments.readers.CSV_FIELD_LIMIT != default_limit\n"
        "assert logging.getLogRecordFactory() is not default_factory\n"
        "assert gc.get_freeze_count() > 10_000, 'the modules loaded are out of the full collections'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


def test_a_registered_secret_is_masked_in_messages_and_tracebacks_whatever_the_handler():
    # The suite's conftest ran configure_process(); a handler added afterwards, on a logger of its
    # own that does not propagate, still never sees the secret: redaction happens where records are made.
    register_secret("super-secret-value-42")
    handler = _Collect()
    log = logging.getLogger("tests.redaction.isolated")
    log.propagate, log.level = False, logging.INFO
    log.addHandler(handler)
    try:
        log.info("calling with %s", "super-secret-value-42")
        try:
            raise RuntimeError("failed with super-secret-value-42")
        except RuntimeError:
            log.exception("boom")
    finally:
        log.removeHandler(handler)
    formatter = logging.Formatter()
    text = "\n".join(formatter.format(record) for record in handler.records)
    assert len(handler.records) == 2
    assert "super-secret-value-42" not in text
    assert text.count("***") >= 2
