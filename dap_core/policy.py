"""Retry, poll and pacing decisions. The shell reports what happened; these say what to do next.

Rules of `decide`, in order:

1. a 2xx status is ok (API calls follow no redirects: a 3xx is an unexpected answer);
2. 401: on login the credentials are wrong (give up); on an API call the token is refreshed
   once, then give up; on a download (pre-signed URLs carry no token) the URL is refreshed;
3. 403 on a download is an expired pre-signed URL: refresh it, at most `max_attempts` times;
4. no answer because the host name does not resolve (`failure` "unresolved") gives up at
   once: asking the resolver again will not make the name exist;
5. no answer otherwise (refused, reset, timed out), 408, 429 and 5xx are retried after a delay:
   exponential backoff `base_delay * 2**(attempt-1)` capped at `max_delay`, with equal
   jitter (half fixed, half `jitter`), and never less than the server's `Retry-After`
   (which wins over the cap: the server knows when it will take calls again);
   at most `max_attempts` attempts in all; a delay that would pass `deadline` (seconds since
   the first attempt) gives up instead, and so does a `Retry-After` beyond `max_retry_after`;
   a failure with no answer also gives up rather than retry past `network_deadline`, and a
   refused connection past `refused_deadline`, so a host that refuses or never answers
   costs a bounded time (see `network_deadline_for`);
6. everything else gives up with the error the answer means.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Iterable, Optional, Union

from .errors import (
    AuthenticationFailed, DapError, NotFound, ServiceError, ServiceUnavailable, error_from_answer,
)

__all__ = [
    "RetryPolicy", "Answer", "Decision", "decide", "backoff_delay", "next_poll_delay",
    "poll_wait", "JOB_DEADLINE", "pace_delay", "parse_retry_after", "CALLS", "ACTIONS",
    "FAILURES", "network_deadline_for",
]

CALLS = ("login", "api", "download")
ACTIONS = ("ok", "retry", "refresh_token", "refresh_url", "give_up")
#: kinds of "no answer": the name does not resolve, the connection was refused, the
#: connection or the answer timed out, anything else (reset, cut, unreachable)
FAILURES = ("unresolved", "refused", "timeout", "other")
_RETRYABLE = frozenset({408, 429}) | frozenset(range(500, 600))
_MAX_EXPONENT = 60  # 2**60 * any sane base_delay is far past any cap; keeps floats finite


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_delay: float = 0.5
    max_delay: float = 30.0
    deadline: Optional[float] = None
    max_retry_after: float = 600.0
    network_deadline: Optional[float] = None
    refused_deadline: Optional[float] = 20.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("delays must not be negative")


@dataclass(frozen=True)
class Answer:
    """What one attempt got: `status` None means no answer (connection error or timeout),
    and then `failure` (one of FAILURES, or None when unknown) says which."""

    call: str
    status: Optional[int]
    retry_after: Optional[float] = None
    error: Optional[ServiceError] = None
    failure: Optional[str] = None

    def __post_init__(self) -> None:
        if self.call not in CALLS:
            raise ValueError("call must be one of %s, not %r" % (", ".join(CALLS), self.call))
        if self.failure is not None and self.failure not in FAILURES:
            raise ValueError("failure must be one of %s, not %r" % (", ".join(FAILURES),
                                                                    self.failure))


@dataclass(frozen=True)
class Decision:
    """`action` is one of ACTIONS; `delay` is seconds to wait first; `error` is set for give_up."""

    action: str
    delay: float = 0.0
    error: Optional[DapError] = None


def _clamp01(jitter: float) -> float:
    return min(max(float(jitter), 0.0), 1.0)


def backoff_delay(attempt: int, jitter: float, policy: RetryPolicy) -> float:
    """Equal-jitter exponential backoff after the `attempt`-th failure (1-based)."""
    exponent = min(max(attempt - 1, 0), _MAX_EXPONENT)
    ceiling = min(policy.max_delay, policy.base_delay * 2.0 ** exponent)
    return ceiling / 2 + _clamp01(jitter) * ceiling / 2


def _error_of(answer: Answer) -> ServiceError:
    return answer.error if answer.error is not None else error_from_answer(answer.status, None)


def _give_up(error: DapError) -> Decision:
    return Decision("give_up", error=error)


def _exhausted(answer: Answer, attempt: int, why: str) -> Decision:
    last = _error_of(answer)
    return _give_up(ServiceUnavailable(
        "%s; %s" % (last.message, why), last.hint if isinstance(last, ServiceUnavailable)
        else ServiceUnavailable.default_hint,
        status=last.status, type=last.type, uuid=last.uuid, extra=last.extra))


def _attempts(attempt: int) -> str:
    return "%d attempt%s" % (attempt, "" if attempt == 1 else "s")


def decide(answer: Answer, attempt: int, elapsed: float, jitter: float,
           policy: RetryPolicy = RetryPolicy(), token_refreshed: bool = False) -> Decision:
    """What to do after `answer`, the outcome of the `attempt`-th try (1-based), `elapsed`
    seconds after the first; `jitter` is a draw from [0, 1) made by the caller."""
    status, call = answer.status, answer.call
    if status is not None and 200 <= status < 300:
        return Decision("ok")
    if status == 401:
        if call == "login":
            error = _error_of(answer)
            return _give_up(AuthenticationFailed(
                "DAP refused the credentials (HTTP 401)%s" % (
                    ": " + error.message if error.message and answer.error else ""),
                status=401, type=error.type, uuid=error.uuid, extra=error.extra))
        if call == "api":
            if not token_refreshed:
                return Decision("refresh_token")
            error = _error_of(answer)
            return _give_up(AuthenticationFailed(
                "DAP refused a freshly issued token (HTTP 401)",
                status=401, type=error.type, uuid=error.uuid, extra=error.extra))
    if call == "download" and status in (401, 403):
        if attempt >= policy.max_attempts:
            return _exhausted(answer, attempt, "a fresh pre-signed URL was refused after %s"
                              % _attempts(attempt))
        return Decision("refresh_url")
    if call == "download" and status == 404:
        error = _error_of(answer)
        return _give_up(NotFound(
            "a part of the result is gone (HTTP 404)",
            "a job's objects expire after about a day; run the query again",
            status=404, type=error.type, uuid=error.uuid, extra=error.extra))
    if status is not None and status not in _RETRYABLE:
        return _give_up(_error_of(answer))
    if status is None and answer.failure == "unresolved":
        return _give_up(_error_of(answer))

    if attempt >= policy.max_attempts:
        return _exhausted(answer, attempt, "gave up after %s" % _attempts(attempt))
    retry_after = answer.retry_after
    if retry_after is not None and retry_after > policy.max_retry_after:
        return _exhausted(answer, attempt, "gave up after %s: DAP asks to wait %gs, longer "
                          "than the %gs dap waits" % (_attempts(attempt), retry_after,
                                                      policy.max_retry_after))
    delay = backoff_delay(attempt, jitter, policy)
    if retry_after is not None:
        delay = max(delay, float(retry_after))
    if policy.deadline is not None and elapsed + delay > policy.deadline:
        return _exhausted(answer, attempt, "gave up after %s: the next try would pass the "
                          "deadline of %gs" % (_attempts(attempt), policy.deadline))
    deadlines = [policy.network_deadline] if status is None else []
    if answer.failure == "refused":
        deadlines.append(policy.refused_deadline)
    limits = [limit for limit in deadlines if limit is not None]
    if limits and elapsed + delay > min(limits):
        return _exhausted(answer, attempt, "gave up after %s in %.0f s" % (_attempts(attempt),
                                                                            elapsed))
    return Decision("retry", delay=delay)


def network_deadline_for(read_timeout: float) -> float:
    """How long a request that gets no answer is tried again, given the timeout of one
    attempt: three attempts' worth, and at least 30 s (a refused connection fails at once:
    30 s of retries ride out a restarting server without hanging a nightly run)."""
    return max(30.0, 3.0 * float(read_timeout))


#: the longest wait between two polls of one job: a complete job is noticed within it
POLL_CAP = 5.0
#: status calls a minute that all of one process's polling may make: half of DAP's 500,
#: leaving room for the schema and URL calls, and for other clients of the same account
STATUS_BUDGET = 250.0


def next_poll_delay(attempt: int, jitter: float, first: float = 0.5, factor: float = 1.5,
                    cap: float = POLL_CAP) -> float:
    """Seconds before the `attempt`-th poll of a job (1-based): from about `first`, growing by
    `factor`, never above `cap`; jitter spreads it by +-20% so that clients do not align."""
    exponent = min(max(attempt - 1, 0), _MAX_EXPONENT)
    try:
        base = first * factor ** exponent
    except OverflowError:
        base = cap
    return min(cap, base * (0.8 + 0.4 * _clamp01(jitter)))


#: how long one query job may stay waiting or running before dap gives up on it. DAP takes
#: seconds to many minutes; hours mean something is wrong, and a nightly job must end.
JOB_DEADLINE = 6 * 3600.0


def poll_wait(attempt: int, elapsed: float, jitter: float,
              deadline: Optional[float] = JOB_DEADLINE, pending: int = 1,
              budget: float = STATUS_BUDGET, **schedule: float) -> Optional[float]:
    """Seconds to wait before the `attempt`-th poll of a job that has been pending for
    `elapsed` seconds, or None when that poll would come after `deadline` (give up).
    With `pending` jobs polled at once, each waits at least `pending * 60 / budget` so that
    all of them together stay within `budget` status calls a minute.
    `schedule` passes `first`, `factor` and `cap` on to `next_poll_delay`."""
    delay = next_poll_delay(attempt, jitter, **schedule)
    delay = max(delay, max(1, pending) * 60.0 / budget)
    if deadline is not None and elapsed + delay > deadline:
        return None
    return delay


def pace_delay(now: float, recent_calls: Iterable[float], limit: int,
               window: float = 60.0) -> float:
    """The least delay so that a call made then is at most the `limit`-th call in any
    `window` seconds. A call at t counts for calls at times before t + window."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    calls = sorted(recent_calls, reverse=True)
    if len(calls) < limit:
        return 0.0
    # the limit-th most recent call has to leave the window before the next call is made
    return max(0.0, calls[limit - 1] + window - now)


def parse_retry_after(value: Optional[str], now: Union[float, datetime, None] = None
                      ) -> Optional[float]:
    """Seconds from a `Retry-After` header (delta-seconds, or an HTTP date given `now`);
    None when absent or unreadable (then the backoff alone decides)."""
    if value is None:
        return None
    text = str(value).strip()
    try:
        seconds = float(text)
    except ValueError:
        if now is None:
            return None
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None or when.tzinfo is None:
            return None
        now_s = now.timestamp() if isinstance(now, datetime) else float(now)
        seconds = when.timestamp() - now_s
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return None
    return max(0.0, seconds)
