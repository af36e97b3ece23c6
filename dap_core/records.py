"""Records: the column layout a table's schema implies, rows, CSV/TSV text, and merging parts.

Encoding rules are the contract's ("Records" in dap-api.md):
- CSV (RFC 4180, `\\n` line ends), as DAP's "Data formats" documentation describes it: a null
  and a missing value (the value columns of a delete record) are an empty field with no
  characters at all; an empty string is `""`; a string is quoted (quotes doubled) when it
  holds a quote, comma, tab, newline or carriage return -- and here also another control
  character or a leading or trailing blank, which a reader gets back the same.  The string
  `NULL` is an ordinary string.
- TSV (PostgreSQL COPY text): `\\N` for null and for missing; backslash, tab, newline and
  carriage return escaped with a backslash.
- Both: booleans `true`/`false`, integers as digits, floats as JSON writes them, arrays and
  objects as compact JSON text (UTF-8, not escaped to ASCII).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from itertools import repeat
from typing import Any, Callable, Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

from .copytext import decode_field
from .errors import UnexpectedAnswer
from .timestamps import format_timestamp

__all__ = [
    "Column", "COLUMN_TYPES", "MISSING", "columns_from_schema", "record_to_row",
    "flatten_record", "row_to_jsonable", "records_to_columns", "jsonl_records", "parquet_type",
    "encode_csv_row", "encode_tsv_row",
    "csv_header", "tsv_header", "decode_tsv_line", "to_json_text", "PartMerger",
    "MERGE_FORMATS",
]

COLUMN_TYPES = ("integer", "number", "boolean", "string", "timestamp", "json")


class _Missing:
    """The value of a column a record does not have at all (value.* of a delete record)."""

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "MISSING"


MISSING = _Missing()


@dataclass(frozen=True)
class Column:
    """One output column: `name` is dotted (`value.attachment.id`), `path` the keys to it."""

    name: str
    path: Tuple[str, ...]
    type: str
    nullable: bool = True


# -- the layout from a JSON Schema --------------------------------------------------------------

def _pointer(root: Mapping[str, Any], ref: str) -> Any:
    if not isinstance(ref, str) or not ref.startswith("#"):
        raise UnexpectedAnswer("the table schema refers outside itself (%r)" % (ref,))
    node: Any = root
    for token in [t for t in ref[1:].split("/") if t]:
        token = token.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or token not in node:
            raise UnexpectedAnswer("the table schema refers to %r, which it lacks" % ref)
        node = node[token]
    return node


def _is_null(node: Any) -> bool:
    return isinstance(node, dict) and (node.get("type") == "null" or node.get("enum") == [None])


def _normalise(node: Any, root: Mapping[str, Any], seen: FrozenSet[str] = frozenset()
               ) -> Tuple[Dict[str, Any], bool, FrozenSet[str]]:
    """`node` with `$ref`s resolved and null alternatives folded into a nullable flag, and the
    refs followed so far (a ref met again below itself is recursive: no fixed shape).
    Alternatives that stay several (a string or an integer) make a json column."""
    if not isinstance(node, dict):
        return {}, True, seen
    nullable = False
    while "$ref" in node:
        ref = node["$ref"]
        if ref in seen:
            return {}, True, seen
        seen = seen | {ref}
        target = _pointer(root, ref)
        node = dict(target if isinstance(target, dict) else {},
                    **{k: v for k, v in node.items() if k != "$ref"})
    for combiner in ("oneOf", "anyOf"):
        branches = node.get(combiner)
        if isinstance(branches, list):
            resolved = [_normalise(b, root, seen) for b in branches]
            nullable = nullable or any(n or _is_null(b) for b, n, _ in resolved)
            solid = [(b, s) for b, _, s in resolved if not _is_null(b)]
            rest = {k: v for k, v in node.items() if k != combiner}
            if len(solid) == 1:
                node, seen = dict(rest, **solid[0][0]), solid[0][1]
            else:
                node = dict(rest, type="__mixed__")
    if isinstance(node.get("allOf"), list):
        merged: Dict[str, Any] = {k: v for k, v in node.items() if k != "allOf"}
        for branch in node["allOf"]:
            part, part_nullable, part_seen = _normalise(branch, root, seen)
            nullable, seen = nullable or part_nullable, seen | part_seen
            properties = dict(merged.get("properties", {}), **part.get("properties", {}))
            required = list(merged.get("required", [])) + list(part.get("required", []))
            merged = dict(merged, **part)
            if properties:
                merged["properties"], merged["required"] = properties, required
        node = merged
    kind = node.get("type")
    if isinstance(kind, list):
        nullable = nullable or "null" in kind
        solid_types = [t for t in kind if t != "null"]
        if set(solid_types) == {"integer", "number"}:
            solid_types = ["number"]
        node = dict(node, type=solid_types[0] if len(solid_types) == 1 else "__mixed__")
    if isinstance(node.get("enum"), list) and None in node["enum"]:
        nullable = True
    return node, nullable, seen


def _column_type(node: Dict[str, Any]) -> str:
    kind = node.get("type")
    if kind is None and isinstance(node.get("properties"), dict):
        kind = "object"
    if kind is None and isinstance(node.get("enum"), list):
        values = [v for v in node["enum"] if v is not None]
        kind = "string" if values and all(isinstance(v, str) for v in values) else None
    if kind in ("integer", "number", "boolean"):
        return kind
    if kind == "string":
        return "timestamp" if node.get("format") == "date-time" else "string"
    if kind == "object" and isinstance(node.get("properties"), dict) and node["properties"]:
        return "object"
    return "json"  # arrays, free-form objects, mixed or unknown types


def _walk(node: Any, path: Tuple[str, ...], optional: bool, expand: bool,
          root: Mapping[str, Any], seen: FrozenSet[str], out: List[Column]) -> None:
    node, nullable, seen = _normalise(node, root, seen)
    nullable = nullable or optional
    kind = _column_type(node)
    if kind == "object" and (expand or len(path) == 1):
        required = set(node.get("required") or ())
        for name, sub in node["properties"].items():
            _walk(sub, path + (str(name),), nullable or name not in required, expand, root,
                  seen, out)
    else:
        out.append(Column(".".join(path), path, "json" if kind == "object" else kind, nullable))


def columns_from_schema(schema: Mapping[str, Any], mode: Optional[str] = "expanded",
                        action: bool = True) -> Tuple[Column, ...]:
    """The columns of a table: `meta.ts`, `meta.action` (and any other meta fields), then
    `key.*`, then `value.*` in schema order. `expanded` spreads nested objects of fixed shape
    into dotted columns; `condensed` keeps each as one JSON column; arrays and free-form
    objects are always one JSON column. Accepts the schema or the `{"schema": ...}` answer.

    `action=False` leaves `meta.action` out, whatever the schema says: the columns of a
    snapshot as DAP sends it (its records carry `meta.ts` only; incrementals' carry
    `meta.action` U or D)."""
    if isinstance(schema, dict) and "schema" in schema and "properties" not in schema:
        schema = schema["schema"]
    if not isinstance(schema, dict):
        raise UnexpectedAnswer("the table schema is not a JSON object")
    if mode not in (None, "expanded", "condensed"):
        raise ValueError("mode must be 'expanded' or 'condensed', not %r" % (mode,))
    root, _, seen = _normalise(schema, schema)
    properties = root.get("properties")
    if not isinstance(properties, dict):
        raise UnexpectedAnswer("the table schema has no properties (key, value, meta)")
    expand = mode != "condensed"
    columns: Dict[str, List[Column]] = {}
    for part in ("meta", "key", "value"):
        found: List[Column] = []
        if part in properties:
            # value columns can always be null: a delete record has no value
            _walk(properties[part], (part,), part == "value", expand, schema, seen, found)
        columns[part] = found
    # meta.ts and meta.action come first and exist even when the schema leaves meta out
    # (meta.action only for an incremental's layout)
    meta = {c.name: c for c in columns["meta"]}
    first = [meta.get("meta.ts", Column("meta.ts", ("meta", "ts"), "timestamp", False))]
    if action:
        first.append(meta.get("meta.action",
                              Column("meta.action", ("meta", "action"), "string", False)))
    others = [c for c in columns["meta"] if c.name not in ("meta.ts", "meta.action", "meta")]
    return tuple(first + others + columns["key"] + columns["value"])


# -- records to rows ------------------------------------------------------------------------------

def _is_delete(record: Mapping[str, Any]) -> bool:
    return record.get("value") is None and (
        "value" not in record or (record.get("meta") or {}).get("action") == "D")


def record_to_row(record: Mapping[str, Any], columns: Sequence[Column]) -> List[Any]:
    """The values of `record` in column order: None for null or absent, MISSING for the value
    columns of a delete record (action D, no `value`)."""
    deleted = _is_delete(record)
    row: List[Any] = []
    for column in columns:
        if deleted and column.path[0] == "value":
            row.append(MISSING)
            continue
        value: Any = record
        for key in column.path:
            value = value.get(key) if isinstance(value, dict) else None
        row.append(value)
    return row


_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def to_json_text(value: Any) -> str:
    """Compact JSON, UTF-8 kept as is: how arrays and objects are written into a column."""
    return _COMPACT.encode(value)


def _fast_json_text() -> Callable[[Any], str]:
    """`to_json_text` without building an encoder per value (`JSONEncoder.encode` makes one
    each call, which costs several times the encoding of a small array): CPython's C encoder
    made once, without the circular-reference check (parsed JSON has no cycles).  Used only
    when it gives the very text `to_json_text` gives."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - an interpreter without the C accelerator
        return to_json_text
    try:
        encode = make(None, _COMPACT.default, json.encoder.encode_basestring, None, ":", ",",
                      False, False, True)
        join = "".join

        def fast(value: Any) -> str:
            return join(encode(value, 0))

        probe = {"a": [1.5, -0.0, 10 ** 20, "\u00fc\n\"", None, True, {}], "b": {"c": []}}
        if fast(probe) == to_json_text(probe) and fast("x") == to_json_text("x"):
            return fast
    except Exception:  # pragma: no cover - another C encoder signature: take the slow road
        pass
    return to_json_text  # pragma: no cover


