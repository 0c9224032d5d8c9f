"""A Key Vault (secrets data plane) fake served over real TLS on loopback.

Key Vault has no emulator, and the SDK refuses plain http, so tests run the real
``azure.keyvault.secrets.SecretClient`` against this server:

    with FakeKeyVault() as vault:
        client = make_secret_client(vault)
        client.set_secret("ac-api-key", "...")

What is real: TLS (a test CA made by ``trustme``; pass ``vault.ca_path`` as
``connection_verify``), the 401 bearer challenge the SDK's challenge policy expects,
Key Vault's URLs, JSON shapes, status codes and error bodies, soft delete (deleted but
recoverable names conflict until purged), paging with ``nextLink``.
What is mocked: Entra ID. ``StaticTokenCredential`` hands out one fixed token and the
vault accepts only that token.

Secret values are never logged; the request log holds methods, paths and statuses only.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import socket
import ssl
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

import trustme
from azure.core.credentials import AccessToken

try:  # azure-core >= 1.31
    from azure.core.credentials import AccessTokenInfo
except ImportError:  # pragma: no cover - older azure-core
    AccessTokenInfo = None  # type: ignore[assignment,misc]

__all__ = [
    "DEFAULT_TOKEN",
    "FakeKeyVault",
    "StaticTokenCredential",
    "make_secret_client",
]

logger = logging.getLogger(__name__)

DEFAULT_TOKEN = "fake-kv-token"
TENANT_ID = "00000000-0000-0000-0000-000000000000"
RESOURCE = "https://vault.azure.net"
CHALLENGE = f'Bearer authorization="https://login.microsoftonline.com/{TENANT_ID}", resource="{RESOURCE}"'
RECOVERY_LEVEL = "Recoverable+Purgeable"
RECOVERABLE_DAYS = 90
MAX_PAGE_SIZE = 25  # Key Vault's own maximum for maxresults

_NAME_RE = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
_VERSION_RE = re.compile(r"^[0-9a-zA-Z]{1,64}$")
_API_VERSION_RE = re.compile(r"^(\d+\.\d+(-preview(\.\d+)?)?|\d{4}-\d{2}-\d{2}(-preview)?)$")
_FAULT_CODES = {
    400: "BadParameter",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    429: "Throttled",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


class StaticTokenCredential:
    """The one mocked part: a TokenCredential (and SupportsTokenInfo) with a fixed token.

    ``scopes_requested`` records the scopes the SDK asked for, so a test can check that
    the challenge was parsed into ``https://vault.azure.net/.default``.
    """

    def __init__(self, token: str = DEFAULT_TOKEN, *, lifetime_seconds: int = 10 * 365 * 24 * 3600) -> None:
        self._token = token
        self._lifetime = lifetime_seconds
        self.scopes_requested: list[tuple[str, ...]] = []

    def _expires_on(self) -> int:
        return int(time.time()) + self._lifetime

    def get_token(self, *scopes: str, claims: str | None = None, tenant_id: str | None = None,
                  enable_cae: bool = False, **kwargs: Any) -> AccessToken:
        self.scopes_requested.append(tuple(scopes))
        return AccessToken(self._token, self._expires_on())

    if AccessTokenInfo is not None:

        def get_token_info(self, *scopes: str, options: dict | None = None) -> AccessTokenInfo:
            self.scopes_requested.append(tuple(scopes))
            return AccessTokenInfo(self._token, self._expires_on())

    def close(self) -> None:
        pass

    def __enter__(self) -> StaticTokenCredential:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:  # never show the token
        return "StaticTokenCredential(<token>)"


def make_secret_client(vault: FakeKeyVault, credential: Any = None, **kwargs: Any):
    """The real SecretClient pointed at ``vault``, trusting the vault's test CA."""
    from azure.keyvault.secrets import SecretClient

    kwargs.setdefault("verify_challenge_resource", False)
    kwargs.setdefault("connection_verify", vault.ca_path)
    return SecretClient(vault.url, credential or StaticTokenCredential(), **kwargs)


@dataclass
class _Version:
    version: str
    value: str
    content_type: str | None
    tags: dict | None
    enabled: bool
    not_before: int | None
    expires: int | None
    created: int
    updated: int


@dataclass
class _Deleted:
    versions: list  # list[_Version], oldest first
    deleted_date: int
    pending_polls: int  # GETs of /deletedsecrets/{name} still answered 404 (deletion in progress)


