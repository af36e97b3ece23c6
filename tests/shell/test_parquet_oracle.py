"""What a Parquet file from `dap` holds, checked against an oracle that shares no code with
dap_core (#10): every table of both namespaces the simulator serves, snapshot and incremental
(with deletes), expanded and condensed, each file read with pyarrow AND fastparquet.

The oracle: the simulator's records of the same query, fetched as an outside client would
(JSON Lines over HTTP with urllib, tests/simulator/api.py, parsed with `json`), turned into
the values a Parquet file must hold by the explicit rules below, written from the table's
JSON Schema (GET .../schema) as the README documents the output:

Columns, in this order: `meta.ts`; `meta.action` for an incremental (U or D), not in a
snapshot's file (not even as nulls) unless the service sends it (--snapshot-action); then
`key.*` and `value.*` in the schema's property order.  `expanded`: a nested object with
`properties` spreads into dotted columns, recursively; `condensed`: each object nested in
`key`/`value` is one JSON column.  Arrays and free-form objects are always one JSON column.
Every column is a flat top-level column named with the dotted name.

Each column's values and Parquet type (as pyarrow reports it), by its JSON Schema:

- integer (any format, int32 too): the integer; INT64 with no logical type (or INT(64,
  signed)), Arrow int64;
- number: the JSON number as a float64; DOUBLE, Arrow double;
- boolean: the boolean; BOOLEAN, Arrow bool;
- string of format date-time: the instant in UTC, to the microsecond; INT64 with
  Timestamp(isAdjustedToUTC=true, MICROS), Arrow timestamp[us, tz=UTC];
- string (any other format) and enum: the text unchanged; BYTE_ARRAY String, Arrow string;
- array, free-form object, object kept whole (condensed): compact JSON text (separators ","
  and ":", non-ASCII unescaped, keys in the order the service sent them); BYTE_ARRAY String,
  Arrow string.

JSON null, an absent property, and every value.* column of a delete (a record without
`value`) are null, in every type (a float null is null, not NaN); value.* and meta.action
columns are optional.  Rows come in the order of the service's records; the file has as many
rows as the job has records, and the result (`rows`) says so.
"""
from __future__ import annotations

import datetime as dt
import gzip
import json
import re
import urllib.request

import pytest

from dap_core import IncrementalQuery, SnapshotQuery
from fixtures.simulator import QUICK_OPTIONS, Simulator
from tests.parquet_readers import read_both, parquet_types
from tests.simulator.api import Api

from .conftest import connect

pytest.importorskip("fastparquet")  # Python 3.8 has none (tests/conftest.py); pyarrow: the
# test extra has it from 3.9 on, and tests/parquet_readers.py fails without it

UTC = dt.timezone.utc

#: every table the simulator serves (test_the_simulator_serves_these_tables keeps it so)
TABLES = [("canvas", "accounts"), ("canvas", "users"), ("canvas", "courses"),
          ("canvas", "enrollments"), ("canvas", "submissions"), ("canvas_logs", "web_logs")]
KINDS = ("snapshot", "incremental")
MODES = ("expanded", "condensed")

#: enough changes that every table's incremental has updates and deletes (web_logs is
#: insert-only), and small parts, so that every result has several
OPTIONS = dict(QUICK_OPTIONS, changes_per_step=20, rows_per_part=37)
STEPS = 3


# -- the oracle: the schema's rules, in the test's own words --------------------------------

def _kind(node: dict) -> str:
    """integer, number, boolean, timestamp, string, object (fixed shape) or json."""
    kind = node.get("type")
    if kind == "object" and node.get("properties"):
        return "object"
    if kind == "string":
        return "timestamp" if node.get("format") == "date-time" else "string"
    if kind in ("integer", "number", "boolean"):
        return kind
    assert kind in ("array", "object"), node  # the oracle knows no other schema
    return "json"


