"""Connections over HTTP: who may do what, every validation message, the key check, Key Vault, deletion."""
from __future__ import annotations

from dataclasses import replace

import pytest
from azure.core.exceptions import ServiceRequestError

from exports.services.connections import secret_name_for
from tests.support.api_helpers import connection_body, create_connection, create_export, problems
from tests.support.apphost import ACCOUNT_HOST, ANONYMOUS, API_KEY, CONTRIBUTOR, NOBODY

HINT = "enter the hostname only, without https://"


def connection_count(app) -> int:
    return len(list(app.ctx.config.list_connections()))


# --- creating ---------------------------------------------------------------------------------------
def test_an_admin_creates_a_connection_the_key_goes_to_key_vault_and_never_comes_back(app):
    response = app.request("POST", "/api/connections", connection_body(allowContributors=True))

    assert response.status == 201
    doc = response.body
    assert response.headers["Location"] == f"http://localhost:7071/api/connections/{doc['id']}"
    assert doc["displayName"] == "Marketing account" and doc["hostname"] == ACCOUNT_HOST
    assert doc["allowContributors"] is True
    assert doc["createdBy"] == doc["updatedBy"] == doc["exportUser"] == "admin@example.com"
    assert doc["privacyConsent"]["acceptedBy"] == "admin@example.com"
    assert doc["createdAt"] == doc["privacyConsent"]["acceptedAt"]
    assert "apiKey" not in doc and API_KEY not in str(doc)
    assert doc["apiKeySecretName"] == secret_name_for(doc["id"])
    assert app.vault.secrets()[secret_name_for(doc["id"])] == API_KEY
    assert app.simulator.stats()["requests"] == 1, "the key was checked with one GET /api/3/users/me"
    stored = app.ctx.config.get_connection(doc["id"])
    assert API_KEY not in repr(stored) and not hasattr(stored, "apiKey")
    # Read back, listed and fetched, it is the same document.
    assert app.request("GET", f"/api/connections/{doc['id']}").body == doc
    assert app.request("GET", "/api/connections").body == {"connections": [doc]}


def test_surrounding_spaces_and_case_are_tidied(app):
    doc = create_connection(app, displayName="  Sales  ", hostname="  TestAccount.API-US1.com. ", apiKey=f"  {API_KEY}\n")
    assert (doc["displayName"], doc["hostname"]) == ("Sales", ACCOUNT_HOST)
    assert app.vault.secrets()[doc["apiKeySecretName"]] == API_KEY


@pytest.mark.parametrize("consent", [False, None, "true", 1])
def test_privacy_consent_must_be_true_and_the_message_says_data_leaves_the_boundary(app, consent):
    found = problems(app.request("POST", "/api/connections", connection_body(privacyConsent=consent)))
    assert set(found) == {"privacyConsent"}
    assert "compliance boundary" in found["privacyConsent"] and "must be true" in found["privacyConsent"]
    assert connection_count(app) == 0 and app.simulator.stats()["requests"] == 0


def test_missing_consent_gets_the_same_explanation(app):
    body = connection_body()
    del body["privacyConsent"]
    found = problems(app.request("POST", "/api/connections", body))
    assert "compliance boundary" in found["privacyConsent"]


@pytest.mark.parametrize("hostname", [
    "https://testaccount.api-us1.com", "testaccount.api-us1.com/api/3", "testaccount.api-us1.com:443",
    "203.0.113.7", "[2001:db8::1]", "localhost", "testaccount",
])
def test_hostname_must_be_bare_and_the_message_says_how(app, hostname):
    found = problems(app.request("POST", "/api/connections", connection_body(hostname=hostname)))
    assert set(found) == {"hostname"}
    assert HINT in found["hostname"] and repr(hostname) in found["hostname"]
    assert connection_count(app) == 0 and app.simulator.stats()["requests"] == 0


