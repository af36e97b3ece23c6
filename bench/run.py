"""Benchmark: a snapshot of a large `submissions` table into every format, dap beside a reference.

Both sides run as child processes against one simulator started here, in the same run, and
fetch the very same job (the service deduplicates identical queries), so they download the
same bytes. The reference (bench/reference.py) is a bare urllib3 + zlib loop that writes one
file; dap is `bin/dap snapshot` with everything it does on top (merging, counting, atomic
files, the metadata sidecar). Reported per format: median wall time, rows/s, peak RSS (from
the kernel's accounting of each child), and dap's ratio to the reference. dap runs twice in
each round, with the extra `fast` (isal, as installed) and without it
(`DAP_NO_FAST=1`), side by side (Parquet a third time, with a worker process:
`DAP_PARQUET_WORKERS=1`), and the outputs are compared byte for byte; dap's peak
RSS is also given for its whole process tree (Parquet's worker process included), and the
tree's PSS (pages shared by the forked worker and dap counted once), sampled every 20 ms.
Also the start-up time of `bin/dap --help` beside a bare interpreter start.

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

from bench import common

ROOT, RESULTS = common.ROOT, common.RESULTS
CLIENT_ID, SECRET = "us-east-1#demo", "demo-secret"
GOALS = {"wall_ratio_fast": 1.0, "wall_ratio": 1.3, "parquet_ratio": 4.0, "rss_mib": 100.0,
         "help_ms": 100.0}
#: dap with the extra fast (as installed) and without it (the standard library's zlib, json)
VARIANTS = (("fast", {}), ("std", {"DAP_NO_FAST": "1"}))
#: Parquet also with a worker process typing its chunks (off by default, see parquet.py)
PARQUET_VARIANTS = VARIANTS + (("worker", {"DAP_PARQUET_WORKERS": "1"}),)
#: what dap asks DAP for, and so the reference downloads: Parquet is written from TSV
WIRE = {"jsonl": "jsonl", "json": "jsonl", "parquet": "tsv", "csv": "csv", "tsv": "tsv"}


def measure_rss(argv, env=None, on_start=None):
    """Run a child to completion: (wall seconds, its peak RSS in MiB, its stdout);
    ``on_start(pid)`` is called once it runs.

    The RSS is the child's own, from wait4 (Linux reports KiB); a failure stops the bench.
    """
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=err)
        if on_start is not None:
            on_start(child.pid)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        child.returncode = status  # reaped here; keeps Popen from waiting again
        if status != 0:
            err.seek(0)
            raise SystemExit(f"bench: {' '.join(map(str, argv))} failed:\n"
                             f"{err.read().decode(errors='replace')}")
        out.seek(0)
        return wall, usage.ru_maxrss / 1024.0, out.read()


def _tree_memory_kib(pid):
    """The resident memory of ``pid`` and its descendants now, KiB (Linux /proc): the sum of
    their RSS (a page shared by two counts twice) and of their PSS (each shared page split
    between its sharers: what the tree takes of the machine)."""
    total, shared, todo = 0, 0, [pid]
    while todo:
        current = todo.pop()
        try:
            with open(f"/proc/{current}/smaps_rollup") as rollup:
                for line in rollup:
                    if line.startswith("Rss:"):
                        total += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        shared += int(line.split()[1])
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    todo.extend(int(c) for c in children.read().split())
        except (OSError, ValueError):
            continue  # gone meanwhile
    return total, shared


def measure_tree(argv, env=None):
    """``measure_rss`` and the peak RSS and PSS of the child's whole process tree (MiB,
    sampled every 20 ms): (wall seconds, own peak RSS, tree peak RSS, tree peak PSS, stdout)."""
    import threading
    peak, done = [0, 0], threading.Event()
    pids = []

    def sample():
        while not done.wait(0.02):
            if pids:
                rss, pss = _tree_memory_kib(pids[0])
                peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        wall, rss, out = measure_rss(argv, env, on_start=pids.append)
    finally:
        done.set()
        sampler.join()
    return wall, rss, max(rss, peak[0] / 1024.0), peak[1] / 1024.0, out


def start_simulator(rows, rows_per_part):
    return common.start_simulator([
        "--rows", f"submissions={rows}", "--rows-per-part", str(rows_per_part),
        "--no-rate-limits", "--job-wait", "0", "--job-run", "0", "--advance-per-job", "0"])


def bench_format(fmt, base_url, repeat, workdir):
    env = dict(os.environ, DAP_API_URL=base_url, DAP_CLIENT_ID=CLIENT_ID,
               DAP_CLIENT_SECRET=SECRET)
    env.pop("DAP_API_KEY", None)
    env.pop("DAP_NO_FAST", None)
    ref_out = workdir / f"reference.{WIRE[fmt]}"
    reference = [sys.executable, "-m", "bench.reference", base_url, CLIENT_ID, SECRET,
                 "canvas", "submissions", WIRE[fmt], str(ref_out)]

    def dap(directory):
        return [sys.executable, "bin/dap", "snapshot", "--table", "submissions", "--format",
                fmt, "--output-directory", str(directory)]

    measure_rss(reference)  # warm-up: the job is created and its parts made once, untimed
    variants = PARQUET_VARIANTS if fmt == "parquet" else VARIANTS
    ref_runs, runs, rows = [], {name: [] for name, _ in variants}, None
    for _ in range(repeat):  # each round: the reference, then dap with and without fast
        ref_runs.append(measure_rss(reference)[:2])
        for name, extra in variants:
            directory = workdir / f"dap-{name}"
            shutil.rmtree(directory, ignore_errors=True)
            wall, rss, tree, pss, out = measure_tree(dap(directory), dict(env, **extra))
            runs[name].append((wall, rss, tree, pss))
            rows = json.loads(out.decode().splitlines()[0])["rows"]
    # digests, not bytes: a bench process grown by a large output would pass its peak RSS
    # on to every child it starts after (Linux keeps the high-water mark across fork+exec)
    outputs = {name: {p.name: _digest(p) for p in (workdir / f"dap-{name}").iterdir()
                      if not p.name.endswith(".meta.json")} for name, _ in variants}
    ref_wall = statistics.median(w for w, _ in ref_runs)
    result = {"format": fmt, "rows": rows, "reference_wall_s": round(ref_wall, 3),
              "reference_rss_mib": round(max(r for _, r in ref_runs), 1),
              "identical": len({tuple(sorted(o.items())) for o in outputs.values()}) == 1,
              "output_bytes": sum(p.stat().st_size for p in (workdir / "dap-fast").iterdir()
                                  if not p.name.endswith(".meta.json"))}
    for name, _ in variants:
        wall = statistics.median(r[0] for r in runs[name])
        result.update({f"{name}_wall_s": round(wall, 3),
                       f"{name}_ratio": round(wall / ref_wall, 2),
                       f"{name}_rows_per_s": round(rows / wall),
                       f"{name}_rss_mib": round(max(r[1] for r in runs[name]), 1),
                       f"{name}_tree_rss_mib": round(max(r[2] for r in runs[name]), 1),
                       f"{name}_tree_pss_mib": round(max(r[3] for r in runs[name]), 1)})
    return result


def _digest(path):
    import hashlib
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fast_extras():
    """The accelerators of the extra fast that dap's interpreter has installed."""
    out = subprocess.run([sys.executable, "-c", "from dap_core.shell import fast; "
                          "print(','.join(fast.available()))"], cwd=ROOT, capture_output=True,
                         text=True).stdout.strip()
    return [name for name in out.split(",") if name]


