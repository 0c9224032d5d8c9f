"""People who leave a segment: kept, marked in a field, or unsubscribed; never re-subscribed; and the guardrail
that holds leaver actions on a suspicious drop until an admin approves or cancels them."""
from __future__ import annotations

import csv
import io

from exports.model import Leavers
from tests.support.api_helpers import create_connection, create_export
from tests.support.apphost import CONTRIBUTOR
from tests.support.profiles import csv_bytes

LIST = "3"


def people(count: int, start: int = 0) -> list[str]:
    return [f"person{n}@example.com" for n in range(start, start + count)]


def upload(app, prefix: str, emails: list[str], blobs: int = 1, first: dict | None = None) -> None:
    """The segment as `blobs` CSV files (replacing what was there); `first`: email -> first name."""
    container = app.ctx.storage.blobs.get_container_client("segments")
    for name in container.list_blob_names(name_starts_with=prefix):
        container.delete_blob(name)
    rows = [(email, (first or {}).get(email, "Ada"), "Last", "", "pro") for email in emails]
    for index in range(blobs):
        app.upload(f"{prefix}part-{index}.csv", csv_bytes(rows[index::blobs]))


def export(app, prefix: str, leavers: Leavers, **overrides):
    return app.export(prefix=prefix, mapping={"email": "Email", "firstName": "First Name"}, leavers=leavers,
                      **overrides)


def run(app, export_id: str, body: dict | None = None) -> dict:
    response = app.start(export_id, body)
    assert response.status == 202, response.body
    return app.drain(response.body["runId"])


def status_on_list(app, email: str) -> str | None:
    return (app.simulator.memberships(email).get(LIST) or {}).get("status")


def test_a_small_drop_unsubscribes_only_the_leavers_and_a_returning_one_is_not_resubscribed(app):
    members = people(100)
    app.simulator.add_from_other_source("other@example.com", LIST)  # on the list, never in this export
    exp = export(app, "leave-unsub/", Leavers.UNSUBSCRIBE)
    upload(app, "leave-unsub/", members, blobs=2)
    assert run(app, exp.id)["added"] == 100
    gone = members[::20]  # 5 of 100: under the 10% guardrail

    upload(app, "leave-unsub/", [m for m in members if m not in gone], blobs=2)
    second = run(app, exp.id)

    assert second["status"] == "succeeded", second
    assert (second["left"], second["unsubscribed"], second["held"], second["leavers"]) == (5, 5, 0, "unsubscribe")
    assert {status_on_list(app, m) for m in gone} == {"2"}
    assert {status_on_list(app, m) for m in members if m not in gone} == {"1"}
    assert status_on_list(app, "other@example.com") == "1", "a contact this export never delivered is never touched"
    third = run(app, exp.id)  # nothing left again: a leaver is acted on once
    assert (third["left"], third["unsubscribed"], third["sent"]) == (0, 0, 0)
    upload(app, "leave-unsub/", members, blobs=2)  # the five come back
    imported = app.simulator.stats()["contacts_imported"]

    back = run(app, exp.id)

    assert (back["notResubscribed"], back["added"], back["sent"]) == (5, 0, 0)
    assert any(e.startswith("5 contacts are back in the segment but stay unsubscribed") for e in back["errors"])
    assert back["status"] == "succeeded", "nothing went wrong: the export did what it says"
    assert app.simulator.stats()["contacts_imported"] == imported, "nothing is sent for them"
    assert {status_on_list(app, m) for m in gone} == {"2"}, "an unsubscribe this export made stays"


def test_a_person_who_unsubscribed_themselves_and_comes_back_stays_unsubscribed(app):
    members = people(40)
    exp = export(app, "leave-self/", Leavers.UNSUBSCRIBE)
    upload(app, "leave-self/", members)
    run(app, exp.id)
    app.simulator.unsubscribe(members[0], LIST, via="link", reason="Too many emails")
    upload(app, "leave-self/", members[1:])
    assert run(app, exp.id)["unsubscribed"] == 1  # ActiveCampaign keeps them unsubscribed either way
    upload(app, "leave-self/", members, first={members[0]: "Grace"})  # back, with a new first name

    back = run(app, exp.id)

    assert back["notResubscribed"] == 1 and back["sent"] == 0
    membership = app.simulator.memberships(members[0])[LIST]
    assert membership["status"] == "2" and membership["unsubreason"] == "Too many emails"


