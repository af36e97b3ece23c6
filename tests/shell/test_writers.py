"""The Parquet writer: typed columns whose values survive fastparquet exactly (whatever the
timestamps look like: pandas infers a unit from the data, and fastparquet would write a
column of seconds with wrong values), nulls and deletes, nested and JSON columns, an empty
result, several row groups in one file.  Every file is read with both pyarrow and fastparquet,
which must agree (tests/parquet_readers.py); the expected values and types are written out
here.  What the files of real downloads hold, value for value against the service's records:
test_parquet_oracle.py."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from dap_core.shell.parquet import ParquetWriter
from dap_core.shell.sinks import AtomicFile
from fixtures.simulator.encoders import encode
from tests.parquet_parts import FLAT_SCHEMA, write_parts
from tests.parquet_readers import fastparquet_file, parquet_types, read_both

UTC = dt.timezone.utc


def json_line(record) -> bytes:
    """A record as one line of DAP's JSONL: compact, UTF-8."""
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def as_tsv(part, schema, mode=None, snapshot=False) -> bytes:
    """A part of JSONL lines as the part of DAP's TSV that the writer downloads, made by the
    simulator's own encoder (fixtures/simulator/encoders.py, no dap_core code): its header,
    then a line a record; meta.action only where DAP has it (not in a snapshot whose records
    lack it)."""
    records = [json.loads(line) for line in part if line.strip()]
    action = not snapshot or any("action" in r["meta"] for r in records)
    return b"".join(encode(records, "tsv", schema, mode or "expanded", meta_action=action))

SCHEMA = FLAT_SCHEMA


def lines(n, start=0, whole_seconds=True, far=False, no_at=False):
    out = []
    for i in range(start, start + n):
        ts = "2024-07-13T09:30:%02dZ" % (i % 60) if whole_seconds else \
            "2024-07-13T09:30:%02d.%06dZ" % (i % 60, i)
        value = {"name": "n%d" % i, "score": i / 4, "active": i % 2 == 0, "tags": ["a", str(i)],
                 "at": "9999-12-31T23:59:59Z" if far else ts}
        if i % 7 == 3:
            value.pop("score")
        if no_at:
            value.pop("at")  # a whole batch of nulls: pandas would pick a unit of seconds
        record = {"key": {"id": i}, "value": value, "meta": {"ts": ts, "action": "U"}}
        if i % 11 == 5:
            record = {"key": {"id": i}, "meta": {"ts": ts, "action": "D"}}
        out.append(json_line(record))
    return out


def write(tmp_path, parts, batch_rows=4):
    pytest.importorskip("fastparquet")
    target = AtomicFile(str(tmp_path / "t.parquet"))
    writer = ParquetWriter(target, {"schema": SCHEMA, "version": 1}, None, batch_rows=batch_rows)
    for index, part in enumerate(parts):
        writer.begin_part(index)
        writer.feed(as_tsv(part, SCHEMA))
        writer.end_part()
    writer.finish()
    writer.commit()
    return writer, read_both(tmp_path / "t.parquet")


@pytest.mark.parametrize("whole_seconds", [True, False])
def test_timestamps_survive_exactly_in_every_row_group(tmp_path, whole_seconds):
    parts = [lines(4, 0, whole_seconds, no_at=True), lines(6, 4, whole_seconds),
             lines(5, 10, not whole_seconds), lines(3, 15, True, far=True)]
    writer, content = write(tmp_path, parts)
    assert writer.rows == content.num_rows == 18
    want = [json.loads(line) for part in parts for line in part]
    for row, record in zip(content.rows(), want):
        ts = dt.datetime.fromisoformat(record["meta"]["ts"].replace("Z", "+00:00"))
        assert row["meta.ts"] == ts
        assert row["key.id"] == record["key"]["id"]
        if "value" in record:
            assert row["value.name"] == record["value"]["name"]
            assert row["value.tags"] == '["a","%d"]' % record["key"]["id"]
            if "at" in record["value"]:
                at = dt.datetime.fromisoformat(record["value"]["at"].replace("Z", "+00:00"))
                assert row["value.at"] == at
            else:
                assert row["value.at"] is None
        else:
            assert row["value.name"] is None and row["value.active"] is None


