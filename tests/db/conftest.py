"""Real database servers for the replication tests: a fresh database per test, dropped after
(made through the admin connection, named dap_test_[WORKER_]HEX, so that xdist's workers and
other suites on the same servers never share one).

PostgreSQL and MariaDB are the machine's servers (127.0.0.1:5432 as postgres, 127.0.0.1:3306
as root; override with DAP_TEST_POSTGRESQL / DAP_TEST_MYSQL, connection strings ending in the
admin database). Under CI (CI set) a server that cannot be reached FAILS the test; elsewhere
the test is skipped with the reason, and pytest's summary lists it.

`Oracle` turns the simulator's own records (`sim.current_state`) into the rows a database
must hold, by rules written here from the layout (`../shared/dap-db.md`), not by dap_core.
"""
from __future__ import annotations

import json
import os
import secrets
import sqlite3
from datetime import datetime
from typing import Any, Dict, List

import pytest

SERVERS = {
    "postgresql": os.environ.get("DAP_TEST_POSTGRESQL", "postgresql://postgres@127.0.0.1:5432/test"),
    "mysql": os.environ.get("DAP_TEST_MYSQL", "mysql://root@127.0.0.1:3306/test"),
}
DIALECTS = ("sqlite", "postgresql", "mysql")


def _unreachable(dialect: str, exc: BaseException):
    why = "%s server at %s unreachable: %s" % (dialect, SERVERS[dialect], exc)
    if os.environ.get("CI"):
        pytest.fail(why + " (under CI the database servers must run: see .ci/run)")
    pytest.skip(why)


def _split(url: str):
    base, _, admin_db = url.rpartition("/")
    return base, admin_db


class TestDatabase:
    """One fresh database: its connection string, and plain reads of what is in it."""

    __test__ = False

    def __init__(self, dialect: str, url: str, conn: Any) -> None:
        self.dialect = dialect
        self.url = url
        self.conn = conn

    def query(self, sql: str, params=()) -> List[tuple]:
        cur = self.conn.cursor()
        cur.execute(sql, params) if params else cur.execute(sql)
        rows = [tuple(r) for r in cur.fetchall()] if cur.description else []
        cur.close()
        return rows

    def execute(self, sql: str, params=()) -> None:
        cur = self.conn.cursor()
        cur.execute(sql, params) if params else cur.execute(sql)
        cur.close()

    def table(self, namespace: str, table: str) -> str:
        if self.dialect == "postgresql":
            return '"%s"."%s"' % (namespace, table)
        if self.dialect == "mysql":
            return "`%s__%s`" % (namespace, table)
        return '"%s__%s"' % (namespace, table)

    def sync_table(self) -> str:
        return {"postgresql": "instructure_dap.table_sync",
                "mysql": "instructure_dap__table_sync",
                "sqlite": "instructure_dap__table_sync"}[self.dialect]

    def rows(self, namespace: str, table: str) -> List[Dict[str, Any]]:
        cur = self.conn.cursor()
        cur.execute("SELECT * FROM %s" % self.table(namespace, table))
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r)) for r in cur.fetchall()]
        cur.close()
        return rows

    def exists(self, namespace: str, table: str) -> bool:
        try:
            self.query("SELECT 1 FROM %s WHERE 1 = 0" % self.table(namespace, table))
            return True
        except Exception:
            self.rollback()
            return False

    def rollback(self) -> None:
        if self.dialect == "postgresql":
            self.conn.rollback()

    def sync_rows(self) -> List[tuple]:
        return self.query("SELECT source_namespace, source_table, %s, schema_version, "
                          "target_schema, target_table FROM %s ORDER BY source_namespace, "
                          "source_table" % ('"timestamp"' if self.dialect != "mysql"
                                            else "`timestamp`", self.sync_table()))

    def snapshot(self, namespace: str, table: str):
        """Everything a run may change for one table: its rows (sorted) and its sync row."""
        rows = None
        if self.exists(namespace, table):
            rows = sorted((json.dumps(r, sort_keys=True, default=str) for r in
                           self.rows(namespace, table)))
        sync = [r for r in (self.sync_rows() if self.has_bookkeeping() else [])
                if (r[0], r[1]) == (namespace, table)]
        return rows, sync

    def has_bookkeeping(self) -> bool:
        try:
            self.query("SELECT 1 FROM %s WHERE 1 = 0" % self.sync_table())
            return True
        except Exception:
            self.rollback()
            return False


@pytest.fixture(params=DIALECTS)
def database(request, tmp_path):
    """A fresh, empty database of each kind (the test runs once per kind)."""
    yield from _database(request.param, tmp_path)


