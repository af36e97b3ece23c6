"""The Parquet writer types DAP's TSV (PostgreSQL COPY text) by the table's schema: what each
line of a part holds comes out as the value the test writes down by hand, read back by
pyarrow and fastparquet (tests/parquet_readers.py), and a part that is not such TSV is an
``UnexpectedAnswer`` that says where, never a file with values lost."""
from __future__ import annotations

import datetime as dt
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dap_core.errors import UnexpectedAnswer
from dap_core.shell import parquet

from tests.parquet_parts import FLAT_SCHEMA, write_parts
from tests.parquet_readers import read_both

UTC = dt.timezone.utc
HEADER = "\t".join(["meta.ts", "meta.action", "key.id", "value.name", "value.score",
                    "value.active", "value.at", "value.tags"]) + "\n"
TS = "2024-07-13T09:30:00.123456Z"
AT = dt.datetime(2024, 7, 13, 9, 30, 0, 123456, tzinfo=UTC)


def line(*fields: str) -> str:
    return "\t".join(fields) + "\n"


def copy_text(text: str) -> str:
    """``text`` as one field of COPY text (its escapes written by hand, not by dap)."""
    for raw, escaped in (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")):
        text = text.replace(raw, escaped)
    return text


def write(tmp_path, parts, snapshot=False, batch_rows=parquet.PARQUET_BATCH_ROWS, name="t"):
    """Write ``parts`` (texts, each a whole part) fed in small pieces; the file's path."""
    path = tmp_path / (name + ".parquet")
    write_parts(path, FLAT_SCHEMA, [p.encode("utf-8") if isinstance(p, str) else p
                                    for p in parts],
                snapshot=snapshot, batch_rows=batch_rows, piece=7)
    return path


def test_copy_text_escapes_nulls_and_empty_texts_come_out_as_written(tmp_path):
    rows = [
        line(TS, "U", "1", "tab\\there\\nnewline\\rreturn \\\\ backslash", "1.5", "true",
             TS, '["a","b"]'),
        line(TS, "U", "2", "", "\\N", "false", "\\N", "[]"),           # empty text, nulls
        line(TS, "U", "3", "\\\\N", "-0.25", "\\N", TS, "\\N"),        # the text \N
        line(TS, "U", "4", "octal \\101 hex \\x42 bell \\b", "2", "true", TS, "[]"),
        line(TS, "D", "5", "\\N", "\\N", "\\N", "\\N", "\\N"),         # a delete
    ]
    content = read_both(write(tmp_path, [HEADER + "".join(rows)]))
    assert content.columns["value.name"] == [
        "tab\there\nnewline\rreturn \\ backslash", "", "\\N", "octal A hex B bell \b", None]
    assert content.columns["value.score"] == [1.5, None, -0.25, 2.0, None]
    assert content.columns["value.active"] == [True, False, None, True, None]
    assert content.columns["value.at"] == [AT, None, AT, AT, None]
    assert content.columns["value.tags"] == ['["a","b"]', "[]", None, "[]", None]
    assert content.columns["key.id"] == [1, 2, 3, 4, 5]
    assert content.columns["meta.action"] == ["U", "U", "U", "U", "D"]


def test_a_text_holding_the_unit_separator_survives_beside_others(tmp_path):
    names = ["a\x1fb", "plain", "\x1f", "x\\ty\x1f"]
    rows = [line(TS, "U", str(i), copy_text(name), "1", "true", TS, "[]")
            for i, name in enumerate(names)]
    content = read_both(write(tmp_path, [HEADER + "".join(rows)]))
    assert content.columns["value.name"] == ["a\x1fb", "plain", "\x1f", "x\\ty\x1f"]


def test_64_bit_integers_and_times_of_any_precision_and_offset_are_exact(tmp_path):
    rows = [line("2024-07-13T09:30:00Z", "U", "9223372036854775807", "a", "1", "true",
                 "0001-01-01T00:00:00Z", "[]"),
            line("2024-07-13T09:30:00.5Z", "U", "-9223372036854775808", "b", "1", "true",
                 "9999-12-31T23:59:59.999999Z", "[]"),
            line("2024-07-13T11:30:00+02:00", "U", "9007199254740993", "c", "1", "true",
                 "2024-02-29T12:00:00.1Z", "[]")]
    content = read_both(write(tmp_path, [HEADER + "".join(rows)]))
    assert content.columns["key.id"] == [2 ** 63 - 1, -2 ** 63, 2 ** 53 + 1]
    assert content.columns["meta.ts"] == [
        dt.datetime(2024, 7, 13, 9, 30, tzinfo=UTC),
        dt.datetime(2024, 7, 13, 9, 30, 0, 500000, tzinfo=UTC),
        dt.datetime(2024, 7, 13, 9, 30, tzinfo=UTC)]
    assert content.columns["value.at"] == [
        dt.datetime(1, 1, 1, tzinfo=UTC), dt.datetime(9999, 12, 31, 23, 59, 59, 999999,
                                                      tzinfo=UTC),
        dt.datetime(2024, 2, 29, 12, 0, 0, 100000, tzinfo=UTC)]


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=50))
def test_every_float_comes_back_bit_for_bit(tmp_path, floats):
    rows = [line(TS, "U", str(i), "n", repr(f), "true", TS, "[]") for i, f in enumerate(floats)]
    scores = read_both(write(tmp_path, [HEADER + "".join(rows)])).columns["value.score"]
    assert [(math.copysign(1, s), s.hex()) for s in scores] == [
        (math.copysign(1, f), f.hex()) for f in floats]


