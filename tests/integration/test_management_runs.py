"""Runs over HTTP with roles: cancelling, and deleting an export or a connection while a run sends."""
from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import replace

import azure.functions as func
import pytest

from exports.activecampaign.budget import SENDERS_PER_PROCESS
from exports.activecampaign.client import ActiveCampaignClient
from exports.model import Phase
from exports.names import CHUNKS_QUEUE, SEGMENTS_QUEUE
from tests.support.api_helpers import create_connection, create_export
from tests.support.apphost import ADMIN, ANONYMOUS, CONTRIBUTOR, NOBODY
from tests.support.profiles import make_segment


def upload(app, prefix: str, rows: int = 3000, seed: int = 21) -> set[str]:
    files, expected = make_segment(rows=rows, blobs=1, seed=seed, bad=False)
    for name, data in files:
        app.upload(prefix + name, data)
    return expected.emails


def new_export(app, prefix: str, open_to_contributors: bool = True) -> dict:
    connection = create_connection(app, allowContributors=open_to_contributors)
    return create_export(app, connection["id"], segment={"container": "segments", "prefix": prefix},
                         mapping={"email": "email", "firstName": "first name"})


def split(app, run_id: str) -> None:
    """Deliver segment messages until every chunk of the run is planned and queued."""
    for _ in range(50):
        if app.ctx.runs.get_run(run_id).phase is not Phase.SPLITTING:
            return
        app.host.step(queues=(SEGMENTS_QUEUE,))
    raise AssertionError("the run was not split")


def deliver_chunk(app, run_id: str, index: int) -> None:
    """One worker execution for one chunk (its queue message stays, to be redelivered later)."""
    body = json.dumps({"runId": run_id, "chunk": index}).encode()
    app.function("send_chunk_batches")(func.QueueMessage(id=f"direct-{index}", body=body))


def settle_queues(app) -> None:
    while app.host.step():
        pass


def interrupt_after(app, monkeypatch, bulk_imports: int, action) -> None:
    """Run `action` right after the n-th bulk import was accepted: while a worker is in the middle of its chunk."""
    original = ActiveCampaignClient.bulk_import
    calls = []

    def bulk_import(self, contacts, list_id, *options):
        result = original(self, contacts, list_id, *options)
        calls.append(len(contacts))
        if len(calls) == bulk_imports:
            action()
        return result

    monkeypatch.setattr(ActiveCampaignClient, "bulk_import", bulk_import)


# --- cancelling -------------------------------------------------------------------------------------
def test_a_run_cancelled_while_chunks_are_queued_finishes_cancelled_with_what_was_sent(app):
    upload(app, "mgmt-cancel-queued/", rows=4000)
    export = new_export(app, "mgmt-cancel-queued/")
    app.ctx.settings = replace(app.ctx.settings, chunk_size=500)
    run_id = app.start(export["id"]).body["runId"]
    split(app, run_id)
    deliver_chunk(app, run_id, 0)
    chunks = app.ctx.runs.view(run_id).chunks
    assert len(chunks) > 2 and chunks[0].status == "succeeded" and chunks[1].status == "queued"
    sent_before = chunks[0].sent
    bulk_before = app.simulator.stats()["bulk_requests"]

    response = app.request("POST", f"/api/runs/{run_id}/cancel", principal=CONTRIBUTOR)

    # No worker holds a chunk, so the run is final at once.
    assert response.status == 200
    assert response.headers["Location"] == response.body["statusUrl"] == f"http://localhost:7071/api/runs/{run_id}"
    status = response.body
    assert status["status"] == "cancelled" and status["finishedAt"]
    assert status["sent"] == sent_before == len(app.simulator.subscribed("3"))
    assert status["chunks"] == {"total": len(chunks), "succeeded": 1, "failed": len(chunks) - 1}
    assert status["errors"] == [f"the run was cancelled before this chunk was sent ({len(chunks) - 1} chunks)"]
    assert status["cancellation"] == {"requestedBy": "contributor@example.com", "requestedAt": status["cancellation"]["requestedAt"],
                                      "reason": "cancelled by contributor@example.com"}
    # The queued chunk messages are delivered later and send nothing.
    settle_queues(app)
    assert app.simulator.stats()["bulk_requests"] == bulk_before
    assert {k: v for k, v in app.status(run_id).items() if k != "cancellation"} == {
        k: v for k, v in status.items() if k not in ("cancellation", "statusUrl")}
    assert app.start(export["id"]).status == 202, "a cancelled run does not hold the export"


def test_a_run_cancelled_mid_chunk_stops_at_the_next_batch(app, monkeypatch):
    upload(app, "mgmt-cancel-mid/", rows=3000)
    export = new_export(app, "mgmt-cancel-mid/")
    answers = []
    interrupt_after(app, monkeypatch, 3, lambda: answers.append(
        app.request("POST", f"/api/runs/{run_id}/cancel", principal=ADMIN)))
    run_id = app.start(export["id"]).body["runId"]

    status = app.drain(run_id)

    assert len(answers) == 1
    stopping = answers[0]
    assert stopping.status == 202, "a worker was still sending"
    assert stopping.body["status"] == "running" and stopping.body["cancellation"]["requestedBy"] == "admin@example.com"
    assert status["status"] == "cancelled"
    assert status["sent"] == 3 * 250 == len(app.simulator.subscribed("3")), "the batch being sent was the last"
    assert status["contacts"] == 3000
    assert len(status["errors"]) == 1 and "the run was cancelled" in status["errors"][0] and "750" in status["errors"][0]
    assert app.simulator.stats()["bulk_requests"] == 3


