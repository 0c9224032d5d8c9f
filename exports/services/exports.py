"""Exports: which segment goes to which list of which connection, and how its columns map to contact fields.

Saving checks what can be checked before any run: the fields, that the connection may be used,
that the list exists in the account, and that the segment (once it has a blob) has the mapped
columns. Saving does not run the export.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from exports import access
from exports.activecampaign.fields import find_field, known_fields_hint
from exports.errors import Invalid
from exports.model import (
    MAPPED_FIELDS,
    TAGS_KEY,
    Export,
    FieldMapping,
    FieldSpec,
    Leavers,
    Mapping,
    TagMapping,
    new_id,
)
from exports.names import RUNS_CONTAINER, SYNC_STATE_CONTAINER
from exports.schedule import schedule_problem
from exports.segments.blobs import first_blob_probe
from exports.segments.field_values import FieldValueError, member_value
from exports.segments.mapping import tag_problem
from exports.segments.readers import missing_columns
from exports.services import checks
from exports.services.runs import cancel_active_runs
from shared.auth import Caller
from shared.documents import check_document

if TYPE_CHECKING:
    from exports.context import AppContext

log = logging.getLogger(__name__)
_CONTAINER = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$")
_LIST_ID = re.compile(r"^[0-9]{1,18}$")
# Containers of the app and the Functions host (run working files, host keys and leases): never a segment.
RESERVED_CONTAINERS = (RUNS_CONTAINER, SYNC_STATE_CONTAINER)
RESERVED_CONTAINER_PREFIXES = ("azure-webjobs-",)

FIELDS = {
    "displayName": (("string",), True),
    "connectionId": (("string",), True),
    "listId": (("string", "integer"), True),
    "segment": ({"container": (("string",), True), "prefix": (("string",), False)}, True),
    "mapping": ({**{name: (("string", "null"), name == "email") for name in MAPPED_FIELDS},
                 "tags": (("object", "null"), False), "fields": (("array", "null"), False)}, True),
    "enabled": (("boolean",), False),
    "excludeAutomations": (("boolean",), False),
    "schedule": (("string", "null"), False),
    "leavers": (("string",), False),
    "membershipField": (("string", "integer", "null"), False),
    "maxLeaversPercent": (("number", "null"), False),
}
TAG_FIELDS = {"names": (("array",), False), "column": (("string", "null"), False), "separator": (("string",), False)}
FIELD_MAPPING_FIELDS = {"column": (("string",), True), "field": (("string", "integer"), True),
                        "separator": (("string",), False)}
MAX_TAG_NAMES = 20
MAX_FIELD_MAPPINGS = 100
MAX_SEPARATOR_LENGTH = 5
_EXAMPLE_FIELDS = 'e.g. [{"column": "Tier", "field": "TIER"}, {"column": "LTV", "field": "12"}]'


@dataclass(frozen=True)
class SegmentProbe:
    """The name and first bytes of a segment blob, to check the mapped columns against its header."""

    blob_name: str
    head: bytes


def export_problems(display_name: object, list_id: object, container: object, prefix: object,
                    mapping: dict) -> list[dict[str, str]]:
    problems = []
    if not isinstance(display_name, str) or not display_name.strip():
        problems.append({"field": "displayName", "message": "is required"})
    if not isinstance(list_id, (str, int)) or isinstance(list_id, bool) or not _LIST_ID.fullmatch(str(list_id).strip()):
        problems.append({"field": "listId", "message": "must be the numeric id of an ActiveCampaign list, e.g. \"3\""})
    if not isinstance(container, str) or not _CONTAINER.fullmatch(container):
        problems.append({"field": "segment.container",
                         "message": "must be a blob container name: 3-63 lower-case letters, digits and single dashes"})
    elif container in RESERVED_CONTAINERS or container.startswith(RESERVED_CONTAINER_PREFIXES):
        problems.append({"field": "segment.container",
                         "message": f"{container!r} holds the app's own files, not segments: name the container "
                                    "where the customer-data platform writes segments, e.g. segments"})
    if not isinstance(prefix, str) or len(prefix) > 1024:
        problems.append({"field": "segment.prefix", "message": "must be a blob name prefix (may be empty), at most 1024 characters"})
    email = mapping.get("email")
    if not isinstance(email, str) or not email.strip():
        problems.append({"field": "mapping.email", "message": "is required: the segment column that holds the email address"})
    for name in MAPPED_FIELDS[1:]:
        value = mapping.get(name)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            problems.append({"field": f"mapping.{name}", "message": "must be a column name, or left out"})
    for name in sorted(set(mapping) - set(MAPPED_FIELDS) - {"tags", "fields"}):
        problems.append({"field": f"mapping.{name}", "message": f"is not a mappable field; use {', '.join(MAPPED_FIELDS)}"})
    return problems


def tag_mapping(tags: object) -> tuple[TagMapping | None, list[dict[str, str]]]:
    """The export's tags (fixed names and/or a column of names), or the problems of `mapping.tags`."""
    if tags is None:
        return None, []
    problems = check_document(tags, TAG_FIELDS, "mapping.tags.")
    if problems:
        return None, problems
    names, column, separator = tags.get("names", []), tags.get("column"), tags.get("separator", ",")
    if len(names) > MAX_TAG_NAMES:
        problems.append({"field": "mapping.tags.names", "message": f"at most {MAX_TAG_NAMES} names"})
    cleaned = []
    for position, name in enumerate(names):
        problem = tag_problem(name.strip()) if isinstance(name, str) else "must be a string"
        if problem:
            problems.append({"field": f"mapping.tags.names[{position}]", "message": problem})
        elif name.strip() not in cleaned:
            cleaned.append(name.strip())
    if column is not None and not column.strip():
        problems.append({"field": "mapping.tags.column", "message": "must be a column name, or left out"})
    if not separator.strip(" ") or len(separator) > MAX_SEPARATOR_LENGTH:
        problems.append({"field": "mapping.tags.separator",
                         "message": f"must be 1-{MAX_SEPARATOR_LENGTH} characters other than spaces, e.g. \",\" or \"|\""})
    if not names and column is None:
        problems.append({"field": "mapping.tags", "message": 'give tag names, a column of tag names, or both, e.g. '
                                                             '{"names": ["VIP"], "column": "Interests"}'})
    if problems:
        return None, problems
    return TagMapping(names=tuple(cleaned), column=column.strip() if column else None, separator=separator), []


