"""Chaining from the command line: the metadata line's next_since, or a state file whose
checkpoint moves only after a table's outputs are durable; applying the upserts and deletes
of snapshot -> incremental -> incremental reconstructs the simulator's current state."""
from __future__ import annotations

import io
import json
import os


from .conftest import assert_one_line_error, dap_env, run_dap


def key_of(record):
    return json.dumps(record["key"], sort_keys=True, separators=(",", ":"))


def apply(state, path):
    with open(path, "rb") as f:
        for line in f:
            record = json.loads(line)
            action = record["meta"].get("action")  # none in a snapshot
            if action == "D":
                state.pop(key_of(record), None)
            else:
                assert action in (None, "U"), record
                meta = {k: v for k, v in record["meta"].items() if k != "action"}
                state[key_of(record)] = dict(record, meta=meta)  # as the simulator's state
    return state


def test_chaining_on_next_since_reconstructs_the_current_state(sim, tmp_path):
    done = run_dap("snapshot", "--table", "enrollments", "--output-directory", tmp_path, sim=sim)
    assert done.status == 0, done
    line = done.json_lines[0]
    state = apply({}, line["file"])
    for _ in range(2):
        sim.advance(2)
        done = run_dap("incremental", "--table", "enrollments", "--since", line["next_since"],
                       "--output-directory", tmp_path, sim=sim)
        assert done.status == 0, done
        previous, line = line, done.json_lines[0]
        assert line["since"] == previous["next_since"] and line["rows"] > 0
        apply(state, line["file"])
    assert state == sim.current_state("canvas", "enrollments")


def test_a_state_file_chains_snapshot_and_incrementals_to_the_current_state(sim, tmp_path):
    state_path = tmp_path / "state.json"
    out = tmp_path / "out"
    done = run_dap("snapshot", "--table", "users,courses", "--state", state_path,
                   "--output-directory", out, sim=sim)
    assert done.status == 0, done
    saved = json.loads(state_path.read_text())
    assert set(saved["checkpoints"]) == {"canvas.users", "canvas.courses"}
    states = {r["table"]: apply({}, r["file"]) for r in done.json_lines}
    for _ in range(2):
        sim.advance(3)
        done = run_dap("incremental", "--table", "users,courses", "--state", state_path,
                       "--output-directory", out, sim=sim)
        assert done.status == 0, done
        for line in done.json_lines:
            assert line["since"] == saved["checkpoints"]["canvas." + line["table"]]["next_since"]
            apply(states[line["table"]], line["file"])
        saved = json.loads(state_path.read_text())
        assert saved["checkpoints"]["canvas.users"]["next_since"] == sim.frontier
    for table, state in states.items():
        assert state == sim.current_state("canvas", table)
    assert state_path.read_text().startswith("{\n")  # human-readable


def test_since_that_disagrees_with_the_state_file_is_refused_before_any_request(sim, tmp_path):
    state_path = tmp_path / "state.json"
    assert run_dap("snapshot", "--table", "users", "--state", state_path, "--output-directory",
                   tmp_path, sim=sim).status == 0
    sim.clear_requests()
    done = run_dap("incremental", "--table", "users", "--state", state_path, "--since",
                   "2025-12-31T00:00:00Z", "--output-directory", tmp_path, sim=sim)
    assert_one_line_error(done, 3, "--since", "checkpoint")
    assert sim.requests == []
    # the same instant, written another way, agrees
    at = json.loads(state_path.read_text())["checkpoints"]["canvas.users"]["next_since"]
    done = run_dap("incremental", "--table", "users", "--state", state_path, "--since", at,
                   "--output-directory", tmp_path, sim=sim)
    assert done.status == 0, done


def test_a_table_without_a_checkpoint_needs_since(sim, tmp_path):
    done = run_dap("incremental", "--table", "users", "--state", tmp_path / "state.json",
                   "--output-directory", tmp_path, sim=sim)
    assert_one_line_error(done, 3, "no checkpoint", "--since")
    assert sim.requests == []


