"""Secrets from Key Vault with a per-instance cache.

A worker instance sends thousands of batches with the same key; reading Key Vault for each would
cost latency and Key Vault's own throttling, so values are kept for a TTL. Values read are
registered with the log redaction filter so that no log line can carry them.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from shared.logging import register_secret


class SecretNotFound(LookupError):
    """The named secret does not exist; the message names the secret, never a value."""


class SecretBackend(Protocol):
    def get(self, name: str) -> str: ...
    def set(self, name: str, value: str) -> None: ...
    def delete(self, name: str) -> None: ...


class KeyVaultSecrets:
    """Key Vault through the real SecretClient."""

    def __init__(self, client):
        self._client = client

    def get(self, name: str) -> str:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self._client.get_secret(name).value
        except ResourceNotFoundError:
            raise SecretNotFound(f"secret {name!r} was not found in Key Vault") from None

    def set(self, name: str, value: str) -> None:
        register_secret(value)
        self._client.set_secret(name, value, content_type="ActiveCampaign API key")

    def delete(self, name: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self._client.begin_delete_secret(name).wait()
        except ResourceNotFoundError:
            pass  # already gone: deleting is idempotent


class LocalSecrets:
    """Local development without Key Vault: every connection uses ACTIVECAMPAIGN_API_KEY."""

    def __init__(self, api_key: str | None):
        self._api_key = api_key

    def get(self, name: str) -> str:
        if not self._api_key:
            raise SecretNotFound(
                f"secret {name!r}: KEY_VAULT_URL is not set, and neither is ACTIVECAMPAIGN_API_KEY for local runs"
            )
        return self._api_key

    def set(self, name: str, value: str) -> None:
        register_secret(value)  # nothing to store: locally the key comes from the environment

    def delete(self, name: str) -> None:
        pass


class CachedSecrets:
    def __init__(self, backend: SecretBackend, ttl_seconds: float, clock: Callable[[], float] = time.monotonic):
        self._backend = backend
        self._ttl = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._values: dict[str, tuple[float, str]] = {}

    def get(self, name: str) -> str:
        now = self._clock()
        with self._lock:
            cached = self._values.get(name)
            if cached and cached[0] > now:
                return cached[1]
        value = self._backend.get(name)
        register_secret(value)
        with self._lock:
            self._values[name] = (now + self._ttl, value)
        return value

    def set(self, name: str, value: str) -> None:
        self._backend.set(name, value)
        self.forget(name)

    def delete(self, name: str) -> None:
        self._backend.delete(name)
        self.forget(name)

    def forget(self, name: str) -> None:
        """Drop a cached value, e.g. after ActiveCampaign rejected it, so the next read goes to Key Vault."""
        with self._lock:
            self._values.pop(name, None)


def key_vault_client(vault_url: str, client_id: str | None):
    from azure.identity import DefaultAzureCredential
    from azure.keyvault.secrets import SecretClient

    credential = DefaultAzureCredential(managed_identity_client_id=client_id) if client_id else DefaultAzureCredential()
    return SecretClient(vault_url=vault_url, credential=credential)
