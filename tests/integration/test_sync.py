"""Incremental runs: the per-export sync state, what a refresh sends, outcomes read back, crashes, dry runs."""
from __future__ import annotations

import csv
import io
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from exports.activecampaign.client import ActiveCampaignClient
from exports.model import Mapping
from exports.names import CHUNKS_QUEUE, SYNC_STATE_CONTAINER
from exports.store.sync_state import SHARDS, SyncStateStore, digest
from tests.support.profiles import csv_bytes

MAPPING = {"email": "Email", "firstName": "First Name", "lastName": "Last Name"}


def people(count: int, start: int = 0, first: str = "Ada") -> dict[str, tuple[str, str]]:
    """email -> (first name, last name)."""
    return {f"person{n}@example.com": (first, f"Last{n}") for n in range(start, start + count)}


def upload(app, prefix: str, profiles: dict[str, tuple[str, str]], blobs: int = 2, extra_rows=()) -> None:
    """The segment as `blobs` CSV files (replacing what was there), rows in a fixed order."""
    container = app.ctx.storage.blobs.get_container_client("segments")
    for blob in container.list_blob_names(name_starts_with=prefix):
        container.delete_blob(blob)
    rows = [(email, first, last, "", "pro") for email, (first, last) in sorted(profiles.items())] + list(extra_rows)
    for index in range(blobs):
        app.upload(f"{prefix}part-{index}.csv", csv_bytes(rows[index::blobs]))


def run(app, export_id: str, body: dict | None = None) -> dict:
    response = app.start(export_id, body)
    assert response.status == 202, response.body
    return app.drain(response.body["runId"])


def state_of(app, run_id: str) -> dict[str, str]:
    """Every email -> digest the run's sync state holds."""
    run = app.ctx.runs.get_run(run_id)
    entries = {}
    with ThreadPoolExecutor(8) as pool:  # as the worker reads them: one shard per request
        for shard in pool.map(lambda n: app.ctx.sync.read_shard(run.export_id, run.state_id, n),
                              app.ctx.sync.existing_shards(run.export_id, run.state_id)):
            entries.update(shard)
    return entries


def expected_state(app, run_id: str, profiles: dict[str, tuple[str, str]]) -> dict[str, str]:
    run = app.ctx.runs.get_run(run_id)
    key = app.ctx.sync.key(run.export_id, run.state_id)
    return {email: digest({"email": email, "first_name": first, "last_name": last}, key)
            for email, (first, last) in profiles.items()}


def figures(status: dict) -> tuple:
    return status["added"], status["updated"], status["unchanged"], status["left"]


def test_a_refresh_sends_only_what_changed_and_counts_every_kind(app):
    export = app.export(prefix="sync-delta/", mapping=MAPPING)
    before = people(3000)
    upload(app, "sync-delta/", before)
    first = run(app, export.id)
    assert first["status"] == "succeeded" and first["mode"] == "incremental"
    assert figures(first) == (3000, 0, 0, 0) and first["sent"] == 3000
    assert state_of(app, first["runId"]) == expected_state(app, first["runId"], before)

    after = dict(before)
    changed = sorted(before)[::100]  # 30 people get a new first name
    for email in changed:
        after[email] = ("Grace", before[email][1])
    gone = sorted(before)[1::150]  # 20 leave the segment
    for email in gone:
        del after[email]
    after.update(people(15, start=10_000))  # 15 are new
    upload(app, "sync-delta/", after, blobs=3)  # the upstream export now writes three files
    imported = app.simulator.stats()["contacts_imported"]

    second = run(app, export.id)

    assert second["status"] == "succeeded"
    assert figures(second) == (15, 30, 3000 - 30 - 20, 20)
    assert second["sent"] == 45 and second["contacts"] == len(after)
    assert app.simulator.stats()["contacts_imported"] - imported == 45
    assert app.simulator.contact(changed[0])["first_name"] == "Grace"
    assert state_of(app, second["runId"]) == expected_state(app, second["runId"], after)

    third = run(app, export.id)  # nothing changed: nothing is sent, and leavers are not counted again
    assert figures(third) == (0, 0, len(after), 0) and third["sent"] == 0
    assert app.simulator.stats()["contacts_imported"] - imported == 45