def _database(dialect: str, tmp_path):
    if dialect == "sqlite":
        path = tmp_path / "replica.db"
        conn = sqlite3.connect(str(path), isolation_level=None)
        try:
            yield TestDatabase("sqlite", "sqlite:///%s" % path, conn)
        finally:
            conn.close()
        return
    # a database of its own for every test, so tests never share one: not two xdist workers
    # (make test runs two), nor other suites on the same server; the worker is in its name
    # (dap_test_gw1_...) to tell whose a leftover is
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    name = "dap_test_%s%s" % (worker + "_" if worker else "", secrets.token_hex(6))
    base, admin_db = _split(SERVERS[dialect])
    if dialect == "postgresql":
        import psycopg
        try:
            admin = psycopg.connect(SERVERS[dialect], autocommit=True, connect_timeout=5)
        except psycopg.Error as exc:
            _unreachable(dialect, exc)
        admin.execute('CREATE DATABASE "%s"' % name)
        conn = psycopg.connect("%s/%s" % (base, name), autocommit=True)
        try:
            yield TestDatabase(dialect, "%s/%s" % (base, name), conn)
        finally:
            conn.close()
            admin.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
            admin.close()
        return
    import pymysql
    from urllib.parse import urlsplit
    parts = urlsplit(SERVERS[dialect])
    options = dict(host=parts.hostname, port=parts.port or 3306, user=parts.username or "root",
                   password=parts.password or "", charset="utf8mb4", autocommit=True)
    try:
        admin = pymysql.connect(connect_timeout=5, **options)
    except pymysql.Error as exc:
        _unreachable(dialect, exc)
    admin.cursor().execute("CREATE DATABASE `%s` CHARACTER SET utf8mb4" % name)
    conn = pymysql.connect(database=name, **options)
    conn.cursor().execute("SET time_zone = '+00:00'")
    try:
        yield TestDatabase(dialect, "%s/%s" % (base, name), conn)
    finally:
        conn.close()
        admin.cursor().execute("DROP DATABASE IF EXISTS `%s`" % name)
        admin.close()


@pytest.fixture
def postgresql(tmp_path):
    yield from _database("postgresql", tmp_path)


@pytest.fixture
def mysql(tmp_path):
    yield from _database("mysql", tmp_path)


# -- the oracle ---------------------------------------------------------------------------------

def _prop_kind(node: dict) -> str:
    """A property's kind from the simulator's JSON Schema, by the layout's rules."""
    if isinstance(node.get("enum"), list):
        return "text"
    kind = node.get("type")
    if kind == "string":
        if node.get("format") == "uuid":
            return "uuid"
        return "timestamp" if node.get("format") == "date-time" else "text"
    if kind in ("integer", "number", "boolean"):
        return kind
    if kind == "array" and (node.get("items") or {}).get("type") == "string":
        return "string_array"
    return "json"


def _utc_naive(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=None)


