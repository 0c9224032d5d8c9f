"""Redelivery, crashes, poison messages, changed blobs, and every answer ActiveCampaign can give."""
from __future__ import annotations

import json

import pytest

from exports.activecampaign.client import ActiveCampaignClient
from exports.names import CHUNKS_QUEUE, SEGMENTS_QUEUE
from exports.run import plan
from tests.support.profiles import make_segment

MAPPING = {"email": "email", "firstName": "first name"}


def segment(app, prefix, rows=3000, blobs=3, seed=5, bad=True):
    files, expected = make_segment(rows=rows, blobs=blobs, seed=seed, bad=bad)
    for name, data in files:
        app.upload(prefix + name, data)
    return expected


def start(app, prefix, **export_fields):
    export = app.export(prefix=prefix, mapping=MAPPING, **export_fields)
    response = app.start(export.id)
    assert response.status == 202, response.body
    return export, response.body["runId"]


def test_a_redelivered_segment_message_queues_no_chunk_twice(app):
    expected = segment(app, "redeliver-seg/", rows=12000, blobs=2)
    app.ctx.settings = app.ctx.settings.__class__(**{**app.ctx.settings.__dict__, "chunk_size": 1000})
    _, run_id = start(app, "redeliver-seg/")
    status = app.drain(run_id)
    chunks = status["chunks"]["total"]
    assert chunks > 1 and app.host.calls[CHUNKS_QUEUE] == chunks
    bulk_before = app.simulator.stats()["bulk_requests"]

    segment_message = {"runId": run_id, "segment": 0, "blob": "redeliver-seg/part-00000.csv", "etag": "x"}
    app.ctx.storage.queue(SEGMENTS_QUEUE).send_message(json.dumps(segment_message))
    app.host.step()
    app.host.step()

    assert app.host.calls[CHUNKS_QUEUE] == chunks
    assert app.simulator.stats()["bulk_requests"] == bulk_before
    assert app.status(run_id) == status
    assert app.simulator.subscribed("3") == expected.emails


def test_a_splitter_that_looks_as_the_planner_moves_the_run_on_neither_finishes_it_nor_resets_a_chunk(app, monkeypatch):
    """Two splitters end together: while the one that won moves the run to "sending", the other looks at the
    run (a redelivered split message does the same), and a slow one writes the chunk rows it planned from an
    older view. The run is not finished for want of chunks, and no chunk a worker has taken is reset."""
    from exports.store.runs import RunStore

    expected = segment(app, "plan-race/", rows=3000, blobs=3)
    app.ctx.settings = app.ctx.settings.__class__(**{**app.ctx.settings.__dict__, "chunk_size": 1000})
    _, run_id = start(app, "plan-race/")
    real_start_sending, looked = RunStore.start_sending, []

    def start_sending_while_another_looks(store, run):
        won = real_start_sending(store, run)
        if won and not looked:
            looked.append(store.view(run_id))
            plan.after_split(app.ctx, run_id)  # the other splitter, before this one queued anything
        return won

    monkeypatch.setattr(RunStore, "start_sending", start_sending_while_another_looks)
    while app.host.step(queues=(SEGMENTS_QUEUE,)):
        pass
    assert looked and not app.ctx.runs.get_run(run_id).final, "not finished while its chunks were being queued"
    chunk = app.ctx.runs.claim_chunk(run_id, 0, "a worker", 10, 0)
    chunk.checkpoint(250, 250, 0)
    app.ctx.runs.add_chunks(plan.planned_chunks(looked[0]))  # the slow splitter's rows, planned before
    again = app.ctx.runs.get_chunk(run_id, 0)
    assert again.claim == "a worker" and again.position == 250, "the row a worker took stays as it is"
    app.ctx.runs.fail_chunk(run_id, 0, "released for the test", etag=None)

    status = app.drain(run_id)
    assert status["status"] == "completed_with_errors" and status["chunks"]["failed"] == 1
    assert status["chunks"]["succeeded"] == status["chunks"]["total"] - 1
    assert app.simulator.subscribed("3") <= expected.emails


