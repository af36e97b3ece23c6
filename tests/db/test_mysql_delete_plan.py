"""MySQL / MariaDB: a sync's DELETE reads the staging table first and finds each key by the
primary key, whatever InnoDB's statistics say.

Right after initdb they may still count the table as empty; the optimizer then put the table
first and scanned the whole unindexed staging table once per row of it (bench/db.py found a
syncdb of 4,500 changes into 20,000 rows taking 75 s; a million rows would take hours).
"""
from __future__ import annotations

from dap_core.dbschema import table_def
from dap_core.dburl import parse_database_url
from dap_core.dialects import NEW_SUFFIX, staging_layout
from dap_core.shell.database import connect

SCHEMA = {"version": 1, "schema": {
    "type": "object", "additionalProperties": False, "required": ["key", "meta"],
    "properties": {
        "key": {"type": "object", "additionalProperties": False, "required": ["id"],
                "properties": {"id": {"type": "integer", "format": "int64"}}},
        "value": {"type": "object", "additionalProperties": False, "required": [],
                  "properties": {"note": {"type": "string"}}},
        "meta": {"type": "object", "additionalProperties": False, "required": ["ts"],
                 "properties": {"ts": {"type": "string", "format": "date-time"},
                                "action": {"type": "string", "enum": ["U", "D"]}}}}}}


def test_the_delete_of_a_sync_starts_from_staging_even_when_statistics_say_empty(mysql):
    tdef = table_def("canvas", "plans", SCHEMA)
    with connect(parse_database_url(mysql.url)) as db:
        # as initdb does: built beside under another name, loaded, renamed into place; with
        # the statistics of the empty table kept (the background recount may come late)
        db.execute_all(db.dialect.create_table(tdef, NEW_SUFFIX))
        new = db.dialect.qualified("canvas", "plans", NEW_SUFFIX)
        db.execute("ALTER TABLE %s STATS_AUTO_RECALC=0" % new)
        cur = db.conn.cursor()
        cur.executemany("INSERT INTO %s (`id`, `note`) VALUES (%%s, 'x')" % new,
                        [(i,) for i in range(1, 3001)])
        cur.close()
        db.execute_all(db.dialect.swap_in(tdef, None))
        db.begin()
        holder = {}

        def on_header(header):
            holder["layout"] = staging_layout(tdef, header)
            return holder["layout"]

        loader = db.loader(on_header, "test")
        loader.begin_part(0)
        loader.feed(b"meta.ts\tmeta.action\tkey.id\tvalue.note\n" + b"".join(
            b"2024-01-01T00:00:00Z\tD\t%d\t\\N\n" % i for i in range(1, 3000, 3)))
        loader.end_part()
        delete = db.dialect.delete_from_staging(tdef, holder["layout"])
        plan = db.query("EXPLAIN " + delete)
        db.rollback()
    assert [row[2] for row in plan] == ["s", "t"], plan
    assert plan[1][3] == "eq_ref", plan  # each key found by the primary key