@pytest.mark.parametrize("changes,field,says", [
    ({"displayName": "  "}, "displayName", "is required"),
    ({"displayName": "x" * 201}, "displayName", "at most 200"),
    ({"apiKey": ""}, "apiKey", "Settings > Developer"),
    ({"apiKey": "has spaces DO-NOT-LEAK"}, "apiKey", "no spaces"),
    ({"apiKey": 12345}, "apiKey", "must be a string"),
    ({"hostname": None}, "hostname", "must be a string"),
    ({"allowContributors": "yes"}, "allowContributors", "must be true or false"),
    ({"colour": "blue"}, "colour", "is not a known field; the fields are displayName, hostname, apiKey"),
])
def test_each_field_problem_is_named_with_its_fix(app, changes, field, says):
    found = problems(app.request("POST", "/api/connections", connection_body(**changes)))
    assert field in found and says in found[field], found
    assert connection_count(app) == 0 and app.simulator.stats()["requests"] == 0


def test_required_fields_are_each_named(app):
    found = problems(app.request("POST", "/api/connections", {}))
    assert set(found) == {"displayName", "hostname", "apiKey", "privacyConsent"}


def test_every_problem_is_listed_at_once(app):
    response = app.request("POST", "/api/connections", connection_body(
        displayName="", hostname="https://x.example.com", privacyConsent=False, extra=1))
    assert set(problems(response)) == {"displayName", "hostname", "privacyConsent", "extra"}
    assert response.body["error"]["message"].startswith("the request is not valid: ")


def test_a_key_activecampaign_rejects_is_named_and_nothing_is_saved(app):
    secrets_before = set(app.vault.secrets())
    response = app.request("POST", "/api/connections", connection_body(apiKey="wrong-key-DO-NOT-LEAK"))

    found = problems(response)
    assert set(found) == {"apiKey"}
    assert "ActiveCampaign rejected this API key" in found["apiKey"] and ACCOUNT_HOST in found["apiKey"]
    assert connection_count(app) == 0
    assert set(app.vault.secrets()) == secrets_before


def test_a_host_without_the_activecampaign_api_is_named(app):
    app.ctx.accounts.base_url_override = app.simulator.base_url + "/not-the-api"
    found = problems(app.request("POST", "/api/connections", connection_body()))
    assert "has no ActiveCampaign API" in found["hostname"] and "users/me" in found["hostname"]
    assert connection_count(app) == 0


def test_unreachable_activecampaign_is_502_and_nothing_is_saved(app):
    secrets_before = set(app.vault.secrets())
    app.ctx.accounts.base_url_override, app.ctx.accounts.timeout_seconds = "http://127.0.0.1:9", 2
    response = app.request("POST", "/api/connections", connection_body())
    assert response.status == 502
    assert response.body["error"]["code"] == "activecampaign_unreachable"
    assert "could not be reached" in response.body["error"]["message"] and "nothing was saved" in response.body["error"]["message"]
    assert connection_count(app) == 0 and set(app.vault.secrets()) == secrets_before


def test_activecampaign_errors_are_502(app):
    app.simulator.fail_next(1, 500, "/users/me")
    response = app.request("POST", "/api/connections", connection_body())
    assert (response.status, response.body["error"]["code"]) == (502, "activecampaign_unreachable")
    app.simulator.fail_next(1, 402, "/users/me")
    response = app.request("POST", "/api/connections", connection_body())
    assert (response.status, response.body["error"]["code"]) == (502, "activecampaign_error")
    assert "payment" in response.body["error"]["message"]
    assert connection_count(app) == 0


def test_a_throttled_account_is_503_with_retry_after(app):
    app.simulator.fail_next(1, 429, "/users/me")
    response = app.request("POST", "/api/connections", connection_body())
    assert response.status == 503 and response.headers["Retry-After"] == "1"
    assert response.body["error"]["code"] == "activecampaign_throttled"
    assert connection_count(app) == 0


def test_when_key_vault_fails_nothing_is_saved(app, monkeypatch):
    def unavailable(name, value):
        raise ServiceRequestError("vault down")

    monkeypatch.setattr(app.ctx.secrets, "set", unavailable)
    response = app.request("POST", "/api/connections", connection_body())
    assert (response.status, response.body["error"]["code"]) == (503, "key_vault_unavailable")
    assert "nothing was saved" in response.body["error"]["message"]
    assert connection_count(app) == 0


