"""SIGKILL at any point of a run never leaves a partial file under a final name, never moves
a checkpoint past what exists whole, and a rerun finishes the work with the same result as a
run that was never killed.

`bin/dap snapshot` / `incremental --state FILE` run as subprocesses against a simulator with
many small parts and are killed at moments reached by protocol events, never by the clock,
so that each kill lands (the process is alive, waiting, when SIGKILL comes) and where it
lands is known by construction.  The simulator holds back its answer to one request
(`support.RequestGate`) until the process is killed.  In each step of the chain:

* one kill before any output: the job start is held;
* one with the output begun and no part fetched: the first request for object URLs is held
  (the temporary output file exists by then);
* seven mid-download: the k-th part is held, k seeded from 2 to the number of parts, the
  last part among them (k-1 parts fetched, not all);
* one after the last part: the last part is held until the temporary output exists, then
  released and the run killed at once, once its data file is in place, or once its sidecar
  is (steps in turn).  Its stdout is a pipe kept full (`support.FullPipe`): whatever it did
  meanwhile, the run cannot get past its result line, written after the output and the
  checkpoint, so this kill lands too.  Where it lands (before the output was renamed into
  place, between the data file and its sidecar, before or after the checkpoint) is seen in
  the files, and any of these must be whole.

So 50 kills land, 35 of them mid-download.  After every kill:

* every file under a final name is whole: data files parse fully and hold the row count of
  their `.meta.json`, sidecars are valid JSON, and each is byte-identical to the same file of
  a clean run (sidecars up to the job id); a kill before the last part leaves no output of
  its step and the checkpoint where it was;
* the state file is valid JSON and its checkpoint points at an output that exists whole;
* temporary files (`.<name>.<random>.part`) may be left behind by a SIGKILL: they are hidden
  and never taken for output.

Then a rerun completes, and the directory and checkpoint equal those of the clean run.  (A
kill that lands after the checkpoint was saved ends the step: rerun before the data moves
on, the same command would ask for the empty window from the frontier, `[u, u)`, an extra
output the clean run does not have.)
"""
from __future__ import annotations

import functools
import json
import os
import random

import pytest

from fixtures.simulator import Simulator

from . import checks, support

#: many parts (5000 rows in parts of 50, about 25 of changes a step), so that kills land at
#: parts spread over a long result; the kills need no more (they are not timed)
KILL_DATA = dict(support.DATA_OPTIONS, seed=5, job_wait=0.2, job_run=0.3, rows_per_part=50,
                 changes_per_step=1500,
                 rows=dict(support.DATA_OPTIONS["rows"], submissions=5000))
TABLE = "submissions"
#: the chain: a snapshot, then incrementals after the data moved on; formats vary by step
STEPS = [("snapshot", "csv"), ("incremental", "jsonl"), ("incremental", "tsv"),
         ("incremental", "json"), ("incremental", "csv")]
#: mid-download kills a step, the last part among them
PART_KILLS = 7


def step_args(command, fmt, out, state):
    return support.query_args(command, TABLE, fmt, "file", out, state=state)


def clean_chain(tmp):
    """Run the chain against a clean simulator: per step, (contents after it, state JSON
    after it, the number of parts of its job: the objects a clean run fetched)."""
    out, state = os.path.join(tmp, "out"), os.path.join(tmp, "state.json")
    steps = []
    with Simulator(**KILL_DATA) as sim:
        for command, fmt in STEPS:
            sim.clear_requests()
            run = support.run_dap(sim, step_args(command, fmt, out, state))
            assert run.returncode == 0, run
            parts = {r["path"].split("?")[0] for r in support.object_requests(sim)}
            with open(state) as f:
                steps.append((support.directory_contents(out), json.load(f), len(parts)))
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


def kill_while_held(sim, args, matches, nth, out, data_name, stdout=None, then=None):
    """Run `dap`, hold the simulator's answer to its `nth` request that `matches`, and
    SIGKILL it: before the answer, or, given `then`, after releasing it and waiting for
    `then()` (the process must be unable to end meanwhile: see `support.FullPipe`).
    Returns (landed, whether the temporary output file existed when the request was held,
    object requests made)."""
    sim.clear_requests()
    with support.RequestGate(sim) as gate:
        gate.hold(matches, nth)
        proc = support.start_dap(sim, args, **({} if stdout is None else dict(stdout=stdout)))
        try:
            assert gate.wait_held(proc), "dap ended (exit %s) before its request number %d " \
                "of the kind to hold" % (proc.returncode, nth)
            begun = bool(support.temporaries(out, data_name))
            if then is not None:
                gate.release()
                assert support.wait_until(proc, then, "the moment to kill"), \
                    "dap ended (exit %s) before the moment to kill" % proc.returncode
            status = support.kill(proc)
        finally:
            if proc.poll() is None:
                support.kill(proc)
    return status is None, begun, len(support.object_requests(sim))