def test_a_chunk_claimed_just_as_the_cancel_looked_at_it_still_stops_at_the_next_batch(app, monkeypatch):
    """The cancel saw the chunk queued, but a worker claimed it before the cancel could fail it: the cancel
    then tells that worker to stop on the chunk's own row, which its next checkpoint finds."""
    upload(app, "mgmt-cancel-race/", rows=3000)
    export = new_export(app, "mgmt-cancel-race/")
    app.ctx.settings = replace(app.ctx.settings, chunk_size=1000)
    run_id = app.start(export["id"]).body["runId"]
    split(app, run_id)
    queued_view = app.ctx.runs.view(run_id)
    assert {chunk.status for chunk in queued_view.chunks} == {"queued"}
    real_view = type(app.ctx.runs).view
    answers = []

    def cancel_with_what_it_saw_before_the_claim():
        monkeypatch.setattr(type(app.ctx.runs), "view", lambda store, rid: queued_view if rid == run_id else
                            real_view(store, rid))
        answers.append(app.request("POST", f"/api/runs/{run_id}/cancel", principal=ADMIN))
        monkeypatch.setattr(type(app.ctx.runs), "view", real_view)

    interrupt_after(app, monkeypatch, 1, cancel_with_what_it_saw_before_the_claim)
    deliver_chunk(app, run_id, 0)

    assert answers[0].status == 202, "the cancel saw a chunk still to send"
    chunk = app.ctx.runs.get_chunk(run_id, 0)
    assert chunk.status == "failed" and chunk.sent == 250 and "the run was cancelled" in chunk.error
    assert app.simulator.stats()["bulk_requests"] == 1, "nothing after the batch being sent"
    status = app.drain(run_id)
    assert status["status"] == "cancelled" and status["sent"] == 250 == len(app.simulator.subscribed("3"))


def test_a_chunk_waiting_for_its_turn_to_send_when_the_run_is_cancelled_sends_nothing(app):
    """The process's sending turns for the account are all taken (other chunks are sending): a chunk claimed and
    compared meanwhile waits, and finds the cancellation when its turn comes instead of sending one batch first."""
    upload(app, "mgmt-cancel-waiting/", rows=1000)
    export = new_export(app, "mgmt-cancel-waiting/")
    run_id = app.start(export["id"]).body["runId"]
    split(app, run_id)
    budget = app.ctx.accounts.budget(app.ctx.runs.get_run(run_id).hostname)
    errors = []

    def deliver():
        try:
            deliver_chunk(app, run_id, 0)
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    with contextlib.ExitStack() as turns:
        assert not any(turns.enter_context(budget.sending()) for _ in range(SENDERS_PER_PROCESS)), "turns were free"
        worker = threading.Thread(target=deliver, daemon=True)
        worker.start()
        deadline = time.monotonic() + 30
        while app.ctx.runs.get_chunk(run_id, 0).status != "sending" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert app.ctx.runs.get_chunk(run_id, 0).status == "sending", "the chunk was claimed"
        assert app.request("POST", f"/api/runs/{run_id}/cancel", principal=ADMIN).status == 202
        assert worker.is_alive(), "the chunk waits for a turn"
    worker.join(30)

    assert not worker.is_alive() and errors == []
    assert app.simulator.stats()["bulk_requests"] == 0 and app.simulator.subscribed("3") == set()
    chunk = app.ctx.runs.get_chunk(run_id, 0)
    assert chunk.status == "failed" and chunk.sent == 0 and "the run was cancelled" in chunk.error
    assert app.drain(run_id)["status"] == "cancelled"


def test_a_run_cancelled_before_its_segment_is_split_sends_nothing(app):
    upload(app, "mgmt-cancel-early/", rows=1000)
    export = new_export(app, "mgmt-cancel-early/")
    run_id = app.start(export["id"]).body["runId"]

    response = app.request("POST", f"/api/runs/{run_id}/cancel")
    assert response.status == 202 and response.body["status"] == "queued"
    again = app.request("POST", f"/api/runs/{run_id}/cancel")
    assert again.status == 202 and again.body["cancellation"] == response.body["cancellation"], "cancelling twice is harmless"

    status = app.drain(run_id)
    assert status["status"] == "cancelled" and status["sent"] == 0
    assert app.simulator.stats()["bulk_requests"] == 0


def test_cancelling_a_finished_run_is_409(app):
    upload(app, "mgmt-cancel-done/", rows=300)
    export = new_export(app, "mgmt-cancel-done/")
    run_id = app.start(export["id"]).body["runId"]
    assert app.drain(run_id)["status"] == "succeeded"

    response = app.request("POST", f"/api/runs/{run_id}/cancel")
    assert response.status == 409 and response.body["error"]["code"] == "run_finished"
    assert "already finished with status succeeded" in response.body["error"]["message"]
    assert response.body["error"]["details"] == {"runId": run_id, "status": "succeeded"}
    assert app.request("POST", "/api/runs/no-such-run/cancel").status == 404


