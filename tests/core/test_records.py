"""Records: column layout from the schema, rows, CSV/TSV encoding, and the value helpers."""
import csv
import io
import json
import sys
from datetime import timezone

import pytest
from hypothesis import given, settings, strategies as st

from dap_core.errors import UnexpectedAnswer
from dap_core.records import (
    COLUMN_TYPES, MISSING, Column, columns_from_schema, csv_header, decode_tsv_line, encode_csv_row,
    encode_tsv_row, flatten_record, jsonl_records, parquet_type, record_to_row,
    records_to_columns, row_to_jsonable, to_json_text, tsv_header,
)

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

RECORD = {"key": {"id": 7}, "value": {"name": "Ann, \"A\"", "created_at": "2024-07-13T09:30:00Z",
          "workflow_state": "active", "score": 1.5, "is_public": True,
          "attachment": {"id": 3, "filename": "a.pdf"}, "tags": ["x", "ü"],
          "settings": {"a": None}},
          "meta": {"ts": "2024-07-13T09:30:00.123Z", "action": "U"}}
DELETE = {"key": {"id": 8}, "meta": {"ts": "2024-07-14T00:00:00Z", "action": "D"}}
#: a record of a snapshot, as DAP sends it: meta.ts only
SNAPSHOT_RECORD = {"key": {"id": 7}, "value": RECORD["value"],
                   "meta": {"ts": "2024-07-13T09:30:00.123Z"}}


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


def test_records_of_both_shapes_fill_the_rows():
    """A snapshot's record has no meta.action: in an incremental's layout that is a null,
    in a snapshot's layout there is no such column."""
    full = columns_from_schema(SCHEMA)
    assert record_to_row(SNAPSHOT_RECORD, full)[:3] == ["2024-07-13T09:30:00.123Z", None, 7]
    snapshot = columns_from_schema(SCHEMA, action=False)
    row = record_to_row(SNAPSHOT_RECORD, snapshot)
    assert row == record_to_row(RECORD, full)[:1] + record_to_row(RECORD, full)[2:]
    assert encode_csv_row(row, snapshot).startswith("2024-07-13T09:30:00.123Z,7,")
    assert encode_tsv_row(row, snapshot).startswith("2024-07-13T09:30:00.123Z\t7\t")
    flat = flatten_record(SNAPSHOT_RECORD, snapshot)
    assert "meta.action" not in flat and flat["key.id"] == 7
    assert records_to_columns([SNAPSHOT_RECORD], full)[1] == [None]


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


def test_record_to_row_walks_dotted_paths():
    row = record_to_row(RECORD, columns_from_schema(SCHEMA))
    assert row == ["2024-07-13T09:30:00.123Z", "U", 7, 'Ann, "A"', "2024-07-13T09:30:00Z", "active",
                   1.5, True, 3, "a.pdf", ["x", "ü"], {"a": None}]


def test_a_missing_property_is_null_and_a_delete_record_has_missing_values():
    columns = columns_from_schema(SCHEMA)
    partial = record_to_row({"key": {"id": 1}, "value": {"name": "x"},
                             "meta": {"ts": "t", "action": "U"}}, columns)
    assert partial[3] == "x" and partial[4:] == [None] * 8
    deleted = record_to_row(DELETE, columns)
    assert deleted[:3] == ["2024-07-14T00:00:00Z", "D", 8]
    assert all(v is MISSING for v in deleted[3:])


def test_csv_of_a_record_follows_the_contract():
    columns = columns_from_schema(SCHEMA)
    assert csv_header(columns) == ",".join(EXPANDED) + "\n"
    assert encode_csv_row(record_to_row(RECORD, columns), columns) == (
        '2024-07-13T09:30:00.123Z,U,7,"Ann, ""A""",2024-07-13T09:30:00Z,active,1.5,true,3,a.pdf,'
        '"[""x"",""ü""]","{""a"":null}"\n')


