"""Where the command line writes: stdout (data) and stderr (people), with no line on stderr
showing a secret."""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, List, Optional, TextIO

from .. import errors

if TYPE_CHECKING:
    from .progress import TerminalProgress

__all__ = ["Console", "Secrets"]


class Secrets:
    """The texts no line on stderr may show; grows when a token is issued."""

    def __init__(self) -> None:
        self.sources: List[Any] = []
        self.fixed: List[str] = []

    def all(self) -> List[str]:
        found = list(self.fixed)
        for source in self.sources:
            try:
                found.extend(source())
            except Exception:  # pragma: no cover - never let redaction break logging
                pass
        return [s for s in found if s]

    def redact(self, text: str) -> str:
        from ..credentials import redact
        return redact(text, self.all())


class Console:
    """stdout (data) and stderr (people), the only places the program writes to."""

    def __init__(self, stdout: TextIO, stderr: TextIO, secrets: Secrets) -> None:
        self.stdout = _StdoutGuard(stdout)
        self.stderr = stderr
        self.secrets = secrets
        #: the status line on stderr, if one is drawn: cleared before a line is said
        self.progress: Optional["TerminalProgress"] = None
        # tables finish in worker threads: one line at a time, never two mixed
        self.lock = threading.RLock()

    @property
    def binary(self):
        self.stdout.flush()
        return getattr(self.stdout, "buffer", None) or _TextAsBinary(self.stdout)

    def data_line(self, text: str) -> None:
        with self.lock:
            self.stdout.write(text + "\n")
            self.stdout.flush()

    def say(self, text: str) -> None:
        with self.lock:
            if self.progress is not None:
                self.progress.clear()
            self.stderr.write(self.secrets.redact(text) + "\n")
            self.stderr.flush()

    def error(self, text: str) -> None:
        self.say("dap: error: " + text)


class _StdoutGuard:
    """stdout whose write failures (a full disk, an I/O error) are ``OutputError`` (exit 12),
    not a bug; a closed pipe stays ``BrokenPipeError`` (exit 141)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.failed = False

    def _guard(self, action, *args):
        try:
            return action(*args)
        except BrokenPipeError:
            raise
        except OSError as exc:
            self.failed = True
            raise errors.OutputError("writing stdout failed: %s" % (exc.strerror or exc),
                                     errors.STDOUT_HINT) from exc

    def write(self, text: str) -> int:
        return self._guard(self._stream.write, text)

    def flush(self) -> None:
        self._guard(self._stream.flush)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _TextAsBinary:
    """Bytes to a text stream that has no ``buffer`` (a StringIO in tests)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, data: bytes) -> int:
        self.stream.write(data.decode("utf-8"))
        return len(data)

    def flush(self) -> None:
        self.stream.flush()
