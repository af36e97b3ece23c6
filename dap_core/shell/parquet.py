"""The Parquet writer: a job's verified TSV parts in, one Parquet file of typed columns out.

DAP's TSV (PostgreSQL ``COPY`` text) already holds the table's columns, flattened as the
schema lays them out, so a part becomes columns without any Python work per record: a
chunk of lines is split into fields and each column typed from its bytes in bulk
(``tsvfields``), then encoded as one Parquet data page (``parquet_pages``: PLAIN values,
definition levels, Snappy, as fastparquet writes them).  A chunk's pages join the row group
being gathered (a column chunk of several pages), which is written once it holds
``PARQUET_BATCH_ROWS`` rows or ``PARQUET_BATCH_BYTES`` of TSV, a column after the other, to
ONE file whose footer is written once, at the end.  Memory holds one chunk and one row
group's compressed pages, whatever the table's size.  With ``DAP_PARQUET_WORKERS=N``,
large parts are encoded by worker processes while this one downloads and writes.

The column types (README: Output formats): integers -> int64, numbers -> double, booleans
-> boolean, ``date-time`` strings -> timestamps in microseconds, UTC; other strings and
enums -> UTF-8 texts; arrays and free-form objects -> their JSON text.  A snapshot's file
has a ``meta.action`` column only if its parts' headers have one (DAP's snapshots carry
``meta.ts`` only): not a column of nulls.

fastparquet (imported only here, only when Parquet is asked for) makes the file's schema
(``fastparquet.write`` of no rows), encodes page headers and the footer with its thrift
classes (``writer.write_thrift``) and compresses; the footer's list of row groups is
spliced from their encoded bytes (``_splice_point``), kept encoded because as objects they
take 30 times the memory.  This leans on fastparquet's internals, so setup.py pins the
range of fastparquet versions the tests pass on.

Any ``OSError`` from the output (a full disk) becomes ``OutputError`` (exit 12).
"""
from __future__ import annotations

import atexit
import collections
import contextlib
import gc
import io
import logging
import struct
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .. import columns as layout_of, copytext, errors
from .sinks import AtomicFile, SpoolSink
from .writers import output_errors

__all__ = ["ParquetWriter", "require_parquet", "PARQUET_BATCH_ROWS"]

#: a row group holds at most this many rows, or the lines of this many bytes of TSV (its
#: pages wait in memory, compressed, till it is whole)
PARQUET_BATCH_ROWS = 65_536
PARQUET_BATCH_BYTES = 8 * 1024 * 1024
#: lines are typed and encoded in chunks of this many bytes (a page of each column): the
#: CPU time is the same from 512 KiB to 2 MiB, the memory is not (the README's Benchmarks)
PARQUET_CHUNK_BYTES = 512 * 1024
#: a part is spooled in memory up to this size, then on disk
PARQUET_SPOOL_MEMORY = 1024 * 1024
PARQUET_COMPRESSION = "SNAPPY"
_PARQUET_MAGIC = b"PAR1"
#: pandas' dtype of each kind of column, for the schema fastparquet makes (texts: object)
_DTYPES = {"integer": "Int64", "number": "float64", "boolean": "boolean",
           "timestamp": "datetime64[us, UTC]"}
PARQUET_EXTRA_HINT = "install it with: pip install 'dap-cd2[parquet]' (or pip install fastparquet)"


def require_parquet():
    """``(fastparquet, pandas)``, or ``InvalidInput`` naming the extra to install."""
    try:
        import fastparquet
        import pandas
    except ImportError as exc:
        raise errors.InvalidInput("Parquet output needs fastparquet, which is not installed (%s)"
                                  % exc.name, PARQUET_EXTRA_HINT) from None
    return fastparquet, pandas


