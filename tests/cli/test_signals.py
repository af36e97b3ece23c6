"""SIGTERM is handled as Ctrl-C is (#12): one line, exit 143, no temporary left behind for
the next run to keep for an hour, no checkpoint moved.  The run is caught mid-download by
events: its stderr is a pipe the test does not read, so its debug log blocks it there."""
from __future__ import annotations

import os
import signal
import subprocess
import time

from .conftest import DAP, dap_env


def test_sigterm_mid_download_removes_the_temporary_and_exits_143(make_simulator, tmp_path):
    # 800 parts: their debug lines are far more than a pipe holds
    sim = make_simulator(rows={"submissions": 4000}, rows_per_part=5)
    out, state = tmp_path / "out", tmp_path / "state.json"
    out.mkdir()
    proc = subprocess.Popen(DAP + ["--loglevel", "debug", "snapshot", "--table", "submissions",
                                   "--output-directory", str(out), "--state", str(state)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dap_env(sim))
    try:
        deadline = time.monotonic() + 60
        while not any(name.endswith(".part") for name in os.listdir(out)):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "no download started"
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        err = proc.stderr.read().decode()  # drains the pipe: the run can end now
        status = proc.wait(timeout=60)
    finally:
        proc.kill()
        proc.stdout.close()
        proc.stderr.close()
    assert status == 143, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("dap: error: terminated") and "no checkpoint moved" in last
    assert "Traceback" not in err
    assert os.listdir(out) == []
    assert not state.exists()


def test_sigterm_while_worker_threads_download_leaves_no_temporary(make_simulator, tmp_path):
    """Several tables download in worker threads (--concurrency): SIGTERM reaches the main
    thread, which removes the workers' temporaries and lets them commit nothing more."""
    sim = make_simulator(rows={"submissions": 4000, "enrollments": 4000}, rows_per_part=5)
    out, state = tmp_path / "out", tmp_path / "state.json"
    out.mkdir()
    proc = subprocess.Popen(DAP + ["--loglevel", "debug", "snapshot", "--table",
                                   "submissions,enrollments", "--concurrency", "2",
                                   "--output-directory", str(out), "--state", str(state)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dap_env(sim))
    try:
        deadline = time.monotonic() + 60
        while not any(name.endswith(".part") for name in os.listdir(out)):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "no download started"
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        err = proc.stderr.read().decode()
        status = proc.wait(timeout=60)
    finally:
        proc.kill()
        proc.stdout.close()
        proc.stderr.close()
    assert status == 143, err
    assert err.strip().splitlines()[-1].startswith("dap: error: terminated")
    assert [n for n in os.listdir(out) if n.endswith(".part")] == []
    assert not state.exists()
