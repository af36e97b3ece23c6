"""The Parquet writer's typing, without the network: values survive fastparquet exactly,
whatever the timestamps look like (pandas infers a unit from the data; fastparquet would
write a column of seconds with wrong values), across several row groups in one file."""
from __future__ import annotations

import datetime as dt

import pytest

from dap_core import records
from dap_core.shell.sinks import AtomicFile
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
    want = [__import__("json").loads(l) for part in parts for l in part]
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
    """The Parquet path extracts columns its own (faster) way: the values are the core's."""
    import json
    from dap_core.shell.writers import column_values
    batch = [json.loads(l) for l in lines(40, whole_seconds=False)]
    batch.append({"key": {"id": 99}, "value": None, "meta": {"ts": "2024-01-01T00:00:00Z",
                                                            "action": "D"}})
    for mode in ("expanded", "condensed"):
        columns = records.columns_from_schema(SCHEMA, mode)
        want = [records.flatten_record(r, columns) for r in batch]
        for column in columns:
            assert column_values(batch, column) == [w[column.name] for w in want], column
