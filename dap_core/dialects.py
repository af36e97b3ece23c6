"""The SQL of a replica, per database (pure): DDL, bookkeeping, loading and merging.

Three dialects over one :class:`~dap_core.dbschema.TableDef`:

* :class:`PostgreSQL` -- schema per namespace (``canvas.accounts``), enum types
  ``canvas.accounts__workflow_state``, ``jsonb``, ``text[]``, comments; bookkeeping in
  schema ``instructure_dap``. The official client's layout (``../shared/dap-db.md``).
* :class:`MySQL` (MariaDB too) -- ``canvas__accounts``, native ``enum`` in ascii_bin, JSON,
  ``datetime(6)``, ``instructure_dap__table_sync``. The official client's layout, with
  fractional seconds kept.
* :class:`SQLite` -- ``canvas__accounts``; INTEGER, REAL and TEXT; booleans 0/1;
  timestamps ISO 8601 UTC text as DAP sends them; JSON as text.

Every load goes through one staging table (``dap_staging``) of text columns ``c0..cN`` in
the order of DAP's TSV header; one set-based statement then moves it into the table,
converting each column (:meth:`Dialect.insert_from_staging`), and another deletes the keys
that the staging rows mark ``D`` (:meth:`Dialect.delete_from_staging`).

Statements are returned as lists of strings; parameters use the driver's placeholder
(:attr:`Dialect.param`). Nothing here touches a connection.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

from .dbschema import DbColumn, SchemaChange, TableDef

__all__ = ["Dialect", "PostgreSQL", "MySQL", "SQLite", "DIALECTS", "StagingLayout",
           "staging_layout", "NEW_SUFFIX", "OLD_SUFFIX"]

#: the table a replacement is built in, beside the live one
NEW_SUFFIX = "__dap_new"
#: where MySQL parks the live table for the instant of the swap
OLD_SUFFIX = "__dap_old"
STAGING = "dap_staging"
SYNC_COLUMNS = ("id", "source_namespace", "source_table", "timestamp", "schema_version",
                "target_schema", "target_table", "schema_description_format",
                "schema_description")


class StagingLayout:
    """Where each column of a table sits among the staging columns (from a TSV header)."""

    def __init__(self, width: int, positions: Dict[str, int], action: Optional[int]) -> None:
        self.width = width
        self.positions = positions  # column name -> staging index
        self.action = action        # index of meta.action, None in a snapshot

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StagingLayout) and (self.width, self.positions, self.action) \
            == (other.width, other.positions, other.action)

    def __repr__(self) -> str:
        return "StagingLayout(%d, %r, action=%r)" % (self.width, self.positions, self.action)

    def direct(self) -> Optional[Tuple[int, List[str]]]:
        """(how many leading fields to drop, the column of each field after them) when the
        header is ``meta.*`` first and then only table columns, as DAP writes it; a snapshot
        can then go straight into the table. None otherwise."""
        by_index = {i: name for name, i in self.positions.items()}
        skip = 0
        while skip < self.width and skip not in by_index:
            skip += 1
        names = [by_index[i] for i in range(skip, self.width) if i in by_index]
        if skip == 0 or len(names) < self.width - skip:
            return None
        return skip, names


def _kind(tdef: TableDef, name: str) -> str:
    """The kind of ``tdef``'s column ``name``, one a staging layout holds (so it exists)."""
    column = tdef.column(name)
    if column is None:
        raise KeyError("%s.%s has no column %r" % (tdef.namespace, tdef.table, name))
    return column.kind


