"""Bodies made from exports/openapi.json's own request schemas, sent to the app: each is accepted, or
refused only for a reason the document states (a 400 naming a field whose description says when:
ActiveCampaign refusing the key, a list the account lacks, a missing connection, a column the
segment lacks).

Known-good values (the simulator's key, an existing connection and list, the segments container)
are mixed in, so that acceptance is tested as well as refusal. Bounded: a few dozen bodies each.
"""
from __future__ import annotations

import collections

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from exports.names import SEGMENTS_CONTAINER
from tests.support.api_helpers import create_connection, create_export, export_body
from tests.support.apphost import API_KEY
from tests.unit.schema_values import documents_a_refusal, request_schema, values

# No shrinking: each try of a smaller body is a round of real requests (storage retries included),
# so a failure is reported with the body as generated; the unit tier shrinks the static checks.
# Lengths are filtered after a pattern is matched (a container name of 3-63 characters, say), and
# a body has several such strings: more draws are discarded than Hypothesis expects by default.
BOUNDED = settings(max_examples=40, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
pytestmark = pytest.mark.timeout(180)


def assert_accepted_or_refused_as_documented(response, schema: dict, accepted: int) -> None:
    if response.status == accepted:
        return
    assert (response.status, response.body["error"]["code"]) == (400, "validation_failed"), (response.status, response.body)
    undocumented = [p for p in response.body["error"]["details"] if not documents_a_refusal(schema, p["field"])]
    assert not undocumented, f"a schema-valid body was refused for reasons the document does not state: {undocumented}"


def test_schema_valid_connections_are_created_or_refused_only_as_documented(app):
    schema = request_schema("/connections", "post")
    valid = Draft202012Validator(schema)
    statuses = collections.Counter()

    @BOUNDED
    @given(body=values(schema), simulator_key=st.booleans())
    def create(body, simulator_key):
        if simulator_key:
            body["apiKey"] = API_KEY
        assert valid.is_valid(body)
        response = app.request("POST", "/api/connections", body)
        statuses[response.status] += 1
        assert_accepted_or_refused_as_documented(response, schema, accepted=201)

    create()
    assert statuses[201] and statuses[400], statuses


def test_schema_valid_exports_are_saved_or_refused_only_as_documented(app):
    schema = request_schema("/exports", "post")
    valid = Draft202012Validator(schema)
    connection_id = create_connection(app)["id"]
    export_id = create_export(app, connection_id)["id"]
    statuses = collections.Counter()

    all_known = {"connection": True, "list": True, "container": True}

    # Drawn at random, a body the app must accept (every known value, and columns the segment has) is rare
    # enough that a few dozen draws may hold none: one is given, so that acceptance is always tried.
    @BOUNDED
    @given(body=values(schema), method=st.sampled_from(["POST", "PUT"]),
           known=st.fixed_dictionaries({"connection": st.booleans(), "list": st.booleans(), "container": st.booleans()}))
    @example(body=export_body("the known connection's id"), method="PUT", known=all_known)
    def save(body, method, known):
        if known["connection"]:
            body["connectionId"] = connection_id
        if known["list"]:
            body["listId"] = "3"
        if known["container"]:
            body["segment"]["container"] = SEGMENTS_CONTAINER  # holds other tests' blobs: their headers are checked
        assert valid.is_valid(body)
        path = "/api/exports" if method == "POST" else f"/api/exports/{export_id}"
        response = app.request(method, path, body)
        statuses[response.status] += 1
        assert_accepted_or_refused_as_documented(response, schema, accepted=201 if method == "POST" else 200)

    save()
    assert statuses[400] and (statuses[200] or statuses[201]), statuses
