"""The columns a table's schema implies: their names, order and types in both modes, snapshot
and incremental layouts, refs and null alternatives resolved, and the header rows of a
result with no parts."""
import csv
import io
import sys

import pytest
from hypothesis import given, strategies as st

from dap_core.columns import Column, columns_from_schema, csv_header, tsv_header
from dap_core.copytext import decode_field
from dap_core.errors import UnexpectedAnswer

SCHEMA = {"type": "object", "properties": {
    "key": {"type": "object", "properties": {"id": {"type": "integer", "format": "int64"}},
            "required": ["id"]},
    "value": {"type": "object", "properties": {
        "name": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"},
        "workflow_state": {"type": "string", "enum": ["active", "deleted"]},
        "score": {"type": "number"},
        "is_public": {"type": "boolean"},
        "attachment": {"type": "object", "properties": {"id": {"type": "integer"},
                                                        "filename": {"type": "string"}}},
        "tags": {"type": "array", "items": {"type": "string"}},
        "settings": {"type": "object"}}, "required": ["name"]},
    "meta": {"type": "object", "properties": {
        "ts": {"type": "string", "format": "date-time"},
        "action": {"type": "string", "enum": ["U", "D"]}}, "required": ["ts"]}}}

EXPANDED = ["meta.ts", "meta.action", "key.id", "value.name", "value.created_at",
            "value.workflow_state", "value.score", "value.is_public", "value.attachment.id",
            "value.attachment.filename", "value.tags", "value.settings"]

def names(columns):
    return [c.name for c in columns]


def test_expanded_layout_of_the_simulator_schema():
    columns = columns_from_schema(SCHEMA)
    assert names(columns) == EXPANDED
    types = {c.name: c.type for c in columns}
    assert types["meta.ts"] == "timestamp" and types["key.id"] == "integer"
    assert types["value.score"] == "number" and types["value.is_public"] == "boolean"
    assert types["value.workflow_state"] == "string" and types["value.tags"] == "json"
    assert types["value.settings"] == "json" and types["value.attachment.id"] == "integer"
    assert columns[2] == Column("key.id", ("key", "id"), "integer", False)


def test_a_snapshots_layout_has_no_meta_action():
    """DAP's snapshots carry meta.ts only (their CSV/TSV header has no meta.action), though
    the schema describes meta.action for incrementals."""
    for mode in ("expanded", "condensed"):
        full = columns_from_schema(SCHEMA, mode)
        snapshot = columns_from_schema(SCHEMA, mode, action=False)
        assert names(snapshot) == [n for n in names(full) if n != "meta.action"]
    assert names(columns_from_schema(SCHEMA, action=False))[:2] == ["meta.ts", "key.id"]
    assert csv_header(columns_from_schema(SCHEMA, action=False)) == \
        ",".join(n for n in EXPANDED if n != "meta.action") + "\n"
    no_meta = {"properties": {"key": {"properties": {"id": {"type": "integer"}}}}}
    assert names(columns_from_schema(no_meta, action=False)) == ["meta.ts", "key.id"]
    assert names(columns_from_schema(no_meta)) == ["meta.ts", "meta.action", "key.id"]


def test_condensed_layout_keeps_nested_objects_as_one_json_column():
    columns = columns_from_schema({"schema": SCHEMA, "version": 2}, "condensed")
    assert names(columns) == EXPANDED[:8] + ["value.attachment", "value.tags", "value.settings"]
    assert columns[8].type == "json"


def test_nullable_types_null_branches_and_refs_are_understood():
    schema = {"type": "object", "definitions": {"Id": {"type": "integer"}},
              "$defs": {"Att": {"type": "object",
                                "properties": {"url": {"type": ["string", "null"]}}}},
              "properties": {
                  "key": {"type": "object", "properties": {"id": {"$ref": "#/definitions/Id"}},
                          "required": ["id"]},
                  "value": {"type": "object", "properties": {
                      "when": {"oneOf": [{"type": "null"},
                                         {"type": "string", "format": "date-time"}]},
                      "n": {"anyOf": [{"type": "number"}, {"type": "null"}]},
                      "att": {"$ref": "#/$defs/Att"},
                      "mixed": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
                      "count": {"type": ["integer", "null"]}}}}}
    columns = {c.name: c for c in columns_from_schema(schema)}
    assert columns["key.id"].type == "integer"
    assert columns["value.when"].type == "timestamp" and columns["value.when"].nullable
    assert columns["value.n"].type == "number"
    assert columns["value.att.url"].type == "string"
    assert columns["value.mixed"].type == "json"
    assert columns["value.count"].type == "integer"
    assert list(columns)[:2] == ["meta.ts", "meta.action"]  # present though the schema lacks meta


def test_a_recursive_ref_becomes_a_json_column():
    schema = {"definitions": {"Node": {"type": "object", "properties": {
        "label": {"type": "string"}, "child": {"$ref": "#/definitions/Node"}}}},
        "properties": {"key": {"properties": {"id": {"type": "string"}}},
                       "value": {"properties": {"tree": {"$ref": "#/definitions/Node"}}}}}
    assert names(columns_from_schema(schema))[2:] == [
        "key.id", "value.tree.label", "value.tree.child"]


@pytest.mark.parametrize("schema", [[], {"type": "object"},
                                    {"properties": {"key": {"$ref": "#/nowhere"}}},
                                    {"properties": {"key": {"$ref": "http://x/y"}}}])
def test_an_unusable_schema_is_an_unexpected_answer(schema):
    with pytest.raises(UnexpectedAnswer):
        columns_from_schema(schema)


#: the standard library's csv reads NUL from Python 3.11 on (before, "line contains NUL")
CSV_READS_NUL = sys.version_info >= (3, 11)


def test_the_header_rows_name_the_columns_in_order():
    columns = columns_from_schema(SCHEMA)
    assert csv_header(columns) == ",".join(EXPANDED) + "\n"
    assert tsv_header(columns) == "\t".join(EXPANDED) + "\n"


@given(st.lists(st.text(st.characters(blacklist_characters=".", blacklist_categories=("Cs",)),
                        min_size=1), min_size=1, max_size=5))
def test_headers_round_trip(labels):
    columns = [Column(label, (label,), "string") for label in labels]
    if CSV_READS_NUL or not any("\x00" in label for label in labels):
        assert next(csv.reader(io.StringIO(csv_header(columns), newline=""))) == labels
    text = tsv_header(columns)
    assert text.endswith("\n") and "\n" not in text[:-1]
    assert [decode_field(f) for f in text[:-1].split("\t")] == labels