_json_text = _fast_json_text()


def _jsonable(value: Any, column: Column) -> Any:
    if value is MISSING or value is None:
        return None
    if column.type == "json":
        return to_json_text(value)
    return value


def row_to_jsonable(row: Sequence[Any], columns: Sequence[Column]) -> List[Any]:
    """A row with MISSING as None and json columns as JSON text: scalars only, for Parquet."""
    return [_jsonable(value, column) for value, column in zip(row, columns)]


_NO_OBJECT: Dict[str, Any] = {}  # never written to


def records_to_columns(batch: Sequence[Mapping[str, Any]], columns: Sequence[Column]
                       ) -> List[List[Any]]:
    """The values of a batch of records (parsed JSONL lines), one list per column in the
    order of `columns`: None for null, absent, or a value column of a delete record; json
    columns as compact JSON text (`to_json_text`); other values as parsed.  Record by record
    these are `row_to_jsonable(record_to_row(...))`: what a Parquet file holds.

    Built column by column, one pass per level of a column's path, each level shared by the
    columns under it (`value` once for every `value.*` column): far less Python per value
    than walking every record for every column."""
    levels: Dict[Tuple[str, ...], List[Any]] = {(): list(batch)}
    objects: Dict[Tuple[str, ...], List[Any]] = {}  # a level with {} for what is no object
    out: List[List[Any]] = []
    for column in columns:
        path = column.path
        values = levels.get(path)
        if values is None:
            depth = len(path) - 1
            while path[:depth] not in levels:
                depth -= 1
            for depth in range(depth + 1, len(path) + 1):
                parents = objects.get(path[:depth - 1])
                if parents is None:
                    parents = levels[path[:depth - 1]]
                    if not all(map(dict.__instancecheck__, parents)):
                        parents = [v if isinstance(v, dict) else _NO_OBJECT for v in parents]
                    objects[path[:depth - 1]] = parents
                # dict.get over the level, a C loop
                values = list(map(dict.get, parents, repeat(path[depth - 1])))
                levels[path[:depth]] = values
        if column.type == "json":
            text = _json_text
            values = [None if v is None else text(v) for v in values]
        out.append(values)
    return out


