"""The remainder chunk (exports/run/remainder.py): a run of several chunks sends whole imports but its last,
and the sync state records exactly what ActiveCampaign took, whatever becomes of the remainder chunk."""
from __future__ import annotations

import math
from dataclasses import replace

import pytest

from exports.activecampaign.client import MAX_CONTACTS_PER_IMPORT, ActiveCampaignClient
from exports.names import CHUNKS_QUEUE
from exports.run import finish, remainder
from exports.store.runs import RunStore
from tests.integration.test_sync import expected_state, people, run, state_of, upload

MAPPING = {"email": "Email", "firstName": "First Name", "lastName": "Last Name"}


@pytest.fixture
def import_sizes(monkeypatch) -> list[int]:
    """The number of contacts of every bulk import the app sends (the real call goes through)."""
    sizes, real = [], ActiveCampaignClient.bulk_import

    def recording(self, contacts, *args, **kwargs):
        sizes.append(len(contacts))
        return real(self, contacts, *args, **kwargs)

    monkeypatch.setattr(ActiveCampaignClient, "bulk_import", recording)
    return sizes


def test_a_run_of_many_chunks_sends_whole_imports_but_its_last_and_records_every_contact(app, import_sizes):
    app.ctx.settings = replace(app.ctx.settings, chunk_size=400)
    export = app.export(prefix="remainder/", mapping=MAPPING)
    profiles = people(4321)
    upload(app, "remainder/", profiles)

    status = run(app, export.id)

    buckets = app.ctx.runs.get_run(status["runId"]).buckets
    assert buckets > 5
    assert status["status"] == "succeeded" and status["sent"] == 4321
    assert status["chunks"]["total"] == buckets + 1, "every bucket's chunk, and the remainder chunk"
    assert len(import_sizes) == math.ceil(4321 / MAX_CONTACTS_PER_IMPORT)
    assert sorted(import_sizes)[1:] == [MAX_CONTACTS_PER_IMPORT] * (len(import_sizes) - 1)
    assert app.simulator.subscribed("3") == set(profiles)
    assert state_of(app, status["runId"]) == expected_state(app, status["runId"], profiles)

    again = run(app, export.id)
    assert again["status"] == "succeeded" and again["sent"] == 0 and again["unchanged"] == 4321
    assert again["chunks"]["total"] == buckets, "nothing was left over, so no remainder chunk"


def test_a_run_cancelled_before_its_remainder_chunk_sends_it_next_time(app, import_sizes, monkeypatch):
    app.ctx.settings = replace(app.ctx.settings, chunk_size=400)
    export = app.export(prefix="remainder-cancel/", mapping=MAPPING)
    profiles = people(3000)
    upload(app, "remainder-cancel/", profiles)
    response = app.start(export.id)
    run_id = response.body["runId"]
    real_add = RunStore.add_chunk_once

    def cancel_as_it_is_added(store, chunk):  # an admin cancels just as the last bucket's chunk has compared
        real_add(store, chunk)
        assert app.request("POST", f"/api/runs/{run_id}/cancel").status == 200

    monkeypatch.setattr(RunStore, "add_chunk_once", cancel_as_it_is_added)
    cancelled = app.drain(run_id)

    sent = sum(import_sizes)
    view = app.ctx.runs.view(run_id)
    assert cancelled["status"] == "cancelled" and cancelled["sent"] == sent
    assert [chunk.state.value for chunk in view.chunks if chunk.remainder] == ["failed"]
    assert 0 < sent < 3000 and sent % MAX_CONTACTS_PER_IMPORT == 0, "only the chunks' whole imports went"
    recorded = state_of(app, run_id)
    assert len(recorded) == sent and set(recorded) == app.simulator.subscribed("3")

    monkeypatch.setattr(RunStore, "add_chunk_once", real_add)
    import_sizes.clear()
    after = run(app, export.id)
    assert after["status"] == "succeeded" and after["added"] == 3000 - sent and after["sent"] == 3000 - sent
    assert state_of(app, after["runId"]) == expected_state(app, after["runId"], profiles)


def test_contacts_activecampaign_fails_in_the_remainder_chunk_are_rejected_and_kept_out_of_the_state(app):
    app.ctx.settings = replace(app.ctx.settings, chunk_size=400)
    export = app.export(prefix="remainder-failed/", mapping=MAPPING)
    profiles = people(2600)
    upload(app, "remainder-failed/", profiles)
    app.simulator.reject_emails = set(profiles)  # ActiveCampaign reports every contact failed once processed
    first = run(app, export.id)
    assert first["status"] == "completed_with_errors" and first["rejected"] == 2600
    assert state_of(app, first["runId"]) == {}

    app.simulator.reject_emails = None
    second = run(app, export.id)
    assert second["status"] == "succeeded" and second["added"] == 2600 and second["sent"] == 2600
    assert state_of(app, second["runId"]) == expected_state(app, second["runId"], profiles)


