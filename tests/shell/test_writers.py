"""The Parquet writer: typed columns whose values survive fastparquet exactly (whatever the
timestamps look like: pandas infers a unit from the data, and fastparquet would write a
column of seconds with wrong values), nulls and deletes, nested and JSON columns, an empty
result, several row groups in one file; and the same values as the JSONL of the same job."""
from __future__ import annotations

import datetime as dt

import pytest

from dap_core import records
from dap_core.shell.sinks import AtomicFile
from dap_core.timestamps import parse_timestamp
from dap_core.shell.writers import ParquetWriter

SCHEMA = {"type": "object", "properties": {
    "key": {"type": "object", "properties": {"id": {"type": "integer"}}},
    "value": {"type": "object", "properties": {
        "name": {"type": "string"},
        "score": {"type": "number"},
        "active": {"type": "boolean"},
        "at": {"type": "string", "format": "date-time"},
        "tags": {"type": "array", "items": {"type": "string"}}}},
    "meta": {"type": "object", "properties": {
        "ts": {"type": "string", "format": "date-time"},
        "action": {"type": "string", "enum": ["U", "D"]}}}}}


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
        out.append(records.to_json_text(record).encode() + b"\n")
    return out


def write(tmp_path, parts, batch_rows=4):
    pytest.importorskip("fastparquet")
    target = AtomicFile(str(tmp_path / "t.parquet"))
    writer = ParquetWriter(target, {"schema": SCHEMA, "version": 1}, None, batch_rows=batch_rows)
    for index, part in enumerate(parts):
        writer.begin_part(index)
        writer.feed(b"".join(part))
        writer.end_part()
    writer.finish()
    writer.commit()
    import fastparquet
    return writer, fastparquet.ParquetFile(str(tmp_path / "t.parquet")).to_pandas()


@pytest.mark.parametrize("whole_seconds", [True, False])
def test_timestamps_survive_exactly_in_every_row_group(tmp_path, whole_seconds):
    parts = [lines(4, 0, whole_seconds, no_at=True), lines(6, 4, whole_seconds),
             lines(5, 10, not whole_seconds), lines(3, 15, True, far=True)]
    writer, frame = write(tmp_path, parts)
    assert writer.rows == len(frame) == 18
    want = [__import__("json").loads(line) for part in parts for line in part]
    for row, record in zip(frame.to_dict("records"), want):
        ts = dt.datetime.fromisoformat(record["meta"]["ts"].replace("Z", "+00:00"))
        assert row["meta.ts"].to_pydatetime() == ts
        assert row["key.id"] == record["key"]["id"]
        if "value" in record:
            assert row["value.name"] == record["value"]["name"]
            assert row["value.tags"] == '["a","%d"]' % record["key"]["id"]
            if "at" in record["value"]:
                at = dt.datetime.fromisoformat(record["value"]["at"].replace("Z", "+00:00"))
                assert row["value.at"].to_pydatetime() == at
            else:
                assert str(row["value.at"]) == "NaT"
        else:
            assert row["value.name"] is None
            assert row["value.active"] is None or str(row["value.active"]) == "<NA>"


def test_a_restarted_part_leaves_no_trace(tmp_path):
    pytest.importorskip("fastparquet")
    import fastparquet
    target = AtomicFile(str(tmp_path / "t.parquet"))
    writer = ParquetWriter(target, {"schema": SCHEMA, "version": 1}, None, batch_rows=3)
    writer.begin_part(0)
    writer.feed(b"".join(lines(4)))
    writer.restart_part()
    writer.feed(b"".join(lines(4)))
    writer.end_part()
    writer.finish()
    writer.commit()
    assert len(fastparquet.ParquetFile(str(tmp_path / "t.parquet")).to_pandas()) == 4 == writer.rows