def oracle_columns(schema: dict, mode: str, action: bool):
    """[(name, path, kind)] of a table's file."""
    props = schema["properties"]
    assert list(props["meta"]["properties"]) == ["ts", "action"], props["meta"]
    out = [("meta.ts", ("meta", "ts"), "timestamp")]
    if action:
        out.append(("meta.action", ("meta", "action"), "string"))

    def spread(node, path, expand):
        for name, sub in node["properties"].items():
            kind = _kind(sub)
            if kind == "object" and expand:
                spread(sub, path + (name,), expand)
            else:
                out.append((".".join(path + (name,)), path + (name,),
                            "json" if kind == "object" else kind))

    spread(props["key"], ("key",), mode == "expanded")
    spread(props["value"], ("value",), mode == "expanded")
    return out


_TIMESTAMP = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?"
                        r"(Z|[+-]\d\d:\d\d)\Z")


def utc_instant(text: str) -> dt.datetime:
    match = _TIMESTAMP.match(text)
    assert match, "the oracle reads no such timestamp: %r" % text
    y, mo, d, h, mi, s, fraction, zone = match.groups()
    at = dt.datetime(int(y), int(mo), int(d), int(h), int(mi), int(s),
                     int((fraction or "0").ljust(6, "0")), tzinfo=UTC)
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        at -= sign * dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    return at


def expected_value(value, kind: str):
    if value is None:
        return None
    if kind == "integer":
        assert type(value) is int, value
        return value
    if kind == "number":
        assert type(value) in (int, float), value
        return float(value)
    if kind == "boolean":
        assert type(value) is bool, value
        return value
    if kind == "timestamp":
        return utc_instant(value)
    if kind == "string":
        assert type(value) is str, value
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def expected_row(record: dict, columns) -> list:
    row = []
    for _, path, kind in columns:
        value = record
        for key in path:  # absent, or under an absent/null object (a delete's value): null
            value = value.get(key) if isinstance(value, dict) else None
        row.append(expected_value(value, kind))
    return row


#: the Parquet type each kind of column must have: (physical, logical types accepted, Arrow)
PARQUET_TYPES = {
    "integer": ("INT64", ({"Type": "None"}, {"Type": "Int", "bitWidth": 64, "isSigned": True}),
                "int64"),
    "number": ("DOUBLE", ({"Type": "None"},), "double"),
    "boolean": ("BOOLEAN", ({"Type": "None"},), "bool"),
    "timestamp": ("INT64", ({"Type": "Timestamp", "isAdjustedToUTC": True,
                             "timeUnit": "microseconds"},), "timestamp[us, tz=UTC]"),
    "string": ("BYTE_ARRAY", ({"Type": "String"},), "string"),
    "json": ("BYTE_ARRAY", ({"Type": "String"},), "string"),
}


def _logical(reported: dict) -> dict:
    """What pyarrow reports, less its bookkeeping about converted types."""
    return {k: v for k, v in reported.items() if not k.endswith("converted_type")}


# -- the simulator's records, fetched by hand ------------------------------------------------

def jsonl_records(api: Api, job: dict) -> list:
    """Every record of a complete job, in the order of its parts and lines (split on
    newlines only: str.splitlines would also split at U+2028 inside a text)."""
    out = []
    for url in api.part_urls(job):
        with urllib.request.urlopen(url, timeout=30) as answer:
            data = gzip.decompress(answer.read())
        out.extend(json.loads(line) for line in data.split(b"\n") if line)
    return out


