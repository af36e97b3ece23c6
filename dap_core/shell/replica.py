"""``Replica``: DAP tables kept in a database, one call per operation.

Example::

    from dap_core import Client, Replica, resolve_credentials

    with Client(base_url, resolve_credentials(client_id=..., client_secret=...)) as dap:
        replica = Replica(dap, "postgresql://dap@db.example.edu/canvas_data")
        replica.init("canvas", "accounts")      # snapshot -> table + checkpoint
        replica.sync("canvas", "accounts")      # changes since the checkpoint, applied
        replica.list()                          # what is replicated, with checkpoints
        replica.drop("canvas", "accounts")

Each table is its own unit: under the table's lock in the database, the data change and the
checkpoint (``instructure_dap.table_sync``) move in one transaction, so a run that fails or
is killed leaves the table and its checkpoint as they were before, or as after. DAP's query
job runs before the transaction opens; its parts stream into a staging table by the
database's bulk path, then set-based statements apply them.

MySQL commits DDL by itself; there a new table is built beside the live one under
``<table>__dap_new``, committed with a bookkeeping row that points at it, and renamed into
place; a run that finds such a row finishes the rename first (roll forward).
"""
from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from .. import errors
from ..dbschema import TableDef, schema_change, schema_description, table_def
from ..dburl import DatabaseUrl, parse_database_url
from ..dialects import NEW_SUFFIX, OLD_SUFFIX, staging_layout
from ..queries import IncrementalQuery, SnapshotQuery, check_name
from .database import Database, SyncRow, connect

__all__ = ["Replica", "ReplicaResult"]

log = logging.getLogger("dap.replica")


@dataclass(frozen=True)
class ReplicaResult:
    """What one operation did to one table.

    ``action``: ``init``, ``replace``, ``sync`` or ``drop``; ``rows``: the rows the job
    delivered (for ``sync``, the changes: upserts and deletes); ``checkpoint``: the point
    the next ``sync`` continues from."""

    namespace: str
    table: str
    action: str
    target: str
    rows: int = 0
    checkpoint: Optional[datetime] = None
    schema_version: Optional[int] = None
    job_id: Optional[str] = None
    schema_changed: bool = False

    def as_dict(self) -> Dict[str, Any]:
        from ..timestamps import format_timestamp
        return {"namespace": self.namespace, "table": self.table, "action": self.action,
                "target": self.target, "rows": self.rows,
                "checkpoint": format_timestamp(self.checkpoint) if self.checkpoint else None,
                "schema_version": self.schema_version, "job_id": self.job_id,
                "schema_changed": self.schema_changed}


def _stored_def(namespace: str, table: str, row: SyncRow) -> TableDef:
    try:
        schema = json.loads(row.description)
    except ValueError:
        raise errors.DatabaseError("%s.%s: the stored schema description is not JSON" % (
            namespace, table), "rebuild the table with dap initdb --replace") from None
    return table_def(namespace, table, {"schema": schema, "version": int(row.schema_version)})


