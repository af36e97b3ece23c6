"""``tsvfields.Fields`` reads a chunk of COPY-text lines column by column, in bulk: every value
comes back as the test wrote it (the lines are written here, by hand, from Python values),
and every line that is not the table's TSV is an ``UnexpectedAnswer`` naming its line and
column, never a value read wrong."""
from __future__ import annotations

import datetime as dt
import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dap_core.errors import UnexpectedAnswer

np = pytest.importorskip("numpy")  # the parquet extra's: Python 3.8's lowest job has none

from dap_core.shell.tsvfields import Fields, _utf8  # noqa: E402

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
INT64 = st.integers(min_value=-2 ** 63, max_value=2 ** 63 - 1)
TIMES = st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31, 23, 59))
TEXTS = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30) | \
    st.text(st.sampled_from("\\\t\n\r\x1f\x00Nab é"), max_size=12)


def escaped(text: str) -> str:
    """``text`` as a COPY-text field (the escapes PostgreSQL writes, by hand)."""
    for raw, code in (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")):
        text = text.replace(raw, code)
    return text


def time_text(when: dt.datetime, digits: int) -> str:
    text = when.strftime("%Y-%m-%dT%H:%M:%S").rjust(19, "0")
    if digits:
        text += "." + ("%06d" % when.microsecond)[:digits]
    return text + "Z"


def micros(when: dt.datetime, digits: int) -> int:
    kept = int(("%06d" % when.microsecond)[:digits].ljust(6, "0")) if digits else 0
    whole = when.replace(microsecond=0, tzinfo=dt.timezone.utc) - EPOCH
    return (whole.days * 86400 + whole.seconds) * 1_000_000 + kept


def plain_texts(plain) -> list:
    """The texts of PLAIN-encoded byte arrays (a 4-byte little-endian length, then UTF-8)."""
    raw, out, at = bytes(plain), [], 0
    while at < len(raw):
        (size,) = struct.unpack_from("<I", raw, at)
        out.append(raw[at + 4:at + 4 + size].decode("utf-8"))
        at += 4 + size
    return out


def chunk(rows) -> bytes:
    return "".join("\t".join(fields) + "\n" for fields in rows).encode("utf-8")


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.none() | INT64, st.none() | st.floats(allow_nan=False),
                          st.none() | st.booleans(), st.none() | TIMES,
                          st.integers(0, 6), st.none() | TEXTS), min_size=1, max_size=40))
def test_every_value_comes_back_as_written(rows):
    lines = chunk([("\\N" if i is None else str(i),
                    "\\N" if f is None else repr(f),
                    "\\N" if b is None else ("true" if b else "false"),
                    "\\N" if t is None else time_text(t, digits),
                    "\\N" if s is None else escaped(s))
                   for i, f, b, t, digits, s in rows])
    fields = Fields(lines, 5)
    assert fields.rows == len(rows)
    values, nulls = fields.integers(0, "i")
    assert [None if n else int(v) for v, n in zip(values, nulls)] == [r[0] for r in rows]
    numbers = fields.numbers(1, "f")
    assert [None if math.isnan(v) else (math.copysign(1, v), v.hex()) for v in numbers] == [
        None if r[1] is None else (math.copysign(1, r[1]), r[1].hex()) for r in rows]
    values, nulls = fields.booleans(2, "b")
    assert [None if n else bool(v) for v, n in zip(values, nulls)] == [r[2] for r in rows]
    values, nulls = fields.times(3, "t")
    assert [None if n else int(v) for v, n in zip(values, nulls)] == [
        None if r[3] is None else micros(r[3], r[4]) for r in rows]
    plain, nulls = fields.texts(4)
    assert plain_texts(plain) == [r[5] for r in rows if r[5] is not None]
    assert nulls.tolist() == [r[5] is None for r in rows]


def test_the_text_backslash_n_is_a_text_and_escapes_of_every_kind_are_undone():
    lines = chunk([["\\\\N"], ["\\N"], ["a\\Nb"], ["oct \\101 hex \\x42 \\b\\f\\v"],
                   ["\\\\\\t"], [""], ["x\\\\"]])
    plain, nulls = Fields(lines, 1).texts(0)
    assert nulls.tolist() == [False, True, False, False, False, False, False]
    assert plain_texts(plain) == ["\\N", "aNb", "oct A hex B \b\f\v", "\\\t", "", "x\\"]