class World:
    """One simulator whose frontier has moved STEPS steps past `since`; downloads with dap
    and the oracle's records, each made once."""

    def __init__(self, sim: Simulator, where, snapshot_action: bool):
        self.sim = sim
        self.where = where
        self.snapshot_action = snapshot_action
        self.since = sim.frontier
        sim.advance(STEPS)
        self.api = Api(sim)
        self._files = {}
        self._oracle = {}

    def download(self, namespace, table, kind, mode):
        """(result, what the file holds as read by both readers, its Parquet types)."""
        name = (namespace, table, kind, mode)
        if name not in self._files:
            if kind == "snapshot":
                query = SnapshotQuery(namespace, table, format="parquet", mode=mode)
            else:
                query = IncrementalQuery(namespace, table, since=self.since, format="parquet",
                                         mode=mode)
            with connect(self.sim) as dap:
                result = dap.download(dap.run(query), query,
                                      str(self.where / "-".join(name)))
            self._files[name] = (result, read_both(result.path), parquet_types(result.path))
        return self._files[name]

    def oracle(self, namespace, table, kind, metadata):
        """(schema answer, records) of the same query as JSON Lines from the simulator."""
        body = {"format": "jsonl"}
        if kind == "incremental":
            body.update(since=metadata["since"], until=metadata["until"])
        name = (namespace, table, json.dumps(body, sort_keys=True))
        if name not in self._oracle:
            job = self.api.run(namespace, table, body)
            assert job["status"] == "complete", job
            if kind == "snapshot":
                assert job["at"] == metadata["at"], (job, metadata)
            schema = self.api.schema(namespace, table)
            assert schema.status == 200, schema
            self._oracle[name] = (schema.json, jsonl_records(self.api, job))
        return self._oracle[name]


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    """world(snapshot_action=False): the module's simulators, started when first asked for."""
    made = {}

    def world(snapshot_action=False):
        if snapshot_action not in made:
            sim = Simulator(**dict(OPTIONS, snapshot_action=snapshot_action)).start()
            made[snapshot_action] = World(sim, tmp_path_factory.mktemp("oracle"),
                                          snapshot_action)
        return made[snapshot_action]

    yield world
    for each in made.values():
        each.sim.stop()


def check_file(world: World, namespace, table, kind, mode):
    """Every column, type, row and value of dap's file against the oracle; the rows."""
    result, content, types = world.download(namespace, table, kind, mode)
    answer, records = world.oracle(namespace, table, kind, result.metadata)
    assert result.metadata["schema_version"] == answer["version"]
    action = kind == "incremental" or world.snapshot_action
    columns = oracle_columns(answer["schema"], mode, action)
    names = [name for name, _, _ in columns]

    assert content.names == list(types) == names
    if not action:
        assert "meta.action" not in content.names
    for name, _, column_kind in columns:
        physical, logicals, arrow = PARQUET_TYPES[column_kind]
        got = types[name]
        assert (got.physical, got.arrow) == (physical, arrow), (name, column_kind, got)
        assert _logical(got.logical) in logicals, (name, column_kind, got)
        if name.startswith("value.") or name == "meta.action":
            assert got.optional, name

    assert content.num_rows == len(records) == result.rows == sum(content.row_groups)
    assert records, "an empty result shows nothing"
    expected = [expected_row(record, columns) for record in records]
    for index, (record, want) in enumerate(zip(records, expected)):
        for (name, _, _), value, got in zip(columns, want, (content.columns[n][index]
                                                            for n in names)):
            assert type(got) is type(value) and got == value, (
                "%s.%s %s %s row %d, %s: the file holds %r, the service sent %r (%r)"
                % (namespace, table, kind, mode, index, name, got, value, record))
    return columns, records, expected


# -- the tests -------------------------------------------------------------------------------

def test_the_simulator_serves_these_tables(worlds):
    api = worlds().api
    served = [(ns, t) for ns in ("canvas", "canvas_logs") for t in api.tables(ns).json["tables"]]
    assert sorted(served) == sorted(TABLES)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("namespace,table", TABLES, ids=[t for _, t in TABLES])
def test_parquet_file_holds_the_services_records(worlds, namespace, table, kind, mode):
    check_file(worlds(), namespace, table, kind, mode)


@pytest.mark.parametrize("mode", MODES)
def test_parquet_of_an_empty_result_has_every_typed_column_and_no_rows(worlds, tmp_path, mode):
    """An incremental with no change (since the frontier): the same columns and types."""
    world = worlds()
    query = IncrementalQuery("canvas", "submissions", since=world.sim.frontier,
                             format="parquet", mode=mode)
    with connect(world.sim) as dap:
        result = dap.download(dap.run(query), query, str(tmp_path))
    content, types = read_both(result.path), parquet_types(result.path)
    schema = world.api.schema("canvas", "submissions").json["schema"]
    columns = oracle_columns(schema, mode, action=True)
    assert content.names == list(types) == [name for name, _, _ in columns]
    for name, _, column_kind in columns:
        physical, logicals, arrow = PARQUET_TYPES[column_kind]
        got = types[name]
        assert (got.physical, got.arrow) == (physical, arrow) and _logical(got.logical) in \
            logicals, (name, got)
    assert content.num_rows == result.rows == 0


