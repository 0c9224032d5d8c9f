"""Every app setting the code reads, in one registry.

The registry is the single source of truth for local.settings.sample.json, the README's settings
table and the Bicep app settings; tests compare all three against it.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

AZURITE_CONNECTION_STRING = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
    "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
    "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
)


@dataclass(frozen=True)
class Setting:
    name: str
    default: str | None
    description: str
    where: str = "everywhere"  # "everywhere", "azure" (set by the deployment) or "local" (development only)


SETTINGS: tuple[Setting, ...] = (
    Setting("AzureWebJobsStorage", AZURITE_CONNECTION_STRING,
            "Storage for the host and the app. Locally a connection string (default: Azurite's development "
            "account); on Azure the identity-based AzureWebJobsStorage__* settings below replace it.", "local"),
    Setting("AzureWebJobsStorage__credential", None,
            "'managedidentity' to reach storage with the app's managed identity instead of a key.", "azure"),
    Setting("AzureWebJobsStorage__clientId", None, "Client id of the user-assigned managed identity used for storage.", "azure"),
    Setting("AzureWebJobsStorage__blobServiceUri", None, "Blob endpoint, e.g. https://ACCOUNT.blob.core.windows.net.", "azure"),
    Setting("AzureWebJobsStorage__queueServiceUri", None, "Queue endpoint, e.g. https://ACCOUNT.queue.core.windows.net.", "azure"),
    Setting("AzureWebJobsStorage__tableServiceUri", None, "Table endpoint, e.g. https://ACCOUNT.table.core.windows.net.", "azure"),
    Setting("AZURE_CLIENT_ID", None,
            "Client id of the user-assigned managed identity DefaultAzureCredential uses for Key Vault.", "azure"),
    Setting("KEY_VAULT_URL", None,
            "Key Vault holding the ActiveCampaign API keys, e.g. https://NAME.vault.azure.net/. "
            "Unset only for local runs, where ACTIVECAMPAIGN_API_KEY is used instead."),
    Setting("EXPORT_SCHEDULE", "0 0 3 * * *",
            "NCRONTAB schedule (six fields, in UTC) on which every enabled export runs."),
    Setting("EXPORT_CHUNK_SIZE", "5000",
            "Contacts per chunk, the unit of work of one worker execution. 5,000 contacts are 20 bulk requests: "
            "about 12 s at ActiveCampaign's ceiling, so a chunk ends well inside the function timeout even when throttled."),
    Setting("SECRET_CACHE_SECONDS", "300", "How long a worker instance keeps an API key read from Key Vault."),
    Setting("ACTIVECAMPAIGN_REQUESTS_PER_SECOND", "5",
            "ActiveCampaign's per-account request limit (documented: 5/s). Lower it when other integrations share the account."),
    Setting("ACTIVECAMPAIGN_BULK_REQUESTS_PER_MINUTE", "100",
            "ActiveCampaign's per-account bulk import limit (documented: 100/min)."),
    Setting("ACTIVECAMPAIGN_REQUEST_TIMEOUT_SECONDS", "30", "Connect and read timeout of each ActiveCampaign request."),
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
)

_BY_NAME = {setting.name: setting for setting in SETTINGS}


class SettingError(ValueError):
    """A setting is present but unusable; the message names it and says what is expected."""


@dataclass(frozen=True)
class Settings:
    storage_connection_string: str | None
    storage_service_uris: Mapping[str, str]  # "blob"/"queue"/"table" -> endpoint, identity-based storage only
    storage_client_id: str | None
    key_vault_url: str | None
    azure_client_id: str | None
    export_schedule: str
    chunk_size: int
    secret_cache_seconds: float
    request_timeout_seconds: float
    requests_per_second: int
    bulk_requests_per_minute: int
    activecampaign_base_url: str | None
    local_api_key: str | None
    admin_role: str = "Export.Admin"
    contributor_role: str = "Export.Contributor"
    require_sign_in: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or _BY_NAME[name].default

        uris = {kind: get(f"AzureWebJobsStorage__{kind}ServiceUri") for kind in ("blob", "queue", "table")}
        identity_based = any(uris.values())
        return cls(
            storage_connection_string=None if identity_based else get("AzureWebJobsStorage"),
            storage_service_uris={k: v for k, v in uris.items() if v},
            storage_client_id=get("AzureWebJobsStorage__clientId"),
            key_vault_url=get("KEY_VAULT_URL"),
            azure_client_id=get("AZURE_CLIENT_ID"),
            export_schedule=get("EXPORT_SCHEDULE"),
            chunk_size=_positive_int(get, "EXPORT_CHUNK_SIZE"),
            secret_cache_seconds=_positive_float(get, "SECRET_CACHE_SECONDS"),
            request_timeout_seconds=_positive_float(get, "ACTIVECAMPAIGN_REQUEST_TIMEOUT_SECONDS"),
            requests_per_second=_positive_int(get, "ACTIVECAMPAIGN_REQUESTS_PER_SECOND"),
            bulk_requests_per_minute=_positive_int(get, "ACTIVECAMPAIGN_BULK_REQUESTS_PER_MINUTE"),
            activecampaign_base_url=(get("ACTIVECAMPAIGN_BASE_URL") or "").rstrip("/") or None,
            local_api_key=get("ACTIVECAMPAIGN_API_KEY"),
            admin_role=get("EXPORT_ADMIN_ROLE"),
            contributor_role=get("EXPORT_CONTRIBUTOR_ROLE"),
            require_sign_in=_boolean(get, "EXPORT_REQUIRE_SIGN_IN"),
        )


def _positive_int(get, name: str) -> int:
    return _positive(get, name, int, "a whole number")


def _positive_float(get, name: str) -> float:
    return _positive(get, name, float, "a number")


def _positive(get, name: str, kind, described: str):
    raw = get(name)
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise SettingError(f"{name} must be {described}, got {raw!r}") from None
    if value <= 0:
        raise SettingError(f"{name} must be greater than 0, got {value}")
    return value


def _boolean(get, name: str) -> bool:
    raw = (get(name) or "").strip().lower()
    if raw in ("true", "1", "yes"):
        return True
    if raw in ("false", "0", "no"):
        return False
    raise SettingError(f"{name} must be true or false, got {raw!r}")