def staging_layout(tdef: TableDef, header: Sequence[str]) -> StagingLayout:
    """The staging layout of a condensed TSV ``header`` (``meta.ts``, ``key.id``, ...).

    ``meta.*`` other than ``meta.action`` is not stored; a ``key.*``/``value.*`` column the
    table lacks is an ``UnexpectedAnswer`` (its schema should have been applied first);
    a table column the header lacks is left NULL (an older schema version's job)."""
    from .errors import UnexpectedAnswer
    by_source = tdef.by_source()
    positions: Dict[str, int] = {}
    action = None
    for index, name in enumerate(header):
        if name == "meta.action":
            action = index
        elif name.startswith("meta.") or name == "meta":
            continue
        elif name in by_source:
            positions[by_source[name].name] = index
        else:
            raise UnexpectedAnswer("%s.%s: the data has a column %r that the table's schema "
                                   "(version %s) lacks" % (tdef.namespace, tdef.table, name,
                                                           tdef.version))
    for column in tdef.key:
        if column.name not in positions:
            raise UnexpectedAnswer("%s.%s: the data lacks the key column %s" % (
                tdef.namespace, tdef.table, column.source))
    return StagingLayout(len(header), positions, action)


class Dialect:
    """What differs between databases; the shared shape of every statement."""

    name = ""
    param = "%s"
    #: the longest identifier the database keeps
    max_identifier = 64

    # -- names ---------------------------------------------------------------------------------
    def ident(self, name: str) -> str:
        return '"%s"' % name.replace('"', '""')

    def literal(self, text: str) -> str:
        return "'%s'" % text.replace("'", "''")

    def table_name(self, namespace: str, table: str) -> Tuple[Optional[str], str]:
        """(schema, table) in the database; schema None where there are no schemas."""
        return None, "%s__%s" % (namespace, table)

    def qualified(self, namespace: str, table: str, suffix: str = "") -> str:
        schema, name = self.table_name(namespace, table)
        if schema is None:
            return self.ident(name + suffix)
        return "%s.%s" % (self.ident(schema), self.ident(name + suffix))

    def sync_table(self) -> str:
        return self.ident("instructure_dap__table_sync")

    def version_table(self) -> str:
        return self.ident("instructure_dap__database_version")

    def staging(self) -> str:
        return self.ident(STAGING)

    # -- bookkeeping ---------------------------------------------------------------------------
    def bookkeeping(self) -> List[str]:
        raise NotImplementedError

    def sync_select(self) -> str:
        p = self.param
        return ("SELECT %s FROM %s WHERE %s = %s AND %s = %s ORDER BY %s" % (
            ", ".join(self.ident(c) for c in SYNC_COLUMNS), self.sync_table(),
            self.ident("source_namespace"), p, self.ident("source_table"), p, self.ident("id")))

    def sync_select_all(self) -> str:
        return "SELECT %s FROM %s ORDER BY %s, %s" % (
            ", ".join(self.ident(c) for c in SYNC_COLUMNS), self.sync_table(),
            self.ident("source_namespace"), self.ident("source_table"))

    def sync_insert(self) -> str:
        columns = SYNC_COLUMNS[1:]
        return "INSERT INTO %s (%s) VALUES (%s)" % (
            self.sync_table(), ", ".join(self.ident(c) for c in columns),
            ", ".join([self.param] * len(columns)))

    def sync_update(self) -> str:
        sets = ("timestamp", "schema_version", "target_schema", "target_table",
                "schema_description_format", "schema_description")
        return "UPDATE %s SET %s WHERE %s = %s" % (
            self.sync_table(), ", ".join("%s = %s" % (self.ident(c), self.param) for c in sets),
            self.ident("id"), self.param)

    def sync_delete(self) -> str:
        return "DELETE FROM %s WHERE %s = %s AND %s = %s" % (
            self.sync_table(), self.ident("source_namespace"), self.param,
            self.ident("source_table"), self.param)

    def sync_target(self, namespace: str, table: str,
                    suffix: str = "") -> Tuple[Optional[str], str]:
        schema, name = self.table_name(namespace, table)
        return schema, name + suffix

    # -- tables --------------------------------------------------------------------------------
    def column_type(self, column: DbColumn, tdef: TableDef, suffix: str) -> str:
        raise NotImplementedError

    def column_ddl(self, column: DbColumn, tdef: TableDef, suffix: str) -> str:
        return "%s %s%s" % (self.ident(column.name), self.column_type(column, tdef, suffix),
                            "" if column.nullable else " NOT NULL")

    def create_table(self, tdef: TableDef, suffix: str = "") -> List[str]:
        raise NotImplementedError

    def drop_table(self, tdef: TableDef, suffix: str = "") -> List[str]:
        return ["DROP TABLE IF EXISTS %s" % self.qualified(tdef.namespace, tdef.table, suffix)]

    def swap_in(self, tdef: TableDef, old: Optional[TableDef]) -> List[str]:
        """Replace the live table (``old``, None when there is none) by the one built with
        :data:`NEW_SUFFIX`, in one transaction where DDL is transactional."""
        raise NotImplementedError

    def alter(self, tdef: TableDef, change: SchemaChange) -> List[str]:
        """Statements applying ``change`` to the live table (``tdef`` is the new schema)."""
        return ["ALTER TABLE %s ADD COLUMN %s" % (
            self.qualified(tdef.namespace, tdef.table), self.column_ddl(c, tdef, ""))
            for c in change.add_columns]

    def enum_additions(self, tdef: TableDef, change: SchemaChange) -> List[str]:
        """Statements adding enum values that must be committed before data uses them."""
        return []

    # -- loading -------------------------------------------------------------------------------
    def create_staging(self, width: int) -> List[str]:
        raise NotImplementedError

    def drop_staging(self) -> List[str]:
        return ["DROP TABLE IF EXISTS %s" % self.staging()]

    def staging_insert(self, width: int) -> str:
        return "INSERT INTO %s VALUES (%s)" % (self.staging(), ", ".join([self.param] * width))

    def direct_load(self, tdef: TableDef, layout: StagingLayout, suffix: str = ""
                    ) -> Optional[str]:
        """The statement that loads a snapshot's parts straight into the new table (no
        staging), or None where this database or these columns need staging."""
        return None

    def convert(self, column: DbColumn, expr: str, tdef: TableDef, suffix: str) -> str:
        """``expr`` (a staging text column) as the column's type."""
        raise NotImplementedError

    def _selected(self, tdef: TableDef, layout: StagingLayout, suffix: str
                  ) -> Tuple[List[str], List[str]]:
        names, values = [], []
        for column in tdef.columns:
            index = layout.positions.get(column.name)
            if index is None:
                continue
            names.append(self.ident(column.name))
            values.append(self.convert(column, "s.c%d" % index, tdef, suffix))
        return names, values

    def _not_deleted(self, layout: StagingLayout) -> str:
        if layout.action is None:
            return ""
        return " WHERE s.c%d IS NULL OR s.c%d <> 'D'" % (layout.action, layout.action)

    def insert_from_staging(self, tdef: TableDef, layout: StagingLayout, suffix: str = "",
                            upsert: bool = False) -> str:
        """Move the staging rows that are not deletes into the table (``upsert``: replacing
        the rows with the same key)."""
        names, values = self._selected(tdef, layout, suffix)
        return "%s %s (%s) SELECT %s FROM %s s%s%s" % (
            self._insert_verb(upsert), self.qualified(tdef.namespace, tdef.table, suffix),
            ", ".join(names), ", ".join(values), self.staging(), self._not_deleted(layout),
            self._on_conflict(tdef, names) if upsert else "")

    def _insert_verb(self, upsert: bool) -> str:
        return "INSERT INTO"

    def _on_conflict(self, tdef: TableDef, names: List[str]) -> str:
        """What an upsert adds after the SELECT: replace the row that has the same key."""
        return ""

    def delete_from_staging(self, tdef: TableDef, layout: StagingLayout) -> Optional[str]:
        """Delete the table's rows whose keys the staging rows mark ``D`` (None: no
        ``meta.action`` column, nothing to delete)."""
        raise NotImplementedError

    def _key_match(self, tdef: TableDef, layout: StagingLayout, target: str) -> str:
        return " AND ".join("%s.%s = %s" % (target, self.ident(c.name), self.convert(
            c, "s.c%d" % layout.positions[c.name], tdef, "")) for c in tdef.key)


