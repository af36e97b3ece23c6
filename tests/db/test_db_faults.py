"""Replication survives what goes wrong on the way, and is whole or nothing when the process
dies, on SQLite, PostgreSQL and MariaDB.

Faults from the simulator (in-process `Replica` over loopback, sleeps capped): a 429, 5xx, a
download cut mid-part, a part without its gzip trailer, a corrupt part, a token refused
before its `exp`, each during an `init` and again during the `sync` that follows.  Download
faults are armed by the simulator itself when it is asked for object download `AT_PART` + 1
of an operation, so the faulty part is not the first.  The client reads parts ahead and
holds a part back until it verified (`readahead.py`): a damaged part that fits the hold is
fetched again before the loader sees a byte of it ("held").  A part larger than the hold
streams into the loader, which must then roll the part back to its savepoint and take it
again; "streamed" gives the loaders no hold (the `read_ahead` options a writer may set), so
every damaged part takes that path, with the parts before it in staging.  API faults are
armed (every call answered with the fault) at the start of each operation and disarmed by
the client's own retry sleep once they fired `API_FIRES` times.  The database then equals
the simulator's state value by value, its checkpoint is the frontier, and the rows reported
equal those of a clean run against a fault-free twin simulator (a part counted twice would
show).

SIGKILL (`bin/dap initdb` / `syncdb` as a subprocess): a mid-load kill comes while the
process waits for object download k+1 (k seeded), which the simulator holds back until the
kill: by construction the load is under way (parts before k+1 downloaded, the last part not)
and nothing is committed.  Tail kills
come a seeded moment after the last part was served (the apply and the commit).  After every
kill the table and its bookkeeping row are exactly as before the run or as a clean run left
a second database; on MariaDB the row may also point at `<table>__dap_new` (the documented
roll-forward of `replica.py`), when that copy already holds the clean run's rows.  A rerun
then converges.
"""
from __future__ import annotations

import random
import signal
import subprocess
import tempfile
import time
from typing import BinaryIO, Optional

import pytest

from dap_core import Replica
from dap_core.shell.database import Loader
from fixtures.simulator import QUICK_OPTIONS
from tests.cli.conftest import DAP
from tests.shell.conftest import Sleeper, connect

from .conftest import (RequestGate, _database, assert_replica_equals, db_env, leftover_tables,
                       object_download, stored_checkpoint, utc_point, wait_until_alone)

NS, TABLE = "canvas", "submissions"

# -- faults from the simulator ------------------------------------------------------------------

#: small parts: 250 rows in 25 parts for the snapshot; the incremental after two steps of 40
#: changes has several parts too
FAULT_DATA = dict(seed=4, rows_per_part=10, changes_per_step=40)
#: download faults hit this part (0-based) of each result
AT_PART = 3
#: how a loader gets its parts: held back until verified (the default for parts under 16
#: MiB), or streamed as they arrive (a part larger than the hold)
HOLDS = {"held": None, "streamed": {"hold_memory": 0, "hold_total": 0}}
#: API faults fire this many times per operation (a retry budget is 8 attempts)
API_FIRES = 3

DOWNLOAD_FAULTS = ("cut_download", "truncate_part", "corrupt_part")
#: name -> (fault kind counted by the simulator, simulator options at start)
FAULTS = {
    "429": ("fail_429", {}),
    "5xx": ("fail_5xx", {}),
    "cut-download": ("cut_download", {}),
    "truncated-part": ("truncate_part", {}),
    "corrupt-part": ("corrupt_part", {}),
    # a token older than 0.2 s is refused; a job pends 0.6 s, and its last poll comes after
    # that with a token at least that old unless a refusal already renewed it: it fires in
    # every operation by construction
    "token-refused": ("refuse_token", dict(refuse_tokens_after=0.2, job_wait=0.3,
                                           job_run=0.3)),
}


