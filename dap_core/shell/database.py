"""Connections to the replica's database: statements, transactions, per-table locks, and
the loaders that stream DAP's TSV parts into a staging table by each database's bulk path.

* PostgreSQL (psycopg 3): ``COPY dap_staging FROM STDIN``, the parts' bytes as they arrive.
* MySQL / MariaDB (PyMySQL): ``LOAD DATA LOCAL INFILE`` from a named pipe that the part's
  bytes are written into, when the server allows it; else multi-row ``INSERT``s.
* SQLite (the standard library): rows decoded from the TSV, ``executemany``.

A loader speaks the part protocol of ``Client.load`` (``begin_part``, ``feed``,
``restart_part``, ``end_part``, ``finish``): each part sits in a savepoint, so a part that
must be downloaded again rolls back to where it began. The first line of each part is its
header; the first header decides the staging layout (``on_header``).

The drivers of PostgreSQL and MySQL are extras, imported only here and only when used.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import threading
import time
import zlib
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple, Type

from .. import errors
from ..copytext import LineSplitter, decode_lines
from ..dburl import DatabaseUrl
from ..dialects import DIALECTS, Dialect, StagingLayout

__all__ = ["Database", "connect", "SyncRow"]

log = logging.getLogger("dap.database")

#: rows per executemany / multi-row INSERT batch
BATCH_ROWS = 2000
#: how long a connection attempt may take
CONNECT_TIMEOUT = 10
#: how long SQLite waits for another writer's transaction (a different table's load)
SQLITE_BUSY_TIMEOUT = 3600.0

_EXTRAS = {"postgresql": ("psycopg", "postgresql"), "mysql": ("pymysql", "mysql")}


class SyncRow:
    """A row of ``instructure_dap.table_sync``."""

    __slots__ = ("id", "namespace", "table", "timestamp", "schema_version", "target_schema",
                 "target_table", "description_format", "description")

    def __init__(self, row: Sequence[Any]) -> None:
        (self.id, self.namespace, self.table, timestamp, self.schema_version,
         self.target_schema, self.target_table, self.description_format,
         self.description) = row
        self.timestamp = _aware(timestamp)


def _aware(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value
    from ..timestamps import parse_timestamp
    text = str(value)
    if not text.endswith(("Z", "z")) and "+" not in text[10:]:
        text += "Z"  # stored without a zone: UTC by the layout's rule
    return parse_timestamp(text)


def _require(dialect: str):
    module, extra = _EXTRAS[dialect]
    try:
        return __import__(module)
    except ImportError:
        raise errors.InvalidInput(
            "a %s database needs the Python package %s, which is not installed" % (
                "PostgreSQL" if dialect == "postgresql" else "MySQL", module),
            "pip install 'dap-cd2[%s]' (or: pip install %s)" % (
                extra, "'psycopg[binary]'" if module == "psycopg" else "PyMySQL")) from None


def connect(url: DatabaseUrl) -> "Database":
    """A connection to the database ``url`` names (``DatabaseError`` when it fails)."""
    cls = {"postgresql": PostgresDatabase, "mysql": MySQLDatabase, "sqlite": SQLiteDatabase}
    return cls[url.dialect](url)


class Database:
    """One connection. Statements run in autocommit mode unless inside :meth:`transaction`."""

    dialect: Dialect
    driver_errors: Tuple[Type[BaseException], ...] = ()
    #: the staging table may be filled before the table's transaction opens
    stages_apart = False

    def __init__(self, url: DatabaseUrl) -> None:
        self.url = url
        self.conn: Any = None
        self._in_transaction = False

    # -- errors --------------------------------------------------------------------------------
    def failure(self, exc: BaseException, doing: str) -> errors.DatabaseError:
        text = errors.one_line(exc, 300)
        for secret in self.url.secrets:
            text = text.replace(secret, "***")
        return errors.DatabaseError("%s %s failed: %s" % (self.url.redacted(), doing, text))

    @contextlib.contextmanager
    def guarded(self, doing: str) -> Iterator[None]:
        try:
            yield
        except self.driver_errors as exc:
            raise self.failure(exc, doing) from None

    # -- statements ----------------------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        log.debug("sql: %s", sql[:500])
        with self.guarded("a statement"):
            cur = self.conn.cursor()
            try:
                cur.execute(sql, tuple(params)) if params else cur.execute(sql)
                return cur.rowcount
            finally:
                cur.close()

    def execute_all(self, statements: Sequence[str]) -> None:
        for sql in statements:
            self.execute(sql)

    def query(self, sql: str, params: Sequence[Any] = ()) -> List[Tuple[Any, ...]]:
        with self.guarded("a query"):
            cur = self.conn.cursor()
            try:
                cur.execute(sql, tuple(params)) if params else cur.execute(sql)
                return [tuple(r) for r in cur.fetchall()]
            finally:
                cur.close()

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # closing a broken connection must not hide the first error
                pass
            self.conn = None

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- transactions --------------------------------------------------------------------------
    def begin(self) -> None:
        self.execute("BEGIN")
        self._in_transaction = True

    def commit(self) -> None:
        self.execute("COMMIT")
        self._in_transaction = False

    def rollback(self) -> None:
        if self._in_transaction and self.conn is not None:
            self._in_transaction = False
            try:
                self.conn.cursor().execute("ROLLBACK")
            except Exception:  # the connection may be gone; the server rolls back then
                pass

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self.begin()
        try:
            yield
        except BaseException:
            self.rollback()
            raise
        self.commit()

    # -- locks ---------------------------------------------------------------------------------
    def lock_name(self, namespace: str, table: str) -> str:
        return "dap:%s.%s" % (namespace, table)

    @contextlib.contextmanager
    def table_lock(self, namespace: str, table: str, wait: float) -> Iterator[None]:
        """Hold the table's lock (another run on the same table waits ``wait`` seconds at
        most, then ``DatabaseBusy``)."""
        deadline = time.monotonic() + max(0.0, wait)
        while not self._try_lock(namespace, table):
            if time.monotonic() >= deadline:
                raise errors.DatabaseBusy(
                    "%s.%s is being replicated by another run (its lock in %s is taken)" % (
                        namespace, table, self.url.redacted()))
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        try:
            yield
        finally:
            self._unlock(namespace, table)

    def _try_lock(self, namespace: str, table: str) -> bool:
        raise NotImplementedError

    def _unlock(self, namespace: str, table: str) -> None:
        raise NotImplementedError

    # -- the layout ------------------------------------------------------------------------------
    def ensure_bookkeeping(self) -> None:
        raise NotImplementedError

    def table_exists(self, namespace: str, table: str, suffix: str = "") -> bool:
        raise NotImplementedError

    def column_names(self, namespace: str, table: str) -> List[str]:
        raise NotImplementedError

    def sync_rows(self, namespace: str, table: str) -> List[SyncRow]:
        return [SyncRow(r) for r in self.query(self.dialect.sync_select(), (namespace, table))]

    def all_sync_rows(self) -> List[SyncRow]:
        if not self._bookkeeping_exists():
            return []
        return [SyncRow(r) for r in self.query(self.dialect.sync_select_all())]

    def _bookkeeping_exists(self) -> bool:
        raise NotImplementedError

    def ensure_namespace(self, namespace: str) -> None:
        """Where tables live in schemas, the namespace's schema exists afterwards."""

    def checkpoint_param(self, at: datetime) -> Any:
        """The checkpoint as the driver writes a ``timestamp without time zone`` (UTC)."""
        return at.astimezone(timezone.utc).replace(tzinfo=None)

    # -- loading -------------------------------------------------------------------------------
    def loader(self, on_header: Callable[[List[str]], StagingLayout], label: str,
               direct: Optional[Callable[[StagingLayout], Optional[str]]] = None) -> "Loader":
        """A loader of parts into staging; with ``direct`` (the layout -> the statement that
        loads straight into the table, or None), straight into the table where it can."""
        raise NotImplementedError


