"""Exports over HTTP: roles, every validation message (list, columns, shape), replacing and deleting."""
from __future__ import annotations

import gzip
import json

import pytest

from tests.support.api_helpers import create_connection, create_export, export_body, problems
from tests.support.apphost import ADMIN, ANONYMOUS, CONTRIBUTOR, NOBODY

CSV_HEADER = b"Email,First Name,Last Name,Phone\n"


@pytest.fixture
def connections(app):
    """An admin-only connection and one open to contributors."""
    return {"hidden": create_connection(app, displayName="Hidden"),
            "open": create_connection(app, displayName="Open", allowContributors=True)}


def export_count(app) -> int:
    return len(list(app.ctx.config.list_exports()))


# --- creating ---------------------------------------------------------------------------------------
def test_an_admin_creates_an_export(app, connections):
    requests_before = app.simulator.stats()["requests"]
    response = app.request("POST", "/api/exports", export_body(connections["hidden"]["id"], listId=3))

    assert response.status == 201
    doc = response.body
    assert response.headers["Location"] == f"http://localhost:7071/api/exports/{doc['id']}"
    assert doc["listId"] == "3" and doc["connectionId"] == connections["hidden"]["id"]
    assert doc["segment"] == {"container": "segments", "prefix": "mgmt-api/"}
    assert doc["mapping"] == {"email": "email", "firstName": "first name"}
    assert doc["enabled"] is True
    assert doc["createdBy"] == doc["updatedBy"] == "admin@example.com" and doc["createdAt"] == doc["updatedAt"]
    assert app.simulator.stats()["requests"] == requests_before + 1, "the list was checked with GET /api/3/lists/3"
    assert app.request("GET", f"/api/exports/{doc['id']}").body == doc
    assert app.request("GET", "/api/exports").body == {"exports": [doc]}


def test_defaults_prefix_and_enabled_and_null_mappings(app, connections):
    body = export_body(connections["hidden"]["id"], segment={"container": "segments"},
                       mapping={"email": "email", "phone": None})
    del body["enabled"]
    doc = create_export(app, connections["hidden"]["id"], **{k: v for k, v in body.items() if k != "connectionId"})
    assert doc["segment"]["prefix"] == "" and doc["enabled"] is True and doc["mapping"] == {"email": "email"}


def test_a_list_the_account_lacks_is_named(app, connections):
    found = problems(app.request("POST", "/api/exports", export_body(connections["hidden"]["id"], listId="99")))
    assert set(found) == {"listId"}
    assert found["listId"].startswith("list 99 does not exist in this ActiveCampaign account")
    assert export_count(app) == 0


@pytest.mark.parametrize("changes,field,says", [
    ({"listId": "three"}, "listId", "numeric id"),
    ({"listId": True}, "listId", "a string or a whole number"),
    ({"mapping": {"firstName": "first name"}}, "mapping.email", "is required"),
    ({"mapping": {"email": "  "}}, "mapping.email", "is required"),
    ({"mapping": {"email": "email", "fax": "Fax"}}, "mapping.fax", "is not a known field"),
    ({"mapping": {"email": "email", "phone": 7}}, "mapping.phone", "must be a string or null"),
    ({"mapping": "email"}, "mapping", "must be a JSON object"),
    ({"segment": {"container": "Bad_Name"}}, "segment.container", "blob container name"),
    ({"segment": {"container": "export-runs"}}, "segment.container", "the app's own files"),
    ({"segment": {"container": "azure-webjobs-secrets"}}, "segment.container", "the app's own files"),
    ({"segment": {"prefix": "a/"}}, "segment.container", "is required"),
    ({"segment": {"container": "segments", "prefix": "p" * 1025}}, "segment.prefix", "at most 1024"),
    ({"segment": {"container": "segments", "path": "x"}}, "segment.path", "is not a known field"),
    ({"displayName": ""}, "displayName", "is required"),
    ({"enabled": "yes"}, "enabled", "must be true or false"),
    ({"schedule": "daily"}, "schedule", "NCRONTAB has six"),
    ({"schedule": "*/10 * * * * *"}, "schedule", "at most once a minute"),
    ({"schedule": "0 30 2 * *"}, "schedule", "seconds field first"),
    ({"excludeAutomations": "yes"}, "excludeAutomations", "must be true or false"),
    ({"mapping": {"email": "email", "tags": {}}}, "mapping.tags", "give tag names, a column of tag names"),
    ({"mapping": {"email": "email", "tags": {"names": ["VIP", " "]}}}, "mapping.tags.names[1]", "must not be empty"),
    ({"mapping": {"email": "email", "tags": {"names": ["x" * 256]}}}, "mapping.tags.names[0]", "at most 255"),
    ({"mapping": {"email": "email", "tags": {"column": "plan", "separator": "   "}}}, "mapping.tags.separator",
     "other than spaces"),
    ({"mapping": {"email": "email", "tags": ["VIP"]}}, "mapping.tags", "must be a JSON object or null"),
    ({"mapping": {"email": "email", "fields": {"column": "plan"}}}, "mapping.fields", "must be a JSON array"),
    ({"mapping": {"email": "email", "fields": [{"column": "plan"}]}}, "mapping.fields[0].field", "is required"),
    ({"mapping": {"email": "email", "fields": [{"column": "plan", "field": 0}]}}, "mapping.fields[0].field",
     "personalisation tag"),
    ({"connectionId": "0" * 32}, "connectionId", "does not exist"),
    ({"connectionId": 5}, "connectionId", "must be a string"),
])
def test_each_export_problem_is_named_with_its_fix(app, connections, changes, field, says):
    requests_before = app.simulator.stats()["requests"]
    found = problems(app.request("POST", "/api/exports", export_body(connections["hidden"]["id"], **changes)))
    assert field in found and says in found[field], found
    assert export_count(app) == 0
    assert app.simulator.stats()["requests"] == requests_before, "nothing is asked of ActiveCampaign for a bad body"


