"""`python -m exports run`: a local file exported end to end in one process, as `make demo` uses it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.activecampaign import ActiveCampaignSimulator
from tests.support.profiles import csv_bytes, make_segment

ROOT = Path(__file__).resolve().parents[2]
KEY = "cli-test-key-0a1b2c3d"


@pytest.fixture
def sim():
    with ActiveCampaignSimulator(api_keys={KEY}, lists={"7": "CLI"}, requests_per_second=50, bulk_per_minute=1000) as s:
        yield s


def run_cli(azurite, sim, path: Path, *extra: str, env_extra: dict | None = None):
    env = {k: v for k, v in os.environ.items() if k != "KEY_VAULT_URL"}
    env.update({"AzureWebJobsStorage": azurite.connection_string, "ACTIVECAMPAIGN_BASE_URL": sim.base_url,
                "ACTIVECAMPAIGN_API_KEY": KEY, "ACTIVECAMPAIGN_REQUESTS_PER_SECOND": "50",
                "ACTIVECAMPAIGN_BULK_REQUESTS_PER_MINUTE": "1000", **(env_extra or {})})
    return subprocess.run([sys.executable, "-m", "exports", "run", str(path), "--host", "cli.api-us1.com",
                           "--list-id", "7", *extra], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_a_segment_with_bad_rows_exits_1_with_the_status_on_stdout(azurite, sim, tmp_path):
    files, expected = make_segment(rows=4000, blobs=1, seed=21)
    path = tmp_path / files[0][0]
    path.write_bytes(files[0][1])

    result = run_cli(azurite, sim, path, "--email", "EMAIL", "--first-name", "first name", "--phone", "phone")

    assert result.returncode == 1, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, "stdout holds the status document only"
    status = json.loads(lines[0])
    assert status["status"] == "completed_with_errors" and status["trigger"] == "cli"
    assert (status["rows"], status["sent"], status["rejected"], status["duplicates"]) == (
        expected.rows, expected.contacts, expected.rejected, expected.duplicates)
    assert "progress:" in result.stderr and "export run finished" in result.stderr
    assert sim.subscribed("7") == expected.emails
    assert KEY not in result.stdout + result.stderr


def test_a_clean_segment_exits_0(azurite, sim, tmp_path):
    files, expected = make_segment(rows=600, blobs=3, seed=4, bad=False)
    path = tmp_path / files[2][0]  # the JSON Lines part
    path.write_bytes(files[2][1])

    result = run_cli(azurite, sim, path, "--email", "email")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "succeeded"
    assert len(sim.subscribed("7")) == json.loads(result.stdout)["sent"] > 0


def test_a_failed_run_exits_2_with_the_status_on_stdout(azurite, sim, tmp_path):
    path = tmp_path / "segment.csv"
    path.write_bytes(csv_bytes([("not-an-email", "A", "B", "", "pro"), ("", "C", "D", "", "pro")]))

    result = run_cli(azurite, sim, path, "--email", "email")

    assert result.returncode == 2, result.stderr
    status = json.loads(result.stdout)
    assert status["status"] == "failed" and status["rejected"] == 2
    assert "every row was rejected" in status["errors"][0]


def segment_blobs(azurite) -> list[str]:
    from azure.storage.blob import BlobServiceClient

    container = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client("segments")
    return [blob.name for blob in container.list_blobs(name_starts_with="cli/")] if container.exists() else []


@pytest.mark.parametrize("args, env_extra, says", [
    (("--email", "mail"), {}, "mapping.email: segment blob segment.csv: mapped column 'mail' not found; the columns "
                              "available are 'Email', 'First Name'"),
    (("--email", "email", "--phone", "telephone"), {}, "mapping.phone: segment blob segment.csv: mapped column "
                                                       "'telephone' not found"),
    (("--email", "email"), {"ACTIVECAMPAIGN_API_KEY": "not-the-key-0000"}, "apiKey: ActiveCampaign rejected this API key (403)"),
])
def test_the_key_list_and_columns_are_checked_as_the_api_does_before_anything_is_uploaded(azurite, sim, tmp_path, args,
                                                                                        env_extra, says):
    path = tmp_path / "segment.csv"
    path.write_bytes(csv_bytes([("a@example.com", "A", "B", "", "pro")]))
    before = segment_blobs(azurite)

    result = run_cli(azurite, sim, path, *args, env_extra=env_extra)

    assert result.returncode == 2
    assert result.stdout == "", "no run started, so no status document"
    assert says in result.stderr, result.stderr
    assert segment_blobs(azurite) == before, "nothing was uploaded"
    assert sim.stats()["bulk_requests"] == 0


def test_an_unknown_list_is_named_before_anything_is_uploaded(azurite, sim, tmp_path):
    path = tmp_path / "segment.csv"
    path.write_bytes(csv_bytes([("a@example.com", "A", "B", "", "pro")]))
    env = {k: v for k, v in os.environ.items() if k != "KEY_VAULT_URL"}
    env.update({"AzureWebJobsStorage": azurite.connection_string, "ACTIVECAMPAIGN_BASE_URL": sim.base_url,
                "ACTIVECAMPAIGN_API_KEY": KEY})
    before = segment_blobs(azurite)
    result = subprocess.run([sys.executable, "-m", "exports", "run", str(path), "--host", "cli.api-us1.com",
                             "--list-id", "99", "--email", "email"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    assert "listId: list 99 does not exist in this ActiveCampaign account" in result.stderr
    assert segment_blobs(azurite) == before


def test_bad_arguments_exit_2_with_a_message(azurite, sim, tmp_path):
    path = tmp_path / "segment.txt"
    path.write_text("Email\na@example.com\n")
    result = run_cli(azurite, sim, path, "--email", "Email")
    assert result.returncode == 2 and "must end in one of .csv" in result.stderr

    good = tmp_path / "segment.csv"
    good.write_text("Email\na@example.com\n")
    result = run_cli(azurite, sim, good, "--email", "Email", env_extra={"ACTIVECAMPAIGN_API_KEY": ""})
    assert result.returncode == 2 and "set ACTIVECAMPAIGN_API_KEY" in result.stderr

    result = run_cli(azurite, sim, good, "--email", "Email", env_extra={"EXPORT_CHUNK_SIZE": "lots"})
    assert result.returncode == 2 and "EXPORT_CHUNK_SIZE must be a whole number" in result.stderr