class Fault:
    """Arms one kind of fault on `sim` (its live `config`) and counts what fired."""

    def __init__(self, sim, kind: str) -> None:
        self.sim, self.kind = sim, kind
        self.until = None

    def count(self) -> int:
        return self.sim.fault_counts[self.kind]

    def arm_api(self) -> None:
        """Every API call fails with the fault until it fired API_FIRES more times."""
        if self.kind in ("fail_429", "fail_5xx"):
            self.until = self.count() + API_FIRES
            setattr(self.sim.config, self.kind, 1.0)

    def after_sleep(self) -> None:
        if self.until is not None and self.count() >= self.until:
            setattr(self.sim.config, self.kind, 0.0)
            self.until = None

    def arm_download(self) -> None:
        """The next object download is faulty (once)."""
        config, fired = self.sim.config, self.count()
        if self.kind == "truncate_part":
            config.truncate_parts = fired + 1
        elif self.kind == "corrupt_part":
            config.corrupt_parts = fired + 1
        elif self.kind == "cut_download":
            config.cut_download_after = 64
            config.cut_download_times = fired + 1


class DisarmingSleeper(Sleeper):
    """The client's sleeps (capped), each followed by a look at whether the fault fired
    enough."""

    def __init__(self, fault: Fault) -> None:
        super().__init__()
        self.fault = fault

    def __call__(self, seconds: float) -> None:
        super().__call__(seconds)
        self.fault.after_sleep()


class ArmAtPart:
    """The simulator arms the download fault when it is asked for object download AT_PART
    + 1 of an operation, before it answers: that very download is faulty.  (It wraps the
    simulator's request recorder, which every request passes before it is served.)"""

    def __init__(self, sim, fault: Fault) -> None:
        import threading
        self.service, self.fault = sim.service, fault
        self._record = self.service.record
        self._lock = threading.Lock()
        self.seen = 0
        self.service.record = self._recording

    def reset(self) -> None:
        with self._lock:
            self.seen = 0

    def _recording(self, method, path, headers):
        entry = self._record(method, path, headers)
        if path.startswith("/objects/"):
            with self._lock:
                self.seen += 1
                now = self.seen == AT_PART + 1
            if now:
                self.fault.arm_download()
        return entry

    def close(self) -> None:
        self.service.record = self._record


def object_paths(requests):
    return [r["path"].split("?")[0] for r in requests if r["path"].startswith("/objects/")]


def check_client_side(kind: str, requests) -> None:
    """What the fault made the client do, from the simulator's request log."""
    objects = [r for r in requests if r["path"].startswith("/objects/")]
    paths = object_paths(requests)
    if kind in ("truncate_part", "corrupt_part"):
        # the part was fetched again from its first byte (it was restarted, not resumed)
        assert len(paths) > len(set(paths)), "no part was downloaded twice"
        assert all("range" not in r["headers"] for r in objects)
    elif kind == "cut_download":
        ranged = [r for r in objects if "range" in r["headers"]]
        assert ranged and all(r["status"] == 206 for r in ranged), ranged
    elif kind == "fail_429":
        assert 429 in [r["status"] for r in requests if r["path"].startswith("/dap/")]
    elif kind == "fail_5xx":
        assert {500, 502} <= {r["status"] for r in requests if r["path"].startswith("/dap/")}
    elif kind == "refuse_token":
        assert 401 in [r["status"] for r in requests if r["path"].startswith("/dap/")]
        assert len([r for r in requests if r["path"] == "/ids/auth/login"]) >= 2


def _cases():
    for name, (kind, _) in FAULTS.items():
        for hold in (HOLDS if kind in DOWNLOAD_FAULTS else ["held"]):
            yield pytest.param(name, hold, id="%s-%s" % (name, hold))


