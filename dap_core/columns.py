"""The columns a table's JSON Schema implies (pure): their dotted names, the keys that lead to
each value, and each one's type, in the order DAP's CSV, TSV and Parquet lay them out.

`expanded` spreads nested objects of fixed shape into dotted columns; `condensed` keeps each
as one JSON column; arrays, free-form objects and mixed types are always one JSON column.
`$ref`s, `oneOf`/`anyOf`/`allOf` and null alternatives are resolved (`normalise`, which the
database schema shares).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

from .errors import UnexpectedAnswer

__all__ = ["Column", "COLUMN_TYPES", "columns_from_schema", "normalise", "csv_header",
           "tsv_header"]

COLUMN_TYPES = ("integer", "number", "boolean", "string", "timestamp", "json")


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


def normalise(node: Any, root: Mapping[str, Any], seen: FrozenSet[str] = frozenset()
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
            resolved = [normalise(b, root, seen) for b in branches]
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
            part, part_nullable, part_seen = normalise(branch, root, seen)
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
    node, nullable, seen = normalise(node, root, seen)
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
    root, _, seen = normalise(schema, schema)
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


# -- a header for a result of no parts ------------------------------------------------------------

_CSV_QUOTE = re.compile(r'["\x00-\x1f\x7f-\x9f,]|^\s|\s$')
_TSV_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))


def csv_header(columns: Sequence[Column]) -> str:
    """The CSV header row of `columns` (RFC 4180 quoting where a name needs it)."""
    names = []
    for column in columns:
        name = column.name
        if name == "" or _CSV_QUOTE.search(name):
            name = '"' + name.replace('"', '""') + '"'
        names.append(name)
    return ",".join(names) + "\n"


def tsv_header(columns: Sequence[Column]) -> str:
    """The TSV (COPY text) header row of `columns`."""
    names = []
    for column in columns:
        name = column.name
        for raw, escaped in _TSV_ESCAPES:
            name = name.replace(raw, escaped)
        names.append(name)
    return "\t".join(names) + "\n"