def field_mappings(fields: object) -> tuple[tuple[FieldMapping, ...], list[dict[str, str]]]:
    """The export's custom field mappings as given (not yet found in the account), or the problems of `mapping.fields`."""
    if fields is None:
        return (), []
    problems, mappings = [], []
    if len(fields) > MAX_FIELD_MAPPINGS:
        return (), [{"field": "mapping.fields", "message": f"at most {MAX_FIELD_MAPPINGS} custom fields"}]
    for position, item in enumerate(fields):
        where = f"mapping.fields[{position}]"
        found = check_document(item, FIELD_MAPPING_FIELDS, where + ".")
        if not found:
            column, field, separator = item["column"].strip(), str(item["field"]).strip(), item.get("separator", ",")
            if not column:
                found.append({"field": where + ".column", "message": "must be the name of a segment column"})
            if not field or (isinstance(item["field"], int) and item["field"] < 1):
                found.append({"field": where + ".field", "message": "must be the id of an ActiveCampaign custom "
                                                                    f"field or its personalisation tag, {_EXAMPLE_FIELDS}"})
            if not separator.strip(" ") or len(separator) > MAX_SEPARATOR_LENGTH:
                found.append({"field": where + ".separator",
                              "message": f"must be 1-{MAX_SEPARATOR_LENGTH} characters other than spaces"})
            if not found:
                mappings.append(FieldMapping(column=column, field=field, separator=separator))
        problems += found
    return tuple(mappings), problems


