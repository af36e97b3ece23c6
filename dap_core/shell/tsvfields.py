"""A chunk of DAP's TSV lines as typed numpy columns, with no Python object per value.

DAP's TSV is PostgreSQL ``COPY`` text: a line a row, fields separated by tabs, ``\\N`` for
null, backslash escapes in texts.  The positions of all of a chunk's tabs and newlines,
found in one pass, give every field's first and last byte; a column is then read from those
bytes in bulk: integers digit by digit, numbers and times by numpy's parsers, texts gathered
into length-prefixed UTF-8 (Parquet's PLAIN encoding of byte arrays), with escapes undone
only in the fields that hold a backslash.  Python touches a value only there, and where a
column holds something unusual (a time with an offset): never once per row.

A value that is not of its column's type, a line of another width or bytes that are not
UTF-8 are an ``UnexpectedAnswer`` naming the line and the column: nothing is read as null
that was not ``\\N``.
"""
from __future__ import annotations

import warnings
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from .. import copytext, errors

__all__ = ["Fields", "TEXT_KINDS"]

#: the kinds of column whose values are texts (JSON ones included)
TEXT_KINDS = ("string", "json")

_TAB, _NEWLINE, _BACKSLASH, _MINUS, _ZERO = 9, 10, 92, 45, 48
#: numpy 2 parses times from bytes, fast; numpy 1.22 (setup.py's floor) crashes the process
#: (a segmentation fault) on bytes that are no time, so before numpy 2 they become str first
_BYTES_TO_TIMES = int(np.__version__.split(".")[0]) >= 2
_JOIN = b"\x1f"  # the unit separator: between the texts unescaped at once (see _unescaped)
_TRUE = (b"true", b"True", b"TRUE")  # what pandas' reader took before (README: Parquet)
_FALSE = (b"false", b"False", b"FALSE")


