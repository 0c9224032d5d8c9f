"""Profile values formatted for ActiveCampaign custom fields, refused in words a marketer can act on."""
from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from exports.model import MULTI_OPTION_TYPES, SINGLE_OPTION_TYPES, FieldSpec

_TEXT_LIMIT = 255  # ActiveCampaign's text columns (text, hidden and types we do not know)
_TEXTAREA_LIMIT = 65_535
_SHOWN_CHARACTERS = 40  # of a value or title quoted in a message: no message grows with the input
_OPTIONS_SHOWN = 5
_VALUES_SHOWN = 3  # of the values of a multi-option field that match no option
_MULTI_DELIMITER = "||"  # ActiveCampaign's form of several options: ||a||b||
_TRUE = frozenset({"true", "yes", "y", "1", "on", "x"})
_FALSE = frozenset({"false", "no", "n", "0", "off"})
# The ASCII spelling only: Decimal also takes "1_000" and other scripts' digits, which
# ActiveCampaign would not read as the number the marketer meant.
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
# A calendar date written YYYY-MM-DD, alone or starting a date-time. fromisoformat alone would
# also take 20240501 or 2024-W18-3, which a marketer is more likely to have typed by mistake.
_ISO_START = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ].+)?", re.ASCII | re.DOTALL)
_DATE_EXAMPLE = "YYYY-MM-DD, e.g. 2024-05-31, or a date-time such as 2024-05-31T14:30:00Z"


class FieldValueError(ValueError):
    """A value that cannot be sent to its custom field; the text says which field, why and what is allowed."""


def _shown(text: str) -> str:
    """In quotes, control characters escaped, cut to _SHOWN_CHARACTERS."""
    if len(text) > _SHOWN_CHARACTERS:
        text = text[:_SHOWN_CHARACTERS - 1] + "…"
    return repr(text)


def _some(values: list[str] | tuple[str, ...], limit: int) -> str:
    shown = ", ".join(_shown(v) for v in values[:limit])
    return shown + (f" and {len(values) - limit:,} more" if len(values) > limit else "")


def _field(spec: FieldSpec) -> str:
    # A field without a title (the API allows it) is still named by something the account shows.
    return f"custom field {_shown(spec.title or spec.perstag or '#' + spec.id)}"


def format_field_value(spec: FieldSpec, raw: str, separator: str = ",") -> str | None:
    """The value to send for `raw` (stripped, non-empty, no control characters); None leaves the field out.

    Raises FieldValueError when the value does not fit the field."""
    kind = spec.type.strip().lower()
    if kind in SINGLE_OPTION_TYPES:
        return _one_option(spec, raw)
    if kind in MULTI_OPTION_TYPES:
        return _options(spec, kind, raw, separator)
    if kind == "date":
        return _date(spec, raw)
    if kind == "datetime":
        return _datetime(spec, raw)
    if kind == "number":
        return _number(spec, raw)
    limit = _TEXTAREA_LIMIT if kind == "textarea" else _TEXT_LIMIT
    if len(raw) > limit:
        raise FieldValueError(f"{_field(spec)}: {_shown(raw)} is {len(raw):,} characters long; "
                              f"the field takes at most {limit:,}")
    return raw


def _number(spec: FieldSpec, raw: str) -> str:
    try:
        finite = bool(_NUMBER.fullmatch(raw)) and Decimal(raw).is_finite()
    except InvalidOperation:
        finite = False
    if not finite:
        raise FieldValueError(f"{_field(spec)}: {_shown(raw)} is not a number; it takes digits with an optional "
                              "sign and decimal point, e.g. 42, -3.5 or 0.25")
    return raw


def _date_time(spec: FieldSpec, raw: str, what: str) -> datetime:
    if _ISO_START.fullmatch(raw):
        try:
            return datetime.fromisoformat(raw)
        except ValueError:
            pass
    # Day-first and month-first spellings (12/05/2024) are ambiguous, so none is guessed.
    raise FieldValueError(f"{_field(spec)}: {_shown(raw)} is not {what}; it must be ISO 8601: {_DATE_EXAMPLE}")


