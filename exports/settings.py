"""Every app setting the code reads, in one registry: the plumbing's (shared/settings.py) and the product's.

The registry is the single source of truth for local.settings.sample.json, the README's settings
table and the Bicep app settings; tests compare all three against it.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

from exports.schedule import schedule_problem
from shared.settings import (
    PLUMBING_SETTINGS,
    Setting,
    SettingError,
    StorageSettings,
    boolean,
    getter,
    positive_float,
    positive_int,
)

PRODUCT_SETTINGS: tuple[Setting, ...] = (
    Setting("EXPORT_SCHEDULE", "0 0 3 * * *",
            "NCRONTAB schedule (six fields, in UTC) on which every enabled export without a schedule of its own "
            "runs; the smallest granularity is one minute."),
    Setting("EXPORT_MAX_LEAVERS_PERCENT", "10",
            "The guardrail: when more of the contacts an export delivered than this percentage leave its segment in "
            "one run (or the segment has no rows at all), its leaver actions (unsubscribe, or clear the membership "
            "field) are held until an admin approves them; adds and updates still go. An export can set its own "
            "maxLeaversPercent."),
    Setting("EXPORT_CHUNK_SIZE", "5000",
            "Contacts per chunk, the unit of work of one worker execution. 5,000 contacts are 20 bulk requests: "
            "about 12 s at ActiveCampaign's ceiling, so a chunk ends well inside the function timeout even when throttled."),
    Setting("EXPORT_RETENTION_DAYS", "30",
            "Days a finished run's history and rejects report (which holds emails) are kept; a daily sweep deletes "
            "older ones. A run's other working files are deleted as soon as it finishes."),
    Setting("ACTIVECAMPAIGN_REQUESTS_PER_SECOND", "5",
            "ActiveCampaign's per-account request limit (documented: 5/s). Lower it when other integrations share the account."),
    Setting("ACTIVECAMPAIGN_BULK_REQUESTS_PER_MINUTE", "100",
            "ActiveCampaign's per-account bulk import limit (documented: 100/min)."),
    Setting("ACTIVECAMPAIGN_REQUEST_TIMEOUT_SECONDS", "30", "Connect and read timeout of each ActiveCampaign request."),
    Setting("ACTIVECAMPAIGN_UNREACHABLE_SECONDS", "120",
            "How long a check or a chunk keeps retrying when ActiveCampaign does not answer at all (connection refused, "
            "no DNS answer, time-outs) before it fails with the host's name."),
    Setting("ACTIVECAMPAIGN_OUTCOME_WAIT_SECONDS", "300",
            "How long a chunk waits for ActiveCampaign to process its bulk imports (read with import/info) before it "
            "stops waiting: contacts of an import still unprocessed then are counted as unconfirmed, left out of the "
            "sync state and sent again by the next run."),
    Setting("ACTIVECAMPAIGN_BASE_URL", None,
            "Local development and tests only: replaces https://{hostname} of every connection, "
            "e.g. http://127.0.0.1:8800 for the simulator.", "local"),
    Setting("ACTIVECAMPAIGN_API_KEY", None,
            "Local development only, when KEY_VAULT_URL is unset: the API key every connection uses.", "local"),
    Setting("EXPORT_ADMIN_ROLE", "Export.Admin",
            "App role (a role claim of the signed-in caller, e.g. the token's roles claim) that may manage connections "
            "and exports and run, read and cancel any export's runs."),
    Setting("EXPORT_CONTRIBUTOR_ROLE", "Export.Contributor",
            "App role that may see the connections admins opened to contributors, and create, change, run, cancel "
            "and delete exports on those connections only."),
    Setting("EXPORT_REQUIRE_SIGN_IN", "true",
            "'true': every management and run request must carry App Service Authentication's X-MS-CLIENT-PRINCIPAL "
            "header (401 without it). 'false' when the deployment has no user sign-in: the header is then ignored "
            "(nothing strips a forged one) and any caller with a valid function key acts as admin."),
    Setting("AZURE_SDK_LOG_LEVEL", "WARNING",
            "Level of the Azure SDK's loggers (azure.*) and urllib3's. At WARNING, azure-core's two Information records "
            "of every storage call (request and response), which Application Insights would ingest, are dropped; INFO "
            "or DEBUG brings them back while diagnosing storage or Key Vault calls."),
)

SETTINGS: tuple[Setting, ...] = PLUMBING_SETTINGS + PRODUCT_SETTINGS
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def azure_sdk_log_level(environ: Mapping[str, str] | None = None) -> int:
    """AZURE_SDK_LOG_LEVEL as a logging level, read on its own: startup needs it before any other setting."""
    raw = getter(SETTINGS, os.environ if environ is None else environ)("AZURE_SDK_LOG_LEVEL")
    name = raw.strip().upper()
    if name not in LOG_LEVELS:
        raise SettingError(f"AZURE_SDK_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {raw!r}")
    return logging.getLevelNamesMapping()[name]


def _percent(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 100:
        raise SettingError(f"EXPORT_MAX_LEAVERS_PERCENT must be a number from 0 to 100, got {raw!r}")
    return value


def _schedule(expression: str) -> str:
    problem = schedule_problem(expression)
    if problem:
        raise SettingError(f"EXPORT_SCHEDULE: {problem}")
    return " ".join(expression.split())


@dataclass(frozen=True)
class Settings:
    storage: StorageSettings
    key_vault_url: str | None
    azure_client_id: str | None
    secret_cache_seconds: float
    export_schedule: str
    chunk_size: int
    max_leavers_percent: float
    retention_days: int
    request_timeout_seconds: float
    unreachable_seconds: float
    outcome_wait_seconds: float
    requests_per_second: int
    bulk_requests_per_minute: int
    activecampaign_base_url: str | None
    local_api_key: str | None
    admin_role: str = "Export.Admin"
    contributor_role: str = "Export.Contributor"
    require_sign_in: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        get = getter(SETTINGS, os.environ if environ is None else environ)
        return cls(
            storage=StorageSettings.read(get),
            key_vault_url=get("KEY_VAULT_URL"),
            azure_client_id=get("AZURE_CLIENT_ID"),
            secret_cache_seconds=positive_float(get, "SECRET_CACHE_SECONDS"),
            export_schedule=_schedule(get("EXPORT_SCHEDULE")),
            chunk_size=positive_int(get, "EXPORT_CHUNK_SIZE"),
            max_leavers_percent=_percent(get("EXPORT_MAX_LEAVERS_PERCENT")),
            retention_days=positive_int(get, "EXPORT_RETENTION_DAYS"),
            request_timeout_seconds=positive_float(get, "ACTIVECAMPAIGN_REQUEST_TIMEOUT_SECONDS"),
            unreachable_seconds=positive_float(get, "ACTIVECAMPAIGN_UNREACHABLE_SECONDS"),
            outcome_wait_seconds=positive_float(get, "ACTIVECAMPAIGN_OUTCOME_WAIT_SECONDS"),
            requests_per_second=positive_int(get, "ACTIVECAMPAIGN_REQUESTS_PER_SECOND"),
            bulk_requests_per_minute=positive_int(get, "ACTIVECAMPAIGN_BULK_REQUESTS_PER_MINUTE"),
            activecampaign_base_url=(get("ACTIVECAMPAIGN_BASE_URL") or "").rstrip("/") or None,
            local_api_key=get("ACTIVECAMPAIGN_API_KEY"),
            admin_role=get("EXPORT_ADMIN_ROLE"),
            contributor_role=get("EXPORT_CONTRIBUTOR_ROLE"),
            require_sign_in=boolean(get, "EXPORT_REQUIRE_SIGN_IN"),
        )
