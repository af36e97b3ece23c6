"""stdout as a stream: records arrive before the last part is downloaded, a closed pipe ends
the run quietly (and moves no checkpoint), progress is drawn only on a terminal, an
interrupt leaves nothing half-written."""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from .conftest import DAP, dap_env, run_dap, run_on_terminal


def downloads(sim):
    return sum(1 for r in sim.requests if r["path"].startswith("/objects/"))


def test_records_reach_stdout_well_before_the_last_part_is_downloaded(make_simulator):
    sim = make_simulator(rows={"submissions": 3000}, rows_per_part=30)
    with subprocess.Popen(DAP + ["snapshot", "--table", "submissions", "--format", "csv",
                                 "--output", "-"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=dap_env(sim)) as proc:
        try:
            first = proc.stdout.readline()
            seen_then = downloads(sim)
            rest = proc.stdout.read()
            assert proc.wait(timeout=120) == 0, proc.stderr.read()
        finally:
            proc.kill()
    assert first.startswith(b"meta.ts,")
    total = downloads(sim)
    # the pipe filled up and the client waited for us: most parts were still to come
    assert total >= 100 and seen_then < total / 2
    assert rest.count(b"\n") >= 3000


PIPE_BUFFER = 64 * 1024  # Linux's default; the results below are many times larger


@pytest.mark.parametrize("kind", ["snapshot", "incremental"])
def test_a_closed_pipe_ends_the_run_quietly_and_moves_no_checkpoint(make_simulator, tmp_path,
                                                                     kind):
    sim = make_simulator(rows={"submissions": 4000}, rows_per_part=500, changes_per_step=1500)
    state, first, rerun = tmp_path / "state.json", tmp_path / "first", tmp_path / "rerun"
    # CSV: the later JSONL snapshot is another job, not this one deduplicated
    assert run_dap("snapshot", "--table", "submissions", "--format", "csv", "--state", state,
                   "--output-directory", first, sim=sim).status == 0
    before = state.read_text()
    sim.advance(3)  # a later snapshot, or 4500 changes since the first
    args = [kind, "--table", "submissions", "--state", str(state)]
    with subprocess.Popen(DAP + args + ["--output", "-"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=dap_env(sim)) as proc:
        try:
            assert len(proc.stdout.read(10)) == 10
            proc.stdout.close()  # like `| head -c 10`, long before the result has all been written
            status = proc.wait(timeout=120)
            err = proc.stderr.read().decode()
        finally:
            proc.kill()
    assert status == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err
    assert state.read_text() == before  # the records were not all delivered
    # the same run, delivered in full: far more than a pipe holds, and it does move the checkpoint
    assert run_dap(*args, "--output-directory", rerun, sim=sim).status == 0
    assert state.read_text() != before
    written = [p for p in rerun.iterdir() if not p.name.endswith(".json")]
    assert len(written) == 1 and written[0].stat().st_size > 4 * PIPE_BUFFER


def test_a_closed_pipe_exits_141_without_a_word(make_simulator):
    sim = make_simulator(rows={"submissions": 3000}, rows_per_part=30)
    done = subprocess.run(" ".join(DAP) + " snapshot --table submissions --output - | head -c 100"
                          " >/dev/null; echo ${PIPESTATUS[0]}", shell=True, executable="/bin/bash",
                          capture_output=True, env=dap_env(sim), timeout=120)
    assert done.stdout.decode().strip() == "141"
    assert done.stderr == b""


def test_progress_is_shown_only_when_stderr_is_a_terminal(sim, tmp_path):
    args = ["snapshot", "--table", "submissions", "--output-directory", str(tmp_path)]
    status, err = run_on_terminal(args, dap_env(sim))
    assert status == 0
    assert "canvas.submissions: part " in err and " rows" in err and "MiB" in err
    done = run_dap(*args, sim=sim)
    assert done.status == 0 and "\r" not in done.err and "part " not in done.err


def test_an_interrupt_exits_130_and_leaves_nothing_half_written(make_simulator, tmp_path):
    sim = make_simulator(job_wait=30)
    with subprocess.Popen(DAP + ["snapshot", "--table", "users", "--output-directory",
                                 str(tmp_path)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=dap_env(sim)) as proc:
        try:
            deadline = time.monotonic() + 30
            while not any(r["path"].endswith("/data") for r in sim.requests):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=30) == 130
            err = proc.stderr.read().decode()
        finally:
            proc.kill()
    assert "Traceback" not in err and "interrupted" in err
    assert os.listdir(tmp_path) == []


def test_stdout_never_carries_a_bad_part(make_simulator):
    """Truncated, corrupt and cut parts while records stream to stdout: each part is
    spooled until it verified, so stdout is byte-identical to a clean run's."""
    clean = make_simulator(rows_per_part=17)
    faulty = make_simulator(rows_per_part=17, truncate_parts=1, corrupt_parts=2,
                            cut_download_after=500, cut_download_times=2)
    args = ["snapshot", "--table", "submissions", "--format", "tsv", "--output", "-"]
    want, got = run_dap(*args, sim=clean), run_dap(*args, sim=faulty)
    assert want.status == got.status == 0, got
    counts = faulty.fault_counts
    assert counts["truncate_part"] == 1 and counts["corrupt_part"] == 2
    assert counts["cut_download"] == 2
    assert got.out == want.out