def flatten_record(record: Mapping[str, Any], columns: Sequence[Column]) -> Dict[str, Any]:
    """{column name: scalar value} of a record, as `row_to_jsonable` makes them (and
    `records_to_columns`, of which this is the one-record case)."""
    values = records_to_columns([record], columns)
    return {column.name: value[0] for column, value in zip(columns, values)}


def _not_a_record(number: int) -> UnexpectedAnswer:
    return UnexpectedAnswer("line %d of a part of the result is not a JSON object" % number)


_LINE_END = object()  # what the decoder below makes of NaN: a line end, put there by us
_LINES_DECODER = json.JSONDecoder(parse_constant={
    "NaN": _LINE_END, "Infinity": float("inf"), "-Infinity": float("-inf")}.__getitem__)


def jsonl_records(data: bytes, first_line: int = 1,
                  parse_lines: Optional[Callable[[bytes], Optional[List[Any]]]] = None
                  ) -> List[Dict[str, Any]]:
    """The records of whole JSONL lines (`data` ends at a line end, or at the end of a part):
    one dict per line, blank lines skipped; a line that is not a JSON object raises
    `UnexpectedAnswer` (numbered from `first_line`).

    The lines are parsed as one JSON array, nearly twice as fast as a `json.loads` per line:
    `[` + the lines joined by `,NaN,` + `]`, with NaN parsed as a marker, when the lines hold
    no `NaN`.  Lines joined by commas alone could make an array of objects from lines that
    are not one object each (`{"a":1},{"b":[3` and `4]}`); here an array that alternates
    object, marker, object... has every marker, all of them ours, as one of its elements,
    so between two of them (and the brackets) stands one line, which is one object.  Any
    other answer, and lines holding `NaN`, are parsed one by one (blank lines, errors).

    `parse_lines(body)`, when given (a faster parser: see `shell/fast.py`), is asked first:
    the value of each line of `body` (the lines without the last newline) parsed alone, as
    `json.loads` parses it, or None when it cannot tell (then `json` decides as above)."""
    body = data[:-1] if data.endswith(b"\n") else data
    if not body:
        return []
    if parse_lines is not None:
        values = parse_lines(body)
        if values is not None and set(map(type, values)) == {dict}:
            return values
    lines = body.count(b"\n") + 1
    if b"NaN" not in body:
        try:
            parsed = _LINES_DECODER.decode(
                "[" + body.decode("utf-8").replace("\n", ",NaN,") + "]")
        except ValueError:  # UnicodeDecodeError too
            parsed = None
        if (type(parsed) is list and len(parsed) == 2 * lines - 1
                and parsed.count(_LINE_END) == lines - 1):
            batch = parsed[::2]
            if set(map(type, batch)) == {dict}:
                return batch
    batch = []
    for number, line in enumerate(body.split(b"\n"), first_line):
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode("utf-8"))
        except ValueError:  # UnicodeDecodeError too
            raise _not_a_record(number) from None
        if type(record) is not dict:
            raise _not_a_record(number)
        batch.append(record)
    return batch


