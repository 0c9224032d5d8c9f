"""Connections and exports: validation a person can act on, and the records' round trips in Table storage."""
from __future__ import annotations

import json
from itertools import count

import pytest

from exports import config
from exports.config import ConfigError, hostname_problem, validate_connection_fields, validate_export_fields
from tests.apphost import API_KEY

HINT = "enter the hostname only, without https://"


# --- hostname -----------------------------------------------------------------------------------
@pytest.mark.parametrize("hostname", [
    "https://myaccount.api-us1.com",
    "http://myaccount.api-us1.com",
    "myaccount.api-us1.com/api/3",
    "myaccount.api-us1.com/",
    "myaccount.api-us1.com:443",
    "user@myaccount.api-us1.com",
    "myaccount.api-us1.com?x=1",
    "192.0.2.10",
    "127.0.0.1",
    "::1",
    "[2001:db8::1]",
    "2001:db8::1",
    "localhost",
    "LOCALHOST",
    "api.localhost",
    "myaccount",
    "my_account.api-us1.com",
    "-myaccount.api-us1.com",
    "myaccount-.api-us1.com",
    "myaccount.-api-us1.com",
    "my account.api-us1.com",
    "myaccount..api-us1.com",
    ".api-us1.com",
    "bücher.api-us1.com",
    "a" * 64 + ".api-us1.com",                  # a label is at most 63 characters
    ".".join(["abcdefghi"] * 26) + ".com",      # a name is at most 253 characters
    "127.1",
    "0x7f.0.0.1",
])
def test_hostname_must_be_a_bare_dns_name(hostname):
    problem = hostname_problem(hostname)
    assert problem is not None
    assert HINT in problem
    assert repr(hostname.strip()) in problem  # says which value is wrong


@pytest.mark.parametrize("hostname", [None, "", "   ", 42, ["myaccount.api-us1.com"]])
def test_hostname_is_required(hostname):
    problem = hostname_problem(hostname)
    assert problem is not None and "required" in problem


@pytest.mark.parametrize("hostname", [
    "myaccount.api-us1.com",
    "MyAccount.API-US1.com",
    "my-account2.api-us1.com",
    "xn--bcher-kva.example.com",
    "a" * 63 + ".api-us1.com",
    "  myaccount.api-us1.com  ",
])
def test_bare_dns_names_are_accepted(hostname):
    assert hostname_problem(hostname) is None


# --- field validation ------------------------------------------------------------------------------
@pytest.mark.parametrize("consent", [False, None, "true", 1, "yes"])
def test_privacy_consent_must_be_true_and_says_why(consent):
    problems = validate_connection_fields("Marketing", "myaccount.api-us1.com", consent)
    assert [p["field"] for p in problems] == ["privacyConsent"]
    assert "compliance boundary" in problems[0]["message"] and "ActiveCampaign" in problems[0]["message"]


def test_a_valid_connection_has_no_problems_and_every_problem_is_listed():
    assert validate_connection_fields("Marketing", "myaccount.api-us1.com", True) == []
    problems = validate_connection_fields("  ", "https://myaccount.api-us1.com", False)
    assert [p["field"] for p in problems] == ["displayName", "hostname", "privacyConsent"]
    assert all(set(p) == {"field", "message"} and p["message"] for p in problems)


GOOD_EXPORT = dict(display_name="Newsletter", list_id="3", container="segments", prefix="crm/newsletter/",
                   mapping={"email": "Email", "firstName": "First Name"})


def export_problems(**changes) -> list[str]:
    return [p["field"] for p in validate_export_fields(**(GOOD_EXPORT | changes))]


@pytest.mark.parametrize("changes", [{}, {"list_id": 3}, {"list_id": " 12 "}, {"prefix": ""}, {"container": "abc"},
                                     {"container": "a" * 63}, {"container": "seg-2024-01"},
                                     {"mapping": {"email": "e", "firstName": "f", "lastName": "l", "phone": "p"}}])