def test_a_delete_record_renders_with_empty_csv_fields_and_tsv_nulls():
    columns = columns_from_schema(SCHEMA)
    row = record_to_row(DELETE, columns)
    assert encode_csv_row(row, columns) == "2024-07-14T00:00:00Z,D,8" + "," * 9 + "\n"
    assert encode_tsv_row(row, columns) == "2024-07-14T00:00:00Z\tD\t8" + "\t\\N" * 9 + "\n"


@pytest.mark.parametrize("value, text", [
    (None, ""), ("NULL", "NULL"), ("null", "null"), ("", '""'), (MISSING, ""),
    ("a,b", '"a,b"'), ('say "hi"', '"say ""hi"""'), (" lead", '" lead"'), ("trail ", '"trail "'),
    ("two\nlines", '"two\nlines"'), ("tab\there", '"tab\there"'), ("plain text", "plain text"),
    ("ünïcødé", "ünïcødé"), (True, "true"), (False, "false"), (42, "42"), (-0.5, "-0.5"),
    (1e100, "1e+100"), ([1, "a"], '"[1,""a""]"'), ({}, "{}"), ("__CD2_oversized_truncated__",
                                                                "__CD2_oversized_truncated__"),
])
def test_csv_field_examples(value, text):
    assert encode_csv_row([value, 1]) == text + ",1\n"


def test_csv_null_and_missing_are_nothing_and_the_empty_string_is_quoted():
    """DAP's "Data formats": NULL is an empty field with no characters at all, an empty
    string is "", and the string NULL is an ordinary string."""
    assert encode_csv_row([None, MISSING, "", "NULL", "x"]) == ',,"",NULL,x\n'
    assert list(csv.reader(io.StringIO(',,"",NULL,x\n', newline=""))) == [
        ["", "", "", "NULL", "x"]]


@pytest.mark.parametrize("value, text", [
    (None, "\\N"), (MISSING, "\\N"), ("\\N", "\\\\N"), ("", ""), ("a\tb", "a\\tb"),
    ("a\nb\rc", "a\\nb\\rc"), ("back\\slash", "back\\\\slash"), (True, "true"), (3, "3"),
    (["t\tx"], '["t\\\\tx"]'), ("NULL", "NULL"),
])
def test_tsv_field_examples(value, text):
    assert encode_tsv_row([value, 1]) == text + "\t1\n"


def test_a_json_column_holding_a_string_is_written_as_json_text():
    column = Column("value.settings", ("value", "settings"), "json")
    assert encode_csv_row(["abc"], [column]) == '"""abc"""\n'
    assert encode_tsv_row(["abc"], [column]) == '"abc"\n'


def test_decode_tsv_line_understands_copy_escapes():
    assert decode_tsv_line("a\\tb\t\\N\t\\x41\\101\\q\t\n") == ["a\tb", None, "AAq", ""]


# -- round trips --------------------------------------------------------------------------------

#: the standard library's csv reads NUL from Python 3.11 on (before, "line contains NUL")
CSV_READS_NUL = sys.version_info >= (3, 11)

scalars = st.one_of(st.none(), st.just(MISSING), st.text(), st.integers(),
                    st.floats(allow_nan=False, allow_infinity=False), st.booleans(),
                    st.sampled_from(["NULL", "null", "", " ", "\\N", '"', ",", "\r\n", "\\"]))
rows = st.lists(scalars, min_size=2, max_size=6)


def _text_of(value):
    """What a reader that cannot see quotes gets back for `value`."""
    if value is None or value is MISSING:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return json.dumps(value)
    return str(value)