def test_column_values_are_those_of_the_cores_record_layout():
    """The Parquet path extracts a batch column by column: the values are the core's."""
    import json
    batch = [json.loads(line) for line in lines(40, whole_seconds=False)]
    batch.append({"key": {"id": 99}, "value": None, "meta": {"ts": "2024-01-01T00:00:00Z",
                                                            "action": "D"}})
    for mode in ("expanded", "condensed"):
        columns = records.columns_from_schema(SCHEMA, mode)
        want = [records.row_to_jsonable(records.record_to_row(r, columns), columns)
                for r in batch]
        got = records.records_to_columns(batch, columns)
        for index, column in enumerate(columns):
            assert got[index] == [w[index] for w in want], column


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
    return [records.to_json_text(r).encode() + b"\n" for r in recs]


def write_records(tmp_path, parts, schema=NESTED, mode=None, batch_rows=65536, snapshot=False):
    """Write `parts` (lists of JSONL lines) as a job's parts; (writer, frame, ParquetFile)."""
    fastparquet = pytest.importorskip("fastparquet")
    path = tmp_path / ("t%d.parquet" % len(list(tmp_path.iterdir())))
    writer = ParquetWriter(AtomicFile(str(path)), {"schema": schema, "version": 1}, mode,
                           batch_rows=batch_rows, snapshot=snapshot)
    for index, part in enumerate(parts):
        writer.begin_part(index)
        for line in part:
            writer.feed(line)
        writer.end_part()
    writer.finish()
    writer.commit()
    parquet = fastparquet.ParquetFile(str(path))
    return writer, parquet.to_pandas(), parquet


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


def test_each_kind_of_column_has_its_dtype(tmp_path):
    _, frame, _ = write_records(tmp_path, [jsonl(UPDATE, SPARSE, GONE)])
    dtypes = {name: str(dtype) for name, dtype in frame.dtypes.items()}
    columns = records.columns_from_schema(NESTED)
    assert list(dtypes) == [c.name for c in columns]
    for column in columns:
        want = records.parquet_type(column)
        assert dtypes[column.name] == want, column
    assert dtypes["meta.ts"] == dtypes["value.due_at"] == "datetime64[us, UTC]"
    assert dtypes["key.id"] == "Int64" and dtypes["value.active"] == "boolean"


def test_values_nulls_deletes_nested_and_json_columns(tmp_path):
    _, frame, _ = write_records(tmp_path, [jsonl(UPDATE, SPARSE, GONE)])
    rows = frame.to_dict("records")
    first, sparse, gone = rows
    assert first["value.name"] == "Zoë \"Z\", first\nline"
    assert first["value.score"] == 2.5 and first["value.active"] is True
    assert first["value.attachment.id"] == 2 ** 62  # nested objects spread into columns
    assert first["value.attachment.checksum.value"] == "abc"
    assert first["value.settings"] == '{"a":[1,null],"ü":"x"}'  # JSON text, compact, UTF-8
    assert first["value.tags"] == '["a","b"]' and sparse["value.tags"] == "[]"
    assert first["value.due_at"].to_pydatetime() == dt.datetime(
        2024, 7, 13, 9, 30, 0, 123456, tzinfo=dt.timezone.utc)
    assert first["meta.ts"].to_pydatetime() == dt.datetime(2024, 7, 13, 9, 30,
                                                          tzinfo=dt.timezone.utc)
    # nulls and absent values read back as the dtype's null
    assert sparse["value.name"] is None and frame["value.score"].isna().tolist()[1:] == [True] * 2
    assert frame["value.attachment.id"].isna().tolist() == [False, True, True]
    assert frame["value.active"].isna().tolist() == [False, True, True]
    assert str(sparse["value.due_at"]) == "NaT" and sparse["value.settings"] is None
    # a delete has its key and meta, and nulls in every value column
    assert gone["key.id"] == 3 and gone["meta.action"] == "D"
    assert all(frame[name].isna()[2] for name in frame.columns if name.startswith("value."))


