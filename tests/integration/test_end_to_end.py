"""Whole runs: started over HTTP and by the timer, through both queues, to the simulated account."""
from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from exports.names import RUNS_CONTAINER
from shared.clock import format_timestamp
from tests.support.profiles import make_segment


def upload_segment(app, prefix: str, rows: int = 20_000, blobs: int = 3, seed: int = 7):
    files, expected = make_segment(rows=rows, blobs=blobs, seed=seed)
    for name, data in files:
        app.upload(prefix + name, data)
    return files, expected


def mapping():
    return {"email": "email", "firstName": "FIRST NAME", "lastName": "last name", "phone": "Phone"}


def assert_run_matches(status: dict, expected, trigger: str, export_id: str) -> None:
    assert status["exportId"] == export_id
    assert status["trigger"] == trigger
    assert status["status"] == "completed_with_errors"  # the segment holds bad rows
    assert status["rows"] == expected.rows
    assert status["contacts"] == expected.contacts
    assert status["sent"] == expected.contacts
    assert status["rejected"] == expected.rejected
    assert status["duplicates"] == expected.duplicates
    assert status["chunks"]["total"] >= 1
    assert status["chunks"] == {"total": status["chunks"]["total"], "succeeded": status["chunks"]["total"], "failed": 0}
    assert status["startedAt"] <= status["finishedAt"]
    assert status["rejectedByReason"] == expected.rejected_by_reason
    assert sum(status["rejectedByReason"].values()) == status["rejected"]
    assert len(status["errors"]) == 1 and status["errors"][0].startswith(f"{expected.rejected} rows were rejected (")
    assert status["rejectsBlob"] == f"{RUNS_CONTAINER}/{status['runId']}/rejects.csv"


def read_rejects(app, status: dict) -> list[dict]:
    container, _, name = status["rejectsBlob"].partition("/")
    data = app.ctx.storage.blobs.get_blob_client(container, name).download_blob().readall().decode()
    return list(csv.DictReader(io.StringIO(data)))


def test_http_run_sends_the_exact_segment_and_reports_every_figure(app):
    files, expected = upload_segment(app, "http/")
    export = app.export(prefix="http/", mapping=mapping())

    started = app.start(export.id)

    assert started.status == 202
    run_id = started.body["runId"]
    assert started.body["statusUrl"].endswith(f"/api/runs/{run_id}")
    assert started.headers["Location"] == started.body["statusUrl"]
    queued = app.status(run_id)
    assert queued["status"] == "queued" and queued["finishedAt"] is None

    status = app.drain(run_id)

    assert_run_matches(status, expected, "http", export.id)
    assert app.simulator.subscribed("3") == expected.emails
    some_email = sorted(expected.emails)[0]
    assert app.simulator.contact(some_email)["first_name"] == expected.first_names[some_email]
    rejects = read_rejects(app, status)
    assert len(rejects) == expected.rejected
    assert {r["blob"] for r in rejects} <= {name for name, _ in files}, "blob names are relative to the prefix"
    assert all(r["reason"] and r["row"].isdigit() for r in rejects)
    assert any("email is not valid" in r["reason"] for r in rejects)
    assert any(r["reason"] == "email is empty" for r in rejects)
    # The simulator saw batches within the documented limits only.
    stats = app.simulator.stats()
    assert stats["oversize_rejections"] == 0 and stats["validation_rejections"] == 0
    assert stats["bulk_accepted"] >= expected.contacts / 250


def test_timer_starts_every_enabled_export_and_skips_disabled_ones(app):
    _, expected = upload_segment(app, "timer/", rows=20_000, seed=11)
    app.ctx.settings = replace(app.ctx.settings, export_schedule="0 * * * * *")  # due at the start of every minute
    an_hour_ago = format_timestamp(datetime.now(UTC) - timedelta(hours=1))
    enabled = app.export(prefix="timer/", mapping=mapping(), createdAt=an_hour_ago)
    app.export(prefix="timer/", mapping=mapping(), list_id="4", enabled=False, createdAt=an_hour_ago)

    app.function("scheduled_exports")(_TimerRequest())
    app.function("scheduled_exports")(_TimerRequest())  # a second tick of the same minute starts nothing

    runs = app.request("GET", f"/api/exports/{enabled.id}/runs").body["runs"]
    assert [r["trigger"] for r in runs] == ["timer"]
    status = app.drain(runs[0]["runId"])
    assert_run_matches(status, expected, "timer", enabled.id)
    assert app.simulator.subscribed("3") == expected.emails
    assert app.simulator.subscribed("4") == set()


def test_a_second_start_while_a_run_is_active_answers_409_with_its_id(app):
    upload_segment(app, "busy/", rows=500)
    export = app.export(prefix="busy/", mapping=mapping(), createdAt="2026-01-01T00:00:00.000Z")
    first = app.start(export.id)

    second = app.start(export.id)

    assert second.status == 409
    assert second.body["error"]["details"]["runId"] == first.body["runId"]
    assert first.body["runId"] in second.body["error"]["message"]
    # The timer skips it too, and says why.
    from exports.services.runs import start_scheduled_runs
    assert start_scheduled_runs(app.ctx)[export.id] == f"skipped: run {first.body['runId']} is still queued or running"
    assert export.id not in start_scheduled_runs(app.ctx), "that occurrence is spent: the next tick does not try again"
    app.drain(first.body["runId"])
    third = app.start(export.id)
    assert third.status == 202, "the lock is released when the run finishes"
    listed = app.request("GET", f"/api/exports/{export.id}/runs").body["runs"]
    assert [r["runId"] for r in listed] == [third.body["runId"], first.body["runId"]]


def test_unknown_export_and_unknown_run_answer_404_with_a_json_error(app):
    response = app.start("no-such-export")
    assert response.status == 404 and "no-such-export" in response.body["error"]["message"]
    assert app.request("GET", "/api/runs/no-such-run").status == 404
    assert app.request("GET", "/api/exports/no-such-export/runs").status == 404


def test_a_segment_without_blobs_fails_its_run_with_the_reason(app):
    app.upload("empty/readme.txt", b"not a segment")
    export = app.export(prefix="empty/")

    run_id = app.start(export.id).body["runId"]

    status = app.status(run_id)
    assert status["status"] == "failed"
    assert "no blobs" in status["errors"][0] and "empty/" in status["errors"][0]
    assert app.start(export.id).status == 202, "a failed run does not hold the export"


def test_a_missing_mapped_column_fails_the_run_naming_the_columns(app):
    upload_segment(app, "cols/", rows=300, blobs=1)
    export = app.export(prefix="cols/", mapping={"email": "e-mail address"})

    status = app.drain(app.start(export.id).body["runId"])

    assert status["status"] == "failed"
    assert "'e-mail address' not found" in status["errors"][0]
    assert "'Email', 'First Name', 'Last Name', 'Phone', 'Plan'" in status["errors"][0]
    assert app.simulator.stats()["bulk_requests"] == 0


def test_a_clean_segment_succeeds(app):
    files, expected = make_segment(rows=1200, blobs=2, seed=3, bad=False)
    for name, data in files:
        app.upload("clean/" + name, data)
    export = app.export(prefix="clean/", mapping=mapping())

    status = app.drain(app.start(export.id).body["runId"])

    assert status["status"] == "succeeded"
    assert status["rejected"] == 0 and status["rejectsBlob"] is None
    assert app.simulator.subscribed("3") == expected.emails


class _TimerRequest:
    past_due = False


@pytest.fixture(autouse=True)
def _no_leftover_runs(app):
    yield
