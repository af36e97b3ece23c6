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

    def __init__(self, args: Sequence[str], returncode: int, stdout: bytes, stderr: bytes,
                 seconds: float) -> None:
        self.args = list(args)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr.decode("utf-8", "replace")
        self.seconds = seconds

    def __repr__(self) -> str:
        return "Run(dap %s -> %d; stderr %r)" % (" ".join(self.args), self.returncode,
                                                 self.stderr[-2000:])

    @property
    def lines(self) -> List[dict]:
        import json
        return [json.loads(line) for line in self.stdout.decode("utf-8").splitlines()
                if line.strip()]


def run_dap(sim, args: Sequence[str], cwd: Optional[str] = None, timeout: float = 120.0) -> Run:
    started = time.monotonic()
    proc = subprocess.run(dap_command(args), env=environment(sim), cwd=cwd,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return Run(args, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)


def start_dap(sim, args: Sequence[str], cwd: Optional[str] = None) -> subprocess.Popen:
    """`dap` running in the background; stdout and stderr go to /dev/null (a kill test
    looks at the files it leaves, not at what it said)."""
    return subprocess.Popen(dap_command(args), env=environment(sim), cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_and_kill(sim, args: Sequence[str], delay: float, cwd: Optional[str] = None) -> Optional[int]:
    """Start `dap`, SIGKILL it after `delay` seconds.  Returns None when the kill landed
    (the process was still running), else the exit status it had already finished with."""
    return _kill_after(start_dap(sim, args, cwd), delay)


def _kill_after(proc, delay: float) -> Optional[int]:
    """SIGKILL `proc` in `delay` seconds: None when the kill landed, else the exit status it
    had already finished with."""
    try:
        proc.wait(timeout=delay)
        return proc.returncode
    except subprocess.TimeoutExpired:
        pass
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return None if proc.returncode == -signal.SIGKILL else proc.returncode


def run_and_kill_while_writing(sim, args: Sequence[str], directory: str, delay: float,
                               timeout: float = 60.0) -> Optional[int]:
    """Start `dap`, wait until a new temporary output file with data in it shows up in
    `directory` (the download is under way), then SIGKILL it `delay` seconds later.  Returns
    None when the kill landed, else the exit status it had already finished with."""
    stale = set(os.listdir(directory)) if os.path.isdir(directory) else set()
    proc = start_dap(sim, args)
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if _writing(directory, stale):
            break
        time.sleep(0.001)
    if proc.poll() is not None:
        return proc.returncode
    return _kill_after(proc, delay)


def _writing(directory: str, stale) -> bool:
    """A temporary data file (not a sidecar's, not one left by an earlier run) has bytes."""
    try:
        names = os.listdir(directory)
    except OSError:
        return False
    for name in names:
        if name not in stale and checks.TEMP_NAME.match(name) and checks.META_SUFFIX + "." not in name:
            try:
                if os.path.getsize(os.path.join(directory, name)) > 0:
                    return True
            except OSError:
                pass
    return False


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


class ChainDriver:
    """Runs `dap snapshot|incremental --state FILE` steps into one directory, killing some
    attempts at random moments and rerunning until the step is complete; after every kill or
    failure it checks what was left (whole outputs only, valid checkpoints).

    A step is complete when the checkpoint of every table moved.  ``rerun`` says what is
    run again after a kill or a failure: ``"remaining"`` (the default) only the tables whose
    checkpoint has not moved yet, as a person would; ``"all"`` the same command again, as
    cron would, so a table that had finished asks for an incremental from where the data
    ends, an empty window ``[u, u)``.  (The service deduplicates identical queries, so the
    next step's query of that table gets the same empty job back until it expires: the
    table lags behind; see ``verify``.)

    ``failing`` tables are expected to fail (`--fail-table`): they are left out of the
    completeness condition and of later incrementals.  ``problems`` collects every
    violation; ``kills``, ``runs``, ``failures`` (exit status -> count) count what happened,
    ``unmoved`` the checkpoints a successful run left where they were."""

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
        self.runs = 0
        self.unmoved = 0
        # how long the last whole run took: "any moment" kills aim inside such a run, since a
        # kill timed after the process ended proves nothing (downloads got fast on loopback)
        self.run_seconds: Optional[float] = None
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

    def step(self, command: str, fmt: str, kills: int = 0, max_delay: float = 2.0,
             between=None) -> None:
        """One step of the chain: ``kills`` attempts killed at a random moment, half of them
        in [0, max_delay) after the start, half within 0.2 s after an output file got its
        first bytes (an attempt may end first), then runs until the step is complete.
        ``between()`` is called after each kill (e.g. to move the data on before the
        rerun)."""
        before = self.checkpoints()
        tables = list(self.tables)
        if command == "incremental":
            tables = [t for t in tables if t not in self.failing or t in before]
        attempt = tables
        for number in range(kills + self.max_reruns):
            args = self.args(command, fmt, attempt)
            self.runs += 1
            if number < kills:
                if self.rng.random() < 0.5:  # at any moment
                    latest = max_delay if self.run_seconds is None else \
                        min(max_delay, 0.9 * self.run_seconds)
                    status = run_and_kill(self.sim, args, self.rng.uniform(0.0, latest))
                else:  # while it writes: after the first bytes of an output
                    status = run_and_kill_while_writing(self.sim, args, self.out,
                                                        self.rng.uniform(0.0, 0.2))
                self.last_stderr = ""
            else:
                started = time.monotonic()
                run = run_dap(self.sim, args)
                status, self.last_stderr = run.returncode, run.stderr
                if status == 0:
                    self.run_seconds = time.monotonic() - started
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
        compare it with the simulator's current state.  Returns {table: (Comparison, changes applied twice, orphans, lagging)}
        where orphans are whole outputs of jobs outside the chain and lagging says that the
        chain ends before the frontier.  Chain problems go to ``problems``.  A failing table
        must have neither outputs nor a checkpoint.  No object download may have carried a
        credential header."""
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
