"""SIGKILL at random moments never leaves a partial file under a final name, never moves a
checkpoint past what exists whole, and a rerun finishes the work with the same result as a
run that was never killed.

`bin/dap snapshot` / `incremental --state FILE` run as subprocesses against a simulator with
many small parts (so that a kill often lands mid-download) and are killed after seeded random
delays spread over a run's duration.  After every kill:

* every file under a final name is whole: data files parse fully and hold the row count of
  their `.meta.json`, sidecars are valid JSON, and each is byte-identical to the same file of
  a clean run (sidecars up to the job id);
* the state file is valid JSON and its checkpoint points at an output that exists whole;
* temporary files (`.<name>.<random>.part`) may be left behind by a SIGKILL: they are hidden
  and never taken for output.

Then a rerun completes, and the directory and checkpoint equal those of the clean run.  (A
kill that lands after the checkpoint was saved ends the step: rerun before the data moves
on, the same command would ask for the empty window from the frontier, `[u, u)`, an extra
output the clean run does not have.)
"""
from __future__ import annotations

import json
import os
import random

import pytest

from fixtures.simulator import Simulator

from . import checks, support

#: many parts (3000 rows in parts of 60, changes too) so a run spends seconds downloading
KILL_DATA = dict(support.DATA_OPTIONS, seed=5, job_wait=0.2, job_run=0.3, rows_per_part=60,
                 changes_per_step=400,
                 rows=dict(support.DATA_OPTIONS["rows"], submissions=3000))
TABLE = "submissions"
#: the chain: a snapshot, then incrementals after the data moved on; formats vary by step
STEPS = [("snapshot", "csv"), ("incremental", "jsonl"), ("incremental", "tsv")]
KILLS_PER_STEP = 9


def step_args(command, fmt, out, state, since=None):
    extra = ["--since", since] if since else []
    return support.query_args(command, TABLE, fmt, "file", out, state=state, extra=extra)


def clean_chain(tmp):
    """Run the chain against a clean simulator: per step, (contents after it, state JSON
    after it, seconds of a rerun of that step (its job already complete))."""
    out, state = os.path.join(tmp, "out"), os.path.join(tmp, "state.json")
    steps = []
    with Simulator(**KILL_DATA) as sim:
        for command, fmt in STEPS:
            run = support.run_dap(sim, step_args(command, fmt, out, state))
            assert run.returncode == 0, run
            line = run.lines[0]
            # the same query again (no --state, explicit since): the service hands back the
            # same, complete job; a rerun after a kill takes about this long
            again = support.run_dap(sim, step_args(command, fmt, out, None, line.get("since")))
            assert again.returncode == 0, again
            with open(state) as f:
                steps.append((support.directory_contents(out), json.load(f), again.seconds))
            sim.advance()
    return steps


def checkpoint(state):
    """The next_since of the table's checkpoint, or None."""
    if not os.path.exists(state):
        return None
    with open(state) as f:
        return json.load(f)["checkpoints"].get("canvas." + TABLE, {}).get("next_since")


def assert_whole(out, state, reference_files, allowed_next_since):
    """What a killed run may leave: whole outputs (equal to the clean run's) and a state
    that points at one of them."""
    listing = checks.inspect_directory(out)
    assert listing.problems == [], listing.problems
    for name, data in support.directory_contents(out).items():
        assert name in reference_files, "%s is not an output of the clean run" % name
        assert data == reference_files[name], "%s differs from the clean run's" % name
    saved, problems = checks.check_state(state, listing)
    assert problems == [], problems
    if saved is not None:
        cp = saved["checkpoints"]["canvas." + TABLE]
        assert cp["next_since"] in allowed_next_since
    return listing


@pytest.mark.slow
def test_sigkill_at_random_moments_leaves_only_whole_outputs_and_a_rerun_finishes_the_chain(
        tmp_path):
    reference = clean_chain(str(tmp_path / "clean"))
    rng = random.Random(20240713)
    out, state = str(tmp_path / "out"), str(tmp_path / "state.json")
    landed, finished_early, temporary = 0, 0, set()
    previous = [None]  # next_since values the checkpoint may hold before the current step
    with Simulator(**KILL_DATA) as sim:
        for index, (command, fmt) in enumerate(STEPS):
            files, clean_state, rerun_seconds = reference[index]
            allowed = previous + [clean_state["checkpoints"]["canvas." + TABLE]["next_since"]]
            done = False
            for _ in range(KILLS_PER_STEP):
                delay = rng.uniform(0.0, rerun_seconds)
                status = support.run_and_kill(sim, step_args(command, fmt, out, state), delay)
                if status is None:
                    landed += 1
                else:
                    assert status == 0, "dap failed before the kill (exit %d)" % status
                    finished_early += 1
                listing = assert_whole(out, state, files, allowed if status is None
                                       else allowed[-1:])
                temporary.update(listing.temporary)
                if status == 0 or checkpoint(state) == allowed[-1]:
                    # finished, or killed after its checkpoint was saved: the step is done
                    # (run again now, it would ask for the empty window from the frontier)
                    done = True
                    break
            if not done:
                run = support.run_dap(sim, step_args(command, fmt, out, state))
                assert run.returncode == 0, run
            # the rerun finished the work: the same files and checkpoint as the clean run
            assert support.directory_contents(out) == files
            with open(state) as f:
                got_state = json.load(f)
            assert checks.strip_volatile(got_state["checkpoints"]["canvas." + TABLE]) == \
                checks.strip_volatile(clean_state["checkpoints"]["canvas." + TABLE])
            assert_whole(out, state, files, allowed[-1:])
            previous = allowed[-1:]
            sim.advance()
    # enough kills landed mid-run for this to mean something
    assert landed >= 15, "only %d of the kills landed (%d runs finished first)" % (
        landed, finished_early)
    # what SIGKILL left behind is hidden and named as temporary, never as output
    assert all(name.startswith(".") and name.endswith(".part") for name in temporary)
