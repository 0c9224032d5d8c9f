"""Connection and export fields: validation a person can act on (pure: no servers)."""
from __future__ import annotations

import pytest

from exports.errors import Invalid
from exports.services.connections import connection_problems, hostname_problem
from exports.services.exports import export_problems as validate_export_fields

HINT = "enter the hostname only, without https://"


# --- hostname -----------------------------------------------------------------------------------
@pytest.mark.parametrize("hostname", [
    "https://myaccount.api-us1.com",
    "http://myaccount.api-us1.com",
    "myaccount.api-us1.com/api/3",
    "myaccount.api-us1.com/",
    "myaccount.api-us1.com:443",
    "user@myaccount.api-us1.com",
    "myaccount.api-us1.com?x=1",
    "192.0.2.10",
    "127.0.0.1",
    "::1",
    "[2001:db8::1]",
    "2001:db8::1",
    "localhost",
    "LOCALHOST",
    "api.localhost",
    "myaccount",
    "my_account.api-us1.com",
    "-myaccount.api-us1.com",
    "myaccount-.api-us1.com",
    "myaccount.-api-us1.com",
    "my account.api-us1.com",
    "myaccount..api-us1.com",
    ".api-us1.com",
    "bücher.api-us1.com",
    "a" * 64 + ".api-us1.com",                  # a label is at most 63 characters
    ".".join(["abcdefghi"] * 26) + ".com",      # a name is at most 253 characters
    "127.1",
    "0x7f.0.0.1",
])
def test_hostname_must_be_a_bare_dns_name(hostname):
    problem = hostname_problem(hostname)
    assert problem is not None
    assert HINT in problem
    assert repr(hostname.strip()) in problem  # says which value is wrong


@pytest.mark.parametrize("hostname", [None, "", "   ", 42, ["myaccount.api-us1.com"]])
def test_hostname_is_required(hostname):
    problem = hostname_problem(hostname)
    assert problem is not None and "required" in problem


@pytest.mark.parametrize("hostname", [
    "myaccount.api-us1.com",
    "MyAccount.API-US1.com",
    "my-account2.api-us1.com",
    "xn--bcher-kva.example.com",
    "a" * 63 + ".api-us1.com",
    "  myaccount.api-us1.com  ",
])
def test_bare_dns_names_are_accepted(hostname):
    assert hostname_problem(hostname) is None


# --- field validation ------------------------------------------------------------------------------
@pytest.mark.parametrize("consent", [False, None, "true", 1, "yes"])
def test_privacy_consent_must_be_true_and_says_why(consent):
    problems = connection_problems("Marketing", "myaccount.api-us1.com", consent)
    assert [p["field"] for p in problems] == ["privacyConsent"]
    assert "compliance boundary" in problems[0]["message"] and "ActiveCampaign" in problems[0]["message"]


def test_a_valid_connection_has_no_problems_and_every_problem_is_listed():
    assert connection_problems("Marketing", "myaccount.api-us1.com", True) == []
    problems = connection_problems("  ", "https://myaccount.api-us1.com", False)
    assert [p["field"] for p in problems] == ["displayName", "hostname", "privacyConsent"]
    assert all(set(p) == {"field", "message"} and p["message"] for p in problems)


GOOD_EXPORT = dict(display_name="Newsletter", list_id="3", container="segments", prefix="crm/newsletter/",
                   mapping={"email": "Email", "firstName": "First Name"})


def export_problems(**changes) -> list[str]:
    return [p["field"] for p in validate_export_fields(**(GOOD_EXPORT | changes))]


@pytest.mark.parametrize("changes", [{}, {"list_id": 3}, {"list_id": " 12 "}, {"prefix": ""}, {"container": "abc"},
                                     {"container": "a" * 63}, {"container": "seg-2024-01"},
                                     {"mapping": {"email": "e", "firstName": "f", "lastName": "l", "phone": "p"}}])
def test_valid_export_fields_have_no_problems(changes):
    assert export_problems(**changes) == []


@pytest.mark.parametrize("changes,field", [
    ({"display_name": ""}, "displayName"),
    ({"list_id": "abc"}, "listId"),
    ({"list_id": ""}, "listId"),
    ({"list_id": "3.5"}, "listId"),
    ({"list_id": "-3"}, "listId"),
    ({"list_id": 3.0}, "listId"),
    ({"list_id": True}, "listId"),
    ({"list_id": None}, "listId"),
    ({"list_id": "²"}, "listId"),
    ({"container": "ab"}, "segment.container"),
    ({"container": "a" * 64}, "segment.container"),
    ({"container": "Segments"}, "segment.container"),
    ({"container": "seg--ments"}, "segment.container"),
    ({"container": "-segments"}, "segment.container"),
    ({"container": "segments-"}, "segment.container"),
    ({"container": "seg_ments"}, "segment.container"),
    ({"prefix": None}, "segment.prefix"),
    ({"prefix": "p" * 1025}, "segment.prefix"),
    ({"mapping": {"firstName": "First Name"}}, "mapping.email"),
    ({"mapping": {"email": "   "}}, "mapping.email"),
    ({"mapping": {"email": "Email", "firstName": ""}}, "mapping.firstName"),
    ({"mapping": {"email": "Email", "phone": 7}}, "mapping.phone"),
    ({"mapping": {"email": "Email", "fax": "Fax"}}, "mapping.fax"),
    ({"mapping": {"email": "Email", "first_name": "First"}}, "mapping.first_name"),
])
def test_invalid_export_fields_are_named(changes, field):
    assert export_problems(**changes) == [field]


def test_invalid_lists_field_and_message_pairs():
    problems = [{"field": "listId", "message": "must be numeric"}, {"field": "mapping.email", "message": "is required"}]
    error = Invalid(problems)
    assert error.problems == problems and error.details == problems
    assert "listId: must be numeric" in str(error) and "mapping.email: is required" in str(error)


def test_invalid_names_five_problems_and_counts_the_rest():
    error = Invalid([{"field": f"f{n}", "message": "wrong"} for n in range(8)])
    assert "f4: wrong" in error.message and "f5" not in error.message and "(and 3 more)" in error.message
