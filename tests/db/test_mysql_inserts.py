"""A MySQL server that refuses LOAD DATA LOCAL INFILE still gets every row: dap falls back to
multi-row INSERTs (decoded from the TSV in Python) into the same staging table."""
from __future__ import annotations

import pytest

from dap_core import Replica
from dap_core.shell import database
from tests.shell.conftest import connect

from .conftest import assert_replica_equals


@pytest.fixture
def refused_local_infile(monkeypatch):
    """Every MySQL connection dap opens behaves as on a server with local_infile=OFF (the
    server's own setting is global: changing it would touch other tests' runs)."""
    real = database.MySQLDatabase.__init__
    opened = []

    def init(self, url):
        real(self, url)
        self.local_infile = False
        opened.append(self)

    monkeypatch.setattr(database.MySQLDatabase, "__init__", init)
    return opened


def test_without_local_infile_rows_load_by_inserts(mysql, make_simulator, refused_local_infile):
    sim = make_simulator(rows_per_part=37, changes_per_step=25)
    with connect(sim) as dap, Replica(dap, mysql.url) as replica:
        replica.init("canvas", "users")
        replica.init("canvas_logs", "web_logs")
        sim.advance(3)
        assert replica.sync("canvas", "users").rows > 0
        replica.sync("canvas_logs", "web_logs")
    assert refused_local_infile and not any(db.local_infile for db in refused_local_infile)
    assert_replica_equals(mysql, sim, "canvas", "users")
    assert_replica_equals(mysql, sim, "canvas_logs", "web_logs")
