"""A session with the DAP API: the token's lifecycle, the API calls, a query run to completion.

* Login: ``POST /ids/auth/login`` with the Basic header from ``credentials``; the token and
  its ``exp`` come from ``parse_login_answer`` (the JWT payload, else ``expires_in``).
  Before each call the token is renewed when ``is_expiring(now, exp, margin, issued_at)``
  (``margin`` before ``exp``, at most a quarter of its lifetime); a 401 on an API call
  renews it once more (the core's policy decides), never in a loop.
* Pacing: starting jobs and listing tables are limited to 5 a minute by the service; the
  session waits ``policy.pace_delay`` before such a call instead of running into 429s.
* ``run(query)`` starts the job, decides what to do with it (``jobs.decide_created_job``: use,
  poll, renew, ask again with an equivalent body, fail), polls on the core's schedule
  (``policy.next_poll_delay``), checks every transition (``jobs.check_transition``) and
  returns a complete job or raises ``JobFailed``.

The token and the secret never reach a log, an error message or a repr.
"""
from __future__ import annotations

import collections
import itertools
import json
import logging
import threading
from datetime import datetime, timezone
from typing import Any, Callable, Deque, Dict, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import quote

from .. import credentials as creds
from .. import errors, jobs, policy
from ..queries import check_name

__all__ = ["Session", "TOKEN_MARGIN", "PER_MINUTE"]

log = logging.getLogger("dap.session")

#: renew the token this many seconds before it expires
TOKEN_MARGIN = 300.0
#: requests per minute the service allows, for the calls that are paced
PER_MINUTE = {"start_job": 5, "list_tables": 5}
#: object ids per "object URLs" request
URL_BATCH = 25


def _path(*parts: str) -> str:
    return "/".join(quote(p, safe="") for p in parts)


def _queued_before(recent, entry: List[Any]) -> List[List[Any]]:
    """The entries of ``recent`` queued before ``entry`` (by identity: equal entries are
    other calls)."""
    return list(itertools.takewhile(lambda other: other is not entry, recent))


