"""Several tables at once: each table's work (start its job, wait, download and write, or
load into the database) runs in one of at most ``concurrency`` worker threads, and results
come back in the order they complete.

The workers share one ``Client`` (one token, one pacer for DAP's per-minute limits, one
count of pending jobs that stretches polling to stay within the status budget), so job
starts go out as fast as DAP's limit of 5 a minute allows, every pending job is polled,
and a table whose job is done is written while the others still wait. Each table's output
and checkpoint are its own unit, as when tables run one after another.

Workers are daemon threads: when the main thread ends (Ctrl-C, SIGTERM, a fatal error),
the process ends with it and whatever a worker was writing is abandoned half-way, which
outputs survive by construction (temporary names, transactions).
"""
from __future__ import annotations

import contextlib
import logging
import queue
import threading
from typing import Any, Callable, Iterator, Optional, Sequence, Tuple, TypeVar

__all__ = ["DEFAULT_CONCURRENCY", "run_concurrently", "table_context", "TableFilter"]

_context = threading.local()


@contextlib.contextmanager
def table_context(label: str) -> Iterator[None]:
    """Log records made in this thread meanwhile carry ``table = label`` (``TableFilter``)."""
    previous = getattr(_context, "table", None)
    _context.table = label
    try:
        yield
    finally:
        _context.table = previous


class TableFilter(logging.Filter):
    """Puts the table the current thread works on into each record (``record.table``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "table"):
            record.table = getattr(_context, "table", None)
        return True

#: tables in flight at once by default: each waits for its job (DAP starts 5 a minute and a
#: job takes seconds to many minutes), so several pending jobs keep the start rate busy
DEFAULT_CONCURRENCY = 8
#: of those, at most this many download and write at once (Client's download slots): what a
#: download holds in memory is bounded per table, so memory stays flat however many wait
DOWNLOADS_AT_ONCE = 4

T = TypeVar("T")


def run_concurrently(items: Sequence[T], work: Callable[[T], Any], concurrency: int
                     ) -> Iterator[Tuple[T, Any, Optional[BaseException]]]:
    """``(item, result, None)`` or ``(item, None, exception)`` for each item, in the order
    the work completes. With ``concurrency`` 1 (or one item) everything runs in the calling
    thread, in order. Closing the iterator early stops workers from taking new items."""
    items = list(items)
    if concurrency <= 1 or len(items) <= 1:
        for item in items:
            try:
                result = work(item)
            except Exception as exc:
                yield item, None, exc
            else:
                yield item, result, None
        return
    todo: "queue.Queue[T]" = queue.Queue()
    for item in items:
        todo.put(item)
    done: "queue.Queue[Tuple[T, Any, Optional[BaseException]]]" = queue.Queue()
    stop = threading.Event()

    def worker() -> None:
        while not stop.is_set():
            try:
                item = todo.get_nowait()
            except queue.Empty:
                return
            try:
                done.put((item, work(item), None))
            except BaseException as exc:  # handed to the caller's thread
                done.put((item, None, exc))

    for number in range(min(concurrency, len(items))):
        threading.Thread(target=worker, name="dap-table-%d" % (number + 1), daemon=True).start()
    try:
        for _ in items:
            yield done.get()  # interruptible: Ctrl-C reaches the main thread here
    finally:
        stop.set()
