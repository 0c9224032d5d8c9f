"""Settings: parsed with clear errors, and documented in the README exactly as the code reads them."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from exports.settings import SETTINGS, Settings
from shared.settings import SettingError

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_table_lists_every_setting_with_its_default():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("<!-- settings-table:start -->")[1].split("<!-- settings-table:end -->")[0]
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([^`]+)` \| ([^|]*) \|", table, re.M)}
    assert set(rows) == {s.name for s in SETTINGS}
    for setting in SETTINGS:
        if setting.default and setting.name != "AzureWebJobsStorage":
            assert rows[setting.name].strip() == f"`{setting.default}`", setting.name


def test_defaults_apply_when_a_setting_is_unset_or_blank():
    settings = Settings.from_env({"EXPORT_CHUNK_SIZE": "  "})
    assert settings.chunk_size == 5000
    assert settings.requests_per_second == 5 and settings.bulk_requests_per_minute == 100
    assert settings.key_vault_url is None and settings.storage.connection_string


@pytest.mark.parametrize("name, value, message", [
    ("EXPORT_CHUNK_SIZE", "many", "EXPORT_CHUNK_SIZE must be a whole number, got 'many'"),
    ("EXPORT_CHUNK_SIZE", "0", "EXPORT_CHUNK_SIZE must be greater than 0"),
    ("SECRET_CACHE_SECONDS", "-1", "SECRET_CACHE_SECONDS must be greater than 0"),
    ("ACTIVECAMPAIGN_REQUESTS_PER_SECOND", "5.5", "ACTIVECAMPAIGN_REQUESTS_PER_SECOND must be a whole number"),
])
def test_a_bad_value_names_the_setting_and_what_is_expected(name, value, message):
    with pytest.raises(SettingError, match=re.escape(message)):
        Settings.from_env({name: value})


def test_identity_based_storage_replaces_the_connection_string():
    settings = Settings.from_env({
        "AzureWebJobsStorage__blobServiceUri": "https://acct.blob.core.windows.net",
        "AzureWebJobsStorage__queueServiceUri": "https://acct.queue.core.windows.net",
        "AzureWebJobsStorage__tableServiceUri": "https://acct.table.core.windows.net",
        "AzureWebJobsStorage__clientId": "client-id",
    })
    assert settings.storage.connection_string is None
    assert set(settings.storage.service_uris) == {"blob", "queue", "table"}
    assert settings.storage.client_id == "client-id"
