"""The extra ``fast`` (orjson, ISA-L's inflate) changes no byte: each format's output of the
simulator's tables is identical with and without it, orjson parses JSON Lines as ``json``
does (or leaves it to ``json``), and ``DAP_NO_FAST=1`` turns it off."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dap_core import SnapshotQuery, records
from dap_core.errors import UnexpectedAnswer
from dap_core.shell import fast

from .conftest import connect

ROOT = pathlib.Path(__file__).resolve().parents[2]

needs_fast = pytest.mark.skipif(set(fast.available()) != {"isal", "orjson"},
                                reason="the extra fast (orjson, isal) is not installed")


@pytest.fixture
def accelerated():
    """``use(True)`` / ``use(False)``: the accelerators on or off; as the environment says
    again afterwards."""
    yield fast.configure
    fast.configure()


def parse(data: bytes, parser):
    """What ``jsonl_records`` makes of ``data``: the records, or the error it raised."""
    try:
        return records.jsonl_records(data, 1, parser)
    except UnexpectedAnswer as exc:
        return ("error", str(exc))


def same(a, b) -> bool:
    """Equal, and of the same types all the way down (1 and 1.0, -0.0 and 0.0 differ)."""
    return json.dumps(a, allow_nan=True) == json.dumps(b, allow_nan=True) and repr(a) == repr(b)


TRICKY_LINES = [
    b'{"a":18446744073709551616}', b'{"a":-9223372036854775809}', b'{"a":9223372036854775807}',
    b'{"a":18446744073709551615}', b'{"a":NaN}', b'{"a":Infinity}', b'{"a":1e400}',
    b'{"a":"\\ud800"}', b'{"a":"\\u00fc\\n"}', b'{"a":-0.0,"b":1.0,"c":1E2,"d":5e-324}',
    b'{"a":0.30000000000000004,"b":1.7976931348623157e308}', b'{"a":1,"a":2}', b'', b'   ',
    b'[1,2]', b'3', b'"text"', b'{"a":1', b'{"a":"\xff"}', b'{"a":"caf\xc3\xa9"}',
    b'{"a":1},{"b":[3', b'4]}', b'{"k":{"id":12345678901234567890123}}', b'null',
]


@needs_fast
@pytest.mark.parametrize("line", TRICKY_LINES)
def test_orjson_gives_what_json_gives_or_leaves_it_to_json(accelerated, line):
    accelerated(True)
    data = b'{"first":1}\n' + line + b'\n{"last":[1.5,"x",null,true]}\n'
    assert same(parse(data, fast.lines_parser()), parse(data, None))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2 ** 70, max_value=2 ** 70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=4),
    max_leaves=12)


@needs_fast
@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(st.text(max_size=5), json_values, max_size=5)
                | json_values.map(lambda v: [v]), min_size=1, max_size=6),
       st.booleans())
def test_json_lines_by_orjson_are_those_of_json(lines, ascii_only):
    fast.configure(True)
    try:
        data = b"\n".join(json.dumps(v, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
                          for chunk in lines for v in (chunk if isinstance(chunk, list)
                                                       else [chunk])) + b"\n"
        assert same(parse(data, fast.lines_parser()), parse(data, None))
    finally:
        fast.configure()


def test_no_parser_when_turned_off(accelerated):
    accelerated(False)
    assert fast.enabled() == [] and fast.lines_parser() is None
    assert fast.json_lines(b'{"a":1}') is None
    assert type(fast.decompressobj(31)).__module__ == "zlib"


@pytest.mark.parametrize("value,on", [("1", False), ("yes", False), ("0", True), ("", True)])
def test_dap_no_fast_turns_the_accelerators_off(value, on):
    env = dict(os.environ, DAP_NO_FAST=value)
    out = subprocess.run([sys.executable, "-c", "from dap_core.shell import fast; "
                          "print(','.join(fast.enabled()))"], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout.strip()
    assert (out.split(",") if out else []) == (fast.available() if on else [])


def download_all(sim, directory, fmt):
    """Every table of the simulator in ``fmt``: {file name: bytes}."""
    out = {}
    with connect(sim) as dap:
        for namespace, table in [("canvas", t) for t in dap.list_tables("canvas")] + [
                ("canvas_logs", t) for t in dap.list_tables("canvas_logs")]:
            query = SnapshotQuery(namespace, table, format=fmt)
            result = dap.download(dap.run(query), query, str(directory))
            out[os.path.basename(result.path)] = pathlib.Path(result.path).read_bytes()
    return out


@needs_fast
@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "csv", "tsv", "json"])
def test_every_tables_output_is_byte_identical_with_and_without_fast(
        make_simulator, tmp_path, accelerated, monkeypatch, fmt):
    sim = make_simulator(rows_per_part=97, rows={"submissions": 3000})
    used = {"inflaters": set(), "lines": 0}
    make_inflater, json_lines = fast.decompressobj, fast.json_lines

    def counting_inflater(wbits):
        inflater = make_inflater(wbits)
        used["inflaters"].add(type(inflater).__module__)
        return inflater

    def counting_lines(body):
        used["lines"] += 1
        return json_lines(body)

    monkeypatch.setattr(fast, "decompressobj", counting_inflater)
    monkeypatch.setattr(fast, "json_lines", counting_lines)
    accelerated(False)
    slow = download_all(sim, tmp_path / "slow", fmt)
    assert used["lines"] == 0 and used["inflaters"] == {"zlib"}
    accelerated(True)
    used["inflaters"].clear()
    quick = download_all(sim, tmp_path / "fast", fmt)
    assert used["inflaters"] == {"isal_zlib"}
    assert (used["lines"] > 0) == (fmt == "parquet")  # orjson parses for Parquet only
    assert len(slow) == 6 and slow == quick
