"""Runs: starting them, their pieces (segment blobs and chunks), and the status document.

Table layout (see exports/names.py):
- `runs`, one partition per run: the row "run" (what the run is and, once final, its totals),
  one row per segment blob ("seg-00000") and one per chunk ("chunk-00000").
- `exportruns`, one partition per export: an index row per run, newest first, and the row
  "~active" that holds the export's active run, so that two starts cannot both win.

Counters are never incremented in place: each piece records its own outcome in its own row and the
status document sums the partition. Concurrent workers therefore cannot lose or double an update,
and a redelivered piece simply rewrites its own row.
"""
from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableServiceClient, UpdateMode

from exports.config import utc_now
from exports.names import EXPORT_RUNS_TABLE, RUNS_TABLE

RUN_ROW = "run"
ACTIVE_ROW = "~active"  # sorts after every index row, so listing runs can stop before it
FINAL_STATUSES = ("succeeded", "completed_with_errors", "failed", "cancelled")
ACTIVE_STATUSES = ("queued", "running")
SEGMENT_FINAL = ("split", "failed")
CHUNK_FINAL = ("succeeded", "failed")
MAX_ERRORS = 20  # the status document stays readable; the rejects blob has every row
# A start that crashed before enqueuing its segments would hold the export's lock for ever;
# after this long with nothing enqueued, a new start takes the lock over.
STALE_START_SECONDS = 600


def segment_row(index: int) -> str:
    return f"seg-{index:05d}"


def chunk_row(index: int) -> str:
    return f"chunk-{index:05d}"


def _index_row(started_at_ms: int, run_id: str) -> str:
    return f"{10**13 - started_at_ms:013d}-{run_id}"  # newest first in the export's partition


class ActiveRunConflict(Exception):
    def __init__(self, run_id: str):
        super().__init__(f"run {run_id} of this export is still queued or running")
        self.run_id = run_id


class RunNotFound(LookupError):
    pass


@dataclass(frozen=True)
class RunView:
    """All rows of one run, read together."""

    run: dict
    segments: list[dict]
    chunks: list[dict]

    @property
    def status(self) -> str:
        return self.run["status"]

    @property
    def final(self) -> bool:
        return self.run["status"] in FINAL_STATUSES


