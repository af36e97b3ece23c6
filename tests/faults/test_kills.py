"""SIGKILL at random moments never leaves a partial file under a final name, never moves a
checkpoint past what exists whole, and a rerun finishes the work with the same result as a
run that was never killed.

`bin/dap snapshot` / `incremental --state FILE` run as subprocesses against a simulator with
many small parts and are killed at seeded random moments: some anywhere in a run, most while
it downloads and writes parts, some while it commits; the test counts how many landed
mid-download (some parts fetched, not all).  After every kill:

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
import time

import pytest

from fixtures.simulator import Simulator

from . import checks, support

#: many parts (20000 rows in parts of 50; changes too), so that a run spends a while
#: downloading and writing
KILL_DATA = dict(support.DATA_OPTIONS, seed=5, job_wait=0.2, job_run=0.3, rows_per_part=50,
                 changes_per_step=1500,
                 rows=dict(support.DATA_OPTIONS["rows"], submissions=20000))
TABLE = "submissions"
#: the chain: a snapshot, then incrementals after the data moved on; formats vary by step
STEPS = [("snapshot", "csv"), ("incremental", "jsonl"), ("incremental", "tsv"),
         ("incremental", "json"), ("incremental", "csv")]
KILLS_PER_STEP = 12


class Phases:
    """When a rerun of a step (its job already complete) does what, in seconds from the
    start of the process: the first part requested, the last one, the end; and how many
    parts."""

    def __init__(self, first_part: float, last_part: float, end: float, parts: int) -> None:
        self.first_part, self.last_part, self.end, self.parts = first_part, last_part, end, parts

    def kill(self, sim, args, out, rng, attempt: int):
        """Kill a run at a random moment: one attempt in five anywhere in the run, one while
        it writes the last part and commits, the others while it downloads and writes parts
        (timed from the moment its temporary output file got its first bytes).  None when
        the kill landed, else the exit status the run finished with first."""
        kind = attempt % 5
        if kind == 0:
            return support.run_and_kill(sim, args, rng.uniform(0.0, self.end))
        downloading = self.last_part - self.first_part
        if kind == 4:
            delay = rng.uniform(downloading, self.end - self.first_part)
        else:
            delay = rng.uniform(0.0, downloading)
        return support.run_and_kill_while_writing(sim, args, out, delay)


def object_requests_since(sim, started):
    return [r for r in support.object_requests(sim) if r["time"] >= started]


def step_args(command, fmt, out, state, since=None):
    extra = ["--since", since] if since else []
    return support.query_args(command, TABLE, fmt, "file", out, state=state, extra=extra)


def clean_chain(tmp):
    """Run the chain against a clean simulator: per step, (contents after it, state JSON
    after it, the Phases of a rerun of that step)."""
    out, state = os.path.join(tmp, "out"), os.path.join(tmp, "state.json")
    steps = []
    with Simulator(**KILL_DATA) as sim:
        for command, fmt in STEPS:
            run = support.run_dap(sim, step_args(command, fmt, out, state))
            assert run.returncode == 0, run
            line = run.lines[0]
            # the same query again (no --state, explicit since): the service hands back the
            # same, complete job, as to a rerun after a kill
            started = time.time()  # the simulator's clock (in this process)
            again = support.run_dap(sim, step_args(command, fmt, out, None, line.get("since")))
            assert again.returncode == 0, again
            parts = object_requests_since(sim, started)
            phases = Phases(parts[0]["time"] - started, parts[-1]["time"] - started,
                            again.seconds, len(parts))
            with open(state) as f:
                steps.append((support.directory_contents(out), json.load(f), phases))
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
    landed, mid_download, finished_early, temporary = 0, 0, 0, set()
    previous = [None]  # next_since values the checkpoint may hold before the current step
    with Simulator(**KILL_DATA) as sim:
        for index, (command, fmt) in enumerate(STEPS):
            files, clean_state, phases = reference[index]
            allowed = previous + [clean_state["checkpoints"]["canvas." + TABLE]["next_since"]]
            done = False
            for attempt in range(KILLS_PER_STEP):
                started = time.time()
                status = phases.kill(sim, step_args(command, fmt, out, state), out, rng,
                                     attempt)
                if status is None:
                    landed += 1
                    fetched = len(object_requests_since(sim, started))
                    mid_download += 0 < fetched < phases.parts
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
    assert landed >= 15 and mid_download >= 8, \
        "%d kills landed, %d of them mid-download (%d runs finished first)" % (
            landed, mid_download, finished_early)
    # what SIGKILL left behind is hidden and named as temporary, never as output
    assert all(name.startswith(".") and name.endswith(".part") for name in temporary)
