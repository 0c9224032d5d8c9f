"""Tests of the ActiveCampaign simulator (tests/support/activecampaign.py) over real HTTP."""
from __future__ import annotations

import datetime
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import uuid

import pytest
import requests

from tests.support.activecampaign import STAT_KEYS, ActiveCampaignSimulator, is_valid_email

KEY = "test-key"
LISTS = {"3": "Newsletter", "4": "Customers"}
PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[2]
VALIDATION_MESSAGE = ("JSON payload did not pass validation. Please fix failure Reasons and retry. "
                      "The import was not queued for processing.")
NOTE_FIELD = {"title": "Note", "type": "text"}  # becomes field id "1" when it is the first field


@pytest.fixture
def make_sim():
    """Start simulators on ephemeral ports; generous budgets unless a test sets its own."""
    started = []

    def factory(**settings) -> ActiveCampaignSimulator:
        settings.setdefault("api_keys", {KEY})
        settings.setdefault("lists", LISTS)
        settings.setdefault("requests_per_second", 1000)
        settings.setdefault("bulk_per_minute", 1000)
        sim = ActiveCampaignSimulator(**settings)
        sim.start()
        started.append(sim)
        return sim

    yield factory
    for sim in started:
        sim.stop()


@pytest.fixture
def sim(make_sim):
    return make_sim()


@pytest.fixture
def http():
    with requests.Session() as session:
        session.headers["Api-Token"] = KEY
        yield session


def call(http, sim, method, path, **kwargs):
    kwargs.setdefault("timeout", 5)
    return http.request(method, f"{sim.base_url}/api/3{path}", **kwargs)


def bulk(http, sim, contacts, **extra):
    return call(http, sim, "POST", "/import/bulk_import", json={"contacts": contacts, **extra})


def person(email, *lists, **fields):
    return {"email": email, **fields, "subscribe": [{"listid": list_id} for list_id in lists]}


def import_info(http, sim, batch_id):
    response = call(http, sim, "GET", "/import/info", params={"batchId": batch_id})
    assert response.status_code == 200
    return response.json()


def poll_until_processed(http, sim, batch_id, timeout=5.0):
    """Poll import/info like a client; returns (statuses seen in order, final body, when, calls)."""
    seen, calls, deadline = [], 0, time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = import_info(http, sim, batch_id)
        calls += 1
        if not seen or seen[-1] != body["status"]:
            seen.append(body["status"])
        if body["status"] not in (False, "waiting", "claimed", "active"):
            return seen, body, time.monotonic(), calls
        time.sleep(0.01)
    raise AssertionError(f"batch {batch_id} still {seen[-1]!r} after {timeout} s")


# ---- authentication and read endpoints ---------------------------------------------------------

def test_missing_or_wrong_api_key_is_403_and_spends_no_budget(sim):
    missing = requests.get(f"{sim.base_url}/api/3/users/me", timeout=5)
    wrong = requests.get(f"{sim.base_url}/api/3/users/me", headers={"Api-Token": "nope"}, timeout=5)
    assert missing.status_code == wrong.status_code == 403
    assert wrong.json()["message"].startswith("No Result found for")
    stats = sim.stats()
    assert stats["forbidden"] == 2 and stats["requests"] == 0 and stats["responses"] == 2


def test_users_me(sim, http):
    response = call(http, sim, "GET", "/users/me")
    assert response.status_code == 200
    user = response.json()["user"]
    assert user["id"] == "1" and user["email"] and user["username"]


def test_get_list_and_unknown_list_404(sim, http):
    assert call(http, sim, "GET", "/lists/3").json()["list"] == {
        "id": "3", "name": "Newsletter", "stringid": "newsletter", "userid": "1"}
    missing = call(http, sim, "GET", "/lists/7")
    assert missing.status_code == 404
    assert missing.json() == {"message": "No Result found for _List with id 7"}


def test_lists_pagination_defaults_to_20_and_total_is_a_string(make_sim, http):
    sim = make_sim(lists={str(i): f"List {i}" for i in range(1, 126)})
    first = call(http, sim, "GET", "/lists").json()
    assert [item["id"] for item in first["lists"]] == [str(i) for i in range(1, 21)]
    assert first["meta"]["total"] == "125"
    last = call(http, sim, "GET", "/lists", params={"limit": 20, "offset": 120}).json()
    assert [item["id"] for item in last["lists"]] == ["121", "122", "123", "124", "125"]
    capped = call(http, sim, "GET", "/lists", params={"limit": 500}).json()
    assert len(capped["lists"]) == 100


def test_fields_and_unknown_route(sim, http):
    assert call(http, sim, "GET", "/fields").json() == {
        "fields": [], "fieldOptions": [], "fieldRels": [], "meta": {"total": "0"}}
    unknown = call(http, sim, "GET", "/nothing/here")
    assert unknown.status_code == 404 and "message" in unknown.json()


# ---- bulk import -------------------------------------------------------------------------------

def test_bulk_import_success_creates_contacts_and_subscribes(make_sim, http):
    sim = make_sim(fields=[NOTE_FIELD])  # field values must name a field the account has
    response = bulk(http, sim, [
        person("Ada@Example.com", "3", first_name="Ada", tags=["vip"], fields=[{"id": 1, "value": "x"}]),
        person("bob@example.org", "3", "4", last_name="Bob"),
    ])
    assert response.status_code == 200
    body = response.json()
    assert body["Success"] == 1 and body["queued_contacts"] == 2
    assert body["message"] == "Contact import queued"
    uuid.UUID(body["batchId"])
    assert sim.subscribed("3") == {"ada@example.com", "bob@example.org"}
    assert sim.subscribed("4") == {"bob@example.org"}
    ada = sim.contact("ada@example.com")
    assert ada["first_name"] == "Ada" and ada["tags"] == ["vip"] and ada["fields"] == {"1": "x"}
    view = requests.get(f"{sim.base_url}/__sim/lists/3", timeout=5).json()
    assert view == {"listId": "3", "subscribed": ["ada@example.com", "bob@example.org"],
                    "unsubscribed": []}
    stats = sim.stats()
    assert (stats["bulk_accepted"], stats["contacts_imported"], stats["contacts_created"]) == (1, 2, 2)


def test_import_info_lists_only_contacts_created_by_the_batch(make_sim, http):
    sim = make_sim(import_processing_seconds=0)  # processed at once: no polling needed here
    bulk(http, sim, [person("a@example.com", "3")])
    batch = bulk(http, sim, [person("a@example.com", "3"), person("b@example.com", "3")]).json()
    info = call(http, sim, "GET", "/import/info", params={"batchId": batch["batchId"]})
    assert info.status_code == 200
    assert info.json() == {"status": "completed", "success": [sim.contact("b@example.com")["id"]],
                           "failure": []}
    missing = call(http, sim, "GET", "/import/info")
    assert missing.status_code == 400
    assert missing.json() == {"success": 0, "message": "'batchId' is a required field."}
    assert call(http, sim, "GET", "/import/info", params={"batchId": "nope"}).status_code == 404


# ---- custom fields, tags, field values and automations -----------------------------------------

FIELDS = [  # ids "1" to "10" in this order; option ids in brackets
    {"title": "Tier", "type": "dropdown", "options": ["Gold", "Silver"]},  # 1 [1, 2]
    {"title": "Signed up on", "type": "date"},  # 2
    {"title": "Last order", "type": "datetime", "perstag": "LAST_ORDER_AT"},  # 3
    {"title": "Plan", "type": "radio", "options": ["Free", "Pro"]},  # 4 [3, 4]
    {"title": "Interests", "type": "checkbox", "options": ["a", "b", "c"]},  # 5 [5, 6, 7]
    {"title": "Labels", "type": "listbox"},  # 6, no options: any values
    {"title": "Regions", "type": "multiselect", "options": ["EU", "US"]},  # 7 [8, 9]
    {"title": "Bio", "type": "textarea"},  # 8
    {"title": "Source", "type": "hidden"},  # 9
    {"title": "Note", "type": "text"},  # 10
]
FIELDS_ENTRY = 'Field \'fields\' incorrect format: each entry must be {"id": <field id>, "value": "<string>"}'