def test_condensed_mode_keeps_nested_objects_as_json_text(tmp_path):
    _, frame, _ = write_records(tmp_path, [jsonl(UPDATE, GONE)], mode="condensed")
    assert frame["value.attachment"].tolist() == [
        '{"id":%d,"checksum":{"value":"abc"}}' % 2 ** 62, None]


def test_year_9999_and_year_1_timestamps_survive(tmp_path):
    far = dict(UPDATE, value=dict(UPDATE["value"], due_at="9999-12-31T23:59:59.999999Z"),
               meta={"ts": "0001-01-01T00:00:00Z", "action": "U"})
    _, frame, _ = write_records(tmp_path, [jsonl(far, SPARSE)])
    assert frame["value.due_at"][0].to_pydatetime() == dt.datetime(
        9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.timezone.utc)
    assert frame["meta.ts"][0].to_pydatetime() == dt.datetime(1, 1, 1, tzinfo=dt.timezone.utc)


def test_timestamps_of_any_precision_mixed_in_a_column(tmp_path):
    texts = ["2024-07-13T09:30:00Z", None, "2024-07-13T09:30:00.5Z", "2024-07-13T09:30:00.123Z",
             "2024-07-13T09:30:00.123456Z", "2024-07-13T09:30:00.1234567Z", "2000-02-29T00:00:00Z"]
    lines = jsonl(*[dict(UPDATE, key={"id": i}, value={"due_at": text})
                    for i, text in enumerate(texts)])
    for batch_rows in (65536, 1):  # a column of several widths, and of one width each
        _, frame, _ = write_records(tmp_path, [lines], batch_rows=batch_rows)
        got = [None if str(v) == "NaT" else v.to_pydatetime() for v in frame["value.due_at"]]
        want = [None if t is None else parse_timestamp(t[:26] + "Z" if len(t) > 27 else t)
                for t in texts]
        assert got == want


def test_timestamps_with_an_offset_are_turned_to_utc(tmp_path):
    offset = dict(UPDATE, value=dict(UPDATE["value"], due_at="2024-07-13T11:30:00+02:00"))
    _, frame, _ = write_records(tmp_path, [jsonl(offset, SPARSE)])
    assert frame["value.due_at"][0].to_pydatetime() == dt.datetime(
        2024, 7, 13, 9, 30, tzinfo=dt.timezone.utc)


def test_an_empty_result_is_a_file_of_typed_columns_and_no_rows(tmp_path):
    writer, frame, parquet = write_records(tmp_path, [])
    assert writer.rows == 0 and len(frame) == 0 and parquet.row_groups == []
    assert [str(t) for t in frame.dtypes] == [
        records.parquet_type(c) for c in records.columns_from_schema(NESTED)]
    _, frame, _ = write_records(tmp_path, [[], [b"\n"]])  # empty parts
    assert len(frame) == 0


def test_several_row_groups_read_as_one_table(tmp_path):
    many = [dict(UPDATE, key={"id": i}) if i % 3 else dict(GONE, key={"id": i})
            for i in range(25)]
    parts = [jsonl(*many[:7]), jsonl(*many[7:8]), jsonl(*many[8:])]
    writer, frame, parquet = write_records(tmp_path, parts, batch_rows=4)
    assert len(parquet.row_groups) == 7 and [rg.num_rows for rg in parquet.row_groups] == [
        4, 4, 4, 4, 4, 4, 1]
    assert writer.rows == len(frame) == 25 and frame["key.id"].tolist() == list(range(25))
    assert frame["meta.action"].tolist() == ["D" if i % 3 == 0 else "U" for i in range(25)]
    import pandas
    groups = list(parquet.iter_row_groups())
    assert [len(g) for g in groups] == [4, 4, 4, 4, 4, 4, 1]
    assert pandas.concat(groups, ignore_index=True).equals(frame)