# -- PostgreSQL -------------------------------------------------------------------------------

_PG_TYPES = {"int64": "bigint", "int32": "integer", "float": "double precision",
             "boolean": "boolean", "timestamp": "timestamp without time zone",
             "string_array": "text[]", "json": "jsonb", "uuid": "uuid"}


class PostgreSQL(Dialect):
    name = "postgresql"
    max_identifier = 63

    def table_name(self, namespace: str, table: str) -> Tuple[Optional[str], str]:
        return namespace, table

    def sync_table(self) -> str:
        return '"instructure_dap"."table_sync"'

    def version_table(self) -> str:
        return '"instructure_dap"."database_version"'

    def enum_type(self, tdef: TableDef, column: DbColumn, suffix: str = "") -> str:
        return "%s.%s" % (self.ident(tdef.namespace),
                          self.ident("%s%s__%s" % (tdef.table, suffix, column.name)))

    def bookkeeping(self) -> List[str]:
        return [
            'CREATE SCHEMA IF NOT EXISTS "instructure_dap"',
            'CREATE TABLE IF NOT EXISTS "instructure_dap"."table_sync" ('
            '"id" bigint GENERATED BY DEFAULT AS IDENTITY NOT NULL, '
            '"source_namespace" character varying(64) NOT NULL, '
            '"source_table" character varying(64) NOT NULL, '
            '"timestamp" timestamp without time zone NOT NULL, '
            '"schema_version" bigint NOT NULL, '
            '"target_schema" character varying(64), '
            '"target_table" character varying(64) NOT NULL, '
            '"schema_description_format" character varying(64) NOT NULL, '
            '"schema_description" text NOT NULL, '
            'CONSTRAINT "pk_table_sync" PRIMARY KEY ("id"))',
            'CREATE TABLE IF NOT EXISTS "instructure_dap"."database_version" ('
            '"version" bigint GENERATED BY DEFAULT AS IDENTITY NOT NULL, '
            'CONSTRAINT "pk_database_version" PRIMARY KEY ("version"))',
            'INSERT INTO "instructure_dap"."database_version" ("version") SELECT 1 '
            'WHERE NOT EXISTS (SELECT 1 FROM "instructure_dap"."database_version")',
        ]

    def column_type(self, column: DbColumn, tdef: TableDef, suffix: str) -> str:
        if column.kind == "enum":
            return self.enum_type(tdef, column, suffix)
        if column.kind == "string":
            return "character varying(%d)" % column.max_length if column.max_length else "text"
        return _PG_TYPES[column.kind]

    def create_table(self, tdef: TableDef, suffix: str = "") -> List[str]:
        table = self.qualified(tdef.namespace, tdef.table, suffix)
        out = ["CREATE SCHEMA IF NOT EXISTS %s" % self.ident(tdef.namespace)]
        for column in tdef.columns:
            if column.kind == "enum":
                out.append("CREATE TYPE %s AS ENUM (%s)" % (
                    self.enum_type(tdef, column, suffix),
                    ", ".join(self.literal(v) for v in column.values)))
        parts = [self.column_ddl(c, tdef, suffix) for c in tdef.columns]
        parts.append("CONSTRAINT %s PRIMARY KEY (%s)" % (
            self.ident("pk_%s%s" % (tdef.table, suffix)),
            ", ".join(self.ident(c.name) for c in tdef.key)))
        out.append("CREATE TABLE %s (%s)" % (table, ", ".join(parts)))
        if tdef.comment:
            out.append("COMMENT ON TABLE %s IS %s" % (table, self.literal(tdef.comment)))
        for column in tdef.columns:
            if column.comment:
                out.append("COMMENT ON COLUMN %s.%s IS %s" % (
                    table, self.ident(column.name), self.literal(column.comment)))
        return out

    def drop_table(self, tdef: TableDef, suffix: str = "") -> List[str]:
        out = super().drop_table(tdef, suffix)
        out += ["DROP TYPE IF EXISTS %s" % self.enum_type(tdef, c, suffix)
                for c in tdef.columns if c.kind == "enum"]
        return out

    def swap_in(self, tdef: TableDef, old: Optional[TableDef]) -> List[str]:
        out = self.drop_table(old) if old is not None else []
        out.append("ALTER TABLE %s RENAME TO %s" % (
            self.qualified(tdef.namespace, tdef.table, NEW_SUFFIX), self.ident(tdef.table)))
        out.append("ALTER TABLE %s RENAME CONSTRAINT %s TO %s" % (
            self.qualified(tdef.namespace, tdef.table),
            self.ident("pk_%s%s" % (tdef.table, NEW_SUFFIX)), self.ident("pk_%s" % tdef.table)))
        for column in tdef.columns:
            if column.kind == "enum":
                out.append("ALTER TYPE %s RENAME TO %s" % (
                    self.enum_type(tdef, column, NEW_SUFFIX),
                    self.ident("%s__%s" % (tdef.table, column.name))))
        return out

    def alter(self, tdef: TableDef, change: SchemaChange) -> List[str]:
        out = []
        for column in change.add_columns:
            if column.kind == "enum":
                out.append("CREATE TYPE %s AS ENUM (%s)" % (
                    self.enum_type(tdef, column),
                    ", ".join(self.literal(v) for v in column.values)))
        out += super().alter(tdef, change)
        for column in change.add_columns:
            if column.comment:
                out.append("COMMENT ON COLUMN %s.%s IS %s" % (
                    self.qualified(tdef.namespace, tdef.table), self.ident(column.name),
                    self.literal(column.comment)))
        return out

    def enum_additions(self, tdef: TableDef, change: SchemaChange) -> List[str]:
        # a new enum value cannot be used in the transaction that adds it: these are
        # committed first (IF NOT EXISTS: a rerun after a failure adds nothing twice)
        return ["ALTER TYPE %s ADD VALUE IF NOT EXISTS %s" % (
            self.enum_type(tdef, column), self.literal(value))
            for column, values in change.add_enum_values for value in values]

    def create_staging(self, width: int) -> List[str]:
        return ["CREATE TEMPORARY TABLE %s (%s) ON COMMIT DROP" % (
            self.staging(), ", ".join("c%d text" % i for i in range(width)))]

    def direct_load(self, tdef: TableDef, layout: StagingLayout, suffix: str = ""
                    ) -> Optional[str]:
        # COPY parses every type from DAP's text as it is but text[] (JSON arrays there)
        direct = layout.direct()
        if direct is None or any(_kind(tdef, n) == "string_array" for n in direct[1]):
            return None
        return "COPY %s (%s) FROM STDIN" % (self.qualified(tdef.namespace, tdef.table, suffix),
                                            ", ".join(self.ident(n) for n in direct[1]))

    def copy_staging(self, width: int) -> str:
        return "COPY %s (%s) FROM STDIN" % (self.staging(),
                                            ", ".join("c%d" % i for i in range(width)))

    def convert(self, column: DbColumn, expr: str, tdef: TableDef, suffix: str) -> str:
        kind = column.kind
        if kind == "string":
            return expr
        if kind == "string_array":
            # ARRAY(...) of no elements is '{}', never NULL; WITH ORDINALITY keeps the order
            return ("CASE WHEN %s IS NULL THEN NULL ELSE ARRAY(SELECT e FROM "
                    "jsonb_array_elements_text(%s::jsonb) WITH ORDINALITY AS a(e, n) ORDER BY n) "
                    "END" % (expr, expr))
        return "%s::%s" % (expr, self.column_type(column, tdef, suffix))

    def _on_conflict(self, tdef: TableDef, names: List[str]) -> str:
        keys = {self.ident(c.name) for c in tdef.key}
        updates = ["%s = EXCLUDED.%s" % (n, n) for n in names if n not in keys]
        return " ON CONFLICT (%s) DO %s" % (
            ", ".join(self.ident(c.name) for c in tdef.key),
            "UPDATE SET " + ", ".join(updates) if updates else "NOTHING")

    def delete_from_staging(self, tdef: TableDef, layout: StagingLayout) -> Optional[str]:
        if layout.action is None:
            return None
        return "DELETE FROM %s t USING %s s WHERE s.c%d = 'D' AND %s" % (
            self.qualified(tdef.namespace, tdef.table), self.staging(), layout.action,
            self._key_match(tdef, layout, "t"))


