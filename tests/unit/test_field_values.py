"""Profile values formatted for ActiveCampaign custom fields: what is sent, left out, or refused and why."""
from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exports.model import MULTI_OPTION_TYPES, SINGLE_OPTION_TYPES, FieldSpec
from exports.segments.field_values import FieldValueError, format_field_value

TIERS = ("Gold", "Silver", "Bronze")
MANY = ("One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight")


def spec(type_: str, options: tuple[str, ...] = (), title: str = "Tier") -> FieldSpec:
    return FieldSpec(id="7", title=title, perstag="TIER", type=type_, options=options)


def refusal(field: FieldSpec, raw: str, separator: str = ",") -> str:
    with pytest.raises(FieldValueError) as caught:
        format_field_value(field, raw, separator)
    return str(caught.value)


def quoted_values(message: str) -> list[str]:
    return re.findall(r"'([^']*)'", message)


def test_the_error_is_a_value_error():
    assert issubclass(FieldValueError, ValueError)


# --- text ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("type_", ["text", "hidden", "", "somethingnew"])
def test_text_like_fields_take_the_value_as_it_is_up_to_255_characters(type_):
    assert format_field_value(spec(type_), "  inner  spaces, kept ") == "  inner  spaces, kept "
    assert format_field_value(spec(type_), "x" * 255) == "x" * 255
    message = refusal(spec(type_), "y" * 256)
    assert "custom field 'Tier'" in message and "256" in message and "255" in message


def test_textarea_takes_up_to_65535_characters():
    assert format_field_value(spec("textarea"), "a\nb" * 10) == "a\nb" * 10
    assert format_field_value(spec("textarea"), "z" * 65_535) == "z" * 65_535
    assert "65,535" in refusal(spec("textarea"), "z" * 65_536)


def test_a_long_value_is_quoted_cut_to_40_characters():
    message = refusal(spec("text"), "q" * 1000)
    assert len(message) < 200
    assert [len(v) for v in quoted_values(message) if v.startswith("q")] == [40]


def test_a_field_without_a_title_is_named_by_its_personalisation_tag():
    assert "custom field 'TIER'" in refusal(spec("dropdown", TIERS, title=""), "Platinum")


# --- number -------------------------------------------------------------------------------------
@pytest.mark.parametrize("raw", ["42", "-3.50", "+7", "0.25", ".5", "1e3", "1000000000000000000000.1"])
def test_a_number_is_sent_as_written(raw):
    assert format_field_value(spec("number"), raw) == raw


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-inf", "1_000", "12abc", "1,5", "١٢", "--1", "."])
def test_what_is_not_a_finite_decimal_is_refused(raw):
    message = refusal(spec("number"), raw)
    assert "custom field 'Tier'" in message and "not a number" in message and "42" in message


# --- date and date-time -------------------------------------------------------------------------
@pytest.mark.parametrize(("raw", "sent"), [
    ("2024-05-01", "2024-05-01"),
    ("2024-02-29", "2024-02-29"),
    ("2024-05-01T10:00:00Z", "2024-05-01"),
    ("2024-05-01 10:00", "2024-05-01"),
    # The date as written: in UTC this would be 2 May, but the marketer wrote 1 May.
    ("2024-05-01T23:30:00-05:00", "2024-05-01"),
    ("2024-05-01T00:30:00+14:00", "2024-05-01"),
])
def test_a_date_field_takes_the_date_part_as_written(raw, sent):
    assert format_field_value(spec("date"), raw) == sent


@pytest.mark.parametrize("raw", ["12/05/2024", "05/12/2024", "1 May 2024", "2024-02-30", "2023-02-29", "2024-13-01",
                                 "20240501", "2024-W18-3", "2024-5-1", "2024-05-01Tnoon", "2024-05-01T"])
def test_a_date_that_is_not_iso_is_refused_not_guessed(raw):
    message = refusal(spec("date"), raw)
    assert "custom field 'Tier'" in message and "ISO 8601" in message and "YYYY-MM-DD" in message
    assert repr(raw) in message


@pytest.mark.parametrize(("raw", "sent"), [
    ("2024-05-01T10:00:00Z", "2024-05-01T10:00:00+00:00"),
    ("2024-05-01T10:00:00", "2024-05-01T10:00:00+00:00"),  # no offset: UTC
    ("2024-05-01", "2024-05-01T00:00:00+00:00"),  # a date alone: midnight UTC
    ("2024-05-01T10:00:00+02:00", "2024-05-01T10:00:00+02:00"),  # the offset given is kept
    ("2024-05-01T23:30:00-05:00", "2024-05-01T23:30:00-05:00"),
    ("2024-05-01T10:00:00.987654Z", "2024-05-01T10:00:00+00:00"),
    ("2024-05-01 10:00", "2024-05-01T10:00:00+00:00"),
])
def test_a_datetime_field_takes_iso_8601_and_keeps_the_offset(raw, sent):
    assert format_field_value(spec("datetime"), raw) == sent


@pytest.mark.parametrize("raw", ["tomorrow", "12/05/2024 10:00", "2024-05-01T25:00:00", "1714557600"])
def test_a_datetime_that_is_not_iso_is_refused(raw):
    message = refusal(spec("datetime"), raw)
    assert "custom field 'Tier'" in message and "ISO 8601" in message