class Oracle:
    """The rows a database must hold for a table, from the simulator's records."""

    def __init__(self, dialect: str, schema: dict) -> None:
        self.dialect = dialect
        props = schema["properties"]
        self.key = list(props["key"]["properties"])
        self.kinds = {name: _prop_kind(node) for part in ("key", "value")
                      for name, node in props[part]["properties"].items()}

    def expected(self, state: Dict[str, dict]) -> Dict[str, Dict[str, Any]]:
        out = {}
        for record in state.values():
            merged = dict(record["value"] or {}, **record["key"])
            out[self._key(record["key"])] = {n: self._value(n, merged.get(n)) for n in self.kinds}
        return out

    def _key(self, key: dict) -> str:
        return json.dumps({k: self._text(key[k]) for k in self.key}, sort_keys=True,
                          separators=(",", ":"))

    @staticmethod
    def _text(value):
        import uuid
        if isinstance(value, uuid.UUID):
            return str(value)
        if isinstance(value, bytes) and len(value) == 16:
            return str(uuid.UUID(bytes=value))
        return value

    def _value(self, name: str, value: Any) -> Any:
        if value is None:
            return None
        kind = self.kinds[name]
        if kind == "timestamp":
            return value if self.dialect == "sqlite" else _utc_naive(value)
        if kind == "boolean":
            return value if self.dialect == "postgresql" else int(value)
        if kind == "number":
            return float(value)
        if kind == "uuid":  # PostgreSQL's uuid; the official client's binary(16) in MySQL
            import uuid
            return {"postgresql": uuid.UUID(value), "mysql": uuid.UUID(value).bytes}.get(
                self.dialect, value)
        if kind == "string_array" and self.dialect == "postgresql":
            return list(value)
        return value

    def actual(self, rows: List[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
        out = {}
        for row in rows:
            fixed = {}
            for name, value in row.items():
                kind = self.kinds.get(name)
                if kind in ("json", "string_array") and isinstance(value, str):
                    value = json.loads(value)
                fixed[name] = value
            out[self._key({k: row[k] for k in self.key})] = fixed
        return out


def _whole_seconds(rows):
    for row in rows.values():
        for name, value in row.items():
            if isinstance(value, datetime):
                row[name] = value.replace(microsecond=0)
    return rows


def assert_replica_equals(db: TestDatabase, sim, namespace: str, table: str,
                          whole_seconds=False) -> int:
    """The table in `db` holds exactly the simulator's current state, value by value;
    returns the row count. `whole_seconds`: timestamps compared to the second (columns
    that hold no fraction, as the official client makes them in MariaDB)."""
    schema = sim.service.schema(namespace, table)["schema"]
    oracle = Oracle(db.dialect, schema)
    expected = oracle.expected(sim.current_state(namespace, table))
    actual = oracle.actual(db.rows(namespace, table))
    if whole_seconds:
        expected, actual = _whole_seconds(expected), _whole_seconds(actual)
    assert set(actual) == set(expected), (
        "keys missing: %s; keys extra: %s" % (sorted(set(expected) - set(actual))[:5],
                                              sorted(set(actual) - set(expected))[:5]))
    for key, row in expected.items():
        got = actual[key]
        assert set(got) == set(row), (key, sorted(set(got) ^ set(row)))
        for name, value in row.items():
            assert got[name] == value and type(got[name]) is type(value), (
                namespace, table, key, name, got[name], value)
    return len(expected)


# -- helpers of the fault, kill, concurrency and CLI tests ---------------------------------------

@pytest.fixture
def reference_database(database, tmp_path_factory):
    """A second fresh database of the same kind as `database`: where a clean run goes, to
    compare with what a disturbed run left in `database`."""
    yield from _database(database.dialect, tmp_path_factory.mktemp("reference"))


def db_env(sim, url, **extra) -> dict:
    """The environment of a `bin/dap` run against `sim` into the database `url`."""
    from tests.cli.conftest import dap_env
    return dap_env(sim, DAP_CONNECTION_STRING=url, **extra)


def other_sessions(db: TestDatabase) -> int:
    """How many sessions besides `db`'s own are connected to its database (servers only)."""
    if db.dialect == "postgresql":
        return db.query("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                        "current_database() AND pid <> pg_backend_pid() AND "
                        "backend_type = 'client backend'")[0][0]
    if db.dialect == "mysql":
        return db.query("SELECT COUNT(*) FROM information_schema.processlist WHERE "
                        "db = DATABASE() AND id <> CONNECTION_ID()")[0][0]
    return 0


def wait_until_alone(db: TestDatabase, timeout: float = 60.0) -> None:
    """Wait until no other session is connected to `db`'s database: the session of a killed
    client has then been ended by the server (its transaction rolled back, or committed if
    its COMMIT had arrived; its locks released), so what `db` reads next is final.  SQLite
    needs no wait: the kill released the file locks, and the next reader rolls a hot journal
    back."""
    import time
    deadline = time.monotonic() + timeout
    while other_sessions(db):
        if time.monotonic() > deadline:
            pytest.fail("another session stayed connected to %s for %.0f s" % (db.url, timeout))
        time.sleep(0.02)


def table_names(db: TestDatabase) -> List[str]:
    """Every table of the database (PostgreSQL: schema.table)."""
    if db.dialect == "postgresql":
        return sorted("%s.%s" % r for r in db.query(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE "
            "table_schema NOT IN ('pg_catalog', 'information_schema')"))
    if db.dialect == "mysql":
        return sorted(r[0] for r in db.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()"))
    return sorted(r[0] for r in db.query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"))


def leftover_tables(db: TestDatabase) -> List[str]:
    """Half-built or parked copies (`__dap_new`, `__dap_old`) still in the database."""
    return [n for n in table_names(db) if n.endswith(("__dap_new", "__dap_old"))]


def utc_point(value: Any) -> datetime:
    """A checkpoint as stored (naive UTC datetime, or ISO text on SQLite) or as the
    simulator writes it (ISO text with Z), as an aware UTC datetime."""
    from datetime import timezone
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(timezone.utc)


def stored_checkpoint(db: TestDatabase, namespace: str, table: str) -> datetime:
    """The one bookkeeping row's timestamp of a table (fails when there is not exactly one)."""
    rows = [r for r in db.sync_rows() if (r[0], r[1]) == (namespace, table)]
    assert len(rows) == 1, rows
    return utc_point(rows[0][2])


# the gate that holds back one answer of the simulator: one helper for both suites
from tests.faults.support import RequestGate  # noqa: E402,F401


def job_start(table: str, namespace: str = "canvas"):
    """Matches the request that starts a query job of the table."""
    path = "/dap/query/%s/table/%s/data" % (namespace, table)
    return lambda method, p: method == "POST" and p.split("?")[0] == path


def job_poll(method: str, path: str) -> bool:
    return method == "GET" and path.startswith("/dap/job/")


def object_download(method: str, path: str) -> bool:
    return path.startswith("/objects/")
