"""Runs and their pieces in the `runs` table, and the claim/checkpoint protocol of chunks.

One partition per run: the row "run" (what the run is and, once final, its totals), one row per
segment blob ("seg-00000") and one per chunk ("chunk-00000"). Counters are never incremented in
place: each piece records its own outcome in its own row and the run's figures are their sum
(model.RunView.totals), so concurrent workers cannot lose or double an update, and a
redelivered piece simply rewrites its own row.

Steps that more than one instance may attempt at once (planning, finishing, claiming a chunk)
are conditional on the row's ETag: exactly one wins, the others learn it and stop.
"""
from __future__ import annotations

import json
from collections.abc import Callable

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableServiceClient, TableTransactionError, UpdateMode

from exports.errors import PieceNotFound, RunNotFound
from exports.model import (
    MAX_ERRORS,
    REMAINDER_BUCKET,
    Cancellation,
    Chunk,
    ChunkStatus,
    Leavers,
    Mapping,
    PendingImport,
    Phase,
    Run,
    RunMode,
    RunStatus,
    RunView,
    Segment,
    SegmentStatus,
    Totals,
    Trigger,
)
from exports.names import RUNS_TABLE

RUN_ROW = "run"
_SEGMENT_PREFIX, _CHUNK_PREFIX, _LEAVE_PREFIX = "seg-", "chunk-", "leave-"
_TRANSACTION_ROWS = 100  # an entity-group transaction takes at most 100 rows of one partition


def segment_row(index: int) -> str:
    return f"{_SEGMENT_PREFIX}{index:05d}"


def chunk_row(index: int, leaving: bool = False) -> str:
    """A chunk's row; with `leaving`, the row of its bucket's piece of the leaver pass."""
    return f"{_LEAVE_PREFIX if leaving else _CHUNK_PREFIX}{index:05d}"


class Superseded(Exception):
    """Another delivery of this chunk took it over, or it is final already: this one stops."""


class StopRequested(Exception):
    """The run was cancelled while this delivery sent its chunk (RunStore.request_stop): it sends nothing more."""