def test_get_fields_serves_types_perstags_and_side_loaded_options(make_sim, http):
    sim = make_sim(fields=iter([
        {"title": "Customer tier", "type": "dropdown", "options": ["Gold", "Silver"]},
        {"title": "Signed up (UTC)", "type": "date"},
        {"title": "Interests", "type": "checkbox", "perstag": "HOBBIES", "options": ["a", "b"]},
    ]))
    response = call(http, sim, "GET", "/fields")
    assert response.status_code == 200

    def field(field_id, title, kind, perstag, options):
        return {"id": field_id, "title": title, "type": kind, "perstag": perstag, "descript": None,
                "isrequired": "0", "options": options}

    def option(option_id, field_id, order, value):
        return {"id": option_id, "field": field_id, "orderid": order, "value": value, "label": value,
                "isdefault": "0"}

    assert response.json() == {
        "fields": [field("1", "Customer tier", "dropdown", "CUSTOMER_TIER", ["1", "2"]),
                   field("2", "Signed up (UTC)", "date", "SIGNED_UP__UTC_", []),
                   field("3", "Interests", "checkbox", "HOBBIES", ["3", "4"])],
        "fieldOptions": [option("1", "1", "1", "Gold"), option("2", "1", "2", "Silver"),
                         option("3", "3", "1", "a"), option("4", "3", "2", "b")],
        "fieldRels": [], "meta": {"total": "3"}}
    assert sim.fields() == [
        {"id": "1", "title": "Customer tier", "type": "dropdown", "perstag": "CUSTOMER_TIER",
         "options": ["Gold", "Silver"]},
        {"id": "2", "title": "Signed up (UTC)", "type": "date", "perstag": "SIGNED_UP__UTC_", "options": []},
        {"id": "3", "title": "Interests", "type": "checkbox", "perstag": "HOBBIES", "options": ["a", "b"]}]
    sim.fields()[0]["options"].append("Bronze")  # a copy: the account is not changed
    assert sim.fields()[0]["options"] == ["Gold", "Silver"]


def test_get_fields_pages_like_every_v3_list(make_sim, http):
    sim = make_sim(fields=[{"title": f"F{i}", "type": "dropdown", "options": [f"o{i}"]}
                           for i in range(1, 126)])
    first = call(http, sim, "GET", "/fields").json()
    assert [item["id"] for item in first["fields"]] == [str(i) for i in range(1, 21)]
    assert [item["field"] for item in first["fieldOptions"]] == [str(i) for i in range(1, 21)]
    assert first["meta"]["total"] == "125"
    last = call(http, sim, "GET", "/fields", params={"limit": 20, "offset": 120}).json()
    assert [item["id"] for item in last["fields"]] == ["121", "122", "123", "124", "125"]
    assert [item["value"] for item in last["fieldOptions"]] == ["o121", "o122", "o123", "o124", "o125"]
    capped = call(http, sim, "GET", "/fields", params={"limit": 500}).json()
    assert len(capped["fields"]) == len(capped["fieldOptions"]) == 100
    assert call(http, sim, "GET", "/fields", params={"offset": 200}).json() == {
        "fields": [], "fieldOptions": [], "fieldRels": [], "meta": {"total": "125"}}


def test_get_fields_needs_the_key_and_spends_the_per_account_budget(make_sim, http):
    sim = make_sim(requests_per_second=2, fields=[NOTE_FIELD])
    assert requests.get(f"{sim.base_url}/api/3/fields", timeout=5).status_code == 403
    answers = [call(http, sim, "GET", "/fields") for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 429]
    assert answers[0].headers["RateLimit-Remaining"] == "1"
    stats = sim.stats()
    assert (stats["forbidden"], stats["requests"], stats["throttled_429"]) == (1, 2, 1)


def test_add_and_delete_field_ids_are_never_reused_and_values_are_forgotten(make_sim, http):
    sim = make_sim(fields=[NOTE_FIELD])
    assert sim.add_field("Tier", "radio", options=["Gold", "Silver"]) == "2"
    assert bulk(http, sim, [person("a@example.com", "3", fields=[{"id": 1, "value": "hi"},
                                                                 {"id": "2", "value": "Gold"}])]).ok
    assert sim.contact("a@example.com")["fields"] == {"1": "hi", "2": "Gold"}
    sim.delete_field("2")
    assert sim.contact("a@example.com")["fields"] == {"1": "hi"}
    listed = call(http, sim, "GET", "/fields").json()
    assert [item["id"] for item in listed["fields"]] == ["1"] and listed["fieldOptions"] == []
    refused = bulk(http, sim, [person("a@example.com", "3", fields=[{"id": 2, "value": "Gold"}])])
    assert refused.status_code == 400
    assert refused.json()["failureReasons"] == [{"contact": 0, "failureReason": "Field id 2 does not exist"}]
    assert sim.add_field("Tier", "radio", options=["Gold"]) == "3"  # the title is free again; the id is not
    assert call(http, sim, "GET", "/fields").json()["fieldOptions"] == [
        {"id": "3", "field": "3", "orderid": "1", "value": "Gold", "label": "Gold", "isdefault": "0"}]
    assert sim.contact("a@example.com")["fields"] == {"1": "hi"}
    with pytest.raises(KeyError):
        sim.delete_field("2")


@pytest.mark.parametrize("definition, error", [
    ({"title": "Amount", "type": "number"}, ValueError),
    ({"title": " ", "type": "text"}, ValueError),
    ({"title": "NOTE", "type": "textarea"}, ValueError),  # the title is taken
    ({"title": "Remark", "type": "text", "perstag": "note"}, ValueError),  # the perstag is taken
    ({"title": "Remark", "type": "text", "options": ["a"]}, ValueError),
    ({"title": "Remark", "type": "dropdown", "options": "ab"}, TypeError),
    ({"title": "Remark", "type": "dropdown", "options": ["a", "a"]}, ValueError),
    ({"title": "Remark", "type": "dropdown", "options": [""]}, ValueError),
    ({"title": "Remark", "type": "checkbox", "options": ["a||b"]}, ValueError),
    ({"title": "Remark", "type": "text", "colour": "red"}, TypeError),
])
def test_add_field_refuses_bad_definitions(make_sim, definition, error):
    sim = make_sim(fields=[NOTE_FIELD])
    with pytest.raises(error):
        sim.add_field(**definition)
    with pytest.raises(error):
        ActiveCampaignSimulator(fields=[NOTE_FIELD, definition])
    assert [field["id"] for field in sim.fields()] == ["1"]
    assert sim.add_field("Fresh", "text") == "2"  # a refused definition spends no id


def test_bulk_tags_are_kept_per_contact_as_a_set_and_only_ever_added(sim, http):
    assert bulk(http, sim, [person("a@example.com", "3", tags=["vip", "beta", "vip"]),
                            person("b@example.com", "3")]).ok
    assert bulk(http, sim, [person("A@Example.com", "3", tags=["new"]),
                            person("b@example.com", "3", tags=["x" * 255])]).ok
    assert bulk(http, sim, [person("a@example.com", "3"), person("b@example.com", "3", tags=[])]).ok
    assert sim.contact("a@example.com")["tags"] == ["beta", "new", "vip"]
    assert sim.contact("b@example.com")["tags"] == ["x" * 255]


@pytest.mark.parametrize("tags, reason", [
    ("vip", "Field 'tags' incorrect format"),
    ([""], "Field 'tags' incorrect format"),
    (["  "], "Field 'tags' incorrect format"),
    (["ok", 7], "Field 'tags' incorrect format"),
    ([None], "Field 'tags' incorrect format"),
    ([["vip"]], "Field 'tags' incorrect format"),
    (["ok", "x" * 256], "Field 'tags' incorrect format: a tag is longer than 255 characters"),
])
def test_bulk_tags_must_be_non_empty_strings_of_at_most_255_characters(sim, http, tags, reason):
    response = bulk(http, sim, [person("good@example.com", "3", tags=["ok"]),
                                person("bad@example.com", "3", tags=tags)])
    assert response.status_code == 400
    assert response.json() == {"success": 0, "message": VALIDATION_MESSAGE,
                               "failureReasons": [{"contact": 1, "failureReason": reason}]}
    assert sim.contact("good@example.com") is None and sim.subscribed("3") == set()
    assert sim.stats()["validation_rejections"] == 1


def test_bulk_field_values_are_stored_by_id_and_a_later_import_overwrites(make_sim, http):
    sim = make_sim(fields=FIELDS)
    assert bulk(http, sim, [
        person("a@example.com", "3", fields=[{"id": 1, "value": "Gold"}, {"id": "10", "value": "first"}]),
        person("b@example.com", "3", fields=[{"id": "0010", "value": ""}]),
    ]).ok
    assert sim.contact("a@example.com")["fields"] == {"1": "Gold", "10": "first"}
    assert sim.contact("b@example.com")["fields"] == {}  # "" is no value
    assert bulk(http, sim, [person("a@example.com", "3", fields=[{"id": 10, "value": "second"}]),
                            person("b@example.com", "3")]).ok
    assert sim.contact("a@example.com")["fields"] == {"1": "Gold", "10": "second"}
    assert sim.contact("b@example.com")["fields"] == {}


def _not_option(field, kind, value):
    return f"Field id {field} ({kind}): value {value!r} is not one of the field's options"


def _not_date(value):
    return f"Field id 2 (date): value {value!r} is not a date written YYYY-MM-DD"


