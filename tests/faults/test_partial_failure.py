"""Several tables, one failing (`--fail-table`): the others' results are whole and equal to a
clean run's, stderr carries a summary, the exit status is 13, and only the tables that
succeeded moved their checkpoints."""
from __future__ import annotations

import json
import shutil

from fixtures.simulator import Simulator

from . import checks, support

TABLES = "accounts,submissions,users"


def checkpoints(path):
    with open(str(path)) as f:
        return {label: checks.strip_volatile(cp)
                for label, cp in json.load(f)["checkpoints"].items()}


def test_one_failing_table_of_three_exits_13_and_moves_only_the_others_checkpoints(tmp_path):
    clean_dir, faulty_dir = tmp_path / "clean", tmp_path / "faulty"
    clean_state, faulty_state = tmp_path / "clean.json", tmp_path / "faulty.json"
    with Simulator(**support.DATA_OPTIONS) as clean, \
            Simulator(**dict(support.DATA_OPTIONS, fail_table=("submissions",))) as faulty:
        # the same starting point on both: a snapshot of the three tables (taken on the
        # clean simulator; both serve the same data, so the checkpoints hold on both)
        first = support.run_dap(clean, support.query_args(
            "snapshot", TABLES, "jsonl", "file", str(clean_dir), state=str(clean_state)))
        assert first.returncode == 0, first
        shutil.copytree(str(clean_dir), str(faulty_dir))
        shutil.copy(str(clean_state), str(faulty_state))
        before = checkpoints(faulty_state)
        before_raw = json.loads(faulty_state.read_text())["checkpoints"]
        clean.advance()
        faulty.advance()

        good = support.run_dap(clean, support.query_args(
            "incremental", TABLES, "csv", "file", str(clean_dir), state=str(clean_state)))
        run = support.run_dap(faulty, support.query_args(
            "incremental", TABLES, "csv", "file", str(faulty_dir), state=str(faulty_state)))
        assert good.returncode == 0, good
        assert run.returncode == 13, run
        assert faulty.fault_counts["fail_table"] == 1

    # stderr: the failing table's error, then a summary naming it
    assert "canvas.submissions" in run.stderr and "(injected by --fail-table)" in run.stderr
    summary = run.stderr.strip().splitlines()[-1]
    assert "3 tables" in summary and "2 done" in summary and "1 failed" in summary
    assert "submissions" in summary
    # the others' outputs are whole and equal to the clean run's; nothing of submissions'
    got = support.directory_contents(str(faulty_dir))
    want = {name: data for name, data in support.directory_contents(str(clean_dir)).items()
            if not name.startswith("canvas.submissions.incremental.")}
    assert got == want
    listing = checks.inspect_directory(str(faulty_dir))
    assert listing.problems == [] and listing.temporary == []
    # stdout: one line per table that succeeded
    assert sorted(line["table"] for line in run.lines) == ["accounts", "users"]
    # checkpoints: accounts and users moved as on the clean run, submissions stayed
    after = checkpoints(faulty_state)
    clean_after = checkpoints(clean_state)
    assert after["canvas.accounts"] == clean_after["canvas.accounts"] != before["canvas.accounts"]
    assert after["canvas.users"] == clean_after["canvas.users"] != before["canvas.users"]
    assert json.loads(faulty_state.read_text())["checkpoints"]["canvas.submissions"] == \
        before_raw["canvas.submissions"]  # the very same, job id included
    assert checks.check_state(str(faulty_state), listing)[1] == []