class RunStore:
    def __init__(self, tables: TableServiceClient, clock: Callable[[], str]):
        self._table = tables.get_table_client(RUNS_TABLE)
        self.clock = clock

    # --- creating ----------------------------------------------------------------------------
    def create_run(self, run: Run, segments: list[Segment]) -> None:
        rows = [_run_entity(run)] + [_segment_entity(s) for s in segments]
        self._insert(rows, operation="create")

    def add_chunks(self, chunks: list[Chunk]) -> None:
        """Planned chunks, created once: a row already there (another planner's, or one a redelivered planner
        wrote before it crashed) stays as it is, whatever a worker has recorded on it since."""
        rows = [_chunk_entity(c) for c in chunks]
        for start in range(0, len(rows), _TRANSACTION_ROWS):
            batch = rows[start:start + _TRANSACTION_ROWS]
            try:
                self._table.submit_transaction([("create", row) for row in batch])
            except TableTransactionError:  # some row of the batch exists: the others one at a time
                for row in batch:
                    try:
                        self._table.create_entity(row)
                    except ResourceExistsError:
                        pass

    def add_chunk_once(self, chunk: Chunk) -> None:
        """A chunk that several workers may decide to add at once: the first one's row stands."""
        try:
            self._table.create_entity(_chunk_entity(chunk))
        except ResourceExistsError:
            pass

    def _insert(self, rows: list[dict], operation: str) -> None:
        for start in range(0, len(rows), _TRANSACTION_ROWS):
            self._table.submit_transaction([(operation, row) for row in rows[start:start + _TRANSACTION_ROWS]])

    # --- reading -----------------------------------------------------------------------------
    def get_run(self, run_id: str) -> Run:
        return _run(self._get(run_id, RUN_ROW, RunNotFound, run_id))

    def view(self, run_id: str) -> RunView:
        run, segments, chunks, leaves = None, [], [], []
        for entity in self._query(run_id):
            key = entity["RowKey"]
            if key == RUN_ROW:
                run = _run(entity)
            elif key.startswith(_SEGMENT_PREFIX):
                segments.append(_segment(entity))
            elif key.startswith(_CHUNK_PREFIX):
                chunks.append(_chunk(entity))
            elif key.startswith(_LEAVE_PREFIX):
                leaves.append(_chunk(entity))
        if run is None:
            raise RunNotFound(run_id)
        return RunView(run, tuple(segments), tuple(chunks), tuple(leaves))

    def get_segment(self, run_id: str, index: int) -> Segment:
        return _segment(self._get(run_id, segment_row(index), PieceNotFound, f"{run_id}/{segment_row(index)}"))

    def get_chunk(self, run_id: str, index: int, leaving: bool = False) -> Chunk:
        row = chunk_row(index, leaving)
        return _chunk(self._get(run_id, row, PieceNotFound, f"{run_id}/{row}"))

    def segments(self, run_id: str) -> list[Segment]:
        """Every segment row of the run in one query (a worker reads them between two chunks)."""
        rows = self._table.query_entities("PartitionKey eq @pk and RowKey ge @first and RowKey lt @after",
                                          parameters={"pk": run_id, "first": segment_row(0), "after": _SEGMENT_PREFIX + "~"})
        return sorted((_segment(e) for e in rows), key=lambda s: s.index)

    def any_chunk_to_compare(self, run_id: str) -> bool:
        """Whether a bucket's chunk has neither compared nor finished, in a query of one row at most: the
        question every chunk asks as it compares and as it ends, which a view of every row (growing with
        the run's chunks) would answer at a cost that grows with the square of the chunks."""
        rows = self._table.query_entities(
            "PartitionKey eq @pk and RowKey ge @first and RowKey lt @after and compared eq false"
            " and status ne @succeeded and status ne @failed and bucket ne @remainder",
            parameters={"pk": run_id, "first": chunk_row(0), "after": _CHUNK_PREFIX + "~", "remainder": REMAINDER_BUCKET,
                        "succeeded": ChunkStatus.SUCCEEDED.value, "failed": ChunkStatus.FAILED.value},
            select=["RowKey"], results_per_page=1)
        return next(iter(rows), None) is not None

    def finished_before(self, started_before_ms: int) -> list[Run]:
        """Final runs that started before the time given (the retention sweep's candidates)."""
        rows = self._table.query_entities("RowKey eq @row and startedAtMs lt @before",
                                          parameters={"row": RUN_ROW, "before": float(started_before_ms)})
        return [run for run in (_run(e) for e in rows) if run.final]

    def delete_run(self, run_id: str) -> None:
        """Every row of the run: the run, its segments and chunks."""
        keys = [e["RowKey"] for e in self._table.query_entities("PartitionKey eq @pk", parameters={"pk": run_id},
                                                                 select=["RowKey"])]
        for start in range(0, len(keys), _TRANSACTION_ROWS):
            self._table.submit_transaction([("delete", {"PartitionKey": run_id, "RowKey": key})
                                            for key in keys[start:start + _TRANSACTION_ROWS]])

    def _get(self, run_id: str, row: str, not_found, what: str) -> dict:
        try:
            return self._table.get_entity(run_id, row)
        except ResourceNotFoundError:
            raise not_found(what) from None
        except HttpResponseError as error:
            if error.status_code == 400:  # an id with characters a key cannot hold
                raise not_found(what) from None
            raise

    def _query(self, run_id: str):
        try:
            yield from self._table.query_entities("PartitionKey eq @pk", parameters={"pk": run_id})
        except HttpResponseError as error:
            if error.status_code == 400:
                raise RunNotFound(run_id) from None
            raise

    # --- the run row -------------------------------------------------------------------------
    def mark_segments_enqueued(self, run_id: str) -> None:
        self._merge(run_id, RUN_ROW, {"segmentsEnqueued": True})

    def mark_running(self, run: Run) -> bool:
        """queued -> running; False when the run had moved on already (to running, or to a final status)."""
        if run.status is not RunStatus.QUEUED:
            return False
        return self._merge_if_unchanged(run.id, RUN_ROW, {"status": RunStatus.RUNNING.value}, run.etag)

    def start_sending(self, run: Run) -> bool:
        """splitting -> sending; True for the one instance that gets to plan the chunks."""
        return self._merge_if_unchanged(run.id, RUN_ROW, {"phase": Phase.SENDING.value}, run.etag)

    def request_cancel(self, run: Run, actor: str, reason: str) -> bool:
        return self._merge_if_unchanged(run.id, RUN_ROW, {
            "cancelRequested": True, "cancelRequestedBy": actor, "cancelRequestedAt": self.clock(),
            "cancelReason": reason}, run.etag)

    def finish(self, run: Run, status: RunStatus, totals: Totals, errors: list[str], rejects_blob: str | None,
               preview_blob: str | None = None) -> str | None:
        """Record the final status once; the time it finished, or None when another instance finished it first."""
        finished_at = self.clock()
        done = self._merge_if_unchanged(run.id, RUN_ROW, {
            "status": status.value, "phase": Phase.DONE.value, "finishedAt": finished_at,
            "errors": json.dumps(errors[:MAX_ERRORS]), "rejectsBlob": rejects_blob, "previewBlob": preview_blob,
            "totals": json.dumps(totals.to_document())}, run.etag)
        return finished_at if done else None

    def start_leaving(self, run: Run) -> bool:
        """sending (every chunk done), or needs_approval once approved -> leaving; True for the one instance that
        gets to queue the leaver pass."""
        # A held run's recorded figures and finish time no longer hold: emptied (a merge cannot remove them).
        return self._merge_if_unchanged(run.id, RUN_ROW, {"status": RunStatus.RUNNING.value,
                                                          "phase": Phase.LEAVING.value, "totals": "",
                                                          "finishedAt": ""}, run.etag)

    def fail_abandoned(self, run_id: str, reason: str) -> None:
        """A start that never queued its segment, replaced by a later run."""
        try:
            self._merge(run_id, RUN_ROW, {"status": RunStatus.FAILED.value, "finishedAt": self.clock(),
                                          "errors": json.dumps([reason])})
        except ResourceNotFoundError:
            pass

    # --- segments ----------------------------------------------------------------------------
    def record_split(self, run_id: str, index: int, rows: int, rejected_by_reason: dict[str, int],
                     bucket_counts: list[int]) -> None:
        rejected = sum(rejected_by_reason.values())
        self._merge(run_id, segment_row(index), {
            "status": SegmentStatus.SPLIT.value, "rows": rows, "rejected": rejected, "records": rows - rejected,
            "rejectedByReason": json.dumps(rejected_by_reason), "bucketCounts": json.dumps(bucket_counts)})

    def fail_segment(self, run_id: str, index: int, error: str) -> None:
        self._merge(run_id, segment_row(index), {"status": SegmentStatus.FAILED.value, "error": error})

    def record_segment_error(self, run_id: str, index: int, text: str) -> None:
        self._merge(run_id, segment_row(index), {"lastError": text})

    # --- chunks ------------------------------------------------------------------------------
    def mark_chunk_queued(self, chunk: Chunk) -> bool:
        """pending -> queued, unless a worker claimed the chunk meanwhile (its state wins)."""
        return self._merge_if_unchanged(chunk.run_id, chunk_row(chunk.index, chunk.leaving),
                                        {"status": ChunkStatus.QUEUED.value}, chunk.etag)

    def fail_chunk(self, run_id: str, index: int, error: str, etag: str | None = None, leaving: bool = False) -> bool:
        """Mark the chunk failed; with `etag`, only if nobody changed it since (False otherwise)."""
        fields = {"status": ChunkStatus.FAILED.value, "error": error}
        if etag is None:
            self._merge(run_id, chunk_row(index, leaving), fields)
            return True
        return self._merge_if_unchanged(run_id, chunk_row(index, leaving), fields, etag)

    def request_stop(self, run_id: str, index: int, leaving: bool = False) -> None:
        """Tell the delivery sending this piece to stop: its next checkpoint finds the row changed, reads it
        again and raises StopRequested, so no sender has to read the run row before every batch."""
        self._merge(run_id, chunk_row(index, leaving), {"stopRequested": True})

    def record_chunk_error(self, run_id: str, index: int, text: str, leaving: bool = False) -> None:
        self._merge(run_id, chunk_row(index, leaving), {"lastError": text})

    def claim_chunk(self, run_id: str, index: int, claim: str, contacts: int, duplicates: int,
                    leaving: bool = False, read: Chunk | None = None) -> ChunkClaim:
        """Mark the chunk as this delivery's; raises Superseded when it is final or keeps being taken.

        `read`: the row as the caller read it, tried first (a conditional write: if it changed since,
        the row is read again)."""
        for _ in range(5):
            chunk = read if read is not None else self.get_chunk(run_id, index, leaving)
            read = None  # a second try reads the row again
            if chunk.state.final:
                raise Superseded()
            try:
                etag = self._merge(run_id, chunk_row(index, leaving), {
                    "status": ChunkStatus.SENDING.value, "claim": claim, "contacts": contacts, "duplicates": duplicates},
                    etag=chunk.etag)
            except ResourceModifiedError:
                continue  # the planner marked it queued in between, or another delivery claimed it: look again
            return ChunkClaim(self, chunk, claim, etag)
        raise Superseded()

    # --- plumbing ----------------------------------------------------------------------------
    def _merge(self, run_id: str, row: str, fields: dict, etag: str | None = None) -> str:
        entity = {"PartitionKey": run_id, "RowKey": row, **fields}
        if etag is None:
            result = self._table.update_entity(entity, mode=UpdateMode.MERGE)
        else:
            result = self._table.update_entity(entity, mode=UpdateMode.MERGE, etag=etag,
                                               match_condition=MatchConditions.IfNotModified)
        return result["etag"]

    def _merge_if_unchanged(self, run_id: str, row: str, fields: dict, etag: str | None) -> bool:
        try:
            self._merge(run_id, row, fields, etag=etag)
            return True
        except ResourceModifiedError:
            return False