# -- the loaders --------------------------------------------------------------------------------

class Loader:
    """The part protocol over one database: each part in a savepoint, its header line
    checked, its body handed to :meth:`_body` / :meth:`_end_body`."""

    def __init__(self, db: Database, on_header: Callable[[List[str]], StagingLayout],
                 label: str, direct: Optional[Callable[[StagingLayout], Optional[str]]] = None
                 ) -> None:
        self.db = db
        self.on_header = on_header
        self.label = label
        self.direct = direct
        #: the statement loading straight into the table (None: into staging), and how many
        #: leading fields of each line (meta.*) it leaves out
        self.direct_sql: Optional[str] = None
        self.direct_skip = 0
        self.layout: Optional[StagingLayout] = None
        self.header: Optional[List[str]] = None
        self.rows = 0
        self._pending = b""     # the header line, until its newline arrives
        self._in_body = False
        self._part_rows = 0

    def begin_part(self, index: int) -> None:
        self._pending = b""
        self._in_body = False
        self._part_rows = 0

    def feed(self, data: bytes) -> None:
        if not self._in_body:
            self._pending += data
            end = self._pending.find(b"\n")
            if end < 0:
                return
            header = self._pending[:end].decode("utf-8").rstrip("\r").split("\t")
            data = self._pending[end + 1:]
            self._pending = b""
            if self.header is None:
                self.header = header
                self.layout = self.on_header(header)
                if self.direct is not None:
                    self.direct_sql = self.direct(self.layout)
                if self.direct_sql is not None:
                    self.direct_skip = self.layout.direct()[0]  # type: ignore[index]
                else:
                    self._prepare()
            elif header != self.header:
                raise errors.UnexpectedAnswer("%s: the parts of one result have different "
                                              "headers" % self.label)
            self.db.execute("SAVEPOINT dap_part")
            self._in_body = True
            self._begin_body()
        if data:
            self._body(data)

    def restart_part(self) -> None:
        if self._in_body:
            self._abort_body()
            self.db.execute("ROLLBACK TO SAVEPOINT dap_part")
            # and end it: in SQLite an outermost savepoint is the transaction itself, which
            # ROLLBACK TO leaves open; the part begins again with a new savepoint
            self.db.execute("RELEASE SAVEPOINT dap_part")
        self._pending = b""
        self._in_body = False
        self._part_rows = 0

    def end_part(self) -> None:
        if not self._in_body:
            if self._pending.strip():
                raise errors.UnexpectedAnswer("%s: a part ends inside its header" % self.label)
            return  # an empty part: no header, no rows
        self._part_rows = self._end_body()
        self.db.execute("RELEASE SAVEPOINT dap_part")
        self.rows += self._part_rows
        self._in_body = False

    def finish(self) -> None:
        pass

    def abort(self) -> None:
        if self._in_body:
            try:
                self._abort_body()
            except Exception:
                pass
            self._in_body = False

    # what each database does with a part's body
    def _prepare(self) -> None:
        # a staging table left by a failed run on this connection goes first
        self.db.execute_all(self.db.dialect.drop_staging())
        self.db.execute_all(self.db.dialect.create_staging(len(self.header or ())))

    def _begin_body(self) -> None: ...

    def _body(self, data: bytes) -> None:
        raise NotImplementedError

    def _end_body(self) -> int:
        raise NotImplementedError

    def _abort_body(self) -> None: ...