# --- use cases ------------------------------------------------------------------------------------
def list_exports(ctx: AppContext, caller: Caller) -> list[dict]:
    access.require_role(ctx, caller)
    usable = {c.id for c in ctx.config.list_connections() if access.may_use(caller, c)}
    exports = [e for e in ctx.config.list_exports() if caller.is_admin or e.connectionId in usable]
    return [e.to_document() for e in sorted(exports, key=lambda e: (e.displayName.lower(), e.id))]


def get_export(ctx: AppContext, caller: Caller, export_id: str) -> dict:
    return access.export_for(ctx, caller, export_id).to_document()


def create_export(ctx: AppContext, caller: Caller, read_body, probe: SegmentProbe | None = None) -> dict:
    """Check and record a new export; `read_body` returns the request document, read once the caller may.

    `probe` stands for the segment's first blob when it is not in storage yet (the CLI checks a
    local file before uploading it).
    """
    access.require_role(ctx, caller)
    now = ctx.clock()
    export = _checked_export(ctx, caller, read_body(), current=None, probe=probe,
                             export_id=new_id(), created_by=caller.name, created_at=now, now=now)
    ctx.config.add_export(export)
    log.info("export created: id=%s connection=%s list=%s by=%s", export.id, export.connectionId, export.listId, caller.name)
    return export.to_document()


def update_export(ctx: AppContext, caller: Caller, export_id: str, read_body, probe: SegmentProbe | None = None) -> dict:
    """As create_export; `probe` stands for the file about to replace the segment (its columns are checked)."""
    current = access.export_for(ctx, caller, export_id)
    export = _checked_export(ctx, caller, read_body(), current=current, probe=probe, export_id=current.id,
                             created_by=current.createdBy, created_at=current.createdAt, now=ctx.clock())
    ctx.config.replace_export(export)
    log.info("export updated: id=%s connection=%s list=%s enabled=%s by=%s", export.id, export.connectionId,
             export.listId, export.enabled, caller.name)
    return export.to_document()


def delete_export(ctx: AppContext, caller: Caller, export_id: str) -> dict:
    """Delete the export: no new runs, and its queued or running runs are cancelled. Its runs stay readable."""
    export = access.export_for(ctx, caller, export_id)
    cancelled = cancel_active_runs(ctx, export.id, caller.name, "the export was deleted")
    ctx.config.delete_export(export.id)
    ctx.sync.delete_export(export.id)  # the emails it delivered serve this export only
    ctx.schedules.forget(export.id)
    log.info("export deleted: id=%s by=%s cancelledRuns=%s", export.id, caller.name, ",".join(cancelled) or "-")
    return {"exportId": export.id, "deleted": True, "cancelledRuns": cancelled}


