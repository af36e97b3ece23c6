"""A rerun before new data arrives does not stall the chain.

It happens after every kill that lands once the checkpoint is saved (and whenever cron runs
more often than the data changes): `dap incremental --state FILE` asks from where the data
ends and gets an empty window `[u, u)`.  Once the data moves on, the next incremental of the
chain (the very same query: `since` u, no `until`) must reach the new data, not get that
empty job back from the service's deduplication of identical queries.
"""
from __future__ import annotations

import pytest

from fixtures.simulator import Simulator

from . import checks, support


@pytest.mark.parametrize("empty_runs", [1, 2, 3])
def test_after_empty_windows_the_next_incremental_reaches_the_new_data(tmp_path, empty_runs):
    """One run, or several (cron every hour, data every four), before the data moves on."""
    out, state = str(tmp_path / "out"), str(tmp_path / "state.json")
    with Simulator(**support.DATA_OPTIONS) as sim:
        def incremental():
            run = support.run_dap(sim, support.query_args("incremental", "accounts", "jsonl",
                                                          "file", out, state=state))
            assert run.returncode == 0, run
            return run.lines[0]

        snapshot = support.run_dap(sim, support.query_args("snapshot", "accounts", "jsonl",
                                                           "file", out, state=state))
        assert snapshot.returncode == 0, snapshot
        for _ in range(empty_runs):
            empty = incremental()  # nothing new yet
            assert empty["since"] == empty["until"] == sim.frontier
        sim.advance()
        following = incremental()
        assert following["since"] == empty["until"]
        assert following["until"] == sim.frontier, \
            "the chain is stuck at %s: the service handed back the empty job %s" % (
                following["until"], following["job_id"])
        listing = checks.inspect_directory(out)
        chain, problems = checks.chain_of(listing, "canvas", "accounts",
                                          dict(job_id=following["job_id"],
                                               next_since=following["next_since"]))
        got, duplicated = checks.reconstruct(out, chain)
        assert problems == [] and duplicated == 0
        assert checks.compare_states(got, sim.current_state("canvas", "accounts"))