class ParquetWriter:
    """Verified TSV parts -> chunks -> pages -> row groups -> one Parquet file (see the module).

    ``snapshot=True``: the file has a ``meta.action`` column only if the first part's
    header has one; a later part that has it when the first did not is an
    ``UnexpectedAnswer`` rather than a value lost.  An incremental always has the column.
    Nothing is written to the file before a part verified, so a restarted part needs
    nothing undone there.
    """

    def __init__(self, target: AtomicFile, schema: Dict[str, Any], mode: Optional[str],
                 batch_rows: int = PARQUET_BATCH_ROWS, describe: str = "the output",
                 snapshot: bool = False) -> None:
        self.fastparquet, self.pandas = require_parquet()
        self.target = target
        self.describe = describe
        self._layout = (schema.get("schema", schema), mode or "expanded")
        self.columns = layout_of.columns_from_schema(*self._layout, action=not snapshot)
        #: whether the file has meta.action: a snapshot's first part decides (None till then)
        self._action: Optional[bool] = None if snapshot else True
        self.batch_rows = max(1, batch_rows)
        self.rows = 0
        self._groups: List[Any] = []      # each row group's metadata, for the footer
        self._first_group: Any = None     # the first, as fastparquet's object
        self._splice: Optional[Tuple[int, int]] = None  # see _keep
        self._metadata: Any = None        # the file's metadata (schema) once it is begun
        self._elements: List[Any] = []    # its schema's element of each column
        self._optional: List[bool] = []   # whether each column has definition levels
        self._end = 0                     # where the next row group goes
        #: each column's pages (parquet_pages.Page) of the row group being gathered
        self._pending: List[List[Any]] = [[] for _ in self.columns]
        self._planned = [0, 0]            # the rows and bytes of the chunks cut for them
        self._spool = SpoolSink(self._write_part, max_memory=PARQUET_SPOOL_MEMORY)
        target.close_handle()  # fastparquet opens the temporary file by name

    #: what ``Client._transfer``'s read-ahead may hold back: the whole next part (on disk
    #: past 1 MiB), so that it downloads while this one is converted, and little memory
    #: (Parquet's own takes most of the budget)
    read_ahead = {"hold_memory": 1024 * 1024, "hold_total": 1 << 40,
                  "queue_bytes": 2 * 1024 * 1024}

    # -- the part protocol ---------------------------------------------------------------------
    @output_errors
    def begin_part(self, index: int) -> None:
        self._spool.mark()

    @output_errors
    def feed(self, data: bytes) -> None:
        self._spool.write(data)

    @output_errors
    def restart_part(self) -> None:
        self._spool.rollback()

    @output_errors
    def end_part(self) -> None:
        self._spool.part_done()

    @output_errors
    def finish(self) -> None:
        self._flush()
        if self._metadata is None:
            self._begin()  # an empty table still has its typed columns
        if not self._groups:
            return  # the file as begun is whole: its schema and no row group
        footer = self._footer()
        with open(self.target.path, "r+b") as out:
            out.seek(self._end)
            out.write(footer + struct.pack("<I", len(footer)) + _PARQUET_MAGIC)
            out.truncate()

    @output_errors
    def commit(self) -> None:
        self.target.commit()

    def abort(self) -> None:
        self._spool.abort()
        self._pending = [[] for _ in self.columns]
        self.target.abort()

    # -- a part: its header, then chunks of lines encoded here or in the worker --------------
    def _write_part(self, spool) -> None:
        with _cyclic_gc_paused():
            names = _header(spool.readline(), self.describe)
            keys = [c.name for c in self.columns if c.path[0] == "key"]
            if not set(keys) <= set(names):  # data where the header should be, say
                raise errors.UnexpectedAnswer(
                    "a part of %s has a header without the table's key columns (%s)"
                    % (self.describe, ", ".join(k for k in keys if k not in names)))
            self._decide_action("meta.action" in names)
            if self._metadata is None:
                self._begin()
            start = spool.tell()
            size = spool.seek(0, io.SEEK_END) - start
            spool.seek(start)
            pool = _encoding_pool() if size >= PARQUET_PARALLEL_BYTES else None
            self._write_chunks(spool, names, pool)

    def _decide_action(self, carried: bool) -> None:
        """The first part decides whether a snapshot's file has meta.action (nothing is
        written yet); a later part that has it when the file does not is refused."""
        if self._action is None:
            self._action = carried
            if carried:
                self.columns = layout_of.columns_from_schema(*self._layout)
                self._pending = [[] for _ in self.columns]
        elif carried and not self._action:
            raise errors.UnexpectedAnswer(
                "the snapshot's parts disagree on meta.action: some carry it, the first "
                "ones did not (%s)" % self.describe)

    def _write_chunks(self, spool, names: List[str], pool) -> None:
        """The part's chunks are handed to the worker process, ``PARQUET_CHUNKS_AHEAD`` at a
        time, while this process writes the pages of those before them (with no worker,
        each is encoded here in its turn): the same pages and file either way."""
        window: "collections.deque[List[Any]]" = collections.deque()
        task = (names, self.columns, self._optional, self.describe)
        try:
            for chunk in self._chunks(spool):
                window.append([chunk, _submit(pool, chunk, *task), None])
                if len(window) > PARQUET_CHUNKS_AHEAD or pool is None:
                    self._take(window, task)
            while window:
                self._take(window, task)
        finally:
            for _, future, _ in window:
                if future is not None:
                    future.cancel()

    def _chunks(self, spool):
        """``(lines, number of the first line, rows, closes a row group)`` of the rest of a
        part, in chunks of whole lines of about ``PARQUET_CHUNK_BYTES``, cut where a row
        group reaches ``batch_rows``; a row group also closes once its chunks hold
        ``PARQUET_BATCH_BYTES`` of TSV.  Row groups go on from one part into the next."""
        for lines, first, rows in _line_chunks(spool):
            while rows:
                take = min(rows, self.batch_rows - self._planned[0])
                if take < rows:
                    cut = _after_line(lines, take)
                    head, lines = lines[:cut], lines[cut:]
                else:
                    head = lines
                self._planned[0] += take
                self._planned[1] += len(head)
                closes = (self._planned[0] >= self.batch_rows
                          or self._planned[1] >= PARQUET_BATCH_BYTES)
                if closes:
                    self._planned = [0, 0]
                yield head, first, take, closes
                rows -= take
                first += take

    def _take(self, window, task) -> None:
        """The pages of the oldest chunk, from the worker (or encoded here when the worker
        is gone), into the pending row group.  While the worker is still at it, this
        process encodes the latest chunks the worker has not begun (both stay busy)."""
        oldest = window[0]
        while oldest[1] is not None and not oldest[1].done():
            for entry in reversed(window):
                if entry[1] is not None and entry[1].cancel():
                    entry[1] = None
                    try:
                        entry[2] = _encode_chunk(entry[0][0], entry[0][1], *task)
                    except errors.DapError as exc:  # raised in its turn, after those before
                        entry[2] = exc
                    break
            else:
                break  # nothing left to take over: wait for the worker
        (lines, first, rows, closes), future, result = window.popleft()
        if isinstance(result, errors.DapError):
            raise result
        if future is not None:
            try:
                result = future.result()
            except errors.DapError:
                raise
            except Exception as exc:  # the worker died, or cannot be reached: carry on here
                _pool_failed(exc)
        if result is None:
            result = _encode_chunk(lines, first, *task)
        for pending, page in zip(self._pending, result):
            pending.append(page)
        self.rows += rows
        if closes:
            self._flush()

    # -- writing -----------------------------------------------------------------------------
    def _flush(self) -> None:
        """Write the pages gathered so far as one row group: a column's pages one after
        the other (its column chunk), a column after the other."""
        if not self._pending[0]:  # every column has a page of every chunk: meta.ts's
            return
        from . import parquet_pages
        rows = sum(page.rows for page in self._pending[0])
        thrift = self.fastparquet.parquet_thrift
        chunks: List[Any] = []
        with open(self.target.path, "r+b") as out:
            out.seek(self._end)
            for index, column in enumerate(self.columns):
                pages, self._pending[index] = self._pending[index], []
                offset = out.tell()
                for page in pages:
                    out.write(page.data)
                chunks.append(parquet_pages.column_chunk(
                    pages, offset, self._elements[index], column.name, PARQUET_COMPRESSION,
                    thrift))
            self._end = out.tell()
        self._keep(parquet_pages.row_group(chunks, rows))

    # -- the footer ------------------------------------------------------------------------------
    # A row group's metadata as fastparquet's objects takes some 2 KB of memory per column,
    # 30 times its encoded size: for a table of millions of rows, tens of MiB by the end.
    # Each row group's is kept encoded instead (thrift compact protocol), and the footer is
    # the file's metadata encoded with its first row group, the list of one spliced into the
    # list of all -- once this gave the very bytes fastparquet gives, else the objects are kept.

    def _keep(self, group) -> None:
        encoded = self._thrift(group)
        if not self._groups:
            self._first_group = group
            metadata = self._metadata
            metadata.row_groups, metadata.num_rows = [group], group.num_rows
            self._splice = _splice_point(self._thrift(metadata), encoded)
            metadata.row_groups, metadata.num_rows = [], 0
        self._groups.append(encoded if self._splice else group)

    def _footer(self) -> bytes:
        metadata = self._metadata
        metadata.num_rows = self.rows
        if not self._splice:
            metadata.row_groups = self._groups
            return self._thrift(metadata)
        metadata.row_groups = [self._first_group]
        template = self._thrift(metadata)
        where = _splice_point(template, self._groups[0])
        if where is None:  # pragma: no cover - found in the same metadata at the first group
            raise errors.DapError("cannot write the Parquet footer of %s" % self.describe)
        at, end = where
        return b"".join([template[:at], _struct_list_header(len(self._groups))]
                        + self._groups + [template[end:]])

    def _thrift(self, obj) -> bytes:
        buffer = io.BytesIO()
        self.fastparquet.writer.write_thrift(buffer, obj)
        return buffer.getvalue()

    def _begin(self) -> None:
        """Write the file of no rows that fastparquet makes of the columns' types, and keep
        its metadata: row groups then go where its footer was."""
        pd = self.pandas
        frame = pd.DataFrame({column.name: pd.Series([], dtype=_DTYPES.get(column.type, object))
                              for column in self.columns})
        self.fastparquet.write(self.target.path, frame, write_index=False,
                               compression=PARQUET_COMPRESSION, stats=False,
                               object_encoding="utf8", times="int64")
        self._metadata = self.fastparquet.ParquetFile(self.target.path).fmd
        self._elements = [e for e in self._metadata.schema if e.type is not None]
        names = [e.name.decode() if isinstance(e.name, bytes) else e.name
                 for e in self._elements]
        thrift = self.fastparquet.parquet_thrift
        micros = thrift.ConvertedType.TIMESTAMP_MICROS
        if names != [c.name for c in self.columns] or any(
                c.type == "timestamp" and e.converted_type != micros
                for c, e in zip(self.columns, self._elements)):
            raise errors.DapError("fastparquet made an unexpected schema of %d columns"
                                  % len(self._elements))
        optional = thrift.FieldRepetitionType.OPTIONAL
        self._optional = [e.repetition_type == optional for e in self._elements]
        self._end = len(_PARQUET_MAGIC)


