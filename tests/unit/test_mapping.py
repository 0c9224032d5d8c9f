"""Profile values to ActiveCampaign contacts: normalised emails, trimmed values, reasons a person can act on."""
from __future__ import annotations

import socket

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from exports.segments.mapping import checked_email, normalise_email, to_contact

LIMIT = 255
AC_KEYS = {"email", "first_name", "last_name", "phone"}


@pytest.mark.parametrize("raw", [
    "alice@example.com",
    "  Alice@Example.COM  ",
    "\tBOB.SMITH+Newsletter@Mail.Example.ORG\r\n",
    "O'Brien-Smith@Example.IE",
    "first.last@sub-domain.example.co.uk",
    "x@example.com",
])
def test_valid_email_is_trimmed_and_lower_cased(raw):
    expected = raw.strip().lower()
    assert normalise_email(raw) == expected
    assert to_contact({"email": raw}) == ({"email": expected}, None)


def test_the_same_person_differently_written_is_one_email():
    spellings = ["Jane.Doe@Example.com", " jane.doe@example.COM", "JANE.DOE@EXAMPLE.COM\n"]
    assert {to_contact({"email": s})[0]["email"] for s in spellings} == {"jane.doe@example.com"}


@pytest.mark.parametrize("raw", [
    "plainaddress",
    "@example.com",
    "user@",
    "user@@example.com",
    "user name@example.com",
    "user@example",                # no dot in the domain
    "user@.example.com",
    "user@example..com",
    "user.@example.com",
    ".user@example.com",
    "us..er@example.com",
    "user@-example.com",
    "user@exa_mple.com",
    '"quoted"@example.com',        # quoted local parts are refused
    "user@[192.0.2.1]",            # so are domain literals
    "josé@example.com",            # a non-ASCII local part needs SMTPUTF8, which is not allowed
    "user@" + "a" * 64 + ".com",   # domain label over 63 characters
    "user@localhost",
    "user@example.com, other@example.com",
])
def test_invalid_email_gives_a_reason(raw):
    contact, reason = to_contact({"email": raw, "firstName": "Ann"})
    assert contact is None
    assert reason.startswith("email is not valid")
    assert len(reason) > len("email is not valid: ")  # the validator's explanation follows


@pytest.mark.parametrize("values", [{}, {"email": ""}, {"email": "   "}, {"email": "\t\n"}, {"email": None},
                                    {"firstName": "Ann", "lastName": "Lee"}])
def test_empty_email_is_refused_as_empty(values):
    assert to_contact(values) == (None, "email is empty")


def test_email_syntax_is_checked_without_dns(monkeypatch):
    looked_up = []

    def no_network(*args, **kwargs):
        looked_up.append(args)
        raise OSError("no DNS in this test")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket, "gethostbyname", no_network)
    try:
        import dns.resolver
    except ImportError:
        pass
    else:
        monkeypatch.setattr(dns.resolver.Resolver, "resolve", no_network)
        monkeypatch.setattr(dns.resolver, "resolve", no_network)
    domain = "no-mx-record-anywhere-7d1f3c.example.com"
    assert to_contact({"email": f"Someone@{domain.upper()}"}) == ({"email": f"someone@{domain}"}, None)
    assert looked_up == []


def test_all_fields_are_trimmed_and_use_activecampaign_names():
    values = {"email": " ann@example.com ", "firstName": "  Ann ", "lastName": "\tvan der Berg\n", "phone": " +49 30 123 "}
    contact, reason = to_contact(values)
    assert reason is None
    assert contact == {"email": "ann@example.com", "first_name": "Ann", "last_name": "van der Berg",
                       "phone": "+49 30 123"}


def test_unicode_values_are_kept_as_written_apart_from_trimming():
    values = {"email": "zoe@example.com", "firstName": " Zoë ", "lastName": "李 😀", "phone": "+33 1 23"}
    contact, _ = to_contact(values)
    assert contact["first_name"] == "Zoë" and contact["last_name"] == "李 😀"


@pytest.mark.parametrize("blank", ["", "   ", "\t", None])
@pytest.mark.parametrize("field,key", [("firstName", "first_name"), ("lastName", "last_name"), ("phone", "phone")])
def test_empty_optional_values_are_left_out_not_sent_blank(field, key, blank):
    others = {"firstName": "Ann", "lastName": "Lee", "phone": "+1 555 0100"}
    values = {"email": "ann@example.com", **others, field: blank}
    contact, reason = to_contact(values)
    assert reason is None
    assert key not in contact
    expected_keys = {"email"} | {k for f, k in [("firstName", "first_name"), ("lastName", "last_name"),
                                               ("phone", "phone")] if f != field}
    assert set(contact) == expected_keys


def test_fields_not_mapped_are_not_sent():
    contact, _ = to_contact({"email": "ann@example.com", "company": "ACME", "first_name": "raw key"})
    assert contact == {"email": "ann@example.com"}
    assert set(contact) <= AC_KEYS


