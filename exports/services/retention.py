"""Retention: a finished run's history and reports (rejects and preview, which hold emails) are kept
for EXPORT_RETENTION_DAYS, then deleted by a daily sweep. The run's other working files are deleted
when it finishes (exports/run/finish.py); the storage lifecycle policy is the backstop for both.
An export's sync state is kept while the export exists; the sweep deletes any left by an export
that is gone (a chunk that was still writing when the export was deleted).
"""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from exports.run.files import run_prefix
from shared.storage import delete_blobs

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


def sweep_orphaned_states(ctx: AppContext) -> list[str]:
    """Delete the sync state of every export that no longer exists; the export ids whose state was deleted."""
    orphaned = sorted(export_id for export_id in ctx.sync.export_ids() if ctx.config.find_export(export_id) is None)
    for export_id in orphaned:
        ctx.sync.delete_export(export_id)
    if orphaned:
        log.info("retention: the sync state of %d deleted export(s) removed", len(orphaned))
    return orphaned
