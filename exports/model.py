"""The records of the product: connections, exports, runs and the pieces of a run.

Stores turn these into Table entities and back (exports/store/); everything else works on these
types, never on raw entities. Statuses are str Enums, so they compare equal to the strings stored
in Table storage and shown in status documents.
"""
from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from enum import StrEnum

MAX_ERRORS = 20  # a status document stays readable; the rejects blob has every row


def new_id() -> str:
    """Ids of connections, exports and runs: hex, so valid in Table keys and Key Vault secret names."""
    return uuid.uuid4().hex


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # Adds and updates went; the leaver actions are held by the guardrail until an admin approves
    # (they are then sent and the run finishes) or cancels them. Final as far as the export's lock
    # goes: a newer run may start, and supersedes the held actions.
    NEEDS_APPROVAL = "needs_approval"

    @property
    def final(self) -> bool:
        return self not in (RunStatus.QUEUED, RunStatus.RUNNING)


class Phase(StrEnum):
    SPLITTING = "splitting"  # segment blobs are being read into bucket parts
    SENDING = "sending"  # chunks (one per bucket) are being sent
    LEAVING = "leaving"  # the leaver actions (unsubscribe, or clear the membership field) are being sent
    DONE = "done"


class SegmentStatus(StrEnum):
    QUEUED = "queued"
    SPLIT = "split"
    FAILED = "failed"

    @property
    def final(self) -> bool:
        return self is not SegmentStatus.QUEUED


class ChunkStatus(StrEnum):
    PENDING = "pending"  # planned, its message not yet known to be queued
    QUEUED = "queued"
    SENDING = "sending"  # claimed by a worker
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def final(self) -> bool:
        return self in (ChunkStatus.SUCCEEDED, ChunkStatus.FAILED)


class RejectReason(StrEnum):
    """Why a row was not sent, in classes a person can count (the rejects report has each row's own words)."""

    ROW_UNREADABLE = "row_unreadable"  # not a readable row: wrong number of fields, not JSON, bad bytes
    EMAIL_MISSING = "email_missing"
    EMAIL_INVALID = "email_invalid"
    VALUE_INVALID = "value_invalid"  # a name or phone that cannot be sent as it is
    REFUSED_BY_ACTIVECAMPAIGN = "refused_by_activecampaign"  # the import request refused the row
    IMPORT_FAILED = "import_failed"  # queued, then reported failed when ActiveCampaign processed the import


class Leavers(StrEnum):
    """What an export does for contacts it delivered that are no longer in the segment."""

    KEEP = "keep"  # nothing is sent; they are counted
    FIELD = "field"  # a custom field keeps membership: set for members, cleared for leavers
    UNSUBSCRIBE = "unsubscribe"  # unsubscribed from the list: a consent change, never undone by the app


class RunMode(StrEnum):
    """What a run sends: only contacts new or changed since the export's sync state, or everyone."""

    INCREMENTAL = "incremental"
    FULL = "full"  # everyone is sent and the sync state rebuilt from what ActiveCampaign took


class Trigger(StrEnum):
    HTTP = "http"
    TIMER = "timer"
    CLI = "cli"


# --- configuration ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Connection:
    id: str
    displayName: str
    hostname: str
    apiKeySecretName: str
    allowContributors: bool
    privacyConsentBy: str
    privacyConsentAt: str
    createdBy: str
    createdAt: str
    updatedBy: str
    updatedAt: str
    exportUser: str | None = None  # who created the connection; the account user exports run as

    def to_document(self) -> dict:
        doc = asdict(self)
        doc["privacyConsent"] = {"acceptedBy": doc.pop("privacyConsentBy"), "acceptedAt": doc.pop("privacyConsentAt")}
        return doc


MAPPED_FIELDS = ("email", "firstName", "lastName", "phone")
MAX_TAG_LENGTH = 255

# ActiveCampaign custom field types whose values must be among the field's options.
SINGLE_OPTION_TYPES = frozenset({"dropdown", "radio"})
MULTI_OPTION_TYPES = frozenset({"checkbox", "listbox", "multiselect"})


