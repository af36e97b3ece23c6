"""Object downloads: Content-Length, Range (206, suffix, 416), HEAD, and resuming a cut download."""
from __future__ import annotations

import gzip
import http.client
import urllib.parse
import zlib

import pytest

from fixtures.simulator import parts

from .api import Api, request


def first_url(sim, table="submissions", fmt="jsonl") -> str:
    api = Api(sim)
    return api.part_urls(api.run("canvas", table, {"format": fmt}))[0]


def raw_get(url: str, headers=None):
    """(status, headers, body bytes, complete?) with http.client, which shows a cut body."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        conn.request("GET", u.path + "?" + u.query, headers=headers or {})
        resp = conn.getresponse()
        try:
            return resp.status, resp.headers, resp.read(), True
        except http.client.IncompleteRead as exc:
            return resp.status, resp.headers, exc.partial, False
    finally:
        conn.close()


def test_range_from_an_offset_gives_the_rest(simulator):
    url = first_url(simulator)
    full = request("GET", url).body
    size = len(full)
    for start in (0, 1, 10, size // 2, size - 1):
        answer = request("GET", url, headers={"Range": f"bytes={start}-"})
        assert answer.status == 206
        assert answer.headers["Content-Range"] == f"bytes {start}-{size - 1}/{size}"
        assert int(answer.headers["Content-Length"]) == size - start
        assert answer.body == full[start:]


def test_bounded_and_suffix_ranges(simulator):
    url = first_url(simulator)
    full = request("GET", url).body
    size = len(full)
    answer = request("GET", url, headers={"Range": "bytes=5-14"})
    assert answer.status == 206 and answer.body == full[5:15]
    assert answer.headers["Content-Range"] == f"bytes 5-14/{size}"
    answer = request("GET", url, headers={"Range": "bytes=-20"})
    assert answer.status == 206 and answer.body == full[-20:]
    answer = request("GET", url, headers={"Range": f"bytes=10-{size + 100}"})
    assert answer.status == 206 and answer.body == full[10:]
    assert request("GET", url, headers={"Range": "bytes=0-1,5-6"}).body == full  # ignored


def test_unsatisfiable_range_is_416(simulator):
    url = first_url(simulator)
    size = len(request("GET", url).body)
    answer = request("GET", url, headers={"Range": f"bytes={size}-"})
    assert answer.status == 416
    assert answer.headers["Content-Range"] == f"bytes */{size}"


def test_head_and_etag(simulator):
    url = first_url(simulator)
    head = request("HEAD", url)
    full = request("GET", url)
    assert head.status == 200 and head.body == b""
    assert head.headers["Content-Length"] == full.headers["Content-Length"]
    assert head.headers["ETag"] == full.headers["ETag"]


def test_a_cut_download_resumes_with_range_to_identical_bytes(make_simulator):
    sim = make_simulator(cut_download_after=100, cut_download_times=1)
    url = first_url(sim)
    status, headers, partial, complete = raw_get(url)
    assert status == 200 and not complete
    assert len(partial) == 100 < int(headers["Content-Length"])
    status, headers2, rest, complete = raw_get(url, {"Range": "bytes=100-"})
    assert status == 206 and complete
    whole = partial + rest
    assert len(whole) == int(headers["Content-Length"])
    assert headers2["ETag"] == headers["ETag"]
    assert whole == request("GET", url).body
    assert gzip.decompress(whole).count(b"\n") == 100
    assert sim.fault_counts["cut_download"] == 1


def test_parts_larger_than_the_spill_size_are_served_from_disk(make_simulator, monkeypatch):
    monkeypatch.setattr(parts, "SPILL_BYTES", 2000)
    sim = make_simulator(corrupt_parts=1)
    url = first_url(sim)
    corrupt = request("GET", url).body
    full = request("GET", url).body
    assert len(full) > 2000 and len(corrupt) == len(full)
    assert sum(a != b for a, b in zip(full, corrupt)) == 1
    assert request("GET", url, headers={"Range": "bytes=1000-"}).body == full[1000:]
    with pytest.raises((OSError, EOFError, zlib.error)):  # gzip.BadGzipFile is an OSError
        gzip.decompress(corrupt)
    gzip.decompress(full)