def _checked_export(ctx: AppContext, caller: Caller, body: object, current: Export | None, probe: SegmentProbe | None,
                    export_id: str, created_by: str, created_at: str, now: str) -> Export:
    """The export the body describes, or Invalid listing every problem."""
    problems = check_document(body, FIELDS)
    if problems and not isinstance(body, dict):
        raise Invalid(problems)
    taken = {p["field"] for p in problems}
    segment = body.get("segment") if isinstance(body.get("segment"), dict) else {}
    mapping = body.get("mapping") if isinstance(body.get("mapping"), dict) else {}
    mapping = {name: value for name, value in mapping.items() if value is not None}
    container, prefix = segment.get("container"), segment.get("prefix", "")
    static = export_problems(body.get("displayName"), body.get("listId"), container, prefix, mapping)
    tags = fields = None
    if "mapping.tags" not in taken:
        tags, found = tag_mapping(mapping.get("tags"))
        static += found
    if "mapping.fields" not in taken:
        fields, found = field_mappings(mapping.get("fields"))
        static += found
    schedule = body.get("schedule")
    if "schedule" not in taken and schedule is not None and (problem := schedule_problem(schedule)):
        static.append({"field": "schedule", "message": problem})
    static += leaver_problems(body.get("leavers", Leavers.KEEP.value), body.get("membershipField"),
                              body.get("maxLeaversPercent"))
    problems += [p for p in static if p["field"] not in taken and not _under(p["field"], taken)]
    connection = None
    if "connectionId" not in taken:
        connection = access.find_connection(ctx, body.get("connectionId"))
        if connection is None or not access.may_use(caller, connection):
            problems.append({"field": "connectionId", "message": f"connection {body.get('connectionId')!r} does not exist"
                                                                 + ("" if caller.is_admin else " or is not open to contributors")})
    if problems:
        raise Invalid(problems)
    export = Export(
        id=export_id, displayName=body["displayName"].strip(), connectionId=connection.id,
        listId=str(body["listId"]).strip(), segmentContainer=container, segmentPrefix=prefix,
        mapping=Mapping(**{k: mapping[k].strip() for k in MAPPED_FIELDS if k in mapping}, tags=tags, fields=fields),
        enabled=body.get("enabled", True), excludeAutomations=body.get("excludeAutomations", False),
        leavers=Leavers(body.get("leavers", Leavers.KEEP.value)),
        membershipField=str(body["membershipField"]).strip() if body.get("membershipField") is not None else None,
        maxLeaversPercent=body.get("maxLeaversPercent"),
        schedule=" ".join(schedule.split()) if schedule else None, scheduleSetAt=current.scheduleSetAt if current else None,
        createdBy=created_by, createdAt=created_at, updatedBy=caller.name, updatedAt=now)
    # ActiveCampaign and the segment are asked again only when what they answer for changed, so an
    # export can still be disabled while ActiveCampaign is down.
    if current is None or (current.connectionId, current.listId) != (export.connectionId, export.listId):
        checks.check_list(ctx, connection, export.listId)
    account = _AccountFields(ctx, connection)
    export = replace(export, mapping=replace(export.mapping, fields=_found_fields(account, export, current),
                                             membership=_found_membership(account, export, current)))
    columns = export.mapping.columns()
    if current is None or probe is not None or (current.segmentContainer, current.segmentPrefix,
                                                current.mapping.columns()) != (export.segmentContainer,
                                                                               export.segmentPrefix, columns):
        problems = column_problems(ctx, export, probe)
        if problems:
            raise Invalid(problems)
    if current is None or current.schedule != export.schedule:
        export = replace(export, scheduleSetAt=now)
    return export


class _AccountFields:
    """The account's custom fields, read at most once per save, and only if needed."""

    def __init__(self, ctx: AppContext, connection):
        self._ctx, self._connection, self._specs = ctx, connection, None

    def __call__(self) -> list[FieldSpec]:
        if self._specs is None:
            self._specs = checks.account_fields(self._ctx, self._connection)
        return self._specs


def _found_fields(account: _AccountFields, export: Export, current: Export | None) -> tuple[FieldMapping, ...]:
    """The export's custom field mappings, each with the account's description of its field (type, id, perstag).

    The account is asked when the fields or the connection changed; otherwise the descriptions
    recorded when the export was last saved are kept.
    """
    wanted = export.mapping.fields
    if not wanted:
        return ()
    if current is not None and current.connectionId == export.connectionId:
        known = {(f.column, f.field, f.separator): f for f in current.mapping.fields}
        if all((f.column, f.field, f.separator) in known for f in wanted):
            return tuple(known[(f.column, f.field, f.separator)] for f in wanted)
    specs = account()
    problems, found, ids = [], [], {}
    for position, mapping in enumerate(wanted):
        spec = find_field(specs, mapping.field)
        where = f"mapping.fields[{position}].field"
        if spec is None:
            problems.append({"field": where, "message": f"this ActiveCampaign account has no custom field "
                                                        f"{mapping.field!r} (by id or personalisation tag): "
                                                        f"{known_fields_hint(specs)}"})
        elif spec.id in ids:
            problems.append({"field": where, "message": f"custom field {spec.title!r} (id {spec.id}) is mapped twice, "
                                                        f"also from column {ids[spec.id]!r}: map each field once"})
        else:
            ids[spec.id] = mapping.column
            found.append(replace(mapping, spec=replace(spec, options=())))
    if problems:
        raise Invalid(problems)
    return tuple(found)