def _not_datetime(value):
    return f"Field id 3 (datetime): value {value!r} is not an ISO 8601 date-time"


def _not_multi(field, kind, value):
    return f"Field id {field} ({kind}): value {value!r} is not written ||value||value||"


@pytest.mark.parametrize("field, value, reason", [
    (1, "Gold", None), (1, "Silver", None),
    (1, "gold", _not_option(1, "dropdown", "gold")), (1, "||Gold||", _not_option(1, "dropdown", "||Gold||")),
    (1, "", None),  # "" clears the field: not checked against the options
    (2, "2025-05-19", None), (2, "2024-02-29", None),
    (2, "2025-5-19", _not_date("2025-5-19")), (2, "19/05/2025", _not_date("19/05/2025")),
    (2, "2025-02-30", _not_date("2025-02-30")), (2, "20250519", _not_date("20250519")),
    (2, "2025-05-19T00:00:00", _not_date("2025-05-19T00:00:00")), (2, "", None),
    (3, "2025-05-19T02:45:00-05:00", None), (3, "2025-05-19T02:45:00Z", None),
    (3, "2025-05-19T02:45", None), (3, "2025-05-19T02:45:00.123456+00:00", None),
    (3, "2025-05-19", _not_datetime("2025-05-19")), (3, "2025-05-19 02:45:00", _not_datetime("2025-05-19 02:45:00")),
    (3, "19/05/2025T02:45", _not_datetime("19/05/2025T02:45")), (3, "2025-13-01T00:00", _not_datetime("2025-13-01T00:00")),
    (3, "yesterday", _not_datetime("yesterday")),
    (4, "Pro", None), (4, "Gold", _not_option(4, "radio", "Gold")),
    (5, "||a||", None), (5, "||a||c||", None),
    (5, "a", _not_multi(5, "checkbox", "a")), (5, "a||b", _not_multi(5, "checkbox", "a||b")),
    (5, "||||", _not_multi(5, "checkbox", "||||")), (5, "||a||||b||", _not_multi(5, "checkbox", "||a||||b||")),
    (5, "||a||d||", _not_option(5, "checkbox", "d")), (5, "||a|b||", _not_option(5, "checkbox", "a|b")),
    (6, "||anything||at all||", None), (6, "plain", _not_multi(6, "listbox", "plain")),
    (7, "||EU||US||", None), (7, "||eu||", _not_option(7, "multiselect", "eu")),
    (8, "two\nlines", None), (9, "x", None), (10, "", None), (10, "2025-05-19 or so", None),
])
def test_bulk_field_values_must_fit_the_field_type(make_sim, http, field, value, reason):
    sim = make_sim(fields=FIELDS)
    response = bulk(http, sim, [person("good@example.com", "3", fields=[{"id": 10, "value": "ok"}]),
                                person("case@example.com", "3", fields=[{"id": field, "value": value}])])
    if reason is None:
        assert response.status_code == 200, response.json()
        assert sim.contact("case@example.com")["fields"] == ({str(field): value} if value else {})
    else:
        assert response.status_code == 400
        assert response.json() == {"success": 0, "message": VALIDATION_MESSAGE,
                                   "failureReasons": [{"contact": 1, "failureReason": reason}]}
        assert sim.contact("good@example.com") is None and sim.stats()["bulk_accepted"] == 0


def test_an_empty_field_value_clears_the_field_whatever_its_type(make_sim, http):
    sim = make_sim(fields=FIELDS)
    values = {1: "Gold", 2: "2025-05-19", 3: "2025-05-19T02:45:00Z", 4: "Pro", 5: "||a||", 6: "||x||",
              7: "||EU||", 8: "text", 9: "hidden", 10: "note"}
    assert bulk(http, sim, [person("a@example.com", "3", fields=[{"id": f, "value": v} for f, v in values.items()]),
                            person("b@example.com", "3", fields=[{"id": 10, "value": "keep"}])]).ok
    assert sim.contact("a@example.com")["fields"] == {str(f): v for f, v in values.items()}
    cleared = bulk(http, sim, [
        person("a@example.com", "3", fields=[{"id": f, "value": ""} for f in range(1, 10)]),
        person("b@example.com", "3", fields=[{"id": 1, "value": ""}]),  # no value to clear: fine
        person("c@example.com", "3", fields=[{"id": "2", "value": ""}]),  # a new contact
    ])
    assert cleared.status_code == 200, cleared.json()
    assert sim.contact("a@example.com")["fields"] == {"10": "note"}
    assert sim.contact("b@example.com")["fields"] == {"10": "keep"}
    assert sim.contact("c@example.com")["fields"] == {}
    # Only "" is no value: a blank is a value like any other, checked against the type.
    blank = bulk(http, sim, [person("b@example.com", "3", fields=[{"id": 1, "value": " "}])])
    assert blank.status_code == 400
    assert blank.json()["failureReasons"] == [{"contact": 0, "failureReason": _not_option(1, "dropdown", " ")}]
    unknown = bulk(http, sim, [person("b@example.com", "3", fields=[{"id": 99, "value": ""}])])
    assert unknown.json()["failureReasons"] == [{"contact": 0, "failureReason": "Field id 99 does not exist"}]
    twice = bulk(http, sim, [person("b@example.com", "3", fields=[{"id": 10, "value": ""}, {"id": "10", "value": ""}])])
    assert twice.json()["failureReasons"] == [{"contact": 0, "failureReason": "Field id 10 is given more than once"}]
    # A contact that fails, or a refused request, clears nothing.
    sim.configure(fail_import_emails={"b@example.com"})
    assert bulk(http, sim, [person("b@example.com", "3", fields=[{"id": 10, "value": ""}]),
                            person("a@example.com", "3", fields=[{"id": 10, "value": ""}])]).ok
    assert sim.contact("b@example.com")["fields"] == {"10": "keep"}
    assert sim.contact("a@example.com")["fields"] == {}


@pytest.mark.parametrize("fields, reason", [
    ({"id": 10, "value": "x"}, "Field 'fields' incorrect format: must be a list"),
    (["x"], FIELDS_ENTRY), ([{"id": 10}], FIELDS_ENTRY), ([{"value": "x"}], FIELDS_ENTRY),
    ([{"id": 10, "value": "x", "field": 10}], FIELDS_ENTRY),
    ([{"id": True, "value": "x"}], "Field 'fields' incorrect format: id True is not a field id"),
    ([{"id": 1.0, "value": "x"}], "Field 'fields' incorrect format: id 1.0 is not a field id"),
    ([{"id": "ten", "value": "x"}], "Field 'fields' incorrect format: id 'ten' is not a field id"),
    ([{"id": " 10", "value": "x"}], "Field 'fields' incorrect format: id ' 10' is not a field id"),
    ([{"id": "", "value": "x"}], "Field 'fields' incorrect format: id '' is not a field id"),
    ([{"id": 10, "value": 5}], "Field 'fields' incorrect format: the value of field id 10 must be a string"),
    ([{"id": "10", "value": None}], "Field 'fields' incorrect format: the value of field id 10 must be a string"),
    ([{"id": 99, "value": "x"}], "Field id 99 does not exist"),
    ([{"id": "99", "value": "x"}], "Field id 99 does not exist"),
    ([{"id": 0, "value": "x"}], "Field id 0 does not exist"),
    ([{"id": 10, "value": "x"}, {"id": "10", "value": "y"}], "Field id 10 is given more than once"),
])
def test_bulk_field_entries_must_be_id_value_objects_naming_existing_fields(make_sim, http, fields, reason):
    sim = make_sim(fields=FIELDS)
    response = bulk(http, sim, [person("good@example.com", "3"),
                                person("bad@example.com", "3", fields=fields)])
    assert response.status_code == 400
    assert response.json() == {"success": 0, "message": VALIDATION_MESSAGE,
                               "failureReasons": [{"contact": 1, "failureReason": reason}]}
    assert sim.contact("good@example.com") is None and sim.contact("bad@example.com") is None


def test_exclude_automations_is_counted_per_applied_contact(make_sim, http):
    sim = make_sim(import_processing_seconds=0, fail_import_emails={"fails@example.com"})
    assert bulk(http, sim, [
        person("quiet@example.com", "3", exclude_automations=True),
        person("loud@example.com", "3", exclude_automations=False),
        person("plain@example.com", "3"),
        person("fails@example.com", "3", exclude_automations=True),  # never applied: not counted
    ]).ok

    def counted():
        stats = sim.stats()
        return stats["automations_started"], stats["automations_excluded"]

    assert counted() == (2, 1)
    # Still accepted at the top level, but only the per-contact flag (where the docs put it) counts.
    assert bulk(http, sim, [person("a@example.com", "3"), person("b@example.com", "3")],
                exclude_automations=True).ok
    assert counted() == (4, 1)
    refused = bulk(http, sim, [person("c@example.com", "3"),
                               person("d@example.com", "3", exclude_automations="true")])
    assert refused.status_code == 400
    assert refused.json()["failureReasons"] == [
        {"contact": 1, "failureReason": "Field 'exclude_automations' incorrect format"}]
    assert counted() == (4, 1)
    sim.reset_stats()
    assert counted() == (0, 0)


