"""Stream one part of a job's result: gunzip as it streams, resume a cut with Range,
verify the gzip CRC and length, fetch again when the part is corrupt.

A part is a gzip file behind a pre-signed URL.  It is never held whole in memory: chunks of
:data:`CHUNK_SIZE` compressed bytes go through one ``zlib.decompressobj`` into the target.

* A connection cut mid-part: ask again with ``Range: bytes=N-`` where N is the number of
  compressed bytes already taken, and feed the same decompressor (nothing lost, nothing
  repeated).  A server that answers 200 instead of 206 (or a 206 for another offset) makes
  the part start over.
* A corrupt or truncated part (zlib's CRC/length check fails, or the stream ends before the
  gzip trailer): ``target.restart()`` rolls the output back to where the part began and the
  part is downloaded again from its first byte, at most ``max_downloads`` times; then
  ``ServiceUnavailable`` (exit 11).
* 403 (the URL expired): a fresh URL for this object from ``urls.refresh``, then go on.
* Connection errors and 5xx: the core's retry policy decides (bounded, growing delays).
  Its attempts count every failed request since the last byte received, refused URLs
  included, so one bound covers them all.

The rules above are ``dap_core.transfer.PartDownload``'s, a pure state machine: this
module performs what it decides and reports what happened.  The download sends no
Authorization (nor x-instauth) header: only ``Range`` when resuming.
"""
from __future__ import annotations

import logging
from typing import Callable, Dict, List, Optional, Sequence

from .. import errors, transfer
from . import fast
from .http import describe_answer, describe_network_error, log_retry, tls_failure

__all__ = ["CHUNK_SIZE", "Gunzip", "ObjectUrls", "PartStats", "fetch_part"]

log = logging.getLogger("dap.download")

#: compressed bytes read from the socket at a time
CHUNK_SIZE = 256 * 1024
#: at most this many decompressed bytes per zlib call (a highly compressed part cannot
#: blow up memory)
MAX_OUTPUT = 1024 * 1024
#: how many times one part may be downloaded from its first byte before it counts as corrupt
MAX_DOWNLOADS = transfer.MAX_DOWNLOADS
#: the first byte of a ``Content-Range`` (the core reads it; tests name it here)
_content_range_start = transfer.content_range_start


#: a gzip member's first bytes: its magic and the method (deflate)
_GZIP_MAGIC = b"\x1f\x8b\x08"


class CorruptPart(Exception):
    """Internal: the gzip stream of a part failed its checks."""


class Gunzip:
    """Incremental gunzip over one part: several gzip members in a row are one stream
    (like ``gzip.open``), NUL padding between members is skipped, and :meth:`finished` says
    whether the stream ended exactly at a member's end (CRC and length verified by zlib, or
    by ISA-L's inflate when the extra ``fast`` is installed: see ``fast.py``)."""

    __slots__ = ("_d", "_head", "members", "compressed", "decompressed")

    def __init__(self) -> None:
        self._d = fast.decompressobj(31)
        self._head: Optional[bytes] = b""  # a member's first bytes, until checked
        self.members = 0
        self.compressed = 0
        self.decompressed = 0

    def _check_head(self, seen: bytes, chunk: bytes) -> None:
        """A member's first four bytes (``seen`` of them before ``chunk``): gzip's magic,
        deflate, no reserved flag.  zlib checks them itself; ISA-L's inflate lets reserved
        flags pass and waits for ten bytes before it judges a header: checked here, both
        refuse the same streams as soon."""
        head = seen + chunk[:4 - len(seen)]
        for at, byte in enumerate(head):
            if (byte & 0xE0) if at == 3 else byte != _GZIP_MAGIC[at]:
                raise CorruptPart("gzip data is corrupt (not a gzip header)")
        self._head = head if len(head) < 4 else None

    def feed(self, chunk: bytes, emit: Callable[[bytes], None]) -> None:
        """Decompress ``chunk``, passing the output to ``emit`` in pieces of at most
        :data:`MAX_OUTPUT` bytes.  Raises :class:`CorruptPart` on bad data."""
        self.compressed += len(chunk)
        d = self._d
        try:
            while chunk:
                if d.eof:  # the previous member ended: another one (or padding) follows
                    chunk = chunk.lstrip(b"\0")
                    if not chunk:
                        return
                    self.members += 1
                    d = self._d = fast.decompressobj(31)
                    self._head = b""
                if self._head is not None:
                    self._check_head(self._head, chunk)
                data = d.decompress(chunk, MAX_OUTPUT)
                if data:
                    self.decompressed += len(data)
                    emit(data)
                while d.unconsumed_tail:
                    data = d.decompress(d.unconsumed_tail, MAX_OUTPUT)
                    if data:
                        self.decompressed += len(data)
                        emit(data)
                chunk = d.unused_data if d.eof else b""
        except fast.INFLATE_ERRORS as exc:
            raise CorruptPart("gzip data is corrupt (%s)" % exc) from None

    def finished(self) -> bool:
        """True when the bytes so far are whole gzip members, the last one complete."""
        return self._d.eof and self.compressed > 0


