"""``parquet_pages`` encodes a column's page and chunk metadata from numpy arrays exactly as
fastparquet's own ``write_column`` encodes the same values from a pandas Series: the same
bytes, for every kind of column, with and without nulls (fastparquet is the oracle)."""
from __future__ import annotations

import io
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

fastparquet = pytest.importorskip("fastparquet")  # with numpy and pandas: the parquet extra

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from fastparquet import parquet_thrift  # noqa: E402
from fastparquet.writer import write_column, write_thrift  # noqa: E402

from dap_core.shell import parquet_pages  # noqa: E402

KINDS = {
    "integer": (st.integers(-2 ** 63, 2 ** 63 - 1), "Int64"),
    "number": (st.floats(allow_nan=False), "float64"),
    "boolean": (st.booleans(), "boolean"),
    "timestamp": (st.integers(-62135596800 * 10 ** 6, 253402300799 * 10 ** 6),
                  "datetime64[us, UTC]"),
    "string": (st.text(max_size=20), object),
}


def element(kind, tmp_path):
    """fastparquet's schema element of a column of ``kind``, as the writer gets it."""
    frame = pd.DataFrame({"c": pd.Series([], dtype=KINDS[kind][1])})
    path = str(tmp_path / ("%s.parquet" % kind))
    fastparquet.write(path, frame, write_index=False, compression="SNAPPY", stats=False,
                      object_encoding="utf8", times="int64")
    return [e for e in fastparquet.ParquetFile(path).fmd.schema if e.type is not None][0]


def series(kind, values):
    """The pandas column fastparquet writes of ``values`` (None for null)."""
    if kind == "timestamp":
        return pd.Series(np.array([v if v is not None else np.iinfo(np.int64).min
                                   for v in values], dtype=np.int64).view("datetime64[us]"),
                         name="c").dt.tz_localize("UTC")
    if kind == "number":
        return pd.Series([np.nan if v is None else v for v in values], dtype="float64",
                         name="c")
    return pd.Series(values, dtype=KINDS[kind][1], name="c")


def typed(kind, values):
    """The same values as ``tsvfields.Fields`` gives them (written out here)."""
    nulls = np.array([v is None for v in values], dtype=bool)
    if kind == "number":
        return (np.array([np.nan if v is None else v for v in values], dtype=np.float64),)
    if kind == "string":
        plain = b"".join(struct.pack("<I", len(v.encode())) + v.encode()
                         for v in values if v is not None)
        return np.frombuffer(plain, dtype=np.uint8), nulls
    dtype = bool if kind == "boolean" else np.int64
    return np.array([v if v is not None else 0 for v in values], dtype=dtype), nulls


def pads_whole_bytes_again():
    """Whether this fastparquet packs eight booleans (or none) into two bytes (one): a
    padding later versions dropped, which 2024.11 (setup.py's floor) still has.  dap packs
    them as the later ones do; readers take either (the writer's tests read every kind back
    with both readers on the floor too)."""
    from fastparquet.writer import encode_plain
    flags = pd.Series([True] * 8)
    return len(encode_plain(flags, parquet_thrift.SchemaElement(
        type=parquet_thrift.Type.BOOLEAN))) != 1


def thrift_bytes(obj):
    out = io.BytesIO()
    write_thrift(out, obj)
    return out.getvalue()


@pytest.mark.parametrize("kind", sorted(KINDS))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_a_page_and_its_chunk_are_the_bytes_fastparquet_writes(tmp_path_factory, kind, data):
    if pads_whole_bytes_again():
        pytest.skip("this fastparquet pads eight booleans with a byte too many")
    values = data.draw(st.lists(st.none() | KINDS[kind][0], min_size=1, max_size=60))
    el = element(kind, tmp_path_factory.mktemp("schema"))
    theirs = io.BytesIO(b"PAR1")
    theirs.seek(4)
    their_chunk = write_column(theirs, series(kind, values), el, compression="SNAPPY",
                               stats=False)
    page = parquet_pages.encode_page(kind, typed(kind, values), True, "SNAPPY", parquet_thrift)
    mine = parquet_pages.column_chunk([page], 4, el, "c", "SNAPPY", parquet_thrift)
    assert page.data == theirs.getvalue()[4:]
    assert thrift_bytes(mine) == thrift_bytes(their_chunk)


def test_a_chunk_of_several_pages_counts_them_all(tmp_path):
    el = element("integer", tmp_path)
    pages = [parquet_pages.encode_page("integer", typed("integer", values), True, "SNAPPY",
                                       parquet_thrift)
             for values in ([1, None, 3], [None], [4, 5])]
    chunk = parquet_pages.column_chunk(pages, 100, el, "c", "SNAPPY", parquet_thrift)
    meta = chunk.meta_data
    assert (meta.num_values, meta.statistics.null_count, meta.encoding_stats[0].count) == (6, 2, 3)
    assert meta.total_compressed_size == sum(len(p.data) for p in pages)
    assert meta.data_page_offset == chunk.file_offset == 100