class _KvError(Exception):
    def __init__(self, status: int, code: str, message: str, inner: str | None = None,
                 headers: dict | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.inner = inner
        self.headers = headers or {}

    def body(self) -> dict:
        error: dict = {"code": self.code, "message": self.message}
        if self.inner:
            error["innererror"] = {"code": self.inner}
        return {"error": error}


def _not_found(ident: str) -> _KvError:
    return _KvError(
        404, "SecretNotFound",
        f"A secret with (name/id) {ident} was not found in this key vault. If you recently deleted this "
        "secret you may be able to recover it using the correct recovery command. For help resolving "
        "this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182",
    )


def _deleted_not_found(name: str) -> _KvError:
    return _KvError(404, "SecretNotFound", f"Deleted Secret not found: {name}")


def _bad(message: str) -> _KvError:
    return _KvError(400, "BadParameter", message)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, vault: FakeKeyVault, ssl_context: ssl.SSLContext) -> None:
        self.vault = vault
        self.ssl_context = ssl_context
        self._connections: set = set()
        self._conn_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def finish_request(self, request, client_address) -> None:
        # Runs in the per-connection thread, so a slow or failing TLS handshake never blocks
        # the accept loop.
        request.settimeout(30)
        try:
            conn = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            logger.debug("fake key vault: TLS handshake failed: %s", exc)
            return
        with self._conn_lock:
            self._connections.add(conn)
        try:
            self.RequestHandlerClass(conn, client_address, self)
        except (ssl.SSLError, OSError) as exc:
            logger.debug("fake key vault: connection error: %s", exc)
        finally:
            with self._conn_lock:
                self._connections.discard(conn)
            try:
                conn.close()
            except OSError:
                pass

    def close_connections(self) -> None:
        with self._conn_lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address) -> None:
        logger.debug("fake key vault: error handling request from %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "FakeKeyVault/1.0"
    sys_version = ""
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # requests are recorded in FakeKeyVault.request_log (no bodies, no values)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self) -> None:
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self._send(400, {"error": {"code": "BadParameter", "message": "Malformed request body"}})
            return
        status, payload, headers = self.server.vault._dispatch(
            self.command, self.path, self.headers.get("Authorization"), body)
        self._send(status, payload, headers)

    def _send(self, status: int, payload: dict | None, headers: dict | None = None) -> None:
        data = b"" if payload is None else json.dumps(payload).encode("utf-8")
        self.send_response(status)
        if payload is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache")
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        self.send_header("x-ms-keyvault-service-version", "1.9.0.0")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = do_HEAD = _handle


class FakeKeyVault:
    """An in-memory Key Vault secrets data plane over HTTPS on 127.0.0.1.

    ``page_size``: items per list page (the client's ``maxresults`` may lower it).
    ``delete_lag_polls``: after a delete, this many GETs of ``/deletedsecrets/{name}``
    answer 404 first, like Key Vault's eventually consistent soft delete (the SDK's
    delete poller keeps polling until it sees the deleted secret).
    """

    def __init__(self, token: str = DEFAULT_TOKEN, *, page_size: int = MAX_PAGE_SIZE,
                 delete_lag_polls: int = 0) -> None:
        if page_size < 1:
            raise ValueError("page_size must be >= 1")
        self._token = token
        self.page_size = page_size
        self.delete_lag_polls = delete_lag_polls
        self._lock = threading.RLock()
        self._secrets: dict[str, list[_Version]] = {}
        self._deleted: dict[str, _Deleted] = {}
        self._requests = 0
        self._get_counts: dict[str, int] = {}
        self._faults: list[tuple[int, int | None]] = []
        self.request_log: list[tuple[str, str, int]] = []  # (method, path, status), no bodies
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._tmpdir: str | None = None
        self.ca_path: str | None = None
        self.url: str | None = None

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> str:
        if self._server is not None:
            return self.url  # type: ignore[return-value]
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(ctx)
        self._tmpdir = tempfile.mkdtemp(prefix="fake-keyvault-")
        self.ca_path = f"{self._tmpdir}/ca.pem"
        ca.cert_pem.write_to_path(self.ca_path)
        self._server = _Server(self, ctx)
        port = self._server.server_address[1]
        self.url = f"https://127.0.0.1:{port}/"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"fake-keyvault-{port}", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.close_connections()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> FakeKeyVault:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return (self.url or "").rstrip("/")

    # ----------------------------------------------------------- test helpers
    def secrets(self) -> dict[str, str]:
        """{name: current value} of every secret that is not deleted."""
        with self._lock:
            return {name: versions[-1].value for name, versions in self._secrets.items()}

    def deleted(self) -> list[str]:
        """Names that are deleted but not purged."""
        with self._lock:
            return sorted(self._deleted)

    def set(self, name: str, value: str, *, content_type: str | None = None,
            tags: dict | None = None, enabled: bool = True) -> str:
        """Seed a secret directly (no HTTP, not counted). Returns the new version id."""
        if not _NAME_RE.match(name):
            raise ValueError(f"invalid secret name: {name!r}")
        with self._lock:
            if name in self._deleted:
                raise ValueError(f"secret {name!r} is deleted but not purged")
            return self._add_version(name, value, content_type, tags, enabled, None, None).version

    @property
    def requests(self) -> int:
        """Every HTTP request received, including unauthenticated challenge requests."""
        with self._lock:
            return self._requests

    def get_count(self, name: str) -> int:
        """Authenticated GETs of /secrets/{name} (any version), whatever their outcome."""
        with self._lock:
            return self._get_counts.get(name, 0)

    def fail_next(self, count: int = 1, status: int = 503, *, retry_after: int | None = None) -> None:
        """Answer the next ``count`` authenticated, well-formed requests with ``status`` and a Key Vault
        error body (plus ``Retry-After`` when given). Unauthenticated challenge requests pass untouched."""
        with self._lock:
            self._faults.extend([(status, retry_after)] * count)

    def reset_counts(self) -> None:
        with self._lock:
            self._requests = 0
            self._get_counts.clear()
            self.request_log.clear()

    # ------------------------------------------------------------- HTTP core
    def _dispatch(self, method: str, raw_path: str, authorization: str | None,
                  body: bytes) -> tuple[int, dict | None, dict]:
        parts = urlsplit(raw_path)
        path = parts.path
        with self._lock:
            self._requests += 1
        try:
            status, payload, headers = self._route(method, path, parse_qs(parts.query), authorization, body)
        except _KvError as err:
            status, payload, headers = err.status, err.body(), err.headers
        with self._lock:
            self.request_log.append((method, path, status))
        return status, payload, headers

    def _authorize(self, authorization: str | None) -> None:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _KvError(401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.",
                           headers={"WWW-Authenticate": CHALLENGE})
        if token.strip() != self._token:
            raise _KvError(401, "Unauthorized", "AKV10032: Invalid issuer or token.",
                           headers={"WWW-Authenticate": CHALLENGE})

    def _route(self, method: str, path: str, query: dict, authorization: str | None,
               body: bytes) -> tuple[int, dict | None, dict]:
        self._authorize(authorization)
        api_version = (query.get("api-version") or [""])[0]
        if not api_version:
            raise _bad("The 'api-version' query parameter is missing.")
        if not _API_VERSION_RE.match(api_version):
            raise _bad(f"The specified version ({api_version}) is not recognized.")
        segments = [unquote(s) for s in path.strip("/").split("/")] if path.strip("/") else []
        if path.endswith("/") and len(segments) == 2:
            segments.append("")  # /secrets/{name}/ == latest version
        if not segments or segments[0] not in ("secrets", "deletedsecrets"):
            raise _KvError(404, "NotFound", f"The requested resource {path} was not found.")
        if len(segments) >= 2:
            self._check_name(segments[1])

        collection, rest = segments[0], segments[1:]
        with self._lock:
            if collection == "secrets" and method == "GET" and rest and (len(rest) == 1 or rest[1] != "versions"):
                self._get_counts[rest[0]] = self._get_counts.get(rest[0], 0) + 1
            if self._faults:
                status, retry_after = self._faults.pop(0)
                headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
                raise _KvError(status, _FAULT_CODES.get(status, "Error"), "Injected fault.", headers=headers)

        if collection == "secrets":
            if not rest and method == "GET":
                return self._list(query, deleted=False)
            if len(rest) == 1 and method == "PUT":
                return self._set(rest[0], body)
            if len(rest) == 1 and method == "GET":
                return self._get(rest[0], "")
            if len(rest) == 1 and method == "DELETE":
                return self._delete(rest[0])
            if len(rest) == 2 and rest[1] == "versions" and method == "GET":
                return self._list(query, deleted=False, name=rest[0])
            if len(rest) == 2 and method == "GET":
                return self._get(rest[0], self._check_version(rest[1]))
            if len(rest) == 2 and method == "PATCH":
                return self._update(rest[0], self._check_version(rest[1]), body)
        else:
            if not rest and method == "GET":
                return self._list(query, deleted=True)
            if len(rest) == 1 and method == "GET":
                return self._get_deleted(rest[0])
            if len(rest) == 1 and method == "DELETE":
                return self._purge(rest[0])
            if len(rest) == 2 and rest[1] == "recover" and method == "POST":
                return self._recover(rest[0])
        raise _KvError(405, "MethodNotAllowed", f"The requested method {method} is not allowed on {path}.")

    @staticmethod
    def _check_name(name: str) -> None:
        if not _NAME_RE.match(name):
            raise _bad(f"The request URI contains an invalid name: {name}")

    @staticmethod
    def _check_version(version: str) -> str:
        if version and not _VERSION_RE.match(version):
            raise _bad(f"The request URI contains an invalid version: {version}")
        return version

    @staticmethod
    def _json(body: bytes) -> dict:
        try:
            data = json.loads(body or b"null")
        except ValueError:
            raise _bad("The request body is not valid JSON.") from None
        if not isinstance(data, dict):
            raise _bad("The request body must be a JSON object.")
        return data

    # ---------------------------------------------------------- representation
    def _add_version(self, name: str, value: str, content_type: str | None, tags: dict | None,
                     enabled: bool, not_before: int | None, expires: int | None) -> _Version:
        now = int(time.time())
        version = _Version(uuid.uuid4().hex, value, content_type, tags, enabled, not_before, expires, now, now)
        self._secrets.setdefault(name, []).append(version)
        return version

    def _id(self, name: str, version: str | None = None) -> str:
        return f"{self.base_url}/secrets/{name}" + (f"/{version}" if version else "")

    @staticmethod
    def _attributes(v: _Version) -> dict:
        attrs: dict = {"enabled": v.enabled, "created": v.created, "updated": v.updated,
                       "recoveryLevel": RECOVERY_LEVEL, "recoverableDays": RECOVERABLE_DAYS}
        if v.not_before is not None:
            attrs["nbf"] = v.not_before
        if v.expires is not None:
            attrs["exp"] = v.expires
        return attrs

    def _bundle(self, name: str, v: _Version, *, with_value: bool = True) -> dict:
        bundle: dict = {"id": self._id(name, v.version), "attributes": self._attributes(v)}
        if with_value:
            bundle["value"] = v.value
        if v.content_type is not None:
            bundle["contentType"] = v.content_type
        if v.tags is not None:
            bundle["tags"] = v.tags
        return bundle

    def _item(self, name: str, v: _Version, *, versioned: bool) -> dict:
        item: dict = {"id": self._id(name, v.version if versioned else None), "attributes": self._attributes(v)}
        if v.content_type is not None:
            item["contentType"] = v.content_type
        if v.tags is not None:
            item["tags"] = v.tags
        return item

    def _deleted_extra(self, name: str, d: _Deleted) -> dict:
        return {"recoveryId": f"{self.base_url}/deletedsecrets/{name}",
                "deletedDate": d.deleted_date,
                "scheduledPurgeDate": d.deleted_date + RECOVERABLE_DAYS * 24 * 3600}

    # ---------------------------------------------------------------- operations
    def _set(self, name: str, body: bytes) -> tuple[int, dict, dict]:
        data = self._json(body)
        value = data.get("value")
        if not isinstance(value, str):
            raise _bad("Property 'value' is required and must be a string.")
        attrs = data.get("attributes") or {}
        tags = data.get("tags")
        if tags is not None and not isinstance(tags, dict):
            raise _bad("Property 'tags' must be an object.")
        with self._lock:
            deleted = self._deleted.get(name)
            if deleted is not None:
                if deleted.pending_polls > 0:
                    raise _KvError(409, "Conflict", f"Secret {name} is currently being deleted.",
                                   inner="ObjectIsBeingDeleted")
                raise _KvError(409, "Conflict",
                               f"Secret {name} is currently in a deleted but recoverable state, and its name "
                               "cannot be reused; in this state, the secret can only be recovered or purged.",
                               inner="ObjectIsDeletedButRecoverable")
            v = self._add_version(name, value, data.get("contentType"), tags, attrs.get("enabled", True) is not False,
                                  attrs.get("nbf"), attrs.get("exp"))
            return 200, self._bundle(name, v), {}

    def _find(self, name: str, version: str) -> _Version:
        versions = self._secrets.get(name)
        if not versions:
            raise _not_found(name)
        if not version:
            return versions[-1]
        for v in versions:
            if v.version == version:
                return v
        raise _not_found(f"{name}/{version}")

    def _get(self, name: str, version: str) -> tuple[int, dict, dict]:
        with self._lock:
            v = self._find(name, version)
            if not v.enabled:
                raise _KvError(403, "Forbidden", "Operation get is not allowed on a disabled secret.",
                               inner="SecretDisabled")
            return 200, self._bundle(name, v), {}

    def _update(self, name: str, version: str, body: bytes) -> tuple[int, dict, dict]:
        data = self._json(body)
        with self._lock:
            v = self._find(name, version)
            attrs = data.get("attributes") or {}
            if "enabled" in attrs:
                v.enabled = attrs["enabled"] is not False
            if "nbf" in attrs:
                v.not_before = attrs["nbf"]
            if "exp" in attrs:
                v.expires = attrs["exp"]
            if "contentType" in data:
                v.content_type = data["contentType"]
            if "tags" in data:
                v.tags = data["tags"]
            v.updated = int(time.time())
            return 200, self._bundle(name, v, with_value=False), {}

    def _delete(self, name: str) -> tuple[int, dict, dict]:
        with self._lock:
            versions = self._secrets.pop(name, None)
            if not versions:
                raise _not_found(name)
            d = _Deleted(versions, int(time.time()), self.delete_lag_polls)
            self._deleted[name] = d
            bundle = self._bundle(name, versions[-1], with_value=False)
            bundle.update(self._deleted_extra(name, d))
            return 200, bundle, {}

    def _get_deleted(self, name: str) -> tuple[int, dict, dict]:
        with self._lock:
            d = self._deleted.get(name)
            if d is None:
                raise _deleted_not_found(name)
            if d.pending_polls > 0:
                d.pending_polls -= 1
                raise _deleted_not_found(name)
            bundle = self._bundle(name, d.versions[-1], with_value=False)
            bundle.update(self._deleted_extra(name, d))
            return 200, bundle, {}

    def _settled_deletion(self, name: str):
        """The deleted secret, once its deletion has finished (purge and recover need that); call with the lock."""
        d = self._deleted.get(name)
        if d is None:
            raise _deleted_not_found(name)
        if d.pending_polls > 0:
            raise _KvError(409, "Conflict", f"Secret {name} is currently being deleted.", inner="ObjectIsBeingDeleted")
        return d

    def _purge(self, name: str) -> tuple[int, None, dict]:
        with self._lock:
            self._settled_deletion(name)
            del self._deleted[name]
            return 204, None, {}

    def _recover(self, name: str) -> tuple[int, dict, dict]:
        with self._lock:
            d = self._settled_deletion(name)
            del self._deleted[name]
            self._secrets[name] = d.versions
            return 200, self._bundle(name, d.versions[-1], with_value=False), {}

    def _list(self, query: dict, *, deleted: bool, name: str | None = None) -> tuple[int, dict, dict]:
        raw_max = (query.get("maxresults") or [""])[0]
        page_size = self.page_size
        if raw_max:
            try:
                requested = int(raw_max)
            except ValueError:
                raise _bad(f"Invalid maxresults: {raw_max}") from None
            if not 1 <= requested <= MAX_PAGE_SIZE:
                raise _bad(f"maxresults must be between 1 and {MAX_PAGE_SIZE}.")
            page_size = min(page_size, requested)
        try:
            offset = int((query.get("$skiptoken") or ["0"])[0])
        except ValueError:
            raise _bad("Invalid $skiptoken.") from None

        with self._lock:
            if name is not None:
                versions = self._secrets.get(name)
                if not versions:
                    raise _not_found(name)
                items = [self._item(name, v, versioned=True) for v in versions]
            elif deleted:
                items = []
                for n in sorted(self._deleted):
                    d = self._deleted[n]
                    if d.pending_polls > 0:
                        continue
                    item = self._item(n, d.versions[-1], versioned=False)
                    item.update(self._deleted_extra(n, d))
                    items.append(item)
            else:
                items = [self._item(n, self._secrets[n][-1], versioned=False) for n in sorted(self._secrets)]

        page = items[offset:offset + page_size]
        next_link = None
        if offset + page_size < len(items):
            path = f"/secrets/{quote(name)}/versions" if name else ("/deletedsecrets" if deleted else "/secrets")
            params = {"api-version": (query.get("api-version") or [""])[0],
                      "$skiptoken": str(offset + page_size), "maxresults": str(page_size)}
            next_link = f"{self.base_url}{path}?{urlencode(params)}"
        return 200, {"value": page, "nextLink": next_link}, {}