class Fields:
    """The fields of a chunk of whole lines, each ``width`` fields wide; line ``first_line``
    is the chunk's first (for errors).  A last line without its newline is taken whole."""

    def __init__(self, lines: bytes, width: int, first_line: int = 1,
                 describe: str = "the output") -> None:
        if lines and not lines.endswith(b"\n"):
            lines += b"\n"
        self.describe, self.first_line = describe, first_line
        self.data = data = np.frombuffer(lines, dtype=np.uint8)
        if len(data) and int(data.max()) >= 0x80 and not _utf8(data):
            raise errors.UnexpectedAnswer("a part of %s is not UTF-8" % describe)
        is_break = (data == _TAB) | (data == _NEWLINE)
        breaks = np.flatnonzero(is_break)
        self.rows = rows = int(np.count_nonzero(data == _NEWLINE))
        # a line of another width would be read as fields of its neighbours: checked first
        if len(breaks) != rows * width or (
                rows and not (data[breaks.reshape(rows, width)[:, -1]] == _NEWLINE).all()):
            raise _bad_line(lines, first_line, width, describe)
        self.lines = lines
        # a row per column (each column's fields side by side in memory)
        self.ends = ends = np.ascontiguousarray(breaks.reshape(rows, width).T)
        self.starts = starts = np.empty_like(ends)
        starts[1:] = ends[:-1] + 1
        if rows:
            starts[0, 0] = 0
            starts[0, 1:] = ends[-1, :-1] + 1
        # \\N is null; a field that holds another backslash has escapes to undo
        self.nulls = ends - starts == 2
        self.nulls &= data[starts] == _BACKSLASH
        self.nulls &= data[np.minimum(starts + 1, max(len(data) - 1, 0))] == ord("N")
        escapes = np.flatnonzero(data == _BACKSLASH)
        if len(escapes):  # those of nulls left out: a field whose whole is \\N
            after = np.minimum(escapes + 2, len(data) - 1)
            escapes = escapes[(data[escapes + 1] != ord("N")) | ~is_break[after]
                              | ((escapes > 0) & ~is_break[escapes - 1])]
        escaped = np.zeros(rows * width, dtype=bool)
        if len(escapes):  # each backslash marks the field whose end comes next
            escaped[np.searchsorted(breaks, escapes)] = True
        self._escaped = escaped.reshape(rows, width).T

    # -- one column --------------------------------------------------------------------------
    def span(self, index: int) -> Tuple[Any, Any, Any]:
        """(starts, ends, nulls) of the fields of column ``index``: ``\\N`` is null."""
        return self.starts[index], self.ends[index], self.nulls[index]

    def _present(self, index: int) -> Tuple[Any, Any, Any, Any]:
        """(which rows, their starts, their ends, nulls) of the non-null fields of column
        ``index``; which rows: a slice of all of them where none is null."""
        starts, ends, nulls = self.span(index)
        if not nulls.any():
            return slice(None), starts, ends, nulls
        present = np.flatnonzero(~nulls)
        return present, starts[present], ends[present], nulls

    def _row(self, present, at: int) -> int:
        """The row of the ``at``-th non-null field (``present`` as ``_present`` gives it)."""
        return at if isinstance(present, slice) else int(present[at])

    def column(self, kind: str, index: Optional[int], name: str) -> Tuple[Any, ...]:
        """The typed values of column ``index`` (of ``kind``, named ``name``): (values,
        nulls) of integers, booleans and times, (values,) of numbers, (PLAIN bytes, nulls) of
        texts -- all null where the part has no such column (``index`` None)."""
        if index is None:
            if kind == "number":
                return (np.full(self.rows, np.nan),)
            nulls = np.ones(self.rows, dtype=bool)
            if kind in TEXT_KINDS:
                return np.zeros(0, dtype=np.uint8), nulls
            return np.zeros(self.rows, dtype=bool if kind == "boolean" else np.int64), nulls
        if kind == "integer":
            return self.integers(index, name)
        if kind == "number":
            return (self.numbers(index, name),)
        if kind == "boolean":
            return self.booleans(index, name)
        if kind == "timestamp":
            return self.times(index, name)
        return self.texts(index)

    def integers(self, index: int, name: str) -> Tuple[Any, Any]:
        """(int64 values, nulls): an optional minus and 1 to 19 digits, within 64 bits."""
        present, starts, ends, nulls = self._present(index)
        values = np.zeros(self.rows, dtype=np.int64)
        if not len(starts):
            return values, nulls
        negative = (ends > starts) & (self.data[np.minimum(starts, len(self.data) - 1)] == _MINUS)
        digits = ends - starts - negative
        bad = (digits < 1) | (digits > 19)
        width = int(min(max(int(digits.max()), 1), 19))
        # right-aligned, a row of digits per place: the columns of the matrix are contiguous
        at = ends[None, :] - width + np.arange(width)[:, None]
        place = self.data[np.maximum(at, 0)] - np.uint8(_ZERO)
        padding = np.arange(width)[:, None] < (width - digits)[None, :]
        place[padding] = 0
        bad |= ((place > 9) & ~padding).any(axis=0)
        total = np.zeros(len(starts), dtype=np.uint64)
        for row in place:
            total *= np.uint64(10)
            total += row
        # 19 digits may pass 2**63 - 1 (2**63 with a minus): no wrap-around, an error
        bad |= (digits == 19) & (total > np.uint64(2 ** 63 - 1) + negative.astype(np.uint64))
        if bad.any():
            raise self._not_a(self._row(present, int(np.argmax(bad))), index, name, "integer")
        signed = total.view(np.int64)
        values[present] = np.where(negative, -signed, signed)
        return values, nulls

    def numbers(self, index: int, name: str) -> Any:
        """float64 values, NaN for null (as for ``NaN`` itself: Parquet's null)."""
        present, starts, ends, _ = self._present(index)
        values = np.full(self.rows, np.nan)
        if len(starts):
            texts = self._fixed(starts, ends)
            try:
                values[present] = texts.astype(np.float64)
            except ValueError:
                for at, text in enumerate(texts.tolist()):
                    try:
                        float(text)
                    except ValueError:
                        raise self._not_a(self._row(present, at), index, name,
                                          "number") from None
                raise  # pragma: no cover - numpy refused what Python takes
        return values

    def booleans(self, index: int, name: str) -> Tuple[Any, Any]:
        """(bool values, nulls): ``true`` or ``false``."""
        present, starts, ends, nulls = self._present(index)
        values = np.zeros(self.rows, dtype=bool)
        if len(starts):
            texts = self._fixed(starts, np.minimum(ends, starts + 6))
            true = np.zeros(len(texts), dtype=bool)
            false = np.zeros(len(texts), dtype=bool)
            for word in _TRUE:
                true |= texts == word
            for word in _FALSE:
                false |= texts == word
            bad = ~true & ~false
            if bad.any():
                raise self._not_a(self._row(present, int(np.argmax(bad))), index, name,
                                  "boolean")
            values[present] = true
        return values, nulls

    def times(self, index: int, name: str) -> Tuple[Any, Any]:
        """(int64 microseconds since 1970 UTC, nulls).  Times in UTC ending in ``Z``, as DAP
        writes them, are parsed by numpy in bulk; others (an offset) by pandas."""
        present, starts, ends, nulls = self._present(index)
        values = np.zeros(self.rows, dtype=np.int64)
        if not len(starts):
            return values, nulls
        parsed = None
        if (ends > starts).all() and (self.data[ends - 1] == ord("Z")).all():
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("error")  # numpy warns of an offset it applied
                    texts = self._fixed(starts, ends - 1)
                    if not _BYTES_TO_TIMES:
                        texts = texts.astype("U")
                    parsed = texts.astype("datetime64[us]")
            except (ValueError, Warning):
                parsed = None
            if parsed is not None and np.isnat(parsed).any():  # "NaTZ" is no time
                parsed = None
        if parsed is None:
            parsed = self._times_one_by_one(np.arange(self.rows)[present], index, name)
        values[present] = parsed.view(np.int64)
        return values, nulls

    def texts(self, index: int) -> Tuple[Any, Any]:
        """(the non-null texts as PLAIN byte arrays: each a 4-byte little-endian length and
        its UTF-8, in one uint8 array; nulls).  Escapes are undone one field at a time, in
        the fields that hold a backslash only."""
        present, starts, ends, nulls = self._present(index)
        starts = starts.astype(np.int64)
        lengths = ends - starts
        escaped = np.flatnonzero(self._escaped[index][present])
        data = self.data
        if len(escaped):  # their texts, decoded, after the chunk's bytes: gathered from there
            done, at, sizes = _unescaped([self.lines[start:end] for start, end in zip(
                starts[escaped].tolist(), ends[escaped].tolist())])
            data = np.concatenate([data, np.frombuffer(done, dtype=np.uint8)])
            starts[escaped] = at + len(self.data)
            lengths[escaped] = sizes
        sizes = lengths + 4
        offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        total = int(offsets[-1])
        # every byte's source: its field's bytes (a length's four come from the four bytes
        # before the field -- from the end, for the first field -- then are written over)
        source = np.arange(total, dtype=np.int64 if len(data) >= 2 ** 31 else np.int32)
        source += np.repeat((starts - offsets[:-1] - 4).astype(source.dtype), sizes)
        if len(data) < 4:  # too short to wrap around
            data = np.concatenate([data, np.zeros(4, dtype=np.uint8)])
        out = data[source]
        del source
        prefixes = lengths.astype("<u4").view(np.uint8).reshape(-1, 4)
        heads = offsets[:-1]
        for byte in range(4):
            out[heads + byte] = prefixes[:, byte]
        return out, nulls

    # -- helpers -----------------------------------------------------------------------------
    def _fixed(self, starts, ends) -> Any:
        """The fields ``starts:ends`` as a numpy array of fixed-width bytes (NUL-padded)."""
        width = max(int((ends - starts).max()), 1)
        at = starts[:, None] + np.arange(width)
        beyond = at >= ends[:, None]
        block = self.data[np.minimum(at, len(self.data) - 1)]
        block[beyond] = 0
        return np.ascontiguousarray(block).view("S%d" % width).ravel()

    def _text(self, row: int, index: int) -> str:
        start, end = int(self.starts[index, row]), int(self.ends[index, row])
        return copytext.unescape(bytes(self.data[start:end]).decode("utf-8"))

    def _times_one_by_one(self, present, index: int, name: str):
        import pandas as pd  # the parquet extra has it (fastparquet needs it)
        texts = [self._text(row, index) for row in present.tolist()]
        kwargs = {"format": "ISO8601"} if int(pd.__version__.split(".")[0]) >= 2 else {}
        try:
            times = pd.to_datetime(pd.Series(texts, dtype=object), utc=True, **kwargs)
            parsed = times.dt.tz_localize(None).to_numpy().astype("datetime64[us]")
        except (ValueError, TypeError, OverflowError) as exc:
            row = _first_bad_time(pd, texts, kwargs)
            raise errors.UnexpectedAnswer(
                "line %d of a part of %s: the column %s holds %r, not a date and time (%s)"
                % (self.first_line + int(present[row]), self.describe, name,
                   texts[row][:60], errors.one_line(exc, 200))) from None
        if np.isnat(parsed).any():
            row = int(np.argmax(np.isnat(parsed)))
            raise errors.UnexpectedAnswer(
                "line %d of a part of %s: the column %s holds %r, not a date and time"
                % (self.first_line + int(present[row]), self.describe, name, texts[row][:60]))
        return parsed

    def _not_a(self, row: int, index: int, name: str, kind: str) -> errors.DapError:
        return errors.UnexpectedAnswer(
            "line %d of a part of %s: the column %s holds %r, not of its schema's type %s"
            % (self.first_line + int(row), self.describe, name,
               self._text(int(row), index)[:60], kind))


