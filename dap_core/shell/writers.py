"""Per-format writers: the decompressed bytes of a job's parts in, one output per table out.

A writer sees a part as ``begin_part(i)``, ``feed(bytes)`` (any number of times),
``end_part()`` once it verified, or ``restart_part()`` when it must be fed again from its
first byte.  ``finish()`` ends the output; the sink's ``commit`` makes it appear.

* :class:`StreamWriter` (jsonl, json, csv, tsv): bytes go through the core's
  ``records.PartMerger`` (one CSV/TSV header, JSON array framing, row counting) and straight
  on to the sink.  No per-row Python: the merger works on bytes.  The merger's state is
  copied at each part's start so that a restart rolls it back together with the sink.
* :class:`ParquetWriter`: each verified part (JSONL, spooled) is parsed a chunk of lines at
  a time, cut into columns by the core (``records.records_to_columns``), typed into numpy
  arrays by the table's schema, and written to ONE Parquet file, a row group per few MiB of
  JSON, with fastparquet (imported only here, and only when Parquet is asked for).  Memory
  stays the same whatever the table's size.  A snapshot's file has no ``meta.action``
  column, as DAP's snapshot records carry ``meta.ts`` only (unless its records do carry
  one: see ``ParquetWriter``).

Any ``OSError`` from the output (a full disk) becomes ``OutputError`` (exit 12).
"""
from __future__ import annotations

import atexit
import collections
import contextlib
import copy
import functools
import gc
import io
import logging
import struct
import threading
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .. import errors, records
from . import fast
from .sinks import AtomicFile, SpoolSink

__all__ = ["StreamWriter", "ParquetWriter", "require_parquet", "output_errors",
           "PARQUET_BATCH_ROWS"]

# Memory (what `bench/run.py` measures: peak RSS under 100 MiB, of which importing pandas
# and fastparquet takes some 75) is one row group of typed columns, one chunk of parsed
# records and fastparquet's buffers for one column; and how the heap holds up under them.
#: a row group holds at most this many rows, or the records of this many bytes of JSON
#: (typed, a row takes about half its JSON in memory)
PARQUET_BATCH_ROWS = 65_536
PARQUET_BATCH_BYTES = 6 * 1024 * 1024
#: records are typed in chunks of this many bytes of JSON (parsed, they take several
#: times their text in memory) ...
PARQUET_CHUNK_BYTES = 192 * 1024
#: ... parsed from reads of this many bytes of whole lines: large buffers coming and going
#: between allocations that stay fragment the heap, so that memory only grows
PARQUET_READ_BYTES = 16 * 1024
#: a part is spooled in memory up to this size, then on disk
PARQUET_SPOOL_MEMORY = 1024 * 1024
PARQUET_COMPRESSION = "SNAPPY"
_PARQUET_MAGIC = b"PAR1"
_SEPARATOR = "\x1f"  # between the texts of a column packed into one string
PARQUET_EXTRA_HINT = "install it with: pip install 'dap-cd2[parquet]' (or pip install fastparquet)"


def output_errors(method):
    """Turn an ``OSError`` of the output into ``OutputError`` naming the output."""

    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except BrokenPipeError:
            raise  # the reader went away: not a failure of the output (see cli.py)
        except OSError as exc:
            raise errors.OutputError("writing %s failed: %s" % (
                self.describe, exc.strerror or exc)) from exc

    return guarded


def require_parquet():
    """``(fastparquet, pandas)``, or ``InvalidInput`` naming the extra to install."""
    try:
        import fastparquet
        import pandas
    except ImportError as exc:
        raise errors.InvalidInput("Parquet output needs fastparquet, which is not installed (%s)"
                                  % exc.name, PARQUET_EXTRA_HINT) from None
    return fastparquet, pandas


