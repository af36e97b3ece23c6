"""PartMerger: any chunking of the parts gives the bytes of merging whole parts, correctly
framed."""
import csv
import io
import json
import sys

import pytest
from hypothesis import given, settings, strategies as st

from dap_core.errors import UnexpectedAnswer
from dap_core.merge import PartMerger
# the simulator's own cell encoders (what DAP's parts hold), not dap's
from fixtures.simulator.encoders import MISSING, csv_cell, tsv_cell

records = st.dictionaries(st.text(max_size=4), st.one_of(
    st.none(), st.integers(), st.text(max_size=12), st.booleans()), max_size=3)
cells = st.one_of(st.none(), st.just(MISSING), st.integers(), st.text(max_size=10),
                  st.sampled_from(['"', '""', "a\nb", "\r\n", ",", "\t", "\\", "ü"]))
csv_rows = st.lists(st.lists(cells, min_size=2, max_size=2), max_size=6)


def chunked(data, cuts):
    """`data` split at the given (relative) points, possibly inside a UTF-8 character."""
    points = sorted({int(c * len(data)) for c in cuts})
    return [data[a:b] for a, b in zip([0] + points, points + [len(data)])]


def merge(fmt, parts, cut_lists=None):
    merger = PartMerger(fmt)
    out = []
    for n, part in enumerate(parts):
        for chunk in chunked(part, cut_lists[n] if cut_lists else []):
            out.append(merger.feed(chunk))
        out.append(merger.end_part())
    out.append(merger.finish())
    return b"".join(out), merger


def jsonl_part(recs, blank_lines, newline_at_end):
    lines = [json.dumps(r, ensure_ascii=False).encode() for r in recs]
    for at in blank_lines:
        lines.insert(at % (len(lines) + 1), b"")
    text = b"\n".join(lines)
    return text + b"\n" if newline_at_end and text else text


cuts = st.lists(st.floats(0, 1), max_size=6)
jsonl_parts = st.lists(st.tuples(st.lists(records, max_size=6),
                                 st.lists(st.integers(0, 9), max_size=2),
                                 st.booleans(), cuts), max_size=4)


@settings(max_examples=300, deadline=None)
@given(jsonl_parts, st.sampled_from(["jsonl", "json"]))
def test_any_chunking_of_jsonl_parts_gives_the_whole_part_merge(parts, fmt):
    data = [jsonl_part(recs, blanks, end) for recs, blanks, end, _ in parts]
    whole, whole_merger = merge(fmt, data)
    pieces, merger = merge(fmt, data, [c for *_, c in parts])
    assert pieces == whole
    expected = [r for recs, *_ in parts for r in recs]
    assert merger.rows == whole_merger.rows == len(expected)
    if fmt == "json":
        assert json.loads(pieces.decode()) == expected
        assert pieces.endswith(b"]\n")
    else:
        assert [json.loads(line) for line in pieces.decode().split("\n")[:-1]] == expected
        assert pieces == b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n"
                                  for r in expected)


def test_json_framing_of_an_empty_and_of_a_small_result():
    assert merge("json", [])[0] == b"[]\n"
    assert merge("json", [b"", b"\n"])[0] == b"[]\n"
    assert merge("json", [b'{"a":1}\n{"a":2}', b'{"a":3}\n'])[0] == \
        b'[{"a":1},\n{"a":2},\n{"a":3}]\n'


def table_part(fmt, header, rows):
    cell, separator = (csv_cell, ",") if fmt == "csv" else (tsv_cell, "\t")
    return (header + "".join(separator.join(map(cell, row)) + "\n" for row in rows)).encode()


table_parts = st.lists(st.tuples(csv_rows, st.booleans(), cuts), max_size=4)


