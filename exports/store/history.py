"""Each export's runs, newest first, in the `exportruns` table (one partition per export).

The index lets the API list an export's runs without scanning every run, also after the export
was deleted. The same partition holds the export's active-run lock (exports/store/lock.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableServiceClient, UpdateMode

from exports.model import Run, RunStatus, Trigger
from exports.names import EXPORT_RUNS_TABLE

LOCK_ROW = "~active"  # sorts after every index row, so listing runs stops before it


def index_row(started_at_ms: int, run_id: str) -> str:
    return f"{10**13 - started_at_ms:013d}-{run_id}"  # newest first in the export's partition


@dataclass(frozen=True)
class IndexEntry:
    run_id: str
    trigger: Trigger
    status: RunStatus
    started_at: str


class RunHistory:
    def __init__(self, tables: TableServiceClient):
        self._table = tables.get_table_client(EXPORT_RUNS_TABLE)

    def add(self, run: Run) -> None:
        self._table.upsert_entity({"PartitionKey": run.export_id, "RowKey": index_row(run.started_at_ms, run.id),
                                   "runId": run.id, "trigger": run.trigger.value, "status": run.status.value,
                                   "startedAt": run.started_at})

    def record_status(self, run: Run, status: RunStatus, finished_at: str | None = None) -> None:
        fields = {"status": status.value, **({"finishedAt": finished_at} if finished_at else {})}
        self._table.upsert_entity({"PartitionKey": run.export_id, "RowKey": index_row(run.started_at_ms, run.id),
                                   **fields}, mode=UpdateMode.MERGE)

    def remove(self, run: Run) -> None:
        try:
            self._table.delete_entity(run.export_id, index_row(run.started_at_ms, run.id))
        except ResourceNotFoundError:
            pass

    def recent(self, export_id: str, limit: int) -> list[IndexEntry]:
        rows = self._table.query_entities("PartitionKey eq @pk and RowKey lt @lock",
                                          parameters={"pk": export_id, "lock": LOCK_ROW}, results_per_page=limit)
        entries = []
        for entity in rows:
            entries.append(IndexEntry(entity["runId"], Trigger(entity["trigger"]), RunStatus(entity["status"]),
                                      entity["startedAt"]))
            if len(entries) >= limit:
                break
        return entries
