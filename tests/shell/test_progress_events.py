"""What the client tells a progress listener while it waits (#12): a job's state as it is
polled, and every wait with its reason (DAP's rate limit, a retry) before it sleeps.

Job states and rate windows are timed by one `FakeTime`, the simulator's and the client's
clock, that moves only when the client sleeps: which states a poll sees, and how long a
wait is, do not depend on how busy the machine is."""
from __future__ import annotations

import io

import pytest

from dap_core import SnapshotQuery
from dap_core.shell.progress import TerminalProgress
from dap_core.shell.client import Progress

from .conftest import FakeTime, connect


class Recorder(Progress):
    def __init__(self):
        self.events = []

    def job(self, label, job_id, state):
        self.events.append(("job", label, state))

    def wait(self, label, reason, seconds):
        self.events.append(("wait", label, reason, seconds))


def test_job_states_are_reported_as_polled(make_simulator):
    clock = FakeTime()
    # waiting for 0.5 s, then running for 5 s: longer than any gap between two polls
    sim = make_simulator(job_wait=0.5, job_run=5.0, clock=clock)
    recorder = Recorder()
    with connect(sim, progress=recorder, fake_time=clock) as dap:
        dap.run(SnapshotQuery("canvas", "users"))
    states = [e[2] for e in recorder.events if e[0] == "job"]
    assert states[0] == "waiting" and states[-1] == "complete" and "running" in states
    # each state reported is the one the service was in at that poll (complete once its
    # 5.5 s are over and its parts are made)
    start = [r["time"] for r in sim.requests if r["path"].endswith("/data")]
    polls = [r["time"] - start[0] for r in sim.requests if r["path"].startswith("/dap/job/")]
    assert len(start) == 1 and len(states) == len(polls) + 1  # the start's answer, the polls'
    for state, elapsed in zip(states[1:], polls):
        assert state == "waiting" if elapsed < 0.5 else state == "running" if elapsed < 5.5 \
            else state in ("running", "complete"), (state, elapsed)
    assert all(e[1] == "canvas.users" for e in recorder.events if e[0] == "job")


def test_a_wait_for_the_rate_limit_is_reported_with_its_reason_and_drawn(make_simulator):
    stream = io.StringIO()
    terminal = TerminalProgress(stream, width=60)
    recorder = Recorder()

    class Both(Progress):
        def wait(self, *args):
            recorder.wait(*args)
            terminal.wait(*args)

    clock = FakeTime()
    sim = make_simulator(clock=clock)
    with connect(sim, progress=Both(), pace_window=0.2, fake_time=clock) as dap:
        for _ in range(6):  # DAP allows 5 table lists a window: the 6th waits it out
            dap.list_tables("canvas")
    waits = [e for e in recorder.events if e[0] == "wait"]
    assert [e[2] for e in waits] == ["DAP's rate limit"]
    assert waits[0][3] == pytest.approx(0.2, abs=1e-6)  # to the clock's resolution
    assert clock.delays == [waits[0][3]]  # and slept as told
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
