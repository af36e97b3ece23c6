"""The Parquet writer: a job's verified TSV parts in, one Parquet file of typed columns out.

DAP's TSV (PostgreSQL ``COPY`` text) already holds the table's columns, flattened as the
schema lays them out, so a part becomes columns without any Python work per record:
pandas' C parser reads a chunk of lines with each column's type from the schema, and the
escapes of text columns are undone a whole column at a time.  Typed chunks gather into
row groups of at most ``PARQUET_BATCH_ROWS`` rows (or ``PARQUET_BATCH_BYTES`` of TSV),
written with fastparquet (imported only here, only when Parquet is asked for), a column
at a time, to ONE file whose footer is written once, at the end.  Memory holds one chunk
and one row group, whatever the table's size.  With ``DAP_PARQUET_WORKERS=1``, large parts
are typed by a worker process while this one writes, so that both cores work.

The column types (README: Output formats): integers -> int64, numbers -> double, booleans
-> boolean, ``date-time`` strings -> timestamps in microseconds, UTC; other strings and
enums -> UTF-8 texts; arrays and free-form objects -> their JSON text.  A snapshot's file
has a ``meta.action`` column only if its parts' headers have one (DAP's snapshots carry
``meta.ts`` only): not a column of nulls.

fastparquet writes each row group (``writer.make_row_group``) and encodes the footer
(``writer.write_thrift``); the footer's list of row groups is spliced from their encoded
bytes (``_splice_point``), kept encoded because as objects they take 30 times the memory.
This leans on fastparquet's internals, so setup.py pins the range of fastparquet versions
the tests pass on.

Any ``OSError`` from the output (a full disk) becomes ``OutputError`` (exit 12).
"""
from __future__ import annotations

import atexit
import collections
import contextlib
import csv
import gc
import io
import logging
import struct
import threading
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .. import columns as layout_of, copytext, errors
from .sinks import AtomicFile, SpoolSink
from .writers import output_errors

__all__ = ["ParquetWriter", "require_parquet", "PARQUET_BATCH_ROWS"]