class StreamWriter:
    """jsonl / json / csv / tsv through ``records.PartMerger`` to a sink."""

    def __init__(self, fmt: str, sink, describe: str = "the output",
                 empty_header: Optional[Callable[[], str]] = None) -> None:
        self.format = fmt
        self.sink = sink
        self.describe = describe
        self.merger = records.PartMerger(fmt)
        self._saved = None
        self._index = -1
        self.written = 0
        self._written_at_mark = 0
        self._empty_header = empty_header

    @property
    def rows(self) -> int:
        return self.merger.rows

    @output_errors
    def begin_part(self, index: int) -> None:
        self._index = index
        self._saved = copy.deepcopy(self.merger)
        self._written_at_mark = self.written
        self.sink.mark()

    @output_errors
    def feed(self, data: bytes) -> None:
        out = self.merger.feed(self._index, data)
        if out:
            self.sink.write(out)
            self.written += len(out)

    @output_errors
    def restart_part(self) -> None:
        self.merger = copy.deepcopy(self._saved)
        self.written = self._written_at_mark
        self.sink.rollback()

    @output_errors
    def end_part(self) -> None:
        out = self.merger.end_part()
        if out:
            self.sink.write(out)
            self.written += len(out)
        self.sink.part_done()

    @output_errors
    def finish(self) -> None:
        self.sink.mark()
        out = self.merger.finish()
        if (self.format in ("csv", "tsv") and not self.merger.header_seen
                and self._empty_header is not None):
            # no part had a header (no parts at all): the schema gives the columns
            out = self._empty_header().encode("utf-8") + (out or b"")
        if out:
            self.sink.write(out)
            self.written += len(out)
        self.sink.part_done()

    @output_errors
    def commit(self) -> None:
        self.sink.commit()

    def abort(self) -> None:
        self.sink.abort()


