"""Helpers of the fault tests: run `bin/dap` as a person would (a subprocess against a
simulator on loopback), kill it, and compare what it left with a clean run.

Two simulators started with the same data options (seed, rows, parts, frontier) serve the
same records and the same virtual timestamps, so the same command gives byte-identical
data files on both; only job ids (uuid4) and paths differ, and `checks.strip_volatile`
drops those from metadata.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

from fixtures.simulator import QUICK_OPTIONS

from . import checks

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DAP = os.path.join(ROOT, "bin", "dap")
NAMESPACE = "canvas"

#: the data every simulator of these tests shares (faults come on top): small tables, quick
#: jobs, a frontier that moves only by `sim.advance()`, several parts per result.  The seed
#: also draws the faults: under 18, `--fail-429 0.3` and `--fail-5xx 0.4` fire at least once
#: and four times (so a bodyless 504 is among them) on the few API calls of a snapshot.
DATA_OPTIONS = dict(QUICK_OPTIONS, seed=18, rows_per_part=40)

#: the outputs the fault tests cover: (format, where)
FILE_FORMATS = ("jsonl", "csv", "tsv", "json")
STDOUT_FORMATS = ("jsonl", "csv")
OUTPUTS = [(f, "file") for f in FILE_FORMATS] + [(f, "stdout") for f in STDOUT_FORMATS]


def environment(sim) -> Dict[str, str]:
    """The process environment of `dap` for `sim`: its URL and credentials, nothing else of
    ours (no DAP_* variable of the caller leaks in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAP_")}
    env.update(DAP_API_URL=sim.base_url, DAP_CLIENT_ID=sim.client_id,
               DAP_CLIENT_SECRET=sim.client_secret, PYTHONDONTWRITEBYTECODE="1")
    return env


def dap_command(args: Sequence[str]) -> List[str]:
    return [sys.executable, DAP] + list(args)


class Run:
    """A finished `dap` process."""

    def __init__(self, args: Sequence[str], returncode: int, stdout: bytes,
                 stderr: bytes) -> None:
        self.args = list(args)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr.decode("utf-8", "replace")

    def __repr__(self) -> str:
        return "Run(dap %s -> %d; stderr %r)" % (" ".join(self.args), self.returncode,
                                                 self.stderr[-2000:])

    @property
    def lines(self) -> List[dict]:
        import json
        return [json.loads(line) for line in self.stdout.decode("utf-8").splitlines()
                if line.strip()]


def run_dap(sim, args: Sequence[str], cwd: Optional[str] = None, timeout: float = 120.0) -> Run:
    proc = subprocess.run(dap_command(args), env=environment(sim), cwd=cwd,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return Run(args, proc.returncode, proc.stdout, proc.stderr)


def start_dap(sim, args: Sequence[str], cwd: Optional[str] = None,
              stdout=subprocess.DEVNULL) -> subprocess.Popen:
    """`dap` running in the background; stderr goes to /dev/null and stdout to `stdout`
    (/dev/null unless given: a kill test looks at the files it leaves, not at what it
    said)."""
    return subprocess.Popen(dap_command(args), env=environment(sim), cwd=cwd,
                            stdout=stdout, stderr=subprocess.DEVNULL)


def kill(proc: subprocess.Popen) -> Optional[int]:
    """SIGKILL `proc` and reap it: None when the kill landed (it was still running), else
    the exit status it had already ended with."""
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return None if proc.returncode == -signal.SIGKILL else proc.returncode


class FullPipe:
    """A pipe whose buffer is full, for a process's stdout: the first thing it writes there
    blocks until the pipe is closed.  `dap` writes to stdout only its result line, after a
    table's output and checkpoint are in place, so a run given this stdout can go no further
    than that line: however fast it is, it is still running when a test kills it after
    seeing (in the files) that it got there.  Use as a context manager; `writer` is the end
    to hand to the process (closed here once it started: call `started()`)."""

    def __init__(self) -> None:
        self.reader, self.writer = os.pipe()
        os.set_blocking(self.writer, False)
        for size in (65536, 4096, 1):  # fill it to the last byte
            try:
                while True:
                    os.write(self.writer, b"\0" * size)
            except BlockingIOError:
                pass
        os.set_blocking(self.writer, True)  # the process's writes block, not fail

    def started(self) -> None:
        """The process has its own copy of the writing end: close ours."""
        if self.writer is not None:
            os.close(self.writer)
            self.writer = None

    def __enter__(self) -> "FullPipe":
        return self

    def __exit__(self, *exc) -> None:
        self.started()
        os.close(self.reader)


def wait_until(proc: subprocess.Popen, condition, what: str, timeout: float = 120.0) -> bool:
    """Wait until `condition()` holds (True) or `proc` ended first (False).  `timeout` only
    turns a run that hangs into a failure: no result depends on how long anything took."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            return bool(condition())
        if time.monotonic() > deadline:
            raise AssertionError("%s did not happen in %.0f s" % (what, timeout))
        time.sleep(0.002)
    return True


# -- holding back one answer of the simulator ---------------------------------------------------

class RequestGate:
    """Holds back the simulator's answer to one request until released, so that a test
    knows where a run is: waiting on a job start or poll, on its object URLs, on its k-th
    part (mid-download), on the next table's job (the previous table's output and checkpoint
    done).  It wraps the simulator's request recorder (`sim.service.record`), which every
    request passes before it is served; the held request is recorded (it shows in
    `sim.requests`) and answered once released.  `close()` (or leaving the `with` block)
    releases and unwraps.

    The database tests use it too (`tests/db/conftest.py`)."""

    def __init__(self, sim) -> None:
        import threading
        self.service = sim.service
        self._record = self.service.record
        self._lock = threading.Lock()
        self._matches = None
        self._nth = self._seen = 0
        self.held = threading.Event()
        self._open = threading.Event()
        self._open.set()
        self.service.record = self._recording

    def __enter__(self) -> "RequestGate":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def hold(self, matches, nth: int = 1) -> None:
        """Hold the `nth` request from now on for which `matches(method, path)`."""
        if nth < 1:
            raise ValueError("nth counts from 1")
        with self._lock:
            self._matches, self._nth, self._seen = matches, nth, 0
            self.held.clear()
            self._open.clear()

    def _recording(self, method, path, headers):
        entry = self._record(method, path, headers)
        with self._lock:
            hold = False
            if self._matches is not None and self._matches(method, path):
                self._seen += 1
                hold = self._seen == self._nth
        if hold:
            self.held.set()
            self._open.wait(300)
        return entry

    def wait_held(self, proc=None, timeout: float = 120.0) -> bool:
        """Wait until the request is held (True), or the process `proc` ended first (False).
        `timeout` only turns a run that never gets there into a failure."""
        deadline = time.monotonic() + timeout
        while not self.held.wait(0.005):
            if proc is not None and proc.poll() is not None:
                return self.held.is_set()
            if time.monotonic() > deadline:
                raise AssertionError("the request to hold did not come in %.0f s" % timeout)
        return True

    def release(self) -> None:
        with self._lock:
            self._matches = None
        self._open.set()

    def close(self) -> None:
        self.release()
        if self.service.record == self._recording:
            self.service.record = self._record


def job_start(table: Optional[str] = None, namespace: str = NAMESPACE):
    """Matches the request that starts a query job of `table` (of any table when None)."""
    prefix = "/dap/query/%s/table/" % namespace

    def matches(method: str, path: str) -> bool:
        path = path.split("?")[0]
        if method != "POST" or not path.startswith(prefix) or not path.endswith("/data"):
            return False
        return table is None or path == "%s%s/data" % (prefix, table)
    return matches


def object_urls(method: str, path: str) -> bool:
    """A request for pre-signed URLs of a job's objects."""
    return method == "POST" and path.split("?")[0] == "/dap/object/url"


def object_download(method: str, path: str) -> bool:
    return path.startswith("/objects/")


def temporaries(directory: str, name: str) -> List[str]:
    """Temporary files of an atomic write of `name` in `directory` (`.<name>.<random>.part`)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(n for n in names if checks.TEMP_NAME.match(n) and n.startswith("." + name + ".")
                  and n[len(name) + 2:-len(".part")].count(".") == 0)


def query_args(command: str, table: str, fmt: str, where: str, directory: str,
               state: Optional[str] = None, extra: Sequence[str] = ()) -> List[str]:
    args = [command, "--namespace", NAMESPACE, "--table", table, "--format", fmt]
    if where == "stdout":
        args += ["--output", "-"]
    else:
        args += ["--output-directory", directory]
    if state is not None:
        args += ["--state", state]
    return args + list(extra)


def directory_contents(directory: str) -> Dict[str, bytes]:
    """Final files of a directory (temporary files left out): name -> bytes, with sidecars
    reduced to their comparable part."""
    import json
    out: Dict[str, bytes] = {}
    if not os.path.isdir(directory):
        return out  # a run killed before it made the directory
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if checks.TEMP_NAME.match(name) or os.path.isdir(path):
            continue
        with open(path, "rb") as f:
            data = f.read()
        if name.endswith(checks.META_SUFFIX):
            data = json.dumps(checks.strip_volatile(json.loads(data)), sort_keys=True).encode()
        out[name] = data
    return out


def stdout_lines_comparable(run: Run) -> List[dict]:
    return [checks.strip_volatile(line) for line in run.lines]


def object_requests(sim) -> List[dict]:
    return [r for r in sim.requests if r["path"].startswith("/objects/")]


def credentials_on_downloads(sim) -> List[str]:
    """Paths of object downloads that carried a credential header (must be none)."""
    return [r["path"].split("?")[0] for r in object_requests(sim)
            if "authorization" in r["headers"] or "x-instauth" in r["headers"]]


# -- a chain of runs with kills and reruns (the chained-reconstruction test and the soak) ------

#: exit statuses a rerun may cure: retries exhausted (11), some tables failed (13)
TRANSIENT = (11, 13)


class Unrecovered(Exception):
    """A step that reruns did not complete."""


#: the moments at which `ChainDriver` kills a run, each reached by a protocol event (see
#: `ChainDriver.kill_at`)
MOMENTS = ("start", "urls", "download", "between", "checkpoint")


class ChainDriver:
    """Runs `dap snapshot|incremental --state FILE` steps into one directory, killing some
    attempts at chosen moments and rerunning until the step is complete; after every kill or
    failure it checks what was left (whole outputs only, valid checkpoints).

    A kill is driven by events, never by the clock, so it lands (the process is alive when
    SIGKILL comes) by construction; see :meth:`kill_at` for the moments.  A run that fails
    before it gets there (retries exhausted under faults) ends first: that attempt counts as
    a failure, not a kill.

    A step is complete when the checkpoint of every table moved.  ``rerun`` says what is
    run again after a kill or a failure: ``"remaining"`` (the default) only the tables whose
    checkpoint has not moved yet, as a person would; ``"all"`` the same command again, as
    cron would, so a table that had finished asks for an incremental from where the data
    ends, an empty window ``[u, u)``.  (The service deduplicates identical queries, so the
    next step's query of that table gets the same empty job back until it expires: the
    table lags behind; see ``verify``.)

    ``failing`` tables are expected to fail (`--fail-table`): they are left out of the
    completeness condition and of later incrementals.  ``problems`` collects every
    violation; ``kills`` (landed), ``landed`` (moment -> kills), ``runs``, ``failures``
    (exit status -> count) count what happened, ``unmoved`` the checkpoints a successful run
    left where they were, ``first_done`` the "between" kills that found the first table's
    checkpoint moved (with one table at a time, it is done before the next one starts)."""

    def __init__(self, sim, directory: str, tables: Sequence[str], rng, namespace: str = NAMESPACE,
                 max_reruns: int = 4, failing: Sequence[str] = (), transient=TRANSIENT,
                 rerun: str = "remaining") -> None:
        self.sim = sim
        self.directory = directory
        self.out = os.path.join(directory, "out")
        self.state = os.path.join(directory, "state.json")
        self.tables = list(tables)
        self.failing = set(failing)
        self.rng = rng
        self.namespace = namespace
        self.max_reruns = max_reruns
        self.transient = tuple(transient)
        self.rerun = rerun
        self.kills = 0
        self.landed: Dict[str, int] = {}
        self.first_done = 0
        self.runs = 0
        self.unmoved = 0
        self.failures: Dict[int, int] = {}
        self.problems: List[str] = []
        self.last_stderr = ""

    def checkpoints(self) -> Dict[str, str]:
        """table -> next_since of its checkpoint (what the state file says now)."""
        import json
        if not os.path.exists(self.state):
            return {}
        try:
            with open(self.state) as f:
                saved = json.load(f)
        except ValueError:
            return {}  # reported by check()
        return {cp.get("table"): cp.get("next_since")
                for cp in saved.get("checkpoints", {}).values() if isinstance(cp, dict)}

    def args(self, command: str, fmt: str, tables: Sequence[str]) -> List[str]:
        return query_args(command, ",".join(tables), fmt, "file", self.out, state=self.state)

    def check(self, when: str) -> checks.Listing:
        listing = checks.inspect_directory(self.out)
        _, state_problems = checks.check_state(self.state, listing)
        for problem in listing.problems + state_problems:
            self.problems.append("%s: %s" % (when, problem))
        return listing

    def _remaining(self, tables: Sequence[str], before: Dict[str, str]) -> List[str]:
        now = self.checkpoints()
        return [t for t in tables if t not in self.failing
                and (t not in now or now[t] == before.get(t))]

    def _failed(self, status: int, command: str) -> None:
        self.failures[status] = self.failures.get(status, 0) + 1
        if status not in self.transient:
            raise Unrecovered("%s failed with exit %d: %s" % (command, status,
                                                              self.last_stderr[-800:]))

    def moments_for(self, attempt: Sequence[str]) -> List[str]:
        """The moments at which a run of the tables `attempt` can be killed."""
        working = [t for t in attempt if t not in self.failing]
        if not working:
            return ["start"]
        if len(attempt) < 2:
            return [m for m in MOMENTS if m != "between"]
        return list(MOMENTS)

    def kill_at(self, moment: str, command: str, fmt: str, attempt: Sequence[str]
                ) -> Optional[int]:
        """Run `command` for the tables `attempt` and SIGKILL it at `moment`:

        * ``start``: its first job start is held (nothing written yet);
        * ``urls``: its first request for object URLs is held (an output begun, no part);
        * ``download``: its k-th part download is held, k drawn from 1 to the number of
          tables that have a result (each job has at least one part): mid-download;
        * ``between``: with ``--concurrency 1``, the second table's job start is held: the
          first table's output and checkpoint are done (unless its job failed), the second
          has not begun;
        * ``checkpoint``: stdout is a `FullPipe`, so the run stops at its first result line,
          written after a table's output and checkpoint; it is killed once a checkpoint of
          `attempt` moved (the other tables anywhere by then).

        Every other moment runs at the default --concurrency (tables at once).  None when
        the kill landed, else the exit status the run ended with first."""
        if moment not in self.moments_for(attempt):
            raise ValueError("no %r moment in a run of %s" % (moment, ", ".join(attempt)))
        args = self.args(command, fmt, attempt)
        if moment == "checkpoint":
            before = self.checkpoints()

            def moved() -> bool:
                now = self.checkpoints()
                return any(now.get(t) not in (None, before.get(t)) for t in attempt)
            with FullPipe() as pipe:
                proc = start_dap(self.sim, args, stdout=pipe.writer)
                pipe.started()
                if not wait_until(proc, moved, "a checkpoint of %s" % ", ".join(attempt)):
                    proc.wait()
                    return proc.returncode
                return kill(proc)
        working = [t for t in attempt if t not in self.failing]
        with RequestGate(self.sim) as gate:
            if moment == "start":
                gate.hold(job_start(namespace=self.namespace))
            elif moment == "urls":
                gate.hold(object_urls)
            elif moment == "download":
                gate.hold(object_download, nth=self.rng.randint(1, len(working)))
            else:  # between
                args = args + ["--concurrency", "1"]
                gate.hold(job_start(attempt[1], self.namespace))
            before = self.checkpoints()
            proc = start_dap(self.sim, args)
            if not gate.wait_held(proc):
                proc.wait()
                return proc.returncode
            if moment == "between" and attempt[0] not in self.failing:
                now = self.checkpoints()
                self.first_done += now.get(attempt[0]) not in (None, before.get(attempt[0]))
            return kill(proc)

    def step(self, command: str, fmt: str, kills: int = 0, between=None,
             moments: Optional[Sequence[str]] = None) -> None:
        """One step of the chain: ``kills`` attempts killed at moments drawn from ``rng``
        (or, given ``moments``, one attempt killed at each of them in turn), then runs until
        the step is complete.  ``between()`` is called after each kill (e.g. to move the
        data on before the rerun).  A kill after the last checkpoint completes the step: the
        moments left are not used."""
        if moments is not None:
            kills = len(moments)
        before = self.checkpoints()
        tables = list(self.tables)
        if command == "incremental":
            tables = [t for t in tables if t not in self.failing or t in before]
        attempt = tables
        for number in range(kills + self.max_reruns):
            self.runs += 1
            if number < kills:
                moment = moments[number] if moments is not None else \
                    self.rng.choice(self.moments_for(attempt))
                status = self.kill_at(moment, command, fmt, attempt)
                if status is None:
                    self.landed[moment] = self.landed.get(moment, 0) + 1
                self.last_stderr = ""
            else:
                run = run_dap(self.sim, self.args(command, fmt, attempt))
                status, self.last_stderr = run.returncode, run.stderr
            if status is None:
                self.kills += 1
                self.check("after a kill of %s" % command)
                if between is not None:
                    between()
            else:
                self.check("after %s ended with exit %d" % (command, status))
            remaining = self._remaining(tables, before)
            if not remaining:
                return
            if status == 0:
                # done, yet a checkpoint stayed: the service handed back an earlier job of
                # an empty window (see the class's doc); the table lags, nothing is lost
                self.unmoved += len(remaining)
                return
            if status is not None:
                self._failed(status, command)
            if self.rerun == "remaining":
                attempt = remaining
        raise Unrecovered("%s did not complete in %d runs: %s" % (
            command, kills + self.max_reruns, self.last_stderr[-800:]))

    def verify(self):
        """Rebuild each table from its chain of outputs (walked back from the checkpoint) and
        compare it with the simulator's current state.  Returns {table: (Comparison, changes
        applied twice, orphans, lagging)} where orphans are whole outputs of jobs outside the
        chain and lagging says that the chain ends before the frontier.  Chain problems go to
        ``problems``.  A failing table must have neither outputs nor a checkpoint.  No object
        download may have carried a credential header."""
        import json
        listing = self.check("at the end")
        with open(self.state) as f:
            saved = json.load(f)
        frontier = self.sim.frontier
        for path in credentials_on_downloads(self.sim):
            self.problems.append("the download of %s carried a credential header" % path)
        found = {}
        for table in self.tables:
            checkpoint = saved["checkpoints"].get("%s.%s" % (self.namespace, table))
            if table in self.failing:
                if checkpoint is not None or listing.outputs(self.namespace, table):
                    self.problems.append("%s failed every job but has outputs or a checkpoint"
                                         % table)
                continue
            if checkpoint is None:
                self.problems.append("%s has no checkpoint" % table)
                continue
            chain, problems = checks.chain_of(listing, self.namespace, table, checkpoint)
            self.problems.extend(problems)
            got, duplicated = checks.reconstruct(self.out, chain)
            end = checkpoint["next_since"]
            truth = self.sim.current_state(self.namespace, table)
            jobs = {m.get("job_id") for m in chain}
            orphans = [m["file"] for m in listing.outputs(self.namespace, table)
                       if m.get("job_id") not in jobs]
            found[table] = (checks.compare_states(got, truth), duplicated, orphans,
                            end != frontier)
        return found
