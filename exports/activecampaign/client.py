"""ActiveCampaign API v3 client: the few calls this product makes, with errors a person can read.

One requests.Session per client keeps connections alive (a TLS handshake per batch would waste
the rate budget's time). The API key travels only in the Api-Token header and never in a message.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import requests
from requests.adapters import HTTPAdapter

from exports.errors import Fatal, ImportRejected, KeyRejected, MissingInAccount, Transient

MAX_CONTACTS_PER_IMPORT = 250
MAX_IMPORT_BYTES = 400_000


@dataclass(frozen=True)
class ImportAccepted:
    queued_contacts: int
    batch_id: str | None


def import_payload(contacts: list[dict], list_id: str) -> bytes:
    subscribe = [{"listid": str(list_id)}]
    body = {"contacts": [{**contact, "subscribe": subscribe} for contact in contacts]}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def contact_cost(contact: dict, list_id: str) -> int:
    """Bytes one contact adds to an import body, so batches can be cut under MAX_IMPORT_BYTES exactly."""
    return len(import_payload([contact], list_id)) - len(import_payload([], list_id)) + 1  # +1 for the comma


class ActiveCampaignClient:
    def __init__(self, base_url: str, api_key: str, timeout: float = 30.0, session: requests.Session | None = None):
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._session = session or requests.Session()
        self._session.mount(self.base_url, HTTPAdapter(pool_connections=1, pool_maxsize=4, max_retries=0))
        self._session.headers.update({"Api-Token": api_key, "Accept": "application/json"})

    @classmethod
    def for_hostname(cls, hostname: str, api_key: str, base_url_override: str | None = None, **kwargs):
        # The hostname is used exactly as configured: the api-us1.com suffix is not guaranteed.
        return cls(base_url_override or f"https://{hostname}", api_key, **kwargs)

    def close(self) -> None:
        self._session.close()

    def users_me(self) -> dict:
        return self._call("GET", "/api/3/users/me")["user"]

    def get_list(self, list_id: str) -> dict:
        return self._call("GET", f"/api/3/lists/{list_id}", not_found=f"list {list_id} does not exist in this ActiveCampaign account")["list"]

    def bulk_import(self, contacts: list[dict], list_id: str) -> ImportAccepted:
        body = import_payload(contacts, list_id)
        if not 1 <= len(contacts) <= MAX_CONTACTS_PER_IMPORT or len(body) > MAX_IMPORT_BYTES:
            raise ValueError(f"an import takes 1-{MAX_CONTACTS_PER_IMPORT} contacts and at most {MAX_IMPORT_BYTES} bytes")
        data = self._call("POST", "/api/3/import/bulk_import", body=body,
                          not_found=f"list {list_id} does not exist in this ActiveCampaign account")
        return ImportAccepted(int(data.get("queued_contacts", len(contacts))), data.get("batchId"))

    def _call(self, method: str, path: str, body: bytes | None = None, not_found: str | None = None) -> dict:
        url = self.base_url + path
        try:
            # No redirects: requests would carry the Api-Token header to wherever a redirect points.
            response = self._session.request(
                method, url, data=body, timeout=self._timeout, allow_redirects=False,
                headers={"Content-Type": "application/json"} if body is not None else None,
            )
        except requests.RequestException as error:
            raise Transient(f"{method} {path}: no answer from ActiveCampaign ({type(error).__name__})") from None
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