class ParquetWriter:
    """Verified JSONL parts -> typed row groups -> one Parquet file, written with fastparquet.

    The columns are the table's (``records.columns_from_schema``).  ``snapshot=True``: the
    file has a ``meta.action`` column only if the snapshot's records carry one, as the
    first chunk of records says -- DAP's snapshots do not (``meta.ts`` only), so their
    files have no such column rather than one of nulls (nor of invented U's); should a
    later record of such a snapshot carry ``meta.action`` after all, that is an
    ``UnexpectedAnswer`` rather than a value lost.  An incremental always has the column.

    Each verified part (spooled) is read ``PARQUET_READ_BYTES`` of whole lines at a time and
    parsed (``records.jsonl_records``); every ``PARQUET_CHUNK_BYTES`` of them the records
    are cut into columns (``records.records_to_columns``), typed into numpy arrays, and
    dropped.  The typed values gather, across parts, in arrays reused by every row group
    (``_Gathered``, ``_GatheredTexts``); a row group of at most ``batch_rows`` rows or the
    records of ``PARQUET_BATCH_BYTES`` of JSON is written a column at a time.  So memory
    holds one chunk of records and one row group of typed columns, whatever the table's
    size.

    The file is fastparquet's own layout written a row group at a time: its schema is what
    ``fastparquet.write`` makes of an empty frame of the columns' types
    (``records.parquet_type``), a row group is ``fastparquet.writer.make_row_group`` of
    each column, and the footer is written once, by ``finish``
    (``fastparquet.write(append=True)`` would read and rewrite the footer for every row
    group: quadratic in their number).  Nothing is written to the file before a part
    verified, so a restarted part needs nothing undone there.
    """

    def __init__(self, target: AtomicFile, schema: Dict[str, Any], mode: Optional[str],
                 batch_rows: int = PARQUET_BATCH_ROWS, describe: str = "the output",
                 snapshot: bool = False) -> None:
        self.fastparquet, self.pandas = require_parquet()
        import numpy
        from pandas.api.types import infer_dtype
        self._numpy = numpy
        self._types = _ColumnTypes(numpy, self.pandas, infer_dtype)
        self.target = target
        self.describe = describe
        self._layout = (schema.get("schema", schema), mode or "expanded")
        self.columns = records.columns_from_schema(*self._layout, action=not snapshot)
        # a snapshot's first records decide whether meta.action is a column after all
        self._watch_action = snapshot
        self._decided = not snapshot
        self.batch_rows = max(1, batch_rows)
        self.rows = 0
        self._groups: List[Any] = []      # each row group's metadata, for the footer
        self._first_group: Any = None     # the first, as fastparquet's object
        self._splice: Optional[Tuple[int, int]] = None  # see _keep
        self._metadata: Any = None        # the file's metadata (schema) once it is begun
        self._elements: List[Any] = []    # its schema's element of each column
        self._end = 0                     # where the next row group goes
        self._pending = self._gatherers()
        self._pending_rows = 0
        self._pending_bytes = 0
        self._spool = SpoolSink(self._write_part, max_memory=PARQUET_SPOOL_MEMORY)
        # orjson when the extra ``fast`` is installed (and not turned off): the same records
        self._parse_lines = fast.lines_parser()
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
        for gathered in self._pending:
            gathered.clear()
        self.target.abort()

    # -- records to typed columns ------------------------------------------------------------
    def _write_part(self, spool) -> None:
        with _cyclic_gc_paused():
            size = spool.seek(0, io.SEEK_END)
            spool.seek(0)
            pool = _typing_pool() if size >= PARQUET_PARALLEL_BYTES else None
            if pool is None:
                self._write_lines(spool)
            else:
                self._write_chunks(spool, pool)

    # -- a large part: typed in a worker process, written here ---------------------------------
    def _write_chunks(self, spool, pool) -> None:
        """The part's chunks (the very chunks ``_write_lines`` makes) are parsed and typed in
        the worker process, ``PARQUET_CHUNKS_AHEAD`` at a time, while this process gathers
        the typed chunks before them and writes row groups: both cores work.  The typed
        values are the same, and so are the row groups (a chunk that straddles two is cut
        typed, see ``_cut``) and the file."""
        # a snapshot still deciding on meta.action: the worker types the column too, and it
        # is dropped here if the first records lack it
        columns = (records.columns_from_schema(*self._layout) if self._watch_action
                   else self.columns)
        parse = fast.orjson_lines if self._parse_lines is not None else None
        # each entry: [chunk, its future in the worker or None, its typed values or None]
        window: "collections.deque[List[Any]]" = collections.deque()
        try:
            for chunk in self._chunks(spool):
                window.append([chunk, _submit(pool, chunk, columns, parse, self._watch_action),
                               None])
                if len(window) > PARQUET_CHUNKS_AHEAD:
                    self._take(window, columns, parse)
            while window:
                self._take(window, columns, parse)
        finally:
            for _, future, _ in window:
                if future is not None:
                    future.cancel()

    def _chunks(self, spool):
        """``(lines, number of the first line, size)`` of each chunk of whole lines, cut as
        ``_write_lines`` cuts them."""
        pieces: List[bytes] = []
        size = 0
        begun: List[bytes] = []
        line = first = 1
        while True:
            data = spool.read(PARQUET_READ_BYTES)
            end = data.rfind(b"\n") + 1
            if data and not end:
                begun.append(data)
                continue
            if begun:
                lines = b"".join(begun + [data[:end]])
                begun = []
            else:
                lines = data[:end] if end < len(data) else data
            if end < len(data):
                begun.append(data[end:])
            if lines:
                pieces.append(lines)
                line += lines.count(b"\n")
                size += len(lines)
            if size >= PARQUET_CHUNK_BYTES or (not data and pieces):
                yield b"".join(pieces), first, size
                pieces, size, first = [], 0, line
            if not data:
                break

    def _take(self, window, columns, parse) -> None:
        """The typed values of the oldest chunk, from the worker (or typed here when the
        worker is gone), into the pending row group.  While the worker is still at it, this
        process types the latest chunks the worker has not begun (both stay busy)."""
        oldest = window[0]
        while oldest[1] is not None and not oldest[1].done():
            for entry in reversed(window):
                if entry[1] is not None and entry[1].cancel():
                    lines, first, _ = entry[0]
                    entry[1] = None
                    try:
                        entry[2] = _type_chunk(lines, first, columns, parse,
                                               self._watch_action, self._types)
                    except errors.DapError as exc:  # raised in its turn, after those before
                        entry[2] = exc
                    break
            else:
                break  # nothing left to take over: wait for the worker
        (lines, first, size), future, result = window.popleft()
        if isinstance(result, errors.DapError):
            raise result
        if future is not None:
            try:
                result = future.result()
            except errors.DapError:
                raise
            except Exception as exc:  # the worker died, or cannot be reached: carry on here
                _typing_pool_failed(exc)
        if result is None:
            result = _type_chunk(lines, first, columns, parse, self._watch_action, self._types)
        count, carried, typed = result
        if not count:
            return
        if self._watch_action:
            self._decide_action(carried)
        if columns is not self.columns:
            names = [c.name for c in columns]
            typed = [typed[names.index(c.name)] for c in self.columns]
        start = 0
        while start < count:
            take = min(count - start, self.batch_rows - self._pending_rows)
            for index, column in enumerate(self.columns):
                part = typed[index]
                self._pending[index].add(part if take == count else
                                         _cut(column, part, start, start + take, self._numpy))
            self.rows += take
            self._pending_rows += take
            self._pending_bytes += size * take // count
            start += take
            if (self._pending_rows >= self.batch_rows
                    or self._pending_bytes >= PARQUET_BATCH_BYTES):
                self._flush()

    def _write_lines(self, spool) -> None:
        """Parse a part a (small) read at a time, type it a chunk at a time."""
        batch: List[Dict[str, Any]] = []
        size = 0
        begun: List[bytes] = []  # a line begun in earlier reads
        line = 1
        while True:
            data = spool.read(PARQUET_READ_BYTES)  # b"" at the end of the part
            end = data.rfind(b"\n") + 1
            if data and not end:  # a line longer than a read: read on
                begun.append(data)
                continue
            # the whole lines: what was begun, up to the last line end read (at the end of
            # the part, what was begun is its last line, without a newline)
            if begun:
                lines = b"".join(begun + [data[:end]])
                begun = []
            else:
                lines = data[:end] if end < len(data) else data
            if end < len(data):
                begun.append(data[end:])
            if lines:
                batch += records.jsonl_records(lines, line, self._parse_lines)
                line += lines.count(b"\n")
                size += len(lines)
            if size >= PARQUET_CHUNK_BYTES or (not data and batch):
                self._add(batch, size)
                batch, size = [], 0
            if not data:
                break

    def _gatherers(self) -> List[Any]:
        numpy = self._numpy
        return [_Gathered(numpy) if c.type in _FIXED_WIDTH else _GatheredTexts(numpy)
                for c in self.columns]

    def _check_action(self, batch: List[Dict[str, Any]]) -> None:
        """A snapshot's file has meta.action only if its records have it: the first chunk
        decides (nothing is gathered yet); a later record that has it when the file does
        not is refused, not dropped."""
        self._decide_action(_carries_action(batch))

    def _decide_action(self, carried: bool) -> None:
        if not self._decided:
            self._decided = True
            if carried:
                self.columns = records.columns_from_schema(*self._layout)
                self._pending = self._gatherers()
                self._watch_action = False
        elif carried:
            raise errors.UnexpectedAnswer(
                "the snapshot's records disagree on meta.action: some carry it, the first "
                "ones did not (%s)" % self.describe)

    def _add(self, batch: List[Dict[str, Any]], size: int) -> None:
        """Type a chunk of records into the pending row group, writing it when full."""
        if self._watch_action and batch:
            self._check_action(batch)
        count = len(batch)
        start = 0
        while start < count:
            take = min(count - start, self.batch_rows - self._pending_rows)
            piece = batch if take == count else batch[start:start + take]
            values = records.records_to_columns(piece, self.columns)
            del piece
            for index, column in enumerate(self.columns):
                self._pending[index].add(self._types.chunk(column, values[index]))
                values[index] = None  # free each column's values once typed
            del values
            self.rows += take
            self._pending_rows += take
            self._pending_bytes += size * take // count
            start += take
            if (self._pending_rows >= self.batch_rows
                    or self._pending_bytes >= PARQUET_BATCH_BYTES):
                self._flush()

    # -- writing -----------------------------------------------------------------------------
    def _flush(self) -> None:
        """Write the typed chunks gathered so far as one row group."""
        if not self._pending_rows:
            return
        if self._metadata is None:
            self._begin()
        rows, self._pending_rows, self._pending_bytes = self._pending_rows, 0, 0
        # a column at a time, each made whole just before fastparquet writes it and dropped
        # right after (the row group's metadata is that of the columns' one-column groups)
        make_row_group = self.fastparquet.writer.make_row_group
        chunks: List[Any] = []
        with open(self.target.path, "r+b") as out:
            out.seek(self._end)
            for index, column in enumerate(self.columns):
                frame = self.pandas.DataFrame(
                    {column.name: self._types.series(column, self._pending[index].take())},
                    copy=False)
                group = make_row_group(out, frame, [self._elements[index]],
                                       compression=PARQUET_COMPRESSION, stats=False)
                del frame
                chunks.extend(group.columns)
            self._end = out.tell()
        if group.num_rows != rows:  # pragma: no cover - a fastparquet that counts otherwise
            raise errors.DapError("fastparquet wrote %s rows of %d" % (group.num_rows, rows))
        group.columns = chunks
        group.total_byte_size = sum(c.meta_data.total_uncompressed_size for c in chunks)
        self._keep(group)

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
        frame = self.pandas.DataFrame(
            {column.name: self._types.series(column, []) for column in self.columns},
            copy=False)
        self.fastparquet.write(self.target.path, frame, write_index=False,
                               compression=PARQUET_COMPRESSION, stats=False,
                               object_encoding="utf8", times="int64")
        self._metadata = self.fastparquet.ParquetFile(self.target.path).fmd
        self._elements = [e for e in self._metadata.schema if e.type is not None]
        names = [e.name.decode() if isinstance(e.name, bytes) else e.name
                 for e in self._elements]
        if names != [c.name for c in self.columns]:
            raise errors.DapError("fastparquet made an unexpected schema of %d columns"
                                  % len(self._elements))
        self._end = len(_PARQUET_MAGIC)


