"""Which occurrence of its schedule each export was last started for: a row in the export's `exportruns` partition.

Claimed with a conditional write, so one occurrence starts an export once however many instances
run the timer, and a timer that ticks late, twice, or after hours down starts a missed export
once (the latest occurrence), not once per occurrence it missed.
"""
from __future__ import annotations

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableServiceClient, UpdateMode

from exports.names import EXPORT_RUNS_TABLE

SCHEDULE_ROW = "~schedule"  # sorts after every index row (and the lock), so listing runs never reads it


class ScheduleStore:
    def __init__(self, tables: TableServiceClient):
        self._table = tables.get_table_client(EXPORT_RUNS_TABLE)

    def claim(self, export_id: str, occurrence: str) -> bool:
        """Record `occurrence` (a UTC timestamp) as the export's last started one: False when it, or a later
        one, already was, by this instance or another."""
        row = {"PartitionKey": export_id, "RowKey": SCHEDULE_ROW, "lastOccurrence": occurrence}
        try:
            self._table.create_entity(row)
            return True
        except ResourceExistsError:
            pass
        try:
            held = self._table.get_entity(export_id, SCHEDULE_ROW)
            if held["lastOccurrence"] >= occurrence:  # one timestamp format throughout: text order is time order
                return False
            self._table.update_entity(row, mode=UpdateMode.REPLACE, etag=held.metadata["etag"],
                                      match_condition=MatchConditions.IfNotModified)
            return True
        except (ResourceModifiedError, ResourceNotFoundError):
            return False  # another instance claimed it meanwhile (or the export is being deleted)

    def last(self, export_id: str) -> str | None:
        try:
            return self._table.get_entity(export_id, SCHEDULE_ROW)["lastOccurrence"]
        except ResourceNotFoundError:
            return None

    def forget(self, export_id: str) -> None:
        try:
            self._table.delete_entity(export_id, SCHEDULE_ROW)
        except ResourceNotFoundError:
            pass