def test_in_keep_mode_leavers_are_counted_and_nothing_is_sent_for_them(app):
    members = people(30)
    exp = export(app, "leave-keep/", Leavers.KEEP)
    upload(app, "leave-keep/", members)
    run(app, exp.id)
    upload(app, "leave-keep/", members[:10])  # two thirds leave: no guardrail, since nothing would be done

    second = run(app, exp.id)

    assert (second["status"], second["left"], second["unsubscribed"], second["marked"], second["held"]) == (
        "succeeded", 20, 0, 0, 0)
    assert {status_on_list(app, m) for m in members} == {"1"}


def test_a_missing_blob_is_held_for_approval_and_approving_sends_the_held_unsubscribes(app):
    members = people(200)
    exp = export(app, "leave-held/", Leavers.UNSUBSCRIBE, connection=app.connection(allowContributors=True))
    upload(app, "leave-held/", members, blobs=4)
    run(app, exp.id)
    container = app.ctx.storage.blobs.get_container_client("segments")
    container.delete_blob("leave-held/part-3.csv")  # the upstream export lost a file: a quarter "left"
    renamed = {members[0]: "Grace"}
    app.upload("leave-held/part-0.csv", csv_bytes([(m, renamed.get(m, "Ada"), "Last", "", "pro")
                                                   for m in members[0::4]]))

    held = run(app, exp.id)

    assert held["status"] == "needs_approval", held
    assert (held["left"], held["held"], held["unsubscribed"], held["updated"]) == (50, 50, 0, 1)
    assert app.simulator.contact(members[0])["first_name"] == "Grace", "adds and updates still go"
    assert {status_on_list(app, m) for m in members[3::4]} == {"1"}, "nothing is unsubscribed while held"
    assert any("more than the 10% allowed" in e for e in held["errors"]), held["errors"]
    assert app.request("POST", f"/api/runs/{held['runId']}/approve", principal=CONTRIBUTOR).status == 403

    approved = app.request("POST", f"/api/runs/{held['runId']}/approve")

    assert approved.status == 202 and approved.body["status"] == "running"
    done = app.drain(held["runId"])
    assert (done["status"], done["unsubscribed"], done["held"]) == ("succeeded", 50, 0), done
    assert {status_on_list(app, m) for m in members[3::4]} == {"2"}
    assert app.request("POST", f"/api/runs/{held['runId']}/approve").status == 409, "approved once"


def test_an_empty_segment_is_held_even_when_the_export_allows_every_leaver_and_cancel_discards_it(app):
    members = people(60)
    exp = export(app, "leave-empty/", Leavers.UNSUBSCRIBE, maxLeaversPercent=100.0)
    upload(app, "leave-empty/", members)
    run(app, exp.id)
    upload(app, "leave-empty/", [])  # a header and no rows

    held = run(app, exp.id)

    assert (held["status"], held["held"]) == ("needs_approval", 60)
    assert any("the segment has no rows" in e for e in held["errors"])
    cancelled = app.request("POST", f"/api/runs/{held['runId']}/cancel")
    assert cancelled.status == 200 and cancelled.body["status"] == "cancelled"
    assert {status_on_list(app, m) for m in members} == {"1"}
    upload(app, "leave-empty/", members)  # the upstream export is mended
    mended = run(app, exp.id)
    assert (mended["unchanged"], mended["left"], mended["sent"]) == (60, 0, 0), "they were never dropped"


def test_a_newer_run_supersedes_a_held_one(app):
    members = people(50)
    exp = export(app, "leave-newer/", Leavers.UNSUBSCRIBE)
    upload(app, "leave-newer/", members)
    run(app, exp.id)
    upload(app, "leave-newer/", members[:10])
    held = run(app, exp.id)
    assert held["status"] == "needs_approval"
    upload(app, "leave-newer/", members)

    newer = run(app, exp.id)

    old = app.status(held["runId"])
    assert old["status"] == "cancelled" and "superseded by run" in old["cancellation"]["reason"]
    assert (newer["status"], newer["left"]) == ("succeeded", 0)
    refused = app.request("POST", f"/api/runs/{held['runId']}/approve")
    assert refused.status == 409
    assert {status_on_list(app, m) for m in members} == {"1"}


