"""Parquet data pages and column chunks of typed columns, as fastparquet's ``write_column``
makes them (PLAIN values, RLE/bit-packed definition levels, data page v1, no statistics
but the count of nulls), from the numpy arrays of ``tsvfields`` rather than from a pandas
Series: no Python object per value.

A column chunk of a row group is one or more pages, a page per chunk of lines.  A page is
encoded (and compressed) where the chunk is typed, the worker process included; the
writer only puts pages in place and describes them in the footer.  fastparquet's thrift
classes describe the column chunks and its compressors compress; the page headers are
encoded here.  Tests check pages and chunks against ``fastparquet.writer.write_column``
byte for byte.
"""
from __future__ import annotations

import struct
from typing import Any, List, NamedTuple, Sequence

import numpy as np

from .tsvfields import TEXT_KINDS

__all__ = ["Page", "encode_page", "column_chunk", "row_group"]

#: fastparquet pads a page's values with this many zero bytes (its reader's reads ahead)
_PADDING = b"\x00" * 8


class Page(NamedTuple):
    """One data page: its bytes as written (header and compressed body), and what the
    column chunk's metadata needs of it."""
    data: bytes
    rows: int
    nulls: int
    uncompressed: int  # the page's size with its body uncompressed


def encode_page(kind: str, typed: Sequence[Any], optional: bool, compression: str,
                thrift: Any) -> Page:
    """The page of one column of a chunk: ``typed`` as ``tsvfields.Fields`` gives it --
    (values, nulls) of integers, booleans and times, (values,) of numbers (NaN for null),
    (PLAIN bytes of the present texts, nulls) of texts.  ``thrift``: fastparquet's
    ``parquet_thrift`` module, ``compression``: its name of a codec."""
    from fastparquet.compression import compress_data
    if kind == "number":
        values = typed[0]
        nulls = np.isnan(values)
    else:
        values, nulls = typed
    rows = len(nulls)
    count = int(np.count_nonzero(nulls))
    present = values if kind in TEXT_KINDS or not count else values[~nulls]
    if kind in TEXT_KINDS:  # the present texts only already
        body = present.tobytes()
    elif kind == "boolean":
        body = np.packbits(present.astype(bool), bitorder="little").tobytes()
    elif kind == "number":
        body = present.astype("<f8", copy=False).tobytes()
    else:  # integers, and times as int64 microseconds
        body = present.astype("<i8", copy=False).tobytes()
    levels = _definition_levels(nulls, count) if optional else b""
    raw = b"".join([levels, body, _PADDING])
    compressed = bytes(compress_data(raw, compression))
    head = _page_header(rows, len(raw), len(compressed), thrift)
    return Page(head + compressed, rows, count, len(head) + len(raw))


def column_chunk(pages: Sequence[Page], offset: int, element: Any, name: str,
                 compression: str, thrift: Any) -> Any:
    """The metadata of a column chunk of ``pages`` written from ``offset`` on."""
    from fastparquet.cencoding import ThriftObject
    written = sum(len(page.data) for page in pages)
    metadata = ThriftObject.from_fields(
        "ColumnMetaData", type=element.type, path_in_schema=[name],
        encodings=[thrift.Encoding.PLAIN],
        codec=getattr(thrift.CompressionCodec, compression.upper()),
        num_values=sum(page.rows for page in pages),
        statistics=thrift.Statistics(null_count=sum(page.nulls for page in pages)),
        data_page_offset=offset, dictionary_page_offset=None,
        encoding_stats=[thrift.PageEncodingStats(
            page_type=thrift.PageType.DATA_PAGE, encoding=thrift.Encoding.PLAIN,
            count=len(pages), i32=1)],
        key_value_metadata=[],
        total_uncompressed_size=sum(page.uncompressed for page in pages),
        total_compressed_size=written, i32list=[1, 4])
    return thrift.ColumnChunk(file_offset=offset, meta_data=metadata, file_path=None)


def row_group(chunks: List[Any], rows: int) -> Any:
    from fastparquet.cencoding import ThriftObject
    return ThriftObject.from_fields(
        "RowGroup", num_rows=rows, columns=chunks,
        total_byte_size=sum(c.meta_data.total_uncompressed_size for c in chunks))


def _definition_levels(nulls, count: int) -> bytes:
    """A page's definition levels (0 null, 1 present), with their length before them: one
    run when none is null, else bit-packed groups of eight (the hybrid encoding)."""
    if not count:
        levels = _varint(len(nulls) << 1) + b"\x01"
    else:
        packed = np.packbits(~nulls, bitorder="little").tobytes()
        levels = _varint(len(packed) << 1 | 1) + packed
    return struct.pack("<I", len(levels)) + levels


def _page_header(rows: int, size: int, compressed: int, thrift: Any) -> bytes:
    """A data page's header (thrift compact protocol), as fastparquet's ``write_thrift`` of
    its ``PageHeader`` encodes it: written here, since building those objects cost more
    than the page's values for the small pages of narrow columns."""
    def field(delta: int, value: int) -> bytes:  # an i32 field: a zigzag varint
        return bytes([delta << 4 | 0x05]) + _varint(value << 1)

    inner = (field(1, rows) + field(1, thrift.Encoding.PLAIN) + field(1, thrift.Encoding.RLE)
             + field(1, thrift.Encoding.BIT_PACKED) + b"\x00")
    return (field(1, thrift.PageType.DATA_PAGE) + field(1, size) + field(1, compressed)
            + bytes([2 << 4 | 0x0C]) + inner + b"\x00")


def _varint(number: int) -> bytes:
    out = bytearray()
    while number > 0x7F:
        out.append(number & 0x7F | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)