# -- a part's lines -------------------------------------------------------------------------------

def _header(line: bytes, describe: str) -> List[str]:
    """The column names of a part's header line (COPY text, as every line)."""
    try:
        names = [copytext.decode_field(f) for f in line.decode("utf-8").rstrip("\n").split("\t")]
    except UnicodeDecodeError:
        names = []
    if not line.endswith(b"\n") or not names or any(not n for n in names) \
            or len(set(names)) != len(names):
        raise errors.UnexpectedAnswer(
            "a part of %s does not start with a header row of distinct column names" % describe)
    return names  # type: ignore[return-value]


def _line_chunks(spool):
    """``(lines, number of the first line, number of lines)`` of each chunk of whole lines
    (about ``PARQUET_CHUNK_BYTES``) of the rest of a part; line 1 is the header."""
    carried = b""
    line = 2
    while True:
        data = spool.read(PARQUET_CHUNK_BYTES)
        if not data:
            if carried:  # a last line without its newline
                yield carried, line, 1
            return
        end = data.rfind(b"\n") + 1
        if not end:
            carried += data
            continue
        lines = carried + data[:end] if carried else data[:end]
        carried = data[end:]
        count = lines.count(b"\n")
        yield lines, line, count
        line += count


def _after_line(lines: bytes, count: int) -> int:
    """Where line ``count`` (of 1, 2, ...) of ``lines`` ends, its newline included."""
    at = -1
    for _ in range(count):
        at = lines.index(b"\n", at + 1)
    return at + 1


