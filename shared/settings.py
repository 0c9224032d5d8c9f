"""App settings: a registry of what the code reads, and the settings every function app has.

A function app declares each setting it reads once, as a Setting; the registry is then the one
source for its local.settings.sample.json, its README table and its Bicep app settings. This
module holds the machinery and the settings of the plumbing in shared/ (storage, identity, Key
Vault); an app adds its own (see exports/settings.py).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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


PLUMBING_SETTINGS: tuple[Setting, ...] = (
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
    Setting("SECRET_CACHE_SECONDS", "300", "How long a worker instance keeps an API key read from Key Vault."),
)


class SettingError(ValueError):
    """A setting is present but unusable; the message names it and says what is expected."""


Getter = Callable[[str], str | None]


def getter(registry: Sequence[Setting], environ: Mapping[str, str]) -> Getter:
    """A function that reads a registered setting: its value, or its default when unset or blank."""
    by_name = {setting.name: setting for setting in registry}

    def get(name: str) -> str | None:
        value = environ.get(name, "").strip()
        return value or by_name[name].default

    return get


@dataclass(frozen=True)
class StorageSettings:
    """Where storage is: a connection string (locally), or endpoints reached with a managed identity."""

    connection_string: str | None
    service_uris: Mapping[str, str]  # "blob"/"queue"/"table" -> endpoint, identity-based storage only
    client_id: str | None

    @classmethod
    def read(cls, get: Getter) -> StorageSettings:
        uris = {kind: get(f"AzureWebJobsStorage__{kind}ServiceUri") for kind in ("blob", "queue", "table")}
        identity_based = any(uris.values())
        return cls(connection_string=None if identity_based else get("AzureWebJobsStorage"),
                   service_uris={k: v for k, v in uris.items() if v},
                   client_id=get("AzureWebJobsStorage__clientId") or get("AZURE_CLIENT_ID"))


def positive_int(get: Getter, name: str) -> int:
    return _positive(get, name, int, "a whole number")


def positive_float(get: Getter, name: str) -> float:
    return _positive(get, name, float, "a number")


def _positive(get: Getter, name: str, kind, described: str):
    raw = get(name)
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise SettingError(f"{name} must be {described}, got {raw!r}") from None
    if value <= 0:
        raise SettingError(f"{name} must be greater than 0, got {value}")
    return value


def boolean(get: Getter, name: str) -> bool:
    raw = (get(name) or "").strip().lower()
    if raw in ("true", "1", "yes"):
        return True
    if raw in ("false", "0", "no"):
        return False
    raise SettingError(f"{name} must be true or false, got {raw!r}")