@pytest.mark.parametrize("name, hold", list(_cases()))
def test_faults_during_init_and_sync_leave_the_database_as_a_clean_run(
        database, make_simulator, monkeypatch, name, hold):
    kind, options = FAULTS[name]
    if HOLDS[hold] is not None:
        monkeypatch.setattr(Loader, "read_ahead", HOLDS[hold], raising=False)
    sim = make_simulator(**dict(FAULT_DATA, **options))
    twin = make_simulator(**FAULT_DATA)  # the same data, no faults: the clean run
    fault = Fault(sim, kind)
    armer = ArmAtPart(sim, fault) if kind in DOWNLOAD_FAULTS else None
    try:
        with connect(sim, sleeper=DisarmingSleeper(fault)) as dap, \
                Replica(dap, database.url) as replica, connect(twin) as clean_dap, \
                Replica(clean_dap, "sqlite:///:memory:") as clean:
            for operation in ("init", "sync"):
                if operation == "sync":
                    sim.advance(2)
                    twin.advance(2)
                expected = clean.init(NS, TABLE) if operation == "init" else \
                    clean.sync(NS, TABLE)
                fired = fault.count()
                sim.clear_requests()
                if armer is not None:
                    armer.reset()
                fault.arm_api()
                got = replica.init(NS, TABLE) if operation == "init" else \
                    replica.sync(NS, TABLE)
                assert fault.count() > fired, "%s never fired during %s" % (kind, operation)
                check_client_side(kind, sim.requests)
                assert got.action == expected.action == operation
                rows = assert_replica_equals(database, sim, NS, TABLE)
                assert got.rows == expected.rows, "rows reported differ from a clean run's"
                if operation == "init":
                    assert got.rows == rows
                else:
                    assert got.rows > 0
                assert got.checkpoint == expected.checkpoint == utc_point(sim.frontier)
                assert stored_checkpoint(database, NS, TABLE) == utc_point(sim.frontier)
    finally:
        if armer is not None:
            armer.close()
    assert leftover_tables(database) == []


# -- SIGKILL --------------------------------------------------------------------------------------

#: 3000 base rows of submissions in parts of 50 (about 64 parts); two steps of 300 changes
#: give an incremental of several parts
KILL_DATA = dict(QUICK_OPTIONS, seed=11, rows_per_part=50, changes_per_step=300,
                 rows=dict(QUICK_OPTIONS["rows"], submissions=3000))
MID_LOAD_KILLS = 4     # per command
TAIL_KILLS = 3         # per command, at most (the first one that lands after ends them)
ROLL_FORWARD = "__dap_new"


def object_requests(sim):
    return [r for r in sim.requests if r["path"].startswith("/objects/")]


