"""The extra ``fast`` (ISA-L's inflate) changes no byte: each format's output of the
simulator's tables is identical with and without it, and ``DAP_NO_FAST=1`` turns it off."""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from dap_core import SnapshotQuery
from dap_core.shell import fast

from .conftest import connect

ROOT = pathlib.Path(__file__).resolve().parents[2]

needs_fast = pytest.mark.skipif(fast.available() != ["isal"],
                                reason="the extra fast (isal) is not installed")


@pytest.fixture
def accelerated():
    """``use(True)`` / ``use(False)``: the accelerators on or off; as the environment says
    again afterwards."""
    yield fast.configure
    fast.configure()


def test_zlib_inflates_when_turned_off(accelerated):
    accelerated(False)
    assert fast.enabled() == []
    assert type(fast.decompressobj(31)).__module__ == "zlib"


@pytest.mark.parametrize("value,on", [("1", False), ("yes", False), ("0", True), ("", True)])
def test_dap_no_fast_turns_the_accelerators_off(value, on):
    env = dict(os.environ, DAP_NO_FAST=value)
    out = subprocess.run([sys.executable, "-c", "from dap_core.shell import fast; "
                          "print(','.join(fast.enabled()))"], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout.strip()
    assert (out.split(",") if out else []) == (fast.available() if on else [])


def download_all(sim, directory, fmt):
    """Every table of the simulator in ``fmt``: {file name: bytes}."""
    out = {}
    with connect(sim) as dap:
        for namespace, table in [("canvas", t) for t in dap.list_tables("canvas")] + [
                ("canvas_logs", t) for t in dap.list_tables("canvas_logs")]:
            query = SnapshotQuery(namespace, table, format=fmt)
            result = dap.download(dap.run(query), query, str(directory))
            out[os.path.basename(result.path)] = pathlib.Path(result.path).read_bytes()
    return out


@needs_fast
@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "csv", "tsv", "json"])
def test_every_tables_output_is_byte_identical_with_and_without_fast(
        make_simulator, tmp_path, accelerated, monkeypatch, fmt):
    sim = make_simulator(rows_per_part=97, rows={"submissions": 3000})
    used = {"inflaters": set()}
    make_inflater = fast.decompressobj

    def counting_inflater(wbits):
        inflater = make_inflater(wbits)
        used["inflaters"].add(type(inflater).__module__)
        return inflater

    monkeypatch.setattr(fast, "decompressobj", counting_inflater)
    accelerated(False)
    slow = download_all(sim, tmp_path / "slow", fmt)
    assert used["inflaters"] == {"zlib"}
    accelerated(True)
    used["inflaters"].clear()
    quick = download_all(sim, tmp_path / "fast", fmt)
    assert used["inflaters"] == {"isal_zlib"}
    assert len(slow) == 6 and slow == quick