def test_failed_import_contacts_get_neither_tags_nor_field_values(make_sim, http):
    sim = make_sim(import_processing_seconds=0, fields=FIELDS)
    assert bulk(http, sim, [person("known@example.com", "3", tags=["old"],
                                   fields=[{"id": 10, "value": "old"}])]).ok
    sim.configure(fail_import_emails={"known@example.com", "new@example.com"})
    new_values = {"tags": ["new"], "fields": [{"id": 10, "value": "new"}, {"id": 1, "value": "Gold"}]}
    batch = bulk(http, sim, [person("known@example.com", "3", exclude_automations=True, **new_values),
                             person("new@example.com", "3", **new_values),
                             person("ok@example.com", "3", **new_values)]).json()
    assert sorted(import_info(http, sim, batch["batchId"])["failure"]) == ["known@example.com", "new@example.com"]
    known, ok = sim.contact("known@example.com"), sim.contact("ok@example.com")
    assert (known["tags"], known["fields"]) == (["old"], {"10": "old"})
    assert sim.contact("new@example.com") is None
    assert (ok["tags"], ok["fields"]) == (["new"], {"10": "new", "1": "Gold"})
    # Every contact of a failed batch is left as it was too.
    sim.configure(fail_import_emails=None, fail_import_batches=1)
    later = {"tags": ["later"], "fields": [{"id": 10, "value": "later"}]}
    batch = bulk(http, sim, [person("known@example.com", "3", **later),
                             person("ok@example.com", "3", **later)]).json()
    assert import_info(http, sim, batch["batchId"])["status"] == "failed"
    known, ok = sim.contact("known@example.com"), sim.contact("ok@example.com")
    assert (known["tags"], known["fields"]) == (["old"], {"10": "old"})
    assert (ok["tags"], ok["fields"]) == (["new"], {"10": "new", "1": "Gold"})
    stats = sim.stats()
    assert (stats["automations_started"], stats["automations_excluded"]) == (2, 0)


# ---- asynchronous import outcomes ----------------------------------------------------------------

def test_import_info_is_false_then_waiting_active_then_completed(make_sim, http):
    sim = make_sim(import_processing_seconds=0.3, fail_import_emails={"late@example.com"})
    posted_before = time.monotonic()
    batch = bulk(http, sim, [person("a@example.com", "3"), person("late@example.com", "3")]).json()
    assert batch["queued_contacts"] == 2  # the failing contact is queued like any other
    first = import_info(http, sim, batch["batchId"])
    assert first == {"status": False, "success": [], "failure": []}
    # Nothing is reported failed before the batch is processed.
    assert sim.failed_emails() == set() and sim.stats()["contacts_failed"] == 0
    assert sim.batch(batch["batchId"])["status"] is False
    seen, final, when, calls = poll_until_processed(http, sim, batch["batchId"])
    assert seen == [False, "waiting", "active", "completed"]
    assert when - posted_before >= 0.3
    assert final == {"status": "completed", "success": [sim.contact("a@example.com")["id"]],
                     "failure": ["late@example.com"]}
    assert sim.failed_emails() == {"late@example.com"}
    record = sim.batch(batch["batchId"])
    assert record["status"] == record["outcome"] == "completed"
    assert record["failure"] == ["late@example.com"] and record["queued_contacts"] == 2
    assert sim.batch("no-such-batch") is None
    stats = sim.stats()
    assert stats["contacts_failed"] == 1 and stats["batches_failed"] == 0
    assert stats["import_info_requests"] == 1 + calls  # sim.batch() is not an API request


def test_import_failure_rate_is_seeded_and_failed_contacts_are_not_applied(make_sim, http):
    contacts = [person(f"u{i}@example.com", "3", tags=["t"]) for i in range(200)]

    def run(seed):
        sim = make_sim(import_failure_rate=0.3, seed=seed, import_processing_seconds=0)
        batch = bulk(http, sim, contacts).json()
        assert batch["queued_contacts"] == 200
        return sim, import_info(http, sim, batch["batchId"])

    sim, info = run(11)
    failed = set(info["failure"])
    assert len(failed) == len(info["failure"])
    assert 0.2 * 200 < len(failed) < 0.4 * 200
    applied = {c["email"] for c in contacts} - failed
    assert sim.subscribed("3") == applied
    assert all(sim.contact(email) is None for email in failed)
    assert sorted(info["success"]) == sorted(sim.contact(email)["id"] for email in applied)
    assert sim.failed_emails() == failed
    stats = sim.stats()
    assert stats["contacts_failed"] == len(failed) and stats["contacts_created"] == len(applied)
    assert run(11)[1]["failure"] == info["failure"]  # same seed, same failures
    assert run(12)[1]["failure"] != info["failure"]


def test_fail_import_emails_are_reported_failed_and_not_applied(make_sim, http):
    sim = make_sim(import_processing_seconds=0, fields=[NOTE_FIELD])
    assert bulk(http, sim, [person("bad@example.com", "4", first_name="Old")]).ok
    sim.fail_import_emails = {"BAD@example.com"}
    batch = bulk(http, sim, [
        person("ok@example.com", "3"),
        person("Bad@Example.com", "3", first_name="New", tags=["vip"], fields=[{"id": 1, "value": "x"}]),
    ]).json()
    assert batch["queued_contacts"] == 2
    info = import_info(http, sim, batch["batchId"])
    assert info == {"status": "completed", "success": [sim.contact("ok@example.com")["id"]],
                    "failure": ["Bad@Example.com"]}
    bad = sim.contact("bad@example.com")
    assert (bad["first_name"], bad["tags"], bad["fields"]) == ("Old", [], {})
    assert bad["lists"] == {"4": "subscribed"}
    sim.configure(fail_import_emails=lambda email: email.endswith("@example.net"))
    info = import_info(http, sim, bulk(http, sim, [person("n@example.net", "3"),
                                                   person("bad@example.com", "3")]).json()["batchId"])
    assert info["failure"] == ["n@example.net"]
    assert sim.contact("n@example.net") is None and "bad@example.com" in sim.subscribed("3")
    assert sim.failed_emails() == {"bad@example.com", "n@example.net"}
    assert sim.stats()["contacts_failed"] == 2


def test_fail_import_batches_end_failed_and_apply_nothing(make_sim, http):
    sim = make_sim(fail_import_batches=1, import_processing_seconds=0.2)
    failing = bulk(http, sim, [person("a@example.com", "3", tags=["x"]),
                               person("b@example.com", "4")])
    assert failing.status_code == 200 and failing.json()["queued_contacts"] == 2
    record = sim.batch(failing.json()["batchId"])
    assert record["status"] is False and record["outcome"] == "failed"
    assert sim.fail_import_batches == 0
    _, final, _, _ = poll_until_processed(http, sim, failing.json()["batchId"])
    assert final == {"status": "failed", "success": [], "failure": []}
    assert sim.contact("a@example.com") is None and sim.contact("b@example.com") is None
    assert sim.subscribed("3") == sim.subscribed("4") == set()
    second = bulk(http, sim, [person("a@example.com", "3")]).json()
    _, final, _, _ = poll_until_processed(http, sim, second["batchId"])
    assert final["status"] == "completed" and sim.subscribed("3") == {"a@example.com"}
    stats = sim.stats()
    assert (stats["batches_failed"], stats["bulk_accepted"], stats["contacts_failed"]) == (1, 2, 0)


def test_import_info_without_a_key_is_403(make_sim, http):
    sim = make_sim(import_processing_seconds=0)
    batch_id = bulk(http, sim, [person("a@example.com", "3")] * 2).json()["batchId"]
    url = f"{sim.base_url}/api/3/import/info"
    assert requests.get(url, params={"batchId": batch_id}, timeout=5).status_code == 403
    assert requests.get(url, params={"batchId": batch_id}, headers={"Api-Token": "nope"},
                        timeout=5).status_code == 403
    stats = sim.stats()
    assert (stats["forbidden"], stats["import_info_requests"], stats["requests"]) == (2, 0, 1)
    assert import_info(http, sim, batch_id)["status"] == "completed"


def test_import_info_spends_the_per_account_budget(make_sim, http):
    sim = make_sim(requests_per_second=5)
    batch_id = bulk(http, sim, [person("a@example.com", "3")] * 2).json()["batchId"]
    answers = [call(http, sim, "GET", "/import/info", params={"batchId": batch_id})
               for _ in range(5)]
    assert [r.status_code for r in answers] == [200, 200, 200, 200, 429]
    assert [r.headers["RateLimit-Remaining"] for r in answers[:4]] == ["3", "2", "1", "0"]
    assert int(answers[-1].headers["Retry-After"]) >= 1
    stats = sim.stats()
    assert (stats["requests"], stats["import_info_requests"], stats["throttled_429"]) == (5, 4, 1)