_FIXED_WIDTH = ("integer", "boolean", "number", "timestamp")


def _carries_action(batch: List[Dict[str, Any]]) -> bool:
    return any(type(r.get("meta")) is dict and "action" in r["meta"] for r in batch)


def _cut(column, typed: Tuple[Any, ...], start: int, stop: int, np) -> Tuple[Any, ...]:
    """Rows ``start:stop`` of a typed chunk (``_ColumnTypes.chunk``): texts packed in one
    string are unpacked into objects first (what ``_GatheredTexts`` takes either way)."""
    if column.type in _FIXED_WIDTH or len(typed) == 1:
        return tuple(array[start:stop] for array in typed)
    packed, nulls = typed
    if packed is None:
        return None, nulls[start:stop]
    objects = np.empty(len(nulls), dtype=object)
    objects[~nulls] = packed.split(_SEPARATOR)
    return (objects[start:stop],)


# -- the worker process that parses and types large parts' chunks ---------------------------------

#: a part of at least this many bytes of JSON is parsed and typed in a worker process
#: (``ParquetWriter._write_chunks``); smaller ones here, with the same values
PARQUET_PARALLEL_BYTES = 4 * 1024 * 1024
#: chunks handed to the worker ahead of the one being gathered (this process types those
#: the worker has not begun while it waits for the oldest)
PARQUET_CHUNKS_AHEAD = 4
#: worker processes (shared by the tables written at once); None: ``DAP_PARQUET_WORKERS``
#: from the environment, 0 if unset.  Off by default: on the project's 2-core machine,
#: shared with other work, a worker gained no wall time (each process got less of a core)
#: for a quarter more CPU and the worker's memory (see the README's Benchmarks)
PARQUET_WORKERS: Optional[int] = None