def test_a_restarted_part_leaves_no_trace(tmp_path):
    pytest.importorskip("fastparquet")
    target = AtomicFile(str(tmp_path / "t.parquet"))
    writer = ParquetWriter(target, {"schema": SCHEMA, "version": 1}, None, batch_rows=3)
    writer.begin_part(0)
    writer.feed(as_tsv(lines(4), SCHEMA))
    writer.restart_part()
    writer.feed(as_tsv(lines(4), SCHEMA))
    writer.end_part()
    writer.finish()
    writer.commit()
    assert read_both(tmp_path / "t.parquet").columns["key.id"] == [0, 1, 2, 3]
    assert writer.rows == 4


# -- what a Parquet file holds ---------------------------------------------------------------

NESTED = {"type": "object", "properties": {
    "key": {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]},
    "value": {"type": "object", "properties": {
        "name": {"type": "string"},
        "score": {"type": "number"},
        "active": {"type": "boolean"},
        "due_at": {"type": "string", "format": "date-time"},
        "attachment": {"type": "object", "properties": {
            "id": {"type": "integer"},
            "checksum": {"type": "object", "properties": {"value": {"type": "string"}}}}},
        "settings": {"type": "object"},
        "tags": {"type": "array", "items": {"type": "string"}}}},
    "meta": {"type": "object", "properties": {
        "ts": {"type": "string", "format": "date-time"},
        "action": {"type": "string", "enum": ["U", "D"]}}}}}


def jsonl(*recs):
    return [json_line(r) for r in recs]


def write_records(tmp_path, parts, schema=NESTED, mode=None, batch_rows=65536, snapshot=False):
    """Write `parts` (lists of JSONL lines) as a job's parts; (writer, the file's content as
    both readers read it, fastparquet's ParquetFile)."""
    pytest.importorskip("fastparquet")
    path = tmp_path / ("t%d.parquet" % len(list(tmp_path.iterdir())))
    data = [part if isinstance(part, bytes) else as_tsv(part, schema, mode, snapshot)
            for part in parts]
    writer = write_parts(path, schema, data, mode=mode, snapshot=snapshot,
                         batch_rows=batch_rows, piece=1000)  # in pieces that cut lines
    return writer, read_both(path), fastparquet_file(path)


UPDATE = {"key": {"id": 1}, "value": {
    "name": "Zoë \"Z\", first\nline", "score": 2.5, "active": True,
    "due_at": "2024-07-13T09:30:00.123456Z",
    "attachment": {"id": 2 ** 62, "checksum": {"value": "abc"}},
    "settings": {"a": [1, None], "ü": "x"}, "tags": ["a", "b"]},
    "meta": {"ts": "2024-07-13T09:30:00Z", "action": "U"}}
SPARSE = {"key": {"id": 2}, "value": {"name": None, "attachment": {"id": None}, "tags": []},
          "meta": {"ts": "2024-07-13T09:30:01Z", "action": "U"}}
GONE = {"key": {"id": 3}, "meta": {"ts": "2024-07-13T09:30:02Z", "action": "D"}}


def as_snapshot(record):
    """A record as a snapshot of DAP has it: meta.ts only."""
    return dict(record, meta={"ts": record["meta"]["ts"]})


#: NESTED's columns in an incremental's file (expanded), in order, and the kind of each
NESTED_COLUMNS = [
    ("meta.ts", "timestamp"), ("meta.action", "string"), ("key.id", "integer"),
    ("value.name", "string"), ("value.score", "number"), ("value.active", "boolean"),
    ("value.due_at", "timestamp"), ("value.attachment.id", "integer"),
    ("value.attachment.checksum.value", "string"), ("value.settings", "json"),
    ("value.tags", "json")]
