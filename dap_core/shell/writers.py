"""Per-format writers: the decompressed bytes of a job's parts in, one output per table out.

A writer sees a part as ``begin_part(i)``, ``feed(bytes)`` (any number of times),
``end_part()`` once it verified, or ``restart_part()`` when it must be fed again from its
first byte.  ``finish()`` ends the output; the sink's ``commit`` makes it appear.

* :class:`StreamWriter` (jsonl, json, csv, tsv): bytes go through the core's
  ``records.PartMerger`` (one CSV/TSV header, JSON array framing, row counting) and straight
  on to the sink.  No per-row Python: the merger works on bytes.  The merger's state is
  copied at each part's start so that a restart rolls it back together with the sink.
* :class:`ParquetWriter`: each verified part (JSONL, spooled) is parsed in batches of rows,
  typed by the table's schema and appended to ONE Parquet file, a row group per batch,
  with fastparquet (imported only here, and only when Parquet is asked for).

Any ``OSError`` from the output (a full disk) becomes ``OutputError`` (exit 12).
"""
from __future__ import annotations

import copy
import functools
import json
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .. import errors, records
from .sinks import AtomicFile, SpoolSink

__all__ = ["StreamWriter", "ParquetWriter", "require_parquet", "output_errors",
           "PARQUET_BATCH_ROWS"]

#: a row group holds at most this many rows, or the records of this many bytes of JSON
#: (parsed records take several times their text in memory)
PARQUET_BATCH_ROWS = 50_000
PARQUET_BATCH_BYTES = 4 * 1024 * 1024
_DECODER = json.JSONDecoder()
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
PARQUET_EXTRA_HINT = "install it with: pip install 'dap[parquet]' (or pip install fastparquet)"


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
    """Verified JSONL parts -> typed row groups -> one Parquet file, written by fastparquet."""

    def __init__(self, target: AtomicFile, schema: Dict[str, Any], mode: Optional[str],
                 batch_rows: int = PARQUET_BATCH_ROWS, describe: str = "the output") -> None:
        self.fastparquet, self.pandas = require_parquet()
        self.target = target
        self.describe = describe
        self.columns = records.columns_from_schema(schema.get("schema", schema),
                                                   mode or "expanded")
        self.batch_rows = max(1, batch_rows)
        self.rows = 0
        self._groups = 0
        self._spool = SpoolSink(self._write_part)
        target.close_handle()  # fastparquet opens the temporary file by name

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
        if self._groups == 0:
            self._write_frame([])  # an empty table still has its typed columns

    @output_errors
    def commit(self) -> None:
        self.target.commit()

    def abort(self) -> None:
        self._spool.abort()
        self.target.abort()

    # -- writing -----------------------------------------------------------------------------
    def _write_part(self, spool) -> None:
        batch: List[Any] = []
        size = 0
        loads = _DECODER.decode
        for line in spool:
            if not line.strip():
                continue
            size += len(line)
            try:
                record = loads(line.decode("utf-8"))
            except ValueError:  # UnicodeDecodeError too
                record = None
            if type(record) is not dict:
                raise errors.UnexpectedAnswer("a part of the result holds a line that is not "
                                              "a JSON object")
            batch.append(record)
            if len(batch) >= self.batch_rows or size >= PARQUET_BATCH_BYTES:
                self._write_frame(batch)
                batch, size = [], 0
        if batch:
            self._write_frame(batch)

    def _write_frame(self, batch: Sequence[Any]) -> None:
        frame = frame_from_records(self.pandas, self.columns, batch)
        self.fastparquet.write(self.target.path, frame, append=self._groups > 0,
                               write_index=False, compression="SNAPPY", stats=False)
        self._groups += 1
        self.rows += len(batch)


def column_values(records_: Sequence[Any], column,
                  levels: Optional[Dict[Tuple[str, ...], List[Any]]] = None) -> List[Any]:
    """One column's values of a batch of JSONL records, as Parquet takes them: None for null,
    absent or (the value columns of) a delete record; json columns as compact JSON text.

    Column by column, one comprehension per level of the column's path, each level shared
    by the columns under it (``levels``, a cache per batch), rather than ``records.
    record_to_row`` row by row: the same values as ``records.row_to_jsonable``, several
    times faster, which is what makes Parquet output of large tables bearable."""
    if levels is None:
        levels = {}
    path = column.path
    values: List[Any] = list(records_)
    for depth in range(1, len(path) + 1):
        prefix = path[:depth]
        cached = levels.get(prefix)
        if cached is None:
            name = path[depth - 1]
            cached = [v.get(name) if type(v) is dict else None for v in values]
            levels[prefix] = cached
        values = cached
    if column.type == "json":
        text = _COMPACT.encode  # records.to_json_text, without a new encoder per value
        values = [None if v is None else text(v) for v in values]
    return values


def frame_from_records(pd, columns, batch: Sequence[Any]):
    """A pandas DataFrame of a batch of JSONL records, one typed column per schema column
    (``records.parquet_type``: nullable integers and booleans, UTC timestamps, JSON text)."""
    data = {}
    levels: Dict[Tuple[str, ...], List[Any]] = {}
    for column in columns:
        values = column_values(batch, column, levels)
        dtype = records.parquet_type(column)
        if column.type == "timestamp":
            series = pd.to_datetime(pd.Series(values, dtype="object"), utc=True,
                                    format="ISO8601").astype(_timestamp_dtype(pd))
        elif dtype == "object":
            series = pd.Series(values, dtype="object")
        else:
            series = pd.Series(values, dtype=dtype)
        data[column.name] = series
    return pd.DataFrame(data, columns=[c.name for c in columns])


def _timestamp_dtype(pd) -> str:
    """Microseconds, UTC: every DAP timestamp fits (years 1 to 9999, as Canvas has them),
    and one unit for every row group of the file.  pandas infers the unit from the data
    (seconds when no value has a fraction), and fastparquet writes a seconds column with
    wrong values, so the unit is always set.  pandas before 2.0 knows only nanoseconds."""
    major = int(str(pd.__version__).split(".")[0])
    return "datetime64[us, UTC]" if major >= 2 else "datetime64[ns, UTC]"
