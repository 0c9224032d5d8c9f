"""Logging with secret redaction, installed once at startup (install_redaction).

Defence in depth: code never formats a secret into a message, and every value read from or
written to Key Vault is registered here so that no log record carries it even by accident (an
exception text from a library, say). Redaction happens where records are made (the log record
factory), so it covers every logger and every handler, including those the Functions host adds.
"""
from __future__ import annotations

import logging
import threading

_MASK = "***"
_secrets: set[str] = set()
_lock = threading.Lock()
_installed = False


def register_secret(value: str | None) -> None:
    if value and len(value) >= 6:  # very short strings would mask ordinary words
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    with _lock:
        secrets = tuple(_secrets)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, _MASK)
    return text


def _redact_record(record: logging.LogRecord) -> None:
    if not _secrets:
        return
    message = record.getMessage()
    cleaned = redact(message)
    if cleaned != message:
        record.msg, record.args = cleaned, None
    if record.exc_info and record.exc_info[1] is not None:
        text = logging.Formatter().formatException(record.exc_info)
        cleaned_exc = redact(text)
        if cleaned_exc != text:
            record.exc_info, record.exc_text = None, cleaned_exc


def install_redaction() -> None:
    """Redact registered secrets from every log record made from now on, in this process."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    make_record = logging.getLogRecordFactory()

    def redacting_factory(*args, **kwargs) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        _redact_record(record)
        return record

    logging.setLogRecordFactory(redacting_factory)
