"""Benchmark of the concurrent pipeline (#11): many tables at once, noticed at once.

Against simulators started here as subprocesses, with the contract's rate limits on (5 job
starts a minute) and jobs that take a while (`--job-wait` + `--job-run`):

* `dap snapshot --table all` over the simulator's canvas tables with jobs of about 30 s,
  beside the same run with `--concurrency 1`, and with `--concurrency 5` (every table at
  once; each run on its own simulator, all at once): wall times and their ratio to
  `--concurrency 1` (goal <= 0.5), peak RSS of each dap process (goal < 100 MiB);
* the notice latency after completion for jobs of 5, 30 and 120 s: from the moment the
  simulator marks a job complete (its start's arrival + wait + run) to dap's first status
  poll that finds it so, and to the first object-URL request after that poll (goal <= 5 s).
  Three tables per run (each table's job id comes from dap's result lines), one run per
  job length, on simulators of their own, all at once.

    python -m bench.pipeline [--quick] [--job-seconds S] [--latencies 5,30,120] [--rows N]

`--quick` makes jobs short (6 s for `--table all`, 2/5/10 s for the latency) and tables small:
about half a minute instead of about three. Results go to bench/results/pipeline.json and
bench/results/pipeline.md (and are printed). Everything runs at once because it mostly
waits for jobs; the machine's load average is recorded beside the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from bench import common

ROOT, RESULTS = common.ROOT, common.RESULTS
CLIENT_ID, SECRET = "us-east-1#demo", "demo-secret"
GOALS = {"concurrency_ratio": 0.5, "notice_latency_s": 5.0, "rss_mib": 100.0}
LATENCY_TABLES = ("accounts", "users", "courses")


def start_simulator(job_seconds: float, rows: int, rows_per_part: int):
    """A simulator subprocess with the contract's rate limits: (process, base URL)."""
    wait = round(job_seconds / 3.0, 3)
    return common.start_simulator([
        "--job-wait", str(wait), "--job-run", str(round(job_seconds - wait, 3)),
        "--rows", "submissions=%d" % rows, "--rows-per-part", str(rows_per_part),
        "--advance-per-job", "0"])


def requests_of(base_url: str):
    with urllib.request.urlopen(base_url + "/__simulator__/requests", timeout=30) as answer:
        return json.loads(answer.read().decode("utf-8"))


def run_dap(base_url: str, args, workdir: pathlib.Path) -> dict:
    """`bin/dap ARGS` to completion: wall seconds, its peak RSS (MiB, from wait4), stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAP_")}
    env.update(DAP_API_URL=base_url, DAP_CLIENT_ID=CLIENT_ID, DAP_CLIENT_SECRET=SECRET)
    argv = [sys.executable, str(ROOT / "bin" / "dap")] + list(args)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        child = subprocess.Popen(argv, cwd=workdir, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = status  # reaped here
        out.seek(0)
        err.seek(0)
        if status != 0:
            raise SystemExit("bench: dap %s failed (%d):\n%s" % (
                " ".join(args), status, err.read().decode("utf-8", "replace")[-2000:]))
        return {"wall_s": wall, "rss_mib": usage.ru_maxrss / 1024.0,
                "lines": [json.loads(line) for line in out.read().decode().splitlines()
                          if line.strip()]}


def in_threads(tasks):
    """Run the callables at once; their results in order (the first error is raised)."""
    results, errors = [None] * len(tasks), []

    def call(index, task):
        try:
            results[index] = task()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(i, t)) for i, t in enumerate(tasks)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def table_all(job_seconds: float, rows: int, rows_per_part: int, workdir: pathlib.Path,
              concurrency=None) -> dict:
    """`snapshot --table all` on a simulator of its own."""
    sim, base_url = start_simulator(job_seconds, rows, rows_per_part)
    try:
        out = workdir / ("c%s" % (concurrency or "default"))
        args = ["snapshot", "--namespace", "canvas", "--table", "all", "--output-directory",
                str(out)]
        if concurrency is not None:
            args += ["--concurrency", str(concurrency)]
        run = run_dap(base_url, args, workdir)
        log = requests_of(base_url)
    finally:
        sim.terminate()
        sim.wait()
    starts = [r for r in log if r["method"] == "POST" and r["path"].endswith("/data")]
    return {"concurrency": concurrency, "wall_s": round(run["wall_s"], 1),
            "rss_mib": round(run["rss_mib"], 1), "tables": len(run["lines"]),
            "rows": sum(line["rows"] for line in run["lines"]),
            "job_starts": len(starts),
            "rate_limited": sum(1 for r in log if r["status"] == 429),
            "status_calls": sum(1 for r in log if r["path"].startswith("/dap/job/"))}


def latency(job_seconds: float, rows_per_part: int, workdir: pathlib.Path) -> dict:
    """Notice latency of LATENCY_TABLES' jobs of `job_seconds`, in one run."""
    sim, base_url = start_simulator(job_seconds, 1000, rows_per_part)
    try:
        out = workdir / ("latency-%g" % job_seconds)
        run = run_dap(base_url, ["snapshot", "--namespace", "canvas", "--table",
                                 ",".join(LATENCY_TABLES), "--output-directory", str(out)],
                      workdir)
        log = requests_of(base_url)
    finally:
        sim.terminate()
        sim.wait()
    job_of = {line["table"]: line["job_id"] for line in run["lines"]}
    start_of = {r["path"].split("/")[-2]: r["time"] for r in log
                if r["method"] == "POST" and r["path"].endswith("/data")}
    urls = sorted(r["time"] for r in log if r["path"] == "/dap/object/url")
    polls_found, urls_found, polls = [], [], []
    for table in LATENCY_TABLES:
        complete = start_of[table] + job_seconds  # its arrival is no later than its creation
        mine = sorted(r["time"] for r in log if r["path"] == "/dap/job/" + job_of[table])
        polls.append(len(mine))
        noticed = next(t for t in mine if t >= complete)
        polls_found.append(noticed - complete)
        urls_found.append(next(t for t in urls if t >= noticed) - complete)
    return {"job_s": job_seconds, "tables": len(LATENCY_TABLES),
            "poll_latency_s": [round(x, 2) for x in polls_found],
            "url_latency_s": [round(x, 2) for x in urls_found],
            "url_latency_mean_s": round(sum(urls_found) / len(urls_found), 2),
            "url_latency_max_s": round(max(urls_found), 2),
            "polls_per_job": polls, "rss_mib": round(run["rss_mib"], 1),
            "wall_s": round(run["wall_s"], 1)}


