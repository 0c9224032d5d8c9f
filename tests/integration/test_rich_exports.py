"""Richer exports: tags, custom fields of every type (checked when saved, re-read when run), the automations
switch and a schedule per export, end to end against Azurite and the simulator."""
from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

from exports.services.runs import start_scheduled_runs
from exports.store.schedules import SCHEDULE_ROW
from shared.clock import parse_timestamp
from tests.support.api_helpers import create_connection, create_export, problems

HEADER = ("Email", "Tier", "Region", "Interests", "Hobbies", "Consent", "Last order", "Signed up", "Notes", "Code",
          "Labels")


def segment(app, prefix: str, rows, header=HEADER) -> None:
    """The segment as one CSV blob, replacing what was there."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    container = app.ctx.storage.blobs.get_container_client("segments")
    for name in container.list_blob_names(name_starts_with=prefix):
        container.delete_blob(name)
    app.upload(f"{prefix}part-0.csv", out.getvalue().encode())


def account_fields(app) -> dict[str, str]:
    """A custom field of each type ActiveCampaign has; title -> id."""
    sim, suffix = app.simulator, uuid.uuid4().hex[:6]
    return {
        "Tier": sim.add_field(f"Tier {suffix}", "dropdown", perstag=f"TIER_{suffix}", options=["Gold", "Silver"]),
        "Region": sim.add_field(f"Region {suffix}", "radio", options=["North", "South"]),
        "Interests": sim.add_field(f"Interests {suffix}", "multiselect", options=["Books", "Music", "Film"]),
        "Hobbies": sim.add_field(f"Hobbies {suffix}", "listbox", options=["Chess", "Golf"]),
        "Consent": sim.add_field(f"Consent {suffix}", "checkbox", options=["Yes"]),
        "Last order": sim.add_field(f"Last order {suffix}", "date"),
        "Signed up": sim.add_field(f"Signed up {suffix}", "datetime"),
        "Notes": sim.add_field(f"Notes {suffix}", "textarea"),
        "Code": sim.add_field(f"Code {suffix}", "text", perstag=f"CODE_{suffix}"),
    }


def save(app, prefix: str, mapping: dict, **extra) -> dict:
    connection_id = create_connection(app)["id"]
    return create_export(app, connection_id, segment={"container": "segments", "prefix": prefix},
                         mapping={"email": "Email", **mapping}, **extra)


def run(app, export_id: str) -> dict:
    response = app.start(export_id)
    assert response.status == 202, response.body
    return app.drain(response.body["runId"])


def test_a_field_of_each_type_is_formatted_for_it_and_a_value_that_does_not_fit_rejects_only_its_row(app):
    ids = account_fields(app)
    tier_perstag = next(f["perstag"] for f in app.simulator.fields() if f["id"] == ids["Tier"])
    fields = [{"column": "Tier", "field": f"%{tier_perstag.lower()}%"}]  # by personalisation tag, any case
    fields += [{"column": title, "field": int(field_id) if title == "Region" else field_id}
               for title, field_id in ids.items() if title != "Tier"]
    fields[[f["column"] for f in fields].index("Hobbies")]["separator"] = "|"
    export = save(app, "rich-types/", {"fields": fields})
    assert [f["spec"]["type"] for f in export["mapping"]["fields"]] == [
        "dropdown", "radio", "multiselect", "listbox", "checkbox", "date", "datetime", "textarea", "text"]
    segment(app, "rich-types/", [
        ("ada@example.com", "gold", "South", "Books, film", "Chess|Golf", "yes", "2024-05-31T23:30:00-05:00",
         "2024-05-31 14:30", "Line one\nline two", "A-1", ""),
        ("bob@example.com", "Silver", "", "||Music||", "", "no", "2024-06-01", "2024-06-01T08:00:00+02:00", "", "", ""),
        ("cy@example.com", "Platinum", "North", "", "", "", "", "", "", "", ""),  # not a Tier option
        ("di@example.com", "Gold", "", "", "", "", "31/05/2024", "", "", "", ""),  # not ISO 8601
    ])

    status = run(app, export["id"])

    assert status["status"] == "completed_with_errors" and (status["sent"], status["rejected"]) == (2, 2)
    assert status["rejectedByReason"] == {"value_invalid": 2}
    ada = app.simulator.contact("ada@example.com")["fields"]
    assert ada == {ids["Tier"]: "Gold", ids["Region"]: "South", ids["Interests"]: "||Books||Film||",
                   ids["Hobbies"]: "||Chess||Golf||", ids["Consent"]: "||Yes||", ids["Last order"]: "2024-05-31",
                   ids["Signed up"]: "2024-05-31T14:30:00+00:00", ids["Notes"]: "Line one\nline two",
                   ids["Code"]: "A-1"}
    bob = app.simulator.contact("bob@example.com")["fields"]
    assert ids["Consent"] not in bob and ids["Region"] not in bob, "an unticked box and an empty value are left out"
    assert bob[ids["Signed up"]] == "2024-06-01T08:00:00+02:00"
    assert app.simulator.contact("cy@example.com") is None and app.simulator.contact("di@example.com") is None
    report = app.request("GET", f"/api/runs/{status['runId']}/rejects").body
    assert "'Platinum' is not one of its options" in report and "'Gold'" in report
    assert "YYYY-MM-DD" in report


def test_a_changed_field_value_resends_only_that_contact_and_a_newly_mapped_field_resends_everyone_once(app):
    ids = account_fields(app)
    rows = [(f"p{n}@example.com", "Gold", "", "", "", "", "", "", "", f"C{n}", "") for n in range(30)]
    segment(app, "rich-delta/", rows)
    export = save(app, "rich-delta/", {"fields": [{"column": "Tier", "field": ids["Tier"]}]})
    assert run(app, export["id"])["added"] == 30
    rows[4] = rows[4][:1] + ("Silver",) + rows[4][2:]
    segment(app, "rich-delta/", rows)

    changed = run(app, export["id"])

    assert (changed["updated"], changed["unchanged"], changed["sent"]) == (1, 29, 1)
    assert app.simulator.contact("p4@example.com")["fields"][ids["Tier"]] == "Silver"
    body = app.request("GET", f"/api/exports/{export['id']}").body
    body["mapping"]["fields"].append({"column": "Code", "field": ids["Code"]})
    body["mapping"]["fields"] = [{k: f[k] for k in ("column", "field")} for f in body["mapping"]["fields"]]
    assert app.request("PUT", f"/api/exports/{export['id']}", {k: body[k] for k in (
        "displayName", "connectionId", "listId", "segment", "mapping")}).status == 200

    remapped = run(app, export["id"])

    assert (remapped["added"], remapped["sent"]) == (30, 30), "a new field: the state starts again, everyone is sent"
    assert app.simulator.contact("p7@example.com")["fields"][ids["Code"]] == "C7"
    assert run(app, export["id"])["sent"] == 0


def test_an_unknown_field_or_a_missing_column_is_refused_when_saved_and_every_page_of_fields_is_read(app):
    ids = account_fields(app)
    for n in range(120):  # the account's fields now span two pages of 100
        app.simulator.add_field(f"Filler {uuid.uuid4().hex[:8]} {n}", "text")
    late = app.simulator.add_field(f"Late {uuid.uuid4().hex[:6]}", "text")
    segment(app, "rich-save/", [("a@example.com",) + ("",) * (len(HEADER) - 1)])
    connection_id = create_connection(app)["id"]
    body = {"displayName": "Rich", "connectionId": connection_id, "listId": "3",
            "segment": {"container": "segments", "prefix": "rich-save/"}}

    unknown = app.request("POST", "/api/exports", body | {"mapping": {"email": "Email", "fields": [
        {"column": "Tier", "field": ids["Tier"]}, {"column": "Code", "field": "NO_SUCH_TAG"}]}})

    assert unknown.status == 400
    found = problems(unknown)
    assert "no custom field 'NO_SUCH_TAG'" in found["mapping.fields[1].field"]
    assert "the account's fields include" in found["mapping.fields[1].field"] and "id 1)" in found["mapping.fields[1].field"]
    twice = problems(app.request("POST", "/api/exports", body | {"mapping": {"email": "Email", "fields": [
        {"column": "Tier", "field": ids["Tier"]}, {"column": "Code", "field": ids["Tier"]}]}}))
    assert "is mapped twice" in twice["mapping.fields[1].field"]
    missing = problems(app.request("POST", "/api/exports", body | {"mapping": {"email": "Email", "fields": [
        {"column": "Lifetime value", "field": late}], "tags": {"column": "Segments"}}}))
    assert "'Lifetime value'" in missing["mapping.fields[0].column"] and "'Segments'" in missing["mapping.tags.column"]
    saved = app.request("POST", "/api/exports", body | {"mapping": {"email": "Email", "fields": [
        {"column": "Code", "field": late}]}})
    assert saved.status == 201, saved.body  # found on the second page
    assert app.ctx.config.get_export(saved.body["id"]).mapping.fields[0].spec.type == "text"


def test_a_field_deleted_in_activecampaign_after_saving_fails_the_run_before_anything_is_sent(app):
    ids = account_fields(app)
    segment(app, "rich-gone/", [(f"p{n}@example.com", "Gold") + ("",) * (len(HEADER) - 2) for n in range(20)])
    export = save(app, "rich-gone/", {"fields": [{"column": "Tier", "field": ids["Tier"]}]})
    app.simulator.delete_field(ids["Tier"])
    imported = app.simulator.stats()["bulk_requests"]

    status = run(app, export["id"])

    assert status["status"] == "failed" and status["sent"] == 0
    assert any("no longer exists in ActiveCampaign" in e and "'Tier'" in e for e in status["errors"]), status["errors"]
    assert app.simulator.stats()["bulk_requests"] == imported


def test_tags_from_a_column_and_fixed_names_are_added_and_a_tag_that_leaves_the_column_stays(app):
    segment(app, "rich-tags/", [("ada@example.com", "", "", "", "", "", "", "", "", "", "Books; Music ;;"),
                                ("bob@example.com",) + ("",) * (len(HEADER) - 1)], header=HEADER)
    export = save(app, "rich-tags/", {"tags": {"names": ["VIP", "Newsletter"], "column": "Labels", "separator": ";"}},
                  excludeAutomations=True)
    assert export["excludeAutomations"] is True

    first = run(app, export["id"])

    assert first["sent"] == 2
    assert app.simulator.contact("ada@example.com")["tags"] == ["Books", "Music", "Newsletter", "VIP"]
    assert app.simulator.contact("bob@example.com")["tags"] == ["Newsletter", "VIP"]
    stats = app.simulator.stats()
    assert (stats["automations_excluded"], stats["automations_started"]) == (2, 0)
    segment(app, "rich-tags/", [("ada@example.com", "", "", "", "", "", "", "", "", "", "Books"),
                                ("bob@example.com",) + ("",) * (len(HEADER) - 1)], header=HEADER)

    preview = app.drain(app.start(export["id"], {"dryRun": True}).body["runId"])
    rows = list(csv.DictReader(io.StringIO(app.request("GET", f"/api/runs/{preview['runId']}/preview").body)))
    assert [(r["email"], r["action"], r["tags"]) for r in rows] == [
        ("ada@example.com", "update", '["Books", "Newsletter", "VIP"]')]

    second = run(app, export["id"])

    assert (second["updated"], second["unchanged"]) == (1, 1)
    assert "Music" in app.simulator.contact("ada@example.com")["tags"], "a bulk import only ever adds tags"


def test_imports_start_automations_unless_the_export_excludes_them(app):
    segment(app, "rich-auto/", [(f"p{n}@example.com",) + ("",) * (len(HEADER) - 1) for n in range(15)])
    export = save(app, "rich-auto/", {})
    assert export["excludeAutomations"] is False

    run(app, export["id"])

    assert (app.simulator.stats()["automations_started"], app.simulator.stats()["automations_excluded"]) == (15, 0)


def test_a_per_export_schedule_starts_it_once_per_occurrence_whatever_the_ticks(app):
    segment(app, "rich-cron/", [(f"p{n}@example.com",) + ("",) * (len(HEADER) - 1) for n in range(10)])
    export = save(app, "rich-cron/", {}, schedule="0  */15 * * * *")
    assert export["schedule"] == "0 */15 * * * *"
    set_at = parse_timestamp(app.ctx.config.get_export(export["id"]).scheduleSetAt)
    first = set_at.replace(minute=15 * (set_at.minute // 15), second=0, microsecond=0) + timedelta(minutes=15)
    # Daily, twelve hours away from the ticks below (a fixed hour such as EXPORT_SCHEDULE's 03:00 UTC would
    # fall inside them when the test runs a few hours before it).
    other = save(app, "rich-cron/", {}, displayName="Daily", schedule=f"0 0 {(first.hour + 12) % 24} * * *")

    assert export["id"] not in start_scheduled_runs(app.ctx, now=first - timedelta(seconds=1)), "not due yet"
    started = start_scheduled_runs(app.ctx, now=first + timedelta(seconds=20))
    assert list(started) == [export["id"]] and other["id"] not in started
    assert start_scheduled_runs(app.ctx, now=first + timedelta(seconds=40)) == {}, "another tick, the same occurrence"
    app.drain(started[export["id"]])

    # The timer was down for three hours: the missed export starts once, for the latest occurrence.
    late = first + timedelta(hours=3, minutes=7)
    again = start_scheduled_runs(app.ctx, now=late)
    assert list(again) == [export["id"]] and again[export["id"]] != started[export["id"]]
    assert start_scheduled_runs(app.ctx, now=late + timedelta(minutes=1)) == {}
    app.drain(again[export["id"]])
    last = app.ctx.storage.tables.get_table_client("exportruns").get_entity(export["id"], SCHEDULE_ROW)
    assert parse_timestamp(last["lastOccurrence"]) == late.replace(minute=15 * (late.minute // 15), second=0,
                                                                   microsecond=0)
    runs = app.request("GET", f"/api/exports/{export['id']}/runs").body["runs"]
    assert [r["trigger"] for r in runs] == ["timer", "timer"]
    assert datetime.now(UTC) < late, "the ticks above were simulated, not waited for"


def test_instances_ticking_at_once_start_an_occurrence_once(app):
    from concurrent.futures import ThreadPoolExecutor

    export_id, occurrence = uuid.uuid4().hex, "2026-12-02T02:30:00.000Z"
    with ThreadPoolExecutor(8) as pool:
        claims = list(pool.map(lambda _: app.ctx.schedules.claim(export_id, occurrence), range(8)))
    later = [app.ctx.schedules.claim(export_id, "2026-12-02T02:45:00.000Z") for _ in range(2)]

    assert claims.count(True) == 1 and later == [True, False]
    assert app.ctx.schedules.claim(export_id, occurrence) is False, "an older occurrence never starts again"
    app.ctx.schedules.forget(export_id)
    assert app.ctx.schedules.last(export_id) is None
