"""`dap initdb | syncdb | listdb | dropdb` as a person runs them: `bin/dap` against the
simulator over loopback, into SQLite, PostgreSQL and MariaDB.

Bad input ends in one clear line on stderr with its own exit status and leaves nothing
half-created: a malformed connection string or an unknown scheme (3, before any request to
DAP), a wrong password, an unknown database or role, a closed port (14, at once), a
database the user may not write (14), a missing driver (3, naming the extra).  A password
given in a connection string never shows on stdout or stderr: every run of this file is
checked for the passwords it was given (`dap`).
"""
from __future__ import annotations

import os
import secrets
import socket
import sqlite3
import time
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.cli.conftest import DAP, Result, assert_one_line_error, dap_env

from .conftest import (TestDatabase, assert_replica_equals, stored_checkpoint, table_names,
                       utc_point)

NS = "canvas"
CANVAS = ("accounts", "courses", "enrollments", "submissions", "users")
DEFAULT_NOTICE = "no connection string"


@pytest.fixture
def sim(make_simulator):
    return make_simulator(rows_per_part=17)


def password_of(url):
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def dap(*args, sim, cwd, url=None, env=None, **extra) -> Result:
    """`bin/dap args` in `cwd` (DAP_CONNECTION_STRING=url when given); no password of a
    connection string it was given may show in what it printed."""
    import subprocess
    if env is None:
        if url is not None:
            extra["DAP_CONNECTION_STRING"] = url
        env = dap_env(sim, **extra)
    args = [str(a) for a in args]
    started = time.monotonic()
    result = Result(subprocess.run(DAP + args, capture_output=True, cwd=str(cwd), env=env,
                                   timeout=120))
    result.seconds = time.monotonic() - started
    given = [env.get("DAP_CONNECTION_STRING")] + [
        b for a, b in zip(args, args[1:]) if a == "--connection-string"] + [
        a.split("=", 1)[1] for a in args if a.startswith("--connection-string=")]
    for url in filter(None, given):
        password = password_of(url)
        if password:
            assert password not in result.out.decode("utf-8", "replace"), result
            assert password not in result.err, result
    return result