def render(report: dict) -> str:
    conc, seq, every = report["table_all"]
    lines = [
        "# dap pipeline benchmark%s" % (" (quick)" if report["quick"] else ""),
        "",
        "`snapshot --table all` over the simulator's %d canvas tables (%s rows), jobs of %g s, "
        "the contract's rate limits (5 job starts a minute):" % (
            conc["tables"], "{:,}".format(conc["rows"]), report["job_seconds"]),
        "",
        "| run | wall s | job starts | 429s | status calls | dap RSS MiB (goal < 100) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in (("--concurrency %s (default)" % report["default_concurrency"], conc),
                    ("--concurrency 1", seq), ("--concurrency 5 (every table)", every)):
        lines.append("| %s | %s | %d | %d | %d | %s |" % (
            name, r["wall_s"], r["job_starts"], r["rate_limited"], r["status_calls"],
            r["rss_mib"]))
    lines += ["", "ratio to --concurrency 1: %.2f with the default (goal <= %.1f), %.2f with "
              "every table at once" % (report["concurrency_ratio"], GOALS["concurrency_ratio"],
                                       report["every_table_ratio"]),
              "",
              "Notice latency after completion (%d tables per run; seconds from the job's "
              "completion to dap's first status poll that finds it, and to its first URL "
              "request; goal <= %g s):" % (len(LATENCY_TABLES), GOALS["notice_latency_s"]),
              "",
              "| job s | to the poll | to the URL request | mean | max | polls per job "
              "| dap RSS MiB |",
              "| ---: | --- | --- | ---: | ---: | --- | ---: |"]
    for r in report["latency"]:
        lines.append("| %g | %s | %s | %s | %s | %s | %s |" % (
            r["job_s"], ", ".join(map(str, r["poll_latency_s"])),
            ", ".join(map(str, r["url_latency_s"])), r["url_latency_mean_s"],
            r["url_latency_max_s"], ", ".join(map(str, r["polls_per_job"])), r["rss_mib"]))
    lines += ["", "Load average before and after: %s / %s on %d CPUs; python %s; all runs "
              "at once (%g s in all)." % (report["load_before"], report["load_after"],
                                          report["cpus"], report["python"],
                                          report["seconds"])]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="short jobs and small tables (about half a minute)")
    parser.add_argument("--job-seconds", type=float, default=None,
                        help="job length for --table all (30; --quick 6)")
    parser.add_argument("--latencies", default=None,
                        help="job lengths for the notice latency (5,30,120; --quick 2,5,10)")
    parser.add_argument("--rows", type=int, default=None,
                        help="submissions rows (100000; --quick 10000)")
    parser.add_argument("--rows-per-part", type=int, default=10_000)
    args = parser.parse_args(argv)
    job_seconds = args.job_seconds or (6.0 if args.quick else 30.0)
    latencies = [float(x) for x in (args.latencies or ("2,5,10" if args.quick
                                                       else "5,30,120")).split(",")]
    rows = args.rows or (10_000 if args.quick else 100_000)

    from dap_core.shell.pipeline import DEFAULT_CONCURRENCY
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="dap-bench-pipeline-"))
    load_before = os.getloadavg()
    started = time.perf_counter()
    try:
        tasks = [lambda: table_all(job_seconds, rows, args.rows_per_part, workdir),
                 lambda: table_all(job_seconds, rows, args.rows_per_part, workdir, 1),
                 lambda: table_all(job_seconds, rows, args.rows_per_part, workdir, 5)]
        tasks += [lambda s=s: latency(s, args.rows_per_part, workdir) for s in latencies]
        results = in_threads(tasks)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    conc, seq, every = results[0], results[1], results[2]
    report = {
        "quick": args.quick, "job_seconds": job_seconds, "rows": rows,
        "rows_per_part": args.rows_per_part, "default_concurrency": DEFAULT_CONCURRENCY,
        "table_all": [conc, seq, every],
        "concurrency_ratio": round(conc["wall_s"] / seq["wall_s"], 2),
        "every_table_ratio": round(every["wall_s"] / seq["wall_s"], 2),
        "latency": results[3:],
        "seconds": round(time.perf_counter() - started),
        "load_before": " ".join("%.2f" % x for x in load_before),
        "load_after": " ".join("%.2f" % x for x in os.getloadavg()),
        "cpus": os.cpu_count(), "python": sys.version.split()[0], "goals": GOALS,
    }
    common.save_report("pipeline", report, render(report))
    return report


if __name__ == "__main__":
    main()