def test_a_full_run_resends_everyone_and_rebuilds_the_state(app):
    export = app.export(prefix="sync-full/", mapping=MAPPING)
    profiles = people(1200)
    upload(app, "sync-full/", profiles)
    run(app, export.id)
    upload(app, "sync-full/", {k: v for k, v in profiles.items() if k != "person0@example.com"})
    imported = app.simulator.stats()["contacts_imported"]

    full = run(app, export.id, {"mode": "full"})

    assert full["mode"] == "full" and full["status"] == "succeeded"
    assert figures(full) == (0, 1199, 0, 1)
    assert app.simulator.stats()["contacts_imported"] - imported == 1199
    assert "person0@example.com" not in state_of(app, full["runId"])
    assert len(state_of(app, full["runId"])) == 1199


def test_contacts_activecampaign_reports_failed_are_rejected_and_sent_again_next_run(app):
    app.simulator.configure(import_processing_seconds=0.3)  # outcomes arrive later, as ActiveCampaign's do
    failing = {"person7@example.com", "person1234@example.com"}
    app.simulator.fail_import_emails = failing
    export = app.export(prefix="sync-failed/", mapping=MAPPING)
    profiles = people(2000)
    upload(app, "sync-failed/", profiles)

    first = run(app, export.id)

    assert first["status"] == "completed_with_errors"
    assert first["rejectedByReason"] == {"import_failed": 2} and first["rejected"] == 2
    assert first["sent"] == 2000  # queued: the outcome is what import/info says afterwards
    assert set(state_of(app, first["runId"])) == set(profiles) - failing
    rejects = app.request("GET", f"/api/runs/{first['runId']}/rejects")
    rows = list(csv.DictReader(io.StringIO(rejects.body)))
    assert {row["email"] for row in rows} == failing
    assert all("reported the contact failed" in row["reason"] for row in rows)
    assert app.simulator.stats()["import_info_requests"] >= first["chunks"]["succeeded"]

    app.simulator.fail_import_emails = None
    second = run(app, export.id)

    assert second["status"] == "succeeded"
    assert figures(second) == (2, 0, 1998, 0)
    assert state_of(app, second["runId"]) == expected_state(app, second["runId"], profiles)
    assert failing <= app.simulator.subscribed("3")


def test_a_batch_that_ends_failed_records_none_of_its_contacts(app):
    app.simulator.configure(fail_import_batches=1)
    export = app.export(prefix="sync-batch-failed/", mapping=MAPPING)
    profiles = people(600)
    upload(app, "sync-batch-failed/", profiles, blobs=1)

    status = run(app, export.id)

    assert status["rejectedByReason"] == {"import_failed": 250}  # the first import of the one chunk
    assert len(state_of(app, status["runId"])) == 350
    assert "ended 'failed'" in " ".join(status["errors"]) or status["rejectsBlob"]


def test_imports_not_processed_in_time_are_unconfirmed_and_sent_again(app):
    app.simulator.configure(import_processing_seconds=30.0)
    app.ctx.settings = replace(app.ctx.settings, outcome_wait_seconds=0.6)
    export = app.export(prefix="sync-slow/", mapping=MAPPING)
    profiles = people(300)
    upload(app, "sync-slow/", profiles, blobs=1)

    slow = run(app, export.id)

    assert slow["status"] == "completed_with_errors"
    assert slow["unconfirmed"] == 300 and slow["rejected"] == 0
    assert any("had not processed their import in time" in error for error in slow["errors"])
    assert state_of(app, slow["runId"]) == {}

    app.simulator.configure(import_processing_seconds=0.0)
    again = run(app, export.id)
    assert figures(again) == (300, 0, 0, 0) and again["status"] == "succeeded"


def test_a_worker_killed_mid_chunk_resends_only_its_batch_in_flight_and_the_state_is_exact(app, monkeypatch):
    export = app.export(prefix="sync-kill/", mapping=MAPPING)
    profiles = people(1500)
    upload(app, "sync-kill/", profiles, blobs=1)
    run(app, export.id)
    changed = dict(profiles)
    for email in sorted(profiles)[:1400]:
        changed[email] = ("Linus", profiles[email][1])
    upload(app, "sync-kill/", changed, blobs=1)
    real_import, calls = ActiveCampaignClient.bulk_import, []

    def killed_on_the_fourth(self, contacts, list_id, *options):
        calls.append(len(contacts))
        if len(calls) == 4:
            real_import(self, contacts, list_id, *options)  # ActiveCampaign took the batch; the worker died before its checkpoint
            raise RuntimeError("worker killed")
        return real_import(self, contacts, list_id, *options)

    monkeypatch.setattr(ActiveCampaignClient, "bulk_import", killed_on_the_fourth)
    imported = app.simulator.stats()["contacts_imported"]

    status = run(app, export.id)

    assert status["status"] == "succeeded" and figures(status) == (0, 1400, 100, 0)
    assert app.host.calls[CHUNKS_QUEUE] > status["chunks"]["total"]  # the killed delivery was redelivered
    in_flight = calls[3]
    assert app.simulator.stats()["contacts_imported"] - imported == 1400 + in_flight
    assert state_of(app, status["runId"]) == expected_state(app, status["runId"], changed)


