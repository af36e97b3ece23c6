"""Read-ahead: the next parts of a job are downloaded, inflated and verified in a background
thread while the writer works on the current one; the writer sees them in order, through the
same part protocol (``begin_part``, ``feed``, ``restart_part``, ``end_part``).

One thread per transfer runs ``fetch_part`` for each object in turn.  What it inflates goes
into a queue that the writer's thread (the caller of :meth:`ReadAhead.events`) takes from.
Memory stays bounded:

* **hold**: a part's first bytes are held back (``hold_memory`` in memory, then up to
  ``hold_total`` in an unnamed temporary file) until the part verified (gzip CRC and length):
  a part that fits is handed over whole and verified, so a corrupt or truncated download of
  it is fetched again without the writer ever seeing it (no ``restart_part``).  A part
  larger than the hold streams on once the hold is full; should it fail after that, the
  writer gets ``restart_part`` and the part again, as without read-ahead.
* **queue**: at most ``queue_bytes`` handed over and not yet taken by the writer; the thread
  waits when it is full (a connection waiting that long may be cut: it resumes with Range);
* **parts**: the thread is at most ``parts_ahead`` verified parts ahead of the writer.

So memory is at most ``hold_memory + queue_bytes`` plus one piece of ``MAX_OUTPUT``.

Errors of the download (``ServiceUnavailable`` after retries, a refused token ...) are the
same exception objects, raised in the writer's thread when it reaches them, after the parts
before them (so the writer's own errors still come first, as without read-ahead).  When the
writer's thread stops (an error, Ctrl-C, SIGTERM), :meth:`ReadAhead.close` tells the thread
to stop at its next chunk; it writes nothing anywhere, so nothing is left half-written.
"""
from __future__ import annotations

import collections
import tempfile
import threading
from typing import Any, Deque, Iterator, List, Optional, Sequence, Tuple

from .download import MAX_OUTPUT, ObjectUrls, fetch_part

__all__ = ["ReadAhead", "HOLD_MEMORY", "QUEUE_BYTES", "PARTS_AHEAD", "MAX_OUTPUT"]

#: a part's first bytes held in memory until it verified
HOLD_MEMORY = 16 * 1024 * 1024
#: inflated bytes handed over but not yet taken by the writer
QUEUE_BYTES = 8 * 1024 * 1024
#: verified parts waiting for the writer, at most
PARTS_AHEAD = 2
#: pieces read back from the hold's temporary file
_READ_BACK = 1024 * 1024


class _Cancelled(Exception):
    """Internal: the writer's side stopped; the thread unwinds (out of ``fetch_part`` too)."""


class _Held:
    """The bytes of a part held back: pieces in memory up to ``memory``, the rest in an
    unnamed temporary file (gone with its handle, even on SIGKILL)."""

    def __init__(self, memory: int) -> None:
        self.memory = memory
        self.pieces: List[bytes] = []
        self.in_memory = 0
        self.size = 0
        self.file: Optional[Any] = None

    def add(self, data: bytes) -> None:
        if self.file is None and self.in_memory + len(data) <= self.memory:
            self.pieces.append(data)
            self.in_memory += len(data)
        else:
            if self.file is None:
                self.file = tempfile.TemporaryFile()
            self.file.write(data)
        self.size += len(data)

    def take(self) -> Iterator[bytes]:
        """The bytes held, in order, each piece dropped as it is taken; then empty again."""
        pieces, self.pieces = self.pieces, []
        self.in_memory = 0
        pieces.reverse()
        while pieces:
            yield pieces.pop()
        spill, self.file = self.file, None
        self.size = 0
        if spill is not None:
            with spill:
                spill.seek(0)
                while True:
                    data = spill.read(_READ_BACK)
                    if not data:
                        break
                    yield data

    def clear(self) -> None:
        self.pieces = []
        self.in_memory = self.size = 0
        if self.file is not None:
            self.file.close()
            self.file = None