def _load():
    """The machine's load average over the last minute (others' work shares its cores)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:  # pragma: no cover - no load average here
        return None


def bench_help(repeat=15):
    bare = [measure_rss([sys.executable, "-c", "pass"])[0] for _ in range(repeat)]
    helps = [measure_rss([sys.executable, "bin/dap", "--help"])[0] for _ in range(repeat)]
    return {"interpreter_ms": round(statistics.median(bare) * 1000, 1),
            "dap_help_ms": round(statistics.median(helps) * 1000, 1)}


def render(report):
    extras = ", ".join(report.get("fast") or []) or "none installed"
    lines = [f"# dap benchmark: snapshot of {report['rows']:,} submissions, "
             f"median of {report['repeat']} runs",
             "",
             f"fast: dap with the extra `fast` ({extras}); std: `DAP_NO_FAST=1` (zlib). "
             "Goals: jsonl/csv/tsv <= 1.0x with fast, <= 1.3x without; parquet <= 4x; "
             "RSS < 100 MiB.",
             "",
             "| format | reference s | dap fast s | ratio fast | dap std s | ratio std "
             "| rows/s fast | RSS MiB reference | RSS MiB fast (tree) | RSS MiB std (tree) "
             "| same bytes |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in report["formats"]:
        lines.append(f"| {r['format']} | {r['reference_wall_s']} | {r['fast_wall_s']} | "
                     f"{r['fast_ratio']} | {r['std_wall_s']} | {r['std_ratio']} | "
                     f"{r['fast_rows_per_s']:,} | {r['reference_rss_mib']} | "
                     f"{r['fast_rss_mib']} ({r['fast_tree_rss_mib']}) | "
                     f"{r['std_rss_mib']} ({r['std_tree_rss_mib']}) | "
                     f"{'yes' if r['identical'] else 'NO'} |")
    for r in report["formats"]:
        if "worker_wall_s" in r:
            lines += ["", f"{r['format']} with a worker process (`DAP_PARQUET_WORKERS=1`, "
                          f"fast): {r['worker_wall_s']} s, ratio {r['worker_ratio']}, RSS MiB "
                          f"{r['worker_rss_mib']} (tree {r['worker_tree_rss_mib']}, its PSS "
                          f"{r['worker_tree_pss_mib']}; without the worker, tree PSS "
                          f"{r['fast_tree_pss_mib']})"]
    h = report["help"]
    lines += ["", f"`bin/dap --help`: {h['dap_help_ms']} ms (goal < 100 ms); "
                  f"a bare `python -c pass`: {h['interpreter_ms']} ms"]
    if report.get("load"):
        lines += ["", "load average before / after: %s / %s" % tuple(report["load"])]
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

    load_before = _load()
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
              "formats": formats, "help": bench_help(), "goals": GOALS,
              "fast": fast_extras(), "load": [load_before, _load()]}
    common.save_report("latest", report, render(report))
    if args.databases:
        from bench import db
        db.main(["--rows", str(args.rows), "--rows-per-part", str(args.rows_per_part),
                 "--repeat", str(args.repeat), "--databases", args.databases])
    if args.pipeline:
        from bench import pipeline
        pipeline.main(["--quick"] if args.pipeline == "quick" else [])


if __name__ == "__main__":
    main()