def _found_membership(account: _AccountFields, export: Export, current: Export | None) -> FieldSpec | None:
    """leavers "field": the membership field as the account describes it, checked to be able to hold "yes"."""
    if export.leavers is not Leavers.FIELD:
        return None
    if (current is not None and current.connectionId == export.connectionId
            and current.membershipField == export.membershipField and current.mapping.membership is not None):
        return current.mapping.membership
    specs = account()
    spec = find_field(specs, export.membershipField)
    if spec is None:
        raise Invalid([{"field": "membershipField", "message": f"this ActiveCampaign account has no custom field "
                                                              f"{export.membershipField!r}: {known_fields_hint(specs)}"}])
    if any(f.spec and f.spec.id == spec.id for f in export.mapping.fields):
        raise Invalid([{"field": "membershipField", "message": f"custom field {spec.title!r} is also mapped from a "
                                                              "column: the membership field must be one of its own"}])
    try:
        member_value(spec)
    except FieldValueError as error:
        raise Invalid([{"field": "membershipField", "message": f"{error}; it is set to \"yes\" for members and "
                                                              "cleared for leavers"}]) from None
    return replace(spec, options=())


def leaver_problems(leavers: object, membership: object, max_percent: object) -> list[dict[str, str]]:
    modes = ", ".join(mode.value for mode in Leavers)
    problems = []
    if not isinstance(leavers, str) or leavers not in {mode.value for mode in Leavers}:
        return [{"field": "leavers", "message": f"must be one of {modes}"}]
    given = membership is not None and str(membership).strip() != ""
    if leavers == Leavers.FIELD and not given:
        problems.append({"field": "membershipField", "message": "is required when leavers is \"field\": the custom "
                                                               "field (id or personalisation tag) that marks members"})
    if leavers != Leavers.FIELD and membership is not None:
        problems.append({"field": "membershipField", "message": "is used only when leavers is \"field\"; leave it out"})
    if isinstance(membership, int) and not isinstance(membership, bool) and membership < 1:
        problems.append({"field": "membershipField", "message": "must be a field id (1 or more) or a personalisation tag"})
    if max_percent is not None and isinstance(max_percent, (int, float)) and not isinstance(max_percent, bool) \
            and not 0 <= max_percent <= 100:
        problems.append({"field": "maxLeaversPercent", "message": "must be between 0 and 100 (percent of the contacts "
                                                                 "the export delivered), or null for the app's default"})
    return problems


def column_problems(ctx: AppContext, export: Export, probe: SegmentProbe | None = None) -> list[dict[str, str]]:
    """When the segment has a blob already, every mapped column must be in its first blob's header."""
    if probe is None:
        found = first_blob_probe(ctx.storage.blobs, export.segmentContainer, export.segmentPrefix)
        if found is None:
            return []
        probe = SegmentProbe(*found)
    problems = []
    for key, column in export.mapping.columns().items():
        missing = missing_columns(probe.blob_name, probe.head, {key: column})
        if missing is not None:
            problems.append({"field": _column_field(key), "message": f"segment blob {missing}"})
    return problems


def _column_field(key: str) -> str:
    """The request field that names the column read under `key` (Mapping.columns)."""
    if key == TAGS_KEY:
        return "mapping.tags.column"
    if key.startswith("fields."):
        return f"mapping.fields[{key.split('.', 1)[1]}].column"
    return f"mapping.{key}"


def _under(field: str, taken: set[str]) -> bool:
    return any(field.startswith(t + ".") for t in taken)
