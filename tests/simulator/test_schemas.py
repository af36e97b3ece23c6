"""The served schemas are ones a replicating client can rely on: every object of fixed
properties lists them all (`additionalProperties: false`) with its `required` ones, free-form
objects say so (`additionalProperties: true`), and the records served follow them exactly."""
from __future__ import annotations

import re
from typing import Iterator, List, Tuple

import pytest

from .api import Api

TABLES = [("canvas", t) for t in ("accounts", "users", "courses", "enrollments", "submissions")] \
    + [("canvas_logs", "web_logs")]

ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


def objects(schema: dict, path: str = "$") -> Iterator[Tuple[str, dict]]:
    """Every node of type object in a JSON Schema, with where it is (walks properties and
    array items)."""
    if schema.get("type") == "object":
        yield path, schema
        for name, sub in schema.get("properties", {}).items():
            yield from objects(sub, f"{path}.{name}")
    elif schema.get("type") == "array":
        yield from objects(schema["items"], f"{path}[]")


def violations(value, schema: dict, path: str = "$") -> List[str]:
    """What in `value` the (draft-07 subset the API uses) `schema` does not allow."""
    t = schema.get("type")
    checks = {"object": dict, "array": list, "string": str, "boolean": bool}
    if t in checks and not isinstance(value, checks[t]):
        return [f"{path}: {value!r} is not of type {t}"]
    if t == "integer" and (isinstance(value, bool) or not isinstance(value, int)):
        return [f"{path}: {value!r} is not an integer"]
    if t == "number" and (isinstance(value, bool) or not isinstance(value, (int, float))):
        return [f"{path}: {value!r} is not a number"]
    out = []
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{path}: {value!r} is not one of {schema['enum']}")
    if schema.get("format") == "date-time" and not ISO_UTC.match(value):
        out.append(f"{path}: {value!r} is not a date-time")
    if t == "object":
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                out.append(f"{path}: lacks required {name!r}")
        for name, sub in value.items():
            if name in props:
                out += violations(sub, props[name], f"{path}.{name}")
            elif schema.get("additionalProperties") is not True:
                out.append(f"{path}: {name!r} is not a property of the schema")
    if t == "array":
        for i, item in enumerate(value):
            out += violations(item, schema["items"], f"{path}[{i}]")
    return out


@pytest.mark.parametrize("namespace,table", TABLES)
def test_every_object_of_fixed_properties_is_closed_and_says_what_it_requires(
        simulator, namespace, table):
    schema = Api(simulator).schema(namespace, table).json["schema"]
    found = list(objects(schema))
    assert {"$", "$.key", "$.value", "$.meta"} <= {p for p, _ in found}
    for path, node in found:
        if "properties" in node:
            assert node.get("additionalProperties") is False, path
            assert isinstance(node.get("required"), list), path
            assert set(node["required"]) <= set(node["properties"]), path
            assert len(set(node["required"])) == len(node["required"]), path
        else:
            assert node.get("additionalProperties") is True, f"{path}: free-form"
    assert schema["required"] == ["key", "meta"]  # a delete has no value
    assert schema["properties"]["meta"]["required"] == ["ts"]


def test_both_kinds_of_object_occur(simulator):
    api = Api(simulator)
    closed = free = 0
    for namespace, table in TABLES:
        for path, node in objects(api.schema(namespace, table).json["schema"]):
            if path.count(".") >= 2:  # below key, value and meta
                closed += "properties" in node
                free += "properties" not in node
    assert closed >= 4 and free >= 3


@pytest.mark.parametrize("namespace,table", TABLES)
def test_the_records_follow_their_schema_exactly(make_simulator, namespace, table):
    sim = make_simulator(changes_per_step=20)
    api = Api(sim)
    since = sim.frontier
    sim.advance(3)
    schema = api.schema(namespace, table).json["schema"]
    snapshot = api.records(api.run(namespace, table, {"format": "jsonl"}))
    incremental = api.records(api.run(namespace, table, {"format": "jsonl", "since": since}))
    assert snapshot and incremental
    problems = [p for r in snapshot + incremental for p in violations(r, schema)]
    assert problems == []
    # the validator is not blind: what the schema rules out is caught
    record = next(r for r in snapshot if "value" in r)
    assert violations(dict(record, value=dict(record["value"], not_in_schema=1)), schema)
    assert violations(dict(record, meta={}), schema)
