"""Connections and exports: the configuration records, their validation, and their store in Table storage."""
from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableServiceClient, UpdateMode

from exports.names import CONNECTIONS_TABLE, EXPORTS_TABLE, RUNS_CONTAINER

MAPPED_FIELDS = ("email", "firstName", "lastName", "phone")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_CONTAINER = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$")
_LIST_ID = re.compile(r"^[0-9]{1,18}$")
_PARTITION = "config"  # few records, all read together: one partition per table
# Containers of the app and the Functions host (run working files, host keys and leases): never a segment.
RESERVED_CONTAINERS = (RUNS_CONTAINER,)
RESERVED_CONTAINER_PREFIXES = ("azure-webjobs-",)


class ConfigError(ValueError):
    """Invalid configuration; `problems` lists {"field", "message"} pairs, each saying what to fix."""

    def __init__(self, problems: list[dict[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{p['field']}: {p['message']}" for p in problems))


class NotFound(LookupError):
    pass


def utc_now() -> str:
    """The one timestamp format of records and runs: UTC, milliseconds, "Z"."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_id() -> str:
    return uuid.uuid4().hex


def hostname_problem(hostname: object) -> str | None:
    """Why `hostname` is not a bare DNS name (None when it is fine)."""
    if not isinstance(hostname, str) or not hostname.strip():
        return "is required: the REST endpoint hostname from ActiveCampaign's Settings > Developer, e.g. myaccount.api-us1.com"
    value = hostname.strip()
    hint = "enter the hostname only, without https://, path or port, e.g. myaccount.api-us1.com"
    if "://" in value or "/" in value or ":" in value or "@" in value or "?" in value:
        return f"{value!r} is not a bare hostname: {hint}"
    try:
        ipaddress.ip_address(value.strip("[]"))
        return f"{value!r} is an IP address: {hint}"
    except ValueError:
        pass
    name = value.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return f"{value!r} is not a public host: {hint}"
    labels = name.split(".")
    if labels[-1].isascii() and (labels[-1].isdigit() or labels[-1].startswith("0x")):
        # No top-level domain is numeric: "127.1" or "0x7f.0.0.1" are IP addresses in short forms.
        return f"{value!r} is an IP address: {hint}"
    if len(name) > 253 or len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        return f"{value!r} is not a valid DNS name: {hint}"
    return None


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


@dataclass(frozen=True)
class Mapping:
    email: str
    firstName: str | None = None
    lastName: str | None = None
    phone: str | None = None

    def columns(self) -> dict[str, str]:
        """Contact field -> segment column, for the fields that are mapped."""
        return {name: column for name, column in asdict(self).items() if column}


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

    def to_document(self) -> dict:
        doc = asdict(self)
        doc["segment"] = {"container": doc.pop("segmentContainer"), "prefix": doc.pop("segmentPrefix")}
        doc["mapping"] = {k: v for k, v in doc["mapping"].items() if v}
        return doc


def secret_name_for(connection_id: str) -> str:
    # Key Vault names allow letters, digits and dashes; the id is hex, so the name is always valid.
    return f"activecampaign-{connection_id}"


def validate_connection_fields(display_name: object, hostname: object, privacy_consent: object) -> list[dict[str, str]]:
    problems = []
    if not isinstance(display_name, str) or not display_name.strip():
        problems.append({"field": "displayName", "message": "is required: a name people will recognise"})
    elif len(display_name) > 200:
        problems.append({"field": "displayName", "message": "must be at most 200 characters"})
    problem = hostname_problem(hostname)
    if problem:
        problems.append({"field": "hostname", "message": problem})
    if privacy_consent is not True:
        problems.append({
            "field": "privacyConsent",
            "message": "must be true: exporting sends personal data (emails, names, phone numbers) to ActiveCampaign, "
                       "outside this platform's compliance boundary; an admin must record consent to that",
        })
    return problems


def validate_export_fields(display_name: object, list_id: object, container: object, prefix: object,
                           mapping: dict) -> list[dict[str, str]]:
    problems = []
    if not isinstance(display_name, str) or not display_name.strip():
        problems.append({"field": "displayName", "message": "is required"})
    if not isinstance(list_id, (str, int)) or isinstance(list_id, bool) or not _LIST_ID.match(str(list_id).strip()):
        problems.append({"field": "listId", "message": "must be the numeric id of an ActiveCampaign list, e.g. \"3\""})
    if not isinstance(container, str) or not _CONTAINER.match(container):
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
    unknown = set(mapping) - set(MAPPED_FIELDS)
    for name in sorted(unknown):
        problems.append({"field": f"mapping.{name}", "message": f"is not a mappable field; use {', '.join(MAPPED_FIELDS)}"})
    return problems


class ConfigStore:
    def __init__(self, tables: TableServiceClient, clock: Callable[[], str] = utc_now):
        self._connections = tables.get_table_client(CONNECTIONS_TABLE)
        self._exports = tables.get_table_client(EXPORTS_TABLE)
        self.clock = clock

    # --- connections -------------------------------------------------------------------------
    def create_connection(self, *, display_name: str, hostname: str, allow_contributors: bool,
                          privacy_consent: bool, actor: str, connection_id: str | None = None) -> Connection:
        problems = validate_connection_fields(display_name, hostname, privacy_consent)
        if not isinstance(allow_contributors, bool):
            problems.append({"field": "allowContributors", "message": "must be true or false"})
        if problems:
            raise ConfigError(problems)
        now = self.clock()
        connection_id = connection_id or new_id()
        connection = Connection(
            id=connection_id, displayName=display_name.strip(), hostname=hostname.strip().lower().rstrip("."),
            apiKeySecretName=secret_name_for(connection_id), allowContributors=allow_contributors,
            privacyConsentBy=actor, privacyConsentAt=now, createdBy=actor, createdAt=now, updatedBy=actor, updatedAt=now,
            exportUser=actor,
        )
        self._connections.create_entity(_entity(asdict(connection)))
        return connection

    def get_connection(self, connection_id: str) -> Connection:
        return Connection(**_fields(self._get(self._connections, connection_id, "connection")))

    def list_connections(self) -> Iterator[Connection]:
        for entity in self._connections.query_entities(f"PartitionKey eq '{_PARTITION}'"):
            yield Connection(**_fields(entity))

    def delete_connection(self, connection_id: str) -> None:
        self._delete(self._connections, connection_id, "connection")

    # --- exports -----------------------------------------------------------------------------
    def create_export(self, *, display_name: str, connection_id: str, list_id: str | int, container: str,
                      prefix: str, mapping: dict, enabled: bool = True, actor: str,
                      export_id: str | None = None) -> Export:
        export = self._build_export(export_id or new_id(), display_name, connection_id, list_id, container, prefix,
                                    mapping, enabled, actor, created=None)
        self._exports.create_entity(_entity(_flatten_export(export)))
        return export

    def update_export(self, export_id: str, *, display_name: str, connection_id: str, list_id: str | int,
                      container: str, prefix: str, mapping: dict, enabled: bool, actor: str) -> Export:
        current = self.get_export(export_id)
        export = self._build_export(export_id, display_name, connection_id, list_id, container, prefix, mapping,
                                    enabled, actor, created=current)
        self._exports.update_entity(_entity(_flatten_export(export)), mode=UpdateMode.REPLACE)
        return export

    def set_export_enabled(self, export_id: str, enabled: bool, actor: str) -> Export:
        current = self.get_export(export_id)
        export = replace(current, enabled=enabled, updatedBy=actor, updatedAt=self.clock())
        self._exports.update_entity(_entity(_flatten_export(export)), mode=UpdateMode.REPLACE)
        return export

    def get_export(self, export_id: str) -> Export:
        return _unflatten_export(self._get(self._exports, export_id, "export"))

    def find_export(self, export_id: str) -> Export | None:
        try:
            return self.get_export(export_id)
        except NotFound:
            return None

    def list_exports(self) -> Iterator[Export]:
        for entity in self._exports.query_entities(f"PartitionKey eq '{_PARTITION}'"):
            yield _unflatten_export(entity)

    def delete_export(self, export_id: str) -> None:
        self._delete(self._exports, export_id, "export")

    def _build_export(self, export_id, display_name, connection_id, list_id, container, prefix, mapping, enabled,
                      actor, created: Export | None) -> Export:
        mapping = mapping if isinstance(mapping, dict) else {}
        problems = validate_export_fields(display_name, list_id, container, prefix, mapping)
        if not isinstance(enabled, bool):
            problems.append({"field": "enabled", "message": "must be true or false"})
        if not isinstance(connection_id, str) or not connection_id:
            problems.append({"field": "connectionId", "message": "is required"})
        else:
            try:
                self.get_connection(connection_id)
            except NotFound:
                problems.append({"field": "connectionId", "message": f"connection {connection_id!r} does not exist"})
        if problems:
            raise ConfigError(problems)
        now = self.clock()
        return Export(
            id=export_id, displayName=display_name.strip(), connectionId=connection_id, listId=str(list_id).strip(),
            segmentContainer=container, segmentPrefix=prefix,
            mapping=Mapping(**{k: v.strip() for k, v in mapping.items() if v}),
            enabled=enabled, createdBy=created.createdBy if created else actor,
            createdAt=created.createdAt if created else now, updatedBy=actor, updatedAt=now,
        )

    @staticmethod
    def _get(table, record_id: str, kind: str) -> dict:
        try:
            return table.get_entity(_PARTITION, record_id)
        except ResourceNotFoundError:
            raise NotFound(f"{kind} {record_id!r} does not exist") from None

    @staticmethod
    def _delete(table, record_id: str, kind: str) -> None:
        try:
            table.get_entity(_PARTITION, record_id)
        except ResourceNotFoundError:
            raise NotFound(f"{kind} {record_id!r} does not exist") from None
        table.delete_entity(_PARTITION, record_id)


def _entity(fields: dict) -> dict:
    return {"PartitionKey": _PARTITION, "RowKey": fields["id"], **{k: v for k, v in fields.items() if v is not None}}


def _fields(entity) -> dict:
    return {k: v for k, v in entity.items() if k not in ("PartitionKey", "RowKey")}


def _flatten_export(export: Export) -> dict:
    fields = asdict(export)
    mapping = fields.pop("mapping")
    fields.update({f"mapping_{name}": value for name, value in mapping.items()})
    return fields


def _unflatten_export(entity) -> Export:
    fields = _fields(entity)
    mapping = Mapping(**{name: fields.pop(f"mapping_{name}", None) for name in MAPPED_FIELDS})
    return Export(mapping=mapping, **fields)