def test_missing_fields_are_each_named(app):
    found = problems(app.request("POST", "/api/exports", {}))
    assert set(found) == {"displayName", "connectionId", "listId", "segment", "mapping"}


def test_mapped_columns_must_be_in_the_segment_header_which_is_listed(app, connections):
    app.upload("mgmt-cols/part-0001.csv", CSV_HEADER + b"a@example.com,Ada,Lovelace,1\n")
    app.upload("mgmt-cols/part-0002.csv", b"other,columns\n1,2\n")  # only the first blob is read
    segment = {"container": "segments", "prefix": "mgmt-cols/"}
    response = app.request("POST", "/api/exports", export_body(
        connections["hidden"]["id"], segment=segment,
        mapping={"email": "e-mail", "firstName": "First Name", "lastName": "surname"}))
    found = problems(response)
    assert set(found) == {"mapping.email", "mapping.lastName"}
    assert "'e-mail' not found" in found["mapping.email"]
    assert "the columns available are 'Email', 'First Name', 'Last Name', 'Phone'" in found["mapping.email"]
    assert "mgmt-cols/part-0001.csv" in found["mapping.email"]
    # Column names match case-insensitively, as the run reads them.
    assert create_export(app, connections["hidden"]["id"], segment=segment, mapping={"email": "EMAIL", "phone": "phone"})


def test_columns_of_json_lines_and_gzip_segments_are_checked_too(app, connections):
    app.upload("mgmt-jl/a.jsonl.gz", gzip.compress(json.dumps({"mail": "a@example.com", "given": "Ada"}).encode() + b"\n"))
    found = problems(app.request("POST", "/api/exports", export_body(
        connections["hidden"]["id"], segment={"container": "segments", "prefix": "mgmt-jl/"}, mapping={"email": "email"})))
    assert "the columns available are 'mail', 'given'" in found["mapping.email"]
    assert create_export(app, connections["hidden"]["id"], segment={"container": "segments", "prefix": "mgmt-jl/"},
                         mapping={"email": "mail", "firstName": "given"})


def test_only_the_start_of_a_big_blob_is_read(app, connections, monkeypatch):
    rows = b"".join(b"p%d@example.com,P,Q,%d\n" % (i, i) for i in range(120_000))  # about 3 MB
    app.upload("mgmt-big/a.csv", CSV_HEADER + rows)
    from azure.storage.blob import BlobClient

    ranges = []
    original = BlobClient.download_blob

    def recording(self, offset=None, length=None, **kwargs):
        ranges.append((offset, length))
        return original(self, offset=offset, length=length, **kwargs)

    monkeypatch.setattr(BlobClient, "download_blob", recording)
    create_export(app, connections["hidden"]["id"], segment={"container": "segments", "prefix": "mgmt-big/"},
                  mapping={"email": "Email"})
    assert ranges == [(0, 1024 * 1024)]


def test_without_a_blob_or_container_the_columns_cannot_be_checked_yet(app, connections):
    assert create_export(app, connections["hidden"]["id"], segment={"container": "no-such-container", "prefix": ""})
    assert create_export(app, connections["hidden"]["id"], segment={"container": "segments", "prefix": "mgmt-nothing-here/"})