def test_import_settings_are_configurable_and_checked(make_sim):
    sim = make_sim()
    assert sim.import_processing_seconds == 0.3 and sim.import_failure_rate == 0.0
    assert sim.fail_import_batches == 0 and sim.fail_import_emails is None
    sim.configure(import_processing_seconds=0, import_failure_rate=0.5, fail_import_batches=2,
                  fail_import_emails=["x@example.com"])
    assert (sim.import_processing_seconds, sim.import_failure_rate, sim.fail_import_batches) == (
        0, 0.5, 2)
    assert sim.fail_import_emails == ["x@example.com"]
    for bad in ({"import_failure_rate": 1.5}, {"import_processing_seconds": -1},
                {"fail_import_batches": -1}):
        with pytest.raises(ValueError):
            sim.configure(**bad)
        with pytest.raises(ValueError):
            ActiveCampaignSimulator(**bad)
    assert sim.import_failure_rate == 0.5  # a refused setting changes nothing


def test_bulk_rejects_251_and_0_contacts_and_counts_them(sim, http):
    too_many = bulk(http, sim, [person(f"u{i}@example.com", "3") for i in range(251)])
    empty = bulk(http, sim, [])
    assert too_many.status_code == empty.status_code == 400
    assert "documented bulk_import limits" in too_many.json()["message"]
    assert sim.stats()["oversize_rejections"] == 2
    assert sim.subscribed("3") == set() and sim.contact("u0@example.com") is None
    assert bulk(http, sim, [person(f"u{i}@example.com", "3") for i in range(250)]).status_code == 200


def test_bulk_rejects_bodies_over_400000_bytes_but_accepts_just_under(sim, http):
    def contacts(name_length):
        return [person(f"u{i}@example.com", "3", first_name="x" * name_length) for i in range(250)]

    def size(items):
        return len(json.dumps({"contacts": items}).encode())

    over = contacts(1600)
    assert size(over) > 400_000
    response = bulk(http, sim, over)
    assert response.status_code == 400 and "400,000 bytes" in response.json()["message"]
    assert sim.stats()["oversize_rejections"] == 1 and sim.contact("u0@example.com") is None
    under = contacts(1500)
    assert size(under) <= 400_000
    assert bulk(http, sim, under).status_code == 200


def test_one_invalid_row_rejects_the_whole_batch_with_every_bad_index(sim, http):
    response = bulk(http, sim, [
        person("good@example.com", "3"),
        person("no-at-sign.example.com", "3"),
        person("also.good@example.com", "3"),
        person("two..dots@example.com", "3"),
        person("nodomain@localhost", "3"),
    ])
    assert response.status_code == 400
    body = response.json()
    assert body["success"] == 0 and body["message"] == VALIDATION_MESSAGE
    assert body["failureReasons"] == [
        {"contact": index, "failureReason": "Field 'email' incorrect format"} for index in (1, 3, 4)]
    assert sim.contact("good@example.com") is None and sim.subscribed("3") == set()
    assert sim.stats()["validation_rejections"] == 1 and sim.stats()["bulk_accepted"] == 0


@pytest.mark.parametrize("email, valid", [
    ("a@example.com", True), ("first.last+tag@sub-domain.example.co.uk", True),
    ("", False), ("a@b", False), ("a@@example.com", False), ("a b@example.com", False),
    ("@example.com", False), ("a@exa mple.com", False), ("a@example..com", False),
    ("a..b@example.com", False), ("é@example.com", False), ("a@exam_ple.com", False),
    ("a@example.com.", False), (None, False),
])
def test_email_check(email, valid):
    assert is_valid_email(email) is valid


def test_reject_emails_set_and_callable_reject_the_whole_batch(make_sim, http):
    sim = make_sim(reject_emails={"Blocked@Example.com"})
    response = bulk(http, sim, [person("ok@example.com", "3"), person("blocked@example.com", "3")])
    assert response.status_code == 400
    assert [r["contact"] for r in response.json()["failureReasons"]] == [1]
    sim.configure(reject_emails=lambda email: email.endswith("@example.net"))
    response = bulk(http, sim, [person("x@example.net", "3"), person("blocked@example.com", "3")])
    assert [r["contact"] for r in response.json()["failureReasons"]] == [0]
    assert sim.contact("ok@example.com") is None


def test_unknown_camel_case_field_is_a_validation_failure(sim, http):
    response = bulk(http, sim, [{"email": "a@example.com", "firstName": "Ada"}])
    assert response.status_code == 400
    assert response.json()["failureReasons"] == [
        {"contact": 0, "failureReason": "Field 'firstName' is not a recognised contact field"}]
    assert sim.contact("a@example.com") is None


def test_malformed_bulk_bodies_are_400(sim, http):
    not_json = call(http, sim, "POST", "/import/bulk_import", data=b"{nope",
                    headers={"Content-Type": "application/json"})
    not_a_list = call(http, sim, "POST", "/import/bulk_import", json={"contacts": {"email": "a@b.co"}})
    assert not_json.status_code == not_a_list.status_code == 400
    assert sim.stats()["malformed_rejections"] == 2


def test_subscribing_to_an_unknown_list_is_404_and_applies_nothing(sim, http):
    response = bulk(http, sim, [person("a@example.com", "3"), person("b@example.com", "99")])
    assert response.status_code == 404
    assert response.json() == {"message": "No Result found for _List with id 99"}
    assert sim.contact("a@example.com") is None


def test_unsubscribed_contact_is_not_resubscribed_by_bulk_but_is_by_contact_lists(sim, http):
    sim.unsubscribe("Gone@Example.com", "3")
    assert bulk(http, sim, [person("gone@example.com", "3", "4")]).status_code == 200
    assert "gone@example.com" not in sim.subscribed("3")
    assert "gone@example.com" in sim.subscribed("4")
    assert sim.contact("gone@example.com")["lists"] == {"3": "unsubscribed", "4": "subscribed"}
    assert sim.stats()["resubscribe_skipped"] == 1
    contact_id = sim.contact("gone@example.com")["id"]
    response = call(http, sim, "POST", "/contactLists",
                    json={"contactList": {"list": 3, "contact": int(contact_id), "status": 1}})
    assert response.status_code == 200
    assert response.json()["contactList"]["status"] == "1"
    assert response.json()["contacts"][0]["email"] == "gone@example.com"
    assert "gone@example.com" in sim.subscribed("3")


def test_bulk_unsubscribe_entries_are_applied(sim, http):
    bulk(http, sim, [person("a@example.com", "3")])
    bulk(http, sim, [{"email": "a@example.com", "unsubscribe": [{"listid": "3"}]}])
    assert sim.subscribed("3") == set()
    assert requests.get(f"{sim.base_url}/__sim/lists/3", timeout=5).json()["unsubscribed"] == [
        "a@example.com"]


# ---- contact/sync and contactLists -------------------------------------------------------------

def test_contact_sync_creates_then_updates_and_rejects_bad_email(sim, http):
    created = call(http, sim, "POST", "/contact/sync",
                   json={"contact": {"email": "c@example.com", "firstName": "Cy"}})
    assert created.status_code == 201
    assert created.json()["contact"]["firstName"] == "Cy" and created.json()["fieldValues"] == []
    updated = call(http, sim, "POST", "/contact/sync",
                   json={"contact": {"email": "C@example.com", "lastName": "Press"}})
    assert updated.status_code == 200
    assert updated.json()["contact"]["id"] == created.json()["contact"]["id"]
    assert sim.contact("c@example.com")["last_name"] == "Press"
    invalid = call(http, sim, "POST", "/contact/sync", json={"contact": {"email": "not-an-email"}})
    assert invalid.status_code == 422
    assert invalid.json()["errors"][0]["source"] == {"pointer": "/data/attributes/email"}


def test_contact_lists_subscribe_unsubscribe_and_404s(sim, http):
    contact_id = call(http, sim, "POST", "/contact/sync",
                      json={"contact": {"email": "d@example.com"}}).json()["contact"]["id"]
    subscribe = {"contactList": {"list": "4", "contact": contact_id, "status": 1}}
    assert call(http, sim, "POST", "/contactLists", json=subscribe).status_code == 201
    assert sim.subscribed("4") == {"d@example.com"}
    subscribe["contactList"]["status"] = 2
    assert call(http, sim, "POST", "/contactLists", json=subscribe).status_code == 200
    assert sim.subscribed("4") == set()
    unknown_list = {"contactList": {"list": "9", "contact": contact_id, "status": 1}}
    unknown_contact = {"contactList": {"list": "4", "contact": "999", "status": 1}}
    assert call(http, sim, "POST", "/contactLists", json=unknown_list).status_code == 404
    assert call(http, sim, "POST", "/contactLists", json=unknown_contact).status_code == 404


