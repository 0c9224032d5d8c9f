"""exports/openapi.json: a valid OpenAPI 3.1 document, served by the app, and the checks built on it.

Every response of the whole suite is validated against it by tests/apphost.py (TestApp.request);
the tests here show that the document is valid and that the checking really rejects drift.
"""
from __future__ import annotations

import json

import pytest
from openapi_spec_validator import validate

from tests.support.apphost import ANONYMOUS, NOBODY, SECRET_MARKER
from tests.support.openapi_contract import DOCUMENT_PATH, ContractError, check_response, match_path

JSON = {"Content-Type": "application/json; charset=utf-8"}


def test_the_document_is_valid_openapi_3_1():
    document = json.loads(DOCUMENT_PATH.read_text())
    validate(document)
    assert document["openapi"].startswith("3.1")


def test_every_operation_documents_its_errors_in_the_one_error_shape():
    document = json.loads(DOCUMENT_PATH.read_text())
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            assert operation.get("operationId") and operation.get("summary"), (path, method)
            assert "500" in operation["responses"], (path, method)
            if path != "/openapi.json":
                assert {"401", "403"} <= set(operation["responses"]), (path, method)


def test_the_app_serves_the_document_with_its_own_address(app):
    response = app.request("GET", "/api/openapi.json", principal=ANONYMOUS)
    assert response.status == 200
    assert response.body["servers"] == [{"url": "http://localhost:7071/api"}]
    stored = json.loads(DOCUMENT_PATH.read_text())
    assert {k: v for k, v in response.body.items() if k != "servers"} == {k: v for k, v in stored.items() if k != "servers"}
    behind_front_door = app.request("GET", "/api/openapi.json", principal=NOBODY,
                                    headers={"X-Forwarded-Host": "exports.example.com", "X-Forwarded-Proto": "https"})
    assert behind_front_door.body["servers"] == [{"url": "https://exports.example.com/api"}]


def test_request_paths_map_to_the_documented_templates():
    assert match_path("/api/connections") == "/connections"
    assert match_path("/api/exports/abc/runs?limit=3") == "/exports/{exportId}/runs"
    assert match_path("/api/runs/r1/cancel") == "/runs/{runId}/cancel"
    assert match_path("/api/openapi.json") == "/openapi.json"
    assert match_path("/api/openapiXjson") is None
    assert match_path("/api/nothing") is None


@pytest.mark.parametrize("method,path,status,headers,body,says", [
    ("GET", "/api/connections", 200, JSON, {"connections": [{"id": "x"}]}, "is a required property"),
    ("GET", "/api/connections/x", 200, JSON, {"id": "c"}, "is a required property"),
    ("GET", "/api/connections", 418, JSON, {}, "status 418 is not documented"),
    ("GET", "/api/exports", 200, {"Content-Type": "text/plain"}, {"exports": []}, "Content-Type"),
    ("PATCH", "/api/exports", 200, JSON, {"exports": []}, "must be 405"),
    ("PATCH", "/api/exports", 405, JSON, {"error": {"code": "method_not_allowed", "message": "m"}}, "header Allow"),
    ("POST", "/api/connections", 201, JSON, {}, "header Location"),
    ("GET", "/api/runs/r", 404, JSON, {"error": {"code": "x"}}, "'message' is a required property"),
    ("GET", "/api/nowhere", 200, JSON, {}, "not in exports/openapi.json"),
])
def test_the_contract_check_rejects_drift(method, path, status, headers, body, says):
    with pytest.raises(ContractError) as raised:
        check_response(method, path, status, headers, body)
    assert says in str(raised.value)
    assert f"{method} {path} -> {status}" in str(raised.value), "the failure names the route and status"


def test_an_api_key_in_a_connection_document_breaks_the_contract():
    connection = {"id": "c", "displayName": "d", "hostname": "h.example.com", "apiKeySecretName": "activecampaign-c",
                  "allowContributors": False, "privacyConsent": {"acceptedBy": "a", "acceptedAt": "2030-01-01T00:00:00Z"},
                  "exportUser": "a", "createdBy": "a", "createdAt": "2030-01-01T00:00:00Z", "updatedBy": "a",
                  "updatedAt": "2030-01-01T00:00:00Z"}
    check_response("GET", "/api/connections/c", 200, JSON, connection)
    with pytest.raises(ContractError, match="Additional properties are not allowed"):
        check_response("GET", "/api/connections/c", 200, JSON, connection | {"apiKey": "k"})


def test_the_storage_leak_check_finds_a_key_in_a_table_entity(app):
    table = app.ctx.storage.tables.get_table_client("connections")
    entity = {"PartitionKey": "leak-check", "RowKey": "1", "note": f"key-{SECRET_MARKER}"}
    table.upsert_entity(entity)
    try:
        with pytest.raises(AssertionError, match="leaked into table connections"):
            app.assert_no_secret_in_storage()
    finally:
        table.delete_entity("leak-check", "1")