def test_a_worker_killed_while_writing_the_state_leaves_it_exact(app, monkeypatch):
    app.ctx.settings = replace(app.ctx.settings, chunk_size=100_000)  # one chunk: every shard written by one worker
    export = app.export(prefix="sync-kill-commit/", mapping=MAPPING)
    profiles = people(2500)
    upload(app, "sync-kill-commit/", profiles, blobs=2)
    real_write, writes = SyncStateStore.write_shard, []

    def killed_after_ten_shards(self, export_id, state_id, shard, entries):
        writes.append(shard)
        if len(writes) == 11:
            raise RuntimeError("worker killed")
        return real_write(self, export_id, state_id, shard, entries)

    monkeypatch.setattr(SyncStateStore, "write_shard", killed_after_ten_shards)

    status = run(app, export.id)

    assert status["status"] == "succeeded" and figures(status) == (2500, 0, 0, 0)
    assert app.simulator.stats()["contacts_imported"] == 2500  # the redelivery only wrote the state
    assert state_of(app, status["runId"]) == expected_state(app, status["runId"], profiles)


def test_a_redelivered_chunk_changes_neither_the_figures_nor_the_state(app):
    export = app.export(prefix="sync-redeliver/", mapping=MAPPING)
    profiles = people(900)
    upload(app, "sync-redeliver/", profiles, blobs=1)
    status = run(app, export.id)
    state = state_of(app, status["runId"])
    requests = app.simulator.stats()["requests"]

    app.ctx.storage.queue(CHUNKS_QUEUE).send_message(f'{{"runId": "{status["runId"]}", "chunk": 0}}')
    app.host.step()

    assert app.status(status["runId"]) == status
    assert state_of(app, status["runId"]) == state
    assert app.simulator.stats()["requests"] == requests


def test_a_dry_run_previews_every_action_sends_nothing_and_keeps_the_state(app):
    export = app.export(prefix="sync-dry/", mapping=MAPPING)
    profiles = people(1000)
    upload(app, "sync-dry/", profiles)
    first = run(app, export.id)
    after = {k: v for k, v in profiles.items() if k != "person1@example.com"}
    after["person2@example.com"] = ("Zoe", "Last2")
    after.update(people(2, start=5000))
    upload(app, "sync-dry/", after)
    bulk = app.simulator.stats()["bulk_requests"]

    dry = run(app, export.id, {"dryRun": True})

    assert dry["status"] == "succeeded" and dry["dryRun"] is True
    assert figures(dry) == (2, 1, 998, 1) and dry["sent"] == 0
    assert app.simulator.stats()["bulk_requests"] == bulk
    assert state_of(app, dry["runId"]) == state_of(app, first["runId"])
    preview = app.request("GET", f"/api/runs/{dry['runId']}/preview")
    assert preview.status == 200 and dry["previewBlob"].endswith(f"{dry['runId']}/preview.csv")
    rows = {row["email"]: row for row in csv.DictReader(io.StringIO(preview.body))}
    assert {email: row["action"] for email, row in rows.items()} == {
        "person5000@example.com": "add", "person5001@example.com": "add", "person2@example.com": "update",
        "person1@example.com": "leave"}
    assert rows["person2@example.com"]["first_name"] == "Zoe"

    real = run(app, export.id)  # the dry run changed nothing: the real run finds the same changes
    assert figures(real) == figures(dry) and real["sent"] == 3
    full_dry = run(app, export.id, {"mode": "full", "dryRun": True})
    assert figures(full_dry) == (0, len(after), 0, 0) and full_dry["sent"] == 0


def test_a_run_that_is_not_a_dry_run_has_no_preview(app):
    export = app.export(prefix="sync-nopreview/", mapping=MAPPING)
    upload(app, "sync-nopreview/", people(10), blobs=1)
    status = run(app, export.id)
    response = app.request("GET", f"/api/runs/{status['runId']}/preview")
    assert response.status == 404 and response.body["error"]["code"] == "preview_not_found"