def test_a_text_holding_the_unit_separator_or_making_one_is_unescaped_alone():
    lines = chunk([["a\x1fb\\t"], ["\\037c\\n"], ["plain\\\\"]])
    plain, _ = Fields(lines, 1).texts(0)
    assert plain_texts(plain) == ["a\x1fb\t", "\x1fc\n", "plain\\"]


def test_times_with_an_offset_or_without_z_are_read_by_pandas_as_the_same_instant():
    lines = chunk([["2024-07-13T11:30:00+02:00"], ["2024-07-13T09:30:00.5Z"]])
    values, nulls = Fields(lines, 1).times(0, "t")
    assert values.tolist() == [
        micros(dt.datetime(2024, 7, 13, 9, 30), 0),
        micros(dt.datetime(2024, 7, 13, 9, 30, 0, 500000), 1)] and not nulls.any()


def test_a_last_line_without_its_newline_is_a_whole_row():
    fields = Fields(b"1\ta\n2\tb", 2, first_line=2)
    assert fields.rows == 2 and fields.integers(0, "k")[0].tolist() == [1, 2]


@pytest.mark.parametrize("field,kind,says", [
    ("12a", "integer", "integer"), ("", "integer", "integer"), ("-", "integer", "integer"),
    ("9223372036854775808", "integer", "integer"), ("12345678901234567890", "integer", "integer"),
    ("1,5", "number", "number"), ("", "number", "number"),
    ("yes", "boolean", "boolean"), ("truer", "boolean", "boolean"), ("t", "boolean", "boolean"),
    ("next tuesday", "timestamp", "date and time"), ("NaTZ", "timestamp", "date and time"),
    ("2024-02-30T00:00:00Z", "timestamp", "date and time"),
])
def test_a_value_not_of_its_type_names_its_line_column_and_text(field, kind, says):
    good = {"integer": "1", "number": "2.5", "boolean": "true",
            "timestamp": "2024-01-01T00:00:00Z"}[kind]
    lines = chunk([[good], [good], [field]])
    fields = Fields(lines, 1, first_line=10, describe="canvas.t")
    read = {"integer": fields.integers, "number": fields.numbers, "boolean": fields.booleans,
            "timestamp": fields.times}[kind]
    with pytest.raises(UnexpectedAnswer, match="line 12 of a part of canvas.t: the column "
                                               "value.x holds %r.*%s" % (field, says)):
        read(0, "value.x")


def test_integers_reach_both_ends_of_64_bits_and_keep_leading_zeros_out():
    lines = chunk([["9223372036854775807"], ["-9223372036854775808"], ["007"], ["-0"]])
    assert Fields(lines, 1).integers(0, "k")[0].tolist() == [2 ** 63 - 1, -2 ** 63, 7, 0]


@pytest.mark.parametrize("lines,line,fields", [
    (b"1\t2\n3\n", 3, 1), (b"1\t2\n3\t4\t5\n", 3, 3), (b"1\t2\t3\n4\n", 2, 3)])
def test_a_line_of_another_width_is_named(lines, line, fields):
    with pytest.raises(UnexpectedAnswer, match="line %d .* %d fields where its header has 2"
                                               % (line, fields)):
        Fields(lines, 2, first_line=2)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from([0x41, 0x0A, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1,
                                 0xC2, 0xDF, 0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF])
                | st.integers(0, 255), max_size=12))
def test_utf8_is_judged_as_pythons_decoder_judges_it(raw):
    data = bytes(raw) + b"\n"
    try:
        data.decode("utf-8")
        valid = True
    except UnicodeDecodeError:
        valid = False
    assert _utf8(np.frombuffer(data, dtype=np.uint8)) is valid


def test_bytes_that_are_not_utf8_are_refused_whole():
    with pytest.raises(UnexpectedAnswer, match="not UTF-8"):
        Fields("é\n".encode("latin-1"), 1)


@pytest.mark.parametrize("lines,texts", [(b"a\n", ["a"]), (b"\n", [""]), (b"", []),
                                         (b"\\N\n", [])])
def test_the_shortest_chunks_give_their_texts(lines, texts):
    assert plain_texts(Fields(lines, 1).texts(0)[0]) == texts