#: a row group holds at most this many rows, or the lines of this many bytes of TSV
#: (typed, a row takes about its TSV's size in memory)
PARQUET_BATCH_ROWS = 65_536
PARQUET_BATCH_BYTES = 3 * 1024 * 1024
#: lines are parsed and typed in chunks of this many bytes: large enough that pandas'
#: cost per call is nothing, small enough that a chunk's objects stay a few MiB
PARQUET_CHUNK_BYTES = 512 * 1024
#: a part is spooled in memory up to this size, then on disk
PARQUET_SPOOL_MEMORY = 1024 * 1024
PARQUET_COMPRESSION = "SNAPPY"
_PARQUET_MAGIC = b"PAR1"
_SEPARATOR = "\x1f"  # between the texts of a column packed into one string
_NULL = "\\N"
#: pandas' dtype for reading each kind of column; the others are read as text
_READ_AS = {"integer": "Int64", "number": "float64", "boolean": "boolean"}
_FIXED_WIDTH = ("integer", "boolean", "number", "timestamp")
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
    """Verified TSV parts -> typed row groups -> one Parquet file (see the module).

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
        import numpy
        self._numpy = numpy
        self._types = _ColumnTypes(numpy, self.pandas)
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
        self._end = 0                     # where the next row group goes
        self._pending = self._gatherers()
        self._pending_rows = 0
        self._pending_bytes = 0
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
        for gathered in self._pending:
            gathered.clear()
        self.target.abort()

    # -- a part: its header, then chunks of lines typed here or in the worker -----------------
    def _write_part(self, spool) -> None:
        with _cyclic_gc_paused():
            names = _header(spool.readline(), self.describe)
            keys = [c.name for c in self.columns if c.path[0] == "key"]
            if not set(keys) <= set(names):  # data where the header should be, say
                raise errors.UnexpectedAnswer(
                    "a part of %s has a header without the table's key columns (%s)"
                    % (self.describe, ", ".join(k for k in keys if k not in names)))
            self._decide_action("meta.action" in names)
            start = spool.tell()
            size = spool.seek(0, io.SEEK_END) - start
            spool.seek(start)
            pool = _typing_pool() if size >= PARQUET_PARALLEL_BYTES else None
            self._write_chunks(spool, names, pool)

    def _decide_action(self, carried: bool) -> None:
        """The first part decides whether a snapshot's file has meta.action (nothing is
        gathered yet); a later part that has it when the file does not is refused."""
        if self._action is None:
            self._action = carried
            if carried:
                self.columns = layout_of.columns_from_schema(*self._layout)
                self._pending = self._gatherers()
        elif carried and not self._action:
            raise errors.UnexpectedAnswer(
                "the snapshot's parts disagree on meta.action: some carry it, the first "
                "ones did not (%s)" % self.describe)

    def _write_chunks(self, spool, names: List[str], pool) -> None:
        """The part's chunks are handed to the worker process, ``PARQUET_CHUNKS_AHEAD`` at a
        time, while this process gathers the typed chunks before them and writes row
        groups (with no worker, each is typed here in its turn): the same values, row
        groups and file either way."""
        window: "collections.deque[List[Any]]" = collections.deque()
        try:
            for chunk in _chunks(spool):
                window.append([chunk, _submit(pool, chunk, names, self.columns), None])
                if len(window) > PARQUET_CHUNKS_AHEAD or pool is None:
                    self._take(window, names)
            while window:
                self._take(window, names)
        finally:
            for _, future, _ in window:
                if future is not None:
                    future.cancel()

    def _take(self, window, names: List[str]) -> None:
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
                        entry[2] = _type_chunk(lines, first, names, self.columns, self._types,
                                               self.describe)
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
            result = _type_chunk(lines, first, names, self.columns, self._types, self.describe)
        count, typed = result
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

    def _gatherers(self) -> List[Any]:
        numpy = self._numpy
        return [_Gathered(numpy) if c.type in _FIXED_WIDTH else _GatheredTexts(numpy)
                for c in self.columns]

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


def _chunks(spool):
    """``(lines, number of the first line, size)`` of each chunk of whole lines (about
    ``PARQUET_CHUNK_BYTES``) of the rest of a part; line 1 is the header."""
    carried = b""
    line = 2
    while True:
        data = spool.read(PARQUET_CHUNK_BYTES)
        if not data:
            if carried:  # a last line without its newline
                yield carried, line, len(carried)
            return
        end = data.rfind(b"\n") + 1
        if not end:
            carried += data
            continue
        lines = carried + data[:end] if carried else data[:end]
        carried = data[end:]
        yield lines, line, len(lines)
        line += lines.count(b"\n")


def _cut(column, typed: Tuple[Any, ...], start: int, stop: int, np) -> Tuple[Any, ...]:
    """Rows ``start:stop`` of a typed chunk (``_ColumnTypes.column``): texts packed in one
    string are unpacked into objects first (what ``_GatheredTexts`` takes either way)."""
    if column.type in _FIXED_WIDTH or len(typed) == 1:
        return tuple(array[start:stop] for array in typed)
    packed, nulls = typed
    if packed is None:
        return None, nulls[start:stop]
    objects = np.empty(len(nulls), dtype=object)
    objects[~nulls] = packed.split(_SEPARATOR)
    return (objects[start:stop],)


def _type_chunk(lines: bytes, first_line: int, names: Sequence[str], columns,
                types: Optional["_ColumnTypes"] = None, describe: str = "the output"):
    """``(rows, [typed chunk of each column])`` of a chunk of a part's lines: a function of
    its bytes, so that it runs in the worker process as well as here."""
    if types is None:  # in the worker: numpy and pandas imported once
        if not _WORKER_TYPES:
            import numpy
            import pandas
            _WORKER_TYPES.append(_ColumnTypes(numpy, pandas))
        types = _WORKER_TYPES[0]
    rows = lines.count(b"\n") + (not lines.endswith(b"\n"))
    # a line of too few fields would be read as nulls, silently: count them all first
    if lines.count(b"\t") != rows * (len(names) - 1):
        raise _bad_line(lines, first_line, len(names), describe)
    if b"\x00" in lines:  # pandas before 3 ends a text at a NUL: escape it (COPY's octal)
        lines = lines.replace(b"\x00", b"\\000")
    with _cyclic_gc_paused():
        frame = types.read(lines, names, columns, first_line, describe)
        typed = [types.column(c, frame[c.name] if c.name in frame else None, rows, describe)
                 for c in columns]
    return rows, typed


def _bad_line(lines: bytes, first_line: int, width: int, describe: str) -> errors.DapError:
    for number, line in enumerate(lines.split(b"\n"), first_line):
        fields = line.count(b"\t") + 1
        if fields != width and (line or number == first_line):
            return errors.UnexpectedAnswer(
                "line %d of a part of %s has %d fields where its header has %d"
                % (number, describe, fields, width))
    return errors.UnexpectedAnswer("a part of %s is not TSV" % describe)  # pragma: no cover


class _ColumnTypes:
    """A chunk of TSV lines as a frame of the columns' types, each column of it as numpy
    arrays, and the chunks of a row group as one pandas column."""

    def __init__(self, np, pd) -> None:
        self.np, self.pd = np, pd

    def read(self, lines: bytes, names: Sequence[str], columns, first_line: int,
             describe: str):
        wanted = {c.name: c.type for c in columns}
        used = [n for n in names if n in wanted]
        dtypes = {n: _READ_AS.get(wanted[n], object) for n in used}
        try:
            return self._read_csv(lines, names, used, dtypes)
        except UnicodeDecodeError:
            raise errors.UnexpectedAnswer("a part of %s is not UTF-8" % describe) from None
        except (ValueError, TypeError, OverflowError):
            pass
        # a value not of its column's type: read as texts to say which column
        frame = self._read_csv(lines, names, used, {n: object for n in used})
        for name in used:
            if dtypes[name] is not object:
                self._typed_from_texts(frame[name], wanted[name], name, describe)
        raise errors.UnexpectedAnswer(  # pragma: no cover - pandas refused, then took it
            "lines %d and on of a part of %s cannot be read" % (first_line, describe))

    def _read_csv(self, lines: bytes, names, used, dtypes):
        # pandas before 3 reads some floats one bit off unless asked for its round trip
        # parser (pandas 3's default is exact, and it deprecates the option)
        exact = {"float_precision": "round_trip"} if _major(self.pd) < 3 else {}
        return self.pd.read_csv(
            io.BytesIO(lines), sep="\t", header=None, names=list(names), usecols=used,
            dtype=dtypes, quoting=csv.QUOTE_NONE, na_values=[_NULL], keep_default_na=False,
            true_values=["true"], false_values=["false"], skip_blank_lines=False,
            engine="c", encoding="utf-8", **exact)

    def _typed_from_texts(self, texts, kind: str, name: str, describe: str) -> None:
        pd = self.pd
        try:
            if kind == "boolean":
                if not texts.dropna().isin(["true", "false"]).all():
                    raise ValueError("not true or false")
            else:
                numbers = pd.to_numeric(texts)
                if kind == "integer":
                    pd.array(numbers, dtype="Int64")
        except (ValueError, TypeError, OverflowError) as exc:
            raise errors.UnexpectedAnswer(
                "a value of the column %s of %s is not of its schema's type %s (%s)"
                % (name, describe, kind, exc)) from None

    # -- one chunk's column ------------------------------------------------------------------
    def column(self, column, series, rows: int, describe: str) -> Tuple[Any, ...]:
        """The typed chunk of one column: (values, nulls) of integers and booleans, (values,)
        of numbers and times (NaN, NaT for null), (texts packed into one string, nulls) of
        texts -- or (objects,) when a text holds the separator."""
        np = self.np
        kind = column.type
        if series is None:  # not in this part: null throughout
            return self._nulls(kind, rows)
        if kind in ("integer", "boolean"):
            array = series.array
            dtype = np.int64 if kind == "integer" else bool
            return (array.to_numpy(dtype=dtype, na_value=dtype(0)),
                    np.asarray(array.isna(), dtype=bool))
        if kind == "number":
            return (series.to_numpy(dtype=np.float64),)
        values = series.to_numpy(dtype=object)
        nulls = self.pd.isna(values)  # of the array: no Series made for it
        if kind == "timestamp":
            return (self._times(values, nulls, column.name, describe),)
        return self._texts(values, nulls)

    def _nulls(self, kind: str, rows: int) -> Tuple[Any, ...]:
        np = self.np
        if kind == "integer":
            return np.zeros(rows, dtype=np.int64), np.ones(rows, dtype=bool)
        if kind == "boolean":
            return np.zeros(rows, dtype=bool), np.ones(rows, dtype=bool)
        if kind == "number":
            return (np.full(rows, np.nan),)
        if kind == "timestamp":
            return (np.full(rows, np.datetime64("NaT", "us")),)
        return None, np.ones(rows, dtype=bool)

    def _texts(self, values, nulls) -> Tuple[Any, ...]:
        """A chunk of texts packed into one string (``_SEPARATOR`` between them) and the
        mask of its nulls, for ``_GatheredTexts`` to keep as UTF-8 in one buffer: not a
        small object per row for as long as a row group (twice the memory, scattered
        across the heap).  Escapes are undone on the packed string at once (no escape
        spans a separator).  Texts that hold the separator stay objects."""
        present = values[~nulls].tolist() if nulls.any() else values.tolist()
        if not present:
            return None, nulls
        packed = _SEPARATOR.join(present)
        if "\\" in packed:
            packed = copytext.unescape(packed)
        if packed.count(_SEPARATOR) == len(present) - 1:
            return packed, nulls
        objects = self.np.empty(len(values), dtype=object)
        objects[~nulls] = [copytext.unescape(t) if "\\" in t else t for t in present]
        return (objects,)

    def _times(self, values, nulls, name: str, describe: str):
        """UTC texts ending in ``Z`` (as DAP writes them) are parsed by numpy, as naive
        microseconds; other texts by pandas (an offset, or an error)."""
        np, pd = self.np, self.pd
        texts = values[~nulls] if nulls.any() else values
        parsed = self._utc_texts(texts)
        if parsed is None:
            kwargs = {"format": "ISO8601"} if _major(pd) >= 2 else {}
            try:
                times = pd.to_datetime(pd.Series(texts, dtype=object), utc=True, **kwargs)
                parsed = times.dt.tz_localize(None).to_numpy().astype("datetime64[us]")
            except (ValueError, TypeError, OverflowError) as exc:
                raise errors.UnexpectedAnswer(
                    "a value of the column %s of %s is not a date and time (%s)"
                    % (name, describe, errors.one_line(exc, 200))) from None
        if not nulls.any():
            return parsed
        out = np.full(len(values), np.datetime64("NaT", "us"))
        out[~nulls] = parsed
        return out

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
            chunks = [self._nulls(kind, 0)]
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


# -- gathering a row group ------------------------------------------------------------------------

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


# -- the worker process that types large parts' chunks --------------------------------------------

#: a part of at least this many bytes of TSV is typed in a worker process
#: (``ParquetWriter._write_chunks``); smaller ones here, with the same values
PARQUET_PARALLEL_BYTES = 4 * 1024 * 1024
#: chunks handed to the worker ahead of the one being gathered (this process types those
#: the worker has not begun while it waits for the oldest)
PARQUET_CHUNKS_AHEAD = 4
#: worker processes (shared by the tables written at once); None: ``DAP_PARQUET_WORKERS``
#: from the environment, else none: on the project's 2-core machine, shared with other work,
#: a worker gained no measurable wall time for its memory (the README's Benchmarks)
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


def _submit(pool, chunk: Tuple[bytes, int, int], names: Sequence[str], columns):
    """A future of ``_type_chunk`` of ``chunk`` in the worker, or None (typed here later)."""
    if pool is None or _POOL["failed"]:
        return None
    lines, first, _ = chunk
    try:
        return pool.submit(_type_chunk, lines, first, names, columns)
    except Exception as exc:  # a pool broken or shut down
        _typing_pool_failed(exc)
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
    """No cyclic garbage collection while a part is typed: its objects hold no cycles, yet
    each chunk of them set off collections of every object in the process (pandas'
    included)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _major(pd) -> int:
    return int(str(pd.__version__).split(".")[0])
