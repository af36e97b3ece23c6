"""Client-side pacing: with the simulator's rate limits on, dap stays under them instead of
running into 429s.

The contract's limits are per minute (5 job starts, 5 table lists).  The command line paces
to that 60 s window and has no option to scale it; `--table all` of `canvas` (one table list,
five job starts) fits in it, so it runs with no wait and must get no 429 at all, whatever the
simulator's window.  To see the pacing itself at work quickly, the library's `Client` takes
`pace_window`: scaled to the simulator's `--rate-window`, twice as many calls as the limit
go through without a single 429.
"""
from __future__ import annotations

import random

import pytest

from dap_core import Client, SnapshotQuery, resolve_credentials

from . import checks, support

RATE_LIMITED = dict(no_rate_limits=False)


def rate_limit_answers(sim):
    return [r for r in sim.requests if r["status"] == 429]


@pytest.mark.parametrize("rate_window", [60.0, 2.0], ids=["contract-window", "tiny-window"])
def test_table_all_under_the_simulators_rate_limits_gets_no_429(faulty, tmp_path, rate_window):
    sim = faulty(rate_window=rate_window, **RATE_LIMITED)
    out = tmp_path / "out"
    run = support.run_dap(sim, support.query_args("snapshot", "all", "jsonl", "file", str(out),
                                                  state=str(tmp_path / "state.json")))
    assert run.returncode == 0, run
    assert sim.fault_counts["rate_limit"] == 0 and rate_limit_answers(sim) == []
    listing = checks.inspect_directory(str(out))
    assert sorted(m["table"] for m in listing.outputs()) == sorted(
        ["accounts", "users", "courses", "enrollments", "submissions"])
    assert listing.problems == []


def test_the_library_paced_to_a_scaled_window_makes_twice_the_limit_of_calls_with_no_429(
        faulty):
    window = 1.5
    sim = faulty(rate_window=window, **RATE_LIMITED)
    credentials = resolve_credentials(client_id=sim.client_id, client_secret=sim.client_secret)
    tables = ["accounts", "users", "courses", "enrollments", "submissions"]
    with Client(sim.base_url, credentials, pace_window=window, rng=random.Random(1)) as dap:
        for _ in range(2):  # 10 job starts and 8 table lists: limits of 5 per window
            for table in tables:
                assert dap.run(SnapshotQuery("canvas", table)).status == "complete"
            for _ in range(4):
                assert sorted(dap.list_tables("canvas")) == sorted(tables)
    starts = [r["time"] for r in sim.requests if r["path"].endswith("/data")]
    lists = [r["time"] for r in sim.requests if r["path"] == "/dap/query/canvas/table"]
    assert len(starts) == 10 and len(lists) == 8
    assert rate_limit_answers(sim) == [] and sim.fault_counts["rate_limit"] == 0
    # the pacing really had to work: each sixth call came a window after the first
    assert starts[5] - starts[0] >= window and lists[5] - lists[0] >= window
