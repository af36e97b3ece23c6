"""The official client (instructure-dap-client) and dap continue each other's replicas on
PostgreSQL and MariaDB, run for real against the simulator: its initdb then dap's syncdb,
dap's initdb then its syncdb then dap's again; every table equals the simulator's state.

The official client lives in its own virtualenv (`make official-client` makes
`.venv-official`; or DAP_OFFICIAL_CLIENT names its `dap` executable). Under CI it must be
there (`.ci/run` makes it); elsewhere these tests are skipped without it, with the reason.
Its tables here are those it can load: it fails on the simulator's free-form objects
(accounts, users, submissions: "name 'JsonType' is not defined").
"""
from __future__ import annotations

import os
import pathlib
import subprocess

import pytest

from dap_core import Replica
from tests.shell.conftest import connect

from .conftest import assert_replica_equals

ROOT = pathlib.Path(__file__).resolve().parents[2]
TABLES = [("canvas", "courses"), ("canvas", "enrollments"), ("canvas_logs", "web_logs")]


def official_dap() -> str:
    path = os.environ.get("DAP_OFFICIAL_CLIENT") or str(ROOT / ".venv-official" / "bin" / "dap")
    if not os.access(path, os.X_OK):
        why = "the official client is not installed at %s (make official-client)" % path
        if os.environ.get("CI"):
            pytest.fail(why + "; .ci/run installs it")
        pytest.skip(why)
    return path


def run_official(sim, url: str, command: str, namespace: str, table: str) -> None:
    done = subprocess.run(
        [official_dap(), "--no-tracking", "--non-interactive", "--loglevel", "warning",
         "--base-url", sim.base_url, "--client-id", sim.client_id,
         "--client-secret", sim.client_secret, command, "--namespace", namespace,
         "--table", table, "--connection-string", url],
        capture_output=True, timeout=300, env={k: v for k, v in os.environ.items()
                                               if not k.startswith("DAP_")})
    output = (done.stdout + done.stderr).decode("utf-8", "replace")
    assert done.returncode == 0 and " ERROR " not in output, output[-3000:]


@pytest.fixture(params=["postgresql", "mysql"])
def server(request):
    return request.getfixturevalue(request.param)


@pytest.fixture
def sim(make_simulator):
    return make_simulator(rows_per_part=41, changes_per_step=15)


def test_dap_continues_what_the_official_client_made(server, sim):
    for namespace, table in TABLES:
        run_official(sim, server.url, "initdb", namespace, table)
    sim.advance(3)
    with connect(sim) as dap, Replica(dap, server.url) as replica:
        for namespace, table in TABLES:
            result = replica.sync(namespace, table)
            assert result.action == "sync" and result.rows > 0
    for namespace, table in TABLES:
        # the official client's MariaDB datetimes hold whole seconds: what they can hold
        assert_replica_equals(server, sim, namespace, table,
                              whole_seconds=server.dialect == "mysql")


def test_the_official_client_continues_what_dap_made(server, sim):
    with connect(sim) as dap, Replica(dap, server.url) as replica:
        for namespace, table in TABLES:
            replica.init(namespace, table)
    sim.advance(2)
    for namespace, table in TABLES:
        run_official(sim, server.url, "syncdb", namespace, table)
    # the official client writes MariaDB datetimes without their fraction, whatever the
    # column holds (its known loss, ../shared/dap-db.md); PostgreSQL keeps every digit
    mariadb = server.dialect == "mysql"
    for namespace, table in TABLES:
        assert_replica_equals(server, sim, namespace, table, whole_seconds=mariadb)
    sim.advance(2)
    with connect(sim) as dap, Replica(dap, server.url) as replica:
        for namespace, table in TABLES:
            assert replica.sync(namespace, table).action == "sync"
    for namespace, table in TABLES:
        assert_replica_equals(server, sim, namespace, table, whole_seconds=mariadb)