class RowLoader(Loader):
    """Decodes the TSV in Python and inserts rows in batches (SQLite; MySQL without LOCAL
    INFILE)."""

    def _begin_body(self) -> None:
        self._lines = LineSplitter()
        self._count = 0

    def _body(self, data: bytes) -> None:
        whole = self._lines.feed(data)
        if whole:
            self._insert(whole)

    def _insert(self, whole: bytes) -> None:
        width = len(self.header or ())
        try:
            rows = decode_lines(whole, width)
        except (ValueError, UnicodeDecodeError) as exc:
            raise errors.UnexpectedAnswer(
                "%s: the TSV is malformed: %s" % (self.label, exc)) from exc
        for start in range(0, len(rows), BATCH_ROWS):
            # MySQL's and SQLite's Database have it (RowLoader serves them alone)
            self.db.insert_rows(rows[start:start + BATCH_ROWS], width,  # type: ignore[attr-defined]
                                self.direct_sql)
        self._count += len(rows)

    def _end_body(self) -> int:
        rest = self._lines.rest()
        if rest:
            self._insert(rest + b"\n")
        return self._count


class CopyLoader(Loader):
    """PostgreSQL: the body goes to ``COPY ... FROM STDIN`` as it arrives."""

    def _begin_body(self) -> None:
        sql = self.direct_sql or self.db.dialect.copy_staging(  # type: ignore[attr-defined]
            len(self.header or ()))
        # straight into the table: each line without its leading meta fields (a TSV field
        # holds no tab or newline, so a regular expression cuts them exactly, in C)
        self._lines = LineSplitter() if self.direct_sql else None
        self._cut = re.compile(rb"(?m)^(?:[^\t\n]*\t){%d}" % self.direct_skip)
        with self.db.guarded("COPY"):
            self._cursor = self.db.conn.cursor()
            self._copy_cm = self._cursor.copy(sql)
            self._copy = self._copy_cm.__enter__()

    def _body(self, data: bytes) -> None:
        if self._lines is not None:
            data = self._cut.sub(b"", self._lines.feed(data))
        with self.db.guarded("COPY"):
            self._copy.write(data)

    def _end_body(self) -> int:
        with self.db.guarded("COPY"):
            if self._lines is not None and self._lines.rest():
                self._copy.write(self._cut.sub(b"", self._lines.rest() + b"\n"))
            self._copy_cm.__exit__(None, None, None)
            count = self._cursor.rowcount
            self._cursor.close()
        return count

    def _abort_body(self) -> None:
        try:
            self._copy_cm.__exit__(RuntimeError, RuntimeError("part restarted"), None)
        except Exception:  # psycopg reports the cancelled COPY: expected
            pass
        self._cursor.close()