@dataclass(frozen=True)
class FieldSpec:
    """An ActiveCampaign custom field as GET /api/3/fields describes it: what a value is formatted for."""

    id: str
    title: str
    perstag: str
    type: str  # text, textarea, date, datetime, dropdown, multiselect, radio, checkbox, listbox, hidden, ...
    options: tuple[str, ...] = ()  # the values a dropdown, radio, checkbox, listbox or multiselect allows

    def to_document(self) -> dict:
        return {"id": self.id, "title": self.title, "perstag": self.perstag, "type": self.type,
                "options": list(self.options)}

    @classmethod
    def from_document(cls, doc: dict) -> FieldSpec:
        return cls(id=str(doc["id"]), title=str(doc.get("title", "")), perstag=str(doc.get("perstag", "")),
                   type=str(doc.get("type", "")), options=tuple(str(o) for o in doc.get("options", ())))


@dataclass(frozen=True)
class TagMapping:
    """Tags every contact of the export gets: fixed names, and/or the names a column holds."""

    names: tuple[str, ...] = ()
    column: str | None = None
    separator: str = ","  # between the names in the column

    def to_document(self) -> dict:
        doc: dict = {"names": list(self.names)}
        if self.column:
            doc["column"] = self.column
            doc["separator"] = self.separator
        return doc

    @classmethod
    def from_document(cls, doc: dict) -> TagMapping:
        return cls(names=tuple(doc.get("names") or ()), column=doc.get("column") or None,
                   separator=doc.get("separator") or ",")


@dataclass(frozen=True)
class FieldMapping:
    """A segment column sent to an ActiveCampaign custom field."""

    column: str
    field: str  # as the export names it: the field's id ("12") or its personalisation tag ("TIER")
    separator: str = ","  # between the values of a multi-value field, unless the value is written ||a||b||
    spec: FieldSpec | None = None  # the field as the account described it when the export was saved or run

    def to_document(self, options: bool = False) -> dict:
        doc = {"column": self.column, "field": self.field, "separator": self.separator}
        if self.spec is not None:
            spec = self.spec.to_document()
            if not options:
                del spec["options"]  # a run reads them afresh; the export keeps only what identifies the field
            doc["spec"] = spec
        return doc

    @classmethod
    def from_document(cls, doc: dict) -> FieldMapping:
        spec = doc.get("spec")
        return cls(column=doc["column"], field=str(doc["field"]), separator=doc.get("separator") or ",",
                   spec=FieldSpec.from_document(spec) if spec else None)


TAGS_KEY = "tags"  # the reader's name for the tags column's value


def field_key(position: int) -> str:
    """The reader's name for the value of the export's `position`-th custom field mapping."""
    return f"fields.{position}"


@dataclass(frozen=True)
class Mapping:
    email: str
    firstName: str | None = None
    lastName: str | None = None
    phone: str | None = None
    tags: TagMapping | None = None
    fields: tuple[FieldMapping, ...] = ()
    membership: FieldSpec | None = None  # leavers "field": set for every contact sent, cleared for leavers

    def contact_columns(self) -> dict[str, str]:
        """Contact field -> segment column, for the standard contact fields that are mapped."""
        return {name: getattr(self, name) for name in MAPPED_FIELDS if getattr(self, name)}

    def columns(self) -> dict[str, str]:
        """Every segment column the export reads, by the name its value is read under."""
        columns = self.contact_columns()
        if self.tags is not None and self.tags.column:
            columns[TAGS_KEY] = self.tags.column
        columns.update({field_key(i): f.column for i, f in enumerate(self.fields)})
        return columns

    def identity(self) -> dict:
        """What the sync state depends on: change any of it and the next run sends everyone again."""
        identity: dict = self.contact_columns()
        if self.tags is not None:
            identity["tags"] = self.tags.to_document()
        if self.fields:
            identity["fields"] = [[f.column, f.spec.id if f.spec else f.field, f.separator] for f in self.fields]
        if self.membership is not None:
            identity["membership"] = self.membership.id
        return identity

    def to_document(self, options: bool = False) -> dict:
        doc: dict = self.contact_columns()
        if self.tags is not None:
            doc["tags"] = self.tags.to_document()
        if self.fields:
            doc["fields"] = [f.to_document(options) for f in self.fields]
        if self.membership is not None and options:  # stored with a run; an export shows it as membershipField
            doc["membership"] = self.membership.to_document()
        return doc

    @classmethod
    def from_document(cls, doc: dict) -> Mapping:
        return cls(**{name: doc.get(name) for name in MAPPED_FIELDS},
                   tags=TagMapping.from_document(doc["tags"]) if doc.get("tags") else None,
                   fields=tuple(FieldMapping.from_document(f) for f in doc.get("fields") or ()),
                   membership=FieldSpec.from_document(doc["membership"]) if doc.get("membership") else None)