# -- MySQL / MariaDB --------------------------------------------------------------------------

# a uuid is binary(16) as the official client makes it (its 16 bytes, hex digits in order)
_MY_TYPES = {"int64": "bigint", "int32": "int", "float": "double", "boolean": "tinyint(1)",
             "uuid": "binary(16)",
             "timestamp": "datetime(6)", "string_array": "json", "json": "json"}


class MySQL(Dialect):
    name = "mysql"

    def ident(self, name: str) -> str:
        return "`%s`" % name.replace("`", "``")

    def literal(self, text: str) -> str:
        return "'%s'" % text.replace("\\", "\\\\").replace("'", "''")

    def bookkeeping(self) -> List[str]:
        return [
            "CREATE TABLE IF NOT EXISTS `instructure_dap__table_sync` ("
            "`id` bigint NOT NULL AUTO_INCREMENT, "
            "`source_namespace` varchar(64) NOT NULL, "
            "`source_table` varchar(64) NOT NULL, "
            "`timestamp` datetime(6) NOT NULL, "
            "`schema_version` bigint NOT NULL, "
            "`target_schema` varchar(64) NULL, "
            "`target_table` varchar(64) NOT NULL, "
            "`schema_description_format` varchar(64) NOT NULL, "
            "`schema_description` mediumtext NOT NULL, "
            "PRIMARY KEY (`id`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
            "CREATE TABLE IF NOT EXISTS `instructure_dap__database_version` ("
            "`version` bigint NOT NULL AUTO_INCREMENT, PRIMARY KEY (`version`)) "
            "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
            "INSERT INTO `instructure_dap__database_version` (`version`) SELECT 1 FROM DUAL "
            "WHERE NOT EXISTS (SELECT 1 FROM `instructure_dap__database_version`)",
        ]

    def column_type(self, column: DbColumn, tdef: TableDef, suffix: str) -> str:
        if column.kind == "enum":
            return "enum(%s) CHARACTER SET ascii COLLATE ascii_bin" % ", ".join(
                self.literal(v) for v in column.values)
        if column.kind == "string":
            if column.max_length:
                return "varchar(%d)" % column.max_length
            # a key must have a length in MySQL; values may be long texts
            return "varchar(255) COLLATE utf8mb4_bin" if column.key else "mediumtext"
        return _MY_TYPES[column.kind]

    def column_ddl(self, column: DbColumn, tdef: TableDef, suffix: str) -> str:
        text = super().column_ddl(column, tdef, suffix)
        if column.comment:
            text += " COMMENT %s" % self.literal(column.comment[:1024])
        return text

    def create_table(self, tdef: TableDef, suffix: str = "") -> List[str]:
        parts = [self.column_ddl(c, tdef, suffix) for c in tdef.columns]
        parts.append("PRIMARY KEY (%s)" % ", ".join(self.ident(c.name) for c in tdef.key))
        sql = "CREATE TABLE %s (%s) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4" % (
            self.qualified(tdef.namespace, tdef.table, suffix), ", ".join(parts))
        if tdef.comment:
            sql += " COMMENT=%s" % self.literal(tdef.comment[:2048])
        return [sql]

    def swap_in(self, tdef: TableDef, old: Optional[TableDef]) -> List[str]:
        live = self.qualified(tdef.namespace, tdef.table)
        new = self.qualified(tdef.namespace, tdef.table, NEW_SUFFIX)
        if old is None:
            return ["RENAME TABLE %s TO %s" % (new, live)]
        parked = self.qualified(tdef.namespace, tdef.table, OLD_SUFFIX)
        # one RENAME swaps both atomically: readers see the old table or the new one
        return ["RENAME TABLE %s TO %s, %s TO %s" % (live, parked, new, live),
                "DROP TABLE %s" % parked]

    def alter(self, tdef: TableDef, change: SchemaChange) -> List[str]:
        out = super().alter(tdef, change)
        for column, _ in change.add_enum_values:
            out.append("ALTER TABLE %s MODIFY COLUMN %s" % (
                self.qualified(tdef.namespace, tdef.table), self.column_ddl(column, tdef, "")))
        return out

    def create_staging(self, width: int) -> List[str]:
        return ["CREATE TEMPORARY TABLE %s (%s) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4" % (
            self.staging(), ", ".join("c%d longtext" % i for i in range(width)))]

    def drop_staging(self) -> List[str]:
        return ["DROP TEMPORARY TABLE IF EXISTS %s" % self.staging()]

    def load_staging(self, width: int, path: str) -> str:
        """LOAD DATA of one part's body (TSV, its header taken off) from ``path``: COPY's text
        format is LOAD DATA's default format (tab, newline, backslash escapes, \\N for NULL)."""
        return ("LOAD DATA LOCAL INFILE %s INTO TABLE %s CHARACTER SET utf8mb4 "
                "FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' "
                "(%s)" % (self.literal(path), self.staging(),
                                         ", ".join("c%d" % i for i in range(width))))

    def convert(self, column: DbColumn, expr: str, tdef: TableDef, suffix: str) -> str:
        kind = column.kind
        if kind == "int64" or kind == "int32":
            return "CAST(%s AS SIGNED)" % expr
        if kind == "boolean":
            return "(%s = 'true')" % expr
        if kind == "uuid":
            return "UNHEX(REPLACE(%s, '-', ''))" % expr
        if kind == "timestamp":
            return "CAST(REPLACE(REPLACE(%s, 'T', ' '), 'Z', '') AS DATETIME(6))" % expr
        return expr

    def _on_conflict(self, tdef: TableDef, names: List[str]) -> str:
        keys = {self.ident(c.name) for c in tdef.key}
        updates = ["%s = VALUES(%s)" % (n, n) for n in names if n not in keys] or [
            "%s = %s" % (n, n) for n in names if n in keys][:1]
        return " ON DUPLICATE KEY UPDATE " + ", ".join(updates)

    def delete_from_staging(self, tdef: TableDef, layout: StagingLayout) -> Optional[str]:
        if layout.action is None:
            return None
        # STRAIGHT_JOIN: staging first, then the key. Right after initdb InnoDB's statistics
        # may still say the table is empty, and the optimizer then scans the whole staging
        # table once per row of the table (minutes for 20,000 rows, hours for a million)
        return "DELETE t FROM %s s STRAIGHT_JOIN %s t ON %s WHERE s.c%d = 'D'" % (
            self.staging(), self.qualified(tdef.namespace, tdef.table),
            self._key_match(tdef, layout, "t"), layout.action)