_POOL_LOCK = threading.RLock()
_POOL: Dict[str, Any] = {"pool": None, "failed": False}
_WORKER_TYPES: List[Any] = []


def _workers() -> int:
    if PARQUET_WORKERS is not None:
        return PARQUET_WORKERS
    import os
    try:
        return max(0, int(os.environ.get("DAP_PARQUET_WORKERS", "0") or 0))
    except ValueError:
        return 0


def _typing_pool():
    """The process pool that types chunks (started at its first use), or None where none
    can be started or it failed: then chunks are typed in this process.

    Its worker is forked (POSIX): it starts at once with numpy and pandas already imported,
    and never runs the importing program's main module again (as a spawned one would, a
    library caller's script without a ``__main__`` guard included).  The child runs only
    ``_type_chunk``: no logging, no I/O but its pipe, no lock another thread may hold."""
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
                atexit.register(_stop_typing_pool)
            except (ImportError, OSError, NotImplementedError, ValueError) as exc:
                _typing_pool_failed(exc)
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


def _stop_typing_pool() -> None:
    """At exit, before the interpreter tears its modules down (the pool's clean-up needs
    them): the worker ends."""
    with _POOL_LOCK:
        pool, _POOL["pool"] = _POOL["pool"], None
    if pool is not None:
        pool.shutdown(wait=True)


def _typing_pool_failed(exc: BaseException) -> None:
    """No more worker processes: what is left is typed here."""
    with _POOL_LOCK:
        pool, _POOL["pool"] = _POOL["pool"], None
        told, _POOL["failed"] = _POOL["failed"], True
    if not told:
        logging.getLogger("dap.writers").warning(
            "Parquet: no worker process (%s); typing in this process",
            errors.one_line(exc, 200))
    if pool is not None:
        try:
            pool.shutdown(wait=False, cancel_futures=True)
        except TypeError:  # pragma: no cover - Python 3.8
            pool.shutdown(wait=False)


