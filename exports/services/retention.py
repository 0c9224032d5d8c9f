"""Retention: a finished run's history and rejects report (emails, with reasons) are kept for
EXPORT_RETENTION_DAYS, then deleted by a daily sweep. The run's other working files are deleted
when it finishes (exports/run/finish.py); the storage lifecycle policy is the backstop for both.
"""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from exports.run.files import delete_blobs, run_prefix

if TYPE_CHECKING:
    from exports.context import AppContext

log = logging.getLogger(__name__)
DAY_MS = 24 * 3600 * 1000


def sweep_expired_runs(ctx: AppContext, now_ms: int | None = None) -> list[str]:
    """Delete every final run older than the retention period, with its files; the ids deleted."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    expired = ctx.runs.finished_before(now_ms - ctx.settings.retention_days * DAY_MS)
    for run in expired:
        delete_blobs(ctx.runs_container, run_prefix(run.id))
        ctx.history.remove(run)
        ctx.runs.delete_run(run.id)  # last: while it exists, a failed sweep is simply done again tomorrow
    if expired:
        log.info("retention: %d run(s) older than %d days deleted", len(expired), ctx.settings.retention_days)
    return [run.id for run in expired]