def test_a_run_cancelled_just_as_its_chunks_are_planned_finishes_cancelled_and_sends_nothing(app, monkeypatch):
    from exports.store.runs import RunStore

    segment(app, "plan-cancel/", rows=1000, blobs=2)
    _, run_id = start(app, "plan-cancel/")
    real_start_sending = RunStore.start_sending

    def cancelled_first(store, run):
        assert app.request("POST", f"/api/runs/{run_id}/cancel").status == 202
        return real_start_sending(store, run)  # the run row changed: the planner loses

    monkeypatch.setattr(RunStore, "start_sending", cancelled_first)
    while app.host.step(queues=(SEGMENTS_QUEUE,)):
        pass

    assert app.ctx.runs.get_run(run_id).status.value == "cancelled"
    assert app.drain(run_id)["sent"] == 0 and app.simulator.stats()["bulk_requests"] == 0


def test_a_claim_given_a_row_read_before_another_delivery_moved_it_resumes_from_that_delivery(app):
    """The claim first tries the row the delivery read as it started; one another delivery changed since is
    read again, so the claim resumes where the other left off and the other's next checkpoint is refused."""
    from exports.store.runs import Superseded

    segment(app, "stale-claim/", rows=1000, blobs=1)
    _, run_id = start(app, "stale-claim/")
    while app.host.step(queues=(SEGMENTS_QUEUE,)):
        pass
    read_first = app.ctx.runs.get_chunk(run_id, 0)
    other = app.ctx.runs.claim_chunk(run_id, 0, "other delivery", 10, 0)
    other.checkpoint(250, 250, 0)

    claim = app.ctx.runs.claim_chunk(run_id, 0, "this delivery", 10, 0, read=read_first)

    assert claim.before.position == 250 and claim.before.claim == "other delivery"
    assert app.ctx.runs.get_chunk(run_id, 0).claim == "this delivery"
    with pytest.raises(Superseded):
        other.checkpoint(500, 500, 0)


def test_a_redelivered_chunk_that_succeeded_sends_nothing(app):
    segment(app, "redeliver-chunk/", rows=800, blobs=1)
    _, run_id = start(app, "redeliver-chunk/")
    status = app.drain(run_id)
    requests_before = app.simulator.stats()["requests"]

    app.ctx.storage.queue(CHUNKS_QUEUE).send_message(json.dumps({"runId": run_id, "chunk": 0}))
    app.host.step()

    assert app.host.calls[CHUNKS_QUEUE] == status["chunks"]["total"] + 1
    assert app.simulator.stats()["requests"] == requests_before
    assert app.status(run_id) == status


def test_a_crash_between_planning_and_queueing_chunks_is_resumed_by_the_redelivery(app, monkeypatch):
    expected = segment(app, "crash-plan/", rows=2000, blobs=1)
    real_enqueue = plan.enqueue
    crashes = []

    def crash_once(ctx, chunks):
        chunks = list(chunks)
        if chunks and not crashes:
            crashes.append(chunks[0].run_id)
            raise RuntimeError("instance recycled")
        real_enqueue(ctx, chunks)

    monkeypatch.setattr(plan, "enqueue", crash_once)
    _, run_id = start(app, "crash-plan/")

    status = app.drain(run_id)

    assert crashes == [run_id]
    assert app.host.calls[SEGMENTS_QUEUE] == 2
    assert status["sent"] == expected.contacts and status["chunks"]["failed"] == 0
    assert app.simulator.subscribed("3") == expected.emails