# ---- list memberships, unsubscribes, GET /contacts and contactLists ---------------------------

T0 = "2024-05-31T14:30:00+00:00"
T1 = "2024-05-31T14:31:00+00:00"  # T0 + 60 s
T2 = "2024-05-31T14:32:00+00:00"  # T0 + 120 s


class Clock:
    """A wall clock the test moves by hand, starting at T0."""

    def __init__(self, when=T0):
        self.now = datetime.datetime.fromisoformat(when)

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += datetime.timedelta(seconds=seconds)


def membership(contact_id, list_id, member_id, status, sdate, *, udate=None, unsubreason=None,
               campaign=None, message=None, sourceid="0", updated_by=None, first_name="", last_name=""):
    """A membership as GET /api/3/contacts/{id}/contactLists reports it."""
    return {"contact": contact_id, "list": list_id, "form": None, "seriesid": "0", "sdate": sdate,
            "udate": udate, "status": status, "responder": "1", "sync": "0", "unsubreason": unsubreason,
            "campaign": campaign, "message": message, "first_name": first_name, "last_name": last_name,
            "sourceid": sourceid, "created_by": None, "updated_by": updated_by,
            "unsubscribeAutomation": None, "automation": None, "id": member_id}


def strings_or_null(item):
    return all(value is None or isinstance(value, str) for value in item.values())


def test_bulk_subscribe_records_an_active_membership_with_its_details(make_sim, http):
    clock = Clock()
    sim = make_sim(clock=clock)
    assert bulk(http, sim, [person("Ada@Example.com", "3", first_name="Ada", last_name="Lovelace")]).ok
    ada = sim.contact("ada@example.com")
    assert (ada["cdate"], ada["udate"]) == (T0, T0)
    expected_3 = membership(ada["id"], "3", "1", "1", T0, first_name="Ada", last_name="Lovelace")
    assert sim.memberships("ADA@example.com") == {"3": expected_3}
    assert strings_or_null(expected_3)
    clock.advance(60)
    assert bulk(http, sim, [person("ada@example.com", "3", "4")]).ok
    # An active membership is left as it was: its sdate is the first subscribe's.
    assert sim.memberships("ada@example.com") == {
        "3": expected_3, "4": membership(ada["id"], "4", "2", "1", T1, first_name="Ada", last_name="Lovelace")}
    assert sim.contact("ada@example.com")["udate"] == T1 and sim.contact("ada@example.com")["cdate"] == T0
    assert sim.contact("ada@example.com")["lists"] == {"3": "subscribed", "4": "subscribed"}
    assert sim.memberships("nobody@example.com") == {}


def test_bulk_unsubscribe_sets_status_2_and_udate_and_leaves_campaign_and_message_null(make_sim, http):
    clock = Clock()
    sim = make_sim(clock=clock)
    assert bulk(http, sim, [person("a@example.com", "3")]).ok
    contact_id = sim.contact("a@example.com")["id"]
    clock.advance(60)
    # "4": not on the list; "Fresh": not even a contact yet. Both get an unsubscribed membership.
    assert bulk(http, sim, [{"email": "a@example.com", "unsubscribe": [{"listid": "3"}, {"listid": 4}]},
                            {"email": "Fresh@Example.com", "unsubscribe": [{"listid": "3"}]}]).ok
    unsubscribed = {"3": membership(contact_id, "3", "1", "2", T0, udate=T1),
                    "4": membership(contact_id, "4", "2", "2", None, udate=T1)}
    assert sim.memberships("a@example.com") == unsubscribed
    fresh_id = sim.contact("fresh@example.com")["id"]
    assert sim.memberships("fresh@example.com") == {"3": membership(fresh_id, "3", "3", "2", None, udate=T1)}
    assert sim.unsubscribed("3") == {"a@example.com", "fresh@example.com"} and sim.subscribed("3") == set()
    assert sim.stats()["unsubscribed_by_import"] == 3
    clock.advance(60)
    # No re-subscribing by import; unsubscribing again changes nothing either (udate kept).
    assert bulk(http, sim, [person("a@example.com", "3", "4"), person("fresh@example.com", "3")]).ok
    assert bulk(http, sim, [{"email": "a@example.com", "unsubscribe": [{"listid": "3"}]}] * 2).ok
    assert sim.memberships("a@example.com") == unsubscribed
    stats = sim.stats()
    assert (stats["resubscribe_skipped"], stats["unsubscribed_by_import"]) == (3, 3)


def test_a_person_unsubscribes_from_a_link_a_form_or_through_an_activecampaign_user(make_sim, http):
    clock = Clock()
    sim = make_sim(clock=clock)
    emails = ["link@example.com", "plain@example.com", "form@example.com", "user@example.com"]
    assert bulk(http, sim, [person(email, "3") for email in emails]).ok
    ids = {email: sim.contact(email)["id"] for email in emails}
    clock.advance(60)
    sim.unsubscribe("Link@Example.com", "3", reason="Too many emails")
    sim.unsubscribe("plain@example.com", "3")  # the original call: from a link, no reason
    sim.unsubscribe("form@example.com", 3, via="form", reason="Not interested")
    sim.unsubscribe("user@example.com", "3", via="user")
    assert {email: sim.memberships(email)["3"] for email in emails} == {
        "link@example.com": membership(ids["link@example.com"], "3", "1", "2", T0, udate=T1,
                                       unsubreason="Too many emails", campaign="1", message="1"),
        "plain@example.com": membership(ids["plain@example.com"], "3", "2", "2", T0, udate=T1,
                                        campaign="2", message="2"),
        "form@example.com": membership(ids["form@example.com"], "3", "3", "2", T0, udate=T1,
                                       unsubreason="Not interested"),
        "user@example.com": membership(ids["user@example.com"], "3", "4", "2", T0, udate=T1,
                                       updated_by="simulator"),
    }
    assert sim.unsubscribed("3") == set(emails)
    # Someone not yet a contact nor on the list: both are recorded, never subscribed (sdate null).
    sim.unsubscribe("new@example.com", "4", via="form")
    assert sim.memberships("new@example.com") == {
        "4": membership(sim.contact("new@example.com")["id"], "4", "5", "2", None, udate=T1)}
    with pytest.raises(ValueError):
        sim.unsubscribe("link@example.com", "3", via="email")
    with pytest.raises(KeyError):
        sim.unsubscribe("link@example.com", "99")
    assert sim.memberships("link@example.com")["3"]["campaign"] == "1"  # refused calls change nothing


def test_add_from_other_source_is_an_active_membership_with_another_sourceid_counted_nowhere(make_sim, http):
    clock = Clock()
    sim = make_sim(clock=clock, import_processing_seconds=0)
    sim.add_from_other_source("Shop@Example.com", "4", first_name="Sho", phone="+1 555")
    shop = sim.contact("shop@example.com")
    assert (shop["first_name"], shop["phone"], shop["lists"]) == ("Sho", "+1 555", {"4": "subscribed"})
    assert sim.memberships("shop@example.com") == {
        "4": membership(shop["id"], "4", "1", "1", T0, sourceid="1", first_name="Sho")}
    assert {key: value for key, value in sim.stats().items() if key in STAT_KEYS and value} == {}
    # Another integration re-subscribes someone who unsubscribed (as POST /contactLists would).
    clock.advance(60)
    sim.unsubscribe("shop@example.com", "4")
    clock.advance(60)
    sim.add_from_other_source("shop@example.com", "4")
    assert sim.memberships("shop@example.com")["4"] == membership(
        shop["id"], "4", "1", "1", T2, sourceid="1", first_name="Sho")
    # This app's import keeps that membership as it is and creates its own on list 3.
    batch = bulk(http, sim, [person("shop@example.com", "3", "4"), person("x@example.com", "3")]).json()
    assert import_info(http, sim, batch["batchId"])["success"] == [sim.contact("x@example.com")["id"]]
    assert {list_id: item["sourceid"] for list_id, item in sim.memberships("shop@example.com").items()} == {
        "4": "1", "3": "0"}
    assert sim.memberships("shop@example.com")["4"]["sdate"] == T2
    assert sim.stats()["contacts_created"] == 1  # x only: shop came from elsewhere
    for bad, error in (({"email": "not-an-email", "list_id": "4"}, ValueError),
                       ({"email": "a@example.com", "list_id": "99"}, KeyError),
                       ({"email": "a@example.com", "list_id": "4", "firstName": "A"}, TypeError),
                       ({"email": "a@example.com", "list_id": "4", "phone": 5}, TypeError)):
        with pytest.raises(error):
            sim.add_from_other_source(**bad)
    assert sim.contact("a@example.com") is None