def _utf8(data) -> bool:
    """Whether bytes ``data`` (a uint8 array) are UTF-8, judged at its bytes of 0x80 and up
    only: each lead byte is followed by as many continuation bytes as it says (the second
    within the range that rules out overlong forms, surrogates and code points past
    U+10FFFF), and no continuation byte is left over."""
    high = np.flatnonzero(data >= 0x80)
    byte = data[high]
    if ((byte == 0xC0) | (byte == 0xC1) | (byte >= 0xF5)).any():
        return False
    last = len(data) - 1

    def follows(leads, count: int) -> Any:  # the count-th byte after each lead
        return data[np.minimum(leads + count, last)]

    def continuing(value) -> Any:
        return (value & 0xC0) == 0x80

    claimed = 0
    for low, high_lead, size in ((0xC2, 0xDF, 2), (0xE0, 0xEF, 3), (0xF0, 0xF4, 4)):
        leads = high[(byte >= low) & (byte <= high_lead)]
        if not len(leads):
            continue
        if (leads + size - 1 > last).any():
            return False
        second = follows(leads, 1)
        first = data[leads]
        floor = np.full(len(leads), 0x80)
        ceiling = np.full(len(leads), 0xBF)
        if size == 3:
            floor[first == 0xE0] = 0xA0    # no overlong forms
            ceiling[first == 0xED] = 0x9F  # no surrogates
        elif size == 4:
            floor[first == 0xF0] = 0x90
            ceiling[first == 0xF4] = 0x8F  # nothing past U+10FFFF
        if ((second < floor) | (second > ceiling)).any():
            return False
        for count in range(2, size):
            if not continuing(follows(leads, count)).all():
                return False
        claimed += len(leads) * (size - 1)
    return claimed == int(np.count_nonzero(continuing(byte)))