def _submit(pool, chunk: Tuple[bytes, int, int], columns, parse, watch: bool):
    """A future of ``_type_chunk`` of ``chunk`` in the worker, or None (typed here later)."""
    if pool is None or _POOL["failed"]:
        return None
    lines, first, _ = chunk
    try:
        return pool.submit(_type_chunk, lines, first, columns, parse, watch)
    except Exception as exc:  # a pool broken or shut down
        _typing_pool_failed(exc)
        return None


def _jsonl_in_reads(lines: bytes, first_line: int, parse) -> List[Dict[str, Any]]:
    """``records.jsonl_records`` of a chunk, parsed ``PARQUET_READ_BYTES`` of whole lines at
    a time as ``_write_lines`` parses them (the same records; no large temporary texts to
    fragment the heap of a process that keeps a row group meanwhile)."""
    batch: List[Dict[str, Any]] = []
    start, line, size = 0, first_line, len(lines)
    while start < size:
        end = lines.find(b"\n", start + PARQUET_READ_BYTES - 1) + 1 or size
        block = lines[start:end]
        batch += records.jsonl_records(block, line, parse)
        line += block.count(b"\n")
        start = end
    return batch


def _type_chunk(lines: bytes, first_line: int, columns, parse, watch: bool,
                types: Optional["_ColumnTypes"] = None):
    """``(records, any carries meta.action, [typed chunk of each column])`` of a chunk of
    JSON Lines: what ``ParquetWriter._add`` does to a chunk, as a function of its bytes (it
    runs in the worker process, and here when there is none)."""
    if types is None:  # in the worker: numpy and pandas imported once
        if not _WORKER_TYPES:
            import numpy
            import pandas
            from pandas.api.types import infer_dtype
            _WORKER_TYPES.append(_ColumnTypes(numpy, pandas, infer_dtype))
        types = _WORKER_TYPES[0]
    with _cyclic_gc_paused():
        batch = _jsonl_in_reads(lines, first_line, parse)
        carried = watch and _carries_action(batch)
        values = records.records_to_columns(batch, columns)
        count = len(batch)
        del batch
        typed = []
        for index, column in enumerate(columns):
            typed.append(types.chunk(column, values[index]))
            values[index] = None
    return count, carried, typed


class _Gathered:
    """One column of numbers or times in the row group being gathered: the values of its
    chunks copied into arrays that grow as needed and serve row group after row group
    (thousands of small arrays living as long as a row group, amid the records that come
    and go, would leave the heap in holes that only grow)."""

    def __init__(self, np) -> None:
        self.np = np
        self.arrays: Optional[List[Any]] = None
        self.rows = 0

    def add(self, typed: Tuple[Any, ...]) -> None:
        count = len(typed[0])
        if self.arrays is None or self.rows + count > len(self.arrays[0]):
            size = max(4096, 2 * (self.rows + count))
            arrays = [self.np.empty(size, dtype=part.dtype) for part in typed]
            if self.arrays is not None:
                for new, old in zip(arrays, self.arrays):
                    new[:self.rows] = old[:self.rows]
            self.arrays = arrays
        for array, part in zip(self.arrays, typed):
            array[self.rows:self.rows + count] = part
        self.rows += count

    def take(self) -> List[Tuple[Any, ...]]:
        """The values gathered, as one chunk (views of the arrays, valid until the next
        ``add``), and start again."""
        if not self.rows or self.arrays is None:
            return []
        chunk = tuple(array[:self.rows] for array in self.arrays)
        self.rows = 0
        return [chunk]

    def clear(self) -> None:
        self.rows = 0


