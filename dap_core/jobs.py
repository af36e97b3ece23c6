"""Query jobs: what a job answer means, which status may follow which, what to do with a new job.

The lifecycle, as h11 states its own (rules first, then the table):

- a job is created `waiting` or `running`, or already terminal (the service deduplicates
  identical queries and may hand back an old job);
- it only moves forward: waiting -> running -> complete | failed; a poll may see the same
  status again, and may miss `running` altogether;
- `complete` and `failed` are terminal: nothing follows them.

What to do with a job just handed out (`decide_created_job`), first rule that applies:
failed -> fail; expires within the margin, renewed MAX_RENEWALS times already -> fail;
expires within the margin -> renew; not terminal -> poll; an incremental complete at
creation with an empty window, asked again fewer than ASK_AGAIN_LIMIT times -> ask_again;
else use.  So one run starts at most 1 + MAX_RENEWALS + ASK_AGAIN_LIMIT jobs of a query.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, FrozenSet, Optional, Tuple, Union

from .errors import DapError, JobFailed, UnexpectedAnswer, one_line
from .timestamps import format_timestamp, parse_timestamp

__all__ = [
    "WAITING", "RUNNING", "COMPLETE", "FAILED", "STATUSES", "TERMINAL", "TRANSITIONS",
    "check_transition", "is_terminal", "PendingJob", "CompleteSnapshot", "CompleteIncremental",
    "FailedJob", "JobError", "Job", "parse_job", "JobDecision", "decide_created_job",
    "RENEW_GRACE", "ASK_AGAIN_LIMIT", "MAX_RENEWALS", "CompleteJob", "remaining",
    "looks_stale",
]

WAITING, RUNNING, COMPLETE, FAILED = "waiting", "running", "complete", "failed"
STATUSES = (WAITING, RUNNING, COMPLETE, FAILED)

TRANSITIONS: Dict[str, FrozenSet[str]] = {
    WAITING:  frozenset({WAITING, RUNNING, COMPLETE, FAILED}),
    RUNNING:  frozenset({RUNNING, COMPLETE, FAILED}),
    COMPLETE: frozenset(),
    FAILED:   frozenset(),
}
TERMINAL = frozenset(status for status, following in TRANSITIONS.items() if not following)

# How long past `expires_at` the shell waits before asking anew, so the service has
# surely let go of the old job instead of handing it back once more.
RENEW_GRACE = 5.0
# How many times one run asks again, with `since` written another way, after a complete job
# with an empty window (each is a "start a query" call, 5 a minute).
ASK_AGAIN_LIMIT = 3
# How many times one run asks anew for a job handed out about to expire: a service that
# keeps doing so is broken, and waiting on it would not end.
MAX_RENEWALS = 3


def is_terminal(status: str) -> bool:
    return status in TERMINAL


def check_transition(old: str, new: str) -> str:
    """`new`, if a job that was `old` may be seen as `new`; `UnexpectedAnswer` otherwise."""
    if new not in TRANSITIONS:
        raise UnexpectedAnswer("unknown job status %r" % one_line(new))
    if new not in TRANSITIONS.get(old, frozenset()):
        raise UnexpectedAnswer("a job went from %r to %r, which the job lifecycle does not allow"
                               % (old, new))
    return new


# -- job values -----------------------------------------------------------------------------

@dataclass(frozen=True)
class JobError:
    """The `error` of a failed job, as the contract gives it."""

    type: Optional[str]
    uuid: Optional[str]
    message: str
    extra: Tuple[Tuple[str, Any], ...] = ()

    def to_exception(self, job_id: str) -> JobFailed:
        return JobFailed("query job %s failed: %s" % (job_id, self.message),
                         type=self.type, uuid=self.uuid, extra=dict(self.extra))


@dataclass(frozen=True)
class PendingJob:
    id: str
    status: str
    expires_at: Optional[datetime] = None


@dataclass(frozen=True)
class CompleteSnapshot:
    id: str
    expires_at: Optional[datetime]
    objects: Tuple[str, ...]
    schema_version: Optional[int]
    at: datetime

    status = COMPLETE
    kind = "snapshot"


@dataclass(frozen=True)
class CompleteIncremental:
    id: str
    expires_at: Optional[datetime]
    objects: Tuple[str, ...]
    schema_version: Optional[int]
    since: datetime
    until: datetime

    status = COMPLETE
    kind = "incremental"


@dataclass(frozen=True)
class FailedJob:
    id: str
    expires_at: Optional[datetime]
    error: JobError

    status = FAILED


Job = Union[PendingJob, CompleteSnapshot, CompleteIncremental, FailedJob]
CompleteJob = Union[CompleteSnapshot, CompleteIncremental]


# -- parsing an answer ----------------------------------------------------------------------

def _malformed(what: str) -> UnexpectedAnswer:
    return UnexpectedAnswer("malformed job answer from DAP: %s" % what)


def _timestamp(data: Dict[str, Any], name: str) -> Optional[datetime]:
    value = data.get(name)
    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except DapError:
        raise _malformed("%r is not a timestamp with a zone: %s" % (
            name, one_line(repr(value), 60))) from None


def _required_timestamp(data: Dict[str, Any], name: str) -> datetime:
    found = _timestamp(data, name)
    if found is None:
        raise _malformed("no %r" % name)
    return found


def _objects(data: Dict[str, Any]) -> Tuple[str, ...]:
    objects = data.get("objects")
    if not isinstance(objects, list):
        raise _malformed("'objects' is not a list")
    ids = []
    for entry in objects:
        ident = entry.get("id") if isinstance(entry, dict) else None
        if not isinstance(ident, str) or not ident:
            raise _malformed("an object without an id")
        ids.append(ident)
    return tuple(ids)


def _schema_version(data: Dict[str, Any]) -> Optional[int]:
    version = data.get("schema_version")
    if version is None:
        return None
    if isinstance(version, bool) or not isinstance(version, int):
        raise _malformed("'schema_version' is not an integer")
    return version


def _job_error(data: Dict[str, Any]) -> JobError:
    error = data.get("error")
    if not isinstance(error, dict):
        # the job failed either way; a missing reason is no reason to hide that
        return JobError(None, None, "no reason given")
    extra = tuple(sorted((k, v) for k, v in error.items() if k not in ("type", "uuid", "message")))
    return JobError(one_line(error["type"]) if error.get("type") else None,
                    one_line(error["uuid"]) if error.get("uuid") else None,
                    one_line(error.get("message") or "no reason given", 300), extra)


def parse_job(data: Any, kind: Optional[str] = None) -> Job:
    """The job an answer describes. `kind` ("snapshot" or "incremental") is what was asked;
    None guesses from the fields (`at` means snapshot)."""
    if not isinstance(data, dict):
        raise _malformed("not a JSON object")
    ident = data.get("id")
    if not isinstance(ident, str) or not ident:
        raise _malformed("no job id")
    status = data.get("status")
    if status not in TRANSITIONS:
        raise _malformed("unknown status %s" % one_line(repr(status), 40))
    expires_at = _timestamp(data, "expires_at")
    if status == FAILED:
        return FailedJob(ident, expires_at, _job_error(data))
    if status != COMPLETE:
        return PendingJob(ident, status, expires_at)
    if kind is None:
        kind = "snapshot" if "at" in data else "incremental"
    objects, version = _objects(data), _schema_version(data)
    if kind == "snapshot":
        return CompleteSnapshot(ident, expires_at, objects, version,
                                _required_timestamp(data, "at"))
    if kind != "incremental":
        raise ValueError("kind must be 'snapshot' or 'incremental', not %r" % (kind,))
    since, until = _required_timestamp(data, "since"), _required_timestamp(data, "until")
    if until < since:
        raise _malformed("'until' (%s) is before 'since' (%s)" % (
            format_timestamp(until), format_timestamp(since)))
    return CompleteIncremental(ident, expires_at, objects, version, since, until)


# -- a freshly created job ------------------------------------------------------------------

@dataclass(frozen=True)
class JobDecision:
    """What to do with a job just returned by "start a query":
    use (complete, download it), poll (not done yet), renew (it expires within the margin:
    wait `.wait` seconds until it is gone, then ask anew), ask_again (start the query once
    more at once, with the body `query.body(variant=.variant)`), fail (raise `.error`)."""

    action: str
    wait: float = 0.0
    error: Optional[DapError] = None
    variant: int = 0


def _as_datetime(now: Union[datetime, float]) -> datetime:
    if isinstance(now, datetime):
        return now
    return datetime.fromtimestamp(float(now), timezone.utc)


def looks_stale(job: Job) -> bool:
    """An incremental job, complete, whose window is empty (`until == since`)."""
    return isinstance(job, CompleteIncremental) and job.since == job.until


def decide_created_job(job: Job, now: Union[datetime, float], margin_seconds: float = 600.0,
                       asked_again: int = 0, variant: int = 0,
                       renewed: int = 0) -> JobDecision:
    """Use, poll, renew, ask again or fail a job the service just handed out (possibly an old
    one). `asked_again`: how many times this run has asked again already; `variant`: the
    body variant (`IncrementalQuery.body(variant=...)`) that this job answers, 0 the first;
    `renewed`: how many jobs about to expire this run has asked anew for already."""
    if isinstance(job, FailedJob):
        return JobDecision("fail", error=job.error.to_exception(job.id))
    now = _as_datetime(now)
    if job.expires_at is not None:
        left = (job.expires_at - now).total_seconds()
        if left <= margin_seconds:
            return _renew(job, left, renewed)
    if isinstance(job, PendingJob):
        return JobDecision("poll")
    if asked_again < ASK_AGAIN_LIMIT and looks_stale(job):
        # The service deduplicates identical queries: a job complete at creation with an
        # empty window [since, since) may be the job of an earlier, identical query, from
        # before newer data came, and the chain would stay stuck on it until it expires.
        # Ask again with `since` written another way (the same instant, not the identical
        # query).  Earlier runs may have left jobs under other forms too (one per run while
        # the data stood still): the first form is drawn from `now` to the millisecond
        # among hundreds, and a form that is stale as well moves on to the next one.
        following = variant + 1 if variant else 1 + int(now.timestamp() * 1000)
        return JobDecision("ask_again", variant=following)
    return JobDecision("use")


def _renew(job: Job, left: float, renewed: int) -> JobDecision:
    if renewed >= MAX_RENEWALS:
        return JobDecision("fail", error=UnexpectedAnswer(
            "DAP keeps handing out jobs about to expire (job %s, after %d asked anew)"
            % (job.id, renewed)))
    return JobDecision("renew", wait=max(0.0, left) + RENEW_GRACE)


def remaining(job: Job, now: Union[datetime, float]) -> Optional[timedelta]:
    """Time left until the job expires, or None when it has no `expires_at`."""
    if job.expires_at is None:
        return None
    return job.expires_at - _as_datetime(now)
