"""`python -m exports run`: a local file exported end to end in one process, as `make demo` uses it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
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


def cli_env(azurite, sim, env_extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "KEY_VAULT_URL"}
    env.update({"AzureWebJobsStorage": azurite.connection_string, "ACTIVECAMPAIGN_BASE_URL": sim.base_url,
                "ACTIVECAMPAIGN_API_KEY": KEY, "ACTIVECAMPAIGN_REQUESTS_PER_SECOND": "50",
                "ACTIVECAMPAIGN_BULK_REQUESTS_PER_MINUTE": "1000", **(env_extra or {})})
    return env


def cli(azurite, sim, *args: str, env_extra: dict | None = None, timeout: float = 300):
    return subprocess.run([sys.executable, "-m", "exports", *args], cwd=ROOT, env=cli_env(azurite, sim, env_extra),
                          capture_output=True, text=True, timeout=timeout)


def run_cli(azurite, sim, path: Path, *extra: str, env_extra: dict | None = None):
    return cli(azurite, sim, "run", str(path), "--host", "cli.api-us1.com", "--list-id", "7", *extra, env_extra=env_extra)


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
    (("--email", "mail"), {}, "mapping.email: segment blob segment.csv: mapped column 'mail' not found in the header; the columns "
                              "available are 'Email', 'First Name'"),
    (("--email", "email", "--phone", "telephone"), {}, "mapping.phone: segment blob segment.csv: mapped column "
                                                       "'telephone' not found in the header"),
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
    before = segment_blobs(azurite)
    result = cli(azurite, sim, "run", str(path), "--host", "cli.api-us1.com", "--list-id", "99", "--email", "email")
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


def config_counts(azurite) -> tuple[int, int]:
    from azure.data.tables import TableServiceClient

    tables = TableServiceClient.from_connection_string(azurite.connection_string)
    return tuple(len(list(tables.get_table_client(name).list_entities(select=["RowKey"])))
                 for name in ("connections", "exports"))


def test_what_a_cli_run_created_is_removed_unless_kept(azurite, sim, tmp_path):
    path = tmp_path / "segment.csv"
    path.write_bytes(csv_bytes([("a@example.com", "A", "B", "", "pro")]))
    assert cli(azurite, sim, "init").returncode == 0
    before = config_counts(azurite), segment_blobs(azurite)

    assert run_cli(azurite, sim, path, "--email", "email").returncode == 0
    assert (config_counts(azurite), segment_blobs(azurite)) == before

    kept = run_cli(azurite, sim, path, "--email", "email", "--keep")
    assert kept.returncode == 0 and "kept: connection" in kept.stderr
    counts, blobs = config_counts(azurite), segment_blobs(azurite)
    assert counts == (before[0][0] + 1, before[0][1] + 1) and len(blobs) == len(before[1]) + 1


def test_storage_that_does_not_answer_is_said_in_one_line_at_once(azurite, sim, tmp_path):
    path = tmp_path / "segment.csv"
    path.write_bytes(csv_bytes([("a@example.com", "A", "B", "", "pro")]))
    dead = azurite.connection_string.replace(f":{azurite.blob_port}/", ":9/")  # nothing listens on port 9
    began = time.monotonic()
    result = run_cli(azurite, sim, path, "--email", "email", env_extra={"AzureWebJobsStorage": dead})
    assert result.returncode == 2
    assert time.monotonic() - began < 30, "no 90 s of SDK retries"
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "does not answer" in result.stderr and "start Azurite" in result.stderr and "Traceback" not in result.stderr


def test_a_cli_run_sends_only_its_own_run(app, azurite, sim, tmp_path):
    # An earlier run left its messages queued (say its CLI was killed); this run must not send it.
    files, _ = make_segment(rows=300, blobs=1, seed=8, bad=False)
    app.upload("stale/" + files[0][0], files[0][1])
    stale = app.start(app.export(prefix="stale/", mapping={"email": "email"}).id).body["runId"]
    path = tmp_path / "segment.csv"
    path.write_bytes(csv_bytes([("own@example.com", "A", "B", "", "pro")]))

    result = run_cli(azurite, sim, path, "--email", "email")

    assert result.returncode == 0, result.stderr
    assert sim.subscribed("7") == {"own@example.com"}
    assert app.status(stale)["status"] == "queued", "the other run's messages were left alone"
    assert app.simulator.stats()["bulk_requests"] == 0


def test_ctrl_c_cancels_the_run_prints_its_status_and_exits_130(azurite, tmp_path):
    files, expected = make_segment(rows=6000, blobs=1, seed=2, bad=False)
    path = tmp_path / files[0][0]
    path.write_bytes(files[0][1])
    # Slow enough (60 imports a minute) that the run is surely still sending when Ctrl-C comes.
    with ActiveCampaignSimulator(api_keys={KEY}, lists={"7": "CLI"}, requests_per_second=5, bulk_per_minute=60) as slow:
        env = cli_env(azurite, slow, {"ACTIVECAMPAIGN_REQUESTS_PER_SECOND": "5",
                                      "ACTIVECAMPAIGN_BULK_REQUESTS_PER_MINUTE": "60"})
        process = subprocess.Popen([sys.executable, "-m", "exports", "run", str(path), "--host", "cli.api-us1.com",
                                    "--list-id", "7", "--email", "email"], cwd=ROOT, env=env, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while slow.stats()["bulk_accepted"] < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=180)
        sent_when_stopped = len(slow.subscribed("7"))
        time.sleep(2)
        assert len(slow.subscribed("7")) == sent_when_stopped, "nothing more is sent after the CLI ends"

    assert process.returncode == 130, stderr
    status = json.loads(stdout)
    assert status["status"] == "cancelled" and 0 < status["sent"] < expected.contacts
    assert status["sent"] == sent_when_stopped
    assert "interrupted: cancelling run" in stderr and "Traceback" not in stderr


def test_status_cancel_and_rejects_commands(app, azurite, sim, tmp_path):
    files, expected = make_segment(rows=500, blobs=1, seed=6)
    app.upload("cmds/" + files[0][0], files[0][1])
    export = app.export(prefix="cmds/", mapping={"email": "email"})
    finished = app.drain(app.start(export.id).body["runId"])
    env_extra = {"ACTIVECAMPAIGN_API_KEY": KEY}

    status = cli(azurite, sim, "status", finished["runId"], env_extra=env_extra)
    assert status.returncode == 0 and json.loads(status.stdout) == app.status(finished["runId"])

    out = tmp_path / "rejects.csv"
    rejects = cli(azurite, sim, "rejects", finished["runId"], "-o", str(out), env_extra=env_extra)
    assert rejects.returncode == 0, rejects.stderr
    written = out.read_bytes().decode("utf-8")
    assert written == app.request("GET", f"/api/runs/{finished['runId']}/rejects").body
    assert len(written.splitlines()) == expected.rejected + 1

    refused = cli(azurite, sim, "cancel", finished["runId"], env_extra=env_extra)
    assert refused.returncode == 2 and "already finished" in refused.stderr

    queued = app.start(export.id).body["runId"]
    cancelled = cli(azurite, sim, "cancel", queued, env_extra=env_extra)
    assert cancelled.returncode == 0, cancelled.stderr
    assert app.ctx.runs.get_run(queued).cancellation is not None
    assert cli(azurite, sim, "status", "no-such-run", env_extra=env_extra).returncode == 2


def write_people(folder: Path, names: dict[str, str], files: int = 1) -> None:
    """email -> first name, written as `files` CSV files in `folder` (replacing what was there)."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.csv"):
        old.unlink()
    rows = [(email, first, "Last", "", "pro") for email, first in sorted(names.items())]
    for index in range(files):
        (folder / f"part-{index}.csv").write_bytes(csv_bytes(rows[index::files]))


