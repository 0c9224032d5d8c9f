"""Per-export schedules in NCRONTAB, the Functions timer's format: checked, and their occurrences worked out.

Six fields, `{second} {minute} {hour} {day} {month} {day-of-week}`, in UTC. croniter evaluates them;
this module keeps to the syntax NCRONTAB has, so a schedule means here what it means to Azure.
It imports nothing of the app, so any layer may use it.
"""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from croniter import CroniterBadDateError, CroniterError, croniter

EXAMPLE = '"0 30 2 * * *" (daily at 02:30 UTC)'
FORMAT = "{second} {minute} {hour} {day} {month} {day-of-week}"
LOOK_BACK = timedelta(days=400)  # an occurrence longer ago than this is not "the latest" a run catches up on

_FIELDS = ("second", "minute", "hour", "day", "month", "day-of-week")
_ALLOWED = ("0-59", "0-59", "0-23", "1-31", "1-12 or Jan-Dec", "0-6 with Sunday 0, or Sun-Sat")
_MONTH, _DAY_OF_WEEK = 4, 5
_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december")
_DAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
# One item of a field's list: *, a value or a range a-b, each with an optional step /n. NCRONTAB
# has nothing else (no ?, L, W, #, H or @daily), so croniter's extensions are refused.
_ITEM = re.compile(r"(\*|(\w+)(?:-(\w+))?)(?:/(\d+))?", re.ASCII)
_SHOWN_CHARACTERS = 40
_REASON_CHARACTERS = 120
# croniter quotes the expression, and numbers the fields its own way (minute 0): neither helps.
_LIBRARY_WORDS = re.compile(r"^\[[^\]]*\]\s*(?:is not acceptable[.,]?\s*)?|\s+in field \d+")


def _shown(text: str) -> str:
    if len(text) > _SHOWN_CHARACTERS:
        text = text[:_SHOWN_CHARACTERS - 1] + "…"
    return repr(text)


def _reason(error: Exception) -> str:
    reason = _LIBRARY_WORDS.sub("", str(error)).strip() or type(error).__name__
    return reason if len(reason) <= _REASON_CHARACTERS else reason[:_REASON_CHARACTERS - 1] + "…"


def _value(index: int, token: str) -> tuple[int | None, str | None]:
    """A field value (a number, or a month or day name) as its number, or why it is refused."""
    if token.isdigit():
        return int(token), None
    names = {_MONTH: _MONTHS, _DAY_OF_WEEK: _DAYS}.get(index)
    if names is None:
        return None, "takes numbers only"
    lowered = token.lower()
    for number, name in enumerate(names, start=1 if index == _MONTH else 0):
        if lowered in (name, name[:3]):
            return number, None
    return None, "takes three-letter English names (" + ("Jan, Feb, …" if index == _MONTH else "Sun, Mon, …") + ")"


def _field_problem(index: int, field: str) -> str | None:
    """Why field `index` is not NCRONTAB, in the syntax's terms; the values' ranges are croniter's to check."""
    for item in field.split(","):
        match = _ITEM.fullmatch(item)
        if not match:
            return (f"{_shown(item)} is not NCRONTAB: a field is *, numbers, ranges a-b, steps */n or a-b/n, "
                    "or a list of them a,b")
        values = []
        for token in match.group(2, 3):
            if token is None:
                continue
            number, problem = _value(index, token)
            if problem:
                return f"{_shown(token)} is not a value: the field {problem}"
            values.append(number)
        if index == _DAY_OF_WEEK and 7 in values:
            return "7 is not a day: NCRONTAB's days are 0-6, Sunday being 0"
        if len(values) == 2 and values[0] > values[1]:
            # NCRONTAB swaps the ends, croniter wraps around: the two would run at different times.
            return f"{_shown(item)} is a range from high to low: write it low-high, or as a list"
    return None


def _normalised(fields: list[str]) -> str:
    # Full names (Monday, January) are NCRONTAB; croniter takes only the three-letter ones.
    def short(match: re.Match) -> str:
        return match.group()[:3]
    return " ".join(fields[:_MONTH] + [re.sub(r"[A-Za-z]{4,}", short, field) for field in fields[_MONTH:]])