@dataclass(frozen=True)
class Export:
    id: str
    displayName: str
    connectionId: str
    listId: str
    segmentContainer: str
    segmentPrefix: str
    mapping: Mapping
    enabled: bool
    createdBy: str
    createdAt: str
    updatedBy: str
    updatedAt: str
    excludeAutomations: bool = False  # imports do not start the account's automations
    schedule: str | None = None  # NCRONTAB (UTC); None: the app's EXPORT_SCHEDULE
    scheduleSetAt: str | None = None  # when `schedule` was last set: occurrences before it do not start the export
    leavers: Leavers = Leavers.KEEP
    membershipField: str | None = None  # leavers "field": the custom field, by id or perstag, as given
    maxLeaversPercent: float | None = None  # None: EXPORT_MAX_LEAVERS_PERCENT

    def to_document(self) -> dict:
        doc = {name: getattr(self, name) for name in (
            "id", "displayName", "connectionId", "listId", "enabled", "excludeAutomations", "schedule",
            "membershipField", "maxLeaversPercent", "createdBy", "createdAt", "updatedBy", "updatedAt")}
        doc["leavers"] = self.leavers.value
        doc["segment"] = {"container": self.segmentContainer, "prefix": self.segmentPrefix}
        doc["mapping"] = self.mapping.to_document()
        return doc


# --- runs ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cancellation:
    requested_by: str
    requested_at: str
    reason: str


@dataclass(frozen=True)
class Totals:
    """A run's figures, summed from its pieces."""

    rows: int = 0
    contacts: int = 0
    sent: int = 0
    rejected: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)  # RejectReason -> rows
    duplicates: int = 0
    added: int = 0  # sent: not in the sync state
    updated: int = 0  # sent: in the sync state with other values (or every one of them in a full run)
    unchanged: int = 0  # in the sync state with the same values: nothing sent
    left: int = 0  # in the sync state, no longer in the segment
    unconfirmed: int = 0  # sent, but ActiveCampaign had not processed their import in time: sent again next run
    unsubscribed: int = 0  # leavers this run unsubscribed from the list
    marked: int = 0  # leavers whose membership field this run cleared
    held: int = 0  # leaver actions the guardrail held (or, in a dry run, would hold)
    not_resubscribed: int = 0  # back in the segment, but this export unsubscribed them: they stay unsubscribed
    chunks_total: int = 0
    chunks_succeeded: int = 0
    chunks_failed: int = 0

    def to_document(self) -> dict:
        return {"rows": self.rows, "contacts": self.contacts, "sent": self.sent, "rejected": self.rejected,
                "rejectedByReason": dict(sorted(self.rejected_by_reason.items())), "duplicates": self.duplicates,
                "added": self.added, "updated": self.updated, "unchanged": self.unchanged, "left": self.left,
                "unconfirmed": self.unconfirmed, "unsubscribed": self.unsubscribed, "marked": self.marked,
                "held": self.held, "notResubscribed": self.not_resubscribed,
                "chunks": {"total": self.chunks_total, "succeeded": self.chunks_succeeded, "failed": self.chunks_failed}}

    @classmethod
    def from_document(cls, doc: dict) -> Totals:
        chunks = doc.get("chunks", {})
        return cls(rows=doc["rows"], contacts=doc["contacts"], sent=doc["sent"], rejected=doc["rejected"],
                   rejected_by_reason=dict(doc.get("rejectedByReason", {})), duplicates=doc["duplicates"],
                   added=doc.get("added", 0), updated=doc.get("updated", 0), unchanged=doc.get("unchanged", 0),
                   left=doc.get("left", 0), unconfirmed=doc.get("unconfirmed", 0),
                   unsubscribed=doc.get("unsubscribed", 0), marked=doc.get("marked", 0), held=doc.get("held", 0),
                   not_resubscribed=doc.get("notResubscribed", 0),
                   chunks_total=chunks.get("total", 0), chunks_succeeded=chunks.get("succeeded", 0),
                   chunks_failed=chunks.get("failed", 0))

    def not_resubscribed_summary(self) -> str | None:
        """The reason beside notResubscribed: why contacts in the segment get nothing."""
        if not self.not_resubscribed:
            return None
        who = "1 contact is" if self.not_resubscribed == 1 else f"{self.not_resubscribed} contacts are"
        return (f"{who} back in the segment but stay unsubscribed from the list: they were unsubscribed when they "
                "left it (leavers unsubscribe), and the app never re-subscribes anyone; nothing was sent for them")

    def rejected_summary(self) -> str | None:
        """One line on the rejected rows, so that rejected rows never stand beside an empty error list."""
        if not self.rejected:
            return None
        classes = ", ".join(f"{reason} {count}" for reason, count in sorted(self.rejected_by_reason.items()))
        rows = "1 row was" if self.rejected == 1 else f"{self.rejected} rows were"
        return f"{rows} rejected{f' ({classes})' if classes else ''}: each is in the rejects report with its reason"


