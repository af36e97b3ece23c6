"""What a replicated table looks like, decided from DAP's JSON Schema (pure).

A DAP table replicates as one database table: the key's properties first, then the value's,
in schema order; `meta.*` is not stored; nested objects stay one JSON column (DAP's
``condensed`` mode). This is the layout of the official client (`../shared/dap-db.md`), so
a database that either client made can be continued by the other.

:func:`table_def` turns the schema answer into a :class:`TableDef` of :class:`DbColumn`
(each with a dialect-free ``kind``); :func:`schema_change` says what it takes to go from the
stored definition to a newer one: columns to add and enum values to append, or
:class:`~dap_core.errors.SchemaChangeRefused` when the change cannot be applied in place.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

from .errors import SchemaChangeRefused, UnexpectedAnswer
from .columns import normalise  # $ref, oneOf/anyOf/allOf and null alternatives, resolved

__all__ = ["KINDS", "DbColumn", "TableDef", "SchemaChange", "table_def", "schema_change",
           "schema_description"]

#: the column kinds a dialect maps to its types
KINDS = ("int64", "int32", "float", "boolean", "string", "uuid", "timestamp", "enum",
         "string_array", "json")


@dataclass(frozen=True)
class DbColumn:
    """One column of a replicated table.

    ``source`` is the column's name in DAP's condensed CSV/TSV header (``key.id``,
    ``value.name``); ``values`` are an enum's values in schema order; ``max_length`` a
    string's ``maxLength``."""

    name: str
    source: str
    kind: str
    nullable: bool = True
    key: bool = False
    max_length: Optional[int] = None
    values: Tuple[str, ...] = ()
    comment: Optional[str] = None


@dataclass(frozen=True)
class TableDef:
    """A DAP table as the database holds it."""

    namespace: str
    table: str
    columns: Tuple[DbColumn, ...]
    version: int
    schema: Mapping[str, Any]
    comment: Optional[str] = None

    @property
    def key(self) -> Tuple[DbColumn, ...]:
        return tuple(c for c in self.columns if c.key)

    @property
    def values(self) -> Tuple[DbColumn, ...]:
        return tuple(c for c in self.columns if not c.key)

    def column(self, name: str) -> Optional[DbColumn]:
        return next((c for c in self.columns if c.name == name), None)

    def by_source(self) -> Dict[str, DbColumn]:
        return {c.source: c for c in self.columns}


def _comment(node: Mapping[str, Any]) -> Optional[str]:
    text = node.get("title") or node.get("description")
    return " ".join(str(text).split()) if text else None


def _kind(node: Dict[str, Any]) -> Tuple[str, Tuple[str, ...], Optional[int]]:
    """(kind, enum values, maxLength) of a normalised schema node."""
    kind = node.get("type")
    enum = node.get("enum")
    if isinstance(enum, list):
        values = tuple(v for v in enum if v is not None)
        if values and all(isinstance(v, str) for v in values) and kind in (None, "string"):
            return "enum", values, None
    if kind == "integer":
        return ("int32" if node.get("format") == "int32" else "int64"), (), None
    if kind == "number":
        return "float", (), None
    if kind == "boolean":
        return "boolean", (), None
    if kind == "string":
        if node.get("format") == "date-time":
            return "timestamp", (), None
        if node.get("format") == "uuid":  # the official client's uuid / binary(16) columns
            return "uuid", (), None
        length = node.get("maxLength")
        return "string", (), length if isinstance(length, int) and length > 0 else None
    if kind == "array":
        items, _, _ = normalise(node.get("items") or {}, {})
        if isinstance(items, dict) and items.get("type") == "string" and \
                items.get("format") != "date-time" and not isinstance(items.get("enum"), list):
            return "string_array", (), None
    return "json", (), None  # nested and free-form objects, other arrays, mixed types


