"""Output names and metadata: readable, sortable, and never steered by the server outside the
output."""
import json
from datetime import datetime, timezone

import pytest
from hypothesis import given, strategies as st

from dap_core.errors import InvalidInput
from dap_core.jobs import CompleteIncremental, CompleteSnapshot
from dap_core.layout import (
    job_metadata, meta_name, output_name, result_line, schema_metadata, schema_name,
    summary_line,
)

UTC = timezone.utc
SNAP = CompleteSnapshot("job-1", None, ("o",), 3, datetime(2024, 7, 13, 9, 30, tzinfo=UTC))
INC = CompleteIncremental("job-2", None, ("o",), 3, datetime(2024, 7, 13, 9, 30, tzinfo=UTC),
                          datetime(2024, 7, 14, tzinfo=UTC))


def test_output_names_follow_the_architecture():
    assert output_name("canvas", "accounts", SNAP, "CSV") == \
        "canvas.accounts.snapshot.20240713T093000Z.csv"
    assert output_name("canvas", "accounts", INC, "jsonl") == \
        "canvas.accounts.incremental.20240713T093000Z_20240714T000000Z.jsonl"
    assert meta_name("x.csv") == "x.csv.meta.json"
    assert schema_name("accounts") == "accounts.schema.json"


def test_a_schema_file_is_named_after_its_table_and_says_its_version():
    with pytest.raises(InvalidInput):
        schema_name("../accounts")
    assert schema_metadata("canvas", "accounts", {"schema": {}, "version": 3},
                           "out/accounts.schema.json") == {
        "namespace": "canvas", "table": "accounts", "version": 3,
        "file": "out/accounts.schema.json"}


def test_metadata_of_a_snapshot_and_an_incremental_names_next_since():
    meta = job_metadata("canvas", "accounts", SNAP, "csv", 12, "out/a.csv")
    assert meta == {"job_id": "job-1", "namespace": "canvas", "table": "accounts",
                    "kind": "snapshot", "at": "2024-07-13T09:30:00Z",
                    "next_since": "2024-07-13T09:30:00Z", "schema_version": 3, "format": "csv",
                    "rows": 12, "file": "out/a.csv"}
    meta = job_metadata("canvas", "accounts", INC, "json", 0, None)
    assert meta["since"] == "2024-07-13T09:30:00Z" and meta["until"] == "2024-07-14T00:00:00Z"
    assert meta["next_since"] == "2024-07-14T00:00:00Z" and "at" not in meta
    json.dumps(meta)


def test_the_result_lines_of_the_cli_come_from_the_metadata():
    meta = job_metadata("canvas", "accounts", SNAP, "csv", 1, "a.csv")
    assert result_line(meta, "out/a.csv", "out/a.csv.meta.json") == dict(
        meta, file="out/a.csv", meta_file="out/a.csv.meta.json")
    assert meta["file"] == "a.csv"  # the sidecar keeps the base name
    assert summary_line(meta, "out/a.csv") == ("canvas.accounts: snapshot at "
                                               "2024-07-13T09:30:00Z, 1 row -> out/a.csv "
                                               "(next since 2024-07-13T09:30:00Z)")
    meta = job_metadata("canvas", "accounts", INC, "jsonl", 12, "-")
    assert summary_line(meta, "stdout") == (
        "canvas.accounts: incremental since 2024-07-13T09:30:00Z until 2024-07-14T00:00:00Z, "
        "12 rows -> stdout (next since 2024-07-14T00:00:00Z)")


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "a\\b", "/etc/passwd", ".hidden",
                                  "a\x00b", "x" * 300, "C:evil", "a..b"])
def test_names_that_could_leave_the_output_directory_are_refused(name):
    with pytest.raises(InvalidInput):
        output_name("canvas", name, SNAP, "csv")
    with pytest.raises(InvalidInput):
        output_name(name, "accounts", SNAP, "csv")
    with pytest.raises(InvalidInput):
        schema_name(name)


@given(st.text(max_size=40), st.text(max_size=40))
def test_every_name_made_is_a_plain_base_name(namespace, table):
    try:
        names = [output_name(namespace, table, job, "csv") for job in (SNAP, INC)]
        names.append(schema_name(table))
    except InvalidInput:
        return
    for name in names + [meta_name(n) for n in names]:
        assert "/" not in name and "\\" not in name and ".." not in name
        assert not name.startswith(".") and len(name.encode("utf-8")) <= 255
        assert all(0x20 < ord(c) < 0x7F for c in name)