@dataclass(frozen=True)
class Run:
    """One run of an export: what it sends where (copied from the export when it started) and how far it is."""

    id: str
    export_id: str
    connection_id: str
    hostname: str
    api_key_secret_name: str  # the name of the Key Vault secret, never the key
    list_id: str
    mapping: Mapping  # its custom fields described as the account did when the run started, options included
    segment_container: str
    segment_prefix: str
    trigger: Trigger
    status: RunStatus
    phase: Phase
    started_at: str
    started_at_ms: int
    segments_total: int
    buckets: int
    mode: RunMode = RunMode.INCREMENTAL
    exclude_automations: bool = False
    leavers: Leavers = Leavers.KEEP
    max_leavers_percent: float = 10.0
    dry_run: bool = False  # works out what would be sent, writes the preview, sends nothing, keeps the state
    state_id: str = ""  # which sync state of the export the run compares with (exports/store/sync_state.py)
    segments_enqueued: bool = False
    errors: tuple[str, ...] = ()
    cancellation: Cancellation | None = None
    finished_at: str | None = None
    totals: Totals | None = None  # recorded once the run is final
    rejects_blob: str | None = None
    preview_blob: str | None = None  # a dry run's preview report
    etag: str | None = field(default=None, compare=False)

    @property
    def final(self) -> bool:
        return self.status.final

    @property
    def columns(self) -> dict[str, str]:
        return self.mapping.columns()

    def blob_in_segment(self, blob_name: str) -> str:
        """A segment blob's name relative to the segment's prefix, as the person who set the prefix knows it."""
        relative = blob_name.removeprefix(self.segment_prefix).lstrip("/")
        return relative or blob_name


@dataclass(frozen=True)
class Piece:
    """A unit of a run's work with its own row, so concurrent workers never write the same entity."""

    run_id: str
    index: int
    status: str
    error: str | None = None  # why it failed, shown in the run's errors
    last_error: str | None = None  # why the last try raised; the poison handler reports it
    etag: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Segment(Piece):
    """One segment blob, read with the ETag the run started with."""

    blob: str = ""
    blob_etag: str = ""
    size: int = 0
    rows: int = 0
    rejected: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict, compare=False)
    bucket_counts: tuple[int, ...] = ()  # contacts this blob put in each bucket

    @property
    def state(self) -> SegmentStatus:
        return SegmentStatus(self.status)


@dataclass(frozen=True)
class PendingImport:
    """A bulk import ActiveCampaign queued, whose outcome (import/info) is still to be read."""

    position: int  # of its first contact among the chunk's contacts to send
    count: int
    batch_id: str
    sent_at: float  # wall-clock seconds

    def to_document(self) -> list:
        return [self.position, self.count, self.batch_id, self.sent_at]

    @classmethod
    def from_document(cls, doc: list) -> PendingImport:
        return cls(int(doc[0]), int(doc[1]), str(doc[2]), float(doc[3]))