class _GatheredTexts:
    """One column of texts in the row group being gathered: the UTF-8 of its chunks' packed
    texts in one buffer, and their nulls in another, both reused row group after row group
    (see ``_Gathered``); a chunk kept as objects (texts holding the separator) on the side."""

    def __init__(self, np) -> None:
        self.np = np
        self.nulls = np.empty(0, dtype=bool)
        self.rows = 0
        self.text = bytearray()
        self.size = 0
        self.packs = 0
        self.objects: List[Tuple[int, Any]] = []

    def add(self, typed: Tuple[Any, ...]) -> None:
        if len(typed) == 1:  # kept as objects: null for the packed texts, laid over them
            objects = typed[0]
            self._add_nulls(self.np.ones(len(objects), dtype=bool))
            self.objects.append((self.rows - len(objects), objects))
            return
        packed, nulls = typed
        self._add_nulls(nulls)
        if packed is None:
            return
        data = (_SEPARATOR + packed if self.packs else packed).encode("utf-8", "surrogatepass")
        self.text[self.size:self.size + len(data)] = data
        self.size += len(data)
        self.packs += 1

    def _add_nulls(self, nulls) -> None:
        count = len(nulls)
        if self.rows + count > len(self.nulls):
            grown = self.np.empty(max(4096, 2 * (self.rows + count)), dtype=bool)
            grown[:self.rows] = self.nulls[:self.rows]
            self.nulls = grown
        self.nulls[self.rows:self.rows + count] = nulls
        self.rows += count

    def take(self):
        """The texts gathered as one object array (None for null), and start again."""
        np = self.np
        out = np.empty(self.rows, dtype=object)
        if self.packs:
            texts = str(memoryview(self.text)[:self.size], "utf-8", "surrogatepass")
            present = ~self.nulls[:self.rows]
            out[present] = texts.split(_SEPARATOR)
        for start, objects in self.objects:
            out[start:start + len(objects)] = objects
        self.clear()
        return out

    def clear(self) -> None:
        self.rows = self.size = self.packs = 0
        self.objects = []