def test_columns_go_by_the_header_missing_ones_are_null_unknown_ones_ignored(tmp_path):
    # another order, value.score and value.tags missing, a column the schema does not have
    header = "\t".join(["key.id", "value.surprise", "meta.action", "meta.ts", "value.name",
                        "value.active", "value.at"]) + "\n"
    part = header + line("7", "whatever", "U", TS, "seven", "false", TS)
    content = read_both(write(tmp_path, [part]))
    assert content.names == ["meta.ts", "meta.action", "key.id", "value.name", "value.score",
                             "value.active", "value.at", "value.tags"]
    assert content.rows() == [{"meta.ts": AT, "meta.action": "U", "key.id": 7,
                               "value.name": "seven", "value.score": None,
                               "value.active": False, "value.at": AT, "value.tags": None}]


def test_a_snapshot_has_meta_action_only_if_its_first_part_has_it(tmp_path):
    without = HEADER.replace("meta.action\t", "")
    row = line(TS, "1", "a", "1", "true", TS, "[]")
    content = read_both(write(tmp_path, [without + row, without], snapshot=True, name="a"))
    assert "meta.action" not in content.names and content.num_rows == 1
    content = read_both(write(tmp_path, [HEADER + line(TS, "U", "1", "a", "1", "true", TS,
                                                       "[]")], snapshot=True, name="b"))
    assert content.columns["meta.action"] == ["U"]
    with pytest.raises(UnexpectedAnswer, match="meta.action"):
        write(tmp_path, [without + row, HEADER], snapshot=True, name="c")


def test_parts_chunks_and_row_groups_of_any_size_give_the_same_rows(tmp_path, monkeypatch):
    rows = [line(TS, "U", str(i), "name %d" % i if i % 3 else "\\N", str(i / 4),
                 "true" if i % 2 else "false", TS if i % 5 else "\\N", '["%d"]' % i)
            for i in range(300)]
    parts = [HEADER + "".join(rows[:100]), HEADER, HEADER + "".join(rows[100:])]
    monkeypatch.setattr(parquet, "PARQUET_CHUNK_BYTES", 333)
    content = read_both(write(tmp_path, parts, batch_rows=41))
    assert content.row_groups == [41] * 7 + [13]
    assert content.columns["key.id"] == list(range(300))
    assert content.columns["value.name"] == [None if i % 3 == 0 else "name %d" % i
                                             for i in range(300)]
    assert content.columns["value.score"] == [i / 4 for i in range(300)]
    assert content.columns["value.at"] == [AT if i % 5 else None for i in range(300)]
    assert content.columns["value.tags"] == ['["%d"]' % i for i in range(300)]