class PipeLoader(Loader):
    """MySQL: ``LOAD DATA LOCAL INFILE`` reads a named pipe in a second thread while the
    body is written into it: no copy of the part on disk, memory flat."""

    def _begin_body(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="dap-load-")
        self._path = os.path.join(self._dir, "part.tsv")
        os.mkfifo(self._path, 0o600)
        self._result: List[Any] = []
        # MySQL's dialect has it (PipeLoader serves MySQL alone)
        sql = self.db.dialect.load_staging(  # type: ignore[attr-defined]
            len(self.header or ()), self._path)

        def run() -> None:
            try:
                cur = self.db.conn.cursor()
                cur.execute(sql)
                self._result.append(cur.rowcount)
                cur.close()
            except BaseException as exc:  # handed to the main thread
                self._result.append(exc)

        self._thread = threading.Thread(target=run, name="dap-load-data", daemon=True)
        self._thread.start()
        self._fd: Optional[int] = None
        # the reader opens the pipe when the server asks for the file; if the statement
        # fails first, nobody ever will: poll instead of blocking
        while self._fd is None:
            try:
                self._fd = os.open(self._path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                if not self._thread.is_alive():
                    self._finish_thread()
                    # the open failed only because the statement ended; its own error,
                    # if any, was raised just above
                    raise errors.DatabaseError(  # pragma: no cover
                        "LOAD DATA did not start") from None
                time.sleep(0.002)
        os.set_blocking(self._fd, True)
        # both ends are open now: the pipe's name is no longer needed, and gone at once it
        # cannot be left behind in the temporary directory by a run killed mid-load
        self._remove_pipe()

    def _remove_pipe(self) -> None:
        try:
            os.unlink(self._path)
            os.rmdir(self._dir)
        except OSError:
            pass

    def _body(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._fd, view)  # type: ignore[arg-type]
            except BrokenPipeError:
                self._close_pipe()
                self._finish_thread()
                # as above: the statement's own error, if any, is raised by _finish_thread
                raise errors.DatabaseError(  # pragma: no cover
                    "LOAD DATA stopped reading") from None
            view = view[written:]

    def _close_pipe(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _finish_thread(self) -> int:
        self._thread.join()
        self._remove_pipe()  # the statement failed before it opened the pipe
        outcome = self._result[0] if self._result else 0
        if isinstance(outcome, BaseException):
            if isinstance(outcome, self.db.driver_errors):
                raise self.db.failure(outcome, "LOAD DATA")
            raise outcome
        return int(outcome)

    def _end_body(self) -> int:
        self._close_pipe()
        return self._finish_thread()

    def _abort_body(self) -> None:
        self._close_pipe()
        try:
            self._finish_thread()
        except Exception:
            pass


# -- PostgreSQL ---------------------------------------------------------------------------------

class PostgresDatabase(Database):
    dialect = DIALECTS["postgresql"]

    def __init__(self, url: DatabaseUrl) -> None:
        super().__init__(url)
        psycopg = _require("postgresql")
        self.driver_errors = (psycopg.Error,)
        options = {"dbname": url.database, "autocommit": True,
                   "connect_timeout": CONNECT_TIMEOUT, "application_name": "dap"}
        for name, value in (("host", url.host), ("port", url.port), ("user", url.user),
                            ("password", url.password)):
            if value is not None:
                options[name] = value
        options.update(url.option_dict())
        with self.guarded("connecting"):
            self.conn = psycopg.connect(**options)

    def _try_lock(self, namespace: str, table: str) -> bool:
        return bool(self.query("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))",
                               (self.lock_name(namespace, table),))[0][0])

    def _unlock(self, namespace: str, table: str) -> None:
        if self.conn is not None and not self.conn.closed:
            self.query("SELECT pg_advisory_unlock(hashtextextended(%s, 0))",
                       (self.lock_name(namespace, table),))

    def ensure_bookkeeping(self) -> None:
        if self._bookkeeping_exists():
            return
        with self.transaction():
            # two first runs at once must not both create the schema
            self.query("SELECT pg_advisory_xact_lock(hashtextextended('dap:bookkeeping', 0))")
            self.execute_all(self.dialect.bookkeeping())

    def ensure_namespace(self, namespace: str) -> None:
        # two tables' first runs at once would both create the schema: one at a time
        if self.query("SELECT 1 FROM pg_namespace WHERE nspname = %s", (namespace,)):
            return
        with self.transaction():
            self.query("SELECT pg_advisory_xact_lock(hashtextextended('dap:bookkeeping', 0))")
            self.execute("CREATE SCHEMA IF NOT EXISTS %s" % self.dialect.ident(namespace))

    def _bookkeeping_exists(self) -> bool:
        return bool(self.query("SELECT to_regclass('instructure_dap.table_sync') IS NOT NULL "
                               "AND to_regclass('instructure_dap.database_version') IS NOT NULL"
                               )[0][0])

    def table_exists(self, namespace: str, table: str, suffix: str = "") -> bool:
        return bool(self.query(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
            (namespace, table + suffix)))

    def column_names(self, namespace: str, table: str) -> List[str]:
        return [r[0] for r in self.query(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
            "AND table_name = %s ORDER BY ordinal_position", (namespace, table))]

    def loader(self, on_header, label: str, direct=None) -> Loader:
        return CopyLoader(self, on_header, label, direct)


# -- MySQL / MariaDB ---------------------------------------------------------------------------

class MySQLDatabase(Database):
    dialect = DIALECTS["mysql"]

    def __init__(self, url: DatabaseUrl) -> None:
        super().__init__(url)
        pymysql = _require("mysql")
        self.driver_errors = (pymysql.Error,)
        password = url.password if url.password is not None else os.environ.get("MYSQL_PWD")
        options = dict(host=url.host or "localhost", port=url.port or 3306,
                       user=url.user or "root", database=url.database, charset="utf8mb4",
                       autocommit=True, local_infile=True, connect_timeout=CONNECT_TIMEOUT)
        if password is not None:
            options["password"] = password
        with self.guarded("connecting"):
            self.conn = pymysql.connect(**options)
            cur = self.conn.cursor()
            # the layout's datetimes hold UTC; keep the session from converting anything
            cur.execute("SET time_zone = '+00:00'")
            cur.execute("SELECT @@local_infile")
            self.local_infile = bool(int(cur.fetchone()[0]))
            cur.close()

    def begin(self) -> None:
        self.execute("START TRANSACTION")
        self._in_transaction = True

    def lock_name(self, namespace: str, table: str) -> str:
        # GET_LOCK names are server-wide: the database is part of the name (at most 64)
        name = "dap:%s:%s.%s" % (self.url.database, namespace, table)
        return name if len(name) <= 64 else "dap:%08x" % zlib.crc32(name.encode())

    def _try_lock(self, namespace: str, table: str) -> bool:
        return self.query("SELECT GET_LOCK(%s, 0)", (self.lock_name(namespace, table),))[0][0] == 1

    def _unlock(self, namespace: str, table: str) -> None:
        if self.conn is not None and self.conn.open:
            self.query("SELECT RELEASE_LOCK(%s)", (self.lock_name(namespace, table),))

    def ensure_bookkeeping(self) -> None:
        if self._bookkeeping_exists():
            return
        self.query("SELECT GET_LOCK(%s, 60)", ("dap:%s:bookkeeping" % self.url.database,))
        try:
            self.execute_all(self.dialect.bookkeeping())
        finally:
            self.query("SELECT RELEASE_LOCK(%s)", ("dap:%s:bookkeeping" % self.url.database,))

    def _bookkeeping_exists(self) -> bool:
        return len(self.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() "
            "AND table_name IN ('instructure_dap__table_sync', "
            "'instructure_dap__database_version')")) == 2

    def table_exists(self, namespace: str, table: str, suffix: str = "") -> bool:
        _, name = self.dialect.table_name(namespace, table)
        return bool(self.query(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = DATABASE() "
            "AND table_name = %s", (name + suffix,)))

    def column_names(self, namespace: str, table: str) -> List[str]:
        _, name = self.dialect.table_name(namespace, table)
        return [r[0] for r in self.query(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = DATABASE() "
            "AND table_name = %s ORDER BY ordinal_position", (name,))]

    def insert_rows(self, rows: Sequence[Tuple[Optional[str], ...]], width: int,
                    sql: Optional[str] = None) -> None:
        # one multi-row INSERT per batch: PyMySQL's executemany rewrites INSERT ... VALUES
        # into one statement
        with self.guarded("an INSERT"):
            cur = self.conn.cursor()
            cur.executemany(sql or self.dialect.staging_insert(width), rows)
            cur.close()

    def loader(self, on_header, label: str, direct=None) -> Loader:
        if self.local_infile:
            return PipeLoader(self, on_header, label)
        log.info("%s: the server refuses LOAD DATA LOCAL INFILE; loading with INSERTs", label)
        return RowLoader(self, on_header, label)


# -- SQLite --------------------------------------------------------------------------------------

class _LockFiles:
    """One descriptor per lock file per process, shared by its connections: POSIX record
    locks belong to the process, and closing any descriptor of the file would drop every
    lock the process holds on it (another thread's table among them)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict = {}  # path -> [fd, users]
        self._held: set = set()  # (path, offset) held by a thread of this process

    def hold(self, path: str, offset: int) -> bool:
        """Take byte ``offset`` of the lock file for this process (False: held already, by
        this process's other thread or by another process)."""
        import fcntl
        with self._lock:
            if (path, offset) in self._held:
                return False  # record locks do not exclude the process's own threads
            fd = self._open[path][0]
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
            except OSError:
                return False
            self._held.add((path, offset))
            return True

    def let_go(self, path: str, offset: int) -> None:
        import fcntl
        with self._lock:
            if (path, offset) in self._held:
                self._held.discard((path, offset))
                fcntl.lockf(self._open[path][0], fcntl.LOCK_UN, 1, offset)

    def acquire(self, path: str) -> int:
        with self._lock:
            entry = self._open.get(path)
            if entry is None:
                entry = self._open[path] = [os.open(path, os.O_RDWR | os.O_CREAT, 0o644), 0]
            entry[1] += 1
            return entry[0]

    def release(self, path: str) -> None:
        with self._lock:
            entry = self._open.get(path)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] == 0:
                os.close(entry[0])
                del self._open[path]


_LOCK_FILES = _LockFiles()


class SQLiteDatabase(Database):
    dialect = DIALECTS["sqlite"]
    stages_apart = True

    def __init__(self, url: DatabaseUrl) -> None:
        super().__init__(url)
        import sqlite3
        self.driver_errors = (sqlite3.Error,)
        self.path = url.database
        self._lock_fd: Optional[int] = None
        self._locked: dict = {}
        if self.path != ":memory:":
            directory = os.path.dirname(os.path.abspath(self.path))
            if not os.path.isdir(directory):
                raise errors.DatabaseError("the directory of the SQLite database %s does not "
                                           "exist" % self.path,
                                           "create it, or give another sqlite:///path")
        with self.guarded("opening"):
            self.conn = sqlite3.connect(self.path, timeout=SQLITE_BUSY_TIMEOUT,
                                        isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA foreign_keys = ON")
            if self.path != ":memory:":
                self._use_wal()

    def _use_wal(self) -> None:
        """WAL, so readers of the replica never block a sync nor wait for it. It is the
        file's own setting, made once; switching needs the database to itself, so a
        connection opened while another table's run writes leaves it to a later one."""
        import sqlite3
        if self.conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
            return
        try:
            self.conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError:  # busy: another connection is writing right now
            pass

    def begin(self) -> None:
        # IMMEDIATE: take the write lock now, not at the first write halfway through
        self.execute("BEGIN IMMEDIATE")
        self._in_transaction = True

    def _lock_file(self) -> Optional[int]:
        if self.path == ":memory:":
            return None
        if self._lock_fd is None:
            self._lock_fd = _LOCK_FILES.acquire(self._lock_path())
        return self._lock_fd

    def _try_lock(self, namespace: str, table: str) -> bool:
        if self._lock_file() is None:
            return True
        # one byte of the lock file per table: different tables never wait for each other
        offset = zlib.crc32(("%s.%s" % (namespace, table)).encode()) & 0x7FFFFFFF
        if not _LOCK_FILES.hold(self._lock_path(), offset):
            return False
        self._locked[(namespace, table)] = offset
        return True

    def _unlock(self, namespace: str, table: str) -> None:
        offset = self._locked.pop((namespace, table), None)
        if offset is not None and self._lock_fd is not None:
            _LOCK_FILES.let_go(self._lock_path(), offset)

    def _lock_path(self) -> str:
        return os.path.abspath(self.path) + ".dap-lock"

    def close(self) -> None:
        super().close()
        if self._lock_fd is not None:
            _LOCK_FILES.release(self._lock_path())
            self._lock_fd = None

    def ensure_bookkeeping(self) -> None:
        if self._bookkeeping_exists():
            return
        with self.transaction():
            self.execute_all(self.dialect.bookkeeping())

    def _bookkeeping_exists(self) -> bool:
        return len(self.query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN "
            "('instructure_dap__table_sync', 'instructure_dap__database_version')")) == 2

    def table_exists(self, namespace: str, table: str, suffix: str = "") -> bool:
        _, name = self.dialect.table_name(namespace, table)
        return bool(self.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                               (name + suffix,)))

    def column_names(self, namespace: str, table: str) -> List[str]:
        _, name = self.dialect.table_name(namespace, table)
        return [r[1] for r in self.query("PRAGMA table_info(%s)" % self.dialect.ident(name))]

    def checkpoint_param(self, at: datetime) -> Any:
        from ..timestamps import format_timestamp
        return format_timestamp(at)

    def insert_rows(self, rows: Sequence[Tuple[Optional[str], ...]], width: int,
                    sql: Optional[str] = None) -> None:
        with self.guarded("an INSERT"):
            self.conn.executemany(sql or self.dialect.staging_insert(width), rows)

    def loader(self, on_header, label: str, direct=None) -> Loader:
        return RowLoader(self, on_header, label, direct)
