"""The request schemas of exports/openapi.json against the checks the server makes before it asks
ActiveCampaign or storage: every body the document allows passes them all.

The live checks (the key, the list, the segment's columns, the connection's records) are the
integration tier's: tests/integration/test_request_schemas.py sends such bodies to the app.
"""
from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from jsonschema import Draft202012Validator

from exports.services import connections, exports
from shared.documents import check_document
from tests.unit.schema_values import python_pattern, request_schema, values

CONNECTION = request_schema("/connections", "post")
EXPORT = request_schema("/exports", "post")
# Lengths are filtered after a pattern is matched (a container name of 3-63 characters, say), and a
# body has several such strings: more draws are discarded than Hypothesis expects by default.
MANY = settings(max_examples=150, deadline=None, database=None,  # the unit tier stays fast
                suppress_health_check=[HealthCheck.filter_too_much])


@MANY
@given(values(CONNECTION))
def test_every_connection_the_document_allows_passes_the_checks_before_activecampaign(body):
    assert Draft202012Validator(CONNECTION).is_valid(body), "the strategy makes schema-valid bodies only"
    assert check_document(body, connections.FIELDS) == []
    assert connections.connection_problems(body["displayName"], body["hostname"], body["privacyConsent"]) == []
    assert connections.api_key_problem(body["apiKey"].strip()) is None


@MANY
@given(values(EXPORT))
def test_every_export_the_document_allows_passes_the_checks_before_activecampaign_and_storage(body):
    assert Draft202012Validator(EXPORT).is_valid(body), "the strategy makes schema-valid bodies only"
    assert check_document(body, exports.FIELDS) == []
    segment = body["segment"]
    mapping = {name: column for name, column in body["mapping"].items() if column is not None}
    assert exports.export_problems(body["displayName"], body["listId"], segment["container"],
                                   segment.get("prefix", ""), mapping) == []
    assert exports.tag_mapping(mapping.get("tags"))[1] == []
    assert exports.field_mappings(mapping.get("fields"))[1] == []


def test_put_takes_the_same_export_schema_as_post():
    assert request_schema("/exports/{exportId}", "put") == EXPORT


def test_the_document_refuses_the_containers_the_server_keeps_for_itself():
    container = Draft202012Validator(EXPORT["properties"]["segment"]["properties"]["container"])
    assert container.is_valid("segments")
    for name in exports.RESERVED_CONTAINERS:
        assert not container.is_valid(name), name
    for prefix in exports.RESERVED_CONTAINER_PREFIXES:
        assert not container.is_valid(prefix + "hosts"), prefix


@pytest.mark.parametrize("ecma, text, matches", [
    ("^a$", "a", True),
    ("^a$", "a\n", False),  # Python's "$" would match before the newline
    ("^.$", "\r", False),  # ECMA's "." is no line terminator
    ("^.$", "x", True),
    ("[^\\s]", "\ufeff", False),  # BOM is ECMA whitespace, not Python's
    ("[^\\s]", "\x1c", True),  # and the file separator the other way round
    ("^\\s$", "\u3000", True),
])
def test_patterns_are_read_as_ecma_262(ecma, text, matches):
    assert bool(re.search(python_pattern(ecma), text)) is matches
