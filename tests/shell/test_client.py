"""The library's Client against the bundled simulator over loopback: tables, schemas,
snapshots and incrementals into every format, records as dicts, chaining."""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import os

import pytest

from dap_core import IncrementalQuery, SnapshotQuery, errors
from dap_core.columns import columns_from_schema, csv_header, tsv_header
from dap_core.copytext import decode_field
from dap_core.errors import AuthenticationFailed, InvalidInput, JobFailed, NotFound
from dap_core.timestamps import format_timestamp, parse_timestamp

from tests.parquet_readers import read_both

from .conftest import Sleeper, apply_changes, connect, read_jsonl

FORMATS = ("jsonl", "json", "csv", "tsv", "parquet")


def _text(path, newline=None) -> str:
    with open(path, encoding="utf-8", newline=newline) as f:
        return f.read()


def _bytes(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def test_list_tables_and_get_schema(sim):
    with connect(sim) as dap:
        assert "accounts" in dap.list_tables("canvas")
        assert dap.list_tables("canvas_logs") == ["web_logs"]
        schema = dap.get_schema("canvas", "accounts")
        assert isinstance(schema["version"], int) and "properties" in schema["schema"]


def test_api_key_credentials_work_like_client_id_and_secret(sim):
    with connect(sim, api_key=True) as dap:
        assert "users" in dap.list_tables()


@pytest.mark.parametrize("fmt", FORMATS)
def test_snapshot_download_writes_one_file_and_its_sidecar(sim, tmp_path, fmt):
    query = SnapshotQuery("canvas", "users", format=fmt)
    with connect(sim) as dap:
        job = dap.run(query)
        assert len(job.objects) > 1  # several parts are merged into one output
        result = dap.download(job, query, str(tmp_path))
    at = format_timestamp(job.at).replace("-", "").replace(":", "")
    assert os.path.basename(result.path) == "canvas.users.snapshot.%s.%s" % (at, fmt)
    assert sorted(os.listdir(tmp_path)) == sorted([os.path.basename(result.path),
                                                   os.path.basename(result.meta_path)])
    meta = json.loads(_text(result.meta_path))
    assert meta == result.metadata
    assert meta["job_id"] == job.id and meta["kind"] == "snapshot" and meta["format"] == fmt
    assert meta["at"] == meta["next_since"] == format_timestamp(job.at)
    assert meta["rows"] == result.rows == len(sim.current_state("canvas", "users"))
    assert meta["schema_version"] == job.schema_version


def test_jsonl_snapshot_is_the_simulators_current_state(sim, tmp_path):
    query = SnapshotQuery("canvas", "enrollments")
    with connect(sim) as dap:
        result = dap.download(dap.run(query), query, str(tmp_path))
    got = apply_changes({}, read_jsonl(result.path))
    assert got == sim.current_state("canvas", "enrollments")


def test_json_output_is_one_valid_array_of_the_same_records(sim, tmp_path):
    with connect(sim) as dap:
        paths = {}
        for fmt in ("jsonl", "json"):
            query = SnapshotQuery("canvas", "users", format=fmt)
            paths[fmt] = dap.download(dap.run(query), query, str(tmp_path)).path
    assert json.loads(_text(paths["json"])) == read_jsonl(paths["jsonl"])


def _csv_cells(text: str):
    """RFC 4180 rows of (value, quoted) cells, so that null (an empty field) and the empty
    string ("") stay apart."""
    rows, row, cell, quoted, i, n = [], [], [], False, 0, len(text)
    in_quotes = False
    while i < n:
        c = text[i]
        if in_quotes:
            if c == '"' and i + 1 < n and text[i + 1] == '"':
                cell.append('"')
                i += 1
            elif c == '"':
                in_quotes = False
            else:
                cell.append(c)
        elif c == '"':
            in_quotes = quoted = True
        elif c == ",":
            row.append(("".join(cell), quoted))
            cell, quoted = [], False
        elif c == "\n":
            row.append(("".join(cell), quoted))
            rows.append(row)
            row, cell, quoted = [], [], False
        else:
            cell.append(c)
        i += 1
    return rows


def _typed(text, column):
    if column.type == "integer":
        return int(text)
    if column.type == "number":
        return float(text)
    if column.type == "boolean":
        return {"true": True, "false": False}[text]
    if column.type == "timestamp":
        return parse_timestamp(text)
    if column.type == "json":
        return json.loads(text)
    return text


MISSING = object()  # a value column of a delete record, which has no value at all


def record_to_row(record, columns):
    """The values of ``record`` along each column's path: None for null or absent, MISSING
    for the value columns of a delete."""
    row = []
    for column in columns:
        node = record
        for step in column.path:
            if node is None or step not in node:
                node = MISSING if column.path[0] == "value" and "value" not in record else None
                break
            node = node[step]
        row.append(node)
    return row


def decode_tsv_line(line):
    """The fields of one COPY-text line, None for ``\\N``."""
    return [decode_field(field) for field in line.split("\t")]


def _expected(value, column):
    if value is MISSING or value is None:
        return value
    if column.type == "timestamp":
        return parse_timestamp(value)
    if column.type == "number":
        return float(value)
    return value


def test_csv_and_tsv_parse_back_to_the_values_of_the_jsonl(sim, tmp_path):
    with connect(sim) as dap:
        schema = dap.get_schema("canvas", "submissions")["schema"]
        paths = {}
        for fmt in ("jsonl", "csv", "tsv"):
            query = SnapshotQuery("canvas", "submissions", format=fmt)
            paths[fmt] = dap.download(dap.run(query), query, str(tmp_path)).path
    columns = columns_from_schema(schema, "expanded", action=False)  # a snapshot
    assert [c.name for c in columns][:2] == ["meta.ts", "key.id"]
    want = sorted((record_to_row(r, columns) for r in read_jsonl(paths["jsonl"])),
                  key=lambda row: json.dumps(row[1:2], default=str))
    want = [[_expected(v, c) for v, c in zip(row, columns)] for row in want]

    csv_rows = _csv_cells(_text(paths["csv"], newline=""))
    assert [cell for cell, _ in csv_rows[0]] == [c.name for c in columns]
    got_csv = []
    for row in csv_rows[1:]:
        values = []
        for (text, quoted), column in zip(row, columns):
            if not quoted and text == "":
                values.append(None)  # null: no characters at all
            else:
                values.append(_typed(text, column))
        got_csv.append(values)

    tsv_lines = _text(paths["tsv"], newline="").split("\n")
    assert tsv_lines[-1] == ""
    assert decode_tsv_line(tsv_lines[0]) == [c.name for c in columns]
    got_tsv = []
    for line in tsv_lines[1:-1]:
        values = []
        for text, column in zip(decode_tsv_line(line), columns):
            values.append(None if text is None else _typed(text, column))
        got_tsv.append(values)

    def canon(rows):
        return sorted(json.dumps([None if v is MISSING else v for v in row],
                                 default=str, sort_keys=True) for row in rows)

    assert len(got_csv) == len(want) == len(got_tsv)
    assert canon(got_csv) == canon(want)
    assert canon(got_tsv) == canon(want)


def test_parquet_of_an_empty_result_still_has_its_typed_columns(sim, tmp_path):
    pytest.importorskip("fastparquet")
    since = sim.frontier
    query = IncrementalQuery("canvas", "accounts", since=since, format="parquet")
    with connect(sim) as dap:
        job = dap.run(query)
        result = dap.download(job, query, str(tmp_path))
    assert result.rows == 0
    content = read_both(result.path)
    assert content.num_rows == 0 and "key.id" in content.names


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_an_empty_csv_or_tsv_result_still_has_its_header(sim, tmp_path, fmt):
    query = IncrementalQuery("canvas", "accounts", since=sim.frontier, format=fmt)
    with connect(sim) as dap:
        result = dap.download(dap.run(query), query, str(tmp_path))
        schema = dap.get_schema("canvas", "accounts")["schema"]
    header = (csv_header if fmt == "csv" else tsv_header)(
        columns_from_schema(schema, "expanded"))
    assert _text(result.path) == header and result.rows == 0


def _service_header(sim, query) -> str:
    """The first line of the first part the simulator serves for `query`, fetched by hand."""
    import gzip
    import urllib.request
    with connect(sim) as dap:
        job = dap.run(query)
        url = dap.session.object_urls([job.objects[0]])[job.objects[0]]
    with urllib.request.urlopen(url, timeout=30) as answer:
        return gzip.decompress(answer.read()).decode("utf-8").split("\n", 1)[0] + "\n"


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
@pytest.mark.parametrize("kind", ["snapshot", "incremental"])
def test_a_result_of_no_parts_gets_the_header_the_service_sends(sim, tmp_path, fmt, kind):
    """With no part to take the header from, it is made from the schema: for a snapshot
    without meta.action, for an incremental with it, as the service's own parts have it."""
    since = sim.frontier
    sim.advance(1)
    query = (SnapshotQuery("canvas", "users", format=fmt) if kind == "snapshot"
             else IncrementalQuery("canvas", "users", since=since, format=fmt))
    served = _service_header(sim, query)
    assert ("meta.action" in served) == (kind == "incremental")
    with connect(sim) as dap:
        job = dataclasses.replace(dap.run(query), objects=())
        result = dap.download(job, query, str(tmp_path))
        stream = io.BytesIO()
        dap.write_records(job, query, stream)
    assert _text(result.path) == served and result.rows == 0
    assert stream.getvalue().decode("utf-8") == served


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "tsv", "parquet"])
@pytest.mark.parametrize("snapshot_action", [False, True])
def test_snapshots_have_meta_action_only_if_the_service_sends_it(make_simulator, tmp_path, fmt,
                                                                snapshot_action):
    """Files and stdout in every format take both shapes of a snapshot's records; an
    incremental always has meta.action."""
    if fmt == "parquet":
        pytest.importorskip("fastparquet")
    sim = make_simulator(rows_per_part=17, changes_per_step=20, snapshot_action=snapshot_action)
    since = sim.frontier
    sim.advance(2)
    for query in (SnapshotQuery("canvas", "users", format=fmt),
                  IncrementalQuery("canvas", "users", since=since, format=fmt)):
        has = query.kind == "incremental" or snapshot_action
        with connect(sim) as dap:
            job = dap.run(query)
            result = dap.download(job, query, str(tmp_path / query.kind / str(snapshot_action)))
            stream = io.BytesIO()
            if fmt != "parquet":
                dap.write_records(job, query, stream)
        if fmt == "parquet":
            content = read_both(result.path)
            actions = content.columns.get("meta.action")
        else:
            data = _bytes(result.path)
            assert stream.getvalue() == data
            text = data.decode("utf-8")
            if fmt in ("jsonl", "json"):
                recs = (json.loads(text) if fmt == "json" else
                        [json.loads(line) for line in text.splitlines()])
                shapes = {"action" in r["meta"] for r in recs}
                assert len(shapes) == 1
                actions = [r["meta"]["action"] for r in recs] if shapes == {True} else None
            else:
                rows = (list(csv.reader(io.StringIO(text, newline=""))) if fmt == "csv" else
                        [decode_tsv_line(line) for line in text.split("\n")[:-1]])
                assert rows[0][0] == "meta.ts"
                actions = [r[1] for r in rows[1:]] if rows[0][1] == "meta.action" else None
        assert result.rows > 0
        if not has:
            assert actions is None, (fmt, query.kind)
        else:
            assert len(actions) == result.rows
            assert set(actions) == ({"U", "D"} if query.kind == "incremental" else {"U"})


