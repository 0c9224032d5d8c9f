"""Per-export NCRONTAB schedules: what is refused and why, and occurrences exact at their boundaries."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exports.schedule import latest_occurrence, next_occurrence, schedule_problem

EXAMPLE = '"0 30 2 * * *"'
NOW = datetime(2024, 5, 1, 10, 7, 30, tzinfo=UTC)  # a Wednesday


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# --- validation ---------------------------------------------------------------------------------
@pytest.mark.parametrize("expression", [
    "0 30 2 * * *", "0 0 3 * * *", "0 */5 * * * *", "30 0-30/10 9-17 * * 1-5", "0 0 0 1,15 * *",
    "0 0 9 * * Mon-Fri", "0 0 9 * * mon,WED", "0 0 0 1 Jan,Jul *", "0 0 0 * January Monday",
    "  0   30 2 * *\t* ", "0 0 0 29 2 *", "0 0 0 31 1-3 *", "0 5/15 * * * *", "0 0 12 * * 0", "0 0 0 * * */2",
])
def test_valid_schedules(expression):
    assert schedule_problem(expression) is None


def test_five_fields_ask_for_the_seconds_first():
    problem = schedule_problem("30 2 * * *")
    assert "NCRONTAB needs the seconds field first" in problem
    assert "'0 30 2 * * *'" in problem and EXAMPLE in problem


@pytest.mark.parametrize("expression", ["", "0 30 2 *", "0 30 2 * * * 2024", "@daily"])
def test_other_field_counts_say_six(expression):
    problem = schedule_problem(expression)
    assert f"has {len(expression.split())} field" in problem and "six" in problem and EXAMPLE in problem


@pytest.mark.parametrize("expression", [None, 5, ["0", "30", "2", "*", "*", "*"], b"0 30 2 * * *"])
def test_what_is_not_text_is_refused(expression):
    problem = schedule_problem(expression)
    assert "text" in problem and EXAMPLE in problem


@pytest.mark.parametrize("seconds", ["*", "*/10", "0,30", "0-30", "60", "-1", "a", "٣"])
def test_the_seconds_field_is_one_number_because_runs_are_a_minute_apart(seconds):
    problem = schedule_problem(f"{seconds} 30 2 * * *")
    assert "seconds field" in problem and "once a minute" in problem and "single number 0-59" in problem
    assert EXAMPLE in problem


@pytest.mark.parametrize(("expression", "field", "words"), [
    ("0 60 * * * *", "minute", "0-59"),
    ("0 0 24 * * *", "hour", "0-23"),
    ("0 0 0 0 * *", "day", "1-31"),
    ("0 0 0 32 * *", "day", "1-31"),
    ("0 0 0 * 13 *", "month", "1-12"),
    ("0 0 0 * * 8", "day-of-week", "0-6"),
    ("0 */0 * * * *", "minute", "0-59"),
    ("0 0 0 * * 7", "day-of-week", "0-6"),  # cron's second Sunday is not NCRONTAB
    ("0 0 0 * Foo *", "month", "Jan"),
    ("0 0 0 * * Mo", "day-of-week", "Sun, Mon"),
    ("0 0 Mon * * *", "hour", "numbers only"),
    ("0 5-1 * * * *", "minute", "low-high"),  # NCRONTAB swaps the ends, croniter wraps: refused
    ("0 0 0 * * Sat-Sun", "day-of-week", "low-high"),
    ("0 0 0 ? * *", "day", "not NCRONTAB"),
    ("0 0 0 L * *", "day", "numbers only"),
    ("0 0 0 * * 1#2", "day-of-week", "not NCRONTAB"),
    ("0 H * * * *", "minute", "numbers only"),
    ("0 0 0 1,,2 * *", "day", "not NCRONTAB"),
    ("0 0 0 1-2-3 * *", "day", "not NCRONTAB"),
])
def test_bad_values_are_refused_naming_the_field_and_what_it_takes(expression, field, words):
    problem = schedule_problem(expression)
    assert problem.startswith(f"the {field} field") and words in problem and EXAMPLE in problem


def test_a_day_no_month_has_is_refused_as_never_running():
    problem = schedule_problem("0 0 0 30 2 *")
    assert "never occur" in problem and EXAMPLE in problem


def test_a_long_expression_is_quoted_short():
    problem = schedule_problem("0 " * 500)
    assert len(problem) < 250 and "has 500 fields" in problem


# --- occurrences --------------------------------------------------------------------------------
def test_an_occurrence_equal_to_now_counts():
    assert latest_occurrence("0 30 2 * * *", at(2024, 5, 1, 2, 30)) == at(2024, 5, 1, 2, 30)
    assert latest_occurrence("0 30 2 * * *", at(2024, 5, 1, 2, 30) + timedelta(microseconds=1)) == at(2024, 5, 1, 2, 30)
    assert latest_occurrence("0 30 2 * * *", at(2024, 5, 1, 2, 29, 59, 999999)) == at(2024, 4, 30, 2, 30)


def test_the_next_occurrence_is_strictly_after():
    assert next_occurrence("0 30 2 * * *", at(2024, 5, 1, 2, 30)) == at(2024, 5, 2, 2, 30)
    assert next_occurrence("0 30 2 * * *", at(2024, 5, 1, 2, 29, 59, 999999)) == at(2024, 5, 1, 2, 30)


def test_the_seconds_field_places_the_occurrence_within_the_minute():
    assert latest_occurrence("45 0 * * * *", at(2024, 5, 1, 10, 0, 44)) == at(2024, 5, 1, 9, 0, 45)
    assert latest_occurrence("45 0 * * * *", at(2024, 5, 1, 10, 0, 45)) == at(2024, 5, 1, 10, 0, 45)


def test_a_step_in_minutes():
    assert latest_occurrence("0 */15 * * * *", NOW) == at(2024, 5, 1, 10, 0)
    assert next_occurrence("0 */15 * * * *", NOW) == at(2024, 5, 1, 10, 15)
    assert latest_occurrence("0 */15 * * * *", at(2024, 5, 1, 10, 15)) == at(2024, 5, 1, 10, 15)
    assert latest_occurrence("0 10-50/20 * * * *", NOW) == at(2024, 5, 1, 9, 50)
    assert next_occurrence("0 10-50/20 * * * *", at(2024, 5, 1, 10, 50)) == at(2024, 5, 1, 11, 10)


def test_day_of_week_counts_from_sunday_zero():
    sunday = latest_occurrence("0 0 12 * * 0", NOW)
    assert sunday == at(2024, 4, 28, 12) and sunday.weekday() == 6
    assert latest_occurrence("0 0 12 * * Sun", NOW) == sunday
    assert next_occurrence("0 0 12 * * 6", NOW) == at(2024, 5, 4, 12)  # Saturday
    assert next_occurrence("0 0 9 * * Mon-Fri", at(2024, 5, 3, 9)) == at(2024, 5, 6, 9)  # Friday -> Monday


def test_month_and_day_names():
    assert latest_occurrence("0 0 0 1 Mar,Sep *", NOW) == at(2024, 3, 1)
    assert next_occurrence("0 0 0 1 Mar,Sep *", NOW) == at(2024, 9, 1)
    assert next_occurrence("0 0 0 * January Monday", NOW) == at(2025, 1, 6)


def test_day_and_day_of_week_must_both_match_as_in_ncrontab():
    # The first Monday of the month: cron's "either" would also run on every day 1-7 and every Monday.
    assert next_occurrence("0 0 9 1-7 * Mon", NOW) == at(2024, 5, 6, 9)
    assert latest_occurrence("0 0 9 1-7 * Mon", NOW) == at(2024, 4, 1, 9)


def test_30_february_never_occurs():
    assert latest_occurrence("0 0 0 30 2 *", NOW) is None
    with pytest.raises(ValueError, match="never runs"):
        next_occurrence("0 0 0 30 2 *", NOW)


def test_an_occurrence_more_than_400_days_ago_is_not_the_latest():
    leap_day = at(2024, 2, 29)
    assert latest_occurrence("0 0 0 29 2 *", leap_day + timedelta(days=400)) == leap_day
    assert latest_occurrence("0 0 0 29 2 *", leap_day + timedelta(days=400, seconds=1)) is None
    assert next_occurrence("0 0 0 29 2 Thu", NOW) == at(2052, 2, 29)  # rare, but it runs


def test_results_are_utc_aware_whatever_the_offset_of_now():
    paris = timezone(timedelta(hours=2))
    latest = latest_occurrence("0 30 2 * * *", datetime(2024, 5, 1, 4, 30, tzinfo=paris))  # 02:30 UTC
    following = next_occurrence("0 30 2 * * *", datetime(2024, 5, 1, 4, 30, tzinfo=paris))
    assert latest == at(2024, 5, 1, 2, 30) and following == at(2024, 5, 2, 2, 30)
    for result in (latest, following):
        assert result.utcoffset() == timedelta(0) and result.tzname() == "UTC"


def test_a_naive_time_or_an_invalid_schedule_is_a_caller_error():
    with pytest.raises(ValueError, match="timezone-aware"):
        latest_occurrence("0 30 2 * * *", datetime(2024, 5, 1))
    with pytest.raises(ValueError, match="seconds field first"):
        next_occurrence("30 2 * * *", NOW)


# Expressions and what they mean, written as plain Python: the library is checked against them.
MEANINGS = {
    "0 */15 9-17 * * Mon-Fri": lambda t: t.minute % 15 == 0 and 9 <= t.hour <= 17 and t.weekday() < 5,
    "0 0 0,12 * * 0": lambda t: t.minute == 0 and t.hour in (0, 12) and t.weekday() == 6,
    "0 45 23 1-7 * 1": lambda t: (t.minute, t.hour) == (45, 23) and t.day <= 7 and t.weekday() == 0,
    "0 5 */6 * Jan,Feb,Dec *": lambda t: t.minute == 5 and t.hour % 6 == 0 and t.month in (1, 2, 12),
}
MOMENTS = st.datetimes(min_value=datetime(2023, 1, 1), max_value=datetime(2026, 12, 31), timezones=st.just(UTC))


@given(expression=st.sampled_from(sorted(MEANINGS)), now=MOMENTS)
@settings(max_examples=150, deadline=None)
def test_occurrences_are_the_moments_the_expression_means(expression, now):
    means = MEANINGS[expression]
    latest = latest_occurrence(expression, now)
    following = next_occurrence(expression, now)
    assert latest is not None and latest <= now < following
    for moment in (latest, following):
        assert means(moment) and moment.second == 0 and moment.microsecond == 0
    # Nothing the expression means lies between them: each is the other's neighbour.
    assert next_occurrence(expression, latest) == following
    assert latest_occurrence(expression, following - timedelta(seconds=1)) == latest
    minute = now.replace(second=0, microsecond=0)
    if means(minute):
        assert latest == minute