def test_the_remainder_chunk_sends_beside_the_last_bucket_and_commits_once_every_bucket_is_final(app, import_sizes,
                                                                                              monkeypatch):
    """The remainder chunk starts as soon as the last bucket's chunk has compared, so it is delivered here while
    that chunk is still to send: it sends, then leaves its commit to the last bucket's chunk to queue."""
    app.ctx.settings = replace(app.ctx.settings, chunk_size=400)
    export = app.export(prefix="remainder-beside/", mapping=MAPPING)
    profiles = people(4321)
    upload(app, "remainder-beside/", profiles)
    run_id = app.start(export.id).body["runId"]
    real_finish, seen = finish.finish_when_sent, {}

    def deliver_the_remainder_at_once(ctx, view):
        real_finish(ctx, view)
        chunks = ctx.runs.view(run_id).chunks
        remainder_chunk = next((c for c in chunks if c.remainder), None)
        if remainder_chunk is None or seen:
            return
        last = next(c for c in chunks if not c.remainder and not c.state.final)
        seen["sent_by_the_last_bucket_before"] = last.sent
        assert app.host.step((CHUNKS_QUEUE,)) == 1, "the remainder chunk's message, queued as the last bucket compared"
        seen["remainder"] = ctx.runs.get_chunk(run_id, remainder_chunk.index)
        seen["state_then"] = state_of(app, run_id)
        seen["remainder_emails"] = {item.contact["email"] for item in remainder.gathered(ctx, ctx.runs.get_run(run_id))}

    monkeypatch.setattr(finish, "finish_when_sent", deliver_the_remainder_at_once)
    status = app.drain(run_id)

    assert seen["sent_by_the_last_bucket_before"] == 0
    sent_early = seen["remainder"]
    assert sent_early.committing and not sent_early.state.final and sent_early.sent > 0
    assert sent_early.sent == len(seen["remainder_emails"]) and seen["remainder_emails"] <= app.simulator.subscribed("3")
    assert not seen["remainder_emails"] & set(seen["state_then"]), "not committed while a bucket's chunk was not final"
    assert status["status"] == "succeeded" and status["sent"] == 4321
    assert sorted(import_sizes)[1:] == [MAX_CONTACTS_PER_IMPORT] * (len(import_sizes) - 1)
    assert app.ctx.runs.get_chunk(run_id, sent_early.index).state.final
    assert state_of(app, run_id) == expected_state(app, run_id, profiles), "the remainder's contacts committed after"


def test_two_workers_queueing_the_remainder_chunk_at_once_leave_one_message_for_it(app, import_sizes, monkeypatch):
    """Two chunks ending together may both find the remainder chunk still to queue, and both queue it. The one
    whose mark comes second takes its message back: delivered beside the other, it would take the chunk over
    mid-send and send a batch again."""
    from exports.functions import queues

    app.ctx.settings = replace(app.ctx.settings, chunk_size=400)
    export = app.export(prefix="remainder-race/", mapping=MAPPING)
    profiles = people(4321)
    upload(app, "remainder-race/", profiles)
    run_id = app.start(export.id).body["runId"]
    real_mark, raced = RunStore.mark_chunk_queued, []

    def another_worker_queues_it_between_this_ones_send_and_mark(store, chunk):
        if chunk.remainder and not raced:
            raced.append(chunk.index)
            assert remainder.queue_remainder_chunk(app.ctx, app.ctx.runs.view(run_id))
        return real_mark(store, chunk)

    deliveries, real_send_chunk = [], queues.send_chunk

    def counting(ctx, message):
        deliveries.append(message.chunk)
        return real_send_chunk(ctx, message)

    monkeypatch.setattr(RunStore, "mark_chunk_queued", another_worker_queues_it_between_this_ones_send_and_mark)
    monkeypatch.setattr(queues, "send_chunk", counting)
    status = app.drain(run_id)

    assert raced, "the remainder chunk was queued twice"
    assert deliveries.count(raced[0]) == 1, deliveries
    assert status["status"] == "succeeded" and status["sent"] == 4321
    assert len(import_sizes) == math.ceil(4321 / MAX_CONTACTS_PER_IMPORT)
    assert app.simulator.subscribed("3") == set(profiles)


def test_whether_any_bucket_still_has_to_compare_is_one_query_of_a_row_at_most(app):
    from exports.model import REMAINDER_BUCKET, Chunk, ChunkStatus

    store, run_id = app.ctx.runs, "compare-query-run"
    store.add_chunks([Chunk(run_id=run_id, index=n, status=ChunkStatus.QUEUED.value, bucket=n) for n in range(3)])
    store.add_chunk_once(Chunk(run_id=run_id, index=3, status=ChunkStatus.PENDING.value, bucket=REMAINDER_BUCKET))
    try:
        assert store.any_chunk_to_compare(run_id)
        store.claim_chunk(run_id, 0, "a", 10, 0).record_comparison(10, 0, 0, 0)
        store.fail_chunk(run_id, 1, "stopped before it compared")
        assert store.any_chunk_to_compare(run_id), "chunk 2 is queued"
        store.claim_chunk(run_id, 2, "b", 10, 0).record_comparison(10, 0, 0, 0)
        assert not store.any_chunk_to_compare(run_id), "the remainder chunk, pending, is not a bucket's"
    finally:
        store.delete_run(run_id)