def test_texts_of_a_column_that_was_all_null_in_the_first_row_group(tmp_path):
    """The file's schema comes from the columns' types, not from the first rows: a text
    column that starts with nulls (deletes first) is still text."""
    _, frame, _ = write_records(tmp_path, [jsonl(GONE, GONE), jsonl(UPDATE)], batch_rows=2)
    assert frame["value.name"].tolist() == [None, None, UPDATE["value"]["name"]]


def test_texts_that_hold_anything_survive(tmp_path):
    odd = ["", " ", "\x1f", "a\x1fb\x1f", "\x00", "NULL", "ü" * 3, "\U0001F600", "\\N"]
    lines = jsonl(*[dict(UPDATE, key={"id": i}, value={"name": text})
                    for i, text in enumerate(odd)])
    _, frame, _ = write_records(tmp_path, [lines[:4], lines[4:]], batch_rows=3)
    assert frame["value.name"].tolist() == odd


def test_long_lines_and_a_last_line_without_newline(tmp_path):
    from dap_core.shell import writers
    long = dict(UPDATE, value=dict(UPDATE["value"], name="x" * (3 * writers.PARQUET_READ_BYTES)))
    part = b"".join(jsonl(SPARSE, long, UPDATE))[:-1]  # no newline after the last line
    _, frame, _ = write_records(tmp_path, [[part[i:i + 1000] for i in range(0, len(part), 1000)]])
    assert frame["key.id"].tolist() == [2, 1, 1]
    assert frame["value.name"][1] == long["value"]["name"]


def test_values_of_another_type_than_the_schemas(tmp_path):
    """A number in a text column is its JSON text; an integral float in an integer column
    is that integer; a value no conversion can take is an UnexpectedAnswer (not a crash)."""
    loose = dict(UPDATE, value={"name": 12.5, "attachment": {"id": 3.0}})
    _, frame, _ = write_records(tmp_path, [jsonl(loose)])
    assert frame["value.name"][0] == "12.5" and frame["value.attachment.id"][0] == 3
    from dap_core.errors import UnexpectedAnswer
    for bad in ({"score": "many"}, {"attachment": {"id": "x"}}, {"active": "yes"},
                {"due_at": "tomorrow"}, {"due_at": 1720863000}, {"due_at": "Z"},
                {"due_at": "2024-07-13T09:30:00Zü"}, {"attachment": {"id": 1.5}}):
        with pytest.raises(UnexpectedAnswer, match="column value"):
            write_records(tmp_path, [jsonl(dict(UPDATE, value=bad))])


def test_a_line_that_is_not_a_json_object_is_an_unexpected_answer(tmp_path):
    from dap_core.errors import UnexpectedAnswer
    with pytest.raises(UnexpectedAnswer, match="line 2 "):
        write_records(tmp_path, [jsonl(UPDATE) + [b"[1, 2]\n"]])


def test_parquet_equals_the_jsonl_of_the_same_incremental_job(make_simulator, tmp_path):
    """Upserts and deletes (nulls in every value column) of one job, in both formats."""
    fastparquet = pytest.importorskip("fastparquet")
    from dap_core import IncrementalQuery, SnapshotQuery
    from .conftest import connect, read_jsonl
    sim = make_simulator(rows_per_part=13)
    with connect(sim) as dap:
        since = dap.run(SnapshotQuery("canvas", "submissions")).at
        sim.advance(3)
        schema = dap.get_schema("canvas", "submissions")["schema"]
        done = {}
        for fmt in ("jsonl", "parquet"):
            query = IncrementalQuery("canvas", "submissions", since=since, format=fmt)
            job = dap.run(query)
            done[fmt] = (job.id, dap.download(job, query, str(tmp_path / fmt)))
    assert done["jsonl"][0] == done["parquet"][0]  # one job, deduplicated
    lines = read_jsonl(done["jsonl"][1].path)
    assert {r["meta"]["action"] for r in lines} == {"U", "D"}
    columns = records.columns_from_schema(schema)
    frame = fastparquet.ParquetFile(done["parquet"][1].path).to_pandas()
    assert len(frame) == len(lines) == done["parquet"][1].rows
    want = records.records_to_columns(lines, columns)
    for column, values in zip(columns, want):
        nulls = frame[column.name].isna().tolist()
        got = [None if null else v for v, null in zip(frame[column.name].tolist(), nulls)]
        if column.type == "timestamp":
            values = [None if v is None else parse_timestamp(v) for v in values]
            got = [None if v is None else v.to_pydatetime() for v in got]
        assert got == values, column