def test_a_dry_run_shows_the_leaver_actions_and_that_the_guardrail_would_hold_them(app):
    members = people(40)
    exp = export(app, "leave-dry/", Leavers.UNSUBSCRIBE)
    upload(app, "leave-dry/", members)
    run(app, exp.id)
    upload(app, "leave-dry/", members[:20])

    dry = run(app, exp.id, {"dryRun": True})

    assert (dry["status"], dry["dryRun"], dry["left"], dry["held"], dry["unsubscribed"]) == (
        "succeeded", True, 20, 20, 0)
    assert any("a real run would hold its leaver actions" in e for e in dry["errors"])
    rows = list(csv.DictReader(io.StringIO(app.request("GET", f"/api/runs/{dry['runId']}/preview").body)))
    assert sorted(r["email"] for r in rows if r["action"] == "unsubscribe") == sorted(members[20:])
    assert {status_on_list(app, m) for m in members} == {"1"}


def test_the_membership_field_is_set_for_members_and_cleared_for_leavers_without_unsubscribing(app):
    field = app.simulator.add_field("In VIP segment", "text", perstag="IN_VIP")
    app.upload("leave-field/part-0.csv", csv_bytes([(m, "Ada", "Last", "", "pro") for m in people(30)]))
    connection_id = create_connection(app)["id"]
    exp = create_export(app, connection_id, segment={"container": "segments", "prefix": "leave-field/"},
                        mapping={"email": "Email"}, leavers="field", membershipField="%in_vip%")
    assert (exp["leavers"], exp["membershipField"]) == ("field", "%in_vip%")

    first = run(app, exp["id"])

    assert first["added"] == 30
    assert {app.simulator.contact(m)["fields"].get(field) for m in people(30)} == {"yes"}
    app.upload("leave-field/part-0.csv", csv_bytes([(m, "Ada", "Last", "", "pro") for m in people(28)]))

    second = run(app, exp["id"])

    assert (second["left"], second["marked"], second["unsubscribed"]) == (2, 2, 0)
    for gone in people(2, start=28):
        assert field not in app.simulator.contact(gone)["fields"] and status_on_list(app, gone) == "1"
    assert app.simulator.contact("person0@example.com")["fields"][field] == "yes"
    app.upload("leave-field/part-0.csv", csv_bytes([(m, "Ada", "Last", "", "pro") for m in people(30)]))
    back = run(app, exp["id"])
    assert (back["added"], back["sent"]) == (2, 2), "a returning member is marked again"
    assert app.simulator.contact("person29@example.com")["fields"][field] == "yes"


def test_leaver_settings_are_checked_when_saved(app):
    app.simulator.add_field("Pick", "dropdown", perstag="PICK", options=["A", "B"])
    connection_id = create_connection(app)["id"]
    body = {"displayName": "Leavers", "connectionId": connection_id, "listId": "3",
            "segment": {"container": "segments", "prefix": "leave-checks/"}, "mapping": {"email": "Email"}}

    def problems(**changes):
        response = app.request("POST", "/api/exports", body | changes)
        assert response.status == 400, response.body
        return {p["field"]: p["message"] for p in response.body["error"]["details"]}

    assert "must be one of keep, field, unsubscribe" in problems(leavers="delete")["leavers"]
    assert "is required when leavers is" in problems(leavers="field")["membershipField"]
    assert "only when leavers is" in problems(leavers="keep", membershipField="PICK")["membershipField"]
    assert "no custom field 'NOPE'" in problems(leavers="field", membershipField="NOPE")["membershipField"]
    assert "cannot take 'yes'" in problems(leavers="field", membershipField="PICK")["membershipField"] or \
        "is not one of its options" in problems(leavers="field", membershipField="PICK")["membershipField"]
    assert "between 0 and 100" in problems(leavers="unsubscribe", maxLeaversPercent=150)["maxLeaversPercent"]
