"""The soak (`make soak`, `python -m bench.soak`) runs end to end: a few randomized runs,
its summary, and exit status 0 when nothing was lost or duplicated."""
from __future__ import annotations

import subprocess
import sys

import pytest

from .support import ROOT


@pytest.mark.slow
def test_a_short_soak_recovers_every_run_and_loses_or_duplicates_nothing():
    proc = subprocess.run([sys.executable, "-m", "bench.soak", "--runs", "4", "--seed", "2",
                           "--jobs", "4"], cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=600)
    out = proc.stdout.decode()
    assert proc.returncode == 0, out + proc.stderr.decode()
    assert "runs recovered:           4 of 4" in out
    assert "rows lost:                0" in out and "changes duplicated:       0" in out
    assert "faults injected by kind:  none" not in out


def test_the_soak_says_how_to_use_it():
    proc = subprocess.run([sys.executable, "-m", "bench.soak", "--help"], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert proc.returncode == 0
    assert b"--runs" in proc.stdout and b"--seed" in proc.stdout