def test_an_unreadable_first_blob_is_left_for_the_run_to_report(app, connections):
    app.upload("mgmt-empty/a.csv", b"")
    assert create_export(app, connections["hidden"]["id"], segment={"container": "segments", "prefix": "mgmt-empty/"})


def test_a_revoked_connection_key_is_named(app, connections):
    app.secret_backend.set(connections["hidden"]["apiKeySecretName"], "revoked-DO-NOT-LEAK")
    app.ctx.secrets.forget(connections["hidden"]["apiKeySecretName"])
    found = problems(app.request("POST", "/api/exports", export_body(connections["hidden"]["id"])))
    assert "ActiveCampaign refused the API key of connection 'Hidden'" in found["connectionId"]


def test_activecampaign_trouble_while_checking_the_list_is_502_or_503(app, connections):
    app.simulator.fail_next(1, 500, "/lists")
    response = app.request("POST", "/api/exports", export_body(connections["hidden"]["id"]))
    assert (response.status, response.body["error"]["code"]) == (502, "activecampaign_unreachable")
    app.simulator.fail_next(1, 429, "/lists")
    response = app.request("POST", "/api/exports", export_body(connections["hidden"]["id"]))
    assert (response.status, response.body["error"]["code"]) == (503, "activecampaign_throttled")
    assert export_count(app) == 0


def test_a_connection_whose_secret_is_gone_is_409(app, connections):
    app.secret_backend.delete(connections["hidden"]["apiKeySecretName"])
    app.ctx.secrets.forget(connections["hidden"]["apiKeySecretName"])
    response = app.request("POST", "/api/exports", export_body(connections["hidden"]["id"]))
    assert (response.status, response.body["error"]["code"]) == (409, "connection_unusable")
    assert "missing from Key Vault" in response.body["error"]["message"]


# --- who may do what --------------------------------------------------------------------------------
def test_contributors_work_only_with_exports_on_open_connections(app, connections):
    on_hidden = create_export(app, connections["hidden"]["id"], displayName="On hidden")
    by_contributor = create_export(app, connections["open"]["id"], principal=CONTRIBUTOR, displayName="Mine")
    assert by_contributor["createdBy"] == "contributor@example.com"

    assert app.request("GET", "/api/exports", principal=CONTRIBUTOR).body == {"exports": [by_contributor]}
    assert [e["displayName"] for e in app.request("GET", "/api/exports").body["exports"]] == ["Mine", "On hidden"]
    hidden = app.request("GET", f"/api/exports/{on_hidden['id']}", principal=CONTRIBUTOR)
    assert hidden.status == 404 and hidden.body["error"]["message"] == f"export {on_hidden['id']!r} does not exist"
    for method in ("PUT", "DELETE"):
        body = export_body(connections["open"]["id"]) if method == "PUT" else None
        assert app.request(method, f"/api/exports/{on_hidden['id']}", body, principal=CONTRIBUTOR).status == 404
    assert app.request("POST", f"/api/exports/{on_hidden['id']}/runs", principal=CONTRIBUTOR).status == 404
    assert app.request("GET", f"/api/exports/{on_hidden['id']}/runs", principal=CONTRIBUTOR).status == 404

    # Creating on, or moving to, a connection closed to contributors reads as "does not exist".
    found = problems(app.request("POST", "/api/exports", export_body(connections["hidden"]["id"]), principal=CONTRIBUTOR))
    assert "does not exist or is not open to contributors" in found["connectionId"]
    found = problems(app.request("PUT", f"/api/exports/{by_contributor['id']}", export_body(connections["hidden"]["id"]),
                                 principal=CONTRIBUTOR))
    assert "connectionId" in found
    assert export_count(app) == 2


@pytest.mark.parametrize("method,path", [
    ("GET", "/api/exports"), ("POST", "/api/exports"), ("GET", "/api/exports/abc"), ("PUT", "/api/exports/abc"),
    ("DELETE", "/api/exports/abc"), ("POST", "/api/exports/abc/runs"), ("GET", "/api/exports/abc/runs"),
    ("GET", "/api/runs/abc"), ("POST", "/api/runs/abc/cancel"),
])
def test_no_role_is_403_and_no_header_is_401(app, method, path):
    body = {} if method in ("POST", "PUT") and not path.endswith(("runs", "cancel")) else None
    assert app.request(method, path, body, principal=NOBODY).status == 403
    response = app.request(method, path, body, principal=ANONYMOUS)
    assert response.status == 401 and response.body["error"]["code"] == "unauthenticated"