def parse_csv_with_quotes(text):
    """A strict RFC 4180 reader that tells a quoted field from a bare one: a bare empty
    field -> None (null, or missing: CSV writes both as nothing), anything else -> its
    text (a quoted empty field is the empty string)."""
    records, fields, i = [], [], 0
    field, quoted = [], False
    while i < len(text):
        c = text[i]
        if c == '"' and not field and not quoted:
            quoted, i = True, i + 1
            while True:
                j = text.index('"', i)
                field.append(text[i:j])
                if text[j + 1:j + 2] == '"':
                    field.append('"')
                    i = j + 2
                else:
                    i = j + 1
                    break
            continue
        if c in ",\n":
            value = "".join(field)
            fields.append(value if quoted or value else None)
            field, quoted = [], False
            if c == "\n":
                records.append(fields)
                fields = []
        else:
            assert not quoted, "text after a closing quote"
            field.append(c)
        i += 1
    assert not fields and not field
    return records


@settings(max_examples=300, deadline=None)
@given(st.lists(rows, min_size=1, max_size=5))
def test_csv_round_trips_through_stdlib_csv_and_a_quote_aware_reader(table):
    text = "".join(encode_csv_row(row) for row in table)
    if CSV_READS_NUL or "\x00" not in text:
        assert list(csv.reader(io.StringIO(text, newline=""), strict=True)) == [
            [_text_of(v) for v in row] for row in table]
    expected = [[None if v is None or v is MISSING else _text_of(v) for v in row]
                for row in table]
    assert parse_csv_with_quotes(text) == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(rows, min_size=1, max_size=5))
def test_tsv_round_trips_through_the_copy_text_parser(table):
    text = "".join(encode_tsv_row(row) for row in table)
    lines = text.split("\n")
    assert lines[-1] == "" and len(lines) == len(table) + 1  # no raw newline inside a field
    for line, row in zip(lines, table):
        assert decode_tsv_line(line) == [None if v is None or v is MISSING else _text_of(v)
                                         for v in row]


@given(st.lists(st.text(st.characters(blacklist_characters=".", blacklist_categories=("Cs",)),
                        min_size=1), min_size=1, max_size=5))
def test_headers_round_trip(labels):
    columns = [Column(label, (label,), "string") for label in labels]
    if CSV_READS_NUL or not any("\x00" in label for label in labels):
        assert next(csv.reader(io.StringIO(csv_header(columns), newline=""))) == labels
    assert decode_tsv_line(tsv_header(columns)) == labels


# -- Parquet helpers ------------------------------------------------------------------------------

# a value of each column type as the Parquet writer has it (timestamps parsed), nulls aside
VALUES_OF_TYPE = {
    "integer": st.integers(-2 ** 63, 2 ** 63 - 1),
    "number": st.floats(allow_nan=False),
    "boolean": st.booleans(),
    "timestamp": st.datetimes(timezones=st.just(timezone.utc)),  # years 1 to 9999
    "string": st.text(),
    "json": st.text(),
}


@settings(max_examples=200, deadline=None)  # the first example imports pandas
@given(st.data())
def test_the_parquet_dtype_of_a_column_holds_its_values_and_null_unchanged(data):
    """Integers to 2**63 (not floats), timestamps of years 1 to 9999 to the microsecond
    (nanoseconds end in 2262), booleans and text, each with nulls: what the writer's dtype
    must hold, judged by pandas."""
    pandas = pytest.importorskip("pandas")
    kind = data.draw(st.sampled_from(COLUMN_TYPES))
    values = data.draw(st.lists(st.one_of(st.none(), VALUES_OF_TYPE[kind]), max_size=6))
    series = pandas.Series(values, dtype=parquet_type(Column("c", ("c",), kind)))
    assert [None if pandas.isna(v) else v for v in series.tolist()] == values
    typed = {"integer": pandas.api.types.is_integer_dtype,
             "number": pandas.api.types.is_float_dtype,
             "boolean": pandas.api.types.is_bool_dtype,
             "timestamp": pandas.api.types.is_datetime64_any_dtype}
    assert typed.get(kind, pandas.api.types.is_object_dtype)(series.dtype)


def test_flatten_record_gives_scalars_with_json_text_and_nulls_for_deletes():
    columns = columns_from_schema(SCHEMA)
    flat = flatten_record(RECORD, columns)
    assert flat["value.tags"] == '["x","ü"]' and flat["value.settings"] == '{"a":null}'
    assert flat["key.id"] == 7 and flat["value.attachment.filename"] == "a.pdf"
    assert row_to_jsonable(record_to_row(DELETE, columns), columns)[3:] == [None] * 9
    assert list(flatten_record(DELETE, columns).values())[3:] == [None] * 9


