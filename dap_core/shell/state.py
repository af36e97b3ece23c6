"""The checkpoint file on disk: a small human-readable JSON file (``chain.state_to_text``).

Reading: a missing file is an empty state (the first run); a file that cannot be read or
parsed is ``StateCorrupt`` (exit 3), never a silent reset.  Writing replaces the file
atomically (temporary file in the same directory, fsync, rename, fsync the directory), so a
crash leaves either the old checkpoint or the new one.
"""
from __future__ import annotations

import os

from .. import chain, errors
from .sinks import write_file_atomically

__all__ = ["load_state", "save_state", "check_state_path"]


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


def save_state(path: str, state: "chain.State") -> None:
    """Write ``state`` to ``path`` atomically; ``OutputError`` when the disk refuses."""
    try:
        write_file_atomically(path, chain.state_to_text(state).encode("utf-8"))
    except OSError as exc:
        raise errors.OutputError("writing the state file %s failed: %s" % (
            path, exc.strerror or exc)) from exc