# --- replacing --------------------------------------------------------------------------------------
def test_put_replaces_the_export_and_records_who_changed_it(app, connections):
    created = create_export(app, connections["open"]["id"], mapping={"email": "email", "firstName": "first name"})
    response = app.request("PUT", f"/api/exports/{created['id']}", export_body(
        connections["open"]["id"], displayName="Renamed", listId=4, mapping={"email": "email"}, enabled=False),
        principal=CONTRIBUTOR)
    assert response.status == 200
    doc = response.body
    assert (doc["displayName"], doc["listId"], doc["mapping"], doc["enabled"]) == ("Renamed", "4", {"email": "email"}, False)
    assert (doc["createdBy"], doc["createdAt"]) == (created["createdBy"], created["createdAt"])
    assert doc["updatedBy"] == "contributor@example.com" and doc["updatedAt"] >= created["updatedAt"]
    assert app.request("GET", f"/api/exports/{created['id']}").body == doc


def test_put_checks_activecampaign_only_when_the_list_changes(app, connections):
    created = create_export(app, connections["hidden"]["id"])
    # ActiveCampaign is down, yet disabling an export must still work.
    app.ctx.accounts.base_url_override, app.ctx.accounts.timeout_seconds = "http://127.0.0.1:9", 2
    app.ctx.accounts.close()  # no client kept from before may reach the simulator
    body = export_body(connections["hidden"]["id"], enabled=False)
    assert app.request("PUT", f"/api/exports/{created['id']}", body).status == 200
    moved = app.request("PUT", f"/api/exports/{created['id']}", export_body(connections["hidden"]["id"], listId="4"))
    assert moved.status == 502


def test_put_validates_like_post(app, connections):
    created = create_export(app, connections["hidden"]["id"])
    assert set(problems(app.request("PUT", f"/api/exports/{created['id']}", {"displayName": "x"}))) >= {"connectionId", "listId"}
    assert "listId" in problems(app.request("PUT", f"/api/exports/{created['id']}",
                                            export_body(connections["hidden"]["id"], listId="77")))
    assert app.request("PUT", "/api/exports/0000", export_body(connections["hidden"]["id"])).status == 404
    assert app.request("PUT", f"/api/exports/{created['id']}", b"{").status == 400


# --- deleting ---------------------------------------------------------------------------------------
def test_deleting_an_export_keeps_its_runs_readable_by_admins(app, connections):
    app.upload("mgmt-deleted-export/a.csv", b"email,first name\nada@example.com,Ada\n")
    export = create_export(app, connections["open"]["id"], principal=CONTRIBUTOR,
                           segment={"container": "segments", "prefix": "mgmt-deleted-export/"})
    run_id = app.start(export["id"]).body["runId"]
    assert app.drain(run_id)["status"] == "succeeded"

    deleted = app.request("DELETE", f"/api/exports/{export['id']}", principal=CONTRIBUTOR)
    assert deleted.status == 200 and deleted.body == {"exportId": export["id"], "deleted": True, "cancelledRuns": []}
    assert app.request("GET", f"/api/exports/{export['id']}").status == 404
    assert app.request("DELETE", f"/api/exports/{export['id']}").status == 404
    assert app.start(export["id"]).status == 404, "no new runs"

    assert app.request("GET", f"/api/runs/{run_id}").body["status"] == "succeeded"
    listed = app.request("GET", f"/api/exports/{export['id']}/runs")
    assert [r["runId"] for r in listed.body["runs"]] == [run_id]
    # Contributors no longer see them: nothing says whose the deleted export was.
    assert app.request("GET", f"/api/runs/{run_id}", principal=CONTRIBUTOR).status == 404
    assert app.request("GET", f"/api/exports/{export['id']}/runs", principal=CONTRIBUTOR).status == 404


# --- methods ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("method,path,allow", [
    ("DELETE", "/api/exports", "GET, POST"),
    ("PATCH", "/api/exports/abc", "GET, PUT, DELETE"),
    ("POST", "/api/exports/abc", "GET, PUT, DELETE"),
    ("DELETE", "/api/exports/abc/runs", "GET, POST"),
    ("DELETE", "/api/runs/abc", "GET"),
    ("GET", "/api/runs/abc/cancel", "POST"),
    ("POST", "/api/openapi.json", "GET"),
    ("OPTIONS", "/api/exports", "GET, POST"),
])
def test_other_methods_are_405_with_allow(app, method, path, allow):
    response = app.request(method, path, principal=ADMIN)
    assert response.status == 405 and response.headers["Allow"] == allow
