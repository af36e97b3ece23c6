"""The concurrent pipeline (#11), judged from the simulator's request log, never by a clock.

* Jobs of several tables are pending at once, as many as ``--concurrency`` and never more;
  with ``--concurrency 1`` tables run strictly one after another.  Each table's activity in
  the log (its job start, its status polls, its object downloads) spans an interval that
  lies inside the time a worker spent on it, so at most ``--concurrency`` intervals overlap
  whatever the timing.  A gate holds status polls until enough jobs have started: a run
  that starts its jobs one at a time cannot pass by a slow machine's luck either way.
* Pacing acts: a run of both namespaces' tables, twice, with the contract's limits on a
  shrunk window gets no 429 when paced to that window, and the same run unpaced does.
* Status calls stay within the budget: while every job of a run is pending, two
  consecutive polls of one job are at least ``pending * 60 / STATUS_BUDGET`` apart.  The
  bound is read off the log: the delay before a poll is chosen after the previous poll's
  answer came, and while no job can be complete yet (before the simulator's earliest
  ``created + wait + run``) and every job has been polled once, the count of pending jobs
  is all of them.
* SIGKILL at seeded moments of a concurrent run (the k-th object download: the simulator
  holds the next ones back until the kill, so the kill lands mid-download by construction;
  or a seeded moment after the last part) leaves every output whole, every checkpoint
  valid and none lost; a rerun converges to a clean run's outputs.  The same for
  ``syncdb --table all`` into SQLite: each table as before the run or as after it.
* ``--output -`` with several tables: every line is JSON, each table's records come as one
  block equal to that table's output alone.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
import urllib.parse
from typing import Dict, List, Optional, Tuple

import pytest

from dap_core import Client, IncrementalQuery, SnapshotQuery, parse_timestamp, resolve_credentials
from dap_core import policy
from dap_core.shell.pipeline import run_concurrently
from fixtures.simulator import QUICK_OPTIONS

from . import checks, support

CANVAS = ("accounts", "users", "courses", "enrollments", "submissions")
BOTH_NAMESPACES = [("canvas", t) for t in CANVAS] + [("canvas_logs", "web_logs")]


# -- reading the request log ---------------------------------------------------------------------

def job_start_of(path: str) -> Optional[Tuple[str, str]]:
    """(namespace, table) of a job start ``POST /dap/query/NS/table/T/data``, else None."""
    parts = path.split("?")[0].split("/")
    if len(parts) == 7 and parts[1:3] == ["dap", "query"] and parts[4] == "table" \
            and parts[6] == "data":
        return urllib.parse.unquote(parts[3]), urllib.parse.unquote(parts[5])
    return None


def is_status(request: dict) -> bool:
    return request["method"] == "GET" and request["path"].startswith("/dap/job/")


def is_object(request: dict) -> bool:
    return request["path"].startswith("/objects/")


def owner(sim, request: dict) -> Optional[Tuple[str, str]]:
    """(namespace, table) a request is about: a job start by its path, a status poll by its
    job, an object download by the job the object belongs to (the simulator's own books)."""
    start = job_start_of(request["path"])
    if request["method"] == "POST" and start is not None:
        return start
    if is_status(request):
        job = sim.service.jobs.get(urllib.parse.unquote(request["path"].split("?")[0][9:]))
        return (job.namespace, job.table) if job is not None else None
    if is_object(request):
        object_id = urllib.parse.unquote(request["path"].split("/")[2])
        part = sim.service.objects.get(object_id)
        return (part.job.namespace, part.job.table) if part is not None else None
    return None


def activity(sim, requests) -> Dict[Tuple[str, str], Tuple[float, float]]:
    """table -> (its first request, its last request): job start to last object download."""
    spans: Dict[Tuple[str, str], List[float]] = {}
    for r in requests:
        table = owner(sim, r)
        if table is not None:
            spans.setdefault(table, []).append(r["time"])
    return {t: (min(ts), max(ts)) for t, ts in spans.items()}


def most_overlapping(spans) -> int:
    """The most intervals that share a moment (closed intervals)."""
    events = sorted([(a, 0) for a, _ in spans] + [(b, 1) for _, b in spans])
    now = most = 0
    for _, end in events:
        now += -1 if end else 1
        most = max(most, now)
    return most


class Gate:
    """Holds the simulator's answers to some requests until a condition on the log holds.
    It wraps the simulator's request recorder, through which every request passes (and is
    logged) before it is served.  ``held`` counts the requests that had to wait; after
    ``timeout`` s of waiting the gate opens for good (``expired``), so that a run that never
    meets the condition is not held forever, and fails its test instead."""

    def __init__(self, sim, timeout: float = 60.0) -> None:
        self.service = sim.service
        self.record = self.service.record
        self.timeout = timeout
        self.cond = threading.Condition()
        self.hold = None     # (method, path) -> bool: this request waits ...
        self.until = None    # () -> bool: ... until this holds (checked under the lock)
        self.held = 0
        self.expired = False
        self.seen: List[Tuple[str, str]] = []
        self.service.record = self._record

    def _record(self, method, path, headers):
        entry = self.record(method, path, headers)
        with self.cond:
            self.seen.append((method, path))
            self.cond.notify_all()
            if self.hold is not None and self.hold(method, path) and not self.until():
                self.held += 1
                if not self.cond.wait_for(lambda: self.hold is None or self.until(),
                                          self.timeout):
                    self.expired = True
                    self.hold = self.until = None
                    self.cond.notify_all()
        return entry

    def set(self, hold, until) -> None:
        with self.cond:
            self.seen, self.held, self.expired = [], 0, False
            self.hold, self.until = hold, until
            self.cond.notify_all()

    def release(self) -> None:
        with self.cond:
            self.hold = self.until = None
            self.cond.notify_all()

    def count(self, predicate) -> int:
        return sum(1 for m, p in self.seen if predicate(m, p))

    def close(self) -> None:
        self.release()
        self.service.record = self.record


def starts(method: str, path: str) -> bool:
    return method == "POST" and job_start_of(path) is not None


def downloads(method: str, path: str) -> bool:
    return path.startswith("/objects/")


# -- 1. jobs pending at once, bounded by --concurrency ---------------------------------------------

#: jobs stay waiting 1.5 s: long beside the few milliseconds between two starts
PENDING_DATA = dict(QUICK_OPTIONS, job_wait=1.5, job_run=0.1, rows_per_part=20)


@pytest.mark.parametrize("concurrency", [1, 2, 4, 8])
def test_jobs_of_several_tables_are_pending_at_once_up_to_the_concurrency(
        make_simulator, tmp_path, concurrency):
    sim = make_simulator(**PENDING_DATA)
    together = min(concurrency, len(CANVAS))
    gate = Gate(sim, timeout=20.0)
    # no status answer before `together` jobs started: a pipeline that waits for one job
    # before starting the next is held until the gate gives up, and then fails below
    gate.set(lambda m, p: p.startswith("/dap/job/"), lambda: gate.count(starts) >= together)
    try:
        run = support.run_dap(sim, support.query_args(
            "snapshot", "all", "jsonl", "file", str(tmp_path / "out"),
            state=str(tmp_path / "state.json"), extra=["--concurrency", str(concurrency)]))
    finally:
        gate.close()
    assert run.returncode == 0, run
    assert not gate.expired, "no %d jobs were pending at once in %g s" % (together, gate.timeout)
    log = sim.requests
    started = [job_start_of(r["path"]) for r in log if r["method"] == "POST"
               and job_start_of(r["path"])]
    assert sorted(started) == sorted(("canvas", t) for t in CANVAS)  # each table once
    first_download = min(r["time"] for r in log if is_object(r))
    before = [r for r in log if r["method"] == "POST" and job_start_of(r["path"])
              and r["time"] < first_download]
    # as many jobs pending at once as the concurrency allows, never more: the next table is
    # started only when a worker is done with one, after that one's downloads
    assert len(before) == together, (concurrency, [job_start_of(r["path"]) for r in before])
    spans = activity(sim, log)
    assert set(spans) == set(("canvas", t) for t in CANVAS)
    assert most_overlapping(spans.values()) == together, spans
    if concurrency == 1:  # strictly one after another
        ordered = sorted(spans.values())
        assert all(a[1] < b[0] for a, b in zip(ordered, ordered[1:])), ordered
    listing = checks.inspect_directory(str(tmp_path / "out"))
    assert listing.problems == [] and len(listing.outputs()) == len(CANVAS)


# -- 2. pacing acts --------------------------------------------------------------------------------

#: the contract's limits (5 job starts, 5 table lists per window) on a window of 3 s
RATE_WINDOW = 3.0
PACING_DATA = dict(QUICK_OPTIONS, no_rate_limits=False, rate_window=RATE_WINDOW)


def both_namespaces_twice(sim, directory, pacing: bool):
    """`--table all` of canvas and canvas_logs at once (6 tables, 6 workers: the library's
    `Client.download_many`), twice in a row: 12 job starts and 4 table lists. Returns what
    each table gave: ((namespace, table), rows)."""
    credentials = resolve_credentials(client_id=sim.client_id, client_secret=sim.client_secret)
    done = []
    with Client(sim.base_url, credentials, pacing=pacing, pace_window=RATE_WINDOW,
                rng=random.Random(7)) as dap:
        for round_ in range(2):
            queries = [SnapshotQuery(ns, t) for ns in ("canvas", "canvas_logs")
                       for t in dap.list_tables(ns)]
            assert sorted((q.namespace, q.table) for q in queries) == sorted(BOTH_NAMESPACES)
            for query, result, exc in dap.download_many(
                    queries, os.path.join(directory, str(round_)), concurrency=len(queries)):
                assert exc is None, (query, exc)
                done.append(((query.namespace, query.table), result.rows))
    return done


def test_pacing_keeps_both_namespaces_concurrently_clear_of_429_and_unpaced_runs_meet_them(
        make_simulator, tmp_path):
    paced_sim = make_simulator(**PACING_DATA)
    paced = both_namespaces_twice(paced_sim, str(tmp_path / "paced"), pacing=True)
    log = paced_sim.requests
    starts_at = [r["time"] for r in log if r["method"] == "POST" and job_start_of(r["path"])]
    assert [(r["method"], r["path"]) for r in log if r["status"] == 429] == []
    assert paced_sim.fault_counts["rate_limit"] == 0
    assert len(starts_at) == 12 and len(paced) == 12
    # the limit had to be waited for: the sixth start came a window after the first
    assert starts_at[5] - starts_at[0] >= RATE_WINDOW

    unpaced_sim = make_simulator(**PACING_DATA)
    unpaced = both_namespaces_twice(unpaced_sim, str(tmp_path / "unpaced"), pacing=False)
    refused = [r for r in unpaced_sim.requests if r["status"] == 429]
    # six starts sent at once in a window that takes five: the service refuses the sixth
    # (the client then waits its Retry-After and finishes all the same)
    assert refused and all(job_start_of(r["path"]) for r in refused), refused
    assert sorted(unpaced) == sorted(paced)


# -- 3. status calls within the budget -------------------------------------------------------------

#: 12 jobs pending at once (a snapshot and an incremental of each of the 6 tables) for 14 s:
#: the last starts about 1 s after the first (paced to 5 a 0.5 s window), and is first polled
#: 2.9 s later; from then on, every job is polled 2 or 3 times before any can be complete
BUDGET_DATA = dict(QUICK_OPTIONS, job_wait=14.0, job_run=0.2, no_rate_limits=False,
                   rate_window=0.5)


def test_polls_of_many_pending_jobs_are_stretched_to_stay_within_the_status_budget(
        make_simulator):
    sim = make_simulator(**BUDGET_DATA)
    sim.advance(1)
    since = parse_timestamp(sim.frontier)  # an incremental of the last step: its own job
    sim.advance(1)
    queries = [SnapshotQuery(ns, t) for ns, t in BOTH_NAMESPACES] + \
        [IncrementalQuery(ns, t, since) for ns, t in BOTH_NAMESPACES]
    credentials = resolve_credentials(client_id=sim.client_id, client_secret=sim.client_secret)
    with Client(sim.base_url, credentials, pace_window=0.5, rng=random.Random(3)) as dap:
        for query, job, exc in run_concurrently(queries, dap.run, len(queries)):
            assert exc is None and job.status == "complete", (query, exc)
    jobs = sim.service.jobs
    assert len(jobs) == len(queries)
    polls: Dict[str, List[float]] = {}
    for r in sim.requests:
        if is_status(r):
            polls.setdefault(r["path"][len("/dap/job/"):], []).append(r["time"])
    assert set(polls) == set(jobs)
    everyone_polled = max(times[0] for times in polls.values())  # all of them pending now
    none_complete = min(j.created + j.wait + j.run for j in jobs.values())
    least = len(queries) * 60.0 / policy.STATUS_BUDGET  # 2.88 s for 12 jobs
    pairs = [(job_id, a, b) for job_id, times in polls.items() for a, b in zip(times, times[1:])
             if a >= everyone_polled and b <= none_complete]
    too_close = [(job_id, round(b - a, 3)) for job_id, a, b in pairs if b - a < least]
    assert too_close == [], (least, too_close)
    # enough polls fell in that stretch for this to mean something (unstretched, the first
    # few come 0.5, 0.75, 1.1, 1.7 s apart)
    assert len(pairs) >= len(queries) // 2, (len(pairs), everyone_polled, none_complete)
    # so, scaled to the stretch, the status calls of all jobs stay within the budget
    inside = [t for times in polls.values() for t in times if everyone_polled <= t <= none_complete]
    span = none_complete - everyone_polled
    assert len(inside) <= span * policy.STATUS_BUDGET / 60.0 + len(queries)


# -- 4. SIGKILL during a concurrent run ------------------------------------------------------------

#: three tables of several parts each (5, 10 and 20), small jobs
KILL_DATA = dict(QUICK_OPTIONS, seed=7, job_wait=0.3, job_run=0.2, rows_per_part=20,
                 rows=dict(QUICK_OPTIONS["rows"], accounts=100, users=200, submissions=400))
KILL_TABLES = "accounts,users,submissions"
MID_DOWNLOAD_KILLS = 6
TAIL_KILLS = 2


def wait_for(proc, condition, what: str, timeout: float = 60.0) -> bool:
    """Wait until `condition()` (True) or the process ended (False)."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if condition():
            return True
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail("%s did not happen in %.0f s" % (what, timeout))
        time.sleep(0.002)
    return False


def sigkill(proc) -> Optional[int]:
    """None when the kill landed, else the exit status the process had ended with."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return None if proc.returncode == -signal.SIGKILL else proc.returncode


class Killer:
    """`bin/dap ARGS` against `sim`, killed at the k-th object download or after the last."""

    def __init__(self, sim, gate: Optional[Gate] = None, env=None) -> None:
        self.sim, self.gate, self.env = sim, gate, env or support.environment(sim)

    def start(self, args):
        return subprocess.Popen(support.dap_command(args), env=self.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def clean(self, args) -> Tuple[int, float]:
        """A whole run: (object downloads, seconds from the last one to the end)."""
        self.sim.clear_requests()
        run = subprocess.run(support.dap_command(args), env=self.env, capture_output=True,
                             timeout=120)
        ended = time.time()
        assert run.returncode == 0, run.stderr.decode()[-2000:]
        parts = [r for r in self.sim.requests if is_object(r)]
        return len(parts), max(0.0, ended - parts[-1]["time"])

    def mid_download(self, args, k: int) -> Optional[int]:
        """Kill while object download k+1 is held back (k were served)."""
        self.sim.clear_requests()
        self.gate.set(downloads, lambda: self.gate.count(downloads) <= k)
        try:
            proc = self.start(args)
            waiting = wait_for(proc, lambda: self.gate.count(downloads) > k,
                               "object download %d" % (k + 1))
            return sigkill(proc) if waiting else proc.returncode
        finally:
            self.gate.release()

    def after_last(self, args, parts: int, delay: float) -> Optional[int]:
        """Kill `delay` s after the last object download was answered."""
        self.sim.clear_requests()
        proc = self.start(args)

        def served() -> bool:
            done = [r for r in self.sim.requests if is_object(r)]
            return len(done) >= parts and all(r["status"] is not None for r in done)

        if not wait_for(proc, served, "the last object download"):
            return proc.returncode
        time.sleep(delay)
        return sigkill(proc)


def kill_plan(rng, parts: int, tail: float):
    plan = [("mid", k, 0.0) for k in sorted(rng.sample(range(1, parts), MID_DOWNLOAD_KILLS))]
    plan += [("tail", parts, rng.uniform(0.0, tail)) for _ in range(TAIL_KILLS)]
    rng.shuffle(plan)
    return plan


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_sigkill_during_a_concurrent_run_to_files_leaves_whole_outputs_and_a_rerun_converges(
        make_simulator, tmp_path, fmt):
    # the clean run, on a twin simulator: the same data, the same files
    twin = make_simulator(**KILL_DATA)
    clean_out, clean_state = str(tmp_path / "clean"), str(tmp_path / "clean.json")
    clean_args = support.query_args("snapshot", KILL_TABLES, fmt, "file", clean_out,
                                    state=clean_state, extra=["--concurrency", "3"])
    parts, tail = Killer(twin).clean(clean_args)
    reference = support.directory_contents(clean_out)
    with open(clean_state) as f:
        reference_state = {k: checks.strip_volatile(v)
                           for k, v in json.load(f)["checkpoints"].items()}
    assert parts >= 30 and len(reference_state) == 3

    sim = make_simulator(**KILL_DATA)
    gate = Gate(sim)
    killer = Killer(sim, gate)
    out, state = str(tmp_path / "out"), str(tmp_path / "state.json")
    args = support.query_args("snapshot", KILL_TABLES, fmt, "file", out, state=state,
                              extra=["--concurrency", "3"])
    rng = random.Random("concurrent-kills:%s" % fmt)
    landed = mid = 0
    saved: Dict[str, dict] = {}
    try:
        for kind, k, delay in kill_plan(rng, parts, tail):
            status = killer.mid_download(args, k) if kind == "mid" else \
                killer.after_last(args, k, delay)
            if kind == "mid":
                assert status is None, "the run ended (%s) with download %d held" % (status, k)
                mid += 1
            assert status in (None, 0), (kind, k, status)
            landed += status is None
            # whole outputs only, each the clean run's
            listing = checks.inspect_directory(out)
            assert listing.problems == [], listing.problems
            for name, data in support.directory_contents(out).items():
                assert data == reference.get(name), "%s is not the clean run's" % name
            # valid checkpoints, pointing at whole outputs; none lost
            got, problems = checks.check_state(state, listing)
            assert problems == [], problems
            now = {k: checks.strip_volatile(v) for k, v in (got or {}).get(
                "checkpoints", {}).items()}
            assert set(saved) <= set(now), (sorted(saved), sorted(now))
            assert all(v == reference_state[k] for k, v in now.items()), now
            saved = now
    finally:
        gate.close()
    assert mid == MID_DOWNLOAD_KILLS and landed >= mid
    rerun = support.run_dap(sim, args)
    assert rerun.returncode == 0, rerun
    assert support.directory_contents(out) == reference
    with open(state) as f:
        assert {k: checks.strip_volatile(v) for k, v in json.load(f)["checkpoints"].items()} \
            == reference_state


# -- SIGKILL during syncdb --table all into SQLite -------------------------------------------------

#: the five canvas tables; two steps of 40 changes make incrementals of several parts each
SYNC_DATA = dict(QUICK_OPTIONS, seed=3, rows_per_part=10, changes_per_step=40)
SYNC_KILLS = (4, 2)  # mid-download, after the last part
BOOKKEEPING = {"instructure_dap__table_sync", "instructure_dap__database_version",
               "sqlite_sequence"}


def sqlite_tables(path: str):
    """table -> (its rows as sorted JSON, its bookkeeping row without the id, which numbers
    rows in completion order); and the names of any other table in the file."""
    conn = sqlite3.connect(path)
    try:
        names = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        state = {}
        for table in CANVAS:
            rows = sorted(json.dumps(list(r), default=str) for r in conn.execute(
                'SELECT * FROM "canvas__%s"' % table))
            book = conn.execute(
                "SELECT source_namespace, source_table, timestamp, schema_version, target_schema, "
                "target_table, schema_description_format, schema_description FROM "
                "instructure_dap__table_sync WHERE source_namespace = 'canvas' AND "
                "source_table = ?", (table,)).fetchall()
            state[table] = (rows, book)
    finally:
        conn.close()
    return state, sorted(names - BOOKKEEPING - {"canvas__" + t for t in CANVAS})


def test_sigkill_during_a_concurrent_syncdb_leaves_each_table_before_or_after_and_a_rerun_converges(
        make_simulator, tmp_path):
    sim = make_simulator(**SYNC_DATA)
    gate = Gate(sim)
    pristine, main_db, ref_db = (str(tmp_path / n) for n in ("pristine.db", "replica.db",
                                                              "reference.db"))
    env = support.environment(sim)
    main = Killer(sim, gate, dict(env, DAP_CONNECTION_STRING="sqlite:///" + main_db))
    ref = Killer(sim, gate, dict(env, DAP_CONNECTION_STRING="sqlite:///" + ref_db))
    init = ["initdb", "--namespace", "canvas", "--table", "all", "--lock-wait", "60"]
    sync = ["syncdb"] + init[1:]
    ref.clean(init)
    shutil.copyfile(ref_db, pristine)
    before, extra = sqlite_tables(pristine)
    assert extra == []
    sim.advance(2)
    parts, tail = ref.clean(sync)  # the killed runs ask the same queries of the same data
    after, extra = sqlite_tables(ref_db)
    assert extra == [] and parts >= 20 and all(after[t] != before[t] for t in CANVAS)
    rng = random.Random("concurrent-syncdb-kills")
    plan = [("mid", k, 0.0) for k in sorted(rng.sample(range(1, parts), SYNC_KILLS[0]))]
    plan += [("tail", parts, rng.uniform(0.0, tail)) for _ in range(SYNC_KILLS[1])]
    outcomes = []
    try:
        for kind, k, delay in plan:
            # each kill from the state before the run, as on a fresh night: the service
            # forgets the queries it was asked (so a rerun's empty windows are new jobs, not
            # old empty ones that dap would rightly ask again for, at a job start each, paced
            # to DAP's 5 a minute); the same data, the same parts
            shutil.copyfile(pristine, main_db)
            with sim.service._lock:
                sim.service.dedup.clear()
            status = main.mid_download(sync, k) if kind == "mid" else \
                main.after_last(sync, k, delay)
            if kind == "mid":
                assert status is None, "the run ended (%s) with download %d held" % (status, k)
            assert status in (None, 0), (kind, k, status)
            now, extra = sqlite_tables(main_db)
            assert extra == [], extra
            moved = []
            for table in CANVAS:
                assert now[table] in (before[table], after[table]), (
                    "%s after a kill at %s %d: %d rows, bookkeeping %s" % (
                        table, kind, k, len(now[table][0]), [b[:4] for b in now[table][1]]))
                moved.append(now[table] == after[table])
            outcomes.append((kind, k, status, sum(moved)))
            # the rerun converges: tables already moved ask an empty window and stay
            main.clean(sync)
            assert sqlite_tables(main_db) == (after, []), (kind, k)
    finally:
        gate.close()


# -- 5. several tables to stdout -------------------------------------------------------------------

#: every table in several parts (4 to 60), jobs held pending together
STDOUT_DATA = dict(QUICK_OPTIONS, job_wait=1.0, job_run=0.1, rows_per_part=50,
                   rows=dict(QUICK_OPTIONS["rows"], accounts=200, courses=300, users=1500,
                             enrollments=2000, submissions=3000))


class Interleaver:
    """Gives several tables' records every chance to interleave on stdout if dap let them:
    the first table to download gets its first part, and its next one waits until a part of
    another table has been served and a moment more (3 s at most, once).  With dap writing
    one table at a time, nobody else downloads meanwhile and the wait runs out: it costs
    time, never the result."""

    def __init__(self, sim, wait: float = 3.0) -> None:
        self.sim, self.service, self.wait = sim, sim.service, wait
        self.record = self.service.record
        self.first = None
        self.done = False
        self.others: List[dict] = []
        self.lock = threading.Lock()
        self.service.record = self._record

    def _record(self, method, path, headers):
        entry = self.record(method, path, headers)
        if not path.startswith("/objects/"):
            return entry
        table = owner(self.sim, {"method": method, "path": path})
        with self.lock:
            if self.first is None:
                self.first = table
                return entry
            if table != self.first:
                self.others.append(entry)
                return entry
            if self.done:
                return entry
            self.done = True
        deadline = time.monotonic() + self.wait
        while time.monotonic() < deadline:
            if any(e["status"] is not None for e in self.others):
                time.sleep(0.2)  # that part is on its way to dap, and to stdout if allowed
                break
            time.sleep(0.005)
        return entry

    def close(self) -> None:
        self.service.record = self.record


def test_several_tables_to_stdout_never_interleave_and_each_comes_whole(make_simulator):
    sim = make_simulator(**STDOUT_DATA)
    gate = Gate(sim, timeout=20.0)  # every job started before any is seen complete
    gate.set(lambda m, p: p.startswith("/dap/job/"), lambda: gate.count(starts) >= 4)
    interleaver = Interleaver(sim)
    try:
        run = support.run_dap(sim, ["snapshot", "--namespace", "canvas", "--table", "all",
                                    "--format", "jsonl", "--output", "-", "--concurrency", "4"])
    finally:
        interleaver.close()
        gate.close()
    assert run.returncode == 0, run
    assert not gate.expired
    lines = run.stdout.decode("utf-8").split("\n")
    assert lines[-1] == ""  # ends with a newline
    records = [json.loads(line) for line in lines[:-1]]  # every line is one JSON record
    tables = [r.pop("table") for r in records]
    # each table's records in one block: the table changes only between blocks
    blocks = [t for i, t in enumerate(tables) if i == 0 or tables[i - 1] != t]
    assert sorted(blocks) == sorted("canvas." + t for t in CANVAS), blocks
    # ... and each block is that table's output alone, part after part
    for table in CANVAS:
        alone = support.run_dap(sim, ["snapshot", "--namespace", "canvas", "--table", table,
                                      "--format", "jsonl", "--output", "-"])
        assert alone.returncode == 0, alone
        assert [r for r, t in zip(records, tables) if t == "canvas." + table] == alone.lines
