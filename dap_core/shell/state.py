"""The checkpoint file on disk: a small human-readable JSON file (``chain.state_to_text``).

Reading: a missing file is an empty state (the first run); a file that cannot be read or
parsed is ``StateCorrupt`` (exit 3), never a silent reset.  Writing replaces the file
atomically (temporary file in the same directory, fsync, rename, fsync the directory), so a
crash leaves either the old checkpoint or the new one.

Several runs may share one state file (one per table, from cron).  ``save_checkpoint`` moves
one table's checkpoint under an exclusive ``flock`` of the sidecar ``<state file>.lock``: it
re-reads the file under the lock and changes only that table's checkpoint, so no run writes
back another's stale copy.  The lock file stays (removing it would race with a waiting run).

``download_chained`` is the whole chain of several tables as one call (``Client`` has it as
a method): each table's query from its checkpoint, its output, then its checkpoint.
"""
from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Any, BinaryIO, Iterator, Optional, Sequence, Tuple

from .. import chain, errors
from ..queries import check_stdout_format
from .pipeline import DEFAULT_CONCURRENCY, run_concurrently, table_context
from .sinks import write_file_atomically

__all__ = ["load_state", "save_state", "save_checkpoint", "state_lock", "lock_path",
           "check_state_path", "download_chained"]

#: how long a run waits for another run's lock on the state file (held for milliseconds
#: by a healthy run) before it gives up
LOCK_WAIT = 60.0


def check_state_path(path: str) -> None:
    """Refuse, before any request, a state path whose file could never be written."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise errors.InvalidInput("the state file %s is a directory" % path,
                                  "pass a file name to --state")
    if not os.path.isdir(directory):
        raise errors.InvalidInput("the directory of the state file %s does not exist" % path,
                                  "create it, or pass another --state")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise errors.InvalidInput("cannot write the state file %s: its directory is not "
                                  "writable" % path, "pass another --state")


def load_state(path: str) -> "chain.State":
    """The state in ``path``; an empty state when the file does not exist yet."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return chain.State()
    except OSError as exc:
        raise errors.StateCorrupt("cannot read the state file %s: %s" % (
            path, exc.strerror or exc)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise errors.StateCorrupt("the state file %s is not UTF-8 text" % path) from None
    try:
        return chain.state_from_text(text)
    except errors.StateCorrupt as exc:
        if path not in exc.message:
            if exc.message.startswith("the state file"):
                exc.message = exc.message.replace("the state file", "the state file %s" % path, 1)
            else:
                exc.message = "the state file %s: %s" % (path, exc.message)
        raise


def lock_path(path: str) -> str:
    """The sidecar lock file of the state file ``path``."""
    return path + ".lock"


@contextlib.contextmanager
def state_lock(path: str, wait: float = LOCK_WAIT) -> Iterator[None]:
    """Hold the exclusive lock of the state file ``path`` (``flock`` of its sidecar); a
    no-op where ``fcntl`` does not exist.  ``OutputError`` when it cannot be had."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no locking
        yield
        return
    name = lock_path(path)
    try:
        fd = os.open(name, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise errors.OutputError("cannot open the lock file %s of the state file: %s" % (
            name, exc.strerror or exc), "check the permissions of the state file's "
            "directory") from None
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise errors.OutputError(
                        "the state file %s stayed locked by another run for %d s" % (
                            path, int(wait)),
                        "check for a dap run that hangs (it holds %s), then run again"
                        % name) from None
                time.sleep(0.02)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def save_checkpoint(path: str, namespace: str, table: str, job: Any) -> "chain.State":
    """Move the checkpoint of (namespace, table) past ``job`` in the state file ``path``:
    under the file's lock, re-read it and change that checkpoint alone, so that runs of
    other tables sharing the file lose nothing.  The state written is returned.
    ``ChainError`` when another run moved this very checkpoint meanwhile (a gap or an
    overlap), ``OutputError`` when the disk refuses."""
    with state_lock(path):
        state = chain.advance(load_state(path), namespace, table, job)
        save_state(path, state)
    return state


def save_state(path: str, state: "chain.State") -> None:
    """Write ``state`` to ``path`` atomically; ``OutputError`` when the disk refuses."""
    try:
        write_file_atomically(path, chain.state_to_text(state).encode("utf-8"))
    except OSError as exc:
        raise errors.OutputError("writing the state file %s failed: %s" % (
            path, exc.strerror or exc), "check the free space and permissions of the "
            "state file's directory, then run again (the checkpoint did not move)") from exc


def download_chained(client: Any, state_path: Optional[str], namespace: str,
                     tables: Optional[Sequence[str]] = None, directory: Optional[str] = None,
                     *, stream: Optional[BinaryIO] = None, kind: str = "incremental",
                     since: Any = None, until: Any = None, format: str = "jsonl",
                     mode: Optional[str] = None, name_table: Optional[bool] = None,
                     concurrency: Optional[int] = None
                     ) -> Iterator[Tuple[Any, Any, Optional[BaseException]]]:
    """The chain of each table, ``concurrency`` tables at once: its query from its
    checkpoint in the state file ``state_path`` (``chain.chained_query``), its job run, its
    result written into ``directory`` or to ``stream``, and then, only once that output is
    committed, its checkpoint moved (``save_checkpoint``).

    ``(query, DownloadResult, None)`` or ``(query, None, error)`` as each table completes;
    one failing stops none of the others.  Every query is made before the first job starts,
    so a corrupt state file, a table without a checkpoint and no ``since``, or a ``since``
    that contradicts a checkpoint raise here, before any request (but the table list when
    ``tables`` is None: every table of the namespace).  ``state_path`` None: no checkpoints
    (an incremental needs ``since``).  On ``stream`` one table's records go out whole, never
    mixed with another's; ``name_table`` (default: with more than one table) puts
    ``"table"`` first in each record."""
    if (directory is None) == (stream is None):
        raise errors.InvalidInput("the results go to a directory or to a stream: give one")
    state = None
    if state_path is not None:
        check_state_path(state_path)
        state = load_state(state_path)
    names = list(tables) if tables is not None else client.list_tables(namespace)
    if stream is not None:
        if name_table is None:
            name_table = tables is None or len(names) > 1
        check_stdout_format(format, name_table)
    # made here, not in the workers: a table whose query is refused stops the run at once
    queries = [chain.chained_query(state, kind, namespace, table, since=since, until=until,
                                   format=format, mode=mode) for table in names]
    one_at_a_time = threading.Lock()

    def work(query: Any) -> Any:
        with table_context("%s.%s" % (query.namespace, query.table)):
            job = client.run(query)
            if stream is not None:
                with one_at_a_time:
                    result = client.write_records(job, query, stream, name_table=bool(name_table))
            else:
                result = client.download(job, query, directory)
            if state_path is not None:
                save_checkpoint(state_path, query.namespace, query.table, job)
            return result

    return run_concurrently(queries, work, concurrency or DEFAULT_CONCURRENCY)
