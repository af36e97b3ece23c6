"""initdb, then syncdb across the simulator's timeline, leaves every table equal to the
simulator's own current state, value by value, on SQLite, PostgreSQL and MariaDB."""
from __future__ import annotations

import pytest

from dap_core import Replica, errors
from tests.shell.conftest import connect

from .conftest import assert_replica_equals

CANVAS = ("accounts", "users", "courses", "enrollments", "submissions")


@pytest.fixture
def sim(make_simulator):
    return make_simulator(rows_per_part=97)


def test_initdb_then_syncdb_follow_the_timeline_for_every_table(database, sim):
    with connect(sim) as dap, Replica(dap, database.url) as replica:
        tables = [("canvas", t) for t in CANVAS] + [("canvas_logs", "web_logs")]
        for namespace, table in tables:
            result = replica.init(namespace, table)
            assert result.action == "init"
            assert result.rows == assert_replica_equals(database, sim, namespace, table)
        for _ in range(3):
            sim.advance(2)
            for namespace, table in tables:
                result = replica.sync(namespace, table)
                assert result.action == "sync"
                assert_replica_equals(database, sim, namespace, table)
        listed = replica.list()
    assert [(r["namespace"], r["table"]) for r in listed] == sorted(tables)


def test_syncdb_of_a_table_never_initialized_initializes_it(database, sim):
    with connect(sim) as dap, Replica(dap, database.url) as replica:
        result = replica.sync("canvas", "accounts")
        assert result.action == "init"
        assert_replica_equals(database, sim, "canvas", "accounts")
        sim.advance(1)
        assert replica.sync("canvas", "accounts").action == "sync"
    assert_replica_equals(database, sim, "canvas", "accounts")


def test_initdb_of_a_table_that_is_there_is_refused_and_replace_rebuilds_it(database, sim):
    with connect(sim) as dap, Replica(dap, database.url) as replica:
        replica.init("canvas", "courses")
        sim.advance(3)
        with pytest.raises(errors.AlreadyInitialized) as refused:
            replica.init("canvas", "courses")
        assert refused.value.exit_status == 3
        assert "syncdb" in str(refused.value) and "--replace" in str(refused.value)
        result = replica.init("canvas", "courses", replace=True)
        assert result.action == "replace"
        assert [r["table"] for r in replica.list()] == ["courses"]
        # DAP may hand back the earlier snapshot job (identical query): the checkpoint is
        # its `at`, and a sync brings the table to now
        assert replica.sync("canvas", "courses").action == "sync"
    assert_replica_equals(database, sim, "canvas", "courses")
    # one bookkeeping row, pointing at the live table
    rows = database.sync_rows()
    assert len(rows) == 1 and rows[0][5] in ("courses", "canvas__courses")


def test_dropdb_removes_the_table_and_its_checkpoint(database, sim):
    with connect(sim) as dap, Replica(dap, database.url) as replica:
        replica.init("canvas", "users")
        replica.init("canvas", "accounts")
        replica.drop("canvas", "users")
        assert [r["table"] for r in replica.list()] == ["accounts"]
        with pytest.raises(errors.InvalidInput):
            replica.drop("canvas", "users")
    assert not database.exists("canvas", "users")
    assert database.exists("canvas", "accounts")
    if database.dialect == "postgresql":  # its enum types went with it
        assert database.query("SELECT typname FROM pg_type WHERE typname LIKE 'users__%%'") == []


def test_snapshot_required_stops_with_9_or_rebuilds_with_reinit_if_needed(database, make_simulator):
    sim = make_simulator(rows_per_part=97, reload_table=["accounts"])
    with connect(sim) as dap, Replica(dap, database.url) as replica:
        # a table reloaded since: an incremental from before the reload needs a snapshot;
        # a snapshot taken now is fine, so make the checkpoint old by hand
        replica.init("canvas", "accounts")
        database.execute("UPDATE %s SET %s = '2025-12-01 00:00:00'" % (
            database.sync_table(), '"timestamp"' if database.dialect != "mysql" else "`timestamp`"))
        before = database.snapshot("canvas", "accounts")
        with pytest.raises(errors.SnapshotRequired) as stopped:
            replica.sync("canvas", "accounts")
        assert stopped.value.exit_status == 9 and "--reinit-if-needed" in str(stopped.value)
        assert database.snapshot("canvas", "accounts") == before
        result = replica.sync("canvas", "accounts", reinit_if_needed=True)
        assert result.action == "replace"
    assert_replica_equals(database, sim, "canvas", "accounts")


def test_sync_many_replicates_tables_concurrently_each_on_its_own(database, make_simulator):
    # jobs that stay pending a while: the tables' waits overlap (4 workers, 5 tables)
    sim = make_simulator(rows_per_part=97, job_wait=0.3, job_run=0.3, fail_table=["users"])
    with connect(sim) as dap, Replica(dap, database.url) as replica:
        outcomes = {t: (r, e) for t, r, e in replica.sync_many("canvas", concurrency=4)}
        assert set(outcomes) == set(CANVAS)
        assert isinstance(outcomes["users"][1], errors.JobFailed)
        for table in set(CANVAS) - {"users"}:
            result, error = outcomes[table]
            assert error is None and result.action == "init"
            assert_replica_equals(database, sim, "canvas", table)
        sim.advance(2)
        again = {t: (r, e) for t, r, e in replica.sync_many(
            "canvas", ["accounts", "courses", "enrollments"], concurrency=3)}
        assert all(e is None and r.action == "sync" for r, e in again.values())
    for table in ("accounts", "courses", "enrollments"):
        assert_replica_equals(database, sim, "canvas", table)
    assert not database.exists("canvas", "users")