NESTED_NAMES = [name for name, _ in NESTED_COLUMNS]

#: each kind of column: its Parquet physical type, logical type and Arrow type as pyarrow
#: reports them, and the dtypes fastparquet's pandas frame may give it (pandas 3 reads text
#: as its str dtype when pyarrow is installed, object otherwise; JSON columns are JSON text)
KIND_TYPES = {
    "integer": ("INT64", "None", "int64", ("Int64",)),
    "number": ("DOUBLE", "None", "double", ("float64",)),
    "boolean": ("BOOLEAN", "None", "bool", ("boolean",)),
    "timestamp": ("INT64", "Timestamp", "timestamp[us, tz=UTC]", ("datetime64[us, UTC]",)),
    "string": ("BYTE_ARRAY", "String", "string", ("object", "str")),
    "json": ("BYTE_ARRAY", "String", "string", ("object", "str")),
}


def assert_column_types(path, columns=NESTED_COLUMNS):
    types = parquet_types(path)
    assert list(types) == [name for name, _ in columns]
    pytest.importorskip("fastparquet")
    frame = fastparquet_file(path).to_pandas()
    for name, kind in columns:
        physical, logical, arrow, dtypes = KIND_TYPES[kind]
        got = types[name]
        assert (got.physical, got.logical["Type"], got.arrow) == (physical, logical, arrow), name
        assert str(frame[name].dtype) in dtypes, name
        if kind == "timestamp":
            assert got.logical["isAdjustedToUTC"] is True, name
            assert got.logical["timeUnit"] == "microseconds", name


def test_each_kind_of_column_has_its_type(tmp_path):
    write_records(tmp_path, [jsonl(UPDATE, SPARSE, GONE)])
    assert_column_types(tmp_path / "t0.parquet")


def test_values_nulls_deletes_nested_and_json_columns(tmp_path):
    _, content, _ = write_records(tmp_path, [jsonl(UPDATE, SPARSE, GONE)])
    first, sparse, gone = content.rows()
    assert first["value.name"] == "Zoë \"Z\", first\nline"
    assert first["value.score"] == 2.5 and first["value.active"] is True
    assert first["value.attachment.id"] == 2 ** 62  # nested objects spread into columns
    assert first["value.attachment.checksum.value"] == "abc"
    assert first["value.settings"] == '{"a":[1,null],"ü":"x"}'  # JSON text, compact, UTF-8
    assert first["value.tags"] == '["a","b"]' and sparse["value.tags"] == "[]"
    assert first["value.due_at"] == dt.datetime(2024, 7, 13, 9, 30, 0, 123456, tzinfo=UTC)
    assert first["meta.ts"] == dt.datetime(2024, 7, 13, 9, 30, tzinfo=UTC)
    # nulls and absent values read back as null (None from both readers)
    assert sparse["value.name"] is None and content.columns["value.score"][1:] == [None] * 2
    assert content.columns["value.attachment.id"] == [2 ** 62, None, None]
    assert content.columns["value.active"] == [True, None, None]
    assert sparse["value.due_at"] is None and sparse["value.settings"] is None
    # a delete has its key and meta, and nulls in every value column
    assert gone["key.id"] == 3 and gone["meta.action"] == "D"
    assert all(gone[name] is None for name in content.names if name.startswith("value."))


def test_condensed_mode_keeps_nested_objects_as_json_text(tmp_path):
    _, content, _ = write_records(tmp_path, [jsonl(UPDATE, GONE)], mode="condensed")
    assert content.columns["value.attachment"] == [
        '{"id":%d,"checksum":{"value":"abc"}}' % 2 ** 62, None]