class Session:
    """API calls with a token that stays fresh.

    Thread-safe: the tables of one run share it from several threads -- one token (renewed
    once for all of them), one pacer for the per-minute limits, one count of pending jobs
    that stretches every job's polling so that together they stay within the status budget.
    """

    def __init__(self, transport, base_url: str, credentials: creds.Credentials, *,
                 token_margin: float = TOKEN_MARGIN, job_margin: float = 600.0,
                 pacing: bool = True, pace_window: float = 60.0,
                 job_deadline: Optional[float] = policy.JOB_DEADLINE) -> None:
        self.transport = transport
        self.base_url = base_url.rstrip("/")
        self._credentials = credentials
        self._token: Optional[str] = None
        self._exp: Optional[float] = None
        self._issued_at: Optional[float] = None
        self.token_margin = token_margin
        self.job_margin = job_margin
        self.pacing = pacing
        self.pace_window = pace_window
        self.job_deadline = job_deadline
        # per paced call: [time, state] of recent calls, in the order they queued up (see _pace)
        self._recent: Dict[str, Deque[List[Any]]] = collections.defaultdict(
            lambda: collections.deque(maxlen=64))
        self.logins = 0
        self._token_lock = threading.RLock()
        self._pace_lock = threading.Lock()
        self._pending = 0

    def __repr__(self) -> str:
        return "Session(%r, client_id=%r)" % (self.base_url, self._credentials.client_id)

    # -- secrets ----------------------------------------------------------------------------
    def secrets(self) -> Tuple[str, ...]:
        """Every text a log must never show: secret, API key, Basic value, current token."""
        found = tuple(self._credentials.secrets())
        return found + ((self._token,) if self._token else ())

    # -- the token -------------------------------------------------------------------------------
    def login(self) -> None:
        """Get a fresh token."""
        basic = creds.basic_authorization(self._credentials)
        reply = self.transport.request_with_policy(
            "login", "POST", self.base_url + "/ids/auth/login",
            headers=lambda: {"Authorization": basic, "Accept": "application/json",
                             "Content-Type": "application/x-www-form-urlencoded"},
            body=b"grant_type=client_credentials", what="login")
        now = self.transport.clock()
        self._token, self._exp = creds.parse_login_answer(reply.json(), now)
        self._issued_at = now
        self.logins += 1
        log.info("logged in as %s; the token expires in %d s",
                 creds.describe(self._credentials), int(self._exp - now))

    def _relogin(self) -> None:
        with self._token_lock:
            self._token = None
            self.login()

    def _bearer(self) -> Dict[str, str]:
        with self._token_lock:  # one login for all the threads that find the token stale
            if self._token is None or creds.is_expiring(self.transport.clock(), self._exp,
                                                         self.token_margin, self._issued_at):
                if self._token is not None:
                    log.info("the token is about to expire; getting a new one")
                self.login()
            token = self._token
        return {"Authorization": "Bearer " + str(token), "Accept": "application/json"}

    # -- calls ------------------------------------------------------------------------------
    def _pace(self, call: str) -> Optional[List[Any]]:
        """Wait, if need be, so that this call stays within the service's per-minute limit;
        the entry it takes (``[time, state]``), or None when the call is not paced.

        The entry is taken before waiting, so threads pacing at once queue up behind it:
        ``waiting`` until its slot, ``sent`` once paced, ``answered`` (at the answer's
        time) after. A call sent and not answered yet counts as made now: the service
        counted it on arrival, which may come any time until the answer. So when its wait
        is over a thread checks again against the calls queued before it, knowing by then
        when those it waited for were answered."""
        limit = PER_MINUTE.get(call)
        if not self.pacing or limit is None:
            return None
        entry: Optional[List[Any]] = None
        while True:
            with self._pace_lock:
                recent = self._recent[call]
                now = self.transport.monotonic()
                if entry is None:
                    before = list(recent)
                else:  # it waited until its slot (a test's sleep may not have)
                    now = max(now, entry[0])
                    before = _queued_before(recent, entry)
                times = tuple(max(t, now) if state == "sent" else t for t, state in before)
                delay = policy.pace_delay(now, times, limit, self.pace_window)
                if entry is None:
                    entry = [now + delay, "waiting"]
                    recent.append(entry)
                    if delay > 0:
                        log.info("waiting %.1f s: DAP's rate limit (%d %s calls in %g s)",
                                 delay, limit, call.replace("_", " "), self.pace_window)
                if delay <= 0:
                    entry[0], entry[1] = now, "sent"
                    return entry
                entry[0] = now + delay
            self.transport.wait(call.replace("_", " "), "DAP's rate limit", delay)

    def _paced(self, call: str, send: Callable[[], Any]) -> Any:
        """``send()`` after pacing; the call counts from when its answer came (the service
        counted it on arrival, which is no later), so pacing errs on the safe side."""
        entry = self._pace(call)
        try:
            return send()
        finally:
            if entry is not None:
                with self._pace_lock:
                    entry[0], entry[1] = self.transport.monotonic(), "answered"

    def _api(self, method: str, path: str, *, payload: Any = None, what: str = "",
             namespace: Optional[str] = None, table: Optional[str] = None) -> Any:
        body = None
        if payload is not None:
            body = json.dumps(payload, separators=(",", ":")).encode("utf-8")

        def headers() -> Mapping[str, str]:
            h = self._bearer()
            if body is not None:
                h["Content-Type"] = "application/json"
            return h

        context = {k: v for k, v in (("namespace", namespace), ("table", table)) if v}
        reply = self.transport.request_with_policy(
            "api", method, self.base_url + path, headers=headers, body=body,
            refresh_token=self._relogin, error_context=context, what=what or path)
        return reply.json()

    def list_tables(self, namespace: str) -> List[str]:
        """The table names of ``namespace``, as the service lists them."""
        check_name("namespace", namespace)
        data = self._paced("list_tables", lambda: self._api(
            "GET", "/dap/query/%s/table" % _path(namespace),
            what="list tables of %s" % namespace, namespace=namespace))
        tables = data.get("tables") if isinstance(data, dict) else None
        if not isinstance(tables, list) or not all(isinstance(t, str) for t in tables):
            raise errors.UnexpectedAnswer("DAP's table list is not a list of names")
        return list(tables)

    def get_schema(self, namespace: str, table: str) -> Dict[str, Any]:
        """``{"schema": <JSON Schema>, "version": <int>}`` of a table."""
        check_name("namespace", namespace)
        check_name("table", table)
        data = self._api("GET", "/dap/query/%s/table/%s/schema" % (_path(namespace), _path(table)),
                         what="schema of %s.%s" % (namespace, table),
                         namespace=namespace, table=table)
        if not isinstance(data, dict) or not isinstance(data.get("schema"), dict):
            raise errors.UnexpectedAnswer("DAP's schema answer holds no schema")
        return data

    def start_job(self, query, body: Optional[Dict[str, Any]] = None) -> jobs.Job:
        """Start a query job (the service may hand back an existing one for the same query).
        ``body`` replaces ``query.body()`` (an equivalent body, see ``run``)."""
        payload = query.body() if body is None else body
        data = self._paced("start_job", lambda: self._api(
            "POST", "/dap/query/%s/table/%s/data" % (_path(query.namespace), _path(query.table)),
            payload=payload,
            what="start %s of %s.%s" % (query.kind, query.namespace, query.table),
            namespace=query.namespace, table=query.table))
        return jobs.parse_job(data, query.kind)

    def job_status(self, job_id: str, kind: str) -> jobs.Job:
        data = self._api("GET", "/dap/job/%s" % _path(job_id), what="status of job %s" % job_id)
        job = jobs.parse_job(data, kind)
        if job.id != job_id:
            raise errors.UnexpectedAnswer("DAP answered about job %s when asked about %s"
                                          % (job.id, job_id))
        return job

    def object_urls(self, object_ids: Sequence[str]) -> Dict[str, str]:
        """Pre-signed URLs for objects: ``{id: url}``."""
        found: Dict[str, str] = {}
        ids = list(object_ids)
        for start in range(0, len(ids), URL_BATCH):
            batch = ids[start:start + URL_BATCH]
            data = self._api("POST", "/dap/object/url", payload=[{"id": i} for i in batch],
                             what="URLs of %d object%s" % (len(batch), "s" * (len(batch) != 1)))
            urls = data.get("urls") if isinstance(data, dict) else None
            if not isinstance(urls, dict):
                raise errors.UnexpectedAnswer("DAP's object URL answer holds no URLs")
            for object_id in batch:
                entry = urls.get(object_id)
                url = entry.get("url") if isinstance(entry, dict) else None
                if not isinstance(url, str) or not url:
                    raise errors.UnexpectedAnswer("DAP gave no URL for object %s" % object_id)
                found[object_id] = url
        return found

    # -- a query, to completion ----------------------------------------------------------------
    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.transport.clock(), timezone.utc)

    def run(self, query, on_status: Optional[Callable[[jobs.Job], None]] = None):
        """Start ``query`` and wait until its job is complete; return the complete job.

        A failed job raises ``JobFailed`` with the service's message and uuid.
        """
        label = "%s.%s" % (query.namespace, query.table)
        body = None  # None: query.body(); else the equivalent body the core asked for
        renewals = asked_again = variant = 0
        while True:
            job = self.start_job(query, body)
            log.info("%s: %s job %s is %s", label, query.kind, job.id, job.status)
            self.transport.notify("job", label, job.id, job.status)
            decision = jobs.decide_created_job(job, self._now(), self.job_margin,
                                               asked_again=asked_again, variant=variant,
                                               renewed=renewals)
            if decision.action == "fail":  # the core gives the error with it
                raise decision.error or errors.UnexpectedAnswer("%s: job %s failed" % (
                    label, job.id))
            if decision.action == "ask_again":
                asked_again, variant = asked_again + 1, decision.variant
                body = query.body(variant=variant)
                log.info("%s: job %s is complete and empty, perhaps an old one; asking "
                         "again with since %s", label, job.id, body["since"])
                continue
            if decision.action == "use":
                return job
            if decision.action == "renew":
                renewals += 1
                log.info("%s: job %s expires soon; asking anew in %.0f s", label, job.id,
                         decision.wait)
                self.transport.wait(label, "job %s expires soon; asking anew" % job.id,
                                    decision.wait)
                continue
            return self.poll(job, query.kind, label, on_status)

    def poll(self, job, kind: str, label: str = "",
             on_status: Optional[Callable[[jobs.Job], None]] = None):
        """Poll ``job`` until it is terminal; the complete job, or ``JobFailed``, or
        ``ServiceUnavailable`` when it is still pending at ``job_deadline``."""
        attempt = 0
        started = self.transport.monotonic()
        with self._pace_lock:
            self._pending += 1
        try:
            return self._poll(job, kind, label, on_status, attempt, started)
        finally:
            with self._pace_lock:
                self._pending -= 1

    def _poll(self, job, kind: str, label: str, on_status, attempt: int, started: float):
        while not jobs.is_terminal(job.status):
            attempt += 1
            elapsed = self.transport.monotonic() - started
            delay = policy.poll_wait(attempt, elapsed, self.transport.rng.random(),
                                     self.job_deadline, pending=self._pending)
            if delay is None:
                raise errors.ServiceUnavailable(
                    "job %s of %s is still %s after %d s" % (job.id, label or kind, job.status,
                                                             int(elapsed)),
                    "run the same command later: DAP hands back the same job while it lives")
            self.transport.sleep(delay)
            new = self.job_status(job.id, kind)
            jobs.check_transition(job.status, new.status)
            if new.status != job.status:
                log.info("%s: job %s is %s", label or kind, job.id, new.status)
            job = new
            self.transport.notify("job", label or kind, job.id, job.status)
            if on_status is not None:
                on_status(job)
        if isinstance(job, jobs.FailedJob):
            raise job.error.to_exception(job.id)
        return job