def test_run_routes_follow_the_connection_rules(app):
    upload(app, "mgmt-run-roles/", rows=300)
    hidden = new_export(app, "mgmt-run-roles/", open_to_contributors=False)
    run_id = app.start(hidden["id"]).body["runId"]

    for method, path in (("GET", f"/api/runs/{run_id}"), ("POST", f"/api/runs/{run_id}/cancel"),
                         ("GET", f"/api/exports/{hidden['id']}/runs"), ("POST", f"/api/exports/{hidden['id']}/runs")):
        hidden_answer = app.request(method, path, principal=CONTRIBUTOR)
        assert hidden_answer.status == 404, (method, path)
        assert app.request(method, path, principal=NOBODY).status == 403
        assert app.request(method, path, principal=ANONYMOUS).status == 401
    assert app.ctx.runs.get_run(run_id).cancellation is None, "nobody without access cancelled it"

    listed = app.request("GET", f"/api/exports/{hidden['id']}/runs?limit=5")
    assert [r["runId"] for r in listed.body["runs"]] == [run_id]
    assert app.request("GET", f"/api/exports/{hidden['id']}/runs?limit=0").status == 400
    assert app.request("GET", f"/api/exports/{hidden['id']}/runs?limit=²").status == 400
    busy = app.start(hidden["id"])
    assert busy.status == 409 and busy.body["error"]["details"]["runId"] == run_id
    app.drain(run_id)


def test_contributors_start_read_and_list_runs_of_exports_on_open_connections(app):
    upload(app, "mgmt-run-open/", rows=300)
    export = new_export(app, "mgmt-run-open/")
    started = app.request("POST", f"/api/exports/{export['id']}/runs", principal=CONTRIBUTOR)
    assert started.status == 202
    run_id = started.body["runId"]
    app.drain(run_id)
    status = app.request("GET", f"/api/runs/{run_id}", principal=CONTRIBUTOR)
    assert status.status == 200 and status.body["status"] == "succeeded" and status.body["trigger"] == "http"
    listed = app.request("GET", f"/api/exports/{export['id']}/runs", principal=CONTRIBUTOR)
    assert [r["runId"] for r in listed.body["runs"]] == [run_id]
    assert app.request("GET", f"/api/exports/{export['id']}", principal=CONTRIBUTOR).body == export


# --- removal while a run sends ----------------------------------------------------------------------
def test_deleting_an_export_mid_run_cancels_the_run_and_keeps_it_readable(app, monkeypatch):
    upload(app, "mgmt-delete-mid/", rows=3000)
    export = new_export(app, "mgmt-delete-mid/")
    answers = []
    interrupt_after(app, monkeypatch, 2, lambda: answers.append(
        app.request("DELETE", f"/api/exports/{export['id']}", principal=CONTRIBUTOR)))
    run_id = app.start(export["id"]).body["runId"]

    status = app.drain(run_id)

    assert answers[0].status == 200 and answers[0].body["cancelledRuns"] == [run_id]
    assert status["status"] == "cancelled"
    assert status["sent"] == 500 == len(app.simulator.subscribed("3"))
    assert app.simulator.stats()["bulk_requests"] == 2
    assert app.status(run_id)["cancellation"]["reason"] == "the export was deleted"
    assert [r["status"] for r in app.request("GET", f"/api/exports/{export['id']}/runs").body["runs"]] == ["cancelled"]
    assert app.start(export["id"]).status == 404


def test_force_deleting_a_connection_mid_run_disables_its_exports_and_cancels_the_run(app, monkeypatch):
    upload(app, "mgmt-force-mid/", rows=3000)
    export = new_export(app, "mgmt-force-mid/")
    connection_id = export["connectionId"]
    secret = app.ctx.config.get_connection(connection_id).apiKeySecretName
    answers = []
    interrupt_after(app, monkeypatch, 2, lambda: answers.append(
        app.request("DELETE", f"/api/connections/{connection_id}?force=true")))
    run_id = app.start(export["id"]).body["runId"]

    status = app.drain(run_id)

    assert answers[0].status == 200
    assert answers[0].body["disabledExports"] == [export["id"]] and answers[0].body["cancelledRuns"] == [run_id]
    assert status["status"] == "cancelled" and status["sent"] == 500 == len(app.simulator.subscribed("3"))
    assert app.status(run_id)["cancellation"]["reason"] == "the connection was deleted"
    assert secret not in app.vault.secrets()
    assert app.request("GET", f"/api/exports/{export['id']}").body["enabled"] is False
    start = app.start(export["id"])
    assert start.status == 409 and start.body["error"]["code"] == "export_disabled"
    assert app.host.calls[CHUNKS_QUEUE] >= 1


@pytest.fixture(autouse=True)
def _quiet_queues(app):
    yield
    settle_queues(app)  # leave nothing half-delivered for the next test's app
