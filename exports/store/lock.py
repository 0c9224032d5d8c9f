"""The active-run lock: at most one queued or running run per export, whatever starts it.

The lock is the row "~active" in the export's `exportruns` partition, created with a
conditional insert, so two starts (an HTTP request and the timer, say) cannot both win.
A start that crashed before queuing its segment would hold the lock for ever, so a lock whose
run is final, or that has queued nothing for STALE_START_SECONDS, is taken over.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableServiceClient, UpdateMode

from exports.errors import RunInProgress, RunNotFound
from exports.names import EXPORT_RUNS_TABLE
from exports.store.history import LOCK_ROW
from exports.store.runs import RunStore

STALE_START_SECONDS = 600
ABANDONED = "the start of this run was interrupted before its segment was queued; a later run replaced it"


class ActiveRunLock:
    def __init__(self, tables: TableServiceClient, runs: RunStore,
                 wall_ms: Callable[[], int] = lambda: int(time.time() * 1000)):
        self._table = tables.get_table_client(EXPORT_RUNS_TABLE)
        self._runs = runs
        self.wall_ms = wall_ms

    def acquire(self, export_id: str, run_id: str) -> None:
        """Make `run_id` the export's active run, or raise RunInProgress naming the one that is."""
        lock = {"PartitionKey": export_id, "RowKey": LOCK_ROW, "runId": run_id, "takenAtMs": float(self.wall_ms())}
        for _ in range(3):
            try:
                self._table.create_entity(lock)
                return
            except ResourceExistsError:
                pass
            try:
                held = self._table.get_entity(export_id, LOCK_ROW)
            except ResourceNotFoundError:
                continue  # released in between: try again
            if not self._is_stale(held):
                raise RunInProgress(held["runId"])
            try:
                self._table.update_entity(lock, mode=UpdateMode.REPLACE, etag=held.metadata["etag"],
                                          match_condition=MatchConditions.IfNotModified)
            except (ResourceModifiedError, ResourceNotFoundError):
                continue
            self._runs.fail_abandoned(held["runId"], ABANDONED)
            return
        raise RunInProgress(self._table.get_entity(export_id, LOCK_ROW)["runId"])

    def release(self, export_id: str, run_id: str) -> None:
        try:
            held = self._table.get_entity(export_id, LOCK_ROW)
            if held["runId"] == run_id:
                self._table.delete_entity(export_id, LOCK_ROW, etag=held.metadata["etag"],
                                          match_condition=MatchConditions.IfNotModified)
        except (ResourceNotFoundError, ResourceModifiedError):
            pass  # already released or taken over

    def _is_stale(self, held: dict) -> bool:
        stale_after_ms = STALE_START_SECONDS * 1000
        try:
            run = self._runs.get_run(held["runId"])
        except RunNotFound:
            return self.wall_ms() - int(held.get("takenAtMs", 0)) > stale_after_ms
        if run.final:
            return True
        return not run.segments_enqueued and self.wall_ms() - run.started_at_ms > stale_after_ms