def test_the_footer_is_the_one_fastparquet_writes_for_many_row_groups(tmp_path):
    """The row groups' metadata is kept encoded and spliced into the footer: the footer is
    byte for byte what fastparquet encodes of the metadata it reads back (130 row groups:
    a list header of several bytes)."""
    import io
    import struct
    from fastparquet.writer import write_thrift
    many = [dict(UPDATE, key={"id": i}) for i in range(130)]
    writer, frame, parquet = write_records(tmp_path, [jsonl(*many)], batch_rows=1)
    assert len(parquet.row_groups) == 130 and frame["key.id"].tolist() == list(range(130))
    data = (tmp_path / "t0.parquet").read_bytes()
    size = struct.unpack("<I", data[-8:-4])[0]
    encoded = io.BytesIO()
    write_thrift(encoded, parquet.fmd)
    assert data[-8 - size:-8] == encoded.getvalue() and data[-4:] == data[:4] == b"PAR1"


# -- snapshots: DAP's records carry meta.ts only -------------------------------------------------

def test_a_snapshots_file_has_no_meta_action_column(tmp_path):
    """Absent, not a column of nulls nor of invented U's: the file matches the records."""
    writer, frame, _ = write_records(tmp_path, [jsonl(as_snapshot(UPDATE)),
                                                jsonl(as_snapshot(SPARSE))],
                                     snapshot=True, batch_rows=1)
    names = [c.name for c in records.columns_from_schema(NESTED)]
    assert list(frame.columns) == [n for n in names if n != "meta.action"]
    assert writer.rows == len(frame) == 2 and frame["key.id"].tolist() == [1, 2]
    assert frame["value.name"].tolist() == [UPDATE["value"]["name"], None]
    assert frame["meta.ts"].tolist()[1].to_pydatetime() == parse_timestamp("2024-07-13T09:30:01Z")
    for mode in ("condensed", None):
        _, empty, _ = write_records(tmp_path, [], mode=mode, snapshot=True)
        assert len(empty) == 0 and "meta.action" not in empty.columns
        assert list(empty.columns)[:2] == ["meta.ts", "key.id"]


def test_a_snapshot_whose_records_carry_meta_action_keeps_it(tmp_path):
    """The shape of old clients' expectations (the simulator's --snapshot-action)."""
    _, frame, _ = write_records(tmp_path, [jsonl(UPDATE, SPARSE), jsonl(UPDATE)], snapshot=True,
                                batch_rows=2)
    assert list(frame.columns) == [c.name for c in records.columns_from_schema(NESTED)]
    assert frame["meta.action"].tolist() == ["U", "U", "U"]


def test_a_snapshot_whose_later_records_carry_meta_action_is_refused_not_dropped(tmp_path):
    from dap_core.errors import UnexpectedAnswer
    with pytest.raises(UnexpectedAnswer, match="meta.action"):
        write_records(tmp_path, [jsonl(as_snapshot(UPDATE)), jsonl(SPARSE)], snapshot=True)


def test_an_incremental_keeps_meta_action_whatever_its_records(tmp_path):
    _, frame, _ = write_records(tmp_path, [jsonl(UPDATE, GONE, as_snapshot(SPARSE))])
    assert frame["meta.action"].tolist()[:2] == ["U", "D"]
    assert frame["meta.action"].isna().tolist() == [False, False, True]
