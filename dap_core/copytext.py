"""PostgreSQL COPY text format (DAP's TSV), decoded into rows (pure).

One line is one row: fields separated by tabs, ``\\N`` for NULL, backslash escapes for
backslash, tab, newline and carriage return (and COPY's rarer ``\\b \\f \\v``, octal and
``\\x`` hex). Lines never hold a raw newline, so a chunk of bytes splits into rows at its
newlines; :class:`LineSplitter` carries the incomplete last line to the next chunk.
"""
from __future__ import annotations

import re
from typing import List, Optional, Tuple

__all__ = ["decode_field", "unescape", "decode_lines", "LineSplitter"]

_ESCAPE = re.compile(r"\\(x[0-9A-Fa-f]{1,2}|[0-7]{1,3}|.)", re.S)
_SIMPLE = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def _unescape(match: "re.Match[str]") -> str:
    code = match.group(1)
    if code[0] == "x" and len(code) > 1:
        return chr(int(code[1:], 16))
    if code[0] in "01234567":
        return chr(int(code, 8))
    return _SIMPLE.get(code, code)


def unescape(text: str) -> str:
    """``text`` with its escapes undone (a field, or several fields joined by a character
    that is never escaped: no escape spans two fields).

    Read left to right, every ``\\\\`` is an escaped backslash, so the text splits at them
    into pieces where each backslash begins an escape of a character that is not one; the
    common ones (tab, newline, return) are replaced piece by piece by ``str.replace``, the
    rest by the regular expression, one escape at a time."""
    if "\\" not in text:
        return text
    pieces = text.split("\\\\")
    for at, piece in enumerate(pieces):
        if "\\" in piece:
            piece = piece.replace("\\t", "\t").replace("\\n", "\n").replace("\\r", "\r")
            if "\\" in piece:
                piece = _ESCAPE.sub(_unescape, piece)
            pieces[at] = piece
    return "\\".join(pieces)


def decode_field(text: str) -> Optional[str]:
    """One field's value: None for ``\\N``, escapes undone."""
    if text == "\\N":
        return None
    if "\\" in text:
        return unescape(text)
    return text


def decode_lines(data: bytes, width: int) -> List[Tuple[Optional[str], ...]]:
    """The rows of whole lines ``data`` (each ending in a newline), each of ``width`` fields;
    a line of another width is a ``ValueError``."""
    text = data.decode("utf-8")
    rows: List[Tuple[Optional[str], ...]] = []
    append = rows.append
    plain = "\\" not in text
    for line in text.split("\n")[:-1]:
        fields = line.split("\t")
        if len(fields) != width:
            raise ValueError("a line of %d fields where the header has %d" % (len(fields), width))
        if plain:
            append(tuple(fields))
        else:
            append(tuple(decode_field(f) if "\\" in f else f for f in fields))
    return rows


class LineSplitter:
    """Cuts a stream of chunks at line ends: :meth:`feed` returns the whole lines so far."""

    __slots__ = ("_rest",)

    def __init__(self) -> None:
        self._rest = b""

    def feed(self, chunk: bytes) -> bytes:
        end = chunk.rfind(b"\n")
        if end < 0:
            self._rest += chunk
            return b""
        whole = self._rest + chunk[:end + 1]
        self._rest = chunk[end + 1:]
        return whole

    def rest(self) -> bytes:
        """What is left after the last newline (a part must end with one)."""
        return self._rest
