"""Per-format writers: the decompressed bytes of a job's parts in, one output per table out.

A writer sees a part as ``begin_part(i)``, ``feed(bytes)`` (any number of times),
``end_part()`` once it verified, or ``restart_part()`` when it must be fed again from its
first byte.  ``finish()`` ends the output; the sink's ``commit`` makes it appear.

:class:`StreamWriter` (jsonl, json, csv, tsv): bytes go through the core's
``merge.PartMerger`` (one CSV/TSV header, JSON array framing, row counting) and straight
on to the sink.  No per-row Python: the merger works on bytes.  The merger's state is
copied at each part's start so that a restart rolls it back together with the sink.
Parquet's writer is ``parquet.ParquetWriter``, with the same protocol.

Any ``OSError`` from the output (a full disk) becomes ``OutputError`` (exit 12).
"""
from __future__ import annotations

import copy
import functools
from typing import Callable, Optional

from .. import errors, merge

__all__ = ["StreamWriter", "output_errors"]

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


class StreamWriter:
    """jsonl / json / csv / tsv through ``merge.PartMerger`` to a sink."""

    def __init__(self, fmt: str, sink, describe: str = "the output",
                 empty_header: Optional[Callable[[], str]] = None) -> None:
        self.format = fmt
        self.sink = sink
        self.describe = describe
        self.merger = merge.PartMerger(fmt)
        self._saved: Optional[merge.PartMerger] = None  # the merger as the part began
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
        if self._saved is None:
            raise RuntimeError("restart_part() before begin_part()")
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