@pytest.mark.parametrize("field,key", [("firstName", "first_name"), ("lastName", "last_name"), ("phone", "phone")])
def test_a_value_of_exactly_the_limit_is_kept(field, key):
    value = "é" * LIMIT  # characters, not bytes, are counted
    contact, reason = to_contact({"email": "ann@example.com", field: f"  {value}  "})
    assert reason is None
    assert contact[key] == value


@pytest.mark.parametrize("field", ["firstName", "lastName", "phone"])
def test_a_value_over_the_limit_rejects_the_row_with_a_reason(field):
    contact, reason = to_contact({"email": "ann@example.com", "firstName": "Ann", field: "x" * (LIMIT + 1)})
    assert contact is None
    assert field in reason and str(LIMIT) in reason



CONTROL_CHARACTERS = ["\x00", "\x01", "\x08", "\x0b", "\x0c", "\x1b", "\x1f", "\x7f", "\x80", "\x85", "\x9f"]


@pytest.mark.parametrize("char", CONTROL_CHARACTERS, ids=[f"U+{ord(c):04X}" for c in CONTROL_CHARACTERS])
@pytest.mark.parametrize("field", ["email", "firstName", "lastName", "phone"])
def test_a_control_character_in_a_mapped_value_rejects_the_row_naming_the_field(field, char):
    values = {"email": "ann@example.com", "firstName": "Ann", "lastName": "Lee", "phone": "+1 555"}
    values[field] = values[field][:2] + char + values[field][2:]
    contact, reason = to_contact(values)
    assert contact is None
    assert reason.startswith(field) and f"U+{ord(char):04X}" in reason


def test_tabs_and_the_line_breaks_of_a_quoted_field_are_kept():
    contact, reason = to_contact({"email": "ann@example.com", "firstName": "Ann\tMarie", "lastName": "two\r\nlines"})
    assert reason is None
    assert (contact["first_name"], contact["last_name"]) == ("Ann\tMarie", "two\r\nlines")


@pytest.mark.parametrize("field", ["email", "firstName", "lastName", "phone"])
def test_a_lone_surrogate_in_a_mapped_value_rejects_the_row_with_a_reason(field):
    values = {"email": "ann@example.com", "firstName": "Ann", "lastName": "Lee", "phone": "+1 555"}
    values[field] = "\ud83d" + values[field]  # half of 😀, as a JSON "\ud83d" escape gives it
    contact, reason = to_contact(values)
    assert contact is None
    assert reason.startswith(field) and "surrogate" in reason and "U+D83D" in reason


@pytest.mark.parametrize("field", ["email", "firstName"])
def test_bytes_that_were_not_utf8_reject_the_row(field):
    values = {"email": "ann@example.com", "firstName": "Ann"}
    values[field] = values[field] + "\udcff"  # how the reader decodes the byte 0xFF
    contact, reason = to_contact(values)
    assert contact is None
    assert reason.startswith(field) and "UTF-8" in reason


@pytest.mark.parametrize("raw", ["user@bücher.example", "User@BÜCHER.Example", " user@xn--bcher-kva.example "])
def test_an_internationalised_domain_is_sent_in_its_ascii_form_and_is_one_email(raw):
    assert to_contact({"email": raw}) == ({"email": "user@xn--bcher-kva.example"}, None)


def test_the_reason_for_an_invalid_email_is_bounded():
    # The validator lists every distinct character it refuses: thousands of them make a long message.
    local_part = "".join(chr(0x100 + i) for i in range(3000))
    contact, reason = to_contact({"email": f"{local_part}@example.com"})
    assert contact is None and reason.startswith("email is not valid") and len(reason) < 300


# The fast path must agree with email_validator on every address: same verdict, same spelling sent.
_ADDRESS_PIECES = st.sampled_from(["a", "z", "0", "9", ".", "-", "_", "+", "'", "!", "~", "@", "xn--", "--",
                                   "local", "test", "onion", "arpa", "com", "co", "é", " ", "1", "x" * 30])


def _verdict(check, email):
    try:
        return check(email)
    except EmailNotValidError:
        return "invalid"


def _validator(email):
    return validate_email(email, check_deliverability=False, allow_smtputf8=False, allow_quoted_local=False,
                          allow_domain_literal=False).ascii_email


@settings(max_examples=3000, deadline=None)
@given(st.lists(_ADDRESS_PIECES, min_size=1, max_size=14).map("".join))
def test_the_plain_address_fast_path_agrees_with_email_validator(text):
    assert _verdict(checked_email, text) == _verdict(_validator, text)


@pytest.mark.parametrize("email", [
    "a@b.co", "a@b.local", "a@b.test", "a@xn--bcher-kva.example", "a@ab--cd.com", "a@b.c0m", "a@b.c",
    "a..b@c.com", ".a@c.com", "a.@c.com", "a@-b.com", "a@b-.com", "a@b..com", "a@" + "b" * 64 + ".com",
    "a" * 65 + "@b.com", "a" * 64 + "@b.com", "a@" + ".".join(["b" * 63] * 4) + ".com", "a@b.com.",
])
def test_edge_addresses_get_the_validators_verdict(email):
    assert _verdict(checked_email, email) == _verdict(_validator, email)