_PARQUET_TYPES = {"integer": "Int64", "number": "float64", "boolean": "boolean",
                  "timestamp": "datetime64[us, UTC]", "string": "object", "json": "object"}


def parquet_type(column: Column) -> str:
    """The pandas dtype a Parquet writer gives `column`: nullable integers and booleans,
    floats (NaN for null), text as objects (json columns as JSON text), and timestamps in
    microseconds, UTC: Canvas has dates in year 9999, which nanoseconds cannot hold (they end
    in 2262), and one unit for every row group (pandas would pick seconds for a batch of
    nulls only)."""
    return _PARQUET_TYPES[column.type]


# -- CSV and TSV text ----------------------------------------------------------------------------

_CSV_QUOTE = re.compile(r'["\x00-\x1f\x7f-\x9f,]|^\s|\s$')
_TSV_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))


def _scalar_text(value: Any, json_column: bool) -> Optional[str]:
    """The text of a non-string value, or None when `value` is a string to write as such."""
    if json_column or isinstance(value, (dict, list, tuple)):
        return to_json_text(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return json.dumps(value)
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, str):
        return None
    return str(value)


def _csv_field(value: Any, json_column: bool = False) -> str:
    if value is None or value is MISSING:
        return ""  # no characters at all; an empty string is ""
    text = _scalar_text(value, json_column)
    if text is None:
        text = value
    if text == "" or _CSV_QUOTE.search(text):
        return '"' + text.replace('"', '""') + '"'
    return text


