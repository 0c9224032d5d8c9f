"""Connections and exports: the records' round trips in Table storage (Azurite)."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from exports.errors import ConnectionNotFound, ExportNotFound
from tests.support.apphost import ACCOUNT_HOST, API_KEY
from tests.support.records import add_connection, add_export


@pytest.fixture
def store(app):
    return app.ctx.config


def test_connection_round_trip(app, store):
    created = add_connection(app.ctx, ACCOUNT_HOST, display_name="Marketing", allowContributors=True)
    assert store.get_connection(created.id) == created
    other = add_connection(app.ctx, "sales.api-us1.com", display_name="Sales", createdBy="ops@example.com")
    assert {c.id: c for c in store.list_connections()} == {created.id: created, other.id: other}
    assert store.find_connection("0" * 32) is None


def test_connection_document_records_consent_and_holds_no_api_key(app):
    connection = app.connection(privacyConsentBy="dpo@example.com")  # also stores the API key in the vault
    doc = connection.to_document()
    assert doc["privacyConsent"] == {"acceptedBy": "dpo@example.com", "acceptedAt": connection.privacyConsentAt}
    assert "privacyConsentBy" not in doc and "privacyConsentAt" not in doc
    assert doc["apiKeySecretName"] == connection.apiKeySecretName
    assert API_KEY not in json.dumps(doc) and not any("apikey" == k.lower() for k in doc)
    assert app.ctx.secrets.get(connection.apiKeySecretName) == API_KEY  # the key exists, just not here


def test_connection_delete(app, store):
    kept, gone = add_connection(app.ctx, ACCOUNT_HOST), add_connection(app.ctx, ACCOUNT_HOST, display_name="Old")
    store.delete_connection(gone.id)
    with pytest.raises(ConnectionNotFound):
        store.get_connection(gone.id)
    with pytest.raises(ConnectionNotFound):
        store.delete_connection(gone.id)
    assert [c.id for c in store.list_connections()] == [kept.id]


def test_export_round_trip_and_document(app, store):
    connection = add_connection(app.ctx, ACCOUNT_HOST)
    created = add_export(app.ctx, connection, "crm/news/", {"email": "Email", "firstName": "First Name"})
    assert store.get_export(created.id) == created
    assert [e.id for e in store.list_exports()] == [created.id]
    doc = store.get_export(created.id).to_document()
    assert doc["segment"] == {"container": "segments", "prefix": "crm/news/"}
    assert doc["mapping"] == {"email": "Email", "firstName": "First Name"}
    assert "segmentContainer" not in doc and "segmentPrefix" not in doc


def test_replace_keeps_what_it_is_given_and_drops_unmapped_fields(app, store):
    connection = add_connection(app.ctx, ACCOUNT_HOST)
    created = add_export(app.ctx, connection, "crm/news/", {"email": "Email", "firstName": "First Name"})
    changed = replace(created, displayName="Weekly", listId="4", enabled=False, updatedBy="editor@example.com",
                      mapping=replace(created.mapping, firstName=None, email="mail"))
    store.replace_export(changed)
    stored = store.get_export(created.id)
    assert stored == changed
    assert stored.mapping.columns() == {"email": "mail"}  # firstName, mapped before, is gone


def test_export_delete(app, store):
    connection = add_connection(app.ctx, ACCOUNT_HOST)
    kept, gone = add_export(app.ctx, connection, "a/", {"email": "e"}), add_export(app.ctx, connection, "b/", {"email": "e"})
    store.delete_export(gone.id)
    assert store.find_export(gone.id) is None
    with pytest.raises(ExportNotFound):
        store.get_export(gone.id)
    with pytest.raises(ExportNotFound):
        store.delete_export(gone.id)
    with pytest.raises(ExportNotFound):
        store.replace_export(gone)
    assert [e.id for e in store.list_exports()] == [kept.id]
