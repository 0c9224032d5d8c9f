"""The ActiveCampaign accounts this process talks to: one client per account and key, one budget per account.

Clients are kept so that their pooled connections stay open between chunks (a TLS handshake per
batch would waste the budget's time); budgets are kept so that a process reads the budget's
entity, not its settings, on every request.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

from azure.data.tables import TableServiceClient

from exports.activecampaign.budget import AccountBudget
from exports.activecampaign.client import ActiveCampaignClient
from exports.names import RATE_BUDGETS_TABLE
from shared.secrets import CachedSecrets


class Accounts:
    def __init__(self, secrets: CachedSecrets, tables: TableServiceClient, *, base_url_override: str | None,
                 timeout_seconds: float, requests_per_second: int, bulk_per_minute: int,
                 sleep: Callable[[float], None] = time.sleep):
        self._secrets = secrets
        self._budget_table = tables.get_table_client(RATE_BUDGETS_TABLE)
        self.base_url_override = base_url_override
        self.timeout_seconds = timeout_seconds
        self._limits = (requests_per_second, bulk_per_minute)
        self._sleep = sleep
        self._clients: dict[tuple[str, str, str], ActiveCampaignClient] = {}
        self._budgets: dict[str, AccountBudget] = {}
        self._lists_checked: dict[tuple[str, str], float] = {}  # (run id, list id) -> monotonic time valid until
        self._list_checks_under_way: dict[tuple[str, str], threading.Event] = {}  # set when the check ends
        self._lock = threading.Lock()

    def client_with_key(self, hostname: str, api_key: str) -> ActiveCampaignClient:
        """A client for a key not stored yet (checking a new connection); the caller closes it."""
        return ActiveCampaignClient.for_hostname(hostname, api_key, self.base_url_override, timeout=self.timeout_seconds)

    def client(self, hostname: str, secret_name: str) -> ActiveCampaignClient:
        """The client of an account with the key in Key Vault under `secret_name` (SecretNotFound if none)."""
        api_key = self._secrets.get(secret_name)
        key = (hostname, secret_name, api_key)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self.client_with_key(hostname, api_key)
                for stale in [k for k in self._clients if k[:2] == key[:2]]:
                    self._clients.pop(stale).close()  # the key was rotated
                self._clients[key] = client
        return client

    def key_rejected(self, secret_name: str) -> None:
        """ActiveCampaign refused the key: read it afresh from Key Vault next time (it may have been rotated)."""
        self._secrets.forget(secret_name)

    def budget(self, hostname: str) -> AccountBudget:
        """The account's rate budget, shared with every other worker process through Table storage."""
        with self._lock:
            budget = self._budgets.get(hostname)
            if budget is None:
                budget = self._budgets[hostname] = AccountBudget(self._budget_table, hostname, *self._limits,
                                                                 sleep=self._sleep)
        return budget

    def list_recently_checked(self, run_id: str, list_id: str) -> bool:
        return self._lists_checked.get((run_id, list_id), 0.0) > time.monotonic()

    def remember_list_checked(self, run_id: str, list_id: str, seconds: float) -> None:
        self._lists_checked[(run_id, list_id)] = time.monotonic() + seconds

    def begin_list_check(self, run_id: str, list_id: str) -> threading.Event | None:
        """None when the caller is to check the run's list (then end_list_check), or the event set when the
        check another thread of this process has under way ends."""
        with self._lock:
            under_way = self._list_checks_under_way.get((run_id, list_id))
            if under_way is None:
                self._list_checks_under_way[(run_id, list_id)] = threading.Event()
            return under_way

    def end_list_check(self, run_id: str, list_id: str) -> None:
        with self._lock:
            self._list_checks_under_way.pop((run_id, list_id)).set()

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
