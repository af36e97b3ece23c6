"""Several tables to stdout can be told apart (#12): each JSON Lines record names its table
in a top-level "table" field; one table's output is unchanged; schemas of several tables
are JSON Lines too."""
from __future__ import annotations

import json

from .conftest import run_dap


def test_records_of_several_tables_name_their_table_and_one_table_is_unchanged(sim):
    both = run_dap("snapshot", "--table", "accounts,users", "--output", "-", sim=sim)
    assert both.status == 0, both
    records = both.json_lines
    tables = [r.pop("table") for r in records]
    assert set(tables) == {"canvas.accounts", "canvas.users"}
    changes = sum(1 for a, b in zip(tables, tables[1:]) if a != b)
    assert changes == 1  # each table's records together (whichever table came first)
    alone = run_dap("snapshot", "--table", "accounts", "--output", "-", sim=sim)
    assert alone.status == 0 and all("table" not in r for r in alone.json_lines)
    assert [r for r, t in zip(records, tables) if t == "canvas.accounts"] == alone.json_lines


def test_schemas_of_several_tables_to_stdout_are_json_lines(sim):
    done = run_dap("schema", "--table", "accounts,users", "--output", "-", sim=sim)
    assert done.status == 0, done
    lines = done.text.splitlines()
    assert len(lines) == 2
    schemas = [json.loads(line) for line in lines]
    assert [s["table"] for s in schemas] == ["canvas.accounts", "canvas.users"]
    assert all("schema" in s and "version" in s for s in schemas)
    one = run_dap("schema", "--table", "accounts", "--output", "-", sim=sim)
    assert json.loads(one.text) == {k: v for k, v in schemas[0].items() if k != "table"}
