"""The fault soak: many randomized runs of `bin/dap` against faulty simulators, each checked
for lost and duplicated changes.

Each run starts a fresh simulator (in process, in a worker process of its own) with a random
mix of faults (429s, 5xx including bodyless 504s, downloads cut mid-part, truncated and
corrupt gzip parts, expiring pre-signed URLs, tokens refused before `exp`, now and then a
table whose jobs fail), random data sizes, parts and job timings; then takes a snapshot of a
few tables and chains a few incrementals with `bin/dap ... --state FILE` (a subprocess, as a
person or cron would run it), the data moving on between them.  Some attempts are SIGKILLed
at a moment drawn at random and reached by a protocol event (a held job start, object URL
request, k-th part or next table's job, or a table's checkpoint: `support.ChainDriver`) and
rerun, sometimes after the data moved on again; a run that fails
(retries exhausted, exit 11) is rerun too, a few times at most.

A rerun is either of the tables not done yet (as a person would) or of the same command
(as cron would: a table already done then asks for an empty window).  After every kill or
failure the output directory is checked: only whole files under final names, a state file
whose checkpoints point at whole outputs.  A last, undisturbed incremental lets every table
catch up with the frontier; then each table is rebuilt by applying its outputs along the
chain (walked back from the checkpoint by `next_since`; `U` upserts by key, `D` removes) and
compared with the simulator's current state.  A run recovered when every table equals it.

Printed: runs, faults injected by kind, kills, runs that recovered, rows lost or duplicated
(must be 0), exit statuses met on the way, and leftovers.  The exit status is 1 when any
change was lost or duplicated, any run did not recover, or any check failed.

    python -m bench.soak [--runs 200] [--seed 1] [--jobs 4] [--verbose]
    make soak ARGS="--runs 50 --seed 7"

About 200 runs take a few minutes on 2 cores (the runs mostly wait: polls, Retry-After,
backoff; `--jobs` of them run side by side).
"""
from __future__ import annotations

import argparse
import collections
import os
import random
import shutil
import sys
import tempfile
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Dict, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

TABLES = ("accounts", "users", "courses", "enrollments", "submissions")
#: formats the rebuild can read back (csv/tsv/parquet are covered byte-for-byte by tests/faults)
FORMATS = ("jsonl", "json")


def plan(run_seed: int) -> Dict[str, Any]:
    """The random choices of one run, from its own seed (a run can be replayed alone)."""
    rng = random.Random(run_seed)
    tables = rng.sample(TABLES, rng.randint(1, 3))
    faults: Dict[str, Any] = {}
    if rng.random() < 0.4:
        faults["fail_429"] = round(rng.uniform(0.02, 0.12), 3)
    if rng.random() < 0.5:
        faults["fail_5xx"] = round(rng.uniform(0.03, 0.25), 3)
    if rng.random() < 0.5:
        faults["cut_download_after"] = rng.randint(100, 6000)
        faults["cut_download_times"] = rng.randint(1, 6)
    if rng.random() < 0.4:
        faults["truncate_parts"] = rng.randint(1, 3)
    if rng.random() < 0.4:
        faults["corrupt_parts"] = rng.randint(1, 3)
    if rng.random() < 0.3:
        faults["refuse_tokens_after"] = round(rng.uniform(0.5, 3.0), 2)
    if rng.random() < 0.3:
        faults["url_ttl"] = rng.choice((1, 2))
    if rng.random() < 0.1 and len(tables) > 1:
        faults["fail_table"] = (rng.choice(tables),)
    rows = {t: rng.randint(0, 400) for t in tables}
    return dict(
        seed=run_seed,
        tables=tables,
        simulator=dict(
            seed=rng.randint(0, 10 ** 6),
            rows=rows,
            rows_per_part=rng.choice((15, 40, 100, 500)),
            changes_per_step=rng.randint(1, 60),
            job_wait=rng.choice((0.0, 0.05, 0.2)),
            job_run=rng.choice((0.0, 0.05, 0.3)),
            advance_per_job=0,
            no_rate_limits=True,
            **faults),
        incrementals=rng.randint(2, 4),
        formats=[rng.choice(FORMATS) for _ in range(5)],
        kill_chance=0.35,
        rerun=rng.choice(("remaining", "all")),
        kill_seed=rng.randint(0, 10 ** 9),
    )


