"""ISO 8601 timestamps as DAP speaks them: a zone is required, everything is kept in UTC.

Accepted: `2024-07-13T09:30:00Z`, `...+02:00`, `...+0200`, `...+02`, fractional seconds of
any length (digits past microseconds are cut off, never rounded up, so an inclusive `since`
never moves later), minutes without seconds (`09:30Z`), `t`/`z` in lower case and a space
instead of `T` (RFC 3339 allows both). Refused with a message that says what to add: a text
without a zone (naive) and a date without a time (it does not say which midnight).
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Union

from .errors import InvalidTimestamp

__all__ = ["parse_timestamp", "format_timestamp", "format_timestamp_basic", "to_utc"]

_PATTERN = re.compile(
    r"""
    (?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})
    (?:[Tt\ ]
       (?P<hour>\d{2}):(?P<minute>\d{2})
       (?::(?P<second>\d{2})(?:[.,](?P<fraction>\d+))?)?
       (?P<zone>[Zz]|[+-]\d{2}(?::?\d{2})?)?
    )?
    """,
    re.VERBOSE | re.ASCII,
)

_EXAMPLE = "2024-07-13T09:30:00Z"


def _refuse(text: str, why: str) -> InvalidTimestamp:
    return InvalidTimestamp("timestamp %r %s" % (text, why),
                            "write it like %s (Z for UTC) or with an offset such as "
                            "2024-07-13T11:30:00+02:00" % _EXAMPLE)


def _zone(text: str, zone: str) -> timezone:
    if zone in ("Z", "z"):
        return timezone.utc
    digits = zone[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 23 or minutes > 59:
        raise _refuse(text, "has an offset out of range (%s)" % zone)
    offset = timedelta(hours=hours, minutes=minutes)
    return timezone(-offset if zone[0] == "-" else offset)


def parse_timestamp(text: Union[str, datetime]) -> datetime:
    """An aware datetime in UTC from an ISO 8601 text with a zone; `InvalidTimestamp` otherwise."""
    if isinstance(text, datetime):
        return to_utc(text)
    if not isinstance(text, str):
        raise InvalidTimestamp("a timestamp must be text, not %s" % type(text).__name__,
                               "write it like %s" % _EXAMPLE)
    stripped = text.strip()
    match = _PATTERN.fullmatch(stripped)
    if match is None:
        raise _refuse(text, "is not an ISO 8601 date and time")
    if match.group("hour") is None:
        raise InvalidTimestamp(
            "timestamp %r is a date without a time and zone" % text,
            "add a time and a zone, e.g. %sT00:00:00Z for midnight UTC" % stripped)
    if match.group("zone") is None:
        raise InvalidTimestamp(
            "timestamp %r has no zone" % text,
            "add Z for UTC (%sZ) or an offset such as +02:00" % stripped)
    fraction = (match.group("fraction") or "")[:6].ljust(6, "0")
    try:
        local = datetime(
            int(match.group("year")), int(match.group("month")), int(match.group("day")),
            int(match.group("hour")), int(match.group("minute")), int(match.group("second") or 0),
            int(fraction), tzinfo=_zone(text, match.group("zone")))
    except ValueError as exc:  # month 13, 25 o'clock, Feb 30, second 60
        raise _refuse(text, "is not a valid date and time (%s)" % exc) from None
    return to_utc(local, text)


def to_utc(value: datetime, text: Union[str, None] = None) -> datetime:
    """`value` (aware) converted to UTC; a naive datetime is refused like a naive text."""
    if not isinstance(value, datetime):
        raise InvalidTimestamp("expected a datetime, not %s" % type(value).__name__)
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidTimestamp("datetime %s has no zone" % value.isoformat(),
                               "give it a tzinfo, e.g. timezone.utc")
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:
        raise _refuse(text or value.isoformat(),
                      "lies outside the years 1 to 9999 in UTC") from None


def _fraction(dt: datetime) -> str:
    return (".%06d" % dt.microsecond).rstrip("0") if dt.microsecond else ""


def format_timestamp(dt: datetime) -> str:
    """`2024-07-13T09:30:00Z`; with `.ffffff` (trailing zeros trimmed) when there are
    microseconds."""
    utc = to_utc(dt)
    # by hand, not strftime: %Y does not pad years before 1000 on every platform
    return "%04d-%02d-%02dT%02d:%02d:%02d%sZ" % (
        utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, _fraction(utc))


def format_timestamp_basic(dt: datetime) -> str:
    """ISO 8601 basic format for file names: `20240713T093000Z` (`20240713T093000.25Z`)."""
    utc = to_utc(dt)
    return "%04d%02d%02dT%02d%02d%02d%sZ" % (
        utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, _fraction(utc))