@pytest.mark.parametrize("body, field", [
    ({"mode": "partial"}, "mode"), ({"dryRun": "yes"}, "dryRun"), ({"mode": 1}, "mode"), ({"full": True}, "full"),
])
def test_bad_run_options_are_refused_naming_the_field(app, body, field):
    export = app.export(prefix="sync-options/", mapping=MAPPING)
    response = app.start(export.id, body)
    assert response.status == 400
    assert [p["field"] for p in response.body["error"]["details"]] == [field]


def test_a_new_list_or_mapping_starts_an_empty_state_and_the_old_one_is_deleted(app):
    export = app.export(prefix="sync-reset/", mapping=MAPPING)
    profiles = people(400)
    upload(app, "sync-reset/", profiles, blobs=1)
    first = run(app, export.id)
    old_state = app.ctx.runs.get_run(first["runId"]).state_id

    app.ctx.config.replace_export(replace(export, listId="4"))
    moved = run(app, export.id)
    assert figures(moved) == (400, 0, 0, 0)
    assert app.simulator.subscribed("4") == set(profiles)

    app.ctx.config.replace_export(replace(export, listId="4", mapping=Mapping(email="Email", firstName="First Name")))
    remapped = run(app, export.id)
    assert figures(remapped) == (400, 0, 0, 0)
    states = {app.ctx.runs.get_run(r["runId"]).state_id for r in (first, moved, remapped)}
    assert len(states) == 3
    blobs = app.ctx.storage.blobs.get_container_client(SYNC_STATE_CONTAINER)
    kept = {name.split("/")[1] for name in blobs.list_blob_names(name_starts_with=f"{export.id}/")}
    assert kept == {app.ctx.runs.get_run(remapped["runId"]).state_id} and old_state not in kept


def test_deleting_an_export_deletes_its_state_and_the_sweep_removes_orphans(app):
    from exports.services.retention import sweep_orphaned_states

    # A container of its own: the shared one holds the state of every earlier test's (deleted) exports,
    # which the sweep would otherwise spend this test deleting.
    blobs = app.ctx.storage.blobs.get_container_client(f"sync-sweep-{uuid.uuid4().hex[:12]}")
    blobs.create_container()
    app.ctx.sync = SyncStateStore(blobs)
    export = app.export(prefix="sync-delete/", mapping=MAPPING)
    upload(app, "sync-delete/", people(50), blobs=1)
    run(app, export.id)
    assert list(blobs.list_blob_names(name_starts_with=f"{export.id}/"))

    response = app.request("DELETE", f"/api/exports/{export.id}")

    assert response.status == 200
    assert not list(blobs.list_blob_names(name_starts_with=f"{export.id}/"))
    blobs.upload_blob("0123456789abcdef0123456789abcdef/0/shards/0001", b"late@example.com\tx\n")  # a late writer
    assert "0123456789abcdef0123456789abcdef" in sweep_orphaned_states(app.ctx)
    assert not list(blobs.list_blob_names(name_starts_with="0123456789abcdef0123456789abcdef/"))
    blobs.delete_container()


def test_a_row_rejected_for_another_value_is_not_a_leaver_and_keeps_its_state(app):
    export = app.export(prefix="sync-present/", mapping=MAPPING)
    profiles = people(100)
    upload(app, "sync-present/", profiles, blobs=1)
    first = run(app, export.id)
    rest = {k: v for k, v in profiles.items() if k != "person3@example.com"}
    too_long = ("person3@example.com", "x" * 300, "Last3", "", "pro")  # a first name ActiveCampaign cannot take
    upload(app, "sync-present/", rest, blobs=1, extra_rows=[too_long])

    second = run(app, export.id)

    assert figures(second) == (0, 0, 99, 0) and second["rejected"] == 1
    assert state_of(app, second["runId"])["person3@example.com"] == state_of(app, first["runId"])["person3@example.com"]


def test_the_state_is_sharded_the_same_whatever_the_number_of_chunks(app):
    export = app.export(prefix="sync-shards/", mapping=MAPPING)
    profiles = people(3000)
    upload(app, "sync-shards/", profiles, blobs=1)
    app.ctx.settings = replace(app.ctx.settings, chunk_size=500)
    many = run(app, export.id)
    app.ctx.settings = replace(app.ctx.settings, chunk_size=100_000)
    one = run(app, export.id)

    assert many["chunks"]["total"] > one["chunks"]["total"] == 1
    assert figures(one) == (0, 0, 3000, 0) and one["sent"] == 0
    shards = app.ctx.sync.existing_shards(export.id, app.ctx.runs.get_run(one["runId"]).state_id)
    assert len(shards) == SHARDS  # 3,000 emails spread over every shard