def _encode_chunk(lines: bytes, first_line: int, names: Sequence[str], columns,
                  optional: Sequence[bool], describe: str = "the output"):
    """The Parquet page of each column of a chunk of a part's lines: a function of its
    bytes, so that it runs in the worker process as well as here."""
    from fastparquet import parquet_thrift

    from . import parquet_pages, tsvfields  # numpy: only with the parquet extra
    fields = tsvfields.Fields(lines, len(names), first_line, describe)
    where = {name: index for index, name in enumerate(names)}
    with _cyclic_gc_paused():
        return [parquet_pages.encode_page(
                    column.type, fields.column(column.type, where.get(column.name), column.name),
                    nullable, PARQUET_COMPRESSION, parquet_thrift)
                for column, nullable in zip(columns, optional)]


# -- the worker process that encodes large parts' chunks ------------------------------------------

#: a part of at least this many bytes of TSV is encoded in a worker process
#: (``ParquetWriter._write_chunks``); smaller ones here, with the same pages
PARQUET_PARALLEL_BYTES = 4 * 1024 * 1024
#: chunks handed to the worker ahead of the one being gathered (this process encodes those
#: the worker has not begun while it waits for the oldest)
PARQUET_CHUNKS_AHEAD = 4
#: worker processes (shared by the tables written at once); None: ``DAP_PARQUET_WORKERS``
#: from the environment, else none: on the project's 2-core machine a worker takes a fifth
#: off the wall time and adds some 30 MiB (PSS: pandas' pages, shared with the parent,
#: count twice in RSS), past the 100 MiB a table's files may take (the README's Benchmarks)
PARQUET_WORKERS: Optional[int] = None

