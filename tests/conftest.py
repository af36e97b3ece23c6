"""Shared fixtures: the repository root on sys.path, and the bundled DAP simulator.

- `simulator`: a fresh simulator (own state) with fast jobs (0.05 s waiting, 0.05 s running),
  no rate limits, no faults, small tables, and a frontier that moves only by `sim.advance()`.
- `make_simulator(**options)`: the same defaults, any option overridden; every simulator it
  started is stopped at teardown.
"""
from __future__ import annotations

import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fixtures.simulator import Simulator  # noqa: E402

#: What tests want by default: quick jobs, no waiting on rate limits, explicit frontier moves.
TEST_SIMULATOR_OPTIONS = dict(
    job_wait=0.05,
    job_run=0.05,
    no_rate_limits=True,
    advance_per_job=0,
    rows={"accounts": 20, "users": 60, "courses": 20, "enrollments": 150, "submissions": 250,
          "web_logs": 200},
    rows_per_part=100,
)


@pytest.fixture
def simulator():
    """A fresh simulator with test defaults; yields the started `Simulator` (`.base_url`, ...)."""
    with Simulator(**TEST_SIMULATOR_OPTIONS) as sim:
        yield sim


@pytest.fixture
def make_simulator():
    """A factory: `make_simulator(**options)` starts a simulator (test defaults overridden by
    `options`); all are stopped at teardown."""
    started = []

    def make(**options):
        merged = dict(TEST_SIMULATOR_OPTIONS)
        merged.update(options)
        sim = Simulator(**merged).start()
        started.append(sim)
        return sim

    yield make
    for sim in reversed(started):
        sim.stop()