def test_runs_with_an_export_name_send_only_the_delta_and_a_dry_run_sends_nothing(azurite, sim, tmp_path):
    folder = tmp_path / "partitioned"
    people = {f"p{n}@example.com": "Ada" for n in range(600)}
    write_people(folder, people, files=3)
    named = ("--email", "Email", "--first-name", "First Name", "--export-name", "weekly")

    first = run_cli(azurite, sim, folder, *named)

    assert first.returncode == 0, first.stderr
    status = json.loads(first.stdout.strip().splitlines()[-1])
    assert (status["added"], status["rows"]) == (600, 600)
    changed = dict(people, **{"p1@example.com": "Grace", "p2@example.com": "Grace", "new@example.com": "Linus"})
    del changed["p3@example.com"]
    write_people(folder, changed, files=2)
    imported = sim.stats()["contacts_imported"]

    dry = run_cli(azurite, sim, folder, *named, "--dry-run")

    dry_status = json.loads(dry.stdout.strip().splitlines()[-1])
    assert dry.returncode == 0 and dry_status["dryRun"] is True, dry.stderr
    assert (dry_status["added"], dry_status["updated"], dry_status["unchanged"], dry_status["left"]) == (1, 2, 597, 1)
    assert sim.stats()["contacts_imported"] == imported
    preview = cli(azurite, sim, "preview", dry_status["runId"])
    assert preview.returncode == 0 and "new@example.com,add" in preview.stdout and "p3@example.com,leave" in preview.stdout

    second = run_cli(azurite, sim, folder, *named)

    status = json.loads(second.stdout.strip().splitlines()[-1])
    assert second.returncode == 0, second.stderr
    assert (status["added"], status["updated"], status["unchanged"], status["left"]) == (1, 2, 597, 1)
    assert sim.stats()["contacts_imported"] - imported == 3
    assert sim.contact("p1@example.com")["first_name"] == "Grace"

    full = run_cli(azurite, sim, folder, *named, "--full")
    status = json.loads(full.stdout.strip().splitlines()[-1])
    assert status["mode"] == "full" and status["sent"] == len(changed)


