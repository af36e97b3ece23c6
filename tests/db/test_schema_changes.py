"""A table whose schema gains a column and an enum value mid-chain is followed in place on
every database; the stored schema and version move with the data."""
from __future__ import annotations

import json

import pytest

from dap_core import Replica
from tests.shell.conftest import connect

from .conftest import assert_replica_equals

EVOLVING = ("canvas", "enrollments")  # its first enum value property is `type`


@pytest.fixture
def sim(make_simulator):
    # the frontier starts at step 3; the schema changes at step 5
    return make_simulator(rows_per_part=53, changes_per_step=40, initial_steps=3,
                          evolve_schema={"canvas.enrollments": 5})


def test_a_new_column_and_enum_value_are_added_in_place(database, sim):
    namespace, table = EVOLVING
    before = sim.service.schema(namespace, table)
    with connect(sim) as dap, Replica(dap, database.url) as replica:
        first = replica.init(namespace, table)
        assert first.schema_version == before["version"]
        assert "sim_added_note" not in database.rows(namespace, table)[0]
        sim.advance(4)  # past step 5: new records carry the new column and enum value
        after = sim.service.schema(namespace, table)
        assert after["version"] == before["version"] + 1
        result = replica.sync(namespace, table)
        assert result.schema_changed and result.schema_version == after["version"]
        assert_replica_equals(database, sim, namespace, table)
        rows = database.rows(namespace, table)
        assert any(r["sim_added_note"] is not None for r in rows)
        assert any(r["type"] == "sim_new_state" for r in rows)
        # the bookkeeping row holds the new schema and version
        stored = database.query("SELECT schema_version, schema_description FROM %s" %
                                database.sync_table())
        assert stored[0][0] == after["version"]
        assert json.loads(stored[0][1]) == after["schema"]
        sim.advance(2)
        again = replica.sync(namespace, table)
        assert not again.schema_changed
    assert_replica_equals(database, sim, namespace, table)


def test_the_new_enum_value_is_a_value_of_the_database_type(postgresql, sim):
    namespace, table = EVOLVING
    with connect(sim) as dap, Replica(dap, postgresql.url) as replica:
        replica.init(namespace, table)
        sim.advance(4)
        replica.sync(namespace, table)
    labels = [r[0] for r in postgresql.query(
        "SELECT e.enumlabel FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid "
        "WHERE t.typname = 'enrollments__type' ORDER BY e.enumsortorder")]
    assert labels[-1] == "sim_new_state" and len(labels) == len(set(labels))