def with_password(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    netloc = "%s:%s@%s" % (user, password, parts.netloc.rpartition("@")[2])
    return urlunsplit(parts._replace(netloc=netloc))


def new_password() -> str:
    return "Pw-%s" % secrets.token_hex(8)


def target_of(dialect: str, table: str) -> str:
    """Where the layout puts a canvas table (`../shared/dap-db.md`; SQLite like MySQL)."""
    return "canvas.%s" % table if dialect == "postgresql" else "canvas__%s" % table


def schema_version(sim, table: str) -> int:
    return sim.service.schema(NS, table)["version"]


def job_starts(sim):
    return [r for r in sim.requests if r["method"] == "POST" and r["path"].endswith("/data")]


# -- what a person does -------------------------------------------------------------------------

def test_initdb_syncdb_all_listdb_and_dropdb_as_a_person_runs_them(database, sim, tmp_path):
    url = database.url
    if database.dialect == "postgresql":
        # trust on loopback takes any password: the run shows it is never printed
        url = with_password(url, "postgres", new_password())

    init = dap("initdb", "--table", "accounts,users", sim=sim, cwd=tmp_path, url=url)
    assert init.status == 0, init
    assert sorted((rec["table"], rec["action"]) for rec in init.json_lines) == [
        ("accounts", "init"), ("users", "init")]
    for line in init.json_lines:
        table = line["table"]
        assert line["rows"] == assert_replica_equals(database, sim, NS, table)
        # one line for a person: what was loaded where (the database named, redacted)
        said = [line for line in init.err_lines if line.startswith("canvas.%s: " % table)]
        assert len(said) == 1, init.err
        assert said[0].startswith("canvas.%s: loaded %d rows into %s (%s://" % (
            table, line["rows"], target_of(database.dialect, table), database.dialect))
        if password_of(url):
            assert ":***@" in said[0]
    assert "dap: 2 tables: 2 done, 0 failed" in init.err_lines
    assert DEFAULT_NOTICE not in init.err

    sim.advance(1)
    every = dap("syncdb", "--table", "all", "--loglevel", "info", sim=sim, cwd=tmp_path,
                url=url)
    assert every.status == 0, every
    actions = sorted((rec["table"], rec["action"]) for rec in every.json_lines)
    assert actions == [("accounts", "sync"), ("courses", "init"), ("enrollments", "init"),
                       ("submissions", "init"), ("users", "sync")]
    for table in ("courses", "enrollments", "submissions"):
        assert "canvas.%s is not in the database yet: initializing it" % table in every.err
    for table in CANVAS:
        assert_replica_equals(database, sim, NS, table)
        assert stored_checkpoint(database, NS, table) == utc_point(sim.frontier)
    assert not database.exists("canvas_logs", "web_logs")

    listed = dap("listdb", sim=sim, cwd=tmp_path, url=url)
    assert listed.status == 0, listed
    expected = [[NS, t, target_of(database.dialect, t), sim.frontier,
                 str(schema_version(sim, t))] for t in CANVAS]
    rows = [line.split("\t") for line in listed.text.splitlines()]
    assert sorted(rows) == expected
    assert all(utc_point(r[3]) == utc_point(sim.frontier) for r in rows)

    as_json = dap("listdb", "--format", "json", sim=sim, cwd=tmp_path, url=url)
    assert as_json.status == 0, as_json
    assert sorted(([rec["namespace"], rec["table"], rec["target"], rec["checkpoint"],
                    str(rec["schema_version"])] for rec in as_json.json_lines)) == expected
    assert all(isinstance(rec["schema_version"], int) for rec in as_json.json_lines)

    dropped = dap("dropdb", "--table", "users", sim=sim, cwd=tmp_path, url=url)
    assert dropped.status == 0, dropped
    assert [(rec["table"], rec["action"]) for rec in dropped.json_lines] == [("users", "drop")]
    assert not database.exists(NS, "users")
    after = dap("listdb", sim=sim, cwd=tmp_path, url=url)
    assert sorted(line.split("\t")[1] for line in after.text.splitlines()) == [
        "accounts", "courses", "enrollments", "submissions"]

    again = dap("initdb", "--table", "accounts", sim=sim, cwd=tmp_path, url=url)
    assert_one_line_error(again, 3, "canvas.accounts", "syncdb", "--replace")
    assert_replica_equals(database, sim, NS, "accounts")
    assert not os.path.exists(tmp_path / "dap.db")


def test_without_a_connection_string_the_database_is_dap_db_in_the_current_directory(
        sim, tmp_path):
    run = dap("initdb", "--table", "accounts,users", sim=sim, cwd=tmp_path)
    assert run.status == 0, run
    notices = [line for line in run.err_lines if DEFAULT_NOTICE in line]
    assert len(notices) == 1 and "dap.db" in notices[0], run.err
    path = tmp_path / "dap.db"
    assert path.is_file()
    conn = sqlite3.connect(str(path))
    try:
        db = TestDatabase("sqlite", "sqlite:///%s" % path, conn)
        for table in ("accounts", "users"):
            assert_replica_equals(db, sim, NS, table)
    finally:
        conn.close()
    listed = dap("listdb", sim=sim, cwd=tmp_path)
    assert listed.status == 0, listed
    assert sorted(line.split("\t")[1] for line in listed.text.splitlines()) == ["accounts", "users"]
    assert len([line for line in listed.err_lines if DEFAULT_NOTICE in line]) == 1


def test_the_connection_string_option_wins_over_the_environment(sim, tmp_path):
    from_env = "sqlite:///%s" % (tmp_path / "env.db")
    from_option = "sqlite:///%s" % (tmp_path / "option.db")
    first = dap("initdb", "--table", "accounts", sim=sim, cwd=tmp_path, url=from_env)
    assert first.status == 0, first
    second = dap("initdb", "--table", "users", "--connection-string", from_option, sim=sim,
                 cwd=tmp_path, url=from_env)
    assert second.status == 0, second
    for run in (first, second):
        assert DEFAULT_NOTICE not in run.err
    tables = {}
    for name in ("env.db", "option.db"):
        conn = sqlite3.connect(str(tmp_path / name))
        tables[name] = sorted(r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE name LIKE 'canvas__%'"))
        conn.close()
    assert tables == {"env.db": ["canvas__accounts"], "option.db": ["canvas__users"]}
    assert not os.path.exists(tmp_path / "dap.db")


@pytest.mark.parametrize("command", ["initdb", "syncdb", "dropdb", "listdb"])
def test_help_of_each_database_command_has_examples(command, tmp_path):
    run = dap(command, "--help", sim=None, cwd=tmp_path, env=dap_env(None))
    assert run.status == 0 and run.err == "", run
    text = run.text
    assert "Usage:" in text and "DAP_CONNECTION_STRING" in text
    examples = text.split("Examples:", 1)
    assert len(examples) == 2, text
    lines = [line.strip() for line in examples[1].splitlines() if line.strip()]
    assert any(line.startswith("dap %s" % command) or " dap %s" % command in line
               for line in lines), examples[1]


# -- bad input ------------------------------------------------------------------------------------

PW = "Pw-%s" % secrets.token_hex(6)
BAD_STRINGS = {
    "malformed-port": ("postgresql://dap:%s@127.0.0.1:port5432/canvas" % PW, "malformed"),
    "unknown-scheme": ("oracle://dap:%s@127.0.0.1:1521/canvas" % PW, "unknown scheme"),
    "no-scheme": ("dap:%s@127.0.0.1/canvas" % PW, "no scheme"),
    "sqlite-two-slashes": ("sqlite://dap.db", "three slashes"),
    "no-database": ("mysql://dap:%s@127.0.0.1:3306/" % PW, "no database"),
}


@pytest.mark.parametrize("name", list(BAD_STRINGS))
def test_a_malformed_connection_string_is_refused_before_any_request(sim, tmp_path, name):
    text, words = BAD_STRINGS[name]
    for command, how in (("initdb", "option"), ("syncdb", "environment"), ("listdb", "option")):
        args = [command] + (["--table", "accounts"] if command != "listdb" else [])
        if how == "option":
            run = dap(*args, "--connection-string", text, sim=sim, cwd=tmp_path)
        else:
            run = dap(*args, sim=sim, cwd=tmp_path, url=text)
        line = assert_one_line_error(run, 3, "connection string", words)
        assert "write it like" in line
    assert sim.requests == []
    assert os.listdir(tmp_path) == []


@pytest.fixture
def mysql_user(mysql):
    """A MariaDB user with a password, all rights on the test's database; dropped after."""
    name = "dap_u_%s" % secrets.token_hex(4)
    password = new_password()
    database = urlsplit(mysql.url).path.lstrip("/")
    hosts = ("localhost", "127.0.0.1", "%")
    for host in hosts:
        mysql.execute("CREATE USER '%s'@'%s' IDENTIFIED BY '%s'" % (name, host, password))
    yield name, password, database
    for host in hosts:
        mysql.execute("DROP USER IF EXISTS '%s'@'%s'" % (name, host))


def test_a_wrong_password_is_one_line_exit_14_and_creates_nothing(mysql, mysql_user, sim,
                                                                   tmp_path):
    name, password, database = mysql_user
    for host in ("localhost", "127.0.0.1", "%"):
        mysql.execute("GRANT ALL ON `%s`.* TO '%s'@'%s'" % (database, name, host))
    wrong = with_password(mysql.url, name, new_password())
    run = dap("initdb", "--table", "accounts", sim=sim, cwd=tmp_path, url=wrong)
    assert_one_line_error(run, 14, "denied", name)
    assert table_names(mysql) == [] and job_starts(sim) == []
    # the same user with its password gets in (it was the password)
    right = with_password(mysql.url, name, password)
    ok = dap("initdb", "--table", "accounts", sim=sim, cwd=tmp_path, url=right)
    assert ok.status == 0, ok
    assert_replica_equals(mysql, sim, NS, "accounts")


def test_a_wrong_password_for_postgresql(postgresql, sim, tmp_path):
    import psycopg
    role, password = "dap_pw_%s" % secrets.token_hex(4), new_password()
    postgresql.execute("CREATE ROLE %s LOGIN PASSWORD '%s'" % (role, password))
    try:
        wrong = with_password(postgresql.url, role, new_password())
        try:
            psycopg.connect(wrong, connect_timeout=5).close()
        except psycopg.OperationalError:
            pass
        else:
            pytest.skip("the server's pg_hba.conf trusts 127.0.0.1: any password gets in "
                        "(see the unknown database and role test instead)")
        run = dap("initdb", "--table", "accounts", sim=sim, cwd=tmp_path, url=wrong)
        assert_one_line_error(run, 14, "password", role)
        assert table_names(postgresql) == [] and job_starts(sim) == []
    finally:
        postgresql.execute("DROP ROLE %s" % role)


def test_an_unknown_postgresql_database_or_role_is_one_line_exit_14(postgresql, sim,
                                                                     tmp_path):
    missing_db = "dap_missing_%s" % secrets.token_hex(4)
    url = with_password(postgresql.url, "postgres", new_password())
    no_database = url.rpartition("/")[0] + "/" + missing_db
    run = dap("initdb", "--table", "accounts", sim=sim, cwd=tmp_path, url=no_database)
    assert_one_line_error(run, 14, missing_db, "does not exist")
    nobody = "dap_nobody_%s" % secrets.token_hex(4)
    no_role = with_password(postgresql.url, nobody, new_password())
    run = dap("syncdb", "--table", "accounts", sim=sim, cwd=tmp_path, url=no_role)
    assert_one_line_error(run, 14, nobody, "does not exist")
    assert table_names(postgresql) == [] and job_starts(sim) == []
    assert os.listdir(tmp_path) == []


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("scheme", ["postgresql", "mysql"])
def test_an_unreachable_server_is_one_line_exit_14_at_once(scheme, sim, tmp_path):
    from dap_core.shell.database import CONNECT_TIMEOUT
    port = closed_port()
    url = "%s://dap:%s@127.0.0.1:%d/canvas" % (scheme, new_password(), port)
    run = dap("syncdb", "--table", "accounts", sim=sim, cwd=tmp_path, url=url)
    assert_one_line_error(run, 14, "127.0.0.1", str(port))
    # refused at once: no waiting for the connect timeout, no retries
    assert run.seconds < CONNECT_TIMEOUT, run.seconds
    assert job_starts(sim) == [] and os.listdir(tmp_path) == []


def test_a_postgresql_database_the_user_may_not_write_is_one_line_exit_14(postgresql, sim,
                                                                            tmp_path):
    role, password = "dap_ro_%s" % secrets.token_hex(4), new_password()
    postgresql.execute("CREATE ROLE %s LOGIN PASSWORD '%s'" % (role, password))
    try:
        url = with_password(postgresql.url, role, password)
        run = dap("initdb", "--table", "accounts", sim=sim, cwd=tmp_path, url=url)
        assert_one_line_error(run, 14, "permission denied")
        assert table_names(postgresql) == []
        assert postgresql.query("SELECT schema_name FROM information_schema.schemata WHERE "
                                "schema_name IN ('instructure_dap', 'canvas')") == []
        assert job_starts(sim) == []
    finally:
        postgresql.execute("DROP ROLE %s" % role)


def test_a_mysql_database_the_user_may_only_read_is_one_line_exit_14(mysql, mysql_user, sim,
                                                                      tmp_path):
    name, password, database = mysql_user
    for host in ("localhost", "127.0.0.1", "%"):
        mysql.execute("GRANT SELECT ON `%s`.* TO '%s'@'%s'" % (database, name, host))
    run = dap("initdb", "--table", "accounts", sim=sim, cwd=tmp_path,
              url=with_password(mysql.url, name, password))
    assert_one_line_error(run, 14, "denied")
    assert table_names(mysql) == [] and job_starts(sim) == []


@pytest.mark.parametrize("scheme, module, extra", [("postgresql", "psycopg", "postgresql"),
                                                   ("mysql", "pymysql", "mysql")])
def test_a_missing_driver_is_one_line_exit_3_naming_the_extra(scheme, module, extra, sim,
                                                               tmp_path):
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / ("%s.py" % module)).write_text(
        "raise ModuleNotFoundError(\"No module named '%s'\", name='%s')\n" % (module, module))
    work = tmp_path / "work"
    work.mkdir()
    url = "%s://dap:%s@127.0.0.1/canvas" % (scheme, new_password())
    env = dap_env(sim, DAP_CONNECTION_STRING=url, PYTHONPATH=str(shim))
    for args in (["initdb", "--table", "accounts"], ["listdb"]):
        run = dap(*args, sim=sim, cwd=work, env=env)
        assert_one_line_error(run, 3, "[%s]" % extra, module)
    assert sim.requests == [] and os.listdir(work) == []


def test_a_sqlite_file_in_a_missing_directory_is_one_line_exit_14(sim, tmp_path):
    url = "sqlite:///%s" % (tmp_path / "missing" / "dap.db")
    run = dap("initdb", "--table", "accounts", sim=sim, cwd=tmp_path, url=url)
    assert_one_line_error(run, 14, "does not exist")
    assert os.listdir(tmp_path) == [] and job_starts(sim) == []


def test_one_table_of_several_failing_is_exit_13_and_the_others_are_whole(
        database, make_simulator, tmp_path):
    sim = make_simulator(rows_per_part=17, fail_table=["users"])
    run = dap("initdb", "--table", "accounts,users,courses", sim=sim, cwd=tmp_path,
              url=database.url)
    assert run.status == 13, run
    assert sorted(rec["table"] for rec in run.json_lines) == ["accounts", "courses"]
    errors = [line for line in run.err_lines if line.startswith("dap: error: ")]
    assert len(errors) == 1 and "canvas.users" in errors[0], run.err
    assert "3 tables: 2 done, 1 failed (users: exit 10)" in run.err
    for table in ("accounts", "courses"):
        assert_replica_equals(database, sim, NS, table)
    assert not database.exists(NS, "users")
    assert [r[1] for r in database.sync_rows()] == ["accounts", "courses"]
    assert "Traceback" not in run.err