def test_a_folder_without_segment_files_is_refused(azurite, sim, tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_cli(azurite, sim, tmp_path / "empty", "--email", "Email")
    assert result.returncode == 2 and "holds no file ending in one of" in result.stderr


def test_tags_custom_fields_and_the_automations_switch_from_the_command_line(azurite, sim, tmp_path):
    plan = sim.add_field("Plan", "dropdown", perstag="PLAN", options=["pro", "free"])
    surname = sim.add_field("Surname", "text")
    path = tmp_path / "rich.csv"
    path.write_bytes(csv_bytes([("ada@example.com", "Ada", "Lovelace", "", "pro"),
                                ("bob@example.com", "Bob", "Marley", "", "gold")]))  # not an option of Plan

    result = run_cli(azurite, sim, path, "--email", "Email", "--tag", "VIP", "--tag", "CLI", "--tags-column",
                     "First Name", "--field", "Plan=%plan%", "--field", f"Last Name={surname}", "--exclude-automations")

    assert result.returncode == 1, result.stderr
    status = json.loads(result.stdout.strip().splitlines()[-1])
    assert (status["sent"], status["rejected"]) == (1, 1)
    ada = sim.contact("ada@example.com")
    assert ada["tags"] == ["Ada", "CLI", "VIP"] and ada["fields"] == {plan: "pro", surname: "Lovelace"}
    assert sim.stats()["automations_excluded"] == 1 and sim.stats()["automations_started"] == 0
    refused = run_cli(azurite, sim, path, "--email", "Email", "--field", "Plan=NO_SUCH_FIELD")
    assert refused.returncode == 2 and "no custom field 'NO_SUCH_FIELD'" in refused.stderr
    bad = run_cli(azurite, sim, path, "--email", "Email", "--field", "Plan")
    assert bad.returncode == 2 and "use COLUMN=FIELD" in bad.stderr


def test_a_named_export_checks_the_columns_of_each_new_file_before_uploading_it(azurite, sim, tmp_path):
    path = tmp_path / "weekly.csv"
    path.write_bytes(csv_bytes([("ada@example.com", "Ada", "Lovelace", "", "pro")]))
    named = ("--email", "Email", "--first-name", "First Name", "--export-name", "columns-checked")
    assert run_cli(azurite, sim, path, *named).returncode == 0
    path.write_bytes(b"Email,Given name\r\nada@example.com,Ada\r\n")  # the upstream export renamed a column

    result = run_cli(azurite, sim, path, *named)

    assert result.returncode == 2 and "'First Name'" in result.stderr and "Given name" in result.stderr, result.stderr


def test_a_held_run_exits_3_and_approve_sends_its_unsubscribes(azurite, sim, tmp_path):
    folder = tmp_path / "held"
    people = {f"h{n}@example.com": "Ada" for n in range(100)}
    write_people(folder, people, files=2)
    named = ("--email", "Email", "--export-name", "held-weekly", "--leavers", "unsubscribe")
    assert run_cli(azurite, sim, folder, *named).returncode == 0
    (folder / "part-1.csv").unlink()  # half the segment is missing upstream

    held = run_cli(azurite, sim, folder, *named)

    assert held.returncode == 3, held.stderr
    status = json.loads(held.stdout.strip().splitlines()[-1])
    assert (status["status"], status["held"]) == ("needs_approval", 50)
    assert sim.unsubscribed("7") == set()
    approved = cli(azurite, sim, "approve", status["runId"])
    assert approved.returncode == 0, approved.stderr
    assert json.loads(approved.stdout.strip().splitlines()[-1])["unsubscribed"] == 50
    assert len(sim.unsubscribed("7")) == 50
