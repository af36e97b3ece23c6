"""Parquet's large parts can be encoded in a worker process (``parquet._write_chunks``,
``DAP_PARQUET_WORKERS=1``) while this process writes row groups:
the file is byte-identical to encoding everything here, whatever the chunks and row groups (a
chunk cut by a row group's end, texts holding the unit separator, nulls, deletes, a
snapshot without meta.action); a line that is not the table's TSV is the same error; a
worker that cannot be used leaves the work to this process, with the same file.  Parts are
the TSV the simulator's own encoder makes of the records (no dap_core code).  Every file is
read with pyarrow and fastparquet (tests/parquet_readers.py), and its values are the
records' (`expected_columns`)."""
from __future__ import annotations

import copy
import datetime as dt
import json
import logging

import pytest

from dap_core.errors import UnexpectedAnswer
from dap_core.shell import parquet
from fixtures.simulator.encoders import encode
from tests.parquet_parts import FLAT_SCHEMA, write_parts
from tests.parquet_readers import read_both

#: FLAT_SCHEMA with an object of fixed shape, spread into value.doc.n
SCHEMA = copy.deepcopy(FLAT_SCHEMA)
SCHEMA["properties"]["value"]["properties"]["doc"] = {
    "type": "object", "properties": {"n": {"type": "integer"}}}


def part(start: int, count: int, action: bool) -> bytes:
    """The records ``start`` to ``start + count`` as one TSV part (``records`` has them)."""
    return b"".join(encode(records(start, count, action), "tsv", SCHEMA, "expanded",
                           meta_action=action))