def soak_run(run_seed: int) -> Dict[str, Any]:
    """One run: its plan, what happened, what the rebuild found."""
    from fixtures.simulator import Simulator
    from tests.faults import support

    p = plan(run_seed)
    rng = random.Random(p["kill_seed"])
    result: Dict[str, Any] = dict(seed=run_seed, tables=p["tables"], faults={}, kills=0,
                                  dap_runs=0, failures={}, lost=0, duplicated=0, orphans=0,
                                  lagging=0,
                                  temporary=0, problems=[], recovered=False, error=None,
                                  options={k: v for k, v in p["simulator"].items()
                                           if k not in ("rows",)})
    directory = tempfile.mkdtemp(prefix="dap-soak-")
    sim = Simulator(**p["simulator"]).start()
    driver = None
    try:
        failing = p["simulator"].get("fail_table", ())
        # a failed run is rerun, as cron would, a few times at most: retries exhausted (11),
        # some tables failed (13), and a token refused twice (4) are counted in "exits on
        # the way"; anything else ends the run as not recovered
        driver = support.ChainDriver(sim, directory, p["tables"], rng, failing=failing,
                                     transient=(4, 11, 13), max_reruns=5, rerun=p["rerun"])

        def between() -> None:
            if rng.random() < 0.3:  # the data moves on before the rerun
                sim.advance()

        for index in range(1 + p["incrementals"]):
            command = "snapshot" if index == 0 else "incremental"
            if index:
                sim.advance()
            kills = rng.choice((1, 2)) if rng.random() < p["kill_chance"] else 0
            driver.step(command, p["formats"][index], kills=kills, between=between)
        # a last incremental, neither killed nor after new data: every table catches up
        # with the frontier (a table the last step's kill attempts left behind), and those
        # already there ask for an empty window; then all must equal the current state
        driver.step("incremental", p["formats"][0])
        found = driver.verify()
        for comparison, duplicated, orphans, lagging in found.values():
            result["lost"] += comparison.rows_lost
            result["duplicated"] += duplicated
            result["orphans"] += len(orphans)
            result["lagging"] += int(lagging)
        result["problems"] = driver.problems
        result["recovered"] = not driver.problems and result["lost"] == 0 and \
            result["duplicated"] == 0 and result["lagging"] == 0
    except Exception as exc:  # an unrecovered step, or a bug of the soak: reported, not raised
        result["error"] = "%s: %s" % (type(exc).__name__, exc) if isinstance(
            exc, support.Unrecovered) else traceback.format_exc()
    finally:
        if driver is not None:
            result["kills"] = driver.kills
            result["dap_runs"] = driver.runs
            result["failures"] = dict(driver.failures)
            if not result["problems"]:
                result["problems"] = list(driver.problems)
            out = os.path.join(directory, "out")
            if os.path.isdir(out):
                result["temporary"] = len([n for n in os.listdir(out)
                                           if n.startswith(".") and n.endswith(".part")])
        result["faults"] = {k: v for k, v in sim.fault_counts.items() if v}
        sim.stop()
        shutil.rmtree(directory, ignore_errors=True)
    return result