def _date(spec: FieldSpec, raw: str) -> str:
    # The date as written: converting a date-time to UTC first could move it to another day.
    return _date_time(spec, raw, "a date").date().isoformat()


def _datetime(spec: FieldSpec, raw: str) -> str:
    moment = _date_time(spec, raw, "a date-time")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # the app's time is UTC, and so is a date alone (midnight)
    return moment.isoformat(timespec="seconds")


def _match(options: tuple[str, ...], value: str) -> str | None:
    """The option `value` names: itself, or the one option equal to it ignoring case."""
    if value in options:
        return value
    folded = value.casefold()
    matches = [option for option in options if option.casefold() == folded]
    return matches[0] if len(matches) == 1 else None


def _allowed(spec: FieldSpec, refused: list[str]) -> str:
    allowed = f"its options are {_some(spec.options, _OPTIONS_SHOWN)}"
    folded = [option.casefold() for option in spec.options]
    if any(folded.count(value.casefold()) > 1 for value in refused):
        allowed += " (options that differ only in case must be written exactly as one of them)"
    return allowed


def _one_option(spec: FieldSpec, raw: str) -> str:
    if not spec.options:  # nothing can be chosen in such a field: ActiveCampaign would keep no value
        raise FieldValueError(f"{_field(spec)} is a {spec.type} without options in ActiveCampaign, so it cannot take "
                              f"{_shown(raw)}: add the options to the field there, or map another field")
    if (option := _match(spec.options, raw)) is not None:
        return option
    raise FieldValueError(f"{_field(spec)}: {_shown(raw)} is not one of its options; {_allowed(spec, [raw])}")


def _options(spec: FieldSpec, kind: str, raw: str, separator: str) -> str | None:
    if not separator:
        raise ValueError("the separator of a multi-option field cannot be empty")
    if kind == "checkbox" and len(spec.options) == 1 and _match(spec.options, raw) is None:
        # A single checkbox ("Subscribed") is a yes/no: the column says whether it is ticked.
        if raw.casefold() in _TRUE:
            return _MULTI_DELIMITER + spec.options[0] + _MULTI_DELIMITER
        if raw.casefold() in _FALSE:
            return None
    parts = raw.split(_MULTI_DELIMITER if raw.startswith(_MULTI_DELIMITER) else separator)
    chosen: list[str] = []
    unknown: list[str] = []
    for part in (p.strip() for p in parts):
        if not part:
            continue
        if not spec.options:
            # The account defined no options, so none is checked; but || inside a value would
            # split it into two when ActiveCampaign reads it.
            if _MULTI_DELIMITER in part:
                raise FieldValueError(f"{_field(spec)}: {_shown(part)} holds {_MULTI_DELIMITER!r}, which separates "
                                      f"options; write the values as ||a||b|| or separated by {separator!r}")
            option = part
        elif (option := _match(spec.options, part)) is None:
            if part not in unknown:
                unknown.append(part)
            continue
        if option not in chosen:
            chosen.append(option)
    if unknown:
        which = "is not one of its options" if len(unknown) == 1 else "are not among its options"
        also = "; or yes/no to tick it or not" if kind == "checkbox" and len(spec.options) == 1 else ""
        raise FieldValueError(f"{_field(spec)}: {_some(unknown, _VALUES_SHOWN)} {which}; {_allowed(spec, unknown)}{also}")
    if not chosen:
        return None
    return _MULTI_DELIMITER + _MULTI_DELIMITER.join(chosen) + _MULTI_DELIMITER


MEMBER_WORD = "yes"  # what an export with leavers "field" writes in its membership field for every member


def member_value(spec: FieldSpec) -> str:
    """The membership field's value for a member: "yes" as the field takes it (a text field's "yes", a one-option
    checkbox ticked, a dropdown's "Yes"); FieldValueError when the field cannot hold it."""
    value = format_field_value(spec, MEMBER_WORD)
    if not value:
        raise FieldValueError(f"{_field(spec)} cannot hold a membership: use a text field, or a checkbox with one option")
    return value
