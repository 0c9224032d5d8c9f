"""What a process running this app sets up once, before any work: called by function_app.py and the CLI.

All four settings are process-wide, which is why they are made here explicitly rather than as a
side effect of importing some module.
"""
from __future__ import annotations

import gc
import logging
from collections.abc import Mapping

from exports.segments.readers import configure_csv
from exports.settings import azure_sdk_log_level
from shared.logging import install_redaction

AZURE_SDK_LOGGERS = ("azure", "urllib3")


def configure_process(environ: Mapping[str, str] | None = None) -> None:
    install_redaction()  # no registered secret reaches any log record, whichever logger or handler
    configure_csv()  # the CSV field limit: a cell past it fails the blob, it never turns into rows
    # The Functions worker sends every record at Information and above to Application Insights, and
    # azure-core logs each storage request and its response at Information: two records per call.
    level = azure_sdk_log_level(environ)
    for name in AZURE_SDK_LOGGERS:
        logging.getLogger(name).setLevel(level)
    # What is loaded by now (the app's modules and the SDKs') lives as long as the process: kept out of
    # the collector's full passes, which would otherwise walk it every time and pause every thread of
    # the process for tens of milliseconds, long enough for a sender to miss its budget slot.
    gc.freeze()
