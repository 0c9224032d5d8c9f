"""The Azure SDK's log volume: after startup azure-core's per-request records are dropped unless
AZURE_SDK_LOG_LEVEL lowers the level (each case runs in a fresh process: the level is process-wide)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# What the Functions worker does (every record goes on to the host) followed by the app's startup,
# then one real azure-core request record (the HTTP logging policy's "Request URL: ..." at INFO),
# a storage warning, urllib3's connection record and an app record.
PROCESS = """
import json, logging
from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.pipeline.policies import HttpLoggingPolicy
from azure.core.rest import HttpRequest

records = []

class Keep(logging.Handler):
    def emit(self, record):
        records.append([record.name, record.levelname])

root = logging.getLogger()
root.setLevel(logging.DEBUG)
root.addHandler(Keep())

from exports.startup import configure_process
configure_process()

request = HttpRequest("GET", "http://127.0.0.1:10000/devstoreaccount1/segments?restype=container")
HttpLoggingPolicy().on_request(PipelineRequest(request, PipelineContext(None)))
logging.getLogger("azure.storage.blob._container_client").warning("storage warning")
logging.getLogger("urllib3.connectionpool").debug("Starting new HTTP connection (1): 127.0.0.1:10000")
logging.getLogger("exports.run.send").info("chunk sent")
print(json.dumps(records))
"""


def records_after_startup(**settings: str) -> list[tuple[str, str]]:
    env = {k: v for k, v in os.environ.items() if k != "AZURE_SDK_LOG_LEVEL"} | settings
    result = subprocess.run([sys.executable, "-c", PROCESS], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return [tuple(record) for record in json.loads(result.stdout)]


def azure_core_request_records(records) -> list[tuple[str, str]]:
    return [r for r in records if r[0] == "azure.core.pipeline.policies.http_logging_policy"]


def test_by_default_an_azure_core_request_record_is_not_emitted_but_warnings_and_the_app_are():
    records = records_after_startup()
    assert azure_core_request_records(records) == []
    assert not [r for r in records if r[0].startswith("urllib3")]
    assert ("azure.storage.blob._container_client", "WARNING") in records
    assert ("exports.run.send", "INFO") in records


@pytest.mark.parametrize("level, urllib3_shown", [("INFO", False), ("debug", True)])
def test_the_setting_lowers_the_level(level, urllib3_shown):
    records = records_after_startup(AZURE_SDK_LOG_LEVEL=level)
    assert azure_core_request_records(records) == [("azure.core.pipeline.policies.http_logging_policy", "INFO")]
    assert bool([r for r in records if r[0].startswith("urllib3")]) is urllib3_shown


def test_a_bad_level_names_the_setting_and_the_levels():
    from exports.settings import azure_sdk_log_level
    from shared.settings import SettingError

    with pytest.raises(SettingError, match=r"AZURE_SDK_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, "
                                           r"CRITICAL, got 'LOUD'"):
        azure_sdk_log_level({"AZURE_SDK_LOG_LEVEL": "LOUD"})