class ChunkClaim:
    """A delivery's hold on a chunk: checkpoints that stop it (Superseded) once another delivery took over."""

    def __init__(self, store: RunStore, before: Chunk, claim: str, etag: str):
        self._store, self._claim, self._etag = store, claim, etag
        self.before = before  # the row as it was when claimed: where to resume
        self.run_id, self.index, self.leaving = before.run_id, before.index, before.leaving

    def record_comparison(self, added: int, updated: int, unchanged: int, left: int, not_resubscribed: int = 0) -> None:
        """The chunk's comparison with the sync state, once: a later delivery compares with a state it may have changed."""
        self._write({"added": added, "updated": updated, "unchanged": unchanged, "left": left,
                     "notResubscribed": not_resubscribed, "compared": True})

    def checkpoint(self, position: int, sent: int, rejected: int, failed: int = 0, unconfirmed: int = 0,
                   pending: tuple[PendingImport, ...] = ()) -> None:
        """Record the progress; raises StopRequested (once it is recorded) when the run was cancelled meanwhile."""
        self._write({"position": position, "sent": sent, "rejected": rejected, "failed": failed,
                     "unconfirmed": unconfirmed, "pending": json.dumps([p.to_document() for p in pending])},
                    stoppable=True)

    def start_commit(self, warning: str | None = None) -> None:
        """Every import's outcome is known (and recorded): from here on only the sync state is written.
        The chunk's warning is kept for a delivery that only finishes the commit."""
        self._write({"committing": True, "pending": "[]", **({"error": warning} if warning else {})})

    def succeed(self, warning: str | None = None) -> None:
        self._write({"status": ChunkStatus.SUCCEEDED.value, **({"error": warning} if warning else {})})

    def _write(self, fields: dict, stoppable: bool = False) -> None:
        row = chunk_row(self.index, self.leaving)
        try:
            self._etag = self._store._merge(self.run_id, row, fields, etag=self._etag)
        except ResourceModifiedError:
            now = self._store.get_chunk(self.run_id, self.index, self.leaving)
            if now.claim != self._claim:
                raise Superseded() from None
            # Our own row, changed only by another writer's merge of other properties (lastError, stopRequested).
            self._etag = self._store._merge(self.run_id, row, fields)
            if stoppable and now.stop_requested:
                raise StopRequested() from None


