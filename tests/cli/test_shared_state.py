"""Runs that share a --state file lose no checkpoint (#12): each run moves its own table's
checkpoint under the file's lock, re-reading the file there.  Two real processes; the
interleaving is forced by events (a pipe that fills up, a process that ends), not sleeps."""
from __future__ import annotations

import json
import subprocess

from .conftest import DAP, dap_env, run_dap


def checkpoints(path):
    data = json.loads(path.read_text())
    return {label: cp["next_since"] for label, cp in data["checkpoints"].items()}


def test_two_incrementals_of_different_tables_on_one_state_file_keep_both_checkpoints(
        make_simulator, tmp_path):
    # 2000 changed submissions are several times what a pipe holds: the first run blocks
    # on its stdout, its checkpoint not yet saved, until the test reads it
    sim = make_simulator(rows={"submissions": 3000}, changes_per_step=2000)
    state = tmp_path / "state.json"
    first = run_dap("snapshot", "--table", "submissions,users", "--state", state,
                    "--output-directory", tmp_path / "snap", sim=sim)
    assert first.status == 0, first
    at = checkpoints(state)
    sim.advance(1)

    a = subprocess.Popen(DAP + ["incremental", "--table", "submissions", "--state", str(state),
                                "--output", "-"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=dap_env(sim))
    try:
        head = a.stdout.read(1)  # run A has read the state file and is writing records
        assert head == b"{"
        b = run_dap("incremental", "--table", "users", "--state", state,
                    "--output-directory", tmp_path / "b", sim=sim)
        assert b.status == 0, b
        assert a.poll() is None, "run A ended before run B saved: the pipe did not fill"
        assert checkpoints(state)["canvas.users"] > at["canvas.users"]
        rest = a.stdout.read()
        assert a.wait(timeout=120) == 0, a.stderr.read()
    finally:
        a.kill()
        a.stdout.close()
        a.stderr.close()
    assert len(head + rest) > 4 * 65536  # several times a pipe buffer
    after = checkpoints(state)
    b_until = b.json_lines[-1]["next_since"]
    assert after["canvas.users"] == b_until  # run A did not write back its stale copy
    assert after["canvas.submissions"] == b_until  # the same frontier for both tables
    assert after["canvas.submissions"] > at["canvas.submissions"]
    assert (tmp_path / "state.json.lock").exists()