def test_contact_lists_post_updates_the_same_membership_records(make_sim, http):
    clock = Clock()
    sim = make_sim(clock=clock)
    contact_id = call(http, sim, "POST", "/contact/sync", json={"contact": {
        "email": "d@example.com", "firstName": "Di"}}).json()["contact"]["id"]
    entry = {"list": 4, "contact": int(contact_id), "status": 1}
    created = call(http, sim, "POST", "/contactLists", json={"contactList": entry})
    assert created.status_code == 201
    active = membership(contact_id, "4", "1", "1", T0, first_name="Di")
    assert created.json()["contactList"] == active and sim.memberships("d@example.com") == {"4": active}
    clock.advance(60)
    dropped = call(http, sim, "POST", "/contactLists", json={"contactList": dict(entry, status="2")})
    assert dropped.status_code == 200
    assert dropped.json()["contactList"] == membership(contact_id, "4", "1", "2", T0, udate=T1, first_name="Di")
    sim.unsubscribe("d@example.com", "4", reason="Bored")  # then the person clicks a link too
    clock.advance(60)
    # Status 1 re-subscribes even someone who unsubscribed themselves (FACTS), sourceid as given.
    back = call(http, sim, "POST", "/contactLists", json={"contactList": dict(entry, sourceid=4)})
    assert back.status_code == 200
    resubscribed = membership(contact_id, "4", "1", "1", T2, sourceid="4", first_name="Di")
    assert back.json()["contactList"] == resubscribed and sim.memberships("d@example.com") == {"4": resubscribed}
    assert sim.subscribed("4") == {"d@example.com"} and sim.stats()["resubscribed_by_api"] == 1
    again = call(http, sim, "POST", "/contactLists", json={"contactList": dict(entry, sourceid="9")})
    assert again.status_code == 200 and again.json()["contactList"] == resubscribed  # already active
    bad = call(http, sim, "POST", "/contactLists", json={"contactList": dict(entry, sourceid="four")})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["source"] == {"pointer": "/data/attributes/sourceid"}
    assert sim.memberships("d@example.com") == {"4": resubscribed}
    assert sim.stats()["resubscribed_by_api"] == 1


def test_get_contacts_by_email_is_an_exact_case_insensitive_match(make_sim, http):
    clock = Clock()
    sim = make_sim(clock=clock)
    assert bulk(http, sim, [person("Ada@Example.com", "3", first_name="Ada", last_name="L", phone="12"),
                            person("bob@example.com", "3")]).ok
    ada, bob = sim.contact("ada@example.com"), sim.contact("bob@example.com")
    found = call(http, sim, "GET", "/contacts", params={"email": "ADA@example.COM"})
    assert found.status_code == 200
    v3_ada = {"id": ada["id"], "email": "ada@example.com", "firstName": "Ada", "lastName": "L",
              "phone": "12", "orgid": "0", "cdate": T0, "udate": T0, "deleted": "0", "anonymized": "0"}
    assert found.json() == {"contacts": [v3_ada], "meta": {"total": "1"}}
    for email in ("ada@example.co", "da@example.com", " ada@example.com", "ada", "", "nobody@example.com"):
        none = call(http, sim, "GET", "/contacts", params={"email": email})
        assert none.status_code == 200
        assert none.json() == {"contacts": [], "meta": {"total": "0"}}, email
    everyone = call(http, sim, "GET", "/contacts").json()
    assert [c["email"] for c in everyone["contacts"]] == ["ada@example.com", "bob@example.com"]
    assert everyone["meta"]["total"] == "2" and everyone["contacts"][0] == v3_ada
    second = call(http, sim, "GET", "/contacts", params={"limit": 1, "offset": 1}).json()
    assert second == {"contacts": [dict(v3_ada, id=bob["id"], email="bob@example.com", firstName="",
                                        lastName="", phone="")], "meta": {"total": "2"}}
    assert sim.stats()["contact_search_requests"] == 9


def test_get_contact_lists_answers_every_membership_of_the_contact_or_404(make_sim, http):
    clock = Clock()
    sim = make_sim(clock=clock)
    assert bulk(http, sim, [person("a@example.com", "4"), person("b@example.com", "3")]).ok
    assert bulk(http, sim, [person("a@example.com", "3")]).ok
    clock.advance(60)
    sim.unsubscribe("a@example.com", "4", reason="Too many")
    contact_id = sim.contact("a@example.com")["id"]
    response = call(http, sim, "GET", f"/contacts/{contact_id}/contactLists")
    assert response.status_code == 200
    items = response.json()["contactLists"]
    assert items == [membership(contact_id, "4", "1", "2", T0, udate=T1, unsubreason="Too many",
                                campaign="1", message="1"),
                     membership(contact_id, "3", "3", "1", T0)]  # in membership id order
    assert all(strings_or_null(item) for item in items)
    assert {item["list"]: item for item in items} == sim.memberships("a@example.com")
    lonely = call(http, sim, "POST", "/contact/sync", json={"contact": {"email": "l@example.com"}})
    lonely_id = lonely.json()["contact"]["id"]
    assert call(http, sim, "GET", f"/contacts/{lonely_id}/contactLists").json() == {"contactLists": []}
    missing = call(http, sim, "GET", "/contacts/99/contactLists")
    assert missing.status_code == 404
    assert missing.json() == {"message": "No Result found for Subscriber with id 99"}
    stats = sim.stats()
    assert (stats["contact_lists_requests"], stats["not_found"]) == (2, 1)


def test_contact_reads_need_the_key_and_spend_the_per_account_budget(make_sim, http):
    sim = make_sim(requests_per_second=2)
    sim.add_from_other_source("a@example.com", "3")  # not an API request
    contact_id = sim.contact("a@example.com")["id"]
    for path in ("/contacts?email=a@example.com", f"/contacts/{contact_id}/contactLists"):
        assert requests.get(f"{sim.base_url}/api/3{path}", timeout=5).status_code == 403
        assert requests.get(f"{sim.base_url}/api/3{path}", headers={"Api-Token": "nope"},
                            timeout=5).status_code == 403
    answers = [call(http, sim, "GET", "/contacts", params={"email": "a@example.com"}),
               call(http, sim, "GET", f"/contacts/{contact_id}/contactLists"),
               call(http, sim, "GET", f"/contacts/{contact_id}/contactLists")]
    assert [r.status_code for r in answers] == [200, 200, 429]
    assert answers[0].headers["RateLimit-Remaining"] == "1"
    assert answers[1].json()["contactLists"][0]["sourceid"] == "1"
    stats = sim.stats()
    assert (stats["forbidden"], stats["requests"], stats["throttled_429"]) == (4, 2, 1)
    assert (stats["contact_search_requests"], stats["contact_lists_requests"]) == (1, 1)


def test_memberships_are_copies(make_sim, http):
    sim = make_sim()
    assert bulk(http, sim, [person("a@example.com", "3")]).ok
    copy = sim.memberships("a@example.com")
    copy["3"]["status"] = "2"
    copy["4"] = {}
    assert sim.memberships("a@example.com")["3"]["status"] == "1" and "4" not in sim.memberships("a@example.com")
    assert sim.subscribed("3") == {"a@example.com"}


def test_timestamps_come_from_the_clock_in_utc(make_sim, http):
    sim = make_sim()  # the real clock, UTC
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    assert bulk(http, sim, [person("a@example.com", "3")]).ok
    after = datetime.datetime.now(datetime.UTC)
    sdate = sim.memberships("a@example.com")["3"]["sdate"]
    assert len(sdate) == len(T0) and sdate.endswith("+00:00")
    assert before <= datetime.datetime.fromisoformat(sdate) <= after
    # Another offset is written in UTC; a naive time is taken as UTC.
    minus_five = datetime.timezone(datetime.timedelta(hours=-5))
    sim.configure(clock=lambda: datetime.datetime(2024, 5, 31, 9, 30, 0, 999999, tzinfo=minus_five))
    sim.unsubscribe("a@example.com", "3")
    assert sim.memberships("a@example.com")["3"]["udate"] == T0
    sim.clock = lambda: datetime.datetime(2024, 5, 31, 14, 31)
    assert bulk(http, sim, [person("a@example.com", "4")]).ok
    assert sim.memberships("a@example.com")["4"]["sdate"] == T1
    sim.clock = None  # back to the real clock
    assert sim.clock() - datetime.datetime.now(datetime.UTC) < datetime.timedelta(seconds=5)
    with pytest.raises(TypeError):
        sim.clock = "now"


# ---- rate limits -------------------------------------------------------------------------------

