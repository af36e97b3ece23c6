"""Query values: what to ask DAP for, validated before any request is made."""
from __future__ import annotations

import difflib
import enum
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Dict, Final, Iterable, Literal, Optional, Tuple, Union

from .errors import InvalidInput
from .timestamps import format_timestamp, parse_timestamp

__all__ = [
    "FORMATS", "MODES", "WIRE_FORMATS", "ALL", "parse_format", "parse_mode", "check_name",
    "parse_tables", "expand_tables", "wire_format", "SnapshotQuery", "IncrementalQuery",
    "Query", "equivalent_since_texts", "check_window", "check_stdout_format",
]

FORMATS = ("jsonl", "json", "csv", "tsv", "parquet")
MODES = ("expanded", "condensed")
# What DAP is asked for, per output format: JSON arrays are framed from JSONL lines, and
# Parquet is written locally from TSV (the columns already flat) with types from the schema.
WIRE_FORMATS = {"jsonl": "jsonl", "json": "jsonl", "csv": "csv", "tsv": "tsv", "parquet": "tsv"}

_NAME = re.compile(r"[a-z][a-z0-9_]*", re.ASCII)
_MAX_NAME = 128


class _All(enum.Enum):
    """The table list `all`: every table of the namespace, as the service lists them (an
    enum's one member, so that type checkers narrow `spec is ALL`)."""

    ALL = "all"

    def __repr__(self) -> str:
        return "ALL"

    __str__ = __repr__


ALL: Final = _All.ALL
TableSpec = Union[Tuple[str, ...], Literal[_All.ALL]]


def parse_format(text: str) -> str:
    """One of FORMATS, case-insensitive."""
    fmt = str(text).strip().lower()
    if fmt not in FORMATS:
        raise InvalidInput("unknown format %r" % text, "use one of " + ", ".join(FORMATS))
    return fmt


def parse_mode(text: Optional[str]) -> Optional[str]:
    """One of MODES, case-insensitive, or None (DAP's default, expanded)."""
    if text is None or str(text).strip() == "":
        return None
    mode = str(text).strip().lower()
    if mode not in MODES:
        raise InvalidInput("unknown mode %r" % text, "use one of " + ", ".join(MODES))
    return mode


def check_name(kind: str, text: str) -> str:
    """`text` if it is a valid namespace or table name (it ends up in URLs and file names)."""
    if isinstance(text, str) and len(text) <= _MAX_NAME and _NAME.fullmatch(text):
        return text
    hint = "use lower-case letters, digits and _, starting with a letter"
    if isinstance(text, str) and _NAME.fullmatch(text.strip().lower()):
        hint = "did you mean %r?" % text.strip().lower()
    raise InvalidInput("%s name %r is not valid" % (kind, text), hint)


def parse_tables(text: str) -> TableSpec:
    """`a,b` -> ("a", "b") (duplicates dropped, order kept); `all` -> ALL."""
    names = [part.strip() for part in str(text).split(",") if part.strip()]
    if not names:
        raise InvalidInput("no table given", "name one or more tables (a,b) or all")
    if any(name.lower() == "all" for name in names):
        if len(names) > 1:
            raise InvalidInput("`all` cannot be combined with table names in %r" % text,
                               "ask for all, or list the tables")
        return ALL
    return tuple(dict.fromkeys(check_name("table", name) for name in names))


def expand_tables(spec: TableSpec, available: Iterable[str]) -> Tuple[str, ...]:
    """The tables to query: all of `available` for ALL, else `spec` if each one exists."""
    known = tuple(dict.fromkeys(available))
    if spec is ALL:
        return known
    unknown = [name for name in spec if name not in known]
    if unknown:
        close = [m for name in unknown for m in difflib.get_close_matches(name, known, n=1)]
        hint = "did you mean %s?" % ", ".join(close) if close else "list the tables with dap list"
        raise InvalidInput("unknown table%s: %s" % ("s" if len(unknown) > 1 else "",
                                                    ", ".join(unknown)), hint)
    return tuple(spec)


def wire_format(output_format: str) -> str:
    """The format DAP is asked for, given the format the user wants written."""
    return WIRE_FORMATS[parse_format(output_format)]


def check_window(since: Optional[datetime], until: Optional[datetime]) -> None:
    """Refuse a window whose `until` is not after its `since` (either may be left out)."""
    if since is not None and until is not None and until <= since:
        raise InvalidInput("until (%s) is not after since (%s)" % (
            format_timestamp(until), format_timestamp(since)),
            "give an --until later than --since, or leave --until out")


def check_stdout_format(output_format: str, several: bool = False) -> str:
    """`output_format` if records in it can go to one stream (stdout): not Parquet (written
    by name, in place), and for several tables only JSON Lines (CSV and TSV headers or
    JSON arrays of different tables would run together)."""
    fmt = parse_format(output_format)
    if fmt == "parquet":
        raise InvalidInput("Parquet cannot be written to stdout",
                           "use --output-directory DIR, or another --format")
    if several and fmt != "jsonl":
        raise InvalidInput("several tables can go to stdout only as jsonl, not %s" % fmt,
                           "use --format jsonl, one table, or --output-directory DIR")
    return fmt