# -- SQLite -----------------------------------------------------------------------------------

_LITE_TYPES = {"int64": "INTEGER", "int32": "INTEGER", "float": "REAL", "boolean": "INTEGER",
               "uuid": "TEXT",
               "string": "TEXT", "timestamp": "TEXT", "enum": "TEXT", "string_array": "TEXT",
               "json": "TEXT"}


class SQLite(Dialect):
    name = "sqlite"
    param = "?"
    max_identifier = 1024

    def bookkeeping(self) -> List[str]:
        return [
            'CREATE TABLE IF NOT EXISTS "instructure_dap__table_sync" ('
            '"id" INTEGER PRIMARY KEY AUTOINCREMENT, '
            '"source_namespace" TEXT NOT NULL, "source_table" TEXT NOT NULL, '
            '"timestamp" TEXT NOT NULL, "schema_version" INTEGER NOT NULL, '
            '"target_schema" TEXT, "target_table" TEXT NOT NULL, '
            '"schema_description_format" TEXT NOT NULL, "schema_description" TEXT NOT NULL)',
            'CREATE TABLE IF NOT EXISTS "instructure_dap__database_version" ('
            '"version" INTEGER PRIMARY KEY)',
            'INSERT INTO "instructure_dap__database_version" ("version") SELECT 1 '
            'WHERE NOT EXISTS (SELECT 1 FROM "instructure_dap__database_version")',
        ]

    def column_type(self, column: DbColumn, tdef: TableDef, suffix: str) -> str:
        return _LITE_TYPES[column.kind]

    def create_table(self, tdef: TableDef, suffix: str = "") -> List[str]:
        parts = [self.column_ddl(c, tdef, suffix) for c in tdef.columns]
        parts.append("PRIMARY KEY (%s)" % ", ".join(self.ident(c.name) for c in tdef.key))
        return ["CREATE TABLE %s (%s)" % (self.qualified(tdef.namespace, tdef.table, suffix),
                                          ", ".join(parts))]

    def swap_in(self, tdef: TableDef, old: Optional[TableDef]) -> List[str]:
        out = self.drop_table(old) if old is not None else []
        out.append("ALTER TABLE %s RENAME TO %s" % (
            self.qualified(tdef.namespace, tdef.table, NEW_SUFFIX),
            self.qualified(tdef.namespace, tdef.table)))
        return out

    def staging(self) -> str:
        return "temp.%s" % self.ident(STAGING)

    def direct_load(self, tdef: TableDef, layout: StagingLayout, suffix: str = ""
                    ) -> Optional[str]:
        # every field of a decoded line is bound by its number (?N, 1-based); the columns'
        # affinity makes numbers of the text, booleans need their CASE
        direct = layout.direct()
        if direct is None:
            return None
        skip, names = direct
        values = []
        for offset, name in enumerate(names):
            number = "?%d" % (skip + offset + 1)
            if _kind(tdef, name) == "boolean":
                number = "(CASE %s WHEN 'true' THEN 1 WHEN 'false' THEN 0 END)" % number
            values.append(number)
        return "INSERT INTO %s (%s) VALUES (%s)" % (
            self.qualified(tdef.namespace, tdef.table, suffix),
            ", ".join(self.ident(n) for n in names), ", ".join(values))

    def create_staging(self, width: int) -> List[str]:
        return ["CREATE TEMP TABLE %s (%s)" % (
            self.ident(STAGING), ", ".join("c%d" % i for i in range(width)))]

    def convert(self, column: DbColumn, expr: str, tdef: TableDef, suffix: str) -> str:
        kind = column.kind
        if kind in ("int64", "int32"):
            return "CAST(%s AS INTEGER)" % expr
        if kind == "float":
            return "CAST(%s AS REAL)" % expr
        if kind == "boolean":
            return "(CASE %s WHEN 'true' THEN 1 WHEN 'false' THEN 0 END)" % expr
        return expr

    def _insert_verb(self, upsert: bool) -> str:
        return "INSERT OR REPLACE INTO" if upsert else "INSERT INTO"

    def delete_from_staging(self, tdef: TableDef, layout: StagingLayout) -> Optional[str]:
        if layout.action is None:
            return None
        keys = ", ".join(self.ident(c.name) for c in tdef.key)
        converted = ", ".join(self.convert(c, "s.c%d" % layout.positions[c.name], tdef, "")
                              for c in tdef.key)
        return "DELETE FROM %s WHERE (%s) IN (SELECT %s FROM %s s WHERE s.c%d = 'D')" % (
            self.qualified(tdef.namespace, tdef.table), keys, converted, self.staging(),
            layout.action)


DIALECTS = {"postgresql": PostgreSQL(), "mysql": MySQL(), "sqlite": SQLite()}