# --- entities <-> records ---------------------------------------------------------------------
def _run_entity(run: Run) -> dict:
    return {
        "PartitionKey": run.id, "RowKey": RUN_ROW, "exportId": run.export_id, "connectionId": run.connection_id,
        "hostname": run.hostname, "apiKeySecretName": run.api_key_secret_name, "listId": run.list_id,
        **_long_text("mapping", json.dumps(run.mapping.to_document(options=True))),
        "excludeAutomations": run.exclude_automations, "leavers": run.leavers.value,
        "maxLeaversPercent": float(run.max_leavers_percent), "segmentContainer": run.segment_container,
        "segmentPrefix": run.segment_prefix, "trigger": run.trigger.value, "status": run.status.value,
        "phase": run.phase.value, "startedAt": run.started_at, "startedAtMs": float(run.started_at_ms),
        "segmentsTotal": run.segments_total, "buckets": run.buckets, "segmentsEnqueued": run.segments_enqueued,
        "mode": run.mode.value, "dryRun": run.dry_run, "stateId": run.state_id,
        "errors": json.dumps(list(run.errors)),
    }


def _run(entity) -> Run:
    cancellation = None
    if entity.get("cancelRequested"):
        cancellation = Cancellation(entity.get("cancelRequestedBy"), entity.get("cancelRequestedAt"), entity.get("cancelReason"))
    return Run(
        id=entity["PartitionKey"], export_id=entity["exportId"], connection_id=entity["connectionId"],
        hostname=entity["hostname"], api_key_secret_name=entity["apiKeySecretName"], list_id=entity["listId"],
        mapping=Mapping.from_document(json.loads(_read_long_text(entity, "mapping"))),
        exclude_automations=bool(entity.get("excludeAutomations")),
        leavers=Leavers(entity.get("leavers", Leavers.KEEP.value)),
        max_leavers_percent=float(entity.get("maxLeaversPercent", 10.0)), segment_container=entity["segmentContainer"],
        segment_prefix=entity["segmentPrefix"], trigger=Trigger(entity["trigger"]), status=RunStatus(entity["status"]),
        phase=Phase(entity["phase"]), started_at=entity["startedAt"], started_at_ms=int(entity["startedAtMs"]),
        segments_total=int(entity["segmentsTotal"]), buckets=int(entity["buckets"]),
        segments_enqueued=bool(entity.get("segmentsEnqueued")),
        # Runs recorded before the sync state existed sent everything.
        mode=RunMode(entity.get("mode", RunMode.FULL.value)), dry_run=bool(entity.get("dryRun")),
        state_id=entity.get("stateId") or "", errors=tuple(json.loads(entity.get("errors") or "[]")),
        cancellation=cancellation, finished_at=entity.get("finishedAt") or None,
        totals=Totals.from_document(json.loads(entity["totals"])) if entity.get("totals") else None,
        rejects_blob=entity.get("rejectsBlob"), preview_blob=entity.get("previewBlob"), etag=entity.metadata["etag"],
    )