@pytest.mark.slow
def test_sigkill_at_every_kind_of_moment_leaves_only_whole_outputs_and_a_rerun_finishes_the_chain(
        tmp_path):
    reference = clean_chain(str(tmp_path / "clean"))
    rng = random.Random(20240713)
    out, state = str(tmp_path / "out"), str(tmp_path / "state.json")
    landed = dict(start=0, urls=0, part=0, last=0)
    mid_download = 0
    after_last = dict(unfinished=0, data_only=0, outputs=0, checkpoint=0)
    temporary = set()
    previous = [None]  # next_since values the checkpoint may hold before the current step
    with Simulator(**KILL_DATA) as sim:
        for index, (command, fmt) in enumerate(STEPS):
            files, clean_state, parts = reference[index]
            assert parts > PART_KILLS, "too few parts to kill mid-download"
            args = step_args(command, fmt, out, state)
            before = support.directory_contents(out)
            new = sorted(set(files) - set(before))
            data_name = [n for n in new if not n.endswith(checks.META_SUFFIX)]
            assert len(new) == 2 and len(data_name) == 1, new  # one output and its sidecar
            data_name = data_name[0]
            allowed = previous + [clean_state["checkpoints"]["canvas." + TABLE]["next_since"]]

            def nothing_of_this_step(what, files=files, previous=previous, before=before):
                assert_whole(out, state, files, previous)
                assert support.directory_contents(out) == before, \
                    "a kill %s left an output of its step" % what
                assert checkpoint(state) == previous[-1]

            # before any output: the job start held
            ok, begun, fetched = kill_while_held(sim, args, support.job_start(TABLE), 1, out,
                                                 data_name)
            assert ok and fetched == 0
            landed["start"] += 1
            nothing_of_this_step("before its job started")

            # the output begun, no part fetched: the first object URL request held
            ok, begun, fetched = kill_while_held(sim, args, support.object_urls, 1, out,
                                                 data_name)
            assert ok and begun and fetched == 0
            landed["urls"] += 1
            nothing_of_this_step("before its first part")

            # mid-download: the k-th part held (the last part among them)
            for k in sorted(rng.sample(range(2, parts), PART_KILLS - 1)) + [parts]:
                ok, begun, _ = kill_while_held(sim, args, support.object_download, k, out,
                                               data_name)
                assert ok and begun
                landed["part"] += 1
                mid_download += 0 < k - 1 < parts
                nothing_of_this_step("at part %d of %d" % (k, parts))

            # after the last part: released, then killed at once, once the data file is in
            # place or once its sidecar is; stdout full, so it cannot end first
            waits = [None, data_name, data_name + checks.META_SUFFIX]
            wanted = waits[index % len(waits)]
            then = (lambda: True) if wanted is None else \
                functools.partial(os.path.exists, os.path.join(out, wanted))
            with support.FullPipe() as pipe:
                ok, begun, fetched = kill_while_held(
                    sim, args, support.object_download, parts, out, data_name,
                    stdout=pipe.writer, then=then)
            assert ok and begun and fetched == parts
            landed["last"] += 1
            listing = assert_whole(out, state, files, allowed)
            temporary.update(listing.temporary)
            left = support.directory_contents(out)
            if checkpoint(state) == allowed[-1]:
                after_last["checkpoint"] += 1
            elif all(name in left for name in new):
                after_last["outputs"] += 1
            elif data_name in left:
                after_last["data_only"] += 1
            else:
                after_last["unfinished"] += 1
            if checkpoint(state) != allowed[-1]:
                # killed before its checkpoint was saved: a rerun finishes the step (killed
                # after it, the step is done: run again now, it would ask for the empty
                # window from the frontier)
                run = support.run_dap(sim, args)
                assert run.returncode == 0, run
            # the rerun finished the work: the same files and checkpoint as the clean run
            assert support.directory_contents(out) == files
            with open(state) as f:
                got_state = json.load(f)
            assert checks.strip_volatile(got_state["checkpoints"]["canvas." + TABLE]) == \
                checks.strip_volatile(clean_state["checkpoints"]["canvas." + TABLE])
            listing = assert_whole(out, state, files, allowed[-1:])
            temporary.update(listing.temporary)
            previous = allowed[-1:]
            sim.advance()
    # every kill landed, where it was meant to: 10 a step
    assert landed == dict(start=5, urls=5, part=5 * PART_KILLS, last=5), landed
    assert mid_download == 5 * PART_KILLS
    # (where each of these landed depends on the machine; that it landed does not)
    assert sum(after_last.values()) == 5, after_last
    # what SIGKILL left behind is hidden and named as temporary, never as output
    assert temporary and all(name.startswith(".") and name.endswith(".part")
                             for name in temporary)