class RunStore:
    def __init__(self, tables: TableServiceClient, clock: Callable[[], str] = utc_now,
                 wall_ms: Callable[[], int] = lambda: int(time.time() * 1000)):
        self.runs = tables.get_table_client(RUNS_TABLE)
        self.index = tables.get_table_client(EXPORT_RUNS_TABLE)
        self.clock = clock
        self.wall_ms = wall_ms

    # --- starting ----------------------------------------------------------------------------
    def acquire(self, export_id: str, run_id: str) -> None:
        """Make `run_id` the export's active run, or raise ActiveRunConflict naming the one that is."""
        lock = {"PartitionKey": export_id, "RowKey": ACTIVE_ROW, "runId": run_id, "takenAtMs": float(self.wall_ms())}
        for _ in range(3):
            try:
                self.index.create_entity(lock)
                return
            except ResourceExistsError:
                pass
            try:
                held = self.index.get_entity(export_id, ACTIVE_ROW)
            except ResourceNotFoundError:
                continue  # released in between: try again
            if not self._lock_is_stale(held):
                raise ActiveRunConflict(held["runId"])
            try:
                self.index.update_entity(lock, mode=UpdateMode.REPLACE, etag=held.metadata["etag"],
                                         match_condition=MatchConditions.IfNotModified)
                self._fail_abandoned(held["runId"])
                return
            except (ResourceModifiedError, ResourceNotFoundError):
                continue
        raise ActiveRunConflict(self.index.get_entity(export_id, ACTIVE_ROW)["runId"])

    def _lock_is_stale(self, held: dict) -> bool:
        try:
            run = self.runs.get_entity(held["runId"], RUN_ROW)
        except ResourceNotFoundError:
            return self.wall_ms() - int(held.get("takenAtMs", 0)) > STALE_START_SECONDS * 1000
        if run["status"] in FINAL_STATUSES:
            return True
        return not run.get("segmentsEnqueued") and self.wall_ms() - int(run["startedAtMs"]) > STALE_START_SECONDS * 1000

    def _fail_abandoned(self, run_id: str) -> None:
        try:
            self.runs.update_entity({"PartitionKey": run_id, "RowKey": RUN_ROW, "status": "failed",
                                     "finishedAt": self.clock(),
                                     "errors": json.dumps(["the start of this run was interrupted before its segment "
                                                           "was queued; a later run replaced it"])},
                                    mode=UpdateMode.MERGE)
        except ResourceNotFoundError:
            pass

    def release(self, export_id: str, run_id: str) -> None:
        try:
            held = self.index.get_entity(export_id, ACTIVE_ROW)
            if held["runId"] == run_id:
                self.index.delete_entity(export_id, ACTIVE_ROW, etag=held.metadata["etag"],
                                         match_condition=MatchConditions.IfNotModified)
        except (ResourceNotFoundError, ResourceModifiedError):
            pass  # already released or taken over

    def create_run(self, *, export, connection, trigger: str, blobs: Iterable, buckets: int) -> str:
        """Record a queued run with one row per segment blob; returns the run id."""
        run_id = uuid.uuid4().hex
        self.acquire(export.id, run_id)
        started_ms, started = self.wall_ms(), self.clock()
        blobs = list(blobs)
        run = {
            "PartitionKey": run_id, "RowKey": RUN_ROW, "exportId": export.id, "connectionId": connection.id,
            "hostname": connection.hostname, "apiKeySecretName": connection.apiKeySecretName,
            "listId": export.listId, "mapping": json.dumps(export.mapping.columns()),
            "segmentContainer": export.segmentContainer, "segmentPrefix": export.segmentPrefix,
            "trigger": trigger, "status": "queued", "phase": "splitting", "startedAt": started,
            "startedAtMs": float(started_ms), "segmentsTotal": len(blobs), "buckets": buckets, "segmentsEnqueued": False,
            "errors": "[]",
        }
        rows = [run] + [
            {"PartitionKey": run_id, "RowKey": segment_row(i), "blob": blob.name, "etag": blob.etag,
             "size": blob.size, "status": "queued"}
            for i, blob in enumerate(blobs)
        ]
        self._insert(rows)
        self.index.upsert_entity({"PartitionKey": export.id, "RowKey": _index_row(started_ms, run_id), "runId": run_id,
                                  "trigger": trigger, "status": "queued", "startedAt": started})
        return run_id

    def mark_segments_enqueued(self, run_id: str) -> None:
        self.runs.update_entity({"PartitionKey": run_id, "RowKey": RUN_ROW, "segmentsEnqueued": True},
                                mode=UpdateMode.MERGE)

    # --- reading -----------------------------------------------------------------------------
    def get_run(self, run_id: str) -> dict:
        try:
            return self.runs.get_entity(run_id, RUN_ROW)
        except ResourceNotFoundError:
            raise RunNotFound(f"run {run_id!r} does not exist") from None
        except HttpResponseError as error:
            if error.status_code == 400:  # a run id with characters a key cannot hold
                raise RunNotFound(f"run {run_id!r} does not exist") from None
            raise

    def view(self, run_id: str) -> RunView:
        run, segments, chunks = None, [], []
        for entity in self.runs.query_entities("PartitionKey eq @pk", parameters={"pk": run_id}):
            key = entity["RowKey"]
            if key == RUN_ROW:
                run = entity
            elif key.startswith("seg-"):
                segments.append(entity)
            elif key.startswith("chunk-"):
                chunks.append(entity)
        if run is None:
            raise RunNotFound(f"run {run_id!r} does not exist")
        return RunView(run, segments, chunks)

    def get_piece(self, run_id: str, row: str) -> dict:
        return self.runs.get_entity(run_id, row)

    def list_runs(self, export_id: str, limit: int = 50) -> list[dict]:
        rows = self.index.query_entities("PartitionKey eq @pk and RowKey lt @active",
                                         parameters={"pk": export_id, "active": ACTIVE_ROW}, results_per_page=limit)
        items = []
        for entity in rows:
            items.append(entity)
            if len(items) >= limit:
                break
        return items

    # --- writing pieces ----------------------------------------------------------------------
    def update_piece(self, run_id: str, row: str, fields: dict, etag: str | None = None) -> str:
        """Merge `fields` into a row; with `etag`, only if nobody changed it since (ResourceModifiedError)."""
        entity = {"PartitionKey": run_id, "RowKey": row, **fields}
        if etag is None:
            result = self.runs.update_entity(entity, mode=UpdateMode.MERGE)
        else:
            result = self.runs.update_entity(entity, mode=UpdateMode.MERGE, etag=etag,
                                             match_condition=MatchConditions.IfNotModified)
        return result["etag"]

    def insert_pieces(self, rows: list[dict]) -> None:
        self._insert(rows, upsert=True)

    def _insert(self, rows: list[dict], upsert: bool = False) -> None:
        # One partition, so up to 100 rows go in one entity-group transaction.
        operation = "upsert" if upsert else "create"
        for start in range(0, len(rows), 100):
            self.runs.submit_transaction([(operation, row) for row in rows[start:start + 100]])

    def mark_running(self, run_id: str) -> None:
        run = self.get_run(run_id)
        if run["status"] != "queued":
            return
        try:
            self.update_piece(run_id, RUN_ROW, {"status": "running"}, etag=run.metadata["etag"])
        except ResourceModifiedError:
            pass  # someone else moved it on (to running, or to a final status): either is fine
        self._update_index(run, {"status": "running"})

    def _update_index(self, run: dict, fields: dict) -> None:
        self.index.upsert_entity({"PartitionKey": run["exportId"], "RowKey": _index_row(int(run["startedAtMs"]), run["PartitionKey"]),
                                  **fields}, mode=UpdateMode.MERGE)

    def finish(self, view: RunView, status: str, totals: dict, errors: list[str], rejects_blob: str | None) -> bool:
        """Record the final status once; False when another instance finished the run first."""
        run = view.run
        fields = {"status": status, "phase": "done", "finishedAt": self.clock(), "errors": json.dumps(errors[:MAX_ERRORS]),
                  "rejectsBlob": rejects_blob, "totals": json.dumps(totals)}
        try:
            self.update_piece(run["PartitionKey"], RUN_ROW, fields, etag=run.metadata["etag"])
        except ResourceModifiedError:
            return False
        self._update_index(run, {"status": status, "finishedAt": fields["finishedAt"]})
        self.release(run["exportId"], run["PartitionKey"])
        return True