def _validate_common(query: Any) -> None:
    # frozen dataclasses: normalised values are set once, here
    object.__setattr__(query, "namespace", check_name("namespace", query.namespace))
    object.__setattr__(query, "table", check_name("table", query.table))
    object.__setattr__(query, "format", parse_format(query.format))
    object.__setattr__(query, "mode", parse_mode(query.mode))


def _body(query: Any) -> Dict[str, Any]:
    body: Dict[str, Any] = {"format": wire_format(query.format)}
    if query.mode is not None:
        body["mode"] = query.mode
    return body


@dataclass(frozen=True)
class SnapshotQuery:
    """The whole table as it is now."""

    namespace: str
    table: str
    format: str = "jsonl"
    mode: Optional[str] = None

    kind = "snapshot"

    def __post_init__(self) -> None:
        _validate_common(self)

    @property
    def wire_format(self) -> str:
        return wire_format(self.format)

    def body(self) -> Dict[str, Any]:
        """The JSON body of `POST .../data` (no `filter`: it was never implemented)."""
        return _body(self)


@dataclass(frozen=True)
class IncrementalQuery:
    """The changes in [since, until); `until` None asks for everything DAP has."""

    namespace: str
    table: str
    since: datetime
    until: Optional[datetime] = None
    format: str = "jsonl"
    mode: Optional[str] = None

    kind = "incremental"

    def __post_init__(self) -> None:
        _validate_common(self)
        since = _timestamp("since", self.since)
        object.__setattr__(self, "since", since)
        if self.until is not None:
            until = _timestamp("until", self.until)
            check_window(since, until)
            object.__setattr__(self, "until", until)

    @property
    def wire_format(self) -> str:
        return wire_format(self.format)

    def body(self, variant: int = 0) -> Dict[str, Any]:
        """The JSON body of `POST .../data`. `variant` 0 writes `since` the canonical way
        (`format_timestamp`); variant k >= 1 writes the same instant the k-th other way,
        cycling through `equivalent_since_texts` (see `jobs.decide_created_job`, "ask_again")."""
        body = _body(self)
        if variant:
            others = equivalent_since_texts(self.since)
            body["since"] = others[(variant - 1) % len(others)]
        else:
            body["since"] = format_timestamp(self.since)
        if self.until is not None:
            body["until"] = format_timestamp(self.until)
        return body


Query = Union[SnapshotQuery, IncrementalQuery]

# Other ways to write `since` than format_timestamp's (`Z`, fraction trimmed): UTC as `Z` or
# `+00:00` with zero fractions written out, then the local time at an offset (whole quarter
# hours up to 14 hours, the offsets zones really use), nearest to UTC first.  Each is ISO
# 8601 / RFC 3339 with a zone, the same instant; there are hundreds, so that runs which ask
# again (see jobs.decide_created_job) seldom pick a form an earlier run already used.
_UTC_ZONES = ("Z", "+00:00")
_ZERO_FRACTIONS = ("", ".000", ".000000")
_OFFSETS = tuple(sign * quarter * 15 for quarter in range(1, 14 * 4 + 1) for sign in (1, -1))


def _offset_text(minutes: int) -> str:
    return "%s%02d:%02d" % ("+" if minutes >= 0 else "-", abs(minutes) // 60, abs(minutes) % 60)


def _local_text(utc: datetime, minutes: int) -> Optional[str]:
    """`utc` as a local date and time at an offset of `minutes`, without the zone."""
    try:
        local = utc + timedelta(minutes=minutes)
    except OverflowError:  # the local date would leave the years 1 to 9999
        return None
    return "%04d-%02d-%02dT%02d:%02d:%02d" % (
        local.year, local.month, local.day, local.hour, local.minute, local.second)


def equivalent_since_texts(dt: datetime) -> Tuple[str, ...]:
    """Other texts for the instant `dt` (never `format_timestamp(dt)` itself), in a fixed
    order, each read back by `parse_timestamp` as `dt`, none twice; never empty."""
    utc = parse_timestamp(dt)
    canonical = format_timestamp(utc)
    if utc.microsecond:
        six = ".%06d" % utc.microsecond
        fractions: Tuple[str, ...] = tuple(dict.fromkeys((six, six.rstrip("0"))))
    else:
        fractions = _ZERO_FRACTIONS
    seconds = canonical[:19]  # YYYY-MM-DDTHH:MM:SS, padded by hand like format_timestamp
    texts = [seconds + fraction + zone for fraction in fractions for zone in _UTC_ZONES]
    for minutes in _OFFSETS:
        local = _local_text(utc, minutes)
        if local is not None:
            texts.extend(local + fraction + _offset_text(minutes) for fraction in fractions)
    return tuple(t for t in dict.fromkeys(texts) if t != canonical)


def _timestamp(name: str, value: Any) -> datetime:
    if value is None:
        raise InvalidInput("an incremental query needs %s" % name,
                           "pass --since, or chain from a snapshot with a state file")
    try:
        return parse_timestamp(value)
    except InvalidInput as exc:
        exc.message = "%s: %s" % (name, exc.message)
        raise
