"""MySQL's parts go through a named pipe (LOAD DATA LOCAL INFILE); once the server has opened
it, its name is gone from the temporary directory, so that a run killed mid-load leaves
nothing behind there: every part's pipe is nameless while its rows flow."""
from __future__ import annotations

import os
import tempfile

from dap_core import Replica
from dap_core.shell import database
from tests.shell.conftest import connect

from .conftest import assert_replica_equals


def test_a_parts_pipe_has_no_name_while_its_rows_flow(mysql, make_simulator, monkeypatch,
                                                      tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where mkdtemp makes the pipe
    seen = []
    real_body = database.PipeLoader._body

    def body(self, data):
        seen.append((os.path.exists(self._path), sorted(os.listdir(tmp_path))))
        real_body(self, data)

    monkeypatch.setattr(database.PipeLoader, "_body", body)
    sim = make_simulator(rows_per_part=37, changes_per_step=25)
    with connect(sim) as dap, Replica(dap, mysql.url) as replica:
        replica.init("canvas", "users")
        sim.advance(3)
        assert replica.sync("canvas", "users").rows > 0
    assert seen, "no part went through a pipe"
    assert all(named is False and listed == [] for named, listed in seen), seen[:3]
    assert os.listdir(tmp_path) == []
    assert_replica_equals(mysql, sim, "canvas", "users")
