"""The function app wired to local parts, driven the way the Functions host drives it.

HTTP requests are routed to the function whose route template and methods match, exactly as
declared in the app's index; queue messages are delivered by exports.local_host.LocalQueueHost.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from exports.context import AppContext, set_context
from exports.local_host import LocalQueueHost, indexed_functions
from exports.names import CONNECTIONS_TABLE, EXPORTS_TABLE, QUEUES, SEGMENTS_CONTAINER
from exports.runs import FINAL_STATUSES
from shared.secrets import CachedSecrets, KeyVaultSecrets
from shared.settings import Settings
from tests.fakes.keyvault import make_secret_client

API_KEY = "ac-key-9f8e7d6c5b4a-DO-NOT-LEAK"  # distinctive, so a leak anywhere is found by search
ACCOUNT_HOST = "testaccount.api-us1.com"
HOST_URL = "http://localhost:7071"


@dataclass
class Response:
    status: int
    headers: dict
    body: object

    @classmethod
    def of(cls, response: func.HttpResponse) -> "Response":
        raw = response.get_body()
        return cls(response.status_code, dict(response.headers), json.loads(raw) if raw else None)


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
        self.ctx = AppContext(settings=self.settings, storage=_storage(self.settings),
                              secrets=CachedSecrets(self.secret_backend, self.settings.secret_cache_seconds))
        self.ctx.backoff.base_seconds = 0.05  # Retry-After still rules; the jittered floor just shrinks
        self.ctx.ensure_resources()
        self._clean()
        set_context(self.ctx)
        self.app = function_app.app
        self.host = LocalQueueHost(self.ctx, self.app, retry_delay_seconds=0)
        self.responses: list[Response] = []

    def close(self) -> None:
        set_context(None)

    def _clean(self) -> None:
        # Tests share one Azurite: start each with empty queues and no configuration records
        # (the timer starts every enabled export there is).
        for name in QUEUES:
            self.ctx.storage.queue(name).clear_messages()
        for table in (CONNECTIONS_TABLE, EXPORTS_TABLE):
            client = self.ctx.storage.tables.get_table_client(table)
            for entity in client.list_entities(select=["PartitionKey", "RowKey"]):
                client.delete_entity(entity["PartitionKey"], entity["RowKey"])

    # --- configuration -----------------------------------------------------------------------
    def connection(self, **overrides):
        fields = dict(display_name="Test account", hostname=ACCOUNT_HOST, allow_contributors=False,
                      privacy_consent=True, actor="admin@example.com") | overrides
        connection = self.ctx.config.create_connection(**fields)
        self.ctx.secrets.set(connection.apiKeySecretName, API_KEY)
        return connection

    def export(self, connection=None, prefix: str = "seg/", list_id: str = "3", mapping: dict | None = None,
               container: str = SEGMENTS_CONTAINER, enabled: bool = True):
        connection = connection or self.connection()
        return self.ctx.config.create_export(
            display_name="Test export", connection_id=connection.id, list_id=list_id, container=container,
            prefix=prefix, mapping=mapping or {"email": "email", "firstName": "first name", "lastName": "last name"},
            enabled=enabled, actor="admin@example.com")

    def upload(self, name: str, data: bytes, container: str = SEGMENTS_CONTAINER) -> str:
        blob = self.ctx.storage.blobs.get_blob_client(container, name)
        blob.upload_blob(data, overwrite=True)
        return blob.get_blob_properties().etag

    # --- driving the functions ---------------------------------------------------------------
    def request(self, method: str, path: str, body: object = None, headers: dict | None = None) -> Response:
        url = HOST_URL + path
        parts = urlsplit(url)
        function, route_params = self._route(method, parts.path.removeprefix("/api/"))
        raw = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else b"")
        request = func.HttpRequest(method, url, headers=headers or {}, params=dict(parse_qsl(parts.query)),
                                   route_params=route_params, body=raw)
        response = Response.of(function(request))
        self.responses.append(response)
        return response

    def _route(self, method: str, path: str):
        allowed = False
        for function in indexed_functions(self.app):
            trigger = function.get_bindings()[0]
            if trigger.type != "httpTrigger":
                continue
            pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", trigger.route)
            match = re.fullmatch(pattern, path)
            if match:
                allowed = True
                if method.upper() in [str(m.value if hasattr(m, "value") else m).upper() for m in trigger.methods]:
                    return function.get_user_function(), match.groupdict()
        raise LookupError(f"{method} /api/{path}: {'method not allowed' if allowed else 'no route'}")

    def function(self, name: str):
        return next(f.get_user_function() for f in indexed_functions(self.app) if f.get_function_name() == name)

    def drain(self, run_id: str, timeout: float = 300) -> dict:
        self.host.drain(lambda: self.status(run_id)["status"] in FINAL_STATUSES, timeout_seconds=timeout)
        return self.status(run_id)

    def status(self, run_id: str) -> dict:
        response = self.request("GET", f"/api/runs/{run_id}")
        assert response.status == 200, response.body
        return response.body

    def start(self, export_id: str) -> Response:
        return self.request("POST", f"/api/exports/{export_id}/runs")


def _storage(settings):
    from shared.storage import storage_clients

    return storage_clients(settings)