def test_iter_records_gives_dicts_of_the_current_state(sim):
    with connect(sim) as dap:
        job = dap.run(SnapshotQuery("canvas", "courses"))
        got = apply_changes({}, dap.iter_records(job))
    assert got == sim.current_state("canvas", "courses")


def test_iter_records_gives_records_as_dap_sends_them(make_simulator):
    """A snapshot's records carry meta.ts only (or meta.action U with the option), an
    incremental's meta.action U or D."""
    for snapshot_action in (False, True):
        sim = make_simulator(rows_per_part=17, changes_per_step=20,
                             snapshot_action=snapshot_action)
        since = sim.frontier
        sim.advance(2)
        with connect(sim) as dap:
            snapshot = list(dap.iter_records(dap.run(SnapshotQuery("canvas", "courses"))))
            changes = list(dap.iter_records(dap.run(
                IncrementalQuery("canvas", "courses", since=since))))
        assert len(snapshot) == len(sim.current_state("canvas", "courses"))
        want = {"ts", "action"} if snapshot_action else {"ts"}
        assert all(set(r["meta"]) == want for r in snapshot)
        assert {r["meta"]["action"] for r in changes} == {"U", "D"}


def test_write_records_streams_to_a_binary_stream(sim, tmp_path):
    query = SnapshotQuery("canvas", "users", format="tsv")
    with connect(sim) as dap:
        job = dap.run(query)
        stream = io.BytesIO()
        streamed = dap.write_records(job, query, stream)
        on_disk = dap.download(job, query, str(tmp_path))
    assert stream.getvalue() == _bytes(on_disk.path)
    assert streamed.rows == on_disk.rows and streamed.path is None


