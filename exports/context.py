"""The collaborators every function needs, built once per worker process on first use.

Nothing happens at import time: the host imports function_app to index it, and that must not
open a connection or read a secret. Tests and the CLI install their own context.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from azure.core.exceptions import ResourceExistsError

from exports.activecampaign import ActiveCampaignClient, Backoff
from exports.config import ConfigStore
from exports.names import CONTAINERS, QUEUES, RATE_BUDGETS_TABLE, RUNS_CONTAINER, TABLES
from exports.runs import RunStore
from shared.ratelimit import SharedRateBudget
from shared.secrets import CachedSecrets, KeyVaultSecrets, LocalSecrets, key_vault_client
from shared.settings import Settings
from shared.storage import StorageClients, storage_clients


@dataclass
class AppContext:
    settings: Settings
    storage: StorageClients
    secrets: CachedSecrets
    sleep: Callable[[float], None] = time.sleep
    backoff: Backoff = field(default_factory=Backoff)
    _clients: dict = field(default_factory=dict, repr=False)
    _budgets: dict = field(default_factory=dict, repr=False)
    # (run id, list id) -> monotonic time until which this process takes the list as checked (worker.py)
    checked_lists: dict = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self):
        self.config = ConfigStore(self.storage.tables)
        self.runs = RunStore(self.storage.tables)

    @property
    def runs_container(self):
        return self.storage.blobs.get_container_client(RUNS_CONTAINER)

    def activecampaign(self, hostname: str, secret_name: str) -> ActiveCampaignClient:
        """A client per account and key, kept so that its connections stay open between chunks."""
        api_key = self.secrets.get(secret_name)
        key = (hostname, secret_name, api_key)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = ActiveCampaignClient.for_hostname(
                    hostname, api_key, self.settings.activecampaign_base_url,
                    timeout=self.settings.request_timeout_seconds,
                )
                for stale in [k for k in self._clients if k[:2] == key[:2]]:
                    self._clients.pop(stale).close()  # the key was rotated
                self._clients[key] = client
        return client

    def budget(self, hostname: str) -> SharedRateBudget:
        """The account's rate budget, shared with every other worker process through Table storage."""
        with self._lock:
            budget = self._budgets.get(hostname)
            if budget is None:
                budget = self._budgets[hostname] = SharedRateBudget(
                    self.storage.tables.get_table_client(RATE_BUDGETS_TABLE), hostname,
                    self.settings.requests_per_second, self.settings.bulk_requests_per_minute, sleep=self.sleep)
        return budget

    def ensure_resources(self) -> None:
        """Create the queues, containers and tables (local runs; on Azure the Bicep templates do)."""
        for name in QUEUES:
            try:
                self.storage.queues.create_queue(name)
            except ResourceExistsError:
                pass
        for name in CONTAINERS:
            try:
                self.storage.blobs.create_container(name)
            except ResourceExistsError:
                pass
        for name in TABLES:
            try:
                self.storage.tables.create_table(name)
            except ResourceExistsError:
                pass


def build_context(settings: Settings | None = None, secret_backend=None) -> AppContext:
    settings = settings or Settings.from_env()
    if secret_backend is None:
        secret_backend = (KeyVaultSecrets(key_vault_client(settings.key_vault_url, settings.azure_client_id))
                          if settings.key_vault_url else LocalSecrets(settings.local_api_key))
    return AppContext(settings=settings, storage=storage_clients(settings),
                      secrets=CachedSecrets(secret_backend, settings.secret_cache_seconds))


_context: AppContext | None = None
_context_lock = threading.Lock()


def get_context() -> AppContext:
    global _context
    with _context_lock:
        if _context is None:
            _context = build_context()
        return _context


def set_context(context: AppContext | None) -> None:
    global _context
    with _context_lock:
        _context = context
