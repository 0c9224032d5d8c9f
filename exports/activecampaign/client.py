"""ActiveCampaign API v3 client: the few calls this product makes, with errors a person can read.

One requests.Session per client keeps connections alive (a TLS handshake per batch would waste
the rate budget's time). The API key travels only in the Api-Token header and never in a message.

The key goes only to public internet addresses: a connection's hostname that resolves to a
private, loopback, link-local (cloud instance metadata) or other non-public address is refused
when the socket is opened, before anything is sent (AddressNotPublic).
"""
from __future__ import annotations

import ipaddress
import logging
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.connection import allowed_gai_family, create_connection

from exports.errors import AddressNotPublic, Fatal, ImportRejected, KeyRejected, MissingInAccount, Transient
from exports.model import FieldSpec
from shared import compact_json

log = logging.getLogger(__name__)

MAX_CONTACTS_PER_IMPORT = 250
MAX_IMPORT_BYTES = 400_000
FIELDS_PAGE_SIZE = 100  # the most v3 list endpoints give per page (the default is 20)


def _int(value: object, default: int = 0) -> int:
    try:
        return int(str(value))
    except ValueError:
        return default


@dataclass(frozen=True)
class ImportAccepted:
    queued_contacts: int
    batch_id: str | None


@dataclass(frozen=True)
class ImportOutcome:
    """What import/info reports of a batch: its status (None while ActiveCampaign has not started it) and
    the emails it reported failed (its `success` lists only ids of newly created contacts, so it is not read)."""

    status: str | None
    failed: frozenset[str]

    @property
    def done(self) -> bool:
        return self.status in FINAL_IMPORT_STATUSES


# FACTS.md: waiting, claimed, active, completed, failed, interrupted (and false right after the POST).
FINAL_IMPORT_STATUSES = ("completed", "failed", "interrupted")


LIST_ACTIONS = ("subscribe", "unsubscribe", None)  # what an import does to the list; None: leaves it as it is


def import_payload(contacts: list[dict], list_id: str, exclude_automations: bool = False,
                   list_action: str | None = "subscribe") -> bytes:
    # exclude_automations goes in each contact, where ActiveCampaign's reference example puts it
    # (FACTS.md: its placement is not confirmed).
    extra = _per_contact(list_id, exclude_automations, list_action)
    return compact_json.dumps({"contacts": [{**contact, **extra} for contact in contacts]})


def _per_contact(list_id: str, exclude_automations: bool, list_action: str | None) -> dict:
    if list_action not in LIST_ACTIONS:
        raise ValueError(f"list_action must be one of {LIST_ACTIONS}")
    return {**({list_action: [{"listid": str(list_id)}]} if list_action else {}),
            **({"exclude_automations": True} if exclude_automations else {})}


def contact_cost(contact: dict, list_id: str, exclude_automations: bool = False,
                 list_action: str | None = "subscribe") -> int:
    """Bytes one contact adds to an import body, so batches can be cut under MAX_IMPORT_BYTES exactly."""
    return len(compact_json.dumps({**contact, **_per_contact(list_id, exclude_automations, list_action)})) + 1  # +1: comma


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def is_public_address(address: str) -> bool:
    """Whether an IP address (as getaddrinfo gives it) is on the public internet, and so is any IPv4 it embeds."""
    ip = ipaddress.ip_address(address)
    addresses = [ip]
    if ip.version == 6:
        embedded = [ip.ipv4_mapped, ip.sixtofour, ip.teredo[1] if ip.teredo else None,
                    ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None]
        addresses += [v4 for v4 in embedded if v4 is not None]
    return all(a.is_global and not a.is_multicast for a in addresses)


def _kind(address: str) -> str:
    ip = ipaddress.ip_address(address)
    if ip.is_loopback or ip.is_unspecified:
        return "an address of the machine itself"
    if ip.is_link_local:
        return "a link-local address (where cloud instance metadata services answer)"
    if ip.is_private:
        return "a private network address"
    return "an address that is not on the public internet"


