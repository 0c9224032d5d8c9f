"""Connections and exports written straight to the store: what a test or benchmark starts from, not what it tests.

(The services check keys and lists with ActiveCampaign on every create; tests of those checks
go through the API instead.)
"""
from __future__ import annotations

from exports.model import Connection, Export, Mapping, new_id
from exports.names import SEGMENTS_CONTAINER
from exports.services.connections import secret_name_for
from shared.clock import utc_now

ACTOR = "admin@example.com"


def add_connection(ctx, hostname: str, display_name: str = "Test account", **overrides) -> Connection:
    now, connection_id = utc_now(), new_id()
    fields = dict(id=connection_id, displayName=display_name, hostname=hostname,
                  apiKeySecretName=secret_name_for(connection_id), allowContributors=False, privacyConsentBy=ACTOR,
                  privacyConsentAt=now, createdBy=ACTOR, createdAt=now, updatedBy=ACTOR, updatedAt=now, exportUser=ACTOR)
    connection = Connection(**(fields | overrides))
    ctx.config.add_connection(connection)
    return connection


def add_export(ctx, connection: Connection, prefix: str, mapping: dict, list_id: str = "3",
               container: str = SEGMENTS_CONTAINER, enabled: bool = True, display_name: str = "Test export",
               **overrides) -> Export:
    now = utc_now()
    fields = dict(id=new_id(), displayName=display_name, connectionId=connection.id, listId=list_id,
                  segmentContainer=container, segmentPrefix=prefix,
                  mapping=mapping if isinstance(mapping, Mapping) else Mapping(**mapping), enabled=enabled,
                  createdBy=ACTOR, createdAt=now, updatedBy=ACTOR, updatedAt=now)
    export = Export(**(fields | overrides))
    ctx.config.add_export(export)
    return export