def test_429_with_retry_after_and_rate_limit_headers_then_recovers(make_sim, http):
    sim = make_sim(requests_per_second=3)
    admitted = [call(http, sim, "GET", "/users/me") for _ in range(3)]
    assert [r.status_code for r in admitted] == [200, 200, 200]
    assert [r.headers["RateLimit-Remaining"] for r in admitted] == ["2", "1", "0"]
    throttled = call(http, sim, "GET", "/users/me")
    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) >= 1
    assert throttled.headers["RateLimit-Limit"] == "3"
    assert throttled.headers["RateLimit-Remaining"] == "0"
    stats = sim.stats()
    assert stats["throttled_429"] == 1 and stats["requests"] == 3
    time.sleep(1.05)
    assert call(http, sim, "GET", "/users/me").status_code == 200


def test_bulk_rate_limit_is_400_with_the_exact_documented_body(make_sim, http):
    sim = make_sim(bulk_per_minute=2)
    assert bulk(http, sim, [person("a@example.com", "3")] * 2).status_code == 200
    assert bulk(http, sim, [person("b@example.com", "3")] * 2).status_code == 200
    refused = bulk(http, sim, [person("c@example.com", "3")] * 2)
    assert refused.status_code == 400
    assert refused.json() == {
        "success": 0, "message": "Rate limit exceeded.",
        "failureReasons": ["Up to 2 imports may be requested per minute.Please batch contacts "
                           "into larger requests, or retry this request in a minute."]}
    assert sim.contact("c@example.com") is None
    stats = sim.stats()
    assert (stats["throttled_bulk"], stats["bulk_requests"], stats["requests"]) == (1, 2, 2)
    assert call(http, sim, "GET", "/users/me").status_code == 200  # the general budget is separate


def test_single_contact_bulk_imports_have_their_own_budget(make_sim, http):
    sim = make_sim(bulk_single_per_minute=1)
    assert bulk(http, sim, [person("a@example.com", "3")]).status_code == 200
    refused = bulk(http, sim, [person("b@example.com", "3")])
    assert refused.status_code == 400
    assert refused.json()["failureReasons"][0].startswith("Up to 1 imports")
    assert bulk(http, sim, [person("b@example.com", "3"), person("c@example.com", "3")]).ok


def test_bulk_requests_spend_the_general_budget_too(make_sim, http):
    sim = make_sim(requests_per_second=2)
    assert bulk(http, sim, [person("a@example.com", "3")] * 2).status_code == 200
    assert call(http, sim, "GET", "/users/me").status_code == 200
    assert call(http, sim, "GET", "/users/me").status_code == 429


def test_throttle_status_503(make_sim, http):
    sim = make_sim(requests_per_second=1, throttle_status=503)
    assert call(http, sim, "GET", "/users/me").status_code == 200
    assert call(http, sim, "GET", "/users/me").status_code == 503
    assert sim.stats()["throttled_429"] == 1


def test_max_requests_in_window_never_exceeds_the_budget(make_sim, http):
    sim = make_sim(requests_per_second=3)
    statuses = [call(http, sim, "GET", "/lists").status_code for _ in range(8)]
    assert statuses.count(200) == 3 and statuses.count(429) == 5
    assert sim.max_requests_in_window(1.0) == 3
    assert sim.max_requests_in_window(0.000001) == 1
    assert sim.max_requests_in_window(1.0, bulk_only=True) == 0
    time.sleep(1.0)
    bulk(http, sim, [person("a@example.com", "3")] * 2)
    assert sim.max_requests_in_window(1.0, bulk_only=True) == 1
    assert len(sim.bulk_timestamps()) == sim.stats()["bulk_requests"] == 1
    assert sim.max_requests_in_window(60.0) == 4


def test_inspection_needs_no_key_and_is_neither_limited_nor_counted(make_sim, http):
    sim = make_sim(requests_per_second=1)
    call(http, sim, "GET", "/users/me")
    for _ in range(5):
        assert requests.get(f"{sim.base_url}/__sim/stats", timeout=5).status_code == 200
    stats = requests.get(f"{sim.base_url}/__sim/stats", timeout=5).json()
    assert stats["requests"] == 1 and stats["responses"] == 1
    assert requests.get(f"{sim.base_url}/__sim/lists/99", timeout=5).status_code == 404


# ---- faults ------------------------------------------------------------------------------------

def test_fail_next_hits_only_matching_paths_and_applies_nothing(sim, http):
    sim.fail_next(2, 502, path_prefix="/import/")
    assert call(http, sim, "GET", "/users/me").status_code == 200
    assert bulk(http, sim, [person("a@example.com", "3")] * 2).status_code == 502
    assert bulk(http, sim, [person("a@example.com", "3")] * 2).status_code == 502
    assert sim.contact("a@example.com") is None
    assert bulk(http, sim, [person("a@example.com", "3")] * 2).status_code == 200
    assert sim.stats()["errors_injected"] == 2


def test_error_rate_answers_json_errors_and_can_be_switched_off(make_sim, http):
    sim = make_sim(error_rate=1.0, error_status=503)
    response = call(http, sim, "GET", "/users/me")
    assert response.status_code == 503 and "message" in response.json()
    sim.configure(error_rate=0.0)
    assert call(http, sim, "GET", "/users/me").status_code == 200
    assert sim.stats()["errors_injected"] == 1


def test_random_faults_repeat_with_the_same_seed(make_sim, http):
    def statuses(seed):
        sim = make_sim(error_rate=0.5, seed=seed)
        return [call(http, sim, "GET", "/users/me").status_code for _ in range(30)]

    first, again = statuses(7), statuses(7)
    assert first == again and set(first) == {200, 500}


def test_drop_rate_closes_the_connection_without_a_response(make_sim, http):
    sim = make_sim(drop_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        call(http, sim, "GET", "/users/me")
    assert sim.stats()["dropped"] == 1
    sim.configure(drop_rate=0)
    assert call(http, sim, "GET", "/users/me").status_code == 200


def test_latency_delays_each_answer(make_sim, http):
    sim = make_sim(latency=0.2)
    started = time.monotonic()
    assert call(http, sim, "GET", "/users/me").status_code == 200
    assert time.monotonic() - started >= 0.2


def test_configure_rejects_unknown_settings(sim):
    with pytest.raises(TypeError):
        sim.configure(no_such_setting=1)


# ---- plumbing ----------------------------------------------------------------------------------

def test_keep_alive_reuses_one_connection(sim, http):
    for _ in range(20):
        assert call(http, sim, "GET", "/users/me").status_code == 200
    assert sim.stats()["connections"] == 1


def test_replies_are_not_delayed_by_nagle(sim, http):
    # With Nagle's algorithm on, each reply waits ~40 ms for a delayed ACK: 30 calls take >= 1 s.
    call(http, sim, "GET", "/users/me")
    started = time.monotonic()
    for _ in range(30):
        call(http, sim, "POST", "/contact/sync", json={"contact": {"email": "n@example.com"}})
    assert time.monotonic() - started < 0.6


def test_reset_stats_clears_counters_and_history(sim, http):
    bulk(http, sim, [person("a@example.com", "3")] * 2)
    sim.reset_stats()
    stats = sim.stats()
    assert stats["requests"] == stats["bulk_requests"] == 0 and sim.bulk_timestamps() == []
    assert sim.subscribed("3") == {"a@example.com"}  # data survives


def test_context_manager_starts_and_stops():
    with ActiveCampaignSimulator(api_keys={KEY}, lists=LISTS) as sim:
        url = sim.base_url
        assert requests.get(f"{url}/api/3/users/me", headers={"Api-Token": KEY}, timeout=5).ok
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/api/3/users/me", headers={"Api-Token": KEY}, timeout=5)


def test_command_line_prints_its_address_and_stops_on_sigterm():
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.activecampaign", "--port", "0", "--api-key", "cli-key",
         "--list", "3:Newsletter", "--list", "5", "--import-processing-seconds", "0",
         "--import-failure-rate", "1"],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    try:
        line = process.stdout.readline().strip()
        assert line.startswith("ActiveCampaign simulator on http://127.0.0.1:")
        assert line.endswith("(lists: 3, 5)")
        url = line.split(" on ")[1].split(" ")[0]
        response = requests.get(f"{url}/api/3/lists/5", headers={"Api-Token": "cli-key"}, timeout=5)
        assert response.json()["list"]["name"] == "List 5"
        queued = requests.post(f"{url}/api/3/import/bulk_import", headers={"Api-Token": "cli-key"},
                               json={"contacts": [person("a@example.com", "3"),
                                                  person("b@example.com", "3")]}, timeout=5)
        info = requests.get(f"{url}/api/3/import/info", headers={"Api-Token": "cli-key"},
                            params={"batchId": queued.json()["batchId"]}, timeout=5).json()
        assert info == {"status": "completed", "success": [],
                        "failure": ["a@example.com", "b@example.com"]}
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