def test_parquet_snapshot_with_meta_action_when_the_service_sends_it(worlds):
    """--snapshot-action: the snapshot's records carry meta.action U, and so does its file."""
    for table in ("users", "submissions"):
        columns, records, expected = check_file(worlds(snapshot_action=True), "canvas", table,
                                                "snapshot", "expanded")
        assert [c[0] for c in columns][:2] == ["meta.ts", "meta.action"]
        assert {record["meta"]["action"] for record in records} == {"U"}


def test_the_oracle_is_the_simulators_state(worlds):
    """The oracle's snapshot records are the simulator's own state at the frontier (from
    its data generator, not from an encoder): the oracle is what the service holds."""
    world = worlds()
    for namespace, table in TABLES:
        result, _, _ = world.download(namespace, table, "snapshot", "expanded")
        _, records = world.oracle(namespace, table, "snapshot", result.metadata)
        by_key = {json.dumps(r["key"], sort_keys=True, separators=(",", ":")): r
                  for r in records}
        assert len(by_key) == len(records)
        assert by_key == world.sim.current_state(namespace, table), (namespace, table)


def test_parquet_files_cover_every_kind_of_value(worlds):
    """The comparisons above saw everything the rules speak of: of every kind a value and a
    null, both booleans, fractions, deletes, texts that break naive encoders, JSON objects
    and arrays, nested objects spread and kept whole."""
    world = worlds()
    seen = set()
    for namespace, table in TABLES:
        for kind in KINDS:
            for mode in MODES:
                columns, records, expected = check_file(world, namespace, table, kind, mode)
                actions = {r["meta"].get("action") for r in records}
                seen.update("action %s %s" % (kind, a) for a in actions)
                for index, (name, _, column_kind) in enumerate(columns):
                    values = [row[index] for row in expected]
                    for value in values:
                        seen.add("%s %s" % (column_kind, "null" if value is None else "value"))
                        if column_kind == "boolean" and value is not None:
                            seen.add("boolean %s" % value)
                        if column_kind == "number" and value is not None \
                                and value != int(value):
                            seen.add("number fraction")
                        if column_kind == "string" and value is not None:
                            seen.update(feature for feature, test in TEXT_FEATURES.items()
                                        if test(value))
                        if column_kind == "json" and value is not None:
                            seen.add("json " + value[0])
                            seen.update("json " + feature for feature, test
                                        in TEXT_FEATURES.items() if test(value))
                        if column_kind == "timestamp" and value is not None \
                                and value.microsecond:
                            seen.add("timestamp fraction")
                    if mode == "expanded" and name.count(".") >= 3:
                        seen.add("nested object spread")
                    if mode == "condensed" and column_kind == "json" \
                            and any(v and v.startswith("{") for v in values) \
                            and "properties" in _node(world, namespace, table, name):
                        seen.add("nested object whole")
    want = {"%s %s" % (k, n) for k in PARQUET_TYPES for n in ("null", "value")}
    want |= {"boolean True", "boolean False", "number fraction", "timestamp fraction",
             "json {", "json [", "nested object spread", "nested object whole",
             "action snapshot None", "action incremental U", "action incremental D"}
    want |= set(TEXT_FEATURES) | {"json text non-ASCII", "json text backslash"}
    assert want <= seen, sorted(want - seen)


TEXT_FEATURES = {
    "text empty": lambda t: t == "",
    "text tab": lambda t: "\t" in t,
    "text newline": lambda t: "\n" in t,
    "text carriage return": lambda t: "\r" in t,
    "text backslash": lambda t: "\\" in t,
    "text quote": lambda t: '"' in t,
    "text control character": lambda t: any(ord(c) < 0x20 and c not in "\t\n\r" for c in t),
    "text non-ASCII": lambda t: any(ord(c) > 0x7F for c in t),
    "text outside the BMP": lambda t: any(ord(c) > 0xFFFF for c in t),
    "text NULL": lambda t: t in ("NULL", "\\N"),
}


def _node(world, namespace, table, name):
    schema = world.api.schema(namespace, table).json["schema"]
    node = schema
    for part in name.split("."):
        node = node["properties"][part]
    return node
