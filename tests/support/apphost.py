"""The function app wired to local parts, driven the way the Functions host drives it.

HTTP requests are routed to the function whose route template and methods match, exactly as
declared in the app's index; queue messages are delivered by exports.local_host.LocalQueueHost.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from exports.context import build_context, set_context
from exports.local_host import LocalQueueHost, indexed_functions
from exports.model import Connection, Export, RunStatus
from exports.names import CONNECTIONS_TABLE, EXPORT_RUNS_TABLE, EXPORTS_TABLE, QUEUES, RUNS_TABLE, SEGMENTS_CONTAINER
from exports.settings import Settings
from shared.auth import PRINCIPAL_HEADER
from shared.secrets import KeyVaultSecrets
from shared.storage import StorageClients, storage_clients
from tests.support.keyvault import make_secret_client
from tests.support.openapi_contract import check_response
from tests.support.principals import encode_client_principal
from tests.support.records import add_connection, add_export

API_KEY = "ac-key-9f8e7d6c5b4a-DO-NOT-LEAK"  # distinctive, so a leak anywhere is found by search
# Every API key a test uses contains this marker, so the leak checks find any of them, valid or not.
SECRET_MARKER = "DO-NOT-LEAK"
ACCOUNT_HOST = "testaccount.api-us1.com"
HOST_URL = "http://localhost:7071"

# X-MS-CLIENT-PRINCIPAL values as App Service Authentication writes them, for the default role names.
ADMIN = encode_client_principal("admin@example.com", ["Export.Admin"])
CONTRIBUTOR = encode_client_principal("contributor@example.com", ["Export.Contributor"])
NOBODY = encode_client_principal("visitor@example.com", [])  # signed in, but neither role
ANONYMOUS = None  # no header at all


@dataclass
class Response:
    status: int
    headers: dict
    body: object
    method: str = ""
    path: str = ""

    @classmethod
    def of(cls, response: func.HttpResponse, method: str = "", path: str = "") -> Response:
        raw = response.get_body()
        headers = dict(response.headers)
        if response.mimetype and not any(k.lower() == "content-type" for k in headers):
            # The host writes Content-Type from the response's mimetype and charset.
            headers["Content-Type"] = response.mimetype + (f"; charset={response.charset}" if response.charset else "")
        if response.mimetype == "text/csv":
            return cls(response.status_code, headers, raw.decode("utf-8"), method.upper(), path)
        return cls(response.status_code, headers, json.loads(raw) if raw else None, method.upper(), path)


class _RecordingQueue:
    """A queue client that keeps every message the app sends, so a test can search all of them later."""

    def __init__(self, client, sent: list):
        self._client = client
        self._sent = sent

    def send_message(self, content, *args, **kwargs):
        self._sent.append(content)
        return self._client.send_message(content, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


@dataclass(frozen=True)
class RecordingStorage(StorageClients):
    sent_messages: list = field(default_factory=list)

    def queue(self, name: str):
        return _RecordingQueue(super().queue(name), self.sent_messages)


class TestApp:
    __test__ = False  # not a test class, despite the name

    def __init__(self, azurite, vault, simulator, settings: dict | None = None):
        import function_app

        self.simulator = simulator
        self.vault = vault
        self.environ = {
            "AzureWebJobsStorage": azurite.connection_string,
            "KEY_VAULT_URL": vault.url,
            "ACTIVECAMPAIGN_BASE_URL": simulator.base_url,
            "EXPORT_CHUNK_SIZE": "5000",
            **(settings or {}),
        }
        self.settings = Settings.from_env(self.environ)
        self.secret_backend = KeyVaultSecrets(make_secret_client(vault))
        self.started_at = datetime.now(UTC) - timedelta(seconds=5)  # Azurite's clock and ours may differ a little
        clients = storage_clients(self.settings.storage)
        self.ctx = build_context(self.settings, secret_backend=self.secret_backend, storage=RecordingStorage(
            blobs=clients.blobs, queues=clients.queues, tables=clients.tables))
        self.ctx.backoff.base_seconds = 0.05  # Retry-After still rules; the jittered floor just shrinks
        self.ctx.ensure_resources()
        self._clean()
        set_context(self.ctx)
        self.app = function_app.app
        self.host = LocalQueueHost(self.ctx, self.app, retry_delay_seconds=0)
        self.responses: list[Response] = []

    def close(self) -> None:
        set_context(None)
        self.assert_no_secret_in_storage()

    def assert_no_secret_in_storage(self) -> None:
        """No API key in any Table entity written, or queue message sent, while this app ran."""
        haystacks = {f"queue message {i}": str(m) for i, m in enumerate(self.ctx.storage.sent_messages)}
        since = self.started_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        for table in (CONNECTIONS_TABLE, EXPORTS_TABLE, RUNS_TABLE, EXPORT_RUNS_TABLE):
            client = self.ctx.storage.tables.get_table_client(table)
            entities = client.query_entities(f"Timestamp ge datetime'{since}'")
            haystacks[f"table {table}"] = repr(list(entities))
        for where, text in haystacks.items():
            assert SECRET_MARKER not in text, f"an API key leaked into {where}"

    def _clean(self) -> None:
        # Tests share one Azurite: start each with empty queues and no configuration records
        # (the timer starts every enabled export there is).
        for name in QUEUES:
            self.ctx.storage.queue(name).clear_messages()
        for table in (CONNECTIONS_TABLE, EXPORTS_TABLE):
            client = self.ctx.storage.tables.get_table_client(table)
            for entity in client.list_entities(select=["PartitionKey", "RowKey"]):
                client.delete_entity(entity["PartitionKey"], entity["RowKey"])

    # --- configuration (tests/support/records.py) --------------------------------------------
    def connection(self, **overrides) -> Connection:
        connection = add_connection(self.ctx, ACCOUNT_HOST, **overrides)
        self.ctx.secrets.set(connection.apiKeySecretName, API_KEY)
        return connection

    def export(self, connection=None, prefix: str = "seg/", list_id: str = "3", mapping: dict | None = None,
               container: str = SEGMENTS_CONTAINER, enabled: bool = True, **overrides) -> Export:
        return add_export(self.ctx, connection or self.connection(), prefix,
                          mapping or {"email": "email", "firstName": "first name", "lastName": "last name"},
                          list_id=list_id, container=container, enabled=enabled, **overrides)

    def upload(self, name: str, data: bytes, container: str = SEGMENTS_CONTAINER) -> str:
        blob = self.ctx.storage.blobs.get_blob_client(container, name)
        blob.upload_blob(data, overwrite=True)
        return blob.get_blob_properties().etag

    # --- driving the functions ---------------------------------------------------------------
    def request(self, method: str, path: str, body: object = None, headers: dict | None = None,
                principal: str | None = ADMIN) -> Response:
        """Call the function the host would route to, as `principal` (an X-MS-CLIENT-PRINCIPAL value; None: no header).

        Every response is checked against exports/openapi.json and searched for API keys.
        """
        url = HOST_URL + path
        parts = urlsplit(url)
        function, route_params = self._route(method, parts.path.removeprefix("/api/"))
        raw = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else b"")
        headers = dict(headers or {})
        if principal is not None and not any(k.lower() == PRINCIPAL_HEADER for k in headers):
            headers["X-MS-CLIENT-PRINCIPAL"] = principal
        if raw and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
        request = func.HttpRequest(method.upper(), url, headers=headers, params=dict(parse_qsl(parts.query)),
                                   route_params=route_params, body=raw)
        response = Response.of(function(request), method, parts.path)
        self.responses.append(response)
        TestApp.all_responses.append(response)
        assert SECRET_MARKER not in json.dumps([response.body, response.headers]), f"{method} {path}: an API key leaked into the response"
        check_response(response.method, response.path, response.status, response.headers, response.body)
        return response

    all_responses: list[Response] = []  # every response of the session, across apps

    def _route(self, method: str, path: str):
        allowed = False
        for function in indexed_functions(self.app):
            trigger = function.get_bindings()[0]
            if trigger.type != "httpTrigger":
                continue
            pattern = "".join(f"(?P<{part[1:-1]}>[^/]+)" if part.startswith("{") else re.escape(part)
                              for part in re.split(r"(\{\w+\})", trigger.route))
            match = re.fullmatch(pattern, path)
            if match:
                allowed = True
                methods = trigger.methods or ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
                if method.upper() in [str(m.value if hasattr(m, "value") else m).upper() for m in methods]:
                    return function.get_user_function(), match.groupdict()
        raise LookupError(f"{method} /api/{path}: {'method not allowed' if allowed else 'no route'}")

    def function(self, name: str):
        return next(f.get_user_function() for f in indexed_functions(self.app) if f.get_function_name() == name)

    def drain(self, run_id: str, timeout: float = 300) -> dict:
        self.host.drain(lambda: RunStatus(self.status(run_id)["status"]).final, timeout_seconds=timeout)
        return self.status(run_id)

    def status(self, run_id: str) -> dict:
        response = self.request("GET", f"/api/runs/{run_id}")
        assert response.status == 200, response.body
        return response.body

    def start(self, export_id: str, body: dict | None = None) -> Response:
        return self.request("POST", f"/api/exports/{export_id}/runs", body)