def summarize(results: List[Dict[str, Any]], seconds: float, out=sys.stdout) -> int:
    faults: Dict[str, int] = collections.Counter()
    failures: Dict[int, int] = collections.Counter()
    for r in results:
        faults.update(r["faults"])
        failures.update({int(k): v for k, v in r["failures"].items()})
    recovered = [r for r in results if r["recovered"]]
    unrecovered = [r for r in results if not r["recovered"]]
    lost = sum(r["lost"] for r in results)
    duplicated = sum(r["duplicated"] for r in results)
    problems = sum(len(r["problems"]) for r in results)
    with_faults = sum(1 for r in results if r["faults"])
    w = out.write
    w("dap fault soak: %d runs in %.0f s\n" % (len(results), seconds))
    w("  runs with faults fired:   %d\n" % with_faults)
    w("  faults injected by kind:  %s\n" % (", ".join(
        "%s %d" % (k, v) for k, v in sorted(faults.items())) or "none"))
    w("  dap processes run:        %d (%d SIGKILLed mid-run)\n" % (
        sum(r["dap_runs"] for r in results), sum(r["kills"] for r in results)))
    w("  exits on the way:         %s\n" % (", ".join(
        "exit %d x%d" % (k, v) for k, v in sorted(failures.items())) or "none"))
    w("  runs recovered:           %d of %d\n" % (len(recovered), len(results)))
    w("  rows lost:                %d\n" % lost)
    w("  changes duplicated:       %d\n" % duplicated)
    w("  check failures:           %d\n" % problems)
    w("  orphan outputs:           %d (whole, outside the chain: a kill after the rename, "
      "before the checkpoint)\n" % sum(r["orphans"] for r in results))
    w("  stale temporary files:    %d (left by SIGKILL)\n" % sum(r["temporary"]
                                                                 for r in results))
    w("  chains stalled:           %d (a table behind the frontier after the catch-up run)\n"
      % sum(r["lagging"] for r in results))
    for r in unrecovered[:10]:
        if r["lagging"] and not r["error"]:
            r["error"] = "%d table(s) stalled behind the frontier" % r["lagging"]
        w("  NOT RECOVERED: run seed %d tables %s options %s\n" % (
            r["seed"], ",".join(r["tables"]), r["options"]))
        for line in (r["error"] or "").strip().splitlines()[-6:]:
            w("      %s\n" % line)
        for problem in r["problems"][:5]:
            w("      check: %s\n" % problem)
    if len(unrecovered) > 10:
        w("  ... and %d more not recovered\n" % (len(unrecovered) - 10))
    ok = not unrecovered and lost == 0 and duplicated == 0 and problems == 0
    w("result: %s\n" % ("OK" if ok else "FAILED"))
    out.flush()
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n\n")[0],
        epilog="Each run's choices come from its own seed (derived from --seed); "
               "`--runs 1 --first-run-seed S` replays the run reported with seed S.")
    p.add_argument("--runs", type=int, default=200, help="randomized runs (default 200)")
    p.add_argument("--seed", type=int, default=1, help="seed of the whole soak (default 1)")
    p.add_argument("--jobs", type=int, default=8,
                   help="runs side by side, each in a worker process (default 8; the runs "
                        "mostly wait, so more than the cores is right)")
    p.add_argument("--first-run-seed", type=int, default=None, metavar="S",
                   help="use S, S+1, ... as the runs' seeds instead of drawing them")
    p.add_argument("--verbose", action="store_true", help="a line per run on stderr")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.runs < 1 or args.jobs < 1:
        print("soak: --runs and --jobs must be at least 1", file=sys.stderr)
        return 2
    if args.first_run_seed is not None:
        seeds = [args.first_run_seed + i for i in range(args.runs)]
    else:
        master = random.Random(args.seed)
        seeds = [master.randint(0, 2 ** 31) for _ in range(args.runs)]
    started = time.monotonic()
    results: List[Dict[str, Any]] = []
    from bench import soak as this  # a module name the worker processes can import
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(this.soak_run, s): s for s in seeds}
        for done, future in enumerate(as_completed(futures), 1):
            r = future.result()
            results.append(r)
            if args.verbose or not r["recovered"]:
                print("soak: run %d/%d seed %d: %s, %d dap runs, %d kills, faults %s" % (
                    done, len(seeds), r["seed"], "recovered" if r["recovered"] else
                    "NOT RECOVERED", r["dap_runs"], r["kills"], r["faults"]),
                      file=sys.stderr, flush=True)
            elif done % 20 == 0:
                print("soak: %d/%d runs done (%.0f s)" % (done, len(seeds),
                                                        time.monotonic() - started),
                      file=sys.stderr, flush=True)
    results.sort(key=lambda r: seeds.index(r["seed"]))
    return summarize(results, time.monotonic() - started)


if __name__ == "__main__":
    sys.exit(main())