def test_a_crash_in_the_middle_of_a_chunk_resumes_from_its_checkpoint(app, monkeypatch):
    expected = segment(app, "crash-chunk/", rows=3000, blobs=1, bad=False)
    real_import = ActiveCampaignClient.bulk_import
    calls = []

    def crash_on_fourth(self, contacts, list_id, *options):
        calls.append(len(contacts))
        if len(calls) == 4:
            raise RuntimeError("worker killed")
        return real_import(self, contacts, list_id, *options)

    monkeypatch.setattr(ActiveCampaignClient, "bulk_import", crash_on_fourth)
    _, run_id = start(app, "crash-chunk/")

    status = app.drain(run_id)

    assert status["status"] == "succeeded"
    assert status["sent"] == expected.contacts
    # Three batches were checkpointed before the crash; the redelivery resent only the fourth onwards.
    assert app.simulator.stats()["contacts_imported"] == expected.contacts
    assert app.simulator.subscribed("3") == expected.emails


def test_a_chunk_that_keeps_failing_goes_to_poison_and_the_run_still_ends(app):
    segment(app, "poison/", rows=600, blobs=1, bad=False)
    app.ctx.backoff.max_attempts = 2
    app.simulator.fail_next(1000, 500, "/api/3/import/bulk_import")
    _, run_id = start(app, "poison/")

    status = app.drain(run_id)

    assert status["status"] == "failed"
    assert status["chunks"] == {"total": 1, "succeeded": 0, "failed": 1}
    assert app.host.calls[CHUNKS_QUEUE] == app.host.settings.max_dequeue_count
    assert app.host.calls["export-chunks-poison"] == 1
    assert "could not be sent after repeated tries" in status["errors"][0]
    assert "server error 500" in status["errors"][0]
    assert app.simulator.subscribed("3") == set()


def test_a_segment_blob_that_changes_mid_run_fails_the_run_without_mixing_versions(app):
    segment(app, "changed/", rows=3000, blobs=3)
    _, run_id = start(app, "changed/")
    app.upload("changed/part-00001.csv.gz", b"Email\r\nsomeone.else@example.com\r\n")

    status = app.drain(run_id)

    assert status["status"] == "failed"
    assert any("changed/part-00001.csv.gz changed after the run started" in e for e in status["errors"])
    assert app.simulator.stats()["bulk_requests"] == 0, "nothing is sent from a segment that changed"


def test_contacts_activecampaign_refuses_go_to_the_rejects_and_the_rest_is_sent(app):
    expected = segment(app, "refused/", rows=1500, blobs=1, bad=False)
    refused = sorted(expected.emails)[:3]
    app.simulator.reject_emails = set(refused)
    _, run_id = start(app, "refused/")

    status = app.drain(run_id)

    assert status["status"] == "completed_with_errors"
    assert status["rejected"] == 3 and status["sent"] == expected.contacts - 3
    assert app.simulator.subscribed("3") == expected.emails - set(refused)
    container, _, name = status["rejectsBlob"].partition("/")
    text = app.ctx.storage.blobs.get_blob_client(container, name).download_blob().readall().decode()
    for email in refused:
        assert f"{email},refused by ActiveCampaign: Field 'email' incorrect format" in text


def test_a_rejected_api_key_fails_the_run_before_its_segment_is_read(app, vault):
    segment(app, "badkey/", rows=500, blobs=1, bad=False)
    export, run_id = start(app, "badkey/")
    connection = app.ctx.config.get_connection(export.connectionId)
    app.secret_backend.set(connection.apiKeySecretName, "a-revoked-key-000")
    app.ctx.secrets.forget(connection.apiKeySecretName)

    status = app.drain(run_id)

    assert status["status"] == "failed"
    assert (status["rows"], status["chunks"]["total"]) == (0, 0), "the segment was not even read"
    assert app.host.calls[SEGMENTS_QUEUE] == 1, "no retry for a key ActiveCampaign rejected"
    assert "ActiveCampaign rejected the API key" in status["errors"][0]
    assert app.simulator.stats()["forbidden"] == 1


