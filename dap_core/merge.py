"""Merging the decompressed parts of one result into one output stream (pure, bytes only):
one CSV/TSV header, JSON array framing, row counting.
"""
from __future__ import annotations

import re
from typing import Any, List, Optional

from .errors import UnexpectedAnswer

__all__ = ["PartMerger", "MERGE_FORMATS"]

MERGE_FORMATS = ("jsonl", "json", "csv", "tsv")
# re finds a two-byte literal several times faster than `in` does
_EMPTY_LINE = re.compile(b"\n\n")
# bytes to drop to see only what decides CSV row ends: quotes and newlines
_NOT_QUOTE_OR_NEWLINE = bytes(b for b in range(256) if b not in (0x22, 0x0A))


class PartMerger:
    """Merges the decompressed parts of one result into one stream, with bytes methods only
    (a large table passes through here at gunzip speed).

    Feed each part's bytes in chunks of any size with `feed(chunk)` (or `feed(part_index,
    chunk)`, which ends the previous part when the index changes), call `end_part()` after
    each part and `finish()` after the last; each returns bytes to write.

    - jsonl: lines passed through, empty lines dropped, a last line given its newline;
    - json: the same records framed as `[` + records joined by `,\\n` + `]\\n` (`[]\\n` if none);
    - csv/tsv: the first part's header kept, every later part's header checked and dropped;
      with no part at all nothing is written (`header_seen` is False: the caller writes one).
      The header is taken as the service sends it, with or without `meta.action` (a
      snapshot's has none, an incremental's has it): only its sameness across parts is
      checked.

    `rows` counts records (CSV: newlines outside quotes)."""

    def __init__(self, format: str) -> None:
        fmt = str(format).lower()
        if fmt not in MERGE_FORMATS:
            raise ValueError("PartMerger merges %s, not %r" % (", ".join(MERGE_FORMATS), format))
        self.format = fmt
        self.rows = 0
        self.parts = 0
        self.header: Optional[bytes] = None
        self._lines = fmt in ("jsonl", "json")
        self._part_index: Any = None
        self._in_part = False
        self._pending: List[bytes] = []
        self._header_done = False
        self._in_quote = False
        self._last = b""
        self._framed = False
        self._mid_line = False
        self._finished = False

    @property
    def header_seen(self) -> bool:
        return self.header is not None

    def feed(self, part_or_chunk: Any, chunk: Any = None) -> bytes:
        if self._finished:
            raise ValueError("PartMerger.feed after finish")
        out = b""
        if chunk is None:
            data = part_or_chunk
        else:
            data = chunk
            if self._in_part and part_or_chunk != self._part_index:
                out = self.end_part()
            self._part_index = part_or_chunk
        data = bytes(data)
        self._in_part = True
        if not data:
            return out
        produced = self._feed_lines(data) if self._lines else self._feed_table(data)
        return out + produced if out else produced

    def end_part(self) -> bytes:
        """Close the current part: its last line may lack a newline."""
        out = b""
        if self._lines:
            if self._mid_line:  # a last line without a newline is still a record
                self.rows += 1
                if self.format == "jsonl":
                    out = b"\n"
            self._mid_line = False
        else:
            out = self._end_table_part()
        self._pending = []
        self._in_part = False
        self.parts += 1
        return out

    def finish(self) -> bytes:
        """Close the stream: end a part left open, close a JSON array."""
        out = self.end_part() if self._in_part else b""
        self._finished = True
        if self.format == "json":
            out += b"]\n" if self._framed else b"[]\n"
        return out

    # -- jsonl and json: chunks pass through as they come, whatever the line boundaries.
    # JSON holds each record's newline back and writes it as the `,\n` before the next one.

    def _separator(self) -> bytes:
        if self._framed:
            return b",\n"
        self._framed = True
        return b"["

    def _feed_lines(self, data: bytes) -> bytes:
        if _EMPTY_LINE.search(data) or (not self._mid_line and data.startswith(b"\n")):
            return self._feed_lines_skipping_empty(data)
        newlines = data.count(b"\n")
        self.rows += newlines
        starts_record = not self._mid_line
        self._mid_line = not data.endswith(b"\n")
        if self.format == "jsonl" or not newlines:
            body = data
        elif self._mid_line:  # usual: every newline here is followed by another record
            body = data.replace(b"\n", b",\n")
        else:
            body = data[:-1].replace(b"\n", b",\n")
        return self._separator() + body if starts_record and self.format == "json" else body

    def _feed_lines_skipping_empty(self, data: bytes) -> bytes:
        """The rare chunk with an empty line: a loop per line."""
        lines = data.split(b"\n")
        partial = lines.pop()  # the start of the next line, maybe empty
        out: List[bytes] = []
        jsonl = self.format == "jsonl"
        for n, line in enumerate(lines):
            continues = n == 0 and self._mid_line  # the rest of a line begun in an earlier chunk
            if not (line or continues):
                continue
            self.rows += 1
            if jsonl:
                out += (line, b"\n")
            else:
                out += (line,) if continues else (self._separator(), line)
        if partial:
            out += (partial,) if jsonl else (self._separator(), partial)
        self._mid_line = bool(partial)
        return b"".join(out)

    # -- csv and tsv

    def _take_header(self, header: bytes) -> bytes:
        self._header_done = True
        if self.header is None:
            self.header = header
            return header
        if header.rstrip(b"\r\n") != self.header.rstrip(b"\r\n"):
            raise UnexpectedAnswer("part %d of the result has a different header than the first "
                                   "part" % (self.parts + 1))
        return b""

    def _feed_table(self, data: bytes) -> bytes:
        out = b""
        if not self._header_done:
            end = data.find(b"\n") + 1
            if end == 0:
                self._pending.append(data)
                return b""
            self._pending.append(data[:end])
            header = b"".join(self._pending)
            self._pending = []
            out = self._take_header(header)
            data = data[end:]
            if not data:
                return out
        self._count_rows(data)
        self._last = data[-1:]
        return out + data if out else data

    def _count_rows(self, data: bytes) -> None:
        if self.format == "tsv" or (b'"' not in data and not self._in_quote):
            self.rows += data.count(b"\n")
            return
        # Keep only quotes and newlines, then drop adjacent quote pairs: neither changes the
        # quote parity before any newline, and what is left is tiny unless fields span lines.
        marks = data.translate(None, _NOT_QUOTE_OR_NEWLINE).replace(b'""', b"")
        pieces = marks.split(b'"')
        outside = pieces[1::2] if self._in_quote else pieces[0::2]
        self.rows += sum(piece.count(b"\n") for piece in outside)
        if len(pieces) % 2 == 0:
            self._in_quote = not self._in_quote

    def _end_table_part(self) -> bytes:
        out = b""
        if not self._header_done and self._pending:
            out = self._take_header(b"".join(self._pending) + b"\n")  # a part of a header only
        if self._in_quote:
            raise UnexpectedAnswer("part %d of the result ends inside a quoted CSV field"
                                   % (self.parts + 1))
        if self._last not in (b"", b"\n"):
            out += b"\n"
            self.rows += 1
        self._header_done = False
        self._last = b""
        return out
