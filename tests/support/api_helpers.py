"""Request bodies and calls shared by the management API tests."""
from __future__ import annotations

from tests.support.apphost import ACCOUNT_HOST, ADMIN, API_KEY


def connection_body(**changes) -> dict:
    return {"displayName": "Marketing account", "hostname": ACCOUNT_HOST, "apiKey": API_KEY,
            "allowContributors": False, "privacyConsent": True} | changes


def create_connection(app, principal: str = ADMIN, **changes) -> dict:
    response = app.request("POST", "/api/connections", connection_body(**changes), principal=principal)
    assert response.status == 201, response.body
    return response.body


def export_body(connection_id: str, **changes) -> dict:
    return {"displayName": "Newsletter", "connectionId": connection_id, "listId": "3",
            "segment": {"container": "segments", "prefix": "mgmt-api/"},
            "mapping": {"email": "email", "firstName": "first name"}, "enabled": True} | changes


def create_export(app, connection_id: str, principal: str = ADMIN, **changes) -> dict:
    response = app.request("POST", "/api/exports", export_body(connection_id, **changes), principal=principal)
    assert response.status == 201, response.body
    return response.body


def problems(response) -> dict[str, str]:
    """field -> message of a validation_failed answer."""
    assert response.status == 400, (response.status, response.body)
    assert response.body["error"]["code"] == "validation_failed", response.body
    return {p["field"]: p["message"] for p in response.body["error"]["details"]}
