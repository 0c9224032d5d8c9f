"""Profile values to ActiveCampaign contact fields, with validation a person can act on."""
from __future__ import annotations

import re

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

from exports.model import MAX_TAG_LENGTH, TAGS_KEY, Mapping, RejectReason, TagMapping, field_key
from exports.segments.field_values import FieldValueError, format_field_value, member_value
from exports.segments.wording import cut

# Our mapping names -> ActiveCampaign bulk_import field names (snake_case there).
CONTACT_FIELDS = {"email": "email", "firstName": "first_name", "lastName": "last_name", "phone": "phone"}
_MAX_LENGTH = 255  # ActiveCampaign's text columns; longer values would be cut or refused
_REASON_LENGTH = 200  # of the validator's explanation, which may quote the address
# Control characters are never sent: C0 (tab, and the line breaks a quoted CSV field may hold,
# excepted), DEL and C1.
_CONTROL_CHARACTERS = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
_SURROGATES = "\ud800-\udfff"  # no character: it cannot be encoded, so never sent
_CONTROL = re.compile(f"[{_CONTROL_CHARACTERS}]")
_UNDECODABLE = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, as the reader decodes them (surrogates too)
_SURROGATE = re.compile(f"[{_SURROGATES}]")
# Any of them: nearly every value holds none, and one search says so (the three took 2 s per million rows).
_ANY_PROBLEM = re.compile(f"[{_CONTROL_CHARACTERS}{_SURROGATES}]")
# Nearly every address is plain ASCII: dot-separated atoms of RFC 5322 atext, then letter-digit-hyphen
# labels ending in an alphabetic top-level domain, within the length limits. email_validator accepts
# each such address as written (lower-cased already), so it is asked only about the others: it took
# a quarter of the split's CPU time. A label with "--" (Punycode, or one the IDNA rules refuse) and
# a special-use domain go to it too.
_PLAIN_EMAIL = re.compile(r"(?=[^@]{1,64}@)[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
                          r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
_MAX_EMAIL_LENGTH = 254
_SPECIAL_USE_ENDINGS = tuple(f".{name}" for name in SPECIAL_USE_DOMAIN_NAMES)


class Rejection(str):
    """Why a row is not sent: its own words (for the rejects report) and the class it is counted under."""

    reason_class: RejectReason
    email: str | None  # the row's valid email when another value is at fault: the person is still in the segment

    def __new__(cls, text: str, reason_class: RejectReason, email: str | None = None) -> Rejection:
        rejection = super().__new__(cls, text)
        rejection.reason_class = reason_class
        rejection.email = email
        return rejection


def normalise_email(raw: str) -> str:
    """Trim and lower-case, so that reformatting upstream never makes the same person a new contact."""
    return raw.strip().lower()


def _character_problem(field: str, value: str) -> str | None:
    if not _ANY_PROBLEM.search(value):
        return None
    if _UNDECODABLE.search(value):
        return f"{field} is not valid UTF-8: save the file as UTF-8"
    if found := _SURROGATE.search(value):
        return (f"{field} holds U+{ord(found.group()):04X}, a lone surrogate (half of a character written as a "
                "\\u escape pair), which is not text")
    if found := _CONTROL.search(value):
        return f"{field} holds the control character U+{ord(found.group()):04X}, which is not sent: remove it"
    return None


def checked_email(email: str) -> str:
    """The address to send for a normalised email, or EmailNotValidError saying what is wrong with it.

    An internationalised domain goes in its ASCII (IDNA) form, which ActiveCampaign accepts; it is
    also the one spelling duplicates are found by.
    """
    if (len(email) <= _MAX_EMAIL_LENGTH and _PLAIN_EMAIL.fullmatch(email) and "--" not in email.partition("@")[2]
            and not email.endswith(_SPECIAL_USE_ENDINGS)):
        return email
    # Syntax only: a DNS look-up per row would be slow and is ActiveCampaign's business.
    return validate_email(email, check_deliverability=False, allow_smtputf8=False, allow_quoted_local=False,
                          allow_domain_literal=False).ascii_email


def to_contact(values: dict[str, str], mapping: Mapping | None = None) -> tuple[dict | None, Rejection | None]:
    """(contact, None) for a valid row, (None, reason) otherwise. Empty optional values are left out.

    `values` are read under the keys of `mapping.columns()`; its tags and custom fields (with the
    account's description of each field) are added in the bulk import's own form.
    """
    email = normalise_email(values.get("email") or "")
    if not email:
        return None, Rejection("email is empty", RejectReason.EMAIL_MISSING)
    if problem := _character_problem("email", email):
        return None, Rejection(problem, RejectReason.EMAIL_INVALID)
    try:
        contact = {"email": checked_email(email)}
    except EmailNotValidError as error:
        return None, Rejection(f"email is not valid: {cut(str(error), _REASON_LENGTH)}", RejectReason.EMAIL_INVALID)
    for field, name in CONTACT_FIELDS.items():
        if field == "email":
            continue
        value = (values.get(field) or "").strip()
        if not value:
            continue
        if problem := _character_problem(field, value):
            return None, Rejection(problem, RejectReason.VALUE_INVALID, contact["email"])
        if len(value) > _MAX_LENGTH:
            return None, Rejection(f"{field} is longer than {_MAX_LENGTH} characters", RejectReason.VALUE_INVALID,
                                   contact["email"])
        contact[name] = value
    if mapping is None:
        return contact, None
    if mapping.tags is not None:
        tags, problem = _tags(mapping.tags, values.get(TAGS_KEY) or "")
        if problem:
            return None, Rejection(problem, RejectReason.VALUE_INVALID, contact["email"])
        if tags:
            contact["tags"] = tags
    fields = []
    for position, field in enumerate(mapping.fields):
        raw = (values.get(field_key(position)) or "").strip()
        if not raw:
            continue
        problem = _character_problem(f"custom field {field.spec.title or field.column!r}", raw)
        if problem is None:
            try:
                value = format_field_value(field.spec, raw, field.separator)
            except FieldValueError as error:
                problem = str(error)
        if problem:
            return None, Rejection(problem, RejectReason.VALUE_INVALID, contact["email"])
        if value is not None:
            fields.append({"id": int(field.spec.id), "value": value})  # an integer, as the reference's schema has it
    if mapping.membership is not None:
        fields.append({"id": int(mapping.membership.id), "value": member_value(mapping.membership)})
    if fields:
        contact["fields"] = fields
    return contact, None


def _tags(tags: TagMapping, raw: str) -> tuple[list[str], str | None]:
    """The contact's tags, sorted (one spelling for the sync digest): the fixed names and those in its column."""
    raw = raw.strip()
    parts = raw.strip("|").split("||") if raw.startswith("||") else raw.split(tags.separator)
    names = set(tags.names)
    for part in parts:
        name = part.strip()
        if not name:
            continue
        if problem := tag_problem(name):
            return [], problem
        names.add(name)
    return sorted(names), None


def tag_problem(name: str) -> str | None:
    """Why a tag name (stripped) cannot be sent, if so: one rule for an export's fixed names and a column's."""
    if not name:
        return "a tag name must not be empty"
    if problem := _character_problem("a tag name", name):
        return problem
    if any(c in "\t\n\r" for c in name):
        return "a tag name must not hold a tab or a line break"
    if len(name) > MAX_TAG_LENGTH:
        return f"a tag name is at most {MAX_TAG_LENGTH} characters; {cut(name, 40)!r} is longer"
    return None