def test_a_worker_process_writes_the_very_same_file(tmp_path, monkeypatch):
    rows = [line(TS, "U", str(i), "n\\t%d\x1f" % i if i % 7 == 0 else "n%d" % i, "0.5",
                 "true", TS, "[]") for i in range(2000)]
    parts = [HEADER + "".join(rows[:1500]), HEADER + "".join(rows[1500:])]
    monkeypatch.setattr(parquet, "PARQUET_CHUNK_BYTES", 4096)
    monkeypatch.setattr(parquet, "PARQUET_PARALLEL_BYTES", 0)
    monkeypatch.setattr(parquet, "PARQUET_WORKERS", 0)
    alone = write(tmp_path, parts, batch_rows=500, name="alone").read_bytes()
    monkeypatch.setattr(parquet, "PARQUET_WORKERS", 1)
    typed_by = []
    real_submit = parquet._submit

    def counting_submit(pool, *args):
        future = real_submit(pool, *args)
        typed_by.append(future is not None)
        return future

    monkeypatch.setattr(parquet, "_submit", counting_submit)
    shared = write(tmp_path, parts, batch_rows=500, name="shared")
    assert any(typed_by), "no chunk went to the worker process"
    assert shared.read_bytes() == alone
    assert read_both(shared).columns["value.name"][7] == "n\t7\x1f"


@pytest.mark.parametrize("part,says", [
    (HEADER + line(TS, "U", "1", "a", "1", "true", TS), "line 2 .* 7 fields .* 8"),
    (HEADER + line(TS, "U", "1", "a", "1", "true", TS, "[]") + line(TS, "U", "2", "a\tb",
                                                                    "1", "true", TS, "[]"),
     "line 3 .* 9 fields"),
    (HEADER + line(TS, "U", "one", "a", "1", "true", TS, "[]"), "key.id .* integer"),
    (HEADER + line(TS, "U", "1", "a", "1", "yes", TS, "[]"), "value.active .* boolean"),
    (HEADER + line(TS, "U", "1", "a", "1,5", "true", TS, "[]"), "value.score .* number"),
    (HEADER + line(TS, "U", "1", "a", "1", "true", "next tuesday", "[]"),
     "value.at .* date and time"),
    (HEADER.encode() + b"2024-07-13T09:30:00Z\tU\t1\t\xff\t1\ttrue\t\\N\t[]\n", "UTF-8"),
    ("meta.ts\tkey.id\tmeta.ts\n" + line(TS, "1", TS), "header"),
    (line(TS, "U", "1"), "key columns .*key.id"),
])
def test_a_part_that_is_not_the_tables_tsv_is_an_unexpected_answer(tmp_path, part, says):
    with pytest.raises(UnexpectedAnswer, match=says):
        write(tmp_path, [part])
    assert list(tmp_path.iterdir()) == []  # nothing left behind, not even a temporary file


def test_the_footer_written_from_kept_objects_is_the_spliced_ones(tmp_path, monkeypatch):
    """Where the encoded row groups cannot be spliced into the footer (a fastparquet that
    encodes otherwise), the footer is encoded from the row groups' objects: the same file."""
    rows = [line(TS, "U", str(i), "n%d" % i, "1.5", "true", TS, "[]") for i in range(50)]
    parts = [HEADER + "".join(rows)]
    found = []
    real_splice_point = parquet._splice_point

    def recorded(metadata, group):
        found.append(real_splice_point(metadata, group))
        return found[-1]

    monkeypatch.setattr(parquet, "_splice_point", recorded)
    spliced = write(tmp_path, parts, batch_rows=7, name="spliced").read_bytes()
    assert found and all(point is not None for point in found)  # the splice was taken
    monkeypatch.setattr(parquet, "_splice_point", lambda metadata, group: None)
    kept = write(tmp_path, parts, batch_rows=7, name="kept")
    assert kept.read_bytes() == spliced
    assert read_both(kept).row_groups == [7] * 7 + [1]
