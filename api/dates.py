"""Date and time query parameters: parsed exactly as pydantic parses them, refused with the part that is wrong.

Pydantic refuses ``2026-11-30T25:00:00Z`` with "unexpected extra characters at the end of the
input" (the complaint of its fallback to a plain date). When pydantic refuses a value,
:func:`explain` takes the text apart field by field and names the wrong one ("hour 25 is out of
range 0-23"). What pydantic accepts is unchanged, and so is the OpenAPI schema (``date-time``,
``date``). A date alone as a range end (:data:`EndValue`) covers that whole day.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Annotated, Any

from pydantic import ValidationError, WrapValidator
from pydantic_core import PydanticCustomError

DATETIME_EXAMPLE = "2026-11-30T00:00:00Z"
DATE_EXAMPLE = "2026-11-30"

_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_TIME = re.compile(r"(\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?")
_ZONE = re.compile(r"[Zz]|[+-](\d{2}):?(\d{2})")


def _out_of_range(name: str, value: int, low: int, high: int) -> str | None:
    return None if low <= value <= high else f"{name} {value} is out of range {low}-{high}"


def _date_problem(text: str) -> tuple[str | None, int]:
    """What is wrong with the date at the start of ``text`` (None if nothing), and where it ends."""
    match = _DATE.match(text)
    if match is None:
        return "it does not start with a date YYYY-MM-DD", 0
    year, month, day = (int(part) for part in match.groups())
    problem = _out_of_range("year", year, 1, 9999) or _out_of_range("month", month, 1, 12)
    if problem is None:
        last = calendar.monthrange(year, month)[1]
        if not 1 <= day <= last:
            problem = f"day {day} is out of range 1-{last} for {year:04d}-{month:02d}"
    return problem, match.end()


def _time_problem(text: str) -> str | None:
    """What is wrong with ``text``, the part after the date (``T``, the time, the zone)."""
    if text[0] not in "Tt ":
        return f"expected 'T' and a time after the date, found {text!r}"
    match = _TIME.match(text, 1)
    if match is None:
        return f"the time {text[1:]!r} is not HH:MM[:SS[.ffffff]]"
    hour, minute, second = (int(part) if part else 0 for part in match.groups()[:3])
    problem = (
        _out_of_range("hour", hour, 0, 23)
        or _out_of_range("minute", minute, 0, 59)
        or _out_of_range("second", second, 0, 59)
    )
    if problem:
        return problem
    zone = text[match.end() :]
    if not zone:
        return None
    zone_match = _ZONE.fullmatch(zone)
    if zone_match is None:
        return f"the time zone {zone!r} is not Z or +HH:MM / -HH:MM"
    if zone_match.group(1) is not None:
        return _out_of_range("time zone hour", int(zone_match.group(1)), 0, 23) or _out_of_range(
            "time zone minute", int(zone_match.group(2)), 0, 59
        )
    return None


def explain(value: str, *, with_time: bool) -> str:
    """Why ``value`` is not an ISO 8601 date and time (``with_time``) or date, naming the wrong part."""
    text = value.strip()
    what, example = ("datetime", DATETIME_EXAMPLE) if with_time else ("date", DATE_EXAMPLE)
    problem, end = _date_problem(text)
    rest = text[end:]
    if problem is None and rest:
        problem = _time_problem(rest) if with_time else f"unexpected {rest!r} after the date"
    if problem is None:
        problem = "it is not in ISO 8601 form"
    return f"{value[:64]!r} is not a valid {what}: {problem} (use ISO 8601, such as {example})"


def _validator(with_time: bool, whole_day: bool = False) -> Callable[[Any, Any], Any]:
    def validate(value: Any, handler: Any) -> Any:
        try:
            parsed = handler(value)
        except ValidationError:
            if not isinstance(value, str):
                raise
            kind = "datetime_parsing" if with_time else "date_parsing"
            raise PydanticCustomError(kind, "{reason}", {"reason": explain(value, with_time=with_time)}) from None
        if whole_day and isinstance(value, str) and _DATE.fullmatch(value.strip()) and parsed.date() < date.max:
            return parsed + timedelta(days=1)
        return parsed

    return validate


#: A query parameter holding a date and time (or a date: midnight UTC), refused with the wrong part named.
DateTimeValue = Annotated[datetime, WrapValidator(_validator(with_time=True))]
#: A range end: a date and time (exclusive), or a date alone, which covers that whole UTC day
#: (the value is the next midnight).
EndValue = Annotated[datetime, WrapValidator(_validator(with_time=True, whole_day=True))]
#: A query parameter holding a date, refused with the wrong part named.
DateValue = Annotated[date, WrapValidator(_validator(with_time=False))]