class Replica:
    """DAP tables replicated into the database ``url`` (a connection string, a
    :class:`~dap_core.dburl.DatabaseUrl`, or None for SQLite in ``dap.db``).

    :param client: a :class:`~dap_core.Client` (its session is shared by every table).
    :param lock_wait: seconds to wait for another run's lock on a table, then
        ``DatabaseBusy``.
    """

    def __init__(self, client: Any, url: Union[str, DatabaseUrl, None] = None, *,
                 lock_wait: float = 0.0) -> None:
        self.client = client
        self.url = url if isinstance(url, DatabaseUrl) else parse_database_url(url)
        self.lock_wait = lock_wait
        self._memory: Optional[Database] = None
        self._memory_lock = threading.Lock()

    def __repr__(self) -> str:
        return "Replica(%s)" % self.url.redacted()

    # -- connections -------------------------------------------------------------------------
    def _open(self) -> Database:
        if self.url.dialect == "sqlite" and self.url.database == ":memory:":
            # every connection to :memory: is a new database: keep the one
            if self._memory is None:
                self._memory = connect(self.url)
            return _Borrowed(self._memory, self._memory_lock)  # type: ignore[return-value]
        return connect(self.url)

    def close(self) -> None:
        if self._memory is not None:
            self._memory.close()
            self._memory = None

    def __enter__(self) -> "Replica":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def target_name(self, namespace: str, table: str) -> str:
        schema, name = self.url_dialect().table_name(namespace, table)
        return name if schema is None else "%s.%s" % (schema, name)

    def url_dialect(self):
        from ..dialects import DIALECTS
        return DIALECTS[self.url.dialect]

    # -- the operations ------------------------------------------------------------------------
    def init(self, namespace: str, table: str, *, replace: bool = False) -> ReplicaResult:
        """Snapshot the table into the database and record its checkpoint.  A table that is
        already there is ``AlreadyInitialized`` unless ``replace``: then the new copy is
        built beside the old one and swapped in by one transaction."""
        self._check(namespace, table)
        with self._open() as db, db.table_lock(namespace, table, self.lock_wait):
            self._prepare(db, namespace, table)
            return self._init(db, namespace, table, replace)

    def sync(self, namespace: str, table: str, *, reinit_if_needed: bool = False
             ) -> ReplicaResult:
        """Apply the changes since the table's checkpoint and move it.  A table never
        initialized is initialized.  When DAP answers that a new snapshot is required,
        ``SnapshotRequired``, or with ``reinit_if_needed`` an ``init(replace=True)``."""
        self._check(namespace, table)
        with self._open() as db, db.table_lock(namespace, table, self.lock_wait):
            self._prepare(db, namespace, table)
            row = self._row(db, namespace, table)
            if row is None:
                log.info("%s.%s is not in the database yet: initializing it", namespace, table)
                return self._init(db, namespace, table, False)
            try:
                return self._sync(db, namespace, table, row)
            except errors.SnapshotRequired as exc:
                if not reinit_if_needed:
                    exc.hint = ("rebuild the table with dap initdb --replace --namespace %s "
                                "--table %s, or let syncdb do it with --reinit-if-needed" % (
                                    namespace, table))
                    raise
                log.warning("%s.%s: DAP requires a new snapshot (%s); rebuilding the table",
                            namespace, table, exc.message)
                return self._init(db, namespace, table, True)

    def sync_many(self, namespace: str, tables: Optional[Sequence[str]] = None, *,
                  init: bool = False, replace: bool = False, reinit_if_needed: bool = False,
                  concurrency: Optional[int] = None
                  ) -> Iterator[Tuple[str, Optional[ReplicaResult], Optional[BaseException]]]:
        """``sync`` (or with ``init``, ``init``) of several tables at once (None: every
        table of the namespace), ``concurrency`` at a time; ``(table, result, None)`` or
        ``(table, None, error)`` as each completes. One table failing stops none of the
        others."""
        from .pipeline import DEFAULT_CONCURRENCY, run_concurrently
        names = list(tables) if tables is not None else self.client.list_tables(namespace)

        def work(table: str) -> ReplicaResult:
            if init:
                return self.init(namespace, table, replace=replace)
            return self.sync(namespace, table, reinit_if_needed=reinit_if_needed)

        return run_concurrently(names, work, concurrency or DEFAULT_CONCURRENCY)

    def drop(self, namespace: str, table: str) -> ReplicaResult:
        """Drop the table, its enum types and its bookkeeping row, in one transaction (on
        MySQL: the row first, then the table)."""
        self._check(namespace, table)
        with self._open() as db, db.table_lock(namespace, table, self.lock_wait):
            self._prepare(db, namespace, table)
            row = self._row(db, namespace, table)
            exists = db.table_exists(namespace, table)
            if row is None and not exists:
                raise errors.InvalidInput("%s.%s is not in %s" % (
                    namespace, table, self.url.redacted()), "see dap listdb")
            tdef = _stored_def(namespace, table, row) if row is not None else None
            dialect = db.dialect
            statements = dialect.drop_table(tdef) if tdef is not None else [
                "DROP TABLE IF EXISTS %s" % dialect.qualified(namespace, table)]
            if dialect.name == "mysql":
                db.execute(dialect.sync_delete(), (namespace, table))
                db.execute_all(statements)
            else:
                with db.transaction():
                    db.execute_all(statements)
                    db.execute(dialect.sync_delete(), (namespace, table))
            log.info("%s.%s dropped from %s", namespace, table, self.url.redacted())
            return ReplicaResult(namespace, table, "drop", self.target_name(namespace, table),
                                 schema_version=tdef.version if tdef else None)

    def list(self) -> List[Dict[str, Any]]:
        """The replicated tables: namespace, table, target, checkpoint, schema version."""
        from ..timestamps import format_timestamp
        with self._open() as db:
            return [{"namespace": r.namespace, "table": r.table,
                     "target": r.target_table if not r.target_schema else "%s.%s" % (
                         r.target_schema, r.target_table),
                     "checkpoint": format_timestamp(r.timestamp),
                     "schema_version": int(r.schema_version)}
                    for r in db.all_sync_rows()]

    # -- the steps -----------------------------------------------------------------------------
    @staticmethod
    def _check(namespace: str, table: str) -> None:
        check_name("namespace", namespace)
        check_name("table", table)

    def _prepare(self, db: Database, namespace: str, table: str) -> None:
        db.ensure_bookkeeping()
        db.ensure_namespace(namespace)
        if db.dialect.name == "mysql":
            self._recover_mysql(db, namespace, table)

    def _row(self, db: Database, namespace: str, table: str) -> Optional[SyncRow]:
        rows = db.sync_rows(namespace, table)
        if len(rows) > 1:
            log.warning("%s.%s has %d bookkeeping rows; using the last", namespace, table,
                        len(rows))
        return rows[-1] if rows else None

    def _recover_mysql(self, db: Database, namespace: str, table: str) -> None:
        """Finish (or clear) what a MySQL run that was killed between its commit and its
        rename left behind."""
        row = self._row(db, namespace, table)
        _, live = db.dialect.table_name(namespace, table)
        if row is not None and row.target_table == live + NEW_SUFFIX:
            tdef = _stored_def(namespace, table, row)
            if db.table_exists(namespace, table, NEW_SUFFIX):
                log.warning("%s.%s: finishing the swap of a run that was interrupted",
                            namespace, table)
                if db.table_exists(namespace, table, OLD_SUFFIX):
                    db.execute_all(db.dialect.drop_table(tdef, OLD_SUFFIX))
                old = tdef if db.table_exists(namespace, table) else None
                db.execute_all(db.dialect.swap_in(tdef, old))
            db.execute(db.dialect.sync_update(), self._row_values(
                db, namespace, table, row.timestamp, tdef) + (row.id,))
        elif db.table_exists(namespace, table, NEW_SUFFIX):
            log.info("%s.%s: removing the half-built copy of a run that failed",
                     namespace, table)
            db.execute("DROP TABLE %s" % db.dialect.qualified(namespace, table, NEW_SUFFIX))
        if db.table_exists(namespace, table, OLD_SUFFIX):
            db.execute("DROP TABLE %s" % db.dialect.qualified(namespace, table, OLD_SUFFIX))

    def _row_values(self, db: Database, namespace: str, table: str, at: datetime,
                    tdef: TableDef, suffix: str = "") -> tuple:
        schema, name = db.dialect.sync_target(namespace, table, suffix)
        return (db.checkpoint_param(at), tdef.version, schema, name, "json",
                schema_description(tdef))

    def _save_row(self, db: Database, row: Optional[SyncRow], namespace: str, table: str,
                  at: datetime, tdef: TableDef, suffix: str = "") -> None:
        values = self._row_values(db, namespace, table, at, tdef, suffix)
        if row is None:
            db.execute(db.dialect.sync_insert(), (namespace, table) + values)
        else:
            db.execute(db.dialect.sync_update(), values + (row.id,))

    def _stage(self, db: Database, job: Any, tdef: TableDef, label: str, direct=None
               ) -> Tuple[int, Any]:
        """Stream the job's parts into the staging table: (rows, its layout or None when
        the result had no parts, or went straight into the table by ``direct``)."""
        holder: Dict[str, Any] = {}

        def on_header(header: List[str]):
            layout = staging_layout(tdef, header)
            holder["layout"] = layout
            return layout

        loader = db.loader(on_header, label, direct)
        try:
            self.client.load(job, loader, label)
        except BaseException:
            loader.abort()
            raise
        if loader.direct_sql is not None:
            return loader.rows, None  # in the table already: nothing to apply
        return loader.rows, holder.get("layout")

    def _staged_first(self, db: Database, job: Any, tdef: TableDef, label: str):
        """Where staging can fill outside the table's transaction (SQLite: its temporary
        tables take no lock on the database, so several tables download at once and only
        their short apply-and-commit waits for the write lock), do it now."""
        if not db.stages_apart:
            return None
        return self._stage(db, job, tdef, label)

    def _load(self, db: Database, job: Any, tdef: TableDef, label: str, apply,
              staged: Optional[Tuple[int, Any]] = None) -> int:
        """Staging (now, or ``staged`` before), then ``apply(layout)``; the rows loaded."""
        rows, layout = staged if staged is not None else self._stage(db, job, tdef, label)
        if layout is not None:
            apply(layout)
            db.execute_all(db.dialect.drop_staging())
        return rows

    def _init(self, db: Database, namespace: str, table: str, replace: bool) -> ReplicaResult:
        label = "%s.%s" % (namespace, table)
        row = self._row(db, namespace, table)
        exists = db.table_exists(namespace, table)
        if (row is not None or exists) and not replace:
            raise errors.AlreadyInitialized(
                "%s is already in %s%s" % (label, self.url.redacted(),
                                           "" if row is not None else
                                           " (a table of that name, not made by a DAP client)"),
                "update it with dap syncdb, or rebuild it with dap initdb --replace")
        old = _stored_def(namespace, table, row) if row is not None else None
        job = self.client.run(SnapshotQuery(namespace, table, "tsv", "condensed"))
        tdef = table_def(namespace, table, self.client.get_schema(namespace, table))
        if old is None and exists:
            old = tdef  # not ours: drop it by the names the new one would have
        dialect = db.dialect
        if dialect.name == "mysql":
            rows = self._init_mysql(db, job, tdef, row, old if exists else None, label)
        else:
            suffix = NEW_SUFFIX if exists else ""
            with db.transaction():
                dialect_statements = dialect.create_table(tdef, suffix)
                db.execute_all(dialect_statements)
                # a snapshot into a table made just now: straight in where the database can
                # (COPY into it, SQLite's INSERT with the conversions), else through staging
                staged = self._stage(db, job, tdef, label, direct=lambda layout: (
                    dialect.direct_load(tdef, layout, suffix)))
                rows = self._load(db, job, tdef, label, lambda layout: db.execute(
                    dialect.insert_from_staging(tdef, layout, suffix)), staged)
                if exists:
                    db.execute_all(dialect.swap_in(tdef, old))
                self._save_row(db, row, namespace, table, job.at, tdef)
        action = "replace" if exists else "init"
        from ..timestamps import format_timestamp
        log.info("%s: %s, %d rows, checkpoint %s", label, action, rows, format_timestamp(job.at))
        return ReplicaResult(namespace, table, action, self.target_name(namespace, table),
                             rows, job.at, tdef.version, job.id)

    def _init_mysql(self, db: Database, job: Any, tdef: TableDef, row: Optional[SyncRow],
                    old: Optional[TableDef], label: str) -> int:
        dialect = db.dialect
        namespace, table = tdef.namespace, tdef.table
        db.execute_all(dialect.drop_table(tdef, NEW_SUFFIX))
        db.execute_all(dialect.create_table(tdef, NEW_SUFFIX))
        try:
            with db.transaction():
                rows = self._load(db, job, tdef, label, lambda layout: db.execute(
                    dialect.insert_from_staging(tdef, layout, NEW_SUFFIX)))
                # the row points at the new table until the rename is done: a run killed in
                # between finds it and finishes the rename
                self._save_row(db, row, namespace, table, job.at, tdef, NEW_SUFFIX)
        except BaseException:
            try:
                db.execute_all(dialect.drop_table(tdef, NEW_SUFFIX))
            except Exception:  # the next run removes it
                pass
            raise
        db.execute_all(dialect.swap_in(tdef, old))
        row = self._row(db, namespace, table)
        self._save_row(db, row, namespace, table, job.at, tdef)
        return rows

    def _sync(self, db: Database, namespace: str, table: str, row: SyncRow) -> ReplicaResult:
        label = "%s.%s" % (namespace, table)
        if not db.table_exists(namespace, table):
            raise errors.DatabaseError(
                "%s has a checkpoint in %s but its table is missing" % (
                    label, self.url.redacted()),
                "rebuild it with dap initdb --replace, or remove it with dap dropdb")
        stored = _stored_def(namespace, table, row)
        query = IncrementalQuery(namespace, table, row.timestamp, None, "tsv", "condensed")
        job = self.client.run(query)
        tdef, change = stored, None
        version = getattr(job, "schema_version", None)
        if version is not None and int(version) > stored.version:
            newer = table_def(namespace, table, self.client.get_schema(namespace, table))
            change = schema_change(stored, newer)  # may refuse: SchemaChangeRefused
            tdef = newer
            log.info("%s: schema version %s -> %s%s", label, stored.version, newer.version,
                     ": %d new columns, %d enums with new values" % (
                         len(change.add_columns), len(change.add_enum_values))
                     if change else "")
        dialect = db.dialect
        if change:
            db.execute_all(dialect.enum_additions(tdef, change))
            if dialect.name == "mysql":
                # MySQL's ALTER commits by itself: apply what is not applied yet (a rerun
                # after a failure finds the columns there)
                present = set(db.column_names(namespace, table))
                from ..dbschema import SchemaChange
                pending = SchemaChange(
                    tuple(c for c in change.add_columns if c.name not in present),
                    change.add_enum_values)
                db.execute_all(dialect.alter(tdef, pending))
        counts: Dict[str, int] = {}

        def apply(layout) -> None:
            delete = dialect.delete_from_staging(tdef, layout)
            counts["deleted"] = db.execute(delete) if delete else 0
            counts["upserted"] = db.execute(dialect.insert_from_staging(tdef, layout, "",
                                                                        upsert=True))

        staged = self._staged_first(db, job, tdef, label)
        with db.transaction():
            if change and dialect.name != "mysql":
                db.execute_all(dialect.alter(tdef, change))
            rows = self._load(db, job, tdef, label, apply, staged)
            self._save_row(db, row, namespace, table, job.until, tdef)
        from ..timestamps import format_timestamp
        log.info("%s: sync %s -> %s, %d changes", label, format_timestamp(job.since),
                 format_timestamp(job.until), rows)
        return ReplicaResult(namespace, table, "sync", self.target_name(namespace, table),
                             rows, job.until, tdef.version, job.id, bool(change))


class _Borrowed:
    """The one connection to ``:memory:``, lent to one operation at a time; closing it
    does nothing."""

    def __init__(self, db: Database, lock: threading.Lock) -> None:
        self._db = db
        self._lock = lock

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    def __enter__(self) -> Database:
        self._lock.acquire()
        return self._db

    def __exit__(self, *exc: Any) -> None:
        self._lock.release()