def test_valid_export_fields_have_no_problems(changes):
    assert export_problems(**changes) == []


@pytest.mark.parametrize("changes,field", [
    ({"display_name": ""}, "displayName"),
    ({"list_id": "abc"}, "listId"),
    ({"list_id": ""}, "listId"),
    ({"list_id": "3.5"}, "listId"),
    ({"list_id": "-3"}, "listId"),
    ({"list_id": 3.0}, "listId"),
    ({"list_id": True}, "listId"),
    ({"list_id": None}, "listId"),
    ({"list_id": "²"}, "listId"),
    ({"container": "ab"}, "segment.container"),
    ({"container": "a" * 64}, "segment.container"),
    ({"container": "Segments"}, "segment.container"),
    ({"container": "seg--ments"}, "segment.container"),
    ({"container": "-segments"}, "segment.container"),
    ({"container": "segments-"}, "segment.container"),
    ({"container": "seg_ments"}, "segment.container"),
    ({"prefix": None}, "segment.prefix"),
    ({"prefix": "p" * 1025}, "segment.prefix"),
    ({"mapping": {"firstName": "First Name"}}, "mapping.email"),
    ({"mapping": {"email": "   "}}, "mapping.email"),
    ({"mapping": {"email": "Email", "firstName": ""}}, "mapping.firstName"),
    ({"mapping": {"email": "Email", "phone": 7}}, "mapping.phone"),
    ({"mapping": {"email": "Email", "fax": "Fax"}}, "mapping.fax"),
    ({"mapping": {"email": "Email", "first_name": "First"}}, "mapping.first_name"),
])
def test_invalid_export_fields_are_named(changes, field):
    assert export_problems(**changes) == [field]


def test_config_error_lists_field_and_message_pairs():
    problems = [{"field": "listId", "message": "must be numeric"}, {"field": "mapping.email", "message": "is required"}]
    error = ConfigError(problems)
    assert error.problems == problems
    assert "listId: must be numeric" in str(error) and "mapping.email: is required" in str(error)


# --- the store, on Azurite -----------------------------------------------------------------------------
@pytest.fixture
def store(app):
    ticks = count(1)
    app.ctx.config.clock = lambda: f"2030-01-01T00:00:{next(ticks):02d}Z"  # every write gets a later time
    return app.ctx.config


def new_connection(store, **changes):
    fields = dict(display_name=" Marketing ", hostname="MyAccount.API-US1.com", allow_contributors=True,
                  privacy_consent=True, actor="admin@example.com") | changes
    return store.create_connection(**fields)


def test_connection_round_trip(store):
    created = new_connection(store)
    assert created.displayName == "Marketing"
    assert created.hostname == "myaccount.api-us1.com"
    assert created.allowContributors is True
    assert (created.createdBy, created.updatedBy, created.privacyConsentBy) == ("admin@example.com",) * 3
    assert created.createdAt == created.updatedAt == created.privacyConsentAt
    assert store.get_connection(created.id) == created
    other = new_connection(store, display_name="Sales", hostname="sales.api-us1.com", actor="ops@example.com")
    assert {c.id: c for c in store.list_connections()} == {created.id: created, other.id: other}


def test_an_invalid_connection_is_refused_and_not_stored(store):
    with pytest.raises(ConfigError) as raised:
        new_connection(store, hostname="https://myaccount.api-us1.com/", privacy_consent=False)
    assert [p["field"] for p in raised.value.problems] == ["hostname", "privacyConsent"]
    assert HINT in raised.value.problems[0]["message"]
    assert list(store.list_connections()) == []