_POOL_LOCK = threading.RLock()
_POOL: Dict[str, Any] = {"pool": None, "failed": False}


def _workers() -> int:
    if PARQUET_WORKERS is not None:
        return PARQUET_WORKERS
    import os
    try:
        return max(0, int(os.environ.get("DAP_PARQUET_WORKERS", "0") or 0))
    except ValueError:
        return 0


def _encoding_pool():
    """The process pool that encodes chunks (started at its first use), or None where none
    can be started or it failed: then chunks are encoded in this process.

    Its worker is forked (POSIX): it starts at once with numpy and pandas already imported,
    and never runs the importing program's main module again (as a spawned one would, a
    library caller's script without a ``__main__`` guard included).  The child runs only
    ``_encode_chunk``: no logging, no I/O but its pipe, no lock another thread may hold."""
    with _POOL_LOCK:
        workers = _workers()
        if _POOL["pool"] is None and not _POOL["failed"] and workers > 0:
            try:
                import concurrent.futures
                import multiprocessing
                if "fork" not in multiprocessing.get_all_start_methods():
                    raise NotImplementedError("no fork on this system")
                _POOL["pool"] = concurrent.futures.ProcessPoolExecutor(
                    max_workers=workers, mp_context=multiprocessing.get_context("fork"),
                    initializer=_worker_start)
                atexit.register(_stop_pool)
            except (ImportError, OSError, NotImplementedError, ValueError) as exc:
                _pool_failed(exc)
        return _POOL["pool"]


def _worker_start() -> None:
    """In the worker: Ctrl-C and SIGTERM are the parent's to handle (a terminal sends them
    to the whole process group; the parent's handlers, inherited, must not run here), and
    the worker ends when its parent is gone, even by SIGKILL."""
    import os
    import signal
    import time
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="dap-parent-watch", daemon=True).start()


def _stop_pool() -> None:
    """At exit, before the interpreter tears its modules down (the pool's clean-up needs
    them): the worker ends."""
    with _POOL_LOCK:
        pool, _POOL["pool"] = _POOL["pool"], None
    if pool is not None:
        pool.shutdown(wait=True)


def _pool_failed(exc: BaseException) -> None:
    """No more worker processes: what is left is encoded here."""
    with _POOL_LOCK:
        pool, _POOL["pool"] = _POOL["pool"], None
        told, _POOL["failed"] = _POOL["failed"], True
    if not told:
        logging.getLogger("dap.writers").warning(
            "Parquet: no worker process (%s); encoding in this process",
            errors.one_line(exc, 200))
    if pool is not None:
        try:
            pool.shutdown(wait=False, cancel_futures=True)
        except TypeError:  # pragma: no cover - Python 3.8
            pool.shutdown(wait=False)


def _submit(pool, chunk: Tuple[bytes, int, int, bool], names: Sequence[str], columns,
            optional: Sequence[bool], describe: str):
    """A future of ``_encode_chunk`` of ``chunk`` in the worker, or None (encoded here later)."""
    if pool is None or _POOL["failed"]:
        return None
    lines, first = chunk[0], chunk[1]
    try:
        return pool.submit(_encode_chunk, lines, first, names, columns, optional, describe)
    except Exception as exc:  # a pool broken or shut down
        _pool_failed(exc)
        return None


# -- the footer's bytes ---------------------------------------------------------------------------

def _splice_point(metadata: bytes, group: bytes) -> Optional[Tuple[int, int]]:
    """Where, in the file's metadata encoded with one row group, the list of row groups
    begins (its header: one element, a struct) and where it ends; None if not found once."""
    at = metadata.find(group)
    if at < 1 or metadata[at - 1] != 0x1C or metadata.find(group, at + 1) != -1:
        return None
    return at - 1, at + len(group)


def _struct_list_header(count: int) -> bytes:
    """The thrift compact protocol's header of a list of ``count`` structs."""
    if count < 15:
        return bytes([count << 4 | 0x0C])
    header = bytearray([0xFC])
    while count > 0x7F:
        header.append(count & 0x7F | 0x80)
        count >>= 7
    header.append(count)
    return bytes(header)


@contextlib.contextmanager
def _cyclic_gc_paused():
    """No cyclic garbage collection while a part is encoded: it makes few objects and no
    cycles, yet enough to set off collections of every object in the process (pandas'
    included)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()

