"""Fixtures of the fault tests.

- `reference(command args...)`: what `bin/dap` writes against a clean simulator with the same
  data options (a session-wide cache: one clean simulator per set of data options, one run
  per command), to compare a faulty run with.
- `faulty(**faults)`: a fresh simulator with `support.DATA_OPTIONS` plus the given faults.
"""
from __future__ import annotations

import pytest

from fixtures.simulator import Simulator

from . import support


def _options_key(options: dict) -> str:
    return repr(sorted((k, repr(v)) for k, v in options.items()))


@pytest.fixture(scope="session")
def reference(tmp_path_factory):
    sims = {}
    cache = {}

    def get(fmt: str, where: str, table: str = "submissions", command: str = "snapshot",
            data_options: dict = None, extra=()):
        """(Run, directory contents or None) of a clean run of the same command."""
        options = dict(support.DATA_OPTIONS, **(data_options or {}))
        okey = _options_key(options)
        key = (okey, fmt, where, table, command, tuple(extra))
        if key not in cache:
            if okey not in sims:
                sims[okey] = Simulator(**options).start()
            base = tmp_path_factory.mktemp("reference")
            out = base / "out"
            run = support.run_dap(sims[okey], support.query_args(
                command, table, fmt, where, str(out), extra=extra), cwd=str(base))
            assert run.returncode == 0, run
            contents = support.directory_contents(str(out)) if where == "file" else None
            cache[key] = (run, contents)
        return cache[key]

    yield get
    for sim in sims.values():
        sim.stop()


@pytest.fixture
def faulty(make_simulator):
    """`faulty(data_options=None, **faults)`: a fresh simulator, the shared data plus faults."""

    def make(data_options: dict = None, **faults):
        options = dict(support.DATA_OPTIONS, **(data_options or {}))
        options.update(faults)
        return make_simulator(**options)

    return make
