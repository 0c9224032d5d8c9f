"""The composition root: every collaborator of the services and the run's steps, built once from settings.

Nothing happens at import time: the host imports function_app to index it, and that must not
open a connection or read a secret, so the bindings build the context on first use
(get_context). Tests and the CLI build their own with build_context and install it.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from azure.core.exceptions import ResourceExistsError

from exports.activecampaign.accounts import Accounts
from exports.activecampaign.backoff import Backoff
from exports.names import CONTAINERS, QUEUES, RUNS_CONTAINER, SYNC_STATE_CONTAINER, TABLES
from exports.settings import Settings
from exports.store.config import ConfigStore
from exports.store.history import RunHistory
from exports.store.lock import ActiveRunLock
from exports.store.runs import RunStore
from exports.store.schedules import ScheduleStore
from exports.store.sync_state import SyncStateStore
from shared.clock import utc_now
from shared.secrets import CachedSecrets, KeyVaultSecrets, LocalSecrets, SecretBackend, key_vault_client
from shared.storage import StorageClients, storage_clients


@dataclass
class AppContext:
    settings: Settings
    storage: StorageClients
    secrets: CachedSecrets
    config: ConfigStore
    runs: RunStore
    history: RunHistory
    lock: ActiveRunLock
    sync: SyncStateStore
    schedules: ScheduleStore
    accounts: Accounts
    backoff: Backoff
    clock: Callable[[], str]

    @property
    def runs_container(self):
        return self.storage.blobs.get_container_client(RUNS_CONTAINER)

    def ensure_resources(self) -> None:
        """Create the queues, containers and tables (local runs; on Azure the Bicep templates do)."""
        for create, names in ((self.storage.queues.create_queue, QUEUES), (self.storage.blobs.create_container, CONTAINERS),
                              (self.storage.tables.create_table, TABLES)):
            for name in names:
                try:
                    create(name)
                except ResourceExistsError:
                    pass


def build_context(settings: Settings | None = None, secret_backend: SecretBackend | None = None,
                  storage: StorageClients | None = None, sleep: Callable[[float], None] = time.sleep) -> AppContext:
    settings = settings or Settings.from_env()
    if secret_backend is None:
        secret_backend = (KeyVaultSecrets(key_vault_client(settings.key_vault_url, settings.azure_client_id))
                          if settings.key_vault_url else LocalSecrets(settings.local_api_key))
    storage = storage or storage_clients(settings.storage)
    secrets = CachedSecrets(secret_backend, settings.secret_cache_seconds)
    runs = RunStore(storage.tables, clock=utc_now)
    return AppContext(
        settings=settings, storage=storage, secrets=secrets, config=ConfigStore(storage.tables), runs=runs,
        history=RunHistory(storage.tables), lock=ActiveRunLock(storage.tables, runs),
        sync=SyncStateStore(storage.blobs.get_container_client(SYNC_STATE_CONTAINER)),
        schedules=ScheduleStore(storage.tables),
        accounts=Accounts(secrets, storage.tables, base_url_override=settings.activecampaign_base_url,
                          timeout_seconds=settings.request_timeout_seconds,
                          requests_per_second=settings.requests_per_second,
                          bulk_per_minute=settings.bulk_requests_per_minute, sleep=sleep),
        backoff=Backoff(sleep=sleep, unreachable_seconds=settings.unreachable_seconds), clock=utc_now,
    )


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