def test_connection_document_records_consent_and_holds_no_api_key(app, store):
    connection = app.connection(actor="dpo@example.com")  # also stores the API key in the vault
    doc = connection.to_document()
    assert doc["privacyConsent"] == {"acceptedBy": "dpo@example.com", "acceptedAt": connection.privacyConsentAt}
    assert "privacyConsentBy" not in doc and "privacyConsentAt" not in doc
    assert doc["apiKeySecretName"] == connection.apiKeySecretName
    assert API_KEY not in json.dumps(doc) and not any("apikey" == k.lower() for k in doc)
    assert app.ctx.secrets.get(connection.apiKeySecretName) == API_KEY  # the key exists, just not here


def test_connection_delete(store):
    kept, gone = new_connection(store), new_connection(store, display_name="Old")
    store.delete_connection(gone.id)
    with pytest.raises(config.NotFound):
        store.get_connection(gone.id)
    with pytest.raises(config.NotFound):
        store.delete_connection(gone.id)
    assert [c.id for c in store.list_connections()] == [kept.id]


def new_export(store, connection_id, **changes):
    fields = dict(display_name=" Newsletter ", connection_id=connection_id, list_id=" 3 ", container="segments",
                  prefix="crm/news/", mapping={"email": " Email ", "firstName": "First Name", "phone": None},
                  enabled=True, actor="admin@example.com") | changes
    return store.create_export(**fields)


def test_export_round_trip_and_document(store):
    connection = new_connection(store)
    created = new_export(store, connection.id)
    assert (created.displayName, created.listId, created.connectionId) == ("Newsletter", "3", connection.id)
    assert created.mapping.columns() == {"email": "Email", "firstName": "First Name"}
    assert created.createdBy == created.updatedBy == "admin@example.com" and created.createdAt == created.updatedAt
    assert store.get_export(created.id) == created
    assert [e.id for e in store.list_exports()] == [created.id]
    doc = store.get_export(created.id).to_document()
    assert doc["segment"] == {"container": "segments", "prefix": "crm/news/"}
    assert doc["mapping"] == {"email": "Email", "firstName": "First Name"}
    assert "segmentContainer" not in doc and "segmentPrefix" not in doc


def test_an_export_needs_an_existing_connection(store):
    with pytest.raises(ConfigError) as raised:
        new_export(store, "0" * 32)
    assert [p["field"] for p in raised.value.problems] == ["connectionId"]
    assert "0" * 32 in raised.value.problems[0]["message"]
    assert list(store.list_exports()) == []


def test_an_invalid_export_lists_every_problem(store):
    connection = new_connection(store)
    with pytest.raises(ConfigError) as raised:
        new_export(store, connection.id, list_id="three", container="Bad_Name", mapping={"fax": "Fax"})
    fields = {p["field"] for p in raised.value.problems}
    assert fields == {"listId", "segment.container", "mapping.email", "mapping.fax"}


def test_update_keeps_creation_and_records_the_updater(store):
    connection = new_connection(store)
    created = new_export(store, connection.id)
    updated = store.update_export(created.id, display_name="Weekly", connection_id=connection.id, list_id=4,
                                  container="segments", prefix="crm/weekly/", mapping={"email": "mail"},
                                  enabled=False, actor="editor@example.com")
    assert (updated.createdBy, updated.createdAt) == (created.createdBy, created.createdAt)
    assert updated.updatedBy == "editor@example.com" and updated.updatedAt > created.updatedAt
    stored = store.get_export(created.id)
    assert stored == updated
    assert (stored.displayName, stored.listId, stored.segmentPrefix, stored.enabled) == ("Weekly", "4", "crm/weekly/",
                                                                                          False)
    assert stored.mapping.columns() == {"email": "mail"}  # firstName, mapped before, is gone


def test_export_delete(store):
    connection = new_connection(store)
    kept, gone = new_export(store, connection.id), new_export(store, connection.id, display_name="Old")
    store.delete_export(gone.id)
    assert store.find_export(gone.id) is None
    with pytest.raises(config.NotFound):
        store.get_export(gone.id)
    with pytest.raises(config.NotFound):
        store.delete_export(gone.id)
    assert [e.id for e in store.list_exports()] == [kept.id]