def test_a_list_that_does_not_exist_fails_the_run_with_its_id_before_the_segment_is_read(app):
    segment(app, "nolist/", rows=500, blobs=3, bad=False)
    _, run_id = start(app, "nolist/", list_id="99")

    status = app.drain(run_id)

    assert status["status"] == "failed"
    assert status["rows"] == 0 and status["chunks"]["total"] == 0
    assert "list 99 does not exist in this ActiveCampaign account" in status["errors"][0]
    assert app.simulator.stats()["bulk_requests"] == 0


def test_a_list_deleted_after_the_split_fails_the_chunks_once_with_their_count(app):
    segment(app, "lostlist/", rows=6000, blobs=1, bad=False)
    app.ctx.settings = app.ctx.settings.__class__(**{**app.ctx.settings.__dict__, "chunk_size": 1000})
    _, run_id = start(app, "lostlist/")
    for _ in range(10):  # split only
        if app.ctx.runs.get_run(run_id).phase.value != "splitting":
            break
        app.host.step(queues=(SEGMENTS_QUEUE,))
    app.simulator.delete_list("3")
    app.ctx.accounts.close()
    app.ctx.accounts._lists_checked.clear()  # no list check remembered from the split: every chunk asks

    status = app.drain(run_id)

    chunks = status["chunks"]["total"]
    assert chunks > 1 and status["chunks"]["failed"] == chunks
    assert status["errors"] == [f"list 3 does not exist in this ActiveCampaign account ({chunks} chunks)"]


@pytest.mark.parametrize("throttle_status", [429, 503])
def test_throttling_is_honoured_and_nothing_is_lost(app, throttle_status):
    expected = segment(app, f"throttle{throttle_status}/", rows=2500, blobs=1, bad=False)
    app.simulator.configure(requests_per_second=2, throttle_status=throttle_status)
    _, run_id = start(app, f"throttle{throttle_status}/")

    status = app.drain(run_id)

    assert status["status"] == "succeeded" and status["sent"] == expected.contacts
    assert app.simulator.stats()["throttled_429"] > 0
    assert app.simulator.subscribed("3") == expected.emails


def test_deleting_the_export_mid_run_stops_sending(app):
    segment(app, "deleted/", rows=2000, blobs=2, bad=False)
    export, run_id = start(app, "deleted/")
    while app.host.step(queues=(SEGMENTS_QUEUE,)):
        pass
    app.ctx.config.delete_export(export.id)

    status = app.drain(run_id)

    assert status["status"] == "failed"
    assert "the export was deleted" in status["errors"][0]
    assert app.simulator.stats()["bulk_requests"] == 0
    assert app.request("GET", f"/api/runs/{run_id}").status == 200, "its history stays readable"


@pytest.mark.parametrize("removed", ["export", "connection"])
def test_workers_stop_between_batches_once_the_export_or_its_connection_is_deleted(app, monkeypatch, removed):
    segment(app, f"deleted-mid-{removed}/", rows=3000, blobs=1, bad=False)
    export, run_id = start(app, f"deleted-mid-{removed}/")
    real_import = ActiveCampaignClient.bulk_import
    sent = []

    def delete_after_two(self, contacts, list_id, *options):
        result = real_import(self, contacts, list_id, *options)
        sent.append(len(contacts))
        if len(sent) == 2:  # as an admin does it: through the management API
            path = (f"/api/exports/{export.id}" if removed == "export"
                    else f"/api/connections/{export.connectionId}?force=true")
            assert app.request("DELETE", path).status == 200
        return result

    monkeypatch.setattr(ActiveCampaignClient, "bulk_import", delete_after_two)

    status = app.drain(run_id)

    assert len(sent) == 2
    assert status["sent"] == sum(sent)
    assert status["status"] == "cancelled"
    assert f"the run was cancelled because the {removed} was deleted" in status["errors"][0]
    assert len(app.simulator.subscribed("3")) == sum(sent)
