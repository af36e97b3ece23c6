"""The replicated table decided from DAP's JSON Schema, and the schema changes that apply
in place: properties over generated schemas (hypothesis)."""
from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dap_core import errors
from dap_core.dbschema import schema_change, table_def

NAMES = st.text(string.ascii_lowercase + "_", min_size=1, max_size=12).filter(
    lambda n: n[0] != "_")

# (JSON Schema of a property, the kind the layout of ../shared/dap-db.md gives it)
PROPERTY_TYPES = [
    ({"type": "integer", "format": "int64"}, "int64"),
    ({"type": "integer"}, "int64"),
    ({"type": "integer", "format": "int32"}, "int32"),
    ({"type": "number"}, "float"),
    ({"type": "boolean"}, "boolean"),
    ({"type": "string"}, "string"),
    ({"type": "string", "maxLength": 255}, "string"),
    ({"type": "string", "format": "date-time"}, "timestamp"),
    ({"type": "string", "format": "uuid"}, "uuid"),
    ({"type": "string", "enum": ["a", "b"]}, "enum"),
    ({"type": "string", "enum": ["only"]}, "enum"),
    ({"type": "array", "items": {"type": "string"}}, "string_array"),
    ({"type": "array", "items": {"type": "integer"}}, "json"),
    ({"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"],
      "additionalProperties": False}, "json"),
    ({"type": "object", "additionalProperties": True}, "json"),
]

PROPERTY = st.sampled_from(PROPERTY_TYPES)


@st.composite
def schemas(draw, min_values=0):
    key_names = draw(st.lists(NAMES, min_size=1, max_size=2, unique=True))
    value_names = draw(st.lists(NAMES.filter(lambda n: n not in key_names),
                                min_size=min_values, max_size=8, unique=True))
    keys = {n: {"type": "integer", "format": "int64"} for n in key_names}
    values, kinds, required = {}, {}, []
    for name in value_names:
        node, kind = draw(PROPERTY)
        values[name] = dict(node)
        kinds[name] = kind
        if draw(st.booleans()):
            required.append(name)
    schema = {"type": "object", "properties": {
        "key": {"type": "object", "properties": keys, "required": key_names,
                "additionalProperties": False},
        "value": {"type": "object", "properties": values, "required": required,
                  "additionalProperties": False},
        "meta": {"type": "object", "properties": {"ts": {"type": "string",
                                                         "format": "date-time"}}}},
        "required": ["key", "meta"]}
    return schema, key_names, value_names, kinds, required


@given(schemas())
def test_columns_are_the_keys_then_the_values_in_schema_order_with_their_kinds(drawn):
    schema, keys, values, kinds, required = drawn
    tdef = table_def("canvas", "t", {"schema": schema, "version": 3})
    assert [c.name for c in tdef.columns] == keys + values
    assert [c.source for c in tdef.columns] == ["key." + k for k in keys] + [
        "value." + v for v in values]
    assert all(c.key and not c.nullable for c in tdef.key)
    for column in tdef.values:
        assert column.kind == kinds[column.name]
        assert column.nullable == (column.name not in required)
    assert not any(c.name in ("ts", "action") for c in tdef.columns if c.source.startswith("meta"))


def test_an_enums_values_keep_their_order_and_a_strings_max_length_is_kept():
    schema = {"type": "object", "properties": {
        "key": {"type": "object", "properties": {"id": {"type": "string", "maxLength": 36}},
                "required": ["id"]},
        "value": {"type": "object", "properties": {
            "state": {"type": "string", "enum": ["z", "a", "m"]},
            "code": {"type": "string", "maxLength": 12, "title": "The  code\\nof it"}}}}}
    tdef = table_def("ns", "t", {"schema": schema, "version": 1})
    assert tdef.column("state").values == ("z", "a", "m")
    assert tdef.column("code").max_length == 12 and tdef.column("id").max_length == 36
    assert tdef.column("code").comment == "The code\\nof it"


@pytest.mark.parametrize("answer", [{}, {"schema": {}, "version": "1"},
                                    {"schema": {"properties": {"value": {}}}, "version": 1}])
def test_a_schema_without_a_key_or_version_is_an_unexpected_answer(answer):
    with pytest.raises(errors.UnexpectedAnswer):
        table_def("ns", "t", answer)


@given(schemas(), st.data())
@settings(max_examples=60)
def test_appended_nullable_columns_and_enum_values_apply_in_place(drawn, data):
    schema, keys, values, kinds, required = drawn
    old = table_def("ns", "t", {"schema": schema, "version": 1})
    new_schema = {"type": "object", "properties": {
        "key": schema["properties"]["key"],
        "value": {"type": "object", "properties": dict(schema["properties"]["value"]["properties"]),
                  "required": list(required)}, "meta": schema["properties"]["meta"]}}
    added = data.draw(st.lists(NAMES.filter(lambda n: n not in keys and n not in values),
                               max_size=3, unique=True))
    for name in added:
        new_schema["properties"]["value"]["properties"][name] = dict(data.draw(PROPERTY)[0])
    extended = {}
    for name in values:
        node = new_schema["properties"]["value"]["properties"][name]
        if "enum" in node and data.draw(st.booleans()):
            extra = ["new_%d" % i for i in range(data.draw(st.integers(1, 3)))]
            node["enum"] = list(node["enum"]) + extra
            extended[name] = tuple(extra)
    new = table_def("ns", "t", {"schema": new_schema, "version": 2})
    change = schema_change(old, new)
    assert [c.name for c in change.add_columns] == added
    assert {c.name: v for c, v in change.add_enum_values} == extended
    assert bool(change) == bool(added or extended)


@given(schemas(min_values=1), st.data())
@settings(max_examples=60)
def test_a_removed_or_retyped_column_or_a_new_key_is_refused(drawn, data):
    schema, keys, values, kinds, required = drawn
    old = table_def("ns", "t", {"schema": schema, "version": 1})
    props = dict(schema["properties"]["value"]["properties"])
    how = data.draw(st.sampled_from(["remove", "retype", "key", "required"]))
    key = schema["properties"]["key"]
    new_required = list(required)
    victim = data.draw(st.sampled_from(values))
    if how == "remove":
        del props[victim]
    elif how == "retype":
        node, kind = data.draw(PROPERTY.filter(lambda p: p[1] != kinds[victim]))
        props[victim] = dict(node)
    elif how == "key":
        key = {"type": "object", "properties": dict(key["properties"], extra_key={
            "type": "integer"}), "required": list(key["required"]) + ["extra_key"]}
    else:
        props["brand_new"] = {"type": "integer"}
        new_required.append("brand_new")
    new_schema = {"type": "object", "properties": {
        "key": key, "value": {"type": "object", "properties": props, "required": new_required},
        "meta": schema["properties"]["meta"]}}
    new = table_def("ns", "t", {"schema": new_schema, "version": 2})
    with pytest.raises(errors.SchemaChangeRefused) as refused:
        schema_change(old, new)
    assert refused.value.exit_status == 16
    assert "initdb --replace" in str(refused.value)


def test_enum_values_removed_or_reordered_are_refused():
    def version(values):
        return table_def("ns", "t", {"version": 1, "schema": {"type": "object", "properties": {
            "key": {"type": "object", "properties": {"id": {"type": "integer"}}},
            "value": {"type": "object", "properties": {
                "s": {"type": "string", "enum": values}}}}}})
    for values in (["a"], ["b", "a", "c"]):
        with pytest.raises(errors.SchemaChangeRefused):
            schema_change(version(["a", "b"]), version(values))