def records(start: int, count: int, action: bool):
    out = []
    for i in range(start, start + count):
        meta = {"ts": "2024-07-13T09:%02d:%02d.%03dZ" % (i // 60 % 60, i % 60, i % 1000)}
        if action:
            meta["action"] = "D" if i % 11 == 5 else "U"
        value = {"name": "n%d" % i if i % 13 else "with\x1fseparator %d" % i,
                 "score": i / 8 if i % 5 else None, "active": i % 3 == 0,
                 "at": "2024-01-%02dT00:00:00Z" % (i % 28 + 1), "tags": ["a", str(i)],
                 "doc": {"n": i} if i % 4 else None}
        if i % 9 == 2:
            value.pop("name")
        record = {"key": {"id": i}, "meta": meta}
        if meta.get("action") != "D":
            record["value"] = value
        out.append(record)
    return out


def write(tmp_path, name, parts, snapshot, batch_rows=37):
    write_parts(tmp_path / name, SCHEMA, parts, mode="expanded", snapshot=snapshot,
                batch_rows=batch_rows)
    read_both(tmp_path / name)  # pyarrow reads what fastparquet reads
    return (tmp_path / name).read_bytes()


def _instant(text):
    """The UTC instant of one of part()'s timestamps (whole seconds or milliseconds, Z)."""
    shape = "%Y-%m-%dT%H:%M:%S.%fZ" if "." in text else "%Y-%m-%dT%H:%M:%SZ"
    return dt.datetime.strptime(text, shape).replace(tzinfo=dt.timezone.utc)


def expected_columns(batches, with_action):
    """{column: values} a file of `parts` must hold, by SCHEMA's rules: integers, floats,
    booleans and texts as they are, timestamps as UTC instants, arrays as compact JSON text,
    the object `doc` spread into `value.doc.n`; null for null, absent, and every value
    column of a delete; meta.action only when the records carry it."""
    rows = [record for batch in batches for record in batch]
    names = ["meta.ts"] + (["meta.action"] if with_action else []) + [
        "key.id", "value.name", "value.score", "value.active", "value.at", "value.tags",
        "value.doc.n"]
    out = {name: [] for name in names}
    for record in rows:
        value = record.get("value") or {}
        doc = value.get("doc") or {}
        tags = value.get("tags")
        row = {"meta.ts": _instant(record["meta"]["ts"]),
               "meta.action": record["meta"].get("action"), "key.id": record["key"]["id"],
               "value.name": value.get("name"), "value.score": value.get("score"),
               "value.active": value.get("active"),
               "value.at": _instant(value["at"]) if "at" in value else None,
               "value.tags": None if tags is None else json.dumps(tags, separators=(",", ":")),
               "value.doc.n": doc.get("n")}
        for name in names:
            out[name].append(row[name])
    return out


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of about 3 KB (a dozen records), so that row groups of 37 rows cut them."""
    monkeypatch.setattr(parquet, "PARQUET_CHUNK_BYTES", 3000)
    monkeypatch.setattr(parquet, "PARQUET_WORKERS", 1)


@pytest.fixture
def counted(monkeypatch):
    """How many chunks went to the worker."""
    sent = []
    submit = parquet._submit

    def counting(pool, chunk, *args):
        future = submit(pool, chunk, *args)
        sent.append(future is not None)
        return future

    monkeypatch.setattr(parquet, "_submit", counting)
    return sent


@pytest.mark.parametrize("snapshot,action", [(True, False), (False, True), (True, True)],
                         ids=["snapshot", "incremental", "snapshot-with-action"])
def test_a_part_encoded_in_the_worker_gives_the_very_same_file(
        tmp_path, monkeypatch, small_chunks, counted, snapshot, action):
    spans = [(0, 300), (300, 7), (307, 0), (307, 500)]
    parts = [part(start, count, action) for start, count in spans]
    monkeypatch.setattr(parquet, "PARQUET_PARALLEL_BYTES", 1 << 40)
    here = write(tmp_path, "here.parquet", parts, snapshot)
    assert counted and not any(counted), "a chunk went to the worker"
    monkeypatch.setattr(parquet, "PARQUET_PARALLEL_BYTES", 1)
    there = write(tmp_path, "there.parquet", parts, snapshot)
    assert any(counted), "no chunk went to the worker"
    assert there == here
    content = read_both(tmp_path / "here.parquet")
    assert content.columns == expected_columns(
        [records(start, count, action) for start, count in spans], action)
    assert content.num_rows == 807 and len(content.row_groups) > 1


def test_a_line_that_is_not_the_tables_tsv_is_the_same_error_from_the_worker(
        tmp_path, monkeypatch, small_chunks, counted):
    data = part(0, 200, True).split(b"\n")
    data[150] = data[150] + b"\tone field too many"  # line 151 (the header is line 1)
    parts = [b"\n".join(data)]
    errors = []
    for threshold in (1 << 40, 1):
        monkeypatch.setattr(parquet, "PARQUET_PARALLEL_BYTES", threshold)
        with pytest.raises(UnexpectedAnswer) as caught:
            write(tmp_path, "bad%d.parquet" % threshold, parts, snapshot=False)
        errors.append(str(caught.value))
    assert any(counted) and errors[0] == errors[1] and "line 151" in errors[0]
    assert not list(tmp_path.iterdir())


def test_a_worker_that_cannot_be_used_leaves_the_work_here(tmp_path, monkeypatch, small_chunks,
                                                          counted, caplog):
    import concurrent.futures
    parts = [part(0, 400, True)]
    monkeypatch.setattr(parquet, "PARQUET_PARALLEL_BYTES", 1 << 40)
    here = write(tmp_path, "here.parquet", parts, snapshot=False)
    broken = concurrent.futures.ThreadPoolExecutor(1)
    broken.shutdown()  # submit raises from now on
    monkeypatch.setattr(parquet, "_POOL", {"pool": broken, "failed": False})
    monkeypatch.setattr(parquet, "PARQUET_PARALLEL_BYTES", 1)
    with caplog.at_level(logging.WARNING, logger="dap.writers"):
        there = write(tmp_path, "there.parquet", parts, snapshot=False)
    assert there == here and counted and not any(counted)
    assert parquet._POOL["failed"] and parquet._POOL["pool"] is None
    assert len([r for r in caplog.records if "no worker process" in r.getMessage()]) == 1


@pytest.mark.parametrize("value,workers", [(None, 0), ("", 0), ("0", 0), ("1", 1), ("2", 2),
                                           ("x", 0)])
def test_workers_come_from_the_environment_and_are_off_by_default(monkeypatch, value, workers):
    monkeypatch.setattr(parquet, "PARQUET_WORKERS", None)
    if value is None:
        monkeypatch.delenv("DAP_PARQUET_WORKERS", raising=False)
    else:
        monkeypatch.setenv("DAP_PARQUET_WORKERS", value)
    assert parquet._workers() == workers