# -- records to Parquet columns (records_to_columns, jsonl_records) ------------------------------

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 63, 2 ** 63 - 1),
                         st.floats(allow_nan=False), st.text(max_size=8))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=6)


def maybe(key, strategy):
    """A value of `strategy` under `key`, or no such key at all."""
    return st.one_of(st.just({}), strategy.map(lambda v: {key: v}))


def object_of(*fields):
    return st.tuples(*[maybe(k, s) for k, s in fields]).map(
        lambda parts: {k: v for part in parts for k, v in part.items()})


# records shaped like SCHEMA's, but anything may be absent, null or of another type
records_like_schema = st.builds(
    lambda key, value, meta: dict(key, **value, **meta),
    maybe("key", object_of(("id", json_scalars))),
    maybe("value", st.one_of(json_values, object_of(
        ("name", json_scalars), ("created_at", json_scalars), ("score", json_scalars),
        ("is_public", json_scalars), ("tags", json_values), ("settings", json_values),
        ("attachment", st.one_of(json_values, object_of(("id", json_scalars),
                                                        ("filename", json_scalars))))))),
    maybe("meta", object_of(("ts", json_scalars), ("action", st.sampled_from(["U", "D"])))))


@settings(max_examples=300)
@given(st.lists(records_like_schema, max_size=6), st.sampled_from(["expanded", "condensed"]))
def test_records_to_columns_are_the_rows_of_each_record(batch, mode):
    """The batch, column by column, is what row_to_jsonable makes of each record's row."""
    columns = columns_from_schema(SCHEMA, mode)
    got = records_to_columns(batch, columns)
    assert len(got) == len(columns)
    for index, record in enumerate(batch):
        want = row_to_jsonable(record_to_row(record, columns), columns)
        assert [values[index] for values in got] == want


def test_records_to_columns_nulls_deletes_nesting_and_json_text():
    columns = columns_from_schema(SCHEMA)
    partial = {"key": {"id": 9}, "value": {"name": "y", "attachment": None},
               "meta": {"ts": "2024-07-15T00:00:00Z", "action": "U"}}
    got = dict(zip(names(columns), records_to_columns([RECORD, DELETE, partial], columns)))
    assert got["key.id"] == [7, 8, 9]
    assert got["meta.action"] == ["U", "D", "U"]
    assert got["value.attachment.id"] == [3, None, None]
    assert got["value.attachment.filename"] == ["a.pdf", None, None]
    assert got["value.tags"] == ['["x","ü"]', None, None]  # compact, UTF-8 kept
    assert got["value.settings"] == ['{"a":null}', None, None]
    assert got["value.name"] == ['Ann, "A"', None, "y"]
    assert records_to_columns([], columns) == [[] for _ in columns]
    condensed = columns_from_schema(SCHEMA, "condensed")
    got = dict(zip(names(condensed), records_to_columns([RECORD, DELETE], condensed)))
    assert got["value.attachment"] == ['{"id":3,"filename":"a.pdf"}', None]


@given(json_values)
def test_json_columns_are_the_text_to_json_text_gives(value):
    column = Column("value.x", ("value", "x"), "json")
    want = None if value is None else to_json_text(value)
    assert records_to_columns([{"value": {"x": value}}], [column]) == [[want]]


# objects whose JSON text has commas, brackets and constants in awkward places
awkward_records = st.one_of(records_like_schema, st.dictionaries(
    st.sampled_from(["a", "b", ",", "}"]),
    st.one_of(json_values, st.sampled_from(["a,b", "},{", "NaN", "[1", "\n"]),
              st.floats(allow_nan=False)),
    max_size=3))

