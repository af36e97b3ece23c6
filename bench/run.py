"""Benchmark: a snapshot of a large `submissions` table into every format, dap beside a reference.

Both sides run as child processes against one simulator started here, in the same run, and
fetch the very same job (the service deduplicates identical queries), so they download the
same bytes. The reference (bench/reference.py) is a bare urllib3 + zlib loop that writes one
file; dap is `bin/dap snapshot` with everything it does on top (merging, counting, atomic
files, the metadata sidecar). Reported per format: median wall time, rows/s, peak RSS (from
the kernel's accounting of each child), and dap's ratio to the reference. Also the start-up
time of `bin/dap --help` beside a bare interpreter start.

    python -m bench.run [--rows N] [--rows-per-part N] [--repeat N] [--formats jsonl,csv,...]
                        [--databases sqlite,postgresql,mysql]

Results go to bench/results/latest.json and bench/results/latest.md (and are printed). Then
the database benchmark (bench/db.py: initdb and syncdb, results in bench/results/db.*) runs
with the same rows and repeats, unless --databases is empty; then the pipeline benchmark
(bench/pipeline.py: many tables at once, notice latency; bench/results/pipeline.*), unless
--pipeline is empty (--pipeline quick: its short version).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CLIENT_ID, SECRET = "us-east-1#demo", "demo-secret"
GOALS = {"wall_ratio": 1.5, "rss_mib": 100.0, "help_ms": 100.0}
WIRE = {"jsonl": "jsonl", "json": "jsonl", "parquet": "jsonl", "csv": "csv", "tsv": "tsv"}


def measure_rss(argv, env=None):
    """Run a child to completion: (wall seconds, its peak RSS in MiB, its stdout).

    The RSS is the child's own, from wait4 (Linux reports KiB); a failure stops the bench.
    """
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        child.returncode = status  # reaped here; keeps Popen from waiting again
        if status != 0:
            err.seek(0)
            raise SystemExit(f"bench: {' '.join(map(str, argv))} failed:\n"
                             f"{err.read().decode(errors='replace')}")
        out.seek(0)
        return wall, usage.ru_maxrss / 1024.0, out.read()


def start_simulator(rows, rows_per_part):
    argv = [sys.executable, "-m", "fixtures.simulator", "--port", "0",
            "--rows", f"submissions={rows}", "--rows-per-part", str(rows_per_part),
            "--no-rate-limits", "--job-wait", "0", "--job-run", "0", "--advance-per-job", "0"]
    sim = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           text=True)
    base_url = sim.stdout.readline().strip()
    if not base_url.startswith("http"):
        sim.kill()
        raise SystemExit("bench: the simulator did not start")
    return sim, base_url


def bench_format(fmt, base_url, repeat, workdir):
    env = dict(os.environ, DAP_API_URL=base_url, DAP_CLIENT_ID=CLIENT_ID,
               DAP_CLIENT_SECRET=SECRET)
    env.pop("DAP_API_KEY", None)
    ref_out = workdir / f"reference.{WIRE[fmt]}"
    reference = [sys.executable, "-m", "bench.reference", base_url, CLIENT_ID, SECRET,
                 "canvas", "submissions", WIRE[fmt], str(ref_out)]
    dap_dir = workdir / "dap"
    dap = [sys.executable, "bin/dap", "snapshot", "--table", "submissions", "--format", fmt,
           "--output-directory", str(dap_dir)]

    measure_rss(reference)  # warm-up: the job is created and its parts made once, untimed
    ref_runs, dap_runs, rows = [], [], None
    for _ in range(repeat):
        ref_runs.append(measure_rss(reference)[:2])
        shutil.rmtree(dap_dir, ignore_errors=True)
        wall, rss, out = measure_rss(dap, env)
        dap_runs.append((wall, rss))
        rows = json.loads(out.decode().splitlines()[0])["rows"]
    ref_wall = statistics.median(w for w, _ in ref_runs)
    dap_wall = statistics.median(w for w, _ in dap_runs)
    return {
        "format": fmt,
        "rows": rows,
        "reference_wall_s": round(ref_wall, 3),
        "dap_wall_s": round(dap_wall, 3),
        "wall_ratio": round(dap_wall / ref_wall, 2),
        "dap_rows_per_s": round(rows / dap_wall),
        "reference_rss_mib": round(max(r for _, r in ref_runs), 1),
        "dap_rss_mib": round(max(r for _, r in dap_runs), 1),
        "output_bytes": sum(p.stat().st_size for p in dap_dir.iterdir() if not p.name.endswith(".meta.json")),
    }


def bench_help(repeat=15):
    bare = [measure_rss([sys.executable, "-c", "pass"])[0] for _ in range(repeat)]
    helps = [measure_rss([sys.executable, "bin/dap", "--help"])[0] for _ in range(repeat)]
    return {"interpreter_ms": round(statistics.median(bare) * 1000, 1),
            "dap_help_ms": round(statistics.median(helps) * 1000, 1)}


def render(report):
    lines = [f"# dap benchmark: snapshot of {report['rows']:,} submissions, "
             f"median of {report['repeat']} runs",
             "",
             "| format | reference s | dap s | ratio (goal <= 1.5 for jsonl/csv/tsv) | dap rows/s "
             "| reference RSS MiB | dap RSS MiB (goal < 100) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in report["formats"]:
        lines.append(f"| {r['format']} | {r['reference_wall_s']} | {r['dap_wall_s']} | "
                     f"{r['wall_ratio']} | {r['dap_rows_per_s']:,} | {r['reference_rss_mib']} | "
                     f"{r['dap_rss_mib']} |")
    h = report["help"]
    lines += ["", f"`bin/dap --help`: {h['dap_help_ms']} ms (goal < 100 ms); "
                  f"a bare `python -c pass`: {h['interpreter_ms']} ms"]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rows-per-part", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--formats", default="jsonl,csv,tsv,json,parquet")
    parser.add_argument("--databases", default="sqlite,postgresql,mysql",
                        help="then bench/db.py into these databases ('' for none)")
    parser.add_argument("--pipeline", default="full", choices=("full", "quick", ""),
                        help="then bench/pipeline.py, in full or quick ('' for none)")
    args = parser.parse_args(argv)

    sim, base_url = start_simulator(args.rows, args.rows_per_part)
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="dap-bench-"))
    try:
        formats = [bench_format(f, base_url, args.repeat, workdir)
                   for f in args.formats.split(",")]
    finally:
        sim.terminate()
        sim.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    report = {"rows": args.rows, "rows_per_part": args.rows_per_part, "repeat": args.repeat,
              "python": sys.version.split()[0], "cpus": os.cpu_count(),
              "formats": formats, "help": bench_help(), "goals": GOALS}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2) + "\n")
    text = render(report)
    (RESULTS / "latest.md").write_text(text)
    print(text)
    if args.databases:
        from bench import db
        db.main(["--rows", str(args.rows), "--rows-per-part", str(args.rows_per_part),
                 "--repeat", str(args.repeat), "--databases", args.databases])
    if args.pipeline:
        from bench import pipeline
        pipeline.main(["--quick"] if args.pipeline == "quick" else [])


if __name__ == "__main__":
    main()
