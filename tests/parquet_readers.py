"""Read a Parquet file with two independent readers, pyarrow and fastparquet, and check that
they agree (#10): a file that only the writer's own library reads back proves little.

`read_both(path)` gives the file's columns as plain Python values, the same from both readers:

- null is None (pandas' NA, NaT and a float column's NaN from fastparquet; None from pyarrow,
  which reads a stored NaN as NaN, so a NaN written for a null shows as a disagreement);
- integers are int, floats float, booleans bool, texts str;
- timestamps are `datetime` in UTC (`tzinfo=timezone.utc`); a timestamp column without a
  time zone, or another zone than UTC, fails here.

`parquet_types(path)` gives what pyarrow reports of each column's Parquet type.

Both readers come with setup.py's test extra (Python 3.9+; on 3.8, tests/conftest.py skips
the Parquet tests): one missing fails the test that needs it, rather than skip it quietly.
"""
from __future__ import annotations

import datetime as dt
import importlib
import io
import json
from typing import Any, Dict, List, NamedTuple

import pytest

UTC = dt.timezone.utc


class ParquetContent(NamedTuple):
    names: List[str]                  # the columns, in the file's order
    columns: Dict[str, List[Any]]     # name -> values (Python values, None for null)
    num_rows: int
    row_groups: List[int]             # rows of each row group

    def rows(self) -> List[Dict[str, Any]]:
        return [{name: self.columns[name][i] for name in self.names}
                for i in range(self.num_rows)]


class ColumnType(NamedTuple):
    physical: str        # INT64, DOUBLE, BOOLEAN, BYTE_ARRAY, ...
    logical: dict        # pyarrow's LogicalType.to_json(): {"Type": "String"}, ...
    optional: bool       # may hold nulls (max definition level 1)
    arrow: str           # the Arrow type pyarrow reads it as: int64, timestamp[us, tz=UTC], ...


def _import(name: str):
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        pytest.fail("%s is not installed (%s): the Parquet tests read every file with pyarrow "
                    "and fastparquet; install setup.py's test extra (make install)"
                    % (name, exc), pytrace=False)


def _utc(value: dt.datetime, where: str) -> dt.datetime:
    assert value.tzinfo is not None and value.utcoffset() == dt.timedelta(0), (
        "%s: a timestamp that is not UTC: %r" % (where, value))
    return value.replace(tzinfo=UTC)


def _from_pyarrow(value: Any, where: str) -> Any:
    if isinstance(value, dt.datetime):
        return _utc(value, where)
    return value


def _from_pandas(value: Any, where: str) -> Any:
    import numpy
    import pandas
    if isinstance(value, pandas.Timestamp):
        return _utc(value.to_pydatetime(), where)
    if isinstance(value, numpy.generic):
        return value.item()
    return value


def read_with_pyarrow(path) -> ParquetContent:
    parquet = _import("pyarrow.parquet")
    file = parquet.ParquetFile(str(path))
    table = file.read()
    names = list(table.column_names)
    columns = {name: [_from_pyarrow(v, name) for v in table.column(name).to_pylist()]
               for name in names}
    groups = [file.metadata.row_group(i).num_rows for i in range(file.metadata.num_row_groups)]
    return ParquetContent(names, columns, table.num_rows, groups)


def fastparquet_file(path):
    """fastparquet's ParquetFile over the file's bytes in memory: given a path, fastparquet's
    to_pandas opens the file and never closes it (an unclosed file per read)."""
    fastparquet = _import("fastparquet")
    with open(str(path), "rb") as f:
        return fastparquet.ParquetFile(io.BytesIO(f.read()))


def read_with_fastparquet(path) -> ParquetContent:
    file = fastparquet_file(path)
    frame = file.to_pandas()
    names = [str(name) for name in frame.columns]
    columns = {}
    for name in names:
        series = frame[name]
        columns[name] = [None if null else _from_pandas(value, name)
                         for value, null in zip(series.tolist(), series.isna().tolist())]
    return ParquetContent(names, columns, len(frame), [rg.num_rows for rg in file.row_groups])


def read_both(path) -> ParquetContent:
    """The file as pyarrow reads it, after checking that fastparquet reads the very same
    columns, values (type included: 1 is not 1.0 nor True), rows and row groups."""
    arrow = read_with_pyarrow(path)
    fast = read_with_fastparquet(path)
    assert arrow.names == fast.names, "the readers see other columns"
    assert arrow.num_rows == fast.num_rows and arrow.row_groups == fast.row_groups
    for name in arrow.names:
        mine, theirs = arrow.columns[name], fast.columns[name]
        for index, (a, f) in enumerate(zip(mine, theirs)):
            assert type(a) is type(f) and a == f, (
                "%s row %d: pyarrow reads %r, fastparquet %r" % (name, index, a, f))
    return arrow


def parquet_types(path) -> Dict[str, ColumnType]:
    """{column name: ColumnType} as pyarrow reports the file's schema; every column must be
    a flat top-level column (no nested groups, no repetition)."""
    parquet = _import("pyarrow.parquet")
    file = parquet.ParquetFile(str(path))
    arrow = file.schema_arrow
    out = {}
    for index in range(len(file.schema)):
        column = file.schema.column(index)
        assert column.max_repetition_level == 0, column
        field = arrow.field(index)
        assert field.name == column.name == column.path, (field.name, column.path)
        out[column.name] = ColumnType(column.physical_type,
                                      json.loads(column.logical_type.to_json()),
                                      column.max_definition_level == 1, str(field.type))
    assert list(out) == list(arrow.names)
    return out