class ObjectUrls:
    """Pre-signed URLs for a job's objects: asked in batches as the download reaches them
    (a URL lives about 15 minutes).  When one is refused as expired, the others asked for
    with it (or before) are as old: all of them are dropped and the next batch is asked
    for, starting with the refused one.

    ``fetch(ids) -> {id: url}`` is the API call (``Session.object_urls``); ``check(url)``
    refuses URLs the shell must not fetch (plain http off loopback)."""

    def __init__(self, fetch: Callable[[Sequence[str]], Dict[str, str]], object_ids: Sequence[str],
                 batch: int = 25, check: Optional[Callable[[str], str]] = None) -> None:
        self._fetch = fetch
        self._ids: List[str] = list(object_ids)
        self._batch = max(1, batch)
        self._urls: Dict[str, str] = {}
        self._generation: Dict[str, int] = {}
        self._asked = 0
        self._check = check or (lambda url: url)

    def __repr__(self) -> str:  # never show URLs: their query strings are signatures
        return "ObjectUrls(%d objects, %d known)" % (len(self._ids), len(self._urls))

    def _ask_from(self, object_id: str) -> None:
        try:
            start = self._ids.index(object_id)
        except ValueError:
            start, self._ids = len(self._ids), self._ids + [object_id]
        ids = [i for i in self._ids[start:start + self._batch] if i not in self._urls]
        answer = self._fetch(ids)
        self._asked += 1
        for ident in ids:
            url = answer.get(ident)
            if not isinstance(url, str) or not url:
                raise errors.UnexpectedAnswer("DAP gave no download URL for object %r" % ident)
            self._urls[ident] = self._check(url)
            self._generation[ident] = self._asked

    def get(self, object_id: str) -> str:
        if object_id not in self._urls:
            self._ask_from(object_id)
        return self._urls[object_id]

    def refresh(self, object_id: str) -> str:
        """A fresh URL for ``object_id`` (and its batch), the old ones being refused."""
        stale = self._generation.get(object_id, self._asked)
        for ident in [i for i, g in self._generation.items() if g <= stale]:
            self._urls.pop(ident, None)
            self._generation.pop(ident, None)
        self._ask_from(object_id)
        return self._urls[object_id]

    def forget(self, object_id: str) -> None:
        """Drop a URL that is no longer needed."""
        self._urls.pop(object_id, None)
        self._generation.pop(object_id, None)


class PartStats:
    __slots__ = ("compressed", "decompressed", "requests", "downloads", "url_refreshes")

    def __init__(self) -> None:
        self.compressed = 0
        self.decompressed = 0
        self.requests = 0
        self.downloads = 0
        self.url_refreshes = 0

    def __repr__(self) -> str:
        return ("PartStats(compressed=%d, decompressed=%d, requests=%d, downloads=%d, "
                "url_refreshes=%d)" % (self.compressed, self.decompressed, self.requests,
                                       self.downloads, self.url_refreshes))


def fetch_part(transport, urls: ObjectUrls, object_id: str, feed: Callable[[bytes], object],
               restart: Callable[[], None], *, label: str = "part",
               chunk_size: int = CHUNK_SIZE, max_downloads: int = MAX_DOWNLOADS,
               on_bytes: Optional[Callable[[int], None]] = None) -> PartStats:
    """Download object ``object_id`` and pass its decompressed bytes to ``feed``.

    ``restart()`` is called before the part is fed again from its first byte (the caller
    rolls its output back to where the part began).  Exceptions raised by ``feed`` or
    ``restart`` (the output failing) propagate unchanged.  Returns :class:`PartStats`.
    What to do after each event is ``transfer.PartDownload``'s to decide; this performs it.
    """
    part = transfer.PartDownload(label, max_downloads, transport.retry_policy)
    output = _PartOutput(part, feed, restart)
    stats = PartStats()
    decision = part.begin(transport.monotonic())
    while isinstance(decision, transfer.Fetch):
        output.prepare(decision)
        _before_fetch(transport, urls, object_id, part, decision, stats)
        stats.requests += 1
        decision = _fetch(transport, urls.get(object_id), part, output, chunk_size, on_bytes)
    if isinstance(decision, transfer.GiveUp):
        raise decision.error
    if not isinstance(decision, transfer.Done):  # the core ends a part with GiveUp or Done
        raise AssertionError("%s: the part's download ended on %r" % (label, decision))
    stats.compressed = decision.compressed
    stats.decompressed = output.gunzip.decompressed
    stats.downloads = part.downloads
    return stats


