"""What a process running this app sets up once, before any work: called by function_app.py and the CLI.

Both settings are process-wide, which is why they are made here explicitly rather than as a side
effect of importing some module.
"""
from __future__ import annotations

from exports.segments.readers import configure_csv
from shared.logging import install_redaction


def configure_process() -> None:
    install_redaction()  # no registered secret reaches any log record, whichever logger or handler
    configure_csv()  # the CSV field limit that makes a huge cell a rejected row, not a failed blob
