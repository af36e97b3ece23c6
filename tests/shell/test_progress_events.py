"""What the client tells a progress listener while it waits (#12): a job's state as it is
polled, and every wait with its reason (DAP's rate limit, a retry) before it sleeps."""
from __future__ import annotations

import io

from dap_core import SnapshotQuery
from dap_core.shell.cli import TerminalProgress
from dap_core.shell.client import Progress

from .conftest import connect


class Recorder(Progress):
    def __init__(self):
        self.events = []

    def job(self, label, job_id, state):
        self.events.append(("job", label, state))

    def wait(self, label, reason, seconds):
        self.events.append(("wait", label, reason, seconds))


def test_job_states_are_reported_as_polled(make_simulator):
    sim = make_simulator(job_wait=0.3, job_run=0.3)
    recorder = Recorder()
    with connect(sim, progress=recorder) as dap:
        dap.run(SnapshotQuery("canvas", "users"))
    states = [e[2] for e in recorder.events if e[0] == "job"]
    assert states[0] == "waiting" and states[-1] == "complete" and "running" in states
    assert all(e[1] == "canvas.users" for e in recorder.events if e[0] == "job")


def test_a_wait_for_the_rate_limit_is_reported_with_its_reason_and_drawn(simulator):
    stream = io.StringIO()
    terminal = TerminalProgress(stream, width=60)
    recorder = Recorder()

    class Both(Progress):
        def wait(self, *args):
            recorder.wait(*args)
            terminal.wait(*args)

    with connect(simulator, progress=Both(), pace_window=0.2) as dap:
        for _ in range(6):  # DAP allows 5 table lists a window: the 6th waits
            dap.list_tables("canvas")
    waits = [e for e in recorder.events if e[0] == "wait"]
    assert waits and all(e[2] == "DAP's rate limit" and 0 < e[3] <= 0.2 for e in waits)
    assert "list tables: waiting 1 s: DAP's rate limit" in stream.getvalue()


def test_a_retry_wait_is_reported_with_what_failed(make_simulator):
    sim = make_simulator(fail_5xx=0.5, seed=3)
    recorder = Recorder()
    with connect(sim, progress=recorder) as dap:
        for _ in range(10):
            dap.get_schema("canvas", "users")
    waits = [e for e in recorder.events if e[0] == "wait"]
    assert len(waits) == sim.fault_counts["fail_5xx"] > 0  # seeded: the same every run
    assert all(e[2].startswith("HTTP 5") for e in waits), recorder.events
