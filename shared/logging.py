"""Logging with secret redaction.

Defence in depth: code never formats a secret into a message, and every value read from or
written to Key Vault is registered here so that a handler never emits it even by accident
(an exception text from a library, say).
"""
from __future__ import annotations

import logging
import threading

_MASK = "***"
_secrets: set[str] = set()
_lock = threading.Lock()


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


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            cleaned_exc = redact(text)
            if cleaned_exc != text:
                record.exc_info, record.exc_text = None, cleaned_exc
        return True


_installed = False


def install_redaction() -> None:
    """Attach the filter to the root logger's handlers (and any added later through the root logger)."""
    global _installed
    root = logging.getLogger()
    if not _installed:
        root.addFilter(RedactingFilter())
        _installed = True
    for handler in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


def get_logger(name: str) -> logging.Logger:
    install_redaction()
    logger = logging.getLogger(name)
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())
    return logger