# A Table string property holds at most 64 KiB (32K UTF-16 characters); a mapping whose fields have
# many options is kept in as many properties as it needs (an entity holds up to 1 MiB).
_TEXT_PART = 30_000


def _long_text(name: str, text: str) -> dict[str, str]:
    parts = [text[i:i + _TEXT_PART] for i in range(0, len(text), _TEXT_PART)] or [""]
    return {name if i == 0 else f"{name}{i}": part for i, part in enumerate(parts)}


def _read_long_text(entity, name: str) -> str:
    parts, i = [entity[name]], 1
    while f"{name}{i}" in entity:
        parts.append(entity[f"{name}{i}"])
        i += 1
    return "".join(parts)


def _index_of(entity) -> int:
    return int(entity["RowKey"].split("-")[1])


def _segment_entity(segment: Segment) -> dict:
    return {"PartitionKey": segment.run_id, "RowKey": segment_row(segment.index), "blob": segment.blob,
            "etag": segment.blob_etag, "size": segment.size, "status": segment.status}


def _segment(entity) -> Segment:
    return Segment(
        run_id=entity["PartitionKey"], index=_index_of(entity), status=entity["status"], error=entity.get("error"),
        last_error=entity.get("lastError"), etag=entity.metadata["etag"], blob=entity["blob"], blob_etag=entity["etag"],
        size=int(entity.get("size") or 0), rows=int(entity.get("rows", 0)), rejected=int(entity.get("rejected", 0)),
        rejected_by_reason=json.loads(entity.get("rejectedByReason") or "{}"),
        bucket_counts=tuple(json.loads(entity.get("bucketCounts") or "[]")),
    )


def _chunk_entity(chunk: Chunk) -> dict:
    # "compared" is written from the start, so a query can ask for the chunks that have not compared yet.
    return {"PartitionKey": chunk.run_id, "RowKey": chunk_row(chunk.index, chunk.leaving), "bucket": chunk.bucket,
            "records": chunk.records, "status": chunk.status, "compared": chunk.compared}


def _chunk(entity) -> Chunk:
    return Chunk(
        run_id=entity["PartitionKey"], index=_index_of(entity), status=entity["status"], error=entity.get("error"),
        last_error=entity.get("lastError"), etag=entity.metadata["etag"], bucket=int(entity["bucket"]),
        records=int(entity.get("records", 0)), contacts=int(entity["contacts"]) if "contacts" in entity else None,
        duplicates=int(entity.get("duplicates", 0)), position=int(entity.get("position", 0)),
        sent=int(entity.get("sent", 0)), rejected=int(entity.get("rejected", 0)), failed=int(entity.get("failed", 0)),
        unconfirmed=int(entity.get("unconfirmed", 0)), added=int(entity.get("added", 0)),
        updated=int(entity.get("updated", 0)), unchanged=int(entity.get("unchanged", 0)), left=int(entity.get("left", 0)),
        compared=bool(entity.get("compared")), not_resubscribed=int(entity.get("notResubscribed", 0)),
        leaving=entity["RowKey"].startswith(_LEAVE_PREFIX),
        pending=tuple(PendingImport.from_document(p) for p in json.loads(entity.get("pending") or "[]")),
        committing=bool(entity.get("committing")),
        claim=entity.get("claim"),
        stop_requested=bool(entity.get("stopRequested")),
    )