class _ColumnTypes:
    """A column's values (Python values and None, from ``records.records_to_columns``) as
    numpy arrays, a chunk at a time, and the chunks of a row group as one pandas column of
    ``records.parquet_type``.

    Each kind has a fast way for values of the schema's type, checked in bulk
    (``infer_dtype``), and falls back to pandas' own conversion otherwise (an integral
    float in an integer column is that integer); what neither can take raises
    ``UnexpectedAnswer`` naming the column.  Strings that are not strings (a number in a
    string column) are written as their JSON text, as CSV writes them."""

    def __init__(self, np, pd, infer_dtype) -> None:
        self.np, self.pd, self.infer = np, pd, infer_dtype
        self._by_kind = {"integer": self._integers, "boolean": self._booleans,
                         "number": self._numbers, "timestamp": self._timestamps,
                         "string": self._texts, "json": self._texts}

    # -- one chunk ---------------------------------------------------------------------------
    def chunk(self, column, values: List[Any]) -> Tuple[Any, ...]:
        try:
            return self._by_kind[column.type](values)
        except (TypeError, ValueError, OverflowError) as exc:
            raise errors.UnexpectedAnswer(
                "a value of the column %s of the result is not of its schema's type %s (%s)"
                % (column.name, column.type, exc)) from None

    def _objects(self, values: List[Any]):
        """An object array of ``values`` and what ``infer_dtype`` says of it; kind "mixed"
        when ``values`` would not make a flat array (lists, say)."""
        np = self.np
        try:  # numpy 1.23 or later: several times faster than np.array, and always flat
            array = np.fromiter(values, dtype=object, count=len(values))
        except (TypeError, ValueError):  # pragma: no cover - older numpy
            array = np.array(values, dtype=object)
            if array.ndim != 1 or len(array) != len(values):
                return None, "mixed"
        return array, self.infer(array, skipna=True)

    def _integers(self, values: List[Any]) -> Tuple[Any, ...]:
        np = self.np
        array, kind = self._objects(values)
        if kind in ("integer", "empty"):
            mask = np.equal(array, None)
            if mask.any():
                array[mask] = 0
            return array.astype(np.int64), mask
        return self._masked(self.pd.array(values, dtype="Int64"), "int64", 0)

    def _booleans(self, values: List[Any]) -> Tuple[Any, ...]:
        np = self.np
        array, kind = self._objects(values)
        if kind in ("boolean", "empty"):
            return np.equal(array, True), np.equal(array, None)
        return self._masked(self.pd.array(values, dtype="boolean"), bool, False)

    def _masked(self, array, dtype, fill) -> Tuple[Any, ...]:
        return array.to_numpy(dtype=dtype, na_value=fill), self.np.asarray(array.isna())

    def _numbers(self, values: List[Any]) -> Tuple[Any, ...]:
        array, kind = self._objects(values)
        if kind in ("floating", "integer", "mixed-integer-float", "empty"):
            return (array.astype(self.np.float64),)
        return (self.pd.Series(values, dtype="float64").to_numpy(),)

    def _texts(self, values: List[Any]) -> Tuple[Any, ...]:
        """A chunk of texts packed into one string (``_SEPARATOR`` between them) and the
        mask of its nulls, for ``_GatheredTexts`` to keep as UTF-8 in one buffer: not a
        small object per row for as long as a row group (twice the memory, scattered
        across the heap).  Texts that hold the separator stay objects."""
        np = self.np
        array, kind = self._objects(values)
        if kind not in ("string", "empty"):
            texts = [v if v is None or type(v) is str else records.to_json_text(v)
                     for v in values]
            array, kind = self._objects(texts)
        nulls = np.equal(array, None)
        present = array[~nulls].tolist() if nulls.any() else array.tolist()
        if not present:
            return None, nulls
        packed = _SEPARATOR.join(present)
        if packed.count(_SEPARATOR) != len(present) - 1:
            return (array,)
        return packed, nulls

    def _timestamps(self, values: List[Any]) -> Tuple[Any, ...]:
        """UTC texts ending in ``Z`` (as DAP writes them) are parsed by numpy, as naive
        microseconds; other texts by pandas (an offset, or an error)."""
        np = self.np
        array, kind = self._objects(values)
        if kind not in ("string", "empty"):
            raise ValueError("not a text")
        nulls = np.equal(array, None)
        parsed = self._utc_texts(array[~nulls] if nulls.any() else array)
        if parsed is None:
            pd = self.pd
            kwargs = {"format": "ISO8601"} if _major(pd) >= 2 else {}
            times = pd.to_datetime(pd.Series(array, dtype=object), utc=True, **kwargs)
            return (times.dt.tz_localize(None).to_numpy().astype("datetime64[us]"),)
        if not nulls.any():
            return (parsed,)
        out = np.full(len(values), np.datetime64("NaT", "us"))
        out[~nulls] = parsed
        return (out,)

    def _utc_texts(self, texts):
        """``texts`` (an object array of str) that all end in ``Z`` as naive microseconds,
        or None.  Texts of one length (a column as DAP writes it) lose their ``Z`` as
        bytes, in bulk; others one by one."""
        np = self.np
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # numpy warns of an offset it applied
                raw = texts.astype("S") if len(texts) else None
                width = raw.dtype.itemsize if raw is not None else 0
                if width > 1 and (raw.view(np.uint8)[width - 1::width] == ord("Z")).all():
                    parsed = raw.astype("S%d" % (width - 1)).astype("datetime64[us]")
                else:
                    stripped = [v[:-1] for v in texts.tolist() if v[-1:] == "Z"]
                    if len(stripped) != len(texts):
                        return None
                    parsed = np.array(stripped, dtype="datetime64[us]")
        except (UnicodeError, ValueError, Warning):  # not ASCII, or no time numpy knows
            return None
        if np.isnat(parsed).any():  # "Z" or "NaTZ" are no time
            return None
        return parsed

    # -- a row group's column ------------------------------------------------------------------
    def series(self, column, chunks):
        """The pandas column of what a ``_Gathered`` gives (chunks of arrays), or for texts
        a ``_GatheredTexts`` (an object array); ``[]``: an empty column of the type."""
        np, pd = self.np, self.pd
        kind = column.type
        if kind in ("string", "json"):
            # objects stay objects (pandas 3 would make a frame's column of texts its "str")
            texts = chunks if len(chunks) else np.empty(0, dtype=object)
            return pd.Series(texts, dtype=object, copy=False)
        if not chunks:
            chunks = [self._by_kind[kind]([])]
        parts = [np.concatenate(p) if len(chunks) > 1 else p[0] for p in zip(*chunks)]
        if kind == "integer":
            return pd.arrays.IntegerArray(parts[0], parts[1])
        if kind == "boolean":
            return pd.arrays.BooleanArray(parts[0], parts[1])
        if kind == "timestamp":
            try:
                return pd.Series(parts[0], copy=False).dt.tz_localize("UTC")
            except (ValueError, OverflowError) as exc:  # pandas before 2.0: nanoseconds only
                raise errors.InvalidInput(
                    "the column %s holds a date this pandas cannot hold (%s)"
                    % (column.name, exc), "install pandas 2.0 or later") from None
        return parts[0]


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
    """No cyclic garbage collection while a part's records are parsed and typed: they hold
    no cycles, yet each chunk of them set off collections of every object in the process
    (pandas' included), a tenth of the time of a large table."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _major(pd) -> int:
    return int(str(pd.__version__).split(".")[0])