def _tsv_field(value: Any, json_column: bool = False) -> str:
    if value is None or value is MISSING:
        return "\\N"
    text = _scalar_text(value, json_column)
    if text is None:
        text = value
    for raw, escaped in _TSV_ESCAPES:
        if raw in text:
            text = text.replace(raw, escaped)
    return text


def _json_flags(row: Sequence[Any], columns: Optional[Sequence[Column]]) -> Sequence[bool]:
    if columns is None:
        return [False] * len(row)
    return [column.type == "json" for column in columns]


def encode_csv_row(row: Sequence[Any], columns: Optional[Sequence[Column]] = None) -> str:
    """One CSV line with `\\n`. With `columns`, json columns are JSON text even for a string."""
    flags = _json_flags(row, columns)
    return ",".join(_csv_field(v, f) for v, f in zip(row, flags)) + "\n"


def encode_tsv_row(row: Sequence[Any], columns: Optional[Sequence[Column]] = None) -> str:
    """One COPY-text line with `\\n`. With `columns`, json columns are JSON text."""
    flags = _json_flags(row, columns)
    return "\t".join(_tsv_field(v, f) for v, f in zip(row, flags)) + "\n"


def csv_header(columns: Sequence[Column]) -> str:
    return ",".join(_csv_field(c.name) for c in columns) + "\n"


def tsv_header(columns: Sequence[Column]) -> str:
    return "\t".join(_tsv_field(c.name) for c in columns) + "\n"


def decode_tsv_line(line: str) -> List[Optional[str]]:
    """The fields of one COPY-text line (None for `\\N`), for tests and readers."""
    if line.endswith("\n"):
        line = line[:-1]
    return [decode_field(field) for field in line.split("\t")]


# -- merging parts -----------------------------------------------------------------------------

MERGE_FORMATS = ("jsonl", "json", "csv", "tsv")
# re finds a two-byte literal several times faster than `in` does
_EMPTY_LINE = re.compile(b"\n\n")
# bytes to drop to see only what decides CSV row ends: quotes and newlines
_NOT_QUOTE_OR_NEWLINE = bytes(b for b in range(256) if b not in (0x22, 0x0A))