def test_year_9999_and_year_1_timestamps_survive(tmp_path):
    far = dict(UPDATE, value=dict(UPDATE["value"], due_at="9999-12-31T23:59:59.999999Z"),
               meta={"ts": "0001-01-01T00:00:00Z", "action": "U"})
    _, content, _ = write_records(tmp_path, [jsonl(far, SPARSE)])
    assert content.columns["value.due_at"][0] == dt.datetime(
        9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert content.columns["meta.ts"][0] == dt.datetime(1, 1, 1, tzinfo=UTC)


def test_timestamps_of_any_precision_mixed_in_a_column(tmp_path):
    texts = ["2024-07-13T09:30:00Z", None, "2024-07-13T09:30:00.5Z", "2024-07-13T09:30:00.123Z",
             "2024-07-13T09:30:00.123456Z", "2024-07-13T09:30:00.1234567Z", "2000-02-29T00:00:00Z"]
    lines = jsonl(*[dict(UPDATE, key={"id": i}, value={"due_at": text})
                    for i, text in enumerate(texts)])
    for batch_rows in (65536, 1):  # a column of several widths, and of one width each
        _, content, _ = write_records(tmp_path, [lines], batch_rows=batch_rows)
        at = dt.datetime(2024, 7, 13, 9, 30, tzinfo=UTC)
        assert content.columns["value.due_at"] == [
            at, None, at.replace(microsecond=500000), at.replace(microsecond=123000),
            at.replace(microsecond=123456), at.replace(microsecond=123456),  # cut, not rounded
            dt.datetime(2000, 2, 29, tzinfo=UTC)]


def test_timestamps_with_an_offset_are_turned_to_utc(tmp_path):
    offset = dict(UPDATE, value=dict(UPDATE["value"], due_at="2024-07-13T11:30:00+02:00"))
    _, content, _ = write_records(tmp_path, [jsonl(offset, SPARSE)])
    assert content.columns["value.due_at"][0] == dt.datetime(2024, 7, 13, 9, 30, tzinfo=UTC)


def test_an_empty_result_is_a_file_of_typed_columns_and_no_rows(tmp_path):
    writer, content, parquet = write_records(tmp_path, [])
    assert writer.rows == 0 == content.num_rows and parquet.row_groups == []
    assert_column_types(tmp_path / "t0.parquet")
    _, content, _ = write_records(tmp_path, [[], [b"\n"]])  # empty parts
    assert content.num_rows == 0


def test_several_row_groups_read_as_one_table(tmp_path):
    many = [dict(UPDATE, key={"id": i}) if i % 3 else dict(GONE, key={"id": i})
            for i in range(25)]
    parts = [jsonl(*many[:7]), jsonl(*many[7:8]), jsonl(*many[8:])]
    writer, content, parquet = write_records(tmp_path, parts, batch_rows=4)
    assert content.row_groups == [4, 4, 4, 4, 4, 4, 1]  # as both readers see them
    assert writer.rows == content.num_rows == 25
    assert content.columns["key.id"] == list(range(25))
    assert content.columns["meta.action"] == ["D" if i % 3 == 0 else "U" for i in range(25)]
    import pandas
    groups = list(parquet.iter_row_groups())
    assert [len(g) for g in groups] == [4, 4, 4, 4, 4, 4, 1]
    assert pandas.concat(groups, ignore_index=True).equals(parquet.to_pandas())


def test_texts_of_a_column_that_was_all_null_in_the_first_row_group(tmp_path):
    """The file's schema comes from the columns' types, not from the first rows: a text
    column that starts with nulls (deletes first) is still text."""
    _, content, _ = write_records(tmp_path, [jsonl(GONE, GONE), jsonl(UPDATE)], batch_rows=2)
    assert content.columns["value.name"] == [None, None, UPDATE["value"]["name"]]


def test_texts_that_hold_anything_survive(tmp_path):
    odd = ["", " ", "\x1f", "a\x1fb\x1f", "\x00", "NULL", "ü" * 3, "\U0001F600", "\\N"]
    lines = jsonl(*[dict(UPDATE, key={"id": i}, value={"name": text})
                    for i, text in enumerate(odd)])
    _, content, _ = write_records(tmp_path, [lines[:4], lines[4:]], batch_rows=3)
    assert content.columns["value.name"] == odd


def test_long_lines_and_a_last_line_without_newline(tmp_path):
    long = dict(UPDATE, value=dict(UPDATE["value"], name="x" * 3_000_000))
    part = as_tsv(jsonl(SPARSE, long, UPDATE), NESTED)[:-1]  # no newline after the last line
    _, content, _ = write_records(tmp_path, [part])
    assert content.columns["key.id"] == [2, 1, 1]
    assert content.columns["value.name"][1] == long["value"]["name"]


def test_the_footer_is_the_one_fastparquet_writes_for_many_row_groups(tmp_path):
    """The row groups' metadata is kept encoded and spliced into the footer: the footer is
    byte for byte what fastparquet encodes of the metadata it reads back (130 row groups:
    a list header of several bytes)."""
    import io
    import struct
    from fastparquet.writer import write_thrift
    many = [dict(UPDATE, key={"id": i}) for i in range(130)]
    writer, content, parquet = write_records(tmp_path, [jsonl(*many)], batch_rows=1)
    assert len(parquet.row_groups) == 130 and content.columns["key.id"] == list(range(130))
    data = (tmp_path / "t0.parquet").read_bytes()
    size = struct.unpack("<I", data[-8:-4])[0]
    encoded = io.BytesIO()
    write_thrift(encoded, parquet.fmd)
    assert data[-8 - size:-8] == encoded.getvalue() and data[-4:] == data[:4] == b"PAR1"


# -- snapshots: DAP's records carry meta.ts only -------------------------------------------------

def test_a_snapshots_file_has_no_meta_action_column(tmp_path):
    """Absent, not a column of nulls nor of invented U's: the file matches the records."""
    writer, content, _ = write_records(tmp_path, [jsonl(as_snapshot(UPDATE)),
                                                  jsonl(as_snapshot(SPARSE))],
                                       snapshot=True, batch_rows=1)
    assert content.names == [n for n in NESTED_NAMES if n != "meta.action"]
    assert writer.rows == content.num_rows == 2 and content.columns["key.id"] == [1, 2]
    assert content.columns["value.name"] == [UPDATE["value"]["name"], None]
    assert content.columns["meta.ts"][1] == dt.datetime(2024, 7, 13, 9, 30, 1, tzinfo=UTC)
    for mode in ("condensed", None):
        _, empty, _ = write_records(tmp_path, [], mode=mode, snapshot=True)
        assert empty.num_rows == 0 and "meta.action" not in empty.names
        assert empty.names[:2] == ["meta.ts", "key.id"]


def test_a_snapshot_whose_records_carry_meta_action_keeps_it(tmp_path):
    """The shape of old clients' expectations (the simulator's --snapshot-action)."""
    _, content, _ = write_records(tmp_path, [jsonl(UPDATE, SPARSE), jsonl(UPDATE)],
                                  snapshot=True, batch_rows=2)
    assert content.names == NESTED_NAMES
    assert content.columns["meta.action"] == ["U", "U", "U"]


def test_a_snapshot_whose_later_records_carry_meta_action_is_refused_not_dropped(tmp_path):
    from dap_core.errors import UnexpectedAnswer
    with pytest.raises(UnexpectedAnswer, match="meta.action"):
        write_records(tmp_path, [jsonl(as_snapshot(UPDATE)), jsonl(SPARSE)], snapshot=True)


def test_an_incremental_keeps_meta_action_whatever_its_records(tmp_path):
    _, content, _ = write_records(tmp_path, [jsonl(UPDATE, GONE, as_snapshot(SPARSE))])
    assert content.columns["meta.action"] == ["U", "D", None]