def test_snapshot_then_two_incrementals_reconstruct_the_current_state(sim, tmp_path):
    table = "enrollments"
    with connect(sim) as dap:
        query = SnapshotQuery("canvas", table)
        job = dap.run(query)
        state = apply_changes({}, read_jsonl(dap.download(job, query, str(tmp_path)).path))
        since = job.at
        for _ in range(2):
            sim.advance(2)
            query = IncrementalQuery("canvas", table, since=since)
            job = dap.run(query)
            assert job.since == since
            apply_changes(state, read_jsonl(dap.download(job, query, str(tmp_path)).path))
            since = job.until
    assert state == sim.current_state("canvas", table)
    assert len(os.listdir(tmp_path)) == 6


def test_wrong_credentials_are_refused_with_the_services_uuid(make_simulator):
    sim = make_simulator(client_secret="the-right-one")
    from dap_core import Client, resolve_credentials
    with Client(sim.base_url, resolve_credentials(client_id=sim.client_id,
                                                  client_secret="wrong")) as dap:
        with pytest.raises(AuthenticationFailed) as caught:
            dap.list_tables()
    assert caught.value.exit_status == 4 and caught.value.uuid
    assert caught.value.uuid in str(caught.value)


@pytest.mark.parametrize("namespace,table", [("canvas", "no_such_table"), ("nowhere", "users")])
def test_unknown_table_or_namespace_is_not_found_with_uuid(sim, namespace, table):
    with connect(sim) as dap:
        with pytest.raises(NotFound) as caught:
            dap.run(SnapshotQuery(namespace, table))
    assert caught.value.exit_status == 6 and caught.value.uuid in str(caught.value)
    assert table in str(caught.value) or namespace in str(caught.value)