class _PublicAddressesOnly:
    """A urllib3 connection whose socket goes only to public addresses, checked as the socket is opened.

    The name is resolved once, here, and the socket is connected to one of the very addresses that
    were checked: a DNS answer that changes between a check and the connect (rebinding) cannot
    slip through, as it could past a separate look-up before the request.
    """

    def _new_conn(self) -> socket.socket:
        try:
            found = socket.getaddrinfo(self.host, self.port, allowed_gai_family(), socket.SOCK_STREAM)
        except socket.gaierror as error:
            raise NameResolutionError(self.host, self, error) from error
        addresses = list(dict.fromkeys(sockaddr[0] for *_, sockaddr in found))
        refused = [address for address in addresses if not is_public_address(address)]
        if refused:
            log.warning("not connecting to %s: it resolves to %s, not public", self.host, ", ".join(refused))
            raise AddressNotPublic(f"{self.host} resolves to {_kind(refused[0])}, not a public internet address, so "
                                   "the API key is not sent there")
        problem: Exception = NewConnectionError(self, f"{self.host} resolves to no address")
        for address in addresses:
            try:
                return create_connection((address, self.port), self.timeout, source_address=self.source_address,
                                         socket_options=self.socket_options)
            except TimeoutError:
                problem = ConnectTimeoutError(self, f"Connection to {self.host} timed out (connect timeout={self.timeout})")
            except OSError as error:
                problem = NewConnectionError(self, f"Failed to establish a new connection: {error}")
        raise problem


class _PublicHTTPSConnection(_PublicAddressesOnly, HTTPSConnection):
    pass


class _PublicHTTPConnection(_PublicAddressesOnly, HTTPConnection):
    pass


class _PublicHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _PublicHTTPSConnection


class _PublicHTTPPool(HTTPConnectionPool):
    ConnectionCls = _PublicHTTPConnection