class ReadAhead:
    """Downloads ``objects`` in a background thread; :meth:`events` gives, in order,
    ``("begin", index)``, ``("data", bytes)``, ``("restart", index)``, ``("end", index)``
    and ``("bytes", count)`` (compressed bytes received, for progress), then ends, or raises
    the download's error.  Use as a context manager (or call :meth:`close`)."""

    def __init__(self, transport, urls: ObjectUrls, objects: Sequence[str], label: str, *,
                 hold_memory: int = HOLD_MEMORY, hold_total: Optional[int] = None,
                 queue_bytes: int = QUEUE_BYTES, parts_ahead: int = PARTS_AHEAD,
                 context: Any = None) -> None:
        self._transport = transport
        self._urls = urls
        self._objects = tuple(objects)
        self._label = label
        self._hold_memory = max(0, hold_memory)
        self._hold_total = self._hold_memory if hold_total is None else max(hold_total,
                                                                             self._hold_memory)
        self._queue_bytes = max(1, queue_bytes)
        self._parts_ahead = max(1, parts_ahead)
        self._context = context  # entered in the thread (the table's logging context)
        self._cond = threading.Condition()
        self._queue: Deque[Tuple[str, Any]] = collections.deque()
        self._queued = 0         # bytes of data in the queue
        self._ended = 0          # parts whose end is in the queue, not yet taken
        self._stopped = False
        self._thread: Optional[threading.Thread] = None
        # statistics, for tests and logs: parts fetched again without the writer seeing it
        self.hidden_restarts = 0
        self.restarts = 0

    # -- the writer's side ---------------------------------------------------------------------
    def __enter__(self) -> "ReadAhead":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def start(self) -> None:
        thread = threading.Thread(target=self._run, daemon=True,
                                  name="dap-read-ahead %s" % self._label)
        self._thread = thread
        thread.start()

    def events(self) -> Iterator[Tuple[str, Any]]:
        cond = self._cond
        while True:
            with cond:
                while not self._queue:
                    cond.wait()  # Ctrl-C reaches the main thread here
                kind, value = self._queue.popleft()
                if kind == "data":
                    self._queued -= len(value)
                elif kind == "end":
                    self._ended -= 1
                cond.notify_all()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield kind, value

    def close(self) -> None:
        """Stop the thread (it ends at its next chunk or wait) and drop what it queued."""
        with self._cond:
            self._stopped = True
            self._queue.clear()
            self._queued = 0
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            # a finished thread is joined at once; a busy one (a read, a retry's sleep) is
            # left to end by itself: it is a daemon and writes nothing
            thread.join(0.0 if thread.is_alive() else None)

    # -- the thread ----------------------------------------------------------------------------
    def _put(self, kind: str, value: Any = None) -> None:
        with self._cond:
            if self._stopped:
                raise _Cancelled()
            self._queue.append((kind, value))
            if kind == "data":
                self._queued += len(value)
            elif kind == "end":
                self._ended += 1
            self._cond.notify_all()

    def _put_data(self, data: bytes) -> None:
        with self._cond:
            while self._queued >= self._queue_bytes and not self._stopped:
                self._cond.wait()
        self._put("data", data)

    def _wait_for_room(self) -> None:
        """Before a new part: at most ``parts_ahead`` verified parts wait for the writer."""
        with self._cond:
            while self._ended >= self._parts_ahead and not self._stopped:
                self._cond.wait()
            if self._stopped:
                raise _Cancelled()

    def _run(self) -> None:
        try:
            if self._context is not None:
                with self._context:
                    self._download_all()
            else:
                self._download_all()
        except _Cancelled:
            return
        except BaseException as exc:  # handed to the writer's thread, raised there
            try:
                self._put("error", exc)
            except _Cancelled:
                pass
            return
        try:
            self._put("done")
        except _Cancelled:
            pass

    def _download_all(self) -> None:
        count = len(self._objects)
        for index, object_id in enumerate(self._objects):
            self._wait_for_room()
            self._download(index, object_id, count)
            self._urls.forget(object_id)

    def _download(self, index: int, object_id: str, count: int) -> None:
        held = _Held(self._hold_memory)
        state = {"begun": False, "streaming": False}

        def begin() -> None:
            if not state["begun"]:
                state["begun"] = True
                self._put("begin", index)

        def release() -> None:
            begin()
            for piece in held.take():
                self._put_data(piece)

        def feed(data: bytes) -> None:
            if state["streaming"]:
                self._put_data(data)
            elif held.size + len(data) <= self._hold_total:
                held.add(data)
            else:  # larger than the hold: hand on what is held, then stream
                state["streaming"] = True
                release()
                self._put_data(data)
            with self._cond:
                if self._stopped:
                    raise _Cancelled()

        def restart() -> None:
            held.clear()
            if state["streaming"]:
                # the writer has had some of this part: it rolls back, and the part is held
                # again from its first byte
                self.restarts += 1
                state["streaming"] = False
                self._put("restart", index)
            else:
                self.hidden_restarts += 1

        def received(size: int) -> None:
            self._put("bytes", size)

        try:
            fetch_part(self._transport, self._urls, object_id, feed, restart,
                       label="%s: part %d of %d" % (self._label, index + 1, count),
                       on_bytes=received)
            release()  # the part verified: what is held goes on, whole
        finally:
            held.clear()
        self._put("end", index)
