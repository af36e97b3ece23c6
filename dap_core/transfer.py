"""One part's download as a state machine: events in, decisions out (as h11 does HTTP).

The shell performs the decisions (HTTP requests, the gunzip and its checks, sleeping) and
reports what happened; nothing here touches a socket, a clock or a random source: the time
(`now`, monotonic seconds) and the jitter come in with the events that need them.

Rules, first that applies:

- a part is downloaded from its first byte at most `max_downloads` times: one more start
  over gives up with `ServiceUnavailable` (the stored part stays corrupt);
- bytes received are progress: the next request asks for the rest (`Range: bytes=N-`, N the
  compressed bytes taken), and the retry policy's count of failed requests starts again;
- an answer that cannot resume where asked starts the part over: 416; a 200 to a ranged
  request (its body is the whole part: read as the new download); a 206 whose
  `Content-Range` does not start at the byte asked for (its body is not read);
- a 206 to a request for the whole part is an unexpected answer;
- any other answer that is not 2xx, no answer, and a connection cut mid-body are failures:
  `policy.decide` says refresh the URL, wait and ask again, or give up; its attempts count
  every failure since the last byte received;
- a gzip stream that fails its checks, or ends short of a whole member, starts the part over;
  one that ends whole is done.

Whenever the part starts over after some of its output was passed on, the decision says
`rollback`: the output goes back to where the part began, so no byte is passed on twice.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

from .errors import DapError, ServiceUnavailable, UnexpectedAnswer
from .policy import Answer, RetryPolicy, decide

__all__ = ["MAX_DOWNLOADS", "Fetch", "ReadBody", "ReportFailure", "GiveUp", "Done",
           "PartDownload", "content_range_start"]

#: how many times one part may be downloaded from its first byte before it counts as corrupt
MAX_DOWNLOADS = 5


@dataclass(frozen=True)
class Fetch:
    """Ask for the part from byte `offset` (with a Range header unless 0). First, in this
    order: `rollback` the output of the part passed on so far, start a `fresh` decompressor,
    ask for a fresh URL (`refresh_url`), wait `wait` seconds. `why`: why an answer made the
    part start over, for the log (empty otherwise)."""

    offset: int
    fresh: bool = False
    rollback: bool = False
    refresh_url: bool = False
    wait: float = 0.0
    why: str = field(default="", compare=False)  # for the log, not the decision


@dataclass(frozen=True)
class ReadBody:
    """Stream the answer's body into the decompressor, reporting each chunk (`received`),
    then how it ended (`cut`, `corrupt` or `ended`). With `fresh`, the body is the part from
    its first byte: `rollback` the output and start a fresh decompressor first (`why` says
    why, as `Fetch`'s)."""

    fresh: bool = False
    rollback: bool = False
    why: str = field(default="", compare=False)  # for the log, not the decision


@dataclass(frozen=True)
class ReportFailure:
    """The answer is an error: read what it says and report it with `failed`."""


@dataclass(frozen=True)
class GiveUp:
    error: DapError


@dataclass(frozen=True)
class Done:
    """The part arrived whole and verified: `compressed` bytes of it."""

    compressed: int


Decision = Union[Fetch, ReadBody, ReportFailure, GiveUp, Done]


def content_range_start(value: Optional[str]) -> Optional[int]:
    """The first byte of `Content-Range: bytes A-B/L`, or None."""
    if not value:
        return None
    unit, _, rest = value.strip().partition(" ")
    if unit.lower() != "bytes":
        return None
    first = rest.partition("-")[0].strip()
    return int(first) if first.isdigit() else None


class PartDownload:
    """The state of one part's download. Call `begin` first, then report each event; every
    call returns what to do next, until a `GiveUp` or `Done` (after which it takes no more
    events)."""

    def __init__(self, label: str = "part", max_downloads: int = MAX_DOWNLOADS,
                 policy: Optional[RetryPolicy] = None) -> None:
        self.label = label
        self.max_downloads = max_downloads
        self.policy = policy if policy is not None else RetryPolicy()
        #: compressed bytes of the part taken by the current download
        self.offset = 0
        #: downloads begun from the part's first byte
        self.downloads = 0
        #: failed requests since the last byte received (the retry policy's attempt)
        self.attempt = 0
        #: the last failure reported, for the shell's log line and wait reason
        self.failure: Optional[Answer] = None
        self._since_progress = 0.0
        self._passed_on = False
        self._over = False

    # -- events -----------------------------------------------------------------------------
    def begin(self, now: float) -> Decision:
        self._since_progress = now
        return self._start_over(Fetch)

    def answered(self, status: int, content_range: Optional[str] = None) -> Decision:
        """An answer's status (and its `Content-Range`) to the request last decided."""
        self._check_open()
        if status == 416 or (self.offset and status == 200):
            why = "cannot resume at byte %d (HTTP %d)" % (self.offset, status)
            return self._start_over(Fetch if status == 416 else ReadBody, why)
        if self.offset and status == 206:
            if content_range_start(content_range) != self.offset:
                return self._start_over(Fetch, "resumed at the wrong offset")
            return ReadBody()
        if status == 206:
            return self._give_up(UnexpectedAnswer("%s: unexpected HTTP 206" % self.label))
        if 200 <= status < 300:
            return ReadBody()
        return ReportFailure()

    def passed_on(self) -> None:
        """Some of the part's output went on to the caller (it must be rolled back to start
        the part over)."""
        self._passed_on = True

    def received(self, size: int, now: float) -> None:
        """`size` more bytes of the body arrived (progress)."""
        self._check_open()
        if size > 0:
            self.offset += size
            self.attempt = 0
            self._since_progress = now

    def failed(self, answer: Answer, now: float, jitter: float) -> Decision:
        """A request failed (an error answer, or none); `jitter` is a draw from [0, 1)."""
        self._check_open()
        self.attempt += 1
        self.failure = answer
        decision = decide(answer, self.attempt, now - self._since_progress, jitter, self.policy)
        if decision.action == "refresh_url":
            return Fetch(self.offset, refresh_url=True)
        if decision.action == "retry":
            return Fetch(self.offset, wait=decision.delay)
        if decision.action == "ok":
            return self._give_up(UnexpectedAnswer("%s: unexpected HTTP %s" % (
                self.label, answer.status)))
        return self._give_up(decision.error or answer.error or UnexpectedAnswer(
            "%s: the download failed" % self.label))

    def cut(self, answer: Answer, now: float, jitter: float) -> Decision:
        """The connection broke mid-body: a failure, resumed where it stopped."""
        return self.failed(answer, now, jitter)

    def corrupt(self) -> Decision:
        """The gzip stream failed its checks."""
        self._check_open()
        return self._start_over(Fetch)

    def ended(self, whole: bool) -> Decision:
        """The body ended; `whole`: the gzip stream so far is complete members, verified."""
        self._check_open()
        if not whole:
            return self._start_over(Fetch)
        self._over = True
        return Done(self.offset)

    # -- helpers ----------------------------------------------------------------------------
    def _start_over(self, then, why: str = ""):
        if self.downloads >= self.max_downloads:
            return self._give_up(ServiceUnavailable(
                "%s stayed corrupt after %d downloads" % (self.label, self.downloads),
                "run the command again; if it persists, the stored result is damaged: "
                "run the query again later"))
        self.downloads += 1
        rollback, self._passed_on = self._passed_on, False
        self.offset = 0
        if then is ReadBody:
            return ReadBody(fresh=True, rollback=rollback, why=why)
        return Fetch(0, fresh=True, rollback=rollback, why=why)

    def _give_up(self, error: DapError) -> GiveUp:
        self._over = True
        return GiveUp(error)

    def _check_open(self) -> None:
        if self._over:
            raise ValueError("the download of %s is over" % self.label)