def test_a_corrupt_state_file_is_an_error_never_a_reset(sim, tmp_path):
    state_path = tmp_path / "state.json"
    state_path.write_text('{"checkpoints": {"canvas.users": {"next_since": "soon"}}')
    for command in (["snapshot"], ["incremental", "--since", "2025-12-31T00:00:00Z"]):
        done = run_dap(*command, "--table", "users", "--state", state_path,
                       "--output-directory", tmp_path / "out", sim=sim)
        assert_one_line_error(done, 3, str(state_path), "corrupt")
    assert sim.requests == []
    assert state_path.read_text() == '{"checkpoints": {"canvas.users": {"next_since": "soon"}}'


def test_one_failing_table_loses_none_of_the_others(make_simulator, tmp_path):
    sim = make_simulator(fail_table=("users",), rows_per_part=17)
    state_path = tmp_path / "state.json"
    out = tmp_path / "out"
    done = run_dap("snapshot", "--table", "accounts,users,courses", "--format", "csv",
                   "--state", state_path, "--output-directory", out, sim=sim)
    assert done.status == 13, done
    assert sorted(r["table"] for r in done.json_lines) == ["accounts", "courses"]
    assert sorted(os.listdir(out)) == sorted(
        n for r in done.json_lines for n in (os.path.basename(r["file"]),
                                             os.path.basename(r["meta_file"])))
    checkpoints = json.loads(state_path.read_text())["checkpoints"]
    assert set(checkpoints) == {"canvas.accounts", "canvas.courses"}
    assert any("canvas.users" in line and "uuid" in line for line in done.err_lines)
    assert done.err_lines[-1] == "dap: 3 tables: 2 done, 1 failed (users: exit 10)"
    assert "Traceback" not in done.err


def test_a_single_failing_table_exits_with_its_own_status(make_simulator, tmp_path):
    sim = make_simulator(fail_table=("users",))
    done = run_dap("snapshot", "--table", "users", "--state", tmp_path / "state.json",
                   "--output-directory", tmp_path, sim=sim)
    assert_one_line_error(done, 10)
    assert os.listdir(tmp_path) == []


def test_the_checkpoint_moves_only_after_the_outputs_are_durable(sim, tmp_path, monkeypatch):
    """A full disk while the second table is written: the first table's checkpoint moved, the
    second's did not, and the second left no file behind (in process, the sink's write
    raising ENOSPC)."""
    import errno
    from dap_core.shell import cli, sinks

    real_write = sinks.AtomicFile.write

    def write(self, data):
        if ".users." in self.final_path:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, data)

    monkeypatch.setattr(sinks.AtomicFile, "write", write)
    state_path = tmp_path / "state.json"
    out, err = io.StringIO(), io.StringIO()
    status = cli.main(["snapshot", "--table", "accounts,users", "--state", str(state_path),
                       "--output-directory", str(tmp_path / "out")],
                      stdout=out, stderr=err, environ=dap_env(sim))
    assert status == 13, err.getvalue()
    assert set(json.loads(state_path.read_text())["checkpoints"]) == {"canvas.accounts"}
    assert not any(".users." in name for name in os.listdir(tmp_path / "out"))
    assert "No space left on device" in err.getvalue() and "exit 12" in err.getvalue()


def test_a_full_disk_exits_12_and_leaves_no_partial_output(sim, tmp_path, monkeypatch):
    import errno
    from dap_core.shell import cli, sinks

    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sinks.AtomicFile, "write", write)
    err = io.StringIO()
    status = cli.main(["snapshot", "--table", "users", "--format", "tsv", "--output-directory",
                       str(tmp_path)], stdout=io.StringIO(), stderr=err, environ=dap_env(sim))
    assert status == 12
    lines = err.getvalue().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0]
    assert os.listdir(tmp_path) == []