@settings(max_examples=300, deadline=None)
@given(table_parts, st.sampled_from(["csv", "tsv"]))
def test_any_chunking_of_csv_or_tsv_parts_keeps_one_header_and_every_row(parts, fmt):
    header = "key.id,value.name\n" if fmt == "csv" else "key.id\tvalue.name\n"
    data = []
    for rows, newline_at_end, _ in parts:
        part = table_part(fmt, header, rows)
        data.append(part if newline_at_end or not rows else part[:-1])
    whole, whole_merger = merge(fmt, data)
    pieces, merger = merge(fmt, data, [c for *_, c in parts])
    assert pieces == whole
    all_rows = [row for rows, *_ in parts for row in rows]
    assert pieces == (table_part(fmt, header, all_rows) if parts else b"")
    assert merger.rows == whole_merger.rows == len(all_rows)
    assert merger.header_seen == bool(parts)
    # the standard library's csv reads NUL from Python 3.11 on
    if fmt == "csv" and (sys.version_info >= (3, 11) or b"\x00" not in pieces):
        read = list(csv.reader(io.StringIO(pieces.decode(), newline="")))
        assert len(read) == len(all_rows) + bool(parts)


def test_a_later_part_with_another_header_is_refused():
    merger = PartMerger("csv")
    merger.feed(b"a,b\n1,2\n")
    merger.end_part()
    with pytest.raises(UnexpectedAnswer, match="header"):
        merger.feed(b"a,c\n3,4\n")


@pytest.mark.parametrize("fmt,sep", [("csv", b","), ("tsv", b"\t")])
def test_headers_with_or_without_meta_action_are_both_taken(fmt, sep):
    """A snapshot's parts have no meta.action column, an incremental's have it: either
    header is kept from the first part and dropped from the others."""
    for names in ([b"meta.ts", b"key.id", b"value.name"],
                  [b"meta.ts", b"meta.action", b"key.id", b"value.name"]):
        header = sep.join(names) + b"\n"
        row = sep.join(b"1" for _ in names) + b"\n"
        out, merger = merge(fmt, [header + row, header + row + row, header])
        assert out == header + row * 3 and merger.rows == 3
    snapshot = sep.join([b"meta.ts", b"key.id"]) + b"\n"
    incremental = sep.join([b"meta.ts", b"meta.action", b"key.id"]) + b"\n"
    with pytest.raises(UnexpectedAnswer, match="header"):
        merge(fmt, [snapshot + b"1" + sep + b"2\n", incremental])


def test_a_header_split_across_chunks_is_still_recognised_and_dropped():
    merger = PartMerger("tsv")
    out = merger.feed(b"a\tb\n1\t2\n") + merger.end_part()
    out += merger.feed(b"a\t") + merger.feed(b"b") + merger.feed(b"\n3\t4") + merger.end_part()
    assert out + merger.finish() == b"a\tb\n1\t2\n3\t4\n" and merger.rows == 2


def test_zero_parts_of_csv_write_nothing_and_leave_the_header_to_the_caller():
    merger = PartMerger("csv")
    assert merger.finish() == b"" and not merger.header_seen and merger.rows == 0


def test_quoted_newlines_are_not_rows():
    merger = PartMerger("csv")
    out = merger.feed(b'a,b\n"x\ny",1\n"p""\n""q",2\n') + merger.finish()
    assert merger.rows == 2 and out.endswith(b'2\n')


def test_a_csv_part_ending_inside_quotes_is_refused():
    merger = PartMerger("csv")
    merger.feed(b'a,b\n"open,1\n')
    with pytest.raises(UnexpectedAnswer, match="inside a quoted"):
        merger.end_part()


def test_feed_with_a_part_index_ends_the_previous_part():
    merger = PartMerger("jsonl")
    out = merger.feed(0, b'{"a":1}') + merger.feed(1, b'{"a":2}\n') + merger.finish()
    assert out == b'{"a":1}\n{"a":2}\n' and merger.rows == 2 and merger.parts == 2


def test_crlf_line_ends_stay_valid_json():
    out = merge("json", [b'{"a":1}\r\n{"a":2}\r\n'])[0]
    assert json.loads(out) == [{"a": 1}, {"a": 2}]


def test_unknown_formats_are_refused():
    with pytest.raises(ValueError):
        PartMerger("parquet")
