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

from . import checks

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DAP = os.path.join(ROOT, "bin", "dap")
NAMESPACE = "canvas"

#: the data every simulator of these tests shares (faults come on top): small tables, quick
#: jobs, a frontier that moves only by `sim.advance()`, several parts per result.
DATA_OPTIONS = dict(
    seed=18,
    job_wait=0.05,
    job_run=0.05,
    no_rate_limits=True,
    advance_per_job=0,
    rows={"accounts": 20, "users": 60, "courses": 20, "enrollments": 150, "submissions": 250,
          "web_logs": 200},
    rows_per_part=40,
)

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
    proc = start_dap(sim, args, cwd)
    try:
        proc.wait(timeout=delay)
        return proc.returncode
    except subprocess.TimeoutExpired:
        pass
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if proc.returncode == -signal.SIGKILL:
        return None
    return proc.returncode  # pragma: no cover - it ended between the timeout and the kill


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
    out = {}
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
