"""Incremental gunzip of a part: several members are one stream, damage is detected by
zlib's CRC/length checks, and a stream that stops early is never taken as complete."""
from __future__ import annotations

import gzip
import os

import pytest

from dap_core.shell.download import MAX_OUTPUT, CorruptPart, Gunzip, _content_range_start


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
                                          (None, None), ("items 1-2/3", None), ("bytes */200", None)])
def test_content_range_start(header, start):
    assert _content_range_start(header) == start
