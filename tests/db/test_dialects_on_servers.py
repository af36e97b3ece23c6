"""The SQL of each dialect, run on the real servers over generated schemas and rows: every
schema the generator can make yields DDL the server accepts; a batch of rows streamed
through the loader lands with every key; an upsert of a batch then the delete of its keys
restores the table exactly."""
from __future__ import annotations

import json
import math
from datetime import datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dap_core.dbschema import table_def
from dap_core.dburl import parse_database_url
from dap_core.dialects import staging_layout
from dap_core.shell.database import connect

from tests.core.test_dbschema import schemas

TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
               max_size=30)
JSON_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), TEXT)
BASE = datetime(1970, 1, 1)


def _value(kind, column, draw):
    if kind == "int64":
        return str(draw(st.integers(-2**63, 2**63 - 1)))
    if kind == "int32":
        return str(draw(st.integers(-2**31, 2**31 - 1)))
    if kind == "float":
        value = draw(st.floats(allow_nan=False, allow_infinity=False, width=64))
        return json.dumps(value)
    if kind == "boolean":
        return draw(st.sampled_from(["true", "false"]))
    if kind == "timestamp":
        moment = BASE + timedelta(milliseconds=draw(st.integers(0, 4102444800000)))
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (moment.microsecond // 1000)
    if kind == "enum":
        return draw(st.sampled_from(column.values))
    if kind == "uuid":
        return str(draw(st.uuids()))
    if kind == "string_array":
        return json.dumps(draw(st.lists(TEXT, max_size=3)), ensure_ascii=False)
    if kind == "json":
        return json.dumps(draw(st.dictionaries(TEXT, JSON_SCALAR, max_size=3)), ensure_ascii=False)
    return draw(TEXT)


def _copy_text(value):
    if value is None:
        return "\\N"
    return (value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
            .replace("\r", "\\r"))


@st.composite
def batches(draw):
    schema, *_ = draw(schemas())
    tdef = table_def("dapprop", "t", {"schema": schema, "version": 1})
    count = draw(st.integers(0, 12))
    keys = draw(st.lists(st.tuples(*[st.integers(-2**63, 2**63 - 1)] * len(tdef.key)),
                         min_size=count * 2, max_size=count * 2, unique=True))
    rows = []
    for key in keys:
        row = [str(k) for k in key]
        for column in tdef.values:
            if column.nullable and draw(st.integers(0, 4)) == 0:
                row.append(None)
            else:
                row.append(_value(column.kind, column, draw))
        rows.append(row)
    return tdef, rows[:count], rows[count:]


def _tsv(tdef, rows, action):
    header = ["meta.ts", "meta.action"] + [c.source for c in tdef.columns]
    lines = ["\t".join(header)]
    for row in rows:
        lines.append("\t".join(["2024-01-01T00:00:00.000Z", action] + [_copy_text(v) for v in row]))
    return ("\n".join(lines) + "\n").encode("utf-8")


def _apply(db, tdef, data, upsert=True):
    """Stream `data` through the dialect's loader in two uneven chunks, then merge it."""
    db.begin()
    holder = {}

    def on_header(header):
        holder["layout"] = staging_layout(tdef, header)
        return holder["layout"]

    loader = db.loader(on_header, "test")
    loader.begin_part(0)
    cut = len(data) // 3
    loader.feed(data[:cut])
    loader.feed(data[cut:])
    loader.end_part()
    layout = holder["layout"]
    delete = db.dialect.delete_from_staging(tdef, layout)
    if delete:
        db.execute(delete)
    db.execute(db.dialect.insert_from_staging(tdef, layout, "", upsert=upsert))
    db.execute_all(db.dialect.drop_staging())
    db.commit()
    return loader.rows


def _contents(db, tdef):
    rows = db.query("SELECT * FROM %s" % db.dialect.qualified(tdef.namespace, tdef.table))
    return sorted(json.dumps([_plain(v) for v in r], default=str, sort_keys=True) for r in rows)


def _plain(value):
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return value


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(batch=batches())
def test_generated_tables_load_and_an_upsert_then_delete_restores_them(database, batch):
    tdef, first, second = batch
    with connect(parse_database_url(database.url)) as db:
        db.execute_all(db.dialect.drop_table(tdef))
        db.execute_all(db.dialect.create_table(tdef))
        try:
            assert _apply(db, tdef, _tsv(tdef, first, "U"), upsert=False) == len(first)
            before = _contents(db, tdef)
            assert len(before) == len(first)
            assert _apply(db, tdef, _tsv(tdef, second, "U")) == len(second)
            assert len(_contents(db, tdef)) == len(first) + len(second)
            # the same rows again change nothing (an upsert of equal values)
            _apply(db, tdef, _tsv(tdef, second, "U"))
            assert len(_contents(db, tdef)) == len(first) + len(second)
            _apply(db, tdef, _tsv(tdef, second, "D"))
            assert _contents(db, tdef) == before
        finally:
            db.execute_all(db.dialect.drop_table(tdef))


def test_arrays_of_strings_are_text_arrays_in_order_on_postgresql(postgresql):
    schema = {"type": "object", "properties": {
        "key": {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]},
        "value": {"type": "object", "properties": {
            "tags": {"type": "array", "items": {"type": "string"}}}, "required": ["tags"]}}}
    tdef = table_def("dapprop", "arrays", {"schema": schema, "version": 1})
    tags = [["zeta", "alpha", "🎓 tab\there", "\\back", ""], [], ["only"]]
    rows = [[str(i), json.dumps(t, ensure_ascii=False)] for i, t in enumerate(tags)]
    with connect(parse_database_url(postgresql.url)) as db:
        db.execute_all(db.dialect.create_table(tdef))
        _apply(db, tdef, _tsv(tdef, rows, "U"), upsert=False)
    assert postgresql.query('SELECT tags FROM dapprop.arrays ORDER BY id') == [(t,) for t in tags]