def test_a_failed_job_raises_with_the_services_message_and_writes_nothing(make_simulator,
                                                                        tmp_path):
    sim = make_simulator(fail_table=("users",))
    with connect(sim) as dap:
        with pytest.raises(JobFailed) as caught:
            job = dap.run(SnapshotQuery("canvas", "users"))
            dap.download(job, SnapshotQuery("canvas", "users"), str(tmp_path))
    assert caught.value.exit_status == 10 and caught.value.uuid
    assert caught.value.uuid in str(caught.value)
    assert os.listdir(tmp_path) == []


def test_download_refuses_a_job_of_another_kind(sim, tmp_path):
    with connect(sim) as dap:
        job = dap.run(SnapshotQuery("canvas", "accounts"))
        with pytest.raises(InvalidInput):
            dap.download(job, IncrementalQuery("canvas", "accounts", since=job.at), str(tmp_path))


def test_object_downloads_carry_no_credentials(sim, tmp_path):
    query = SnapshotQuery("canvas", "users")
    with connect(sim) as dap:
        dap.download(dap.run(query), query, str(tmp_path))
    downloads = [r for r in sim.requests if r["path"].startswith("/objects/")]
    api = [r for r in sim.requests if r["path"].startswith("/dap/")]
    assert downloads and api
    for request in downloads:
        names = {name.lower() for name in request["headers"]}
        assert "authorization" not in names and "x-instauth" not in names
    assert all("authorization" in {n.lower() for n in r["headers"]} for r in api)


def test_an_empty_window_handed_back_again_does_not_stall_the_chain(sim):
    """The service deduplicates identical queries: after an empty window [u, u), the same
    query once new data came would get that old, empty job back. A job complete at creation
    with an empty window is asked for once more, the same instant written another way."""
    with connect(sim) as dap:
        at = dap.run(SnapshotQuery("canvas", "users")).at
        empty = dap.run(IncrementalQuery("canvas", "users", since=at))
        assert empty.since == empty.until == at
        starts = lambda: [r for r in sim.requests if r["path"].endswith("/data")]  # noqa: E731
        assert len(starts()) == 2  # a fresh empty job is simply used
        sim.advance(2)
        job = dap.run(IncrementalQuery("canvas", "users", since=at))
    assert job.since == at and format_timestamp(job.until) == sim.frontier
    assert len(starts()) == 4 and job.id != empty.id


def test_a_job_still_pending_at_the_deadline_is_given_up_with_exit_11(make_simulator):
    sim = make_simulator(job_wait=600)
    sleeper = Sleeper()

    def virtual_time():  # the clock moves only by the waits asked for
        return sum(sleeper.delays)

    with connect(sim, sleeper=sleeper, monotonic=virtual_time, job_deadline=120) as dap:
        with pytest.raises(errors.ServiceUnavailable) as raised:
            dap.run(SnapshotQuery("canvas", "accounts"))
    assert raised.value.exit_status == 11
    assert "still waiting" in str(raised.value) and "later" in str(raised.value)
    assert sum(sleeper.delays) <= 120
    assert sum(sleeper.delays) + 30 > 120  # it did wait until close to the deadline


def test_download_many_runs_queries_at_once_and_reports_each(make_simulator, tmp_path):
    from dap_core import SnapshotQuery as Snapshot
    sim = make_simulator(job_wait=0.2, job_run=0.2, fail_table=("users",), rows_per_part=17)
    queries = [Snapshot("canvas", t, format="csv") for t in ("accounts", "users", "courses")]
    with connect(sim) as dap:
        outcomes = {q.table: (r, e) for q, r, e in dap.download_many(queries, str(tmp_path),
                                                                      concurrency=3)}
    assert set(outcomes) == {"accounts", "users", "courses"}
    assert outcomes["users"][0] is None and outcomes["users"][1].exit_status == 10
    for table in ("accounts", "courses"):
        result, error = outcomes[table]
        assert error is None and os.path.exists(result.path)
        with open(result.path, newline="") as f:
            rows = list(csv.reader(f))
        assert len(rows) - 1 == result.rows == len(sim.current_state("canvas", table))