# --- single option ------------------------------------------------------------------------------
@pytest.mark.parametrize("type_", sorted(SINGLE_OPTION_TYPES))
def test_a_single_option_is_matched_exactly_then_ignoring_case(type_):
    assert format_field_value(spec(type_, TIERS), "Silver") == "Silver"
    assert format_field_value(spec(type_, TIERS), "sILVER") == "Silver"  # as the account spells it


def test_an_unknown_option_is_refused_with_the_options():
    message = refusal(spec("dropdown", TIERS), "Platinum")
    assert message.startswith("custom field 'Tier'")
    assert "'Platinum'" in message and "'Gold', 'Silver', 'Bronze'" in message and "more" not in message


def test_at_most_five_options_are_listed():
    message = refusal(spec("radio", MANY), "Nine")
    assert "'One', 'Two', 'Three', 'Four', 'Five' and 3 more" in message
    assert "'Six'" not in message


def test_options_that_differ_only_in_case_must_be_written_exactly():
    field = spec("dropdown", ("VIP", "vip", "Regular"))
    assert format_field_value(field, "vip") == "vip"
    assert format_field_value(field, "VIP") == "VIP"
    assert format_field_value(field, "regular") == "Regular"
    assert "differ only in case" in refusal(field, "Vip")


@pytest.mark.parametrize("type_", sorted(SINGLE_OPTION_TYPES))
def test_a_single_option_field_without_options_takes_no_value(type_):
    with pytest.raises(FieldValueError, match="without options in ActiveCampaign"):
        format_field_value(spec(type_), "Whatever, really")


# --- several options ----------------------------------------------------------------------------
@pytest.mark.parametrize("type_", sorted(MULTI_OPTION_TYPES))
def test_several_options_are_matched_deduplicated_and_formatted(type_):
    field = spec(type_, TIERS)
    assert format_field_value(field, "gold, Silver ,GOLD,,") == "||Gold||Silver||"
    assert format_field_value(field, "Bronze") == "||Bronze||"
    assert format_field_value(field, "||Silver||gold||") == "||Silver||Gold||"


def test_the_separator_is_the_mappings_and_the_bar_form_ignores_it():
    field = spec("multiselect", ("a,b", "c", "d"))
    assert format_field_value(field, "c; d", separator=";") == "||c||d||"
    assert format_field_value(field, "||a,b||c||") == "||a,b||c||"
    assert "'c; d'" in refusal(field, "c; d")  # with the default separator it is one unknown value


@pytest.mark.parametrize("raw", [",", " , ,, ", "||||", "|| ||  ||"])
def test_no_value_left_leaves_the_field_out(raw):
    assert format_field_value(spec("listbox", TIERS), raw) is None


def test_unknown_values_are_refused_all_named_with_the_options():
    message = refusal(spec("multiselect", TIERS), "Gold, Platinum, Iron")
    assert message.startswith("custom field 'Tier'")
    assert "'Platinum', 'Iron' are not among its options" in message and "'Gold', 'Silver', 'Bronze'" in message


def test_a_multi_option_field_without_options_formats_without_checking():
    field = spec("multiselect")
    assert format_field_value(field, "x, y ,x") == "||x||y||"
    assert format_field_value(field, "||p||q||") == "||p||q||"
    assert "'||'" in refusal(field, "a||b, c")


@pytest.mark.parametrize("raw", ["true", "TRUE", "yes", "Y", "1", "on", "x", "X"])
def test_a_single_checkbox_takes_a_yes(raw):
    assert format_field_value(spec("checkbox", ("Subscribed",)), raw) == "||Subscribed||"


@pytest.mark.parametrize("raw", ["false", "No", "n", "0", "OFF"])
def test_a_single_checkbox_left_unticked_by_a_no(raw):
    assert format_field_value(spec("checkbox", ("Subscribed",)), raw) is None


def test_a_single_checkbox_still_takes_its_option_and_refuses_other_words():
    field = spec("checkbox", ("No",))  # an option spelled like a boolean is the option
    assert format_field_value(field, "no") == "||No||"
    message = refusal(spec("checkbox", ("Subscribed",)), "maybe")
    assert "'maybe'" in message and "'Subscribed'" in message and "yes/no" in message


@pytest.mark.parametrize("field", [spec("checkbox", ("A", "B")), spec("listbox", ("A",)), spec("multiselect", ("A",))])
def test_only_a_checkbox_with_one_option_takes_booleans(field):
    assert "'yes'" in refusal(field, "yes")


OPTIONS = st.lists(st.text(st.characters(codec="utf-8", categories=("L", "N")), min_size=1, max_size=6),
                   min_size=1, max_size=8, unique_by=str.casefold)


@given(options=OPTIONS, data=st.data(), bars=st.booleans())
@settings(max_examples=200)
def test_any_choice_of_options_comes_back_as_those_options_once_each_in_order(options, data, bars):
    chosen = data.draw(st.lists(st.sampled_from(options), max_size=10))
    # Other spellings of the same option ignoring case (upper() of a dotless ı is I, another letter).
    written = [data.draw(st.sampled_from([v for v in (o, o.upper(), o.lower(), f"  {o} ")
                                          if v.strip().casefold() == o.casefold()])) for o in chosen]
    raw = ("||" + "||".join(written) + "||") if bars else ",".join(written)
    if not raw.strip():
        return  # the caller never passes an empty value
    sent = format_field_value(spec("multiselect", tuple(options)), raw)
    expected = list(dict.fromkeys(chosen))
    if not expected:
        assert sent is None
    else:
        assert sent == "||" + "||".join(expected) + "||"
        assert sent.split("||")[1:-1] == expected
