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

from fixtures.simulator import QUICK_OPTIONS, Simulator  # noqa: E402

try:
    from hypothesis import settings
except ImportError:  # pragma: no cover - only the property tests need it
    pass
else:
    # Hypothesis fails an example that takes more than 200 ms of wall time, which on a busy
    # machine measures the machine, not the code (#10): no deadline for any property test.
    settings.register_profile("dap", deadline=None)
    settings.load_profile("dap")

def pytest_collection_modifyitems(config, items):
    """Without fastparquet (on Python 3.8 none of the versions setup.py allows installs; CI's
    lowest job runs there), the tests of Parquet output are skipped, not failed: those whose
    id says parquet and the writer's modules, but not the ones about its absence."""
    import importlib.util
    if importlib.util.find_spec("fastparquet") is not None:
        return
    skip = pytest.mark.skip(reason="fastparquet is not installed (Parquet needs Python 3.9+)")
    for item in items:
        named = item.nodeid.lower()
        if ("parquet" in named or named.split("::")[0].endswith("/test_writers.py")) \
                and "without_fastparquet" not in named:
            item.add_marker(skip)


#: What tests want by default: quick jobs, no waiting on rate limits, explicit frontier moves.
TEST_SIMULATOR_OPTIONS = QUICK_OPTIONS


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
