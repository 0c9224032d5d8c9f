"""Connections and exports in Table storage: one partition per table (few records, read together).

The store keeps records; it does not judge them. Validation belongs to the services
(exports/services/), which every caller goes through, the API and the CLI alike.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableServiceClient, UpdateMode

from exports.errors import ConnectionNotFound, ExportNotFound, NotFound
from exports.model import MAPPED_FIELDS, Connection, Export, FieldMapping, FieldSpec, Leavers, Mapping, TagMapping
from exports.names import CONNECTIONS_TABLE, EXPORTS_TABLE

_PARTITION = "config"


class ConfigStore:
    def __init__(self, tables: TableServiceClient):
        self._connections = tables.get_table_client(CONNECTIONS_TABLE)
        self._exports = tables.get_table_client(EXPORTS_TABLE)

    # --- connections -------------------------------------------------------------------------
    def add_connection(self, connection: Connection) -> None:
        self._connections.create_entity(_entity(asdict(connection)))

    def get_connection(self, connection_id: str) -> Connection:
        return Connection(**_fields(_get(self._connections, connection_id, ConnectionNotFound)))

    def find_connection(self, connection_id: str) -> Connection | None:
        try:
            return self.get_connection(connection_id)
        except NotFound:
            return None

    def list_connections(self) -> Iterator[Connection]:
        for entity in self._connections.query_entities(f"PartitionKey eq '{_PARTITION}'"):
            yield Connection(**_fields(entity))

    def delete_connection(self, connection_id: str) -> None:
        _delete(self._connections, connection_id, ConnectionNotFound)

    # --- exports -----------------------------------------------------------------------------
    def add_export(self, export: Export) -> None:
        self._exports.create_entity(_entity(_flatten_export(export)))

    def replace_export(self, export: Export) -> None:
        """Replace a stored export; ExportNotFound when it was deleted meanwhile."""
        try:
            self._exports.update_entity(_entity(_flatten_export(export)), mode=UpdateMode.REPLACE)
        except ResourceNotFoundError:
            raise ExportNotFound(export.id) from None

    def get_export(self, export_id: str) -> Export:
        return _unflatten_export(_get(self._exports, export_id, ExportNotFound))

    def find_export(self, export_id: str) -> Export | None:
        try:
            return self.get_export(export_id)
        except NotFound:
            return None

    def list_exports(self) -> Iterator[Export]:
        for entity in self._exports.query_entities(f"PartitionKey eq '{_PARTITION}'"):
            yield _unflatten_export(entity)

    def delete_export(self, export_id: str) -> None:
        _delete(self._exports, export_id, ExportNotFound)


def _get(table, record_id: str, not_found: type[NotFound]) -> dict:
    try:
        return table.get_entity(_PARTITION, record_id)
    except ResourceNotFoundError:
        raise not_found(record_id) from None


def _delete(table, record_id: str, not_found: type[NotFound]) -> None:
    _get(table, record_id, not_found)
    table.delete_entity(_PARTITION, record_id)


def _entity(fields: dict) -> dict:
    return {"PartitionKey": _PARTITION, "RowKey": fields["id"], **{k: v for k, v in fields.items() if v is not None}}


def _fields(entity) -> dict:
    return {k: v for k, v in entity.items() if k not in ("PartitionKey", "RowKey")}


def _flatten_export(export: Export) -> dict:
    fields = {name: value for name, value in asdict(export).items() if name != "mapping"}
    mapping = export.mapping
    fields.update({f"mapping_{name}": value for name, value in mapping.contact_columns().items()})
    if mapping.tags is not None:
        fields["mapping_tags"] = json.dumps(mapping.tags.to_document())
    if mapping.fields:
        fields["mapping_fields"] = json.dumps([f.to_document() for f in mapping.fields])
    if mapping.membership is not None:
        fields["mapping_membership"] = json.dumps(mapping.membership.to_document())
    fields["leavers"] = export.leavers.value
    return fields


def _unflatten_export(entity) -> Export:
    fields = _fields(entity)
    tags, custom = fields.pop("mapping_tags", None), fields.pop("mapping_fields", None)
    membership = fields.pop("mapping_membership", None)
    mapping = Mapping(**{name: fields.pop(f"mapping_{name}", None) for name in MAPPED_FIELDS},
                      tags=TagMapping.from_document(json.loads(tags)) if tags else None,
                      fields=tuple(FieldMapping.from_document(f) for f in json.loads(custom or "[]")),
                      membership=FieldSpec.from_document(json.loads(membership)) if membership else None)
    fields["leavers"] = Leavers(fields.get("leavers", Leavers.KEEP.value))
    return Export(mapping=mapping, **fields)