def totals_of(view: RunView) -> dict:
    """The run's figures, summed from its pieces."""
    rows = sum(int(s.get("rows", 0)) for s in view.segments)
    rejected = sum(int(s.get("rejected", 0)) for s in view.segments) + sum(int(c.get("rejected", 0)) for c in view.chunks)
    duplicates = sum(int(c.get("duplicates", 0)) for c in view.chunks)
    contacts = sum(int(c["contacts"]) if "contacts" in c else int(c.get("records", 0)) for c in view.chunks)
    chunk_status = [c.get("status") for c in view.chunks]
    return {
        "rows": rows, "contacts": contacts, "sent": sum(int(c.get("sent", 0)) for c in view.chunks),
        "rejected": rejected, "duplicates": duplicates,
        "chunks": {"total": len(view.chunks), "succeeded": chunk_status.count("succeeded"),
                   "failed": chunk_status.count("failed")},
    }


def errors_of(view: RunView) -> list[str]:
    errors = list(json.loads(view.run.get("errors") or "[]"))
    for piece in view.segments + view.chunks:
        message = piece.get("error")
        if message and message not in errors:
            errors.append(message)
    return errors[:MAX_ERRORS]


def status_document(view: RunView) -> dict:
    run = view.run
    totals = json.loads(run["totals"]) if run.get("totals") else totals_of(view)
    return {
        "runId": run["PartitionKey"], "exportId": run["exportId"], "trigger": run["trigger"], "status": run["status"],
        **totals,
        "startedAt": run["startedAt"], "finishedAt": run.get("finishedAt"),
        "errors": json.loads(run["errors"]) if view.final else errors_of(view),
        "rejectsBlob": run.get("rejectsBlob"),
    }
