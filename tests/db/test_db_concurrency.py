"""Runs at once on SQLite, PostgreSQL and MariaDB: two runs on one table never both work on
it (the second stops with exit 15, or with --lock-wait waits its turn), runs on different
tables go side by side, and the result is that of one clean sync.

The first run is `bin/dap syncdb` against the simulator over loopback; it is held while its
lock is taken and its job pending by holding back the simulator's answer to its first job
poll (`RequestGate`) until the test releases it, so "at once" is an event, not a guess at
timing.  The second run is an in-process `Replica(..., lock_wait=0)` (another process than
the first) or another `bin/dap`.
"""
from __future__ import annotations

import json
import os
import select
import subprocess
import threading
import time

import pytest

from dap_core import Replica, errors
from tests.cli.conftest import DAP, assert_one_line_error, run_dap
from tests.shell.conftest import connect

from .conftest import (RequestGate, assert_replica_equals, db_env, job_poll, job_start,
                       other_sessions, stored_checkpoint, utc_point)

NS = "canvas"


@pytest.fixture
def sim(make_simulator):
    return make_simulator(rows_per_part=17, changes_per_step=20)


def initialized(sim, database, *tables) -> None:
    """The tables initialized, then two steps of changes for the syncs to apply."""
    with connect(sim) as dap, Replica(dap, database.url) as replica:
        for table in tables:
            replica.init(NS, table)
    sim.advance(2)
    sim.clear_requests()