def test_when_the_record_cannot_be_written_the_secret_is_removed_again(app, monkeypatch):
    def broken(connection):
        raise RuntimeError("table down")

    monkeypatch.setattr(app.ctx.config, "add_connection", broken)
    secrets_before = set(app.vault.secrets())
    response = app.request("POST", "/api/connections", connection_body())
    assert (response.status, response.body["error"]["code"]) == (500, "internal_error")
    assert set(app.vault.secrets()) == secrets_before, "the secret written first was deleted again"


@pytest.mark.parametrize("raw,code,status", [
    (b'{"displayName": ', "invalid_json", 400),
    (b"\xff\xfe", "invalid_json", 400),
    (b"", "invalid_json", 400),
    (b'["a"]', "validation_failed", 400),
    (b'"text"', "validation_failed", 400),
    (b'{"displayName": "' + b"x" * (64 * 1024) + b'"}', "body_too_large", 413),
])
def test_bodies_that_are_not_a_json_object_or_too_big_are_refused(app, raw, code, status):
    response = app.request("POST", "/api/connections", raw)
    assert (response.status, response.body["error"]["code"]) == (status, code)
    assert connection_count(app) == 0


# --- who may do what --------------------------------------------------------------------------------
def test_only_admins_create_connections(app):
    for principal in (CONTRIBUTOR, NOBODY):
        assert app.request("POST", "/api/connections", connection_body(), principal=principal).status == 403
    assert app.request("POST", "/api/connections", connection_body(), principal=ANONYMOUS).status == 401
    forbidden = app.request("POST", "/api/connections", connection_body(), principal=CONTRIBUTOR)
    assert "only admins (role Export.Admin) may create connections" in forbidden.body["error"]["message"]
    # The role is checked before the body is read: no hints about the body to someone who may not send it.
    assert app.request("POST", "/api/connections", b"{not json", principal=CONTRIBUTOR).status == 403
    assert app.request("POST", "/api/connections", b"{not json", principal=ANONYMOUS).status == 401
    assert connection_count(app) == 0 and app.simulator.stats()["requests"] == 0


def test_contributors_see_only_connections_open_to_them(app):
    open_ = create_connection(app, displayName="Open", allowContributors=True)
    hidden = create_connection(app, displayName="Hidden", allowContributors=False)

    admin_view = app.request("GET", "/api/connections").body["connections"]
    assert [c["displayName"] for c in admin_view] == ["Hidden", "Open"]
    contributor_view = app.request("GET", "/api/connections", principal=CONTRIBUTOR)
    assert contributor_view.status == 200 and contributor_view.body["connections"] == [open_]
    assert "Hidden" not in str(contributor_view.body)

    assert app.request("GET", f"/api/connections/{open_['id']}", principal=CONTRIBUTOR).body == open_
    hidden_answer = app.request("GET", f"/api/connections/{hidden['id']}", principal=CONTRIBUTOR)
    missing_answer = app.request("GET", "/api/connections/0123456789abcdef", principal=CONTRIBUTOR)
    assert hidden_answer.status == missing_answer.status == 404
    assert "Hidden" not in str(hidden_answer.body)
    assert hidden_answer.body["error"]["message"] == f"connection {hidden['id']!r} does not exist"
    assert app.request("GET", f"/api/connections/{hidden['id']}").status == 200


@pytest.mark.parametrize("method,path", [
    ("GET", "/api/connections"), ("GET", "/api/connections/abc"), ("DELETE", "/api/connections/abc"),
])
def test_no_role_is_403_and_no_header_is_401(app, method, path):
    forbidden = app.request(method, path, principal=NOBODY)
    assert forbidden.status == 403 and forbidden.body["error"]["code"] == "forbidden"
    assert "visitor@example.com has neither the Export.Admin nor the Export.Contributor role" in forbidden.body["error"]["message"]
    unauthenticated = app.request(method, path, principal=ANONYMOUS)
    assert unauthenticated.status == 401 and "sign-in required" in unauthenticated.body["error"]["message"]


def test_a_malformed_principal_header_is_401_with_the_reason(app):
    response = app.request("GET", "/api/connections", principal="%%%not-base64%%%")
    assert response.status == 401 and response.body["error"]["code"] == "unauthenticated"
    assert "X-MS-CLIENT-PRINCIPAL is not base64" in response.body["error"]["message"]


