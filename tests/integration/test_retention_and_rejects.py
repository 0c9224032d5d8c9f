"""What a run leaves behind: working files gone when it finishes, its rejects report served to the
people who may read the run, and its history and report deleted after the retention period."""
from __future__ import annotations

import csv
import io

from exports.run.files import rejects_report_name, run_prefix
from exports.services.retention import DAY_MS, sweep_expired_runs
from tests.support.apphost import CONTRIBUTOR
from tests.support.profiles import make_segment


def finished_run(app, prefix: str, rows: int = 3000, blobs: int = 2, seed: int = 9, bad: bool = True, **export_fields):
    files, expected = make_segment(rows=rows, blobs=blobs, seed=seed, bad=bad)
    for name, data in files:
        app.upload(prefix + name, data)
    export = app.export(prefix=prefix, mapping={"email": "email", "firstName": "first name"}, **export_fields)
    run_id = app.start(export.id).body["runId"]
    return app.drain(run_id), expected, files


def run_files(app, run_id: str) -> list[str]:
    return sorted(blob.name for blob in app.ctx.runs_container.list_blobs(name_starts_with=run_prefix(run_id)))


def test_a_finished_run_keeps_only_its_rejects_report(app):
    status, expected, _ = finished_run(app, "retain-files/")
    assert status["status"] == "completed_with_errors" and expected.rejected
    assert run_files(app, status["runId"]) == [rejects_report_name(status["runId"])]


def test_a_run_without_rejected_rows_leaves_no_file_and_has_no_report(app):
    status, _, _ = finished_run(app, "retain-clean/", bad=False)
    assert status["status"] == "succeeded" and status["rejectsBlob"] is None
    assert run_files(app, status["runId"]) == []
    response = app.request("GET", f"/api/runs/{status['runId']}/rejects")
    assert response.status == 404 and response.body["error"]["code"] == "rejects_not_found"
    assert "none of its rows was rejected" in response.body["error"]["message"]


def test_the_rejects_report_is_served_as_csv_with_every_rejected_row(app):
    status, expected, files = finished_run(app, "rejects-api/")
    response = app.request("GET", f"/api/runs/{status['runId']}/rejects")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    assert f'rejects-{status["runId"]}.csv' in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.body)))
    assert len(rows) == expected.rejected == status["rejected"]
    assert {row["blob"] for row in rows} <= {name for name, _ in files}  # relative to the export's prefix
    stored = app.ctx.runs_container.get_blob_client(rejects_report_name(status["runId"])).download_blob().readall()
    assert response.body == stored.decode("utf-8")


def test_the_rejects_report_follows_the_run_access_rules(app):
    hidden = app.connection(allowContributors=False)
    status, _, _ = finished_run(app, "rejects-hidden/", connection=hidden)
    answer = app.request("GET", f"/api/runs/{status['runId']}/rejects", principal=CONTRIBUTOR)
    assert answer.status == 404 and answer.body["error"]["code"] == "run_not_found"
    open_connection = app.connection(allowContributors=True)
    status, _, _ = finished_run(app, "rejects-open/", connection=open_connection)
    assert app.request("GET", f"/api/runs/{status['runId']}/rejects", principal=CONTRIBUTOR).status == 200


def test_the_sweep_deletes_runs_older_than_the_retention_period_and_nothing_younger(app):
    old, _, _ = finished_run(app, "retain-old/")
    young, _, _ = finished_run(app, "retain-young/", seed=3)
    old_run, young_run = app.ctx.runs.get_run(old["runId"]), app.ctx.runs.get_run(young["runId"])
    assert young_run.started_at_ms > old_run.started_at_ms + 1  # the second run started later
    retention_ms = app.ctx.settings.retention_days * DAY_MS

    # (Earlier tests' runs in this Azurite are older still: the sweep may take those too.)
    assert old["runId"] not in sweep_expired_runs(app.ctx, now_ms=old_run.started_at_ms + retention_ms), "not too early"
    deleted = sweep_expired_runs(app.ctx, now_ms=old_run.started_at_ms + retention_ms + 1)
    assert old["runId"] in deleted and young["runId"] not in deleted
    assert app.status(young["runId"]) == young
    assert young["runId"] in sweep_expired_runs(app.ctx, now_ms=young_run.started_at_ms + retention_ms + 1)

    for status in (old, young):
        assert app.request("GET", f"/api/runs/{status['runId']}").status == 404
        assert run_files(app, status["runId"]) == []
        listed = app.request("GET", f"/api/exports/{status['exportId']}/runs").body["runs"]
        assert status["runId"] not in [r["runId"] for r in listed]


def test_the_sweep_leaves_runs_that_are_still_going(app):
    app.upload("retain-active/part.csv", b"Email\na@example.com\n")
    export = app.export(prefix="retain-active/", mapping={"email": "email"})
    run_id = app.start(export.id).body["runId"]  # queued, never drained
    far_future = app.ctx.runs.get_run(run_id).started_at_ms + 365 * DAY_MS
    assert run_id not in sweep_expired_runs(app.ctx, now_ms=far_future)
    assert app.status(run_id)["status"] == "queued"
