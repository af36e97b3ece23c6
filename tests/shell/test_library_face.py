"""The library face: `from dap_core import ...` gives a small documented API, imports
nothing heavy until used, and no repr shows a secret."""
from __future__ import annotations

import subprocess
import sys

import dap_core


def test_every_public_name_resolves_and_is_documented():
    for name in dap_core.__all__:
        value = getattr(dap_core, name)
        if isinstance(value, type) and issubclass(value, Exception):
            continue  # the error classes are documented together, in dap_core.errors
        if callable(value):
            assert value.__doc__, name
    for name in ("Client", "DownloadResult", "resolve_credentials", "Credentials",
                 "SnapshotQuery", "IncrementalQuery", "DapError", "NotFound", "__version__"):
        assert name in dap_core.__all__


def test_importing_dap_core_loads_neither_urllib3_nor_the_shell():
    code = ("import sys, dap_core; "
            "from dap_core import SnapshotQuery, resolve_credentials, DapError; "
            "bad = [m for m in ('urllib3', 'dap_core.shell', 'fastparquet', 'pandas') "
            "if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_cli_help_imports_neither_urllib3_nor_pandas():
    code = ("import sys, io; from dap_core.shell import cli; "
            "cli.main(['--help'], stdout=io.StringIO()); "
            "print([m for m in ('urllib3', 'pandas', 'fastparquet') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_unknown_names_are_attribute_errors():
    import pytest
    with pytest.raises(AttributeError):
        dap_core.no_such_thing  # noqa: B018


def test_client_and_credentials_reprs_hide_secrets():
    from dap_core import Client, resolve_credentials
    creds = resolve_credentials(client_id="us-east-1#abc", client_secret="s3cret-value")
    assert "s3cret" not in repr(creds)
    with Client("http://127.0.0.1:9", creds) as client:
        assert "s3cret" not in repr(client) and "s3cret" not in repr(client.session)


def test_download_chained_is_the_state_file_chain_in_one_call(make_simulator, tmp_path):
    """A snapshot starts each table's chain, incrementals continue it from the checkpoint,
    each checkpoint moves only after its output is committed, a failing table keeps its
    checkpoint, and a contradicting since is refused before any job."""
    import json
    import os

    import pytest

    from dap_core import IncrementalQuery, StateConflict
    from tests.shell.conftest import apply_changes, connect, key_of, read_jsonl

    sim = make_simulator(rows_per_part=17)
    state_path, out = str(tmp_path / "dap-state.json"), str(tmp_path / "out")
    tables = ["accounts", "users"]

    def checkpoints():
        with open(state_path) as f:
            return {label: cp["next_since"] for label, cp in json.load(f)["checkpoints"].items()}

    with connect(sim) as dap:
        snaps = {q.table: (r, e) for q, r, e in dap.download_chained(
            state_path, "canvas", tables, out, kind="snapshot", concurrency=2)}
        assert all(e is None for _, e in snaps.values()), snaps
        at = sim.frontier
        assert checkpoints() == {"canvas.accounts": at, "canvas.users": at}
        copies = {t: apply_changes({}, read_jsonl(snaps[t][0].path)) for t in tables}

        sim.advance(2)
        outcomes = list(dap.download_chained(state_path, "canvas", tables, out))
        for query, result, error in outcomes:
            assert error is None and query == IncrementalQuery("canvas", query.table, at)
            assert os.path.exists(result.path) and os.path.exists(result.meta_path)
            apply_changes(copies[query.table], read_jsonl(result.path))
        assert checkpoints() == {"canvas.accounts": sim.frontier, "canvas.users": sim.frontier}
        for table in tables:  # snapshot + incremental is the table as it is now
            assert copies[table] == {key_of(r): r for r in
                                     sim.current_state("canvas", table).values()}

        with pytest.raises(StateConflict):  # refused before any job, the file untouched
            dap.download_chained(state_path, "canvas", tables, out, since=at)
        assert checkpoints()["canvas.users"] == sim.frontier


def test_download_chained_to_a_stream_moves_only_the_checkpoints_of_tables_written(
        make_simulator, tmp_path):
    import io
    import json

    from tests.shell.conftest import connect

    sim = make_simulator(rows_per_part=17, fail_table=("users",))
    state_path = str(tmp_path / "dap-state.json")
    stream = io.BytesIO()
    with connect(sim) as dap:
        outcomes = {q.table: (r, e) for q, r, e in dap.download_chained(
            state_path, "canvas", ["accounts", "users"], stream=stream, kind="snapshot")}
    assert outcomes["users"][0] is None and outcomes["users"][1].exit_status == 10
    result = outcomes["accounts"][0]
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(records) == result.rows == len(sim.current_state("canvas", "accounts"))
    assert {r["table"] for r in records} == {"canvas.accounts"}  # several tables: named
    with open(state_path) as f:
        assert set(json.load(f)["checkpoints"]) == {"canvas.accounts"}
