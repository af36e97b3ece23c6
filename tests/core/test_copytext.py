"""DAP's TSV (PostgreSQL COPY text) decoded into rows: a round trip with an encoder written
here, over arbitrary text, NULLs and chunk boundaries."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dap_core.copytext import LineSplitter, decode_field, decode_lines, unescape

FIELD = st.one_of(st.none(), st.text(max_size=20))


def encode(value):
    """COPY text, as PostgreSQL writes it (the test's own encoder)."""
    if value is None:
        return "\\N"
    return (value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
            .replace("\r", "\\r"))


@given(st.integers(1, 5).flatmap(lambda w: st.lists(st.tuples(*[FIELD] * w), max_size=20)
                                 .map(lambda rows: (w, rows))),
       st.lists(st.integers(0, 400), max_size=6))
def test_rows_survive_encoding_and_any_chunking(width_rows, cuts):
    width, rows = width_rows
    data = "".join("\t".join(encode(v) for v in row) + "\n" for row in rows).encode("utf-8")
    splitter, decoded = LineSplitter(), []
    start = 0
    for cut in sorted(c % (len(data) + 1) for c in cuts) + [len(data)]:
        whole = splitter.feed(data[start:cut])
        start = max(start, cut)
        if whole:
            decoded.extend(decode_lines(whole, width))
    assert splitter.rest() == b""
    assert decoded == [tuple(row) for row in rows]


def test_escapes_of_copy_text_are_undone():
    assert decode_field("a\\tb\\\\c\\nd\\re") == "a\tb\\c\nd\re"
    assert decode_field("\\N") is None and decode_field("\\\\N") == "\\N"
    assert decode_field("\\x41\\101\\b\\f\\v") == "AA\b\f\v"


def test_a_line_of_another_width_is_refused():
    with pytest.raises(ValueError):
        decode_lines(b"a\tb\n", 3)


def unescape_each(text):
    """COPY text's escapes read one at a time, left to right (the test's own reading): a
    backslash and ``x`` with one or two hex digits, one to three octal digits, one of
    ``b f n r t v``, or any other character, which stands for itself."""
    simple = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
    out, at = [], 0
    while at < len(text):
        if text[at] != "\\" or at + 1 == len(text):
            out.append(text[at])
            at += 1
            continue
        code = text[at + 1]
        hexes = len(text[at + 2:at + 4]) - len(text[at + 2:at + 4].lstrip("0123456789abcdefABCDEF"))
        octals = len(text[at + 1:at + 4]) - len(text[at + 1:at + 4].lstrip("01234567"))
        if code == "x" and hexes:
            out.append(chr(int(text[at + 2:at + 2 + hexes], 16)))
            at += 2 + hexes
        elif octals:
            out.append(chr(int(text[at + 1:at + 1 + octals], 8)))
            at += 1 + octals
        else:
            out.append(simple.get(code, code))
            at += 2
    return "".join(out)


@settings(max_examples=300, deadline=None)
@given(st.text(st.sampled_from("\\tnrbfvx0178AaN\x1f"), max_size=20))
def test_unescape_reads_as_one_escape_at_a_time_does(text):
    assert unescape(text) == unescape_each(text)