def _part_columns(root: Mapping[str, Any], schema: Mapping[str, Any], part: str, seen
                  ) -> List[DbColumn]:
    """The columns of ``key`` or ``value``; ``root`` is the normalised top level, ``schema``
    the document its ``$ref``s point into."""
    properties = root.get("properties") or {}
    if part not in properties:
        return []
    node, _, seen = normalise(properties[part], schema, seen)
    props = node.get("properties")
    if not isinstance(props, dict):
        raise UnexpectedAnswer("the table schema's %s has no properties" % part)
    required = set(node.get("required") or ())
    out = []
    for name, sub in props.items():
        resolved, nullable, _ = normalise(sub, schema, seen)
        kind, values, length = _kind(resolved)
        is_key = part == "key"
        out.append(DbColumn(
            name=str(name), source="%s.%s" % (part, name), kind=kind,
            nullable=not is_key and (nullable or name not in required),
            key=is_key, max_length=length, values=values,
            comment=_comment(resolved) or _comment(sub if isinstance(sub, dict) else {})))
    return out


def table_def(namespace: str, table: str, answer: Mapping[str, Any]) -> TableDef:
    """The table for DAP's schema answer ``{"schema": {...}, "version": N}``."""
    schema = answer.get("schema") if isinstance(answer, Mapping) else None
    version = answer.get("version") if isinstance(answer, Mapping) else None
    if not isinstance(schema, dict) or not isinstance(version, int):
        raise UnexpectedAnswer("the schema of %s.%s is not {schema, version}" % (namespace, table))
    root, _, seen = normalise(schema, schema)
    key = _part_columns(root, schema, "key", seen)
    if not key:
        raise UnexpectedAnswer("the schema of %s.%s has no key" % (namespace, table))
    value = _part_columns(root, schema, "value", seen)
    names = [c.name for c in key + value]
    if len(set(names)) != len(names):
        raise UnexpectedAnswer("the schema of %s.%s names a column twice" % (namespace, table))
    return TableDef(namespace, table, tuple(key + value), version, schema,
                    _comment(schema))


def schema_description(tdef: TableDef) -> str:
    """The stored schema text (compact JSON, as the official client stores it)."""
    return json.dumps(tdef.schema, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class SchemaChange:
    """What moving a table from one definition to a newer one takes, in place."""

    add_columns: Tuple[DbColumn, ...] = ()
    #: (column, the values to append in order)
    add_enum_values: Tuple[Tuple[DbColumn, Tuple[str, ...]], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.add_columns or self.add_enum_values)


def _same_type(old: DbColumn, new: DbColumn) -> bool:
    if old.kind != new.kind:
        return False
    if old.kind == "string":
        # a longer (or dropped) maxLength still holds every stored value, but the column
        # would have to be altered: only an unchanged length applies in place
        return old.max_length == new.max_length
    return True


def schema_change(old: TableDef, new: TableDef) -> SchemaChange:
    """The in-place change from ``old`` to ``new``, or ``SchemaChangeRefused``.

    Applied in place: new nullable value columns (at the end), new enum values appended
    after the existing ones. Refused: a changed key, a removed column, a changed type, a
    new NOT NULL column, enum values removed or reordered."""
    label = "%s.%s" % (new.namespace, new.table)

    def refuse(why: str) -> SchemaChangeRefused:
        return SchemaChangeRefused(
            "%s: schema version %s cannot be applied in place to version %s: %s" % (
                label, new.version, old.version, why),
            "rebuild the table with dap initdb --replace --table %s --namespace %s" % (
                new.table, new.namespace))

    if [(c.name, c.kind) for c in old.key] != [(c.name, c.kind) for c in new.key]:
        raise refuse("its key changed")
    added: List[DbColumn] = []
    enums: List[Tuple[DbColumn, Tuple[str, ...]]] = []
    new_names = {c.name for c in new.columns}
    for column in old.columns:
        if column.name not in new_names:
            raise refuse("column %s was removed" % column.name)
    for column in new.columns:
        before = old.column(column.name)
        if before is None:
            if not column.nullable:
                raise refuse("new column %s is required (NOT NULL)" % column.name)
            added.append(column)
            continue
        if not _same_type(before, column):
            raise refuse("column %s changed type" % column.name)
        if column.kind == "enum":
            if column.values[:len(before.values)] != before.values:
                if set(before.values) - set(column.values):
                    raise refuse("enum values of %s were removed" % column.name)
                raise refuse("enum values of %s were reordered" % column.name)
            extra = column.values[len(before.values):]
            if extra:
                enums.append((column, extra))
    return SchemaChange(tuple(added), tuple(enums))