def wait_for(proc, condition, what: str, timeout: float = 60.0) -> bool:
    """Wait until `condition()` (True) or the process ended (False)."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if condition():
            return True
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail("%s did not happen in %.0f s" % (what, timeout))
        time.sleep(0.002)
    return False


class Killer:
    """Runs `bin/dap` against `sim` into `url`, and kills it at a protocol event.  Its
    temporary files (MySQL's named pipe of a part) go to `tmpdir`: a SIGKILL leaves them."""

    def __init__(self, sim, url: str, gate: RequestGate, tmpdir) -> None:
        self.sim, self.url, self.gate = sim, url, gate
        self.env = db_env(sim, url, TMPDIR=str(tmpdir))
        self.log: Optional[BinaryIO] = None

    def __enter__(self) -> Killer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.log is not None:
            self.log.close()
            self.log = None

    def start(self, args):
        self.sim.clear_requests()
        self.close()  # stderr() tells of the latest run only
        self.log = tempfile.TemporaryFile()
        return subprocess.Popen(DAP + list(args), env=self.env, stdout=subprocess.DEVNULL,
                                stderr=self.log)

    def stderr(self) -> str:
        if self.log is None:
            return ""
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")[-2000:]

    def clean(self, args):
        """A whole run (it must succeed): (parts downloaded, seconds from its last part's
        request to its end)."""
        proc = self.start(args)
        proc.wait(timeout=120)
        ended = time.time()
        parts = object_requests(self.sim)
        assert proc.returncode == 0, self.stderr()
        return len(parts), max(0.0, ended - parts[-1]["time"]) if parts else 0.0

    def kill_mid_load(self, args, k: int):
        """Kill while the run waits for object download k+1 (held back): returns the exit
        status it ended with first (None: the kill landed)."""
        self.gate.hold(object_download, nth=k + 1)
        try:
            proc = self.start(args)
            return self._kill(proc) if self.gate.wait_held(proc) else proc.returncode
        finally:
            self.gate.release()

    def kill_after_last_part(self, args, parts: int, delay: float):
        """Kill `delay` s after the last part was served."""
        proc = self.start(args)

        def served() -> bool:
            done = object_requests(self.sim)
            return len(done) >= parts and done[parts - 1]["status"] is not None

        if not wait_for(proc, served, "the last part"):
            return proc.returncode
        time.sleep(delay)
        return self._kill(proc)

    @staticmethod
    def _kill(proc):
        if proc.poll() is not None:
            return proc.returncode
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return None if proc.returncode == -signal.SIGKILL else proc.returncode


class Tally:
    def __init__(self) -> None:
        self.landed = self.mid_load = self.finished_first = 0
        self.outcomes = {"before": 0, "after": 0, "rolling forward": 0}

    def __repr__(self) -> str:
        return ("%d kills landed, %d mid-load; %d runs finished first; outcomes %s" % (
            self.landed, self.mid_load, self.finished_first, self.outcomes))


def outcome(database, before, after) -> str:
    """What a killed run left: "before", "after", or on MariaDB "rolling forward" (the row
    committed, pointing at the new copy that holds the clean run's rows, the rename not
    done yet).  Anything else fails."""
    wait_until_alone(database)
    now = database.snapshot(NS, TABLE)
    if now == before:
        return "before"
    if now == after:
        return "after"
    rows, sync = now
    if database.dialect == "mysql" and len(sync) == 1 and \
            sync[0][5] == "%s__%s%s" % (NS, TABLE, ROLL_FORWARD) and \
            sync[0][:5] == after[1][0][:5] and rows in (None, before[0]):
        parked = database.snapshot(NS, TABLE + ROLL_FORWARD)[0]
        assert parked == after[0], "the committed new copy differs from a clean run's"
        return "rolling forward"
    pytest.fail("a killed run left neither the state before nor the state after it: "
                "%d rows (before %s, after %s), bookkeeping %r (before %r, after %r)" % (
                    len(rows or ()), len(before[0] or ()), len(after[0] or ()), sync,
                    before[1], after[1]))


def test_sigkill_during_initdb_and_syncdb_leaves_before_or_after_and_a_rerun_converges(
        database, reference_database, make_simulator, tmp_path):
    sim = make_simulator(**KILL_DATA)
    rng = random.Random("db-kills:%s" % database.dialect)
    gate = RequestGate(sim)
    killer = Killer(sim, database.url, gate, tmp_path)
    reference = Killer(sim, reference_database.url, gate, tmp_path)
    tally = Tally()
    planned_mid_load = 0
    try:
        for command in ("initdb", "syncdb"):
            if command == "syncdb":
                sim.advance(2)
            args = [command, "--namespace", NS, "--table", TABLE, "--lock-wait", "60"]
            before = database.snapshot(NS, TABLE)
            assert reference_database.snapshot(NS, TABLE) == before
            # the clean run (the same query: DAP hands back the same job to the runs below)
            parts, tail = reference.clean(args)
            after = reference_database.snapshot(NS, TABLE)
            assert after != before and parts >= 6, parts
            assert_replica_equals(reference_database, sim, NS, TABLE)
            plan = [("mid-load", k, 0.0) for k in sorted(rng.sample(range(1, parts),
                                                                    MID_LOAD_KILLS))]
            # after the last part: the load of its rows, the apply, the commit (a clean run
            # ends `tail` s after its last part was asked for)
            plan += [("tail", parts, rng.uniform(0.0, 0.8 * tail)) for _ in range(TAIL_KILLS)]
            planned_mid_load += MID_LOAD_KILLS
            state = "before"
            for kind, k, delay in plan:
                if kind == "mid-load":
                    status = killer.kill_mid_load(args, k)
                else:
                    status = killer.kill_after_last_part(args, k, delay)
                if status is not None:
                    assert status == 0, "%s failed before the kill (exit %d): %s" % (
                        command, status, killer.stderr())
                    tally.finished_first += 1
                else:
                    tally.landed += 1
                state = outcome(database, before, after)
                tally.outcomes[state] += 1
                if kind == "mid-load":
                    assert status is None and state == "before", (kind, k, status, state)
                    tally.mid_load += 1
                elif state != "before":
                    break  # the table moved: this command's work is done
            # the rerun: the same command when nothing moved, else the nightly syncdb (an
            # initdb of a table that is there is refused, as it should be)
            rerun = args if state == "before" else ["syncdb"] + args[1:]
            wait_until_alone(database)
            killer.clean(rerun)
            assert database.snapshot(NS, TABLE) == after
            assert leftover_tables(database) == []
            assert_replica_equals(database, sim, NS, TABLE)
            assert stored_checkpoint(database, NS, TABLE) == utc_point(sim.frontier)
    finally:
        killer.close()
        reference.close()
        gate.close()
    print("%s: %r" % (database.dialect, tally))  # shown with pytest -s
    # every mid-load kill was held mid-load by construction: each one must have landed there
    assert tally.mid_load == planned_mid_load == 2 * MID_LOAD_KILLS, tally


# -- MariaDB: killed between the commit and the rename ---------------------------------------------

@pytest.fixture
def mysql_reference(mysql, tmp_path_factory):
    yield from _database("mysql", tmp_path_factory.mktemp("reference"))


def session_running(db, prefix: str):
    """The id of the session of `db`'s database whose statement begins with `prefix`."""
    rows = db.query("SELECT id FROM information_schema.processlist WHERE db = DATABASE() "
                    "AND id <> CONNECTION_ID() AND info LIKE %s", (prefix + "%",))
    return rows[0][0] if rows else None


@pytest.mark.parametrize("rerun, status", [("syncdb", 0), ("initdb", 3)])
def test_mysql_initdb_killed_between_its_commit_and_its_rename_is_rolled_forward_by_the_next_run(
        mysql, mysql_reference, make_simulator, rerun, status, tmp_path):
    """MySQL commits DDL by itself, so initdb builds `<table>__dap_new`, commits the rows
    with a bookkeeping row that points at it, then renames it into place.  Here the rename
    is held (this test's transaction holds a metadata lock on the new copy), and the run is
    killed with its session while it waits: the commit is done, the rename never happens.
    The next run of any command finishes the rename first; initdb then refuses, as for any
    table that is there."""
    sim = make_simulator(**KILL_DATA)
    gate = RequestGate(sim)
    args = ["initdb", "--namespace", NS, "--table", TABLE]
    killer = Killer(sim, mysql.url, gate, tmp_path)
    try:
        with Killer(sim, mysql_reference.url, gate, tmp_path) as reference:
            reference.clean(args)
        after = mysql_reference.snapshot(NS, TABLE)
        gate.hold(object_download, nth=2)  # the new copy is created, the load under way
        proc = killer.start(args)
        assert gate.wait_held(proc), killer.stderr()
        new_copy = mysql.table(NS, TABLE + ROLL_FORWARD)
        mysql.execute("START TRANSACTION")
        mysql.query("SELECT COUNT(*) FROM %s" % new_copy)  # holds its metadata lock
        gate.release()
        assert wait_for(proc, lambda: session_running(mysql, "RENAME TABLE") is not None,
                        "the rename"), killer.stderr()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        mysql.execute("KILL %d" % session_running(mysql, "RENAME TABLE"))
        # KILL only flags the session: had the lock gone before the rename saw the flag, the
        # rename would go through.  The lock is let go once the session has ended.
        wait_until_alone(mysql)
        mysql.execute("ROLLBACK")
    finally:
        killer.close()
        gate.close()
    wait_until_alone(mysql)
    rows, sync = mysql.snapshot(NS, TABLE)
    assert rows is None and len(sync) == 1
    assert sync[0][5] == "%s__%s%s" % (NS, TABLE, ROLL_FORWARD)
    assert sync[0][:5] == after[1][0][:5]
    assert mysql.snapshot(NS, TABLE + ROLL_FORWARD)[0] == after[0]

    run = subprocess.run(DAP + [rerun, "--namespace", NS, "--table", TABLE],
                         env=db_env(sim, mysql.url), capture_output=True, timeout=120)
    assert run.returncode == status, run.stderr
    assert mysql.snapshot(NS, TABLE) == after
    assert leftover_tables(mysql) == []
    assert_replica_equals(mysql, sim, NS, TABLE)