class PartMerger:
    """Merges the decompressed parts of one result into one stream, with bytes methods only
    (a large table passes through here at gunzip speed).

    Feed each part's bytes in chunks of any size with `feed(chunk)` (or `feed(part_index,
    chunk)`, which ends the previous part when the index changes), call `end_part()` after
    each part and `finish()` after the last; each returns bytes to write.

    - jsonl: lines passed through, empty lines dropped, a last line given its newline;
    - json: the same records framed as `[` + records joined by `,\\n` + `]\\n` (`[]\\n` if none);
    - csv/tsv: the first part's header kept, every later part's header checked and dropped;
      with no part at all nothing is written (`header_seen` is False: the caller writes one).
      The header is taken as the service sends it, with or without `meta.action` (a
      snapshot's has none, an incremental's has it): only its sameness across parts is
      checked.

    `rows` counts records (CSV: newlines outside quotes)."""

    def __init__(self, format: str) -> None:
        fmt = str(format).lower()
        if fmt not in MERGE_FORMATS:
            raise ValueError("PartMerger merges %s, not %r" % (", ".join(MERGE_FORMATS), format))
        self.format = fmt
        self.rows = 0
        self.parts = 0
        self.header: Optional[bytes] = None
        self._lines = fmt in ("jsonl", "json")
        self._part_index: Any = None
        self._in_part = False
        self._pending: List[bytes] = []
        self._header_done = False
        self._in_quote = False
        self._last = b""
        self._framed = False
        self._mid_line = False
        self._finished = False

    @property
    def header_seen(self) -> bool:
        return self.header is not None

    def feed(self, part_or_chunk: Any, chunk: Any = None) -> bytes:
        if self._finished:
            raise ValueError("PartMerger.feed after finish")
        out = b""
        if chunk is None:
            data = part_or_chunk
        else:
            data = chunk
            if self._in_part and part_or_chunk != self._part_index:
                out = self.end_part()
            self._part_index = part_or_chunk
        data = bytes(data)
        self._in_part = True
        if not data:
            return out
        produced = self._feed_lines(data) if self._lines else self._feed_table(data)
        return out + produced if out else produced

    def end_part(self) -> bytes:
        """Close the current part: its last line may lack a newline."""
        out = b""
        if self._lines:
            if self._mid_line:  # a last line without a newline is still a record
                self.rows += 1
                if self.format == "jsonl":
                    out = b"\n"
            self._mid_line = False
        else:
            out = self._end_table_part()
        self._pending = []
        self._in_part = False
        self.parts += 1
        return out

    def finish(self) -> bytes:
        """Close the stream: end a part left open, close a JSON array."""
        out = self.end_part() if self._in_part else b""
        self._finished = True
        if self.format == "json":
            out += b"]\n" if self._framed else b"[]\n"
        return out

    # -- jsonl and json: chunks pass through as they come, whatever the line boundaries.
    # JSON holds each record's newline back and writes it as the `,\n` before the next one.

    def _separator(self) -> bytes:
        if self._framed:
            return b",\n"
        self._framed = True
        return b"["

    def _feed_lines(self, data: bytes) -> bytes:
        if _EMPTY_LINE.search(data) or (not self._mid_line and data.startswith(b"\n")):
            return self._feed_lines_skipping_empty(data)
        newlines = data.count(b"\n")
        self.rows += newlines
        starts_record = not self._mid_line
        self._mid_line = not data.endswith(b"\n")
        if self.format == "jsonl" or not newlines:
            body = data
        elif self._mid_line:  # usual: every newline here is followed by another record
            body = data.replace(b"\n", b",\n")
        else:
            body = data[:-1].replace(b"\n", b",\n")
        return self._separator() + body if starts_record and self.format == "json" else body

    def _feed_lines_skipping_empty(self, data: bytes) -> bytes:
        """The rare chunk with an empty line: a loop per line."""
        lines = data.split(b"\n")
        partial = lines.pop()  # the start of the next line, maybe empty
        out: List[bytes] = []
        jsonl = self.format == "jsonl"
        for n, line in enumerate(lines):
            continues = n == 0 and self._mid_line  # the rest of a line begun in an earlier chunk
            if not (line or continues):
                continue
            self.rows += 1
            if jsonl:
                out += (line, b"\n")
            else:
                out += (line,) if continues else (self._separator(), line)
        if partial:
            out += (partial,) if jsonl else (self._separator(), partial)
        self._mid_line = bool(partial)
        return b"".join(out)

    # -- csv and tsv

    def _take_header(self, header: bytes) -> bytes:
        self._header_done = True
        if self.header is None:
            self.header = header
            return header
        if header.rstrip(b"\r\n") != self.header.rstrip(b"\r\n"):
            raise UnexpectedAnswer("part %d of the result has a different header than the first "
                                   "part" % (self.parts + 1))
        return b""

    def _feed_table(self, data: bytes) -> bytes:
        out = b""
        if not self._header_done:
            end = data.find(b"\n") + 1
            if end == 0:
                self._pending.append(data)
                return b""
            self._pending.append(data[:end])
            header = b"".join(self._pending)
            self._pending = []
            out = self._take_header(header)
            data = data[end:]
            if not data:
                return out
        self._count_rows(data)
        self._last = data[-1:]
        return out + data if out else data

    def _count_rows(self, data: bytes) -> None:
        if self.format == "tsv" or (b'"' not in data and not self._in_quote):
            self.rows += data.count(b"\n")
            return
        # Keep only quotes and newlines, then drop adjacent quote pairs: neither changes the
        # quote parity before any newline, and what is left is tiny unless fields span lines.
        marks = data.translate(None, _NOT_QUOTE_OR_NEWLINE).replace(b'""', b"")
        pieces = marks.split(b'"')
        outside = pieces[1::2] if self._in_quote else pieces[0::2]
        self.rows += sum(piece.count(b"\n") for piece in outside)
        if len(pieces) % 2 == 0:
            self._in_quote = not self._in_quote

    def _end_table_part(self) -> bytes:
        out = b""
        if not self._header_done and self._pending:
            out = self._take_header(b"".join(self._pending) + b"\n")  # a part of a header only
        if self._in_quote:
            raise UnexpectedAnswer("part %d of the result ends inside a quoted CSV field"
                                   % (self.parts + 1))
        if self._last not in (b"", b"\n"):
            out += b"\n"
            self.rows += 1
        self._header_done = False
        self._last = b""
        return out
