"""Incremental gunzip of a part: several members are one stream, damage is detected by
zlib's CRC/length checks, and a stream that stops early is never taken as complete.  Each
test runs with the standard library's zlib and with ISA-L's inflate (the extra ``fast``)."""
from __future__ import annotations

import gzip
import os

import pytest

from dap_core.shell import fast
from dap_core.shell.download import MAX_OUTPUT, CorruptPart, Gunzip, _content_range_start


@pytest.fixture(autouse=True, params=["zlib", "isal"])
def inflater(request):
    """The inflater a test runs with (isal only where it is installed)."""
    if request.param == "isal" and "isal" not in fast.available():
        pytest.skip("isal (the extra fast) is not installed")
    fast.configure(request.param == "isal")
    try:
        assert ("isal" in fast.enabled()) == (request.param == "isal")
        yield request.param
    finally:
        fast.configure()


def run(data: bytes, chunk: int = 7):
    g, out = Gunzip(), []
    for i in range(0, len(data), chunk):
        g.feed(data[i:i + chunk], out.append)
    return g, b"".join(out)


@pytest.mark.parametrize("chunk", [1, 5, 64, 100000])
def test_gunzip_in_any_chunking_gives_the_original_bytes(chunk):
    raw = b"".join(b'{"key": {"id": %d}}\n' % i for i in range(500))
    g, out = run(gzip.compress(raw), chunk)
    assert out == raw and g.finished()


def test_gunzip_reads_several_members_and_nul_padding_as_one_stream():
    data = gzip.compress(b"one\n") + gzip.compress(b"two\n") + b"\0\0\0" + gzip.compress(b"3\n")
    g, out = run(data, 3)
    assert out == b"one\ntwo\n3\n" and g.finished()


def test_gunzip_truncated_stream_is_not_finished():
    data = gzip.compress(os.urandom(2000))
    g, _ = run(data[:-8])  # no trailer: CRC and length unknown
    assert not g.finished()


def test_gunzip_flipped_byte_is_detected():
    data = bytearray(gzip.compress(b"hello world " * 1000))
    data[-8] ^= 0xFF  # the CRC
    with pytest.raises(CorruptPart):
        run(bytes(data))


def test_gunzip_garbage_after_a_member_is_detected():
    with pytest.raises(CorruptPart):
        run(gzip.compress(b"x") + b"garbage!")


def test_gunzip_bounds_each_output_piece():
    pieces = []
    g = Gunzip()
    g.feed(gzip.compress(b"\0" * (3 * MAX_OUTPUT + 5)), pieces.append)
    assert max(map(len, pieces)) <= MAX_OUTPUT and g.finished()
    assert sum(map(len, pieces)) == 3 * MAX_OUTPUT + 5


def test_empty_part_is_not_a_finished_gzip_stream():
    assert not Gunzip().finished()


@pytest.mark.parametrize("header,start", [("bytes 100-199/200", 100), ("bytes 0-9/*", 0),
                                          (None, None), ("items 1-2/3", None),
                                          ("bytes */200", None)])
def test_content_range_start(header, start):
    assert _content_range_start(header) == start


@pytest.mark.parametrize("at,flip", [(0, 0x01), (1, 0x80), (2, 0x01), (3, 0x20), (3, 0x80),
                                     (3, 0xE0), (3, 0xFF)])
def test_a_damaged_gzip_header_is_detected_by_either_inflater(at, flip):
    data = bytearray(gzip.compress(b"hello world " * 100))
    data[at] ^= flip  # magic, method, reserved flags: ISA-L alone lets reserved flags pass
    for chunk in (1, 3, len(data)):
        with pytest.raises(CorruptPart):
            run(bytes(data), chunk)


def test_a_damaged_header_of_a_later_member_is_detected():
    second = bytearray(gzip.compress(b"two\n"))
    second[3] |= 0x40
    with pytest.raises(CorruptPart):
        run(gzip.compress(b"one\n") + b"\0\0" + bytes(second), 2)