@dataclass(frozen=True)
class Chunk(Piece):
    """One bucket of the run's contacts, sent by one worker with a checkpoint after every batch; or the
    run's remainder chunk (bucket REMAINDER_BUCKET): what the others left of a last, partly filled import."""

    bucket: int = 0
    records: int = 0  # contacts the splitters put in the bucket, duplicates included
    contacts: int | None = None  # distinct contacts, once a worker has read the bucket
    duplicates: int = 0
    position: int = 0  # contacts to send done so far (the checkpoint)
    sent: int = 0
    rejected: int = 0  # refused by the import request
    failed: int = 0  # reported failed once ActiveCampaign processed the import
    unconfirmed: int = 0
    added: int = 0  # the comparison with the sync state, recorded when the chunk is claimed
    updated: int = 0
    unchanged: int = 0
    left: int = 0
    compared: bool = False  # the figures above are recorded
    pending: tuple[PendingImport, ...] = ()  # imports sent whose outcome is not known yet
    committing: bool = False  # every outcome is known: the sync state's shards are being written
    not_resubscribed: int = 0
    leaving: bool = False  # a piece of the leaver pass: its contacts are the bucket's leavers
    claim: str | None = None
    stop_requested: bool = False  # the run was cancelled while a delivery sent it (cancel.py)

    @property
    def state(self) -> ChunkStatus:
        return ChunkStatus(self.status)

    @property
    def remainder(self) -> bool:
        return self.bucket == REMAINDER_BUCKET


# The bucket of a run's remainder chunk (exports/run/remainder.py): no bucket of the segment.
REMAINDER_BUCKET = -1


@dataclass(frozen=True)
class RunView:
    """A run and all its pieces, read together."""

    run: Run
    segments: tuple[Segment, ...]
    chunks: tuple[Chunk, ...]
    leaves: tuple[Chunk, ...] = ()  # the leaver pass's pieces, once it started

    @property
    def final(self) -> bool:
        return self.run.final

    def totals(self) -> Totals:
        """The recorded totals of a final run; for one still going, the sum of its pieces now."""
        if self.run.totals is not None:
            return self.run.totals
        return Totals(
            rows=sum(s.rows for s in self.segments),
            contacts=sum(c.records if c.contacts is None else c.contacts for c in self.chunks),
            sent=sum(c.sent for c in self.chunks),
            rejected=sum(s.rejected for s in self.segments) + sum(c.rejected + c.failed for c in self.chunks),
            rejected_by_reason=_add_counts(
                [s.rejected_by_reason for s in self.segments]
                + [{RejectReason.REFUSED_BY_ACTIVECAMPAIGN.value: c.rejected} for c in self.chunks if c.rejected]
                + [{RejectReason.IMPORT_FAILED.value: c.failed} for c in self.chunks if c.failed]),
            duplicates=sum(c.duplicates for c in self.chunks),
            added=sum(c.added for c in self.chunks),
            updated=sum(c.updated for c in self.chunks),
            unchanged=sum(c.unchanged for c in self.chunks),
            left=sum(c.left for c in self.chunks),
            unconfirmed=sum(c.unconfirmed for c in self.chunks + self.leaves),
            unsubscribed=self._leavers_done() if self.run.leavers is Leavers.UNSUBSCRIBE else 0,
            marked=self._leavers_done() if self.run.leavers is Leavers.FIELD else 0,
            not_resubscribed=sum(c.not_resubscribed for c in self.chunks),
            chunks_total=len(self.chunks),
            chunks_succeeded=sum(c.state is ChunkStatus.SUCCEEDED for c in self.chunks),
            chunks_failed=sum(c.state is ChunkStatus.FAILED for c in self.chunks),
        )

    def _leavers_done(self) -> int:
        """Leavers ActiveCampaign took the leaver action for: queued, and not reported failed or left unconfirmed."""
        return sum(p.sent - p.failed - p.unconfirmed for p in self.leaves)

    def errors(self) -> list[str]:
        """The run's own errors, each segment's, each chunk error once (with how many chunks had it),
        and a line on rejected rows; at most MAX_ERRORS."""
        if self.run.final:
            return list(self.run.errors)
        errors = list(self.run.errors)
        errors += [s.error for s in self.segments if s.error and s.error not in errors]
        chunks_by_error: dict[str, list[int]] = {}
        for chunk in self.chunks:
            if chunk.error:
                chunks_by_error.setdefault(chunk.error, []).append(chunk.index)
        for error, indexes in chunks_by_error.items():
            errors.append(f"chunk {indexes[0]}: {error}" if len(indexes) == 1 else f"{error} ({len(indexes)} chunks)")
        totals = self.totals()
        for line in (totals.rejected_summary(), totals.not_resubscribed_summary()):
            if line:
                errors.append(line)
        return errors[:MAX_ERRORS]


def _add_counts(counts: list[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for each in counts:
        for key, count in each.items():
            total[key] = total.get(key, 0) + count
    return total

