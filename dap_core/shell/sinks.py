"""Where output bytes go: atomic files and stdout, with per-part mark / rollback / commit.

Every output of ``dap`` appears whole or not at all.  An :class:`AtomicFile` writes to a
temporary name in the target's own directory (so the final ``os.replace`` is atomic),
flushes and fsyncs it, renames it into place and fsyncs the directory.  Until
:meth:`AtomicFile.commit`, nothing carries the final name.

A download writes its parts one after another.  When a part must be fetched again from its
first byte (a corrupt or truncated gzip stream), the output must lose what that part had
written so far: a sink offers ``mark()`` (a part begins), ``rollback()`` (forget everything
written since the mark) and ``part_done()`` (the part verified).

* :class:`AtomicFile` rolls back by truncating the temporary file to the mark.
* :class:`StdoutSink` spools each part in a ``tempfile.SpooledTemporaryFile`` and copies it
  to the stream only once the part verified, so stdout never carries a bad part.

Sinks raise plain ``OSError`` when the disk fails; the caller turns it into ``OutputError``.
"""
from __future__ import annotations

import glob
import os
import shutil
import tempfile
import threading
import time
import weakref
from typing import BinaryIO, List, Optional, Protocol

__all__ = ["AtomicFile", "StdoutSink", "SpoolSink", "TableNamingStream", "fsync_directory",
           "write_file_atomically", "remove_stale_temporaries", "name_table_in_line",
           "stop_writing", "Stopped"]

#: Parts are spooled in memory up to this size, then on disk (stdout sink, parquet input).
SPOOL_MEMORY = 8 * 1024 * 1024

_COPY_CHUNK = 1024 * 1024

#: A temporary file nobody has written to for this long was left by a run that was killed
#: (a live download writes continuously, and its retries give up within minutes).
STALE_AFTER = 3600.0


def remove_stale_temporaries(final_path: str, now: Optional[float] = None,
                             older_than: float = STALE_AFTER) -> List[str]:
    """Delete the temporary files of ``final_path`` that killed runs left behind (untouched
    for ``older_than`` seconds); the removed paths. Never raises: this is tidying only."""
    directory, name = os.path.split(os.path.abspath(final_path))
    now = time.time() if now is None else now
    removed = []
    pattern = os.path.join(glob.escape(directory), "." + glob.escape(name) + ".*.part")
    for path in glob.glob(pattern):
        try:
            if now - os.stat(path).st_mtime >= older_than:
                os.unlink(path)
                removed.append(path)
        except OSError:
            pass
    return removed