# whole lines that are not one JSON object (and a few that are, written unusually)
odd_lines = st.sampled_from([
    b"", b"  ", b"\r", b"[1]", b"3", b'"s"', b"null", b"nul", b"NaN", b"{", b"}", b",",
    b'{"a":"\xff"}', b'{"a":"\xed\xa0\x80"}', b'{"a":1} {"b":2}', b'{"a":1},{"b":2}',
    b'{"a":1},', b',{"a":1}', b'{"a":1}]', b'{"n":NaN}', b'{"a":1}\r', b' {"a":1}\t',
    b'{"a":1},NaN,{"b":[1'])


@st.composite
def maybe_broken_jsonl(draw):
    """JSONL bytes whose lines may not be one JSON object each.  Half the time the records'
    texts are joined by commas (an array's body) and cut into as many lines at commas
    chosen anywhere -- between records, or inside an array, an object or a string -- which
    joined again by commas are the same text; then other lines are mixed in."""
    texts = [to_json_text(r) for r in draw(st.lists(awkward_records, max_size=6))]
    if len(texts) > 1 and draw(st.booleans()):
        text = ",".join(texts)
        commas = [i for i, c in enumerate(text) if c == ","]
        cuts = draw(st.lists(st.sampled_from(commas), min_size=len(texts) - 1,
                             max_size=len(texts) - 1, unique=True))
        chars = list(text)
        for i in cuts:
            chars[i] = "\n"
        texts = "".join(chars).split("\n")
    lines = [t.encode() for t in texts]
    for position, line in draw(st.lists(st.tuples(st.integers(0, 6), odd_lines), max_size=3)):
        lines.insert(min(position, len(lines)), line)
    return b"\n".join(lines) + (b"\n" if lines and draw(st.booleans()) else b"")


def one_json_object(line):
    """`line` parsed on its own, or None when it is not one JSON object."""
    try:
        value = json.loads(line.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError too
        return None
    return value if isinstance(value, dict) else None


@settings(max_examples=300)
@given(maybe_broken_jsonl(), st.integers(1, 1000))
def test_jsonl_records_raise_exactly_when_a_line_is_not_one_json_object(data, first_line):
    """Each line parsed on its own decides: all objects (or blank) give those objects, in
    order; otherwise the first line that is not one names itself in the error."""
    lines = data[:-1].split(b"\n") if data.endswith(b"\n") else data.split(b"\n")
    parsed = [(number, one_json_object(line)) for number, line in enumerate(lines, first_line)
              if line.strip()]
    bad = [number for number, value in parsed if value is None]
    if bad:
        with pytest.raises(UnexpectedAnswer, match="line %d " % bad[0]):
            jsonl_records(data, first_line)
    else:
        # repr: NaN is equal to nothing, itself included
        assert repr(jsonl_records(data, first_line)) == repr([value for _, value in parsed])


@pytest.mark.parametrize("data,line", [
    (b'{"a":1}\n[1]\n', 2), (b'{"a":1}\n{"b":2}\n3\n', 3), (b'{"a":1},{"b":2}\n', 1),
    (b'{"a":\n1}\n', 1), (b'{"a":1}\n\n{"b":\n', 3), (b'{"a":"\xff"}\n', 1), (b"nul\n", 1),
    (b'{"a":1} {"b":2}\n', 1), (b'{"a":"\xed\xa0\x80"}\n', 1),
    # as many lines as objects, which joined by commas make an array of objects
    (b'{"a":1},{"b":[3\n4]}\n', 1), (b'{"a":1},{"b":"x\ny"}\n', 1),
    (b'{"a":1}\n{"b":{"c":1\n"d":2}}\n{"e":3}\n', 2),
    (b'{"a":1},NaN,{"b":[1\n2]}\n', 1), (b'{"a":[1\nNaN]}\n', 1)])
def test_a_line_that_is_not_one_json_object_is_an_unexpected_answer(data, line):
    with pytest.raises(UnexpectedAnswer, match="line %d " % (line + 9)):
        jsonl_records(data, first_line=10)
