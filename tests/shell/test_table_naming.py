"""Records of several tables in one stream name their table (#12): the field goes first in
each JSON Lines record however the bytes are cut into writes."""
from __future__ import annotations

import io
import json

from hypothesis import given, strategies as st

from dap_core.shell.sinks import TableNamingStream

RECORDS = [{"key": {"id": i}, "value": {"name": "n\u00e9 %d" % i, "x": "}{\\n"},
            "meta": {"ts": "2024-07-13T09:30:00Z"}} for i in range(5)] + [{}]
TEXT = b"".join(json.dumps(r, ensure_ascii=False).encode("utf-8") + b"\n" for r in RECORDS)


@given(st.lists(st.integers(0, len(TEXT)), max_size=12))
def test_every_record_names_its_table_wherever_the_writes_cut(cuts):
    out = io.BytesIO()
    stream = TableNamingStream(out, "canvas.accounts")
    points = sorted(set([0, len(TEXT)] + cuts))
    for start, end in zip(points, points[1:]):
        stream.write(TEXT[start:end])
    stream.finish()
    lines = out.getvalue().decode("utf-8").splitlines()
    got = [json.loads(line) for line in lines]
    assert [g.pop("table") for g in got] == ["canvas.accounts"] * len(RECORDS)
    assert got == RECORDS
    assert all(line.startswith('{"table":"canvas.accounts"') for line in lines)


def test_a_last_record_without_its_newline_is_passed_on_at_finish():
    out = io.BytesIO()
    stream = TableNamingStream(out, "canvas.users")
    stream.write(b'{"key":{"id":1}}')
    assert out.getvalue() == b""
    stream.finish()
    assert json.loads(out.getvalue()) == {"table": "canvas.users", "key": {"id": 1}}