class PublicAddressAdapter(HTTPAdapter):
    """Opens connections only to public addresses (TLS still verifies the certificate against the hostname)."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _PublicHTTPPool, "https": _PublicHTTPSPool}


class ActiveCampaignClient:
    def __init__(self, base_url: str, api_key: str, timeout: float = 30.0, session: requests.Session | None = None,
                 adapter: HTTPAdapter | None = None, hostname: str | None = None):
        self.base_url = base_url.rstrip("/")
        self.hostname = hostname or urlsplit(self.base_url).netloc  # the account, as people configured it
        self._timeout = timeout
        self._session = session or requests.Session()
        # Nothing from the environment (proxies, .netrc, CA bundle variables): reading it again on every
        # request was a tenth of a bulk import's CPU time, and a real account is never reached through a
        # proxy anyway (for_hostname).
        self._session.trust_env = False
        self._session.mount(self.base_url, adapter or HTTPAdapter(pool_connections=1, pool_maxsize=4, max_retries=0))
        self._session.headers.update({"Api-Token": api_key, "Accept": "application/json"})

    @classmethod
    def for_hostname(cls, hostname: str, api_key: str, base_url_override: str | None = None, **kwargs):
        """The client of an account: https://{hostname}, public addresses only; or, locally, the override."""
        if base_url_override:
            # ACTIVECAMPAIGN_BASE_URL (local runs and tests): the simulator on loopback; the hostname is
            # not resolved at all, so a machine without DNS works.
            return cls(base_url_override, api_key, hostname=hostname, **kwargs)
        # A proxy from the environment would resolve the name itself, past the address check, so
        # none is used (the session does not read the environment: see __init__).
        return cls(f"https://{hostname}", api_key, hostname=hostname,  # exactly as configured: the api-us1.com suffix is not guaranteed
                   adapter=PublicAddressAdapter(pool_connections=1, pool_maxsize=4, max_retries=0), **kwargs)

    def close(self) -> None:
        self._session.close()

    def users_me(self) -> dict:
        return self._call("GET", "/api/3/users/me")["user"]

    def get_list(self, list_id: str) -> dict:
        return self._call("GET", f"/api/3/lists/{list_id}", not_found=f"list {list_id} does not exist in this ActiveCampaign account")["list"]

    def fields_page(self, offset: int, limit: int = FIELDS_PAGE_SIZE) -> tuple[list[FieldSpec], int]:
        """One page of the account's custom fields with their options, and how many fields there are in all."""
        data = self._call("GET", "/api/3/fields", params={"limit": limit, "offset": offset})
        fields, options = data.get("fields"), data.get("fieldOptions") or []
        if not isinstance(fields, list) or not isinstance(options, list):
            raise Fatal(f"GET /api/3/fields: ActiveCampaign at {self.hostname} answered without a list of fields")
        values: dict[str, list[tuple[int, str]]] = {}
        for option in options:  # side-loaded: each names its field
            if isinstance(option, dict) and option.get("field") is not None and isinstance(option.get("value"), str):
                values.setdefault(str(option["field"]), []).append((_int(option.get("orderid")), option["value"]))
        specs = [FieldSpec(id=str(f["id"]), title=str(f.get("title") or ""), perstag=str(f.get("perstag") or ""),
                           type=str(f.get("type") or ""),
                           options=tuple(value for _, value in sorted(values.get(str(f["id"]), []))))
                 for f in fields if isinstance(f, dict) and f.get("id") is not None]
        return specs, _int((data.get("meta") or {}).get("total"), default=len(specs))  # a string in v3

    def bulk_import(self, contacts: list[dict], list_id: str, exclude_automations: bool = False,
                    list_action: str | None = "subscribe") -> ImportAccepted:
        body = import_payload(contacts, list_id, exclude_automations, list_action)
        if not 1 <= len(contacts) <= MAX_CONTACTS_PER_IMPORT or len(body) > MAX_IMPORT_BYTES:
            raise ValueError(f"an import takes 1-{MAX_CONTACTS_PER_IMPORT} contacts and at most {MAX_IMPORT_BYTES} bytes")
        data = self._call("POST", "/api/3/import/bulk_import", body=body,
                          not_found=f"list {list_id} does not exist in this ActiveCampaign account")
        return ImportAccepted(int(data.get("queued_contacts", len(contacts))), data.get("batchId"))

    def import_info(self, batch_id: str) -> ImportOutcome:
        data = self._call("GET", "/api/3/import/info", params={"batchId": batch_id},
                          not_found=f"ActiveCampaign does not know import batch {batch_id}")
        status = data.get("status")
        failed = data.get("failure") if isinstance(data.get("failure"), list) else []
        return ImportOutcome(status if isinstance(status, str) and status else None,
                             frozenset(str(email).strip().lower() for email in failed))

    def _call(self, method: str, path: str, body: bytes | None = None, not_found: str | None = None,
              params: dict | None = None) -> dict:
        url = self.base_url + path
        try:
            # No redirects: requests would carry the Api-Token header to wherever a redirect points.
            response = self._session.request(
                method, url, data=body, params=params, timeout=self._timeout, allow_redirects=False,
                headers={"Content-Type": "application/json"} if body is not None else None,
            )
        except requests.RequestException as error:
            silent = isinstance(error, (requests.ConnectionError, requests.Timeout))  # nothing answered at all
            raise Transient(f"{method} {path}: no answer from ActiveCampaign at {self.hostname} ({type(error).__name__})",
                            unreachable=silent) from None
        status = response.status_code
        data = _json(response)
        if status in (200, 201):
            return data
        message = _message(data)
        if status == 429 or status == 503:
            raise Transient(f"{method} {path}: throttled by ActiveCampaign ({status})",
                            retry_after=_retry_after(response), throttled=True)
        if status == 400 and "rate limit" in message.lower():
            # The bulk limit (100 imports a minute) answers 400, not 429, and says to retry in a minute.
            raise Transient(f"{method} {path}: ActiveCampaign's import rate limit was reached",
                            retry_after=_retry_after(response), throttled=True)
        if status == 400 and isinstance(data.get("failureReasons"), list):
            raise ImportRejected(f"ActiveCampaign refused the batch: {message}", _failures(data["failureReasons"]))
        if status == 403:
            raise KeyRejected("ActiveCampaign rejected the API key (403): check the connection's key and its permissions")
        if status == 404:
            raise MissingInAccount(not_found or f"{method} {path}: not found in ActiveCampaign (404)")
        if status == 402:
            raise Fatal("ActiveCampaign reports a payment problem with the account (402)")
        if status >= 500:
            raise Transient(f"{method} {path}: ActiveCampaign server error {status}", retry_after=_retry_after(response))
        raise Fatal(f"{method} {path}: ActiveCampaign answered {status}: {message or 'no message'}")


def _json(response: requests.Response) -> dict:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _message(data: dict) -> str:
    message = data.get("message")
    if isinstance(message, str):
        return message
    errors = data.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return str(errors[0].get("detail") or errors[0].get("title") or "")
    return ""


def _failures(reasons: list) -> dict[int, str]:
    failures = {}
    for reason in reasons:
        if isinstance(reason, dict) and isinstance(reason.get("contact"), int):
            failures[reason["contact"]] = str(reason.get("failureReason") or "refused by ActiveCampaign")
    return failures


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
