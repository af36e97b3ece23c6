"""What a person sees on stderr: log records formatted (plain or JSON, secrets redacted,
each naming its table) and, on a terminal, one progress line per active table."""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any, Dict, Optional, TextIO

__all__ = ["LogFormatter", "LogHandler", "TerminalProgress"]


class LogFormatter(logging.Formatter):
    """``dap: info: canvas.accounts: message``, or with ``json`` one object a line:
    ``{"time", "level", "table", "message"}``; secrets redacted either way."""

    def __init__(self, secrets: Any, style: str = "plain") -> None:
        super().__init__("dap: %(levelname)s: %(message)s")
        self.secrets = secrets
        self.style = style

    def format(self, record: logging.LogRecord) -> str:
        level = record.levelname.lower()
        message = self.secrets.redact(record.getMessage())
        table = getattr(record, "table", None)
        if self.style == "json":
            import datetime
            moment = datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
            return json.dumps({"time": moment.isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"), "level": level, "table": table, "message": message},
                ensure_ascii=False)
        if table and not message.startswith(table):
            message = "%s: %s" % (table, message)  # every line of a multi-table run
        return "dap: %s: %s" % (level, message)


class LogHandler(logging.StreamHandler):
    """stderr logs that first clear a progress line being drawn there."""

    progress: Optional["TerminalProgress"] = None
    muted = False

    def mute(self) -> None:
        """Write no record from now on (threads abandoned by an interrupt go on logging):
        a record being written ends first, under the handler's lock."""
        with self.lock:  # type: ignore[union-attr]
            self.muted = True

    def emit(self, record: logging.LogRecord) -> None:
        if self.muted:  # emit runs under the lock that mute takes
            return
        if self.progress is not None:
            self.progress.clear()
        super().emit(record)


def _duration(seconds: float) -> str:
    """``12 s``, ``4:05``, ``1:02:03``."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return "%d s" % seconds
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return "%d:%02d" % (minutes, secs)
    return "%d:%02d:%02d" % (minutes // 60, minutes % 60, secs)


class _Download:
    __slots__ = ("parts", "index", "bytes", "rows", "started")

    def __init__(self, parts: int, started: float) -> None:
        self.parts, self.index, self.bytes, self.rows, self.started = parts, 0, 0, 0, started


class TerminalProgress:
    """One status line on a terminal, cut to its width, redrawn at most ten times a second
    (and every half second while dap sleeps, see :meth:`sleep`): what the run is doing now.

    * a job: ``canvas.users: job waiting, 12 s (job 4f0c...)``, the time since it started;
    * a wait: ``canvas.users: waiting 47 s: DAP's rate limit``, counting down;
    * a download: ``canvas.users: part 3/10, 12,345 rows, 1.2 MiB gzip at 0.8 MiB/s, 5 s``
      (MiB of compressed parts as downloaded).

    Thread-safe: with several tables at once (--concurrency), one line per active table,
    each with its own figures, redrawn in place; a table's line goes when it is done."""

    def __init__(self, stream: TextIO, width: Optional[int] = None) -> None:
        self.stream = stream
        self.width = width
        self.lock = threading.RLock()
        self.lines: Dict[str, Any] = {}  # label -> () -> the text of its line now
        self.jobs: Dict[str, float] = {}
        self.downloads: Dict[str, _Download] = {}
        self.current = threading.local()  # the table of this thread
        self.shown = 0.0
        self.drawn = 0  # lines on the screen now

    @property
    def line(self) -> Optional[Any]:
        """The text of the latest line (None when no table is active)."""
        return next(reversed(list(self.lines.values())), None)

    @property
    def dirty(self) -> bool:
        return self.drawn > 0

    # -- events --------------------------------------------------------------------------------
    def job(self, label: str, job_id: str, state: str) -> None:
        with self.lock:
            since = self.jobs.setdefault(job_id, time.monotonic())
            self._set(label, lambda: "%s: job %s, %s (job %s)" % (
                label, state, _duration(time.monotonic() - since), job_id))
            self._draw(force=True)

    def wait(self, label: str, reason: str, seconds: float) -> None:
        with self.lock:
            until = time.monotonic() + seconds
            self._set(label, lambda: "%s: waiting %s: %s" % (
                label, _duration(until - time.monotonic() + 0.999), reason))
            self._draw(force=True)

    def start(self, label: str, parts: int) -> None:
        with self.lock:
            self.downloads[label] = _Download(parts, time.monotonic())
            self._show_download(label, force=True)

    def part(self, index: int) -> None:
        self._update(lambda d: setattr(d, "index", index))

    def add_bytes(self, count: int) -> None:
        self._update(lambda d: setattr(d, "bytes", d.bytes + count))

    def rows(self, count: int) -> None:
        self._update(lambda d: setattr(d, "rows", count))

    def end(self) -> None:
        """A download ended: forget its table's line (and redraw the others)."""
        with self.lock:
            label = getattr(self.current, "label", None)
            if label is not None:
                self.lines.pop(label, None)
                self.downloads.pop(label, None)
            self.clear()
            self._draw(force=True)

    def clear(self) -> None:
        """Take the lines off the screen (a log line is about to be written there); the next
        event or tick draws them again."""
        with self.lock:
            if self.drawn:
                self.stream.write(self._erase())
                self.stream.flush()
                self.drawn = 0

    def _erase(self) -> str:
        # from the last line drawn up to the first, each cleared; the cursor ends on the first
        return "\r\x1b[K" + "\x1b[1A\x1b[K" * max(0, self.drawn - 1)

    def _set(self, label: str, text) -> None:
        self.current.label = label
        self.lines.pop(label, None)  # the table's line moves to the bottom, newest last
        self.lines[label] = text

    def sleep(self, seconds: float) -> None:
        """``time.sleep`` that keeps the line's clock and countdown moving."""
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(0.5, left))
            with self.lock:
                if self.lines:
                    self._draw(force=True)

    # -- drawing -------------------------------------------------------------------------------
    def _update(self, change) -> None:
        with self.lock:
            label = getattr(self.current, "label", None)
            download = self.downloads.get(label) if label is not None else None
            if label is None or download is None:
                return
            change(download)
            self._show_download(label)

    def _show_download(self, label: str, force: bool = False) -> None:
        d = self.downloads[label]

        def text() -> str:
            elapsed = time.monotonic() - d.started
            mib = d.bytes / 1048576.0
            return "%s: part %d/%d, %s rows, %.1f MiB gzip at %.1f MiB/s, %s" % (
                label, min(d.index + 1, d.parts), d.parts, "{:,}".format(d.rows), mib,
                mib / elapsed if elapsed > 0 else 0.0, _duration(elapsed))
        if self.lines.get(label) is not text:
            self.current.label = label
            self.lines[label] = text
        self._draw(force)

    def _columns(self) -> int:
        if self.width is not None:
            return self.width
        try:
            return os.get_terminal_size(self.stream.fileno()).columns or 80
        except (AttributeError, ValueError, OSError):
            return 80

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self.lines or (not force and now - self.shown < 0.1):
            return
        self.shown = now
        width = max(self._columns() - 1, 10)
        texts = [line()[:width] for line in self.lines.values()]
        self.stream.write(self._erase() + "\n\x1b[K".join(texts))
        self.stream.flush()
        self.drawn = len(texts)