def test_without_user_sign_in_the_function_key_acts_as_admin(app):
    app.ctx.settings = replace(app.ctx.settings, require_sign_in=False)
    created = app.request("POST", "/api/connections", connection_body(), principal=ANONYMOUS)
    assert created.status == 201 and created.body["createdBy"] == "function-key"
    # A header nobody validated names nobody: it is ignored, not trusted.
    listed = app.request("GET", "/api/connections", principal=NOBODY)
    assert listed.status == 200 and len(listed.body["connections"]) == 1


# --- deleting ---------------------------------------------------------------------------------------
def test_deleting_an_unused_connection_deletes_its_secret(app):
    doc = create_connection(app)
    response = app.request("DELETE", f"/api/connections/{doc['id']}")
    assert response.status == 200
    assert response.body == {"connectionId": doc["id"], "deleted": True, "disabledExports": [], "cancelledRuns": []}
    assert doc["apiKeySecretName"] not in app.vault.secrets()
    assert app.request("GET", f"/api/connections/{doc['id']}").status == 404
    assert app.request("DELETE", f"/api/connections/{doc['id']}").status == 404


def test_a_connection_in_use_is_409_naming_the_exports_unless_forced(app):
    doc = create_connection(app)
    first = create_export(app, doc["id"], displayName="Weekly newsletter")
    second = create_export(app, doc["id"], displayName="Customers", listId="4")

    refused = app.request("DELETE", f"/api/connections/{doc['id']}")
    assert refused.status == 409 and refused.body["error"]["code"] == "connection_in_use"
    message = refused.body["error"]["message"]
    assert "'Weekly newsletter'" in message and "'Customers'" in message and "?force=true" in message
    assert {e["id"] for e in refused.body["error"]["details"]["exports"]} == {first["id"], second["id"]}
    assert doc["apiKeySecretName"] in app.vault.secrets(), "nothing was deleted"

    assert app.request("DELETE", f"/api/connections/{doc['id']}?force=maybe").status == 400
    forced = app.request("DELETE", f"/api/connections/{doc['id']}?force=true")
    assert forced.status == 200
    assert sorted(forced.body["disabledExports"]) == sorted([first["id"], second["id"]])
    assert doc["apiKeySecretName"] not in app.vault.secrets()
    for export in (first, second):
        stored = app.request("GET", f"/api/exports/{export['id']}").body
        assert stored["enabled"] is False and stored["updatedBy"] == "admin@example.com"
        assert app.start(export["id"]).status == 409


def test_only_admins_delete_connections(app):
    open_ = create_connection(app, allowContributors=True)
    hidden = create_connection(app)
    assert app.request("DELETE", f"/api/connections/{open_['id']}", principal=CONTRIBUTOR).status == 403
    assert app.request("DELETE", f"/api/connections/{hidden['id']}", principal=CONTRIBUTOR).status == 404
    assert connection_count(app) == 2


def test_when_key_vault_cannot_delete_the_secret_the_connection_stays(app, monkeypatch):
    doc = create_connection(app)

    def unavailable(name):
        raise ServiceRequestError("vault down")

    monkeypatch.setattr(app.ctx.secrets, "delete", unavailable)
    response = app.request("DELETE", f"/api/connections/{doc['id']}")
    assert (response.status, response.body["error"]["code"]) == (503, "key_vault_unavailable")
    assert app.request("GET", f"/api/connections/{doc['id']}").status == 200


# --- methods ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("method,path,allow", [
    ("PUT", "/api/connections", "GET, POST"),
    ("DELETE", "/api/connections", "GET, POST"),
    ("PATCH", "/api/connections/abc", "GET, DELETE"),
    ("POST", "/api/connections/abc", "GET, DELETE"),
    ("HEAD", "/api/connections", "GET, POST"),
])
def test_other_methods_are_405_with_allow(app, method, path, allow):
    response = app.request(method, path, principal=ANONYMOUS)
    assert response.status == 405 and response.headers["Allow"] == allow
    assert response.body["error"]["code"] == "method_not_allowed"