def fsync_directory(directory: str) -> None:
    """fsync a directory so that a rename inside it survives a crash (POSIX; a no-op elsewhere)."""
    if os.name != "posix":  # pragma: no cover - Windows cannot open a directory
        return
    fd = os.open(directory or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- stopping: Ctrl-C or SIGTERM while worker threads write ---------------------------------------

_LIVE_LOCK = threading.Lock()
#: the temporaries being written now
_LIVE: "weakref.WeakSet[AtomicFile]" = weakref.WeakSet()
#: threads of a run that was stopped: they commit nothing any more
_STOPPED_THREADS: "weakref.WeakSet[threading.Thread]" = weakref.WeakSet()


class Stopped(Exception):
    """Raised in a worker thread of a run that was stopped (Ctrl-C, SIGTERM): nothing it
    writes is committed any more."""


def stop_writing() -> List[str]:
    """The run is ending (Ctrl-C, SIGTERM) in the calling thread while other threads may be
    writing: remove every temporary being written, and let no other thread of this process
    commit an output (or a checkpoint) from now on.  The temporaries removed."""
    me = threading.current_thread()
    with _LIVE_LOCK:
        _STOPPED_THREADS.update(t for t in threading.enumerate() if t is not me)
        files = list(_LIVE)
        _LIVE.clear()
    removed = []
    for live in files:  # the writing thread keeps its handle: it writes into nothing
        try:
            os.unlink(live.path)
            removed.append(live.path)
        except OSError:
            pass
    return removed


def _check_not_stopped() -> None:
    if threading.current_thread() in _STOPPED_THREADS:
        raise Stopped("the run was stopped: nothing more is committed")


class AtomicFile:
    """A file that appears at ``final_path`` whole, or not at all.

    ``with AtomicFile(path) as out: out.write(b"...")`` commits when the block ends normally
    and aborts (unlinks the temporary file) when it raises.  ``path`` is the temporary file,
    for writers (fastparquet) that must open the file by name themselves: call
    :meth:`close_handle` first, and :meth:`commit` reopens it to fsync.
    """

    def __init__(self, final_path: str) -> None:
        self.final_path = os.fspath(final_path)
        directory, name = os.path.split(os.path.abspath(self.final_path))
        self.directory = directory
        self._mark = 0
        self.done = False
        # made and registered under the lock stop_writing takes: a run being stopped either
        # finds this file (and removes it) or stops this thread before it makes one
        with _LIVE_LOCK:
            _check_not_stopped()
            fd, self.path = tempfile.mkstemp(dir=directory, prefix="." + name + ".",
                                             suffix=".part")
            self._file: Optional[BinaryIO] = os.fdopen(fd, "w+b")
            _LIVE.add(self)

    def __repr__(self) -> str:
        return "AtomicFile(%r)" % (self.final_path,)

    # -- writing ---------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if data:
            assert self._file is not None, "write after close_handle()"
            self._file.write(data)

    def mark(self) -> None:
        """Remember the current end of the file: a part begins here."""
        if self._file is not None:
            self._file.flush()
            self._mark = self._file.tell()

    def rollback(self) -> None:
        """Forget everything written since :meth:`mark` (truncate the file to the mark)."""
        if self._file is not None:
            self._file.flush()
            self._file.seek(self._mark)
            self._file.truncate(self._mark)

    def part_done(self) -> None:
        """The part since the mark verified (nothing to do for a file: it is already there)."""

    def tell(self) -> int:
        assert self._file is not None
        return self._file.tell()

    def close_handle(self) -> None:
        """Close our handle on the temporary file so another writer can open :attr:`path`."""
        if self._file is not None:
            self._file.close()
            self._file = None

    # -- the end -----------------------------------------------------------------------------
    def commit(self) -> str:
        """flush, fsync, rename into place, fsync the directory; return the final path."""
        if self.done:
            return self.final_path
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
        else:
            fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        # mkstemp creates 0600; give the output the permissions a normal file would get.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.path, 0o666 & ~umask)
        with _LIVE_LOCK:  # a stop either comes before (nothing renamed) or after
            _check_not_stopped()
            os.replace(self.path, self.final_path)
            _LIVE.discard(self)
        fsync_directory(self.directory)
        self.done = True
        remove_stale_temporaries(self.final_path)
        return self.final_path

    def abort(self) -> None:
        """Drop the temporary file; the final name is left as it was. Never raises."""
        if self.done:
            return
        self.done = True
        with _LIVE_LOCK:
            _LIVE.discard(self)
        try:
            if self._file is not None:
                self._file.close()
        except OSError:
            pass
        self._file = None
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def __enter__(self) -> "AtomicFile":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def write_file_atomically(path: str, data: bytes) -> str:
    """Write ``data`` to ``path`` whole or not at all (temp, fsync, rename, fsync dir)."""
    out = AtomicFile(path)
    try:
        out.write(data)
        return out.commit()
    except BaseException:
        out.abort()
        raise


class SpoolSink:
    """Collects one part at a time in a spooled temporary file (memory, then disk).

    :meth:`part_done` hands the verified part to ``on_part(spool)`` (a readable file
    positioned at 0); :meth:`rollback` discards the part.
    """

    def __init__(self, on_part, max_memory: int = SPOOL_MEMORY) -> None:
        self._on_part = on_part
        self._max_memory = max_memory
        self._spool: Optional[tempfile.SpooledTemporaryFile] = None

    def _fresh(self) -> None:
        if self._spool is not None:
            self._spool.close()
        self._spool = tempfile.SpooledTemporaryFile(max_size=self._max_memory, mode="w+b")

    def write(self, data: bytes) -> None:
        if data:
            if self._spool is None:
                self._fresh()
            self._spool.write(data)  # type: ignore[union-attr]

    def mark(self) -> None:
        self._fresh()

    def rollback(self) -> None:
        self._fresh()

    def part_done(self) -> None:
        if self._spool is None:
            return
        spool, self._spool = self._spool, None
        try:
            if spool.tell() == 0:
                return  # an empty part: nothing to hand on
            spool.seek(0)
            self._on_part(spool)
        finally:
            spool.close()

    def commit(self) -> None:
        self.part_done()

    def abort(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None


class ByteStream(Protocol):
    """Where :class:`StdoutSink` writes: ``sys.stdout.buffer``, a file, a
    :class:`TableNamingStream`."""

    def write(self, data: bytes, /) -> int: ...

    def flush(self) -> None: ...


class StdoutSink(SpoolSink):
    """Writes records to a binary stream (stdout), one verified part at a time.

    Bytes written outside a part (a JSON array's closing bracket) go out at :meth:`commit`.
    A closed pipe raises ``BrokenPipeError`` to the caller; the CLI turns it into a quiet
    exit (see ``cli.py``).
    """

    def __init__(self, stream: ByteStream, max_memory: int = SPOOL_MEMORY) -> None:
        self.stream = stream
        super().__init__(self._copy_out, max_memory)

    def _copy_out(self, spool) -> None:
        shutil.copyfileobj(spool, self.stream, _COPY_CHUNK)
        self.stream.flush()

    def commit(self) -> None:
        self.part_done()
        self.stream.flush()

    def __repr__(self) -> str:
        return "StdoutSink(%r)" % (getattr(self.stream, "name", self.stream),)


def name_table_in_line(line: bytes, field: bytes) -> bytes:
    """A JSON Lines record with ``field`` (``"table":"canvas.accounts",``) first in its
    object; blank lines stay as they are."""
    if not line.startswith(b"{"):
        return line
    rest = line[1:]
    if rest.lstrip().startswith(b"}"):
        return b"{" + field.rstrip(b",") + rest
    return b"{" + field + rest


class TableNamingStream:
    """A binary stream that puts ``"table": "<label>"`` first in each JSON Lines record
    written through it (records arrive in chunks of any size: a line is passed on whole).
    ``flush`` passes on complete lines only; what follows the last newline waits for more."""

    def __init__(self, stream: BinaryIO, label: str) -> None:
        import json
        self.stream = stream
        self.field = ('"table":%s,' % json.dumps(label)).encode("utf-8")
        self._pending = b""

    def write(self, data: bytes) -> int:
        if not data:
            return 0
        text = self._pending + bytes(data)
        head, newline, tail = text.rpartition(b"\n")
        self._pending = tail
        if newline:
            field = self.field
            self.stream.write(b"".join(name_table_in_line(line, field) + b"\n"
                                       for line in head.split(b"\n")))
        return len(data)

    def flush(self) -> None:
        self.stream.flush()

    def finish(self) -> None:
        """Pass on the last record when it lacks its newline (the stream stays open)."""
        if self._pending:
            self.stream.write(name_table_in_line(self._pending, self.field))
            self._pending = b""
        self.stream.flush()
