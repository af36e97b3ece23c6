"""The checkpoint file on disk: a small human-readable JSON file (``chain.state_to_text``).

Reading: a missing file is an empty state (the first run); a file that cannot be read or
parsed is ``StateCorrupt`` (exit 3), never a silent reset.  Writing replaces the file
atomically (temporary file in the same directory, fsync, rename, fsync the directory), so a
crash leaves either the old checkpoint or the new one.

Several runs may share one state file (one per table, from cron).  ``save_checkpoint`` moves
one table's checkpoint under an exclusive ``flock`` of the sidecar ``<state file>.lock``: it
re-reads the file under the lock and changes only that table's checkpoint, so no run writes
back another's stale copy.  The lock file stays (removing it would race with a waiting run).
"""
from __future__ import annotations

import contextlib
import os
import time
from typing import Any, Iterator

from .. import chain, errors
from .sinks import write_file_atomically

__all__ = ["load_state", "save_state", "save_checkpoint", "state_lock", "lock_path",
           "check_state_path"]

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