def _problem(expression: object, strict: bool) -> str | None:
    if not isinstance(expression, str):
        return f"a schedule is text: six fields, {FORMAT}, e.g. {EXAMPLE}"
    fields = expression.split()
    if len(fields) == 5:
        return (f"{_shown(expression)} has 5 fields: NCRONTAB needs the seconds field first ({FORMAT}), "
                f"so {_shown('0 ' + ' '.join(fields))} runs at those times; e.g. {EXAMPLE}")
    if len(fields) != 6:
        count = "1 field" if len(fields) == 1 else f"{len(fields)} fields"
        return f"{_shown(expression)} has {count}: NCRONTAB has six, {FORMAT}, e.g. {EXAMPLE}"
    second = fields[0]
    if not (second.isascii() and second.isdigit() and int(second) <= 59):
        return (f"the seconds field is {_shown(second)}: an export runs at most once a minute, so it must be a "
                f"single number 0-59 (usually 0), not *, a step, a list or a range; e.g. {EXAMPLE}")
    for index in range(1, 6):
        if problem := _field_problem(index, fields[index]):
            return f"the {_FIELDS[index]} field: {problem}; e.g. {EXAMPLE}"
        # The field alone, so that a value out of range is reported against the field it is in.
        alone = ["0", "*", "*", "*", "*", "*"]
        alone[index] = fields[index]
        try:
            croniter.expand(_normalised(alone), second_at_beginning=True)
        except CroniterError as error:
            return (f"the {_FIELDS[index]} field {_shown(fields[index])} is not valid ({_reason(error)}): "
                    f"it takes {_ALLOWED[index]}; e.g. {EXAMPLE}")
    try:
        croniter.expand(_normalised(fields), second_at_beginning=True, strict=strict)
    except CroniterError as error:
        return f"{_shown(expression)} is not a schedule that runs: {_reason(error)}; e.g. {EXAMPLE}"
    return None


def schedule_problem(expression: object) -> str | None:
    """None for a valid schedule, else what is wrong with it, with an example.

    Also refuses a day no month has (30 February), which NCRONTAB accepts and never runs."""
    return _problem(expression, strict=True)


def _schedule(expression: str, start: datetime, years: int) -> croniter:
    if problem := _problem(expression, strict=False):
        raise ValueError(problem)
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError("the time must be timezone-aware (UTC)")
    # NCRONTAB requires both the day and the day-of-week to match; cron's "either" (day_or) is not it.
    return croniter(_normalised(expression.split()), start.astimezone(UTC), ret_type=datetime, day_or=False,
                    second_at_beginning=True, max_years_between_matches=years)


def latest_occurrence(expression: str, now: datetime) -> datetime | None:
    """The schedule's most recent occurrence at or before `now` (UTC-aware), or None if none in LOOK_BACK."""
    # Occurrences fall on whole seconds and croniter's previous one is strictly before its start,
    # so starting just after now's second counts an occurrence equal to now.
    start = now.replace(microsecond=0) + timedelta(seconds=1)
    try:
        # Two years cover LOOK_BACK, and keep a schedule that never runs from being searched for 50.
        occurrence = _schedule(expression, start, years=2).get_prev()
    except CroniterBadDateError:  # none within those years: 30 February, say
        return None
    occurrence = occurrence.astimezone(UTC)
    return occurrence if occurrence >= now - LOOK_BACK else None


def next_occurrence(expression: str, after: datetime) -> datetime:
    """The schedule's first occurrence strictly after `after` (UTC-aware).

    Raises ValueError for a schedule that never runs (30 February): none in croniter's 50 years."""
    try:
        occurrence = _schedule(expression, after.replace(microsecond=0), years=50).get_next()
    except CroniterBadDateError as error:
        raise ValueError(f"{_shown(expression)} never runs: {_reason(error)}") from None
    return occurrence.astimezone(UTC)