def start(sim, database, *args) -> subprocess.Popen:
    return subprocess.Popen(DAP + ["syncdb", "--namespace", NS] + list(args),
                            env=db_env(sim, database.url), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def finish(proc, timeout: float = 120.0):
    out, err = proc.communicate(timeout=timeout)
    events = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    return proc.returncode, events, err.decode("utf-8", "replace")


def requests_to(sim, matches):
    return [r for r in sim.requests if matches(r["method"], r["path"])]


def wait_until(condition, what: str, proc=None, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            pytest.fail("the run ended (exit %s) before %s: %s" % (
                proc.returncode, what, proc.stderr.read().decode()[-2000:]))
        if time.monotonic() > deadline:
            pytest.fail("%s did not happen in %.0f s" % (what, timeout))
        time.sleep(0.005)


def attempting_the_lock(proc, database) -> bool:
    """The run `proc` is past connecting, at its lock: on SQLite it opened the lock file
    (it does so to take a table's lock); on a server it has a session besides the first
    run's."""
    if database.dialect == "sqlite":
        directory = "/proc/%d/fd" % proc.pid
        try:
            targets = [os.readlink(os.path.join(directory, fd)) for fd in os.listdir(directory)]
        except OSError:
            return False
        return any(t.endswith(".dap-lock") for t in targets)
    return other_sessions(database) >= 2


def assert_synced(database, sim, *tables) -> None:
    for table in tables:
        assert_replica_equals(database, sim, NS, table)
        assert stored_checkpoint(database, NS, table) == utc_point(sim.frontier)


def test_a_second_sync_of_the_same_table_stops_busy_or_waits_its_turn(
        database, sim, tmp_path):
    initialized(sim, database, "accounts")
    before = database.snapshot(NS, "accounts")
    gate = RequestGate(sim)
    try:
        gate.hold(job_poll)
        first = start(sim, database, "--table", "accounts")
        assert gate.wait_held(first), first.stderr.read()
        # the first run holds the table's lock; its job is pending

        with connect(sim) as dap, Replica(dap, database.url, lock_wait=0) as second:
            with pytest.raises(errors.DatabaseBusy) as busy:
                second.sync(NS, "accounts")
        message = str(busy.value)
        assert busy.value.exit_status == 15
        assert "canvas.accounts" in message and "\n" not in message

        refused = run_dap("syncdb", "--table", "accounts", env=db_env(sim, database.url),
                          cwd=tmp_path)
        assert_one_line_error(refused, 15, "canvas.accounts")

        # neither started a job, nor changed anything
        assert len(requests_to(sim, job_start("accounts"))) == 1
        assert database.snapshot(NS, "accounts") == before

        # a third run waits for the lock (at it while the first still holds it), then syncs
        waiting = start(sim, database, "--table", "accounts", "--lock-wait", "120")
        wait_until(lambda: attempting_the_lock(waiting, database), "the lock attempt",
                   waiting)
        assert first.poll() is None and len(requests_to(sim, job_start("accounts"))) == 1
        released = time.time()  # the simulator's clock (this process's)
        gate.release()
        status, lines, err = finish(first)
        assert status == 0, err
        status3, lines3, err3 = finish(waiting)
        assert status3 == 0, err3
    finally:
        gate.close()
    assert [rec["action"] for rec in lines] == ["sync"] and lines[0]["rows"] > 0
    # the waiting run came after: nothing left to apply
    assert [rec["action"] for rec in lines3] == ["sync"] and lines3[0]["rows"] == 0
    # the waiting run's job came after the first run was let go and had loaded its parts
    second_start = requests_to(sim, job_start("accounts"))[1]["time"]
    assert second_start > released
    assert [r for r in sim.requests if r["path"].startswith("/objects/")
            and released < r["time"] < second_start]
    assert_synced(database, sim, "accounts")
    assert lines3[0]["checkpoint"] == lines[0]["checkpoint"]


def test_syncs_of_different_tables_run_at_once(database, sim):
    initialized(sim, database, "accounts", "users")
    gate = RequestGate(sim)
    try:
        gate.hold(job_poll)
        first = start(sim, database, "--table", "accounts")
        assert gate.wait_held(first), first.stderr.read()
        with connect(sim) as dap, Replica(dap, database.url, lock_wait=0) as second:
            result = second.sync(NS, "users")
        # done while the first run still held accounts (it waits on the held poll)
        assert first.poll() is None and gate.held.is_set()
        gate.release()
        status, lines, err = finish(first)
    finally:
        gate.close()
    assert status == 0, err
    assert result.action == "sync" and result.rows > 0
    assert [rec["action"] for rec in lines] == ["sync"] and lines[0]["rows"] > 0
    assert_synced(database, sim, "accounts", "users")


def read_line(proc, timeout: float = 60.0) -> dict:
    """The next JSON line the run prints on stdout."""
    deadline = time.monotonic() + timeout
    line = b""
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            pytest.fail("no line from the run in %.0f s" % timeout)
        byte = os.read(proc.stdout.fileno(), 1)
        if not byte:
            pytest.fail("the run ended (exit %s) without the line: %s" % (
                proc.wait(), proc.stderr.read().decode()[-2000:]))
        line += byte
    return json.loads(line)


def test_a_table_stays_locked_while_other_tables_of_its_run_finish(database, sim):
    """Tables of one run go at once in worker threads: one table finishing (its connection
    closed) must not let go of another table's lock."""
    initialized(sim, database, "accounts", "users")
    gate = RequestGate(sim)
    try:
        gate.hold(job_start("accounts"))
        first = start(sim, database, "--table", "accounts,users", "--concurrency", "2")
        assert gate.wait_held(first), first.stderr.read()
        # accounts' lock is taken, its job start held: users finishes meanwhile
        done = read_line(first)
        assert (done["table"], done["action"]) == ("users", "sync")
        with connect(sim) as dap, Replica(dap, database.url, lock_wait=0) as second:
            with pytest.raises(errors.DatabaseBusy) as busy:
                second.sync(NS, "accounts")
        assert "canvas.accounts" in str(busy.value)
        gate.release()
        status, lines, err = finish(first)
    finally:
        gate.close()
    assert status == 0, err
    assert [(rec["table"], rec["action"]) for rec in lines] == [("accounts", "sync")]
    assert_synced(database, sim, "accounts", "users")


def test_two_threads_of_one_process_on_the_same_table_do_not_both_run(database, sim):
    """The library face: `Replica` in two threads of one program, one table."""
    initialized(sim, database, "accounts")
    gate = RequestGate(sim)
    outcome = {}

    def first() -> None:
        try:
            with connect(sim) as dap, Replica(dap, database.url) as replica:
                outcome["result"] = replica.sync(NS, "accounts")
        except BaseException as exc:  # handed to the test's thread
            outcome["error"] = exc

    worker = threading.Thread(target=first)
    try:
        gate.hold(job_poll)
        worker.start()
        assert gate.wait_held(timeout=60)
        with connect(sim) as dap, Replica(dap, database.url, lock_wait=0) as second:
            with pytest.raises(errors.DatabaseBusy):
                second.sync(NS, "accounts")
        assert len(requests_to(sim, job_start("accounts"))) == 1
    finally:
        gate.close()
        worker.join(120)
    assert "error" not in outcome, outcome
    assert outcome["result"].action == "sync" and outcome["result"].rows > 0
    assert_synced(database, sim, "accounts")