def _unescaped(raw: List[bytes]) -> Tuple[bytes, Any, List[int]]:
    """The texts of fields ``raw`` with their escapes undone, as UTF-8 one after the other
    (a byte between them), where each begins and its size.  All are unescaped at once,
    joined by a character no escape makes and that splits them again -- unless one of
    them holds it: then one by one."""
    joined = _JOIN.join(raw).decode("utf-8")
    done = copytext.unescape(joined).encode("utf-8", "surrogatepass")
    texts = done.split(_JOIN)
    if len(texts) != len(raw):
        texts = [copytext.unescape(r.decode("utf-8")).encode("utf-8", "surrogatepass")
                 for r in raw]
        done = _JOIN.join(texts)
    sizes = [len(text) for text in texts]
    at = np.zeros(len(texts), dtype=np.int64)
    np.cumsum(np.array(sizes[:-1], dtype=np.int64) + 1, out=at[1:])
    return done, at, sizes


def _first_bad_time(pd, texts: Sequence[str], kwargs) -> int:
    for row, text in enumerate(texts):
        try:
            if pd.isna(pd.to_datetime(text, utc=True, **kwargs)):
                return row
        except (ValueError, TypeError, OverflowError):
            return row
    return 0  # pragma: no cover - the column failed, yet no value alone does


def _bad_line(lines: bytes, first_line: int, width: int, describe: str) -> errors.DapError:
    for number, line in enumerate(lines.split(b"\n")[:-1], first_line):
        fields = line.count(b"\t") + 1
        if fields != width:
            return errors.UnexpectedAnswer(
                "line %d of a part of %s has %d fields where its header has %d"
                % (number, describe, fields, width))
    return errors.UnexpectedAnswer("a part of %s is not TSV" % describe)  # pragma: no cover