class _PartOutput:
    """The part's decompressor and the caller's output, as the decisions reset them."""

    __slots__ = ("gunzip", "_part", "_feed", "_restart")

    def __init__(self, part: transfer.PartDownload, feed: Callable[[bytes], object],
                 restart: Callable[[], None]) -> None:
        self.gunzip = Gunzip()
        self._part = part
        self._feed = feed
        self._restart = restart

    def prepare(self, decision) -> None:
        if decision.rollback:
            self._restart()
        if decision.fresh:
            self.gunzip = Gunzip()

    def inflate(self, chunk: bytes) -> None:
        self.gunzip.feed(chunk, self._emit)

    def _emit(self, data: bytes) -> None:
        self._part.passed_on()
        self._feed(data)


def _before_fetch(transport, urls: ObjectUrls, object_id: str, part: transfer.PartDownload,
                  decision: transfer.Fetch, stats: PartStats) -> None:
    """A fresh URL or a wait, when the last failure called for one."""
    label, failure = part.label, part.failure
    if decision.refresh_url:
        stats.url_refreshes += 1
        log.info("%s: download URL refused (%s); asking for a fresh one", label,
                 describe_answer(failure))
        urls.refresh(object_id)
    if decision.wait:
        log_retry(label, failure, decision.wait, part.attempt, transport.retry_policy)
        transport.wait(label, describe_answer(failure), decision.wait)


def _fetch(transport, url: str, part: transfer.PartDownload, output: _PartOutput,
           chunk_size: int, on_bytes: Optional[Callable[[int], None]]):
    """One request for the part, its body streamed when the answer allows: the next
    decision."""
    label, offset, network_errors = part.label, part.offset, transport.network_errors
    headers = {"Range": "bytes=%d-" % offset} if offset else {}
    try:
        resp = transport.open_stream(url, headers=headers)
    except network_errors as exc:
        log.debug("%s: request failed: %s", label, describe_network_error(exc, url))
        tls = tls_failure(exc, label, url)
        if tls is not None:
            raise tls from None
        return _failed(transport, part, transport.answer_for("download", None, None, None,
                                                             exc, url=url))
    whole = False  # the body was read to its end: the connection may be reused
    try:
        status = resp.status
        log.debug("%s: GET%s -> %d", label, " from byte %d" % offset if offset else "", status)
        decision = part.answered(status, resp.headers.get("Content-Range"))
        if isinstance(decision, (transfer.Fetch, transfer.ReadBody)) and decision.why:
            log.info("%s: %s; downloading it again", label, decision.why)
        if isinstance(decision, transfer.ReportFailure):
            return _failed(transport, part, transport.answer_for(
                "download", status, resp.headers, _read_small(resp, network_errors)))
        if not isinstance(decision, transfer.ReadBody):
            return decision
        output.prepare(decision)
        decision = _stream(transport, url, resp, part, output, chunk_size, on_bytes)
        whole = isinstance(decision, transfer.Done)
        return decision
    finally:
        if not whole:
            resp.close()  # unread bytes must not poison a pooled connection
        resp.release_conn()


def _stream(transport, url: str, resp, part: transfer.PartDownload, output: _PartOutput,
            chunk_size: int, on_bytes: Optional[Callable[[int], None]]):
    """The body into the decompressor: the decision after its end, a cut or corrupt data."""
    label, network_errors = part.label, transport.network_errors
    stream = resp.stream(chunk_size, decode_content=False)
    while True:
        try:
            chunk = next(stream)
        except StopIteration:
            break
        except network_errors as exc:
            log.info("%s: connection cut after %d bytes (%s); resuming", label, part.offset,
                     describe_network_error(exc, url))
            answer = transport.answer_for("download", None, None, None, exc, url=url)
            return part.cut(answer, transport.monotonic(), transport.rng.random())
        if not chunk:
            continue
        part.received(len(chunk), transport.monotonic())
        try:
            output.inflate(chunk)
        except CorruptPart as exc:
            log.warning("%s: %s; downloading it again", label, exc)
            return part.corrupt()
        if on_bytes is not None:
            on_bytes(len(chunk))
    whole = output.gunzip.finished()
    if not whole:
        log.warning("%s: gzip stream ends early after %d bytes; downloading it again",
                    label, part.offset)
    return part.ended(whole)


def _failed(transport, part: transfer.PartDownload, answer):
    return part.failed(answer, transport.monotonic(), transport.rng.random())


def _read_small(resp, network_errors, limit: int = 64 * 1024) -> Optional[bytes]:
    """The start of an error body (for its uuid), or None when it cannot be read."""
    try:
        return resp.read(limit, decode_content=True)
    except network_errors:
        return None

