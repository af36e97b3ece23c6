"""Benchmark: `dap initdb` and `dap syncdb` of `submissions` into SQLite, PostgreSQL and
MariaDB, each beside the database's own bulk path in the same run.

One simulator is started here with N base rows of canvas.submissions and no changes before
the first snapshot. Before any clock starts, the bench runs the snapshot job dap will ask for
(the service hands identical queries the same job, so its parts are made once), moves the
frontier `--sync-steps` steps holding about `--changes` changes in all (the simulator's
--changes-per-step), runs the incremental job since the snapshot, and downloads both jobs'
TSV parts, decompressed, for the references (bench/db_reference.py):

* PostgreSQL: a bare `COPY ... FROM STDIN` (psycopg 3) of the parts, their meta columns cut
  off beforehand, into an empty table made with dap's own DDL;
* MariaDB: a bare `LOAD DATA LOCAL INFILE` per part (booleans and timestamps converted in
  its SET clause, meta.ts into a variable);
* SQLite: a bare `executemany` of the rows, parsed and typed before its clock starts;
* syncdb: staging + merge by hand: the same bulk path into a typed staging table, then one
  INSERT ... ON CONFLICT / ON DUPLICATE KEY UPDATE / INSERT OR REPLACE and one DELETE.

Every measurement is a fresh child process; dap is `bin/dap initdb|syncdb` with
DAP_CONNECTION_STRING, so its time includes start-up, the job (already complete), the
download from the simulator and gunzip, as a user's run does. Each repeat starts from a new
database (PostgreSQL and MariaDB: `dap_bench_<pid>`, created and dropped here; SQLite: a new
file) holding dap's table and the reference's (`dapref` namespace) side by side. The order
of dap and reference alternates between repeats, and before each step PostgreSQL gets a
CHECKPOINT and MariaDB a FLUSH TABLES ... FOR EXPORT of the bench's tables. After the last
repeat the two tables are compared (count and a hash of every row; SQLite: EXCEPT both
ways). Reported: median wall time, rows/s, dap's ratio to the reference, peak RSS (the
kernel's accounting of each child), against the goals of issue #9.

    python -m bench.db [--rows N] [--changes N] [--repeat N] [--databases sqlite,postgresql,mysql]

Results go to bench/results/db.json and bench/results/db.md (and are printed).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request

from bench import common
from bench.run import CLIENT_ID, SECRET, measure_rss

NAMESPACE, TABLE, REF_NAMESPACE = "canvas", "submissions", "dapref"
GOALS = {"postgresql_init_ratio": 1.5, "mysql_init_ratio": 2.0,
         "sqlite_init_rows_per_s": 150_000, "sync_ratio": 2.0, "rss_mib": 100.0}
#: an incremental holds each changed key once; about a fifth of the simulator's changes
#: touch a row changed a moment before, so it is asked for this much more
DUPLICATES = 1.25
LABELS = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mysql": "MariaDB"}


# -- the simulator and the data -----------------------------------------------------------------

def start_simulator(rows, rows_per_part, changes_per_step):
    return common.start_simulator([
        "--rows", f"{TABLE}={rows}", "--rows-per-part", str(rows_per_part),
        "--changes-per-step", str(changes_per_step), "--initial-steps", "0",
        "--no-rate-limits", "--job-wait", "0", "--job-run", "0", "--advance-per-job", "0"])


class PartFiles:
    """A ``Client.load`` sink: each part's body (its header line taken off) into a file."""

    def __init__(self, directory):
        self.directory = pathlib.Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.paths, self.header, self.rows = [], None, 0

    def begin_part(self, index):
        self._path = self.directory / f"part-{index:04d}.tsv"
        self._file = open(self._path, "wb")
        self._head, self._in_body, self._lines = b"", False, 0

    def feed(self, data):
        if not self._in_body:
            self._head += data
            end = self._head.find(b"\n")
            if end < 0:
                return
            self.header = self._head[:end].decode().split("\t")
            data, self._in_body = self._head[end + 1:], True
        self._lines += data.count(b"\n")
        self._file.write(data)

    def restart_part(self):
        self._file.seek(0)
        self._file.truncate()
        self._head, self._in_body, self._lines = b"", False, 0

    def end_part(self):
        self._file.close()
        if self._in_body:
            self.paths.append(str(self._path))
            self.rows += self._lines
        else:
            self._path.unlink()

    def finish(self):
        pass


def cut_meta(paths, header):
    """Copies of the parts without their meta.* columns (PostgreSQL's COPY cannot skip an
    input column): made before any clock starts."""
    keep = [i for i, name in enumerate(header) if not name.startswith("meta.")]
    first_only = keep == list(range(1, len(header)))
    out = []
    for path in paths:
        cut = path[:-len(".tsv")] + ".cut.tsv"
        with open(path, "rb") as src, open(cut, "wb") as dst:
            for line in src:
                if first_only:
                    dst.write(line.split(b"\t", 1)[1])
                else:
                    fields = line.rstrip(b"\n").split(b"\t")
                    dst.write(b"\t".join(fields[i] for i in keep) + b"\n")
        out.append(cut)
    return out


def prepare_data(base_url, workdir, sync_steps):
    """Run the snapshot and the incremental job dap will ask for, download both; returns
    what the references need."""
    from dap_core import Client, IncrementalQuery, SnapshotQuery, resolve_credentials
    credentials = resolve_credentials(client_id=CLIENT_ID, client_secret=SECRET)
    with Client(base_url, credentials) as client:
        snapshot = client.run(SnapshotQuery(NAMESPACE, TABLE, "tsv", "condensed"))
        init = PartFiles(workdir / "init")
        client.load(snapshot, init)
        request = urllib.request.Request(
            f"{base_url}/__simulator__/advance?steps={sync_steps}", method="POST", data=b"")
        urllib.request.urlopen(request).read()
        incremental = client.run(IncrementalQuery(NAMESPACE, TABLE, snapshot.at, None, "tsv",
                                                  "condensed"))
        sync = PartFiles(workdir / "sync")
        client.load(incremental, sync)
        schema = client.get_schema(NAMESPACE, TABLE)
    return {"schema": schema, "init": init, "sync": sync, "init_job": snapshot.id,
            "sync_job": incremental.id, "cut": cut_meta(init.paths, init.header)}


# -- the databases ---------------------------------------------------------------------------------

class Target:
    """One database kind: a fresh database per repeat, dap's connection string, the
    reference's connection, a settle step before each measurement."""

    name = ""

    def __init__(self, url, workdir):
        from dap_core.dburl import parse_database_url
        from dap_core.dialects import DIALECTS
        self.admin = parse_database_url(url) if url else None
        self.dialect = DIALECTS[self.name]
        self.workdir = workdir
        self.database = f"dap_bench_{os.getpid()}"

    def check(self):
        """None when the server answers, else why not."""
        return None

    def fresh(self, ref_ddl):
        raise NotImplementedError

    def drop(self):
        pass

    def settle(self):
        pass

    def query(self, sql):
        raise NotImplementedError

    def same_rows(self, columns):
        """dap's table and the reference's hold the same rows: their counts and an
        order-independent sum of a hash of each whole row (:meth:`digest`) agree."""
        dap, ref = (self.query(self.digest(self.dialect.qualified(ns, TABLE), columns))[0]
                    for ns in (NAMESPACE, REF_NAMESPACE))
        return {"dap_rows": int(dap[0]), "reference_rows": int(ref[0]),
                "same": tuple(map(str, dap)) == tuple(map(str, ref))}

    def digest(self, table, columns):
        raise NotImplementedError


class SQLiteTarget(Target):
    name = "sqlite"

    def fresh(self, ref_ddl):
        import sqlite3
        self.path = self.workdir / f"bench-{time.monotonic_ns()}.db"
        with sqlite3.connect(self.path) as conn:
            for sql in ref_ddl:
                conn.execute(sql)
        return f"sqlite:///{self.path}", {"path": str(self.path)}

    def same_rows(self, columns):
        select = "SELECT %s FROM %%s" % ", ".join(self.dialect.ident(c) for c in columns)
        dap = select % self.dialect.qualified(NAMESPACE, TABLE)
        ref = select % self.dialect.qualified(REF_NAMESPACE, TABLE)
        counts = [self.query("SELECT count(*) FROM (%s)" % s)[0][0] for s in (dap, ref)]
        differ = [self.query("SELECT count(*) FROM (%s EXCEPT %s)" % pair)[0][0]
                  for pair in ((dap, ref), (ref, dap))]
        return {"dap_rows": counts[0], "reference_rows": counts[1],
                "same": counts[0] == counts[1] and differ == [0, 0]}

    def query(self, sql):
        import sqlite3
        conn = sqlite3.connect(self.path)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()

    def drop(self):
        for suffix in ("", "-journal", ".dap-lock"):
            pathlib.Path(str(self.path) + suffix).unlink(missing_ok=True)


class PostgresTarget(Target):
    name = "postgresql"

    def _conninfo(self, database):
        a = self.admin
        parts = {"host": a.host or "127.0.0.1", "port": a.port or 5432, "user": a.user,
                 "password": a.password, "dbname": database}
        return " ".join(f"{k}={v}" for k, v in parts.items() if v is not None)

    def _connect(self, database):
        import psycopg
        return psycopg.connect(self._conninfo(database), autocommit=True, connect_timeout=5)

    def check(self):
        try:
            self._connect(self.admin.database).close()
        except Exception as exc:  # no driver, no server
            return f"{type(exc).__name__}: {exc}".splitlines()[0]
        return None

    def fresh(self, ref_ddl):
        with self._connect(self.admin.database) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.database}"')
        with self._connect(self.database) as conn:
            for sql in ref_ddl:
                conn.execute(sql)
        a = self.admin
        auth = a.user + (f":{a.password}" if a.password else "") + "@" if a.user else ""
        url = f"postgresql://{auth}{a.host or '127.0.0.1'}:{a.port or 5432}/{self.database}"
        return url, {"conninfo": self._conninfo(self.database)}

    def drop(self):
        with self._connect(self.admin.database) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')

    def settle(self):
        with self._connect(self.database) as conn:
            conn.execute("CHECKPOINT")

    def query(self, sql):
        with self._connect(self.database) as conn:
            return conn.execute(sql).fetchall()

    def digest(self, table, columns):
        # a row as text: enums as their labels (the two tables' enum types differ by schema)
        return ("SELECT count(*), sum(hashtextextended(bench_row::text, 0)::numeric) "
                "FROM %s bench_row" % table)


class MySQLTarget(Target):
    name = "mysql"

    def _connect(self, database):
        import pymysql
        a = self.admin
        return pymysql.connect(host=a.host or "127.0.0.1", port=a.port or 3306,
                               user=a.user or "root", password=a.password or "",
                               database=database, autocommit=True, connect_timeout=5,
                               charset="utf8mb4")

    def check(self):
        try:
            conn = self._connect(self.admin.database)
            cur = conn.cursor()
            cur.execute("SELECT @@local_infile")
            local = int(cur.fetchone()[0])
            conn.close()
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}".splitlines()[0]
        return None if local else "the server refuses LOAD DATA LOCAL INFILE"

    def _run(self, database, statements):
        conn = self._connect(database)
        try:
            cur = conn.cursor()
            for sql in statements:
                cur.execute(sql)
            return cur.fetchall()
        finally:
            conn.close()

    def fresh(self, ref_ddl):
        self._run(self.admin.database, [f"DROP DATABASE IF EXISTS `{self.database}`",
                                        f"CREATE DATABASE `{self.database}` CHARACTER SET utf8mb4"])
        self._run(self.database, ref_ddl)
        a = self.admin
        auth = (a.user or "root") + (f":{a.password}" if a.password else "") + "@"
        url = f"mysql://{auth}{a.host or '127.0.0.1'}:{a.port or 3306}/{self.database}"
        return url, {"connect": {"host": a.host or "127.0.0.1", "port": a.port or 3306,
                                 "user": a.user or "root", "password": a.password or "",
                                 "database": self.database}}

    def drop(self):
        self._run(self.admin.database, [f"DROP DATABASE IF EXISTS `{self.database}`"])

    def settle(self):
        """Write back the bench tables' dirty pages (FLUSH TABLES ... FOR EXPORT), so that
        one side does not pay for the flushing of the other's writes."""
        tables = [r[0] for r in self._run(self.database, [
            "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()"])]
        if tables:
            self._run(self.database, ["FLUSH TABLES %s FOR EXPORT" % ", ".join(
                "`%s`" % t for t in tables), "UNLOCK TABLES"])

    def digest(self, table, columns):
        # JSON_ARRAY writes NULL as null and a string quoted: one text per row, exactly
        return "SELECT count(*), SUM(CRC32(JSON_ARRAY(%s))) FROM %s" % (
            ", ".join(self.dialect.ident(c) for c in columns), table)

    def query(self, sql):
        return self._run(self.database, [sql])


TARGETS = {"sqlite": SQLiteTarget, "postgresql": PostgresTarget, "mysql": MySQLTarget}


# -- one database, all repeats -------------------------------------------------------------

def reference_spec(target, data, op, ref_tdef, connection):
    from dap_core.dialects import staging_layout
    files = data[op]
    layout = staging_layout(ref_tdef, files.header)
    columns = [{"name": c.name, "kind": c.kind, "index": layout.positions[c.name],
                "type": target.dialect.column_type(c, ref_tdef, "")}
               for c in ref_tdef.columns if c.name in layout.positions]
    spec = {"dialect": target.name, "op": op, "rows": files.rows, "parts": files.paths,
            "cut_parts": data["cut"] if op == "init" else None, "width": len(files.header),
            "action": layout.action, "key": [c.name for c in ref_tdef.key],
            "table": target.dialect.qualified(REF_NAMESPACE, TABLE), "columns": columns}
    spec.update(connection)
    path = target.workdir / f"{target.name}-{op}.json"
    path.write_text(json.dumps(spec))
    return path


def run_dap(command, url, base_url, expected_job):
    env = dict(os.environ, DAP_API_URL=base_url, DAP_CLIENT_ID=CLIENT_ID,
               DAP_CLIENT_SECRET=SECRET, DAP_CONNECTION_STRING=url)
    env.pop("DAP_API_KEY", None)
    wall, rss, out = measure_rss([sys.executable, "bin/dap", command, "--namespace", NAMESPACE,
                                  "--table", TABLE], env)
    result = json.loads(out.decode().splitlines()[0])
    if result["job_id"] != expected_job:
        print(f"bench: warning: dap {command} got job {result['job_id']}, not the prepared "
              f"{expected_job}: its time includes making the parts", file=sys.stderr)
    return {"wall": wall, "rss": rss, "rows": result["rows"]}


def run_reference(target, spec_path):
    wall, rss, out = measure_rss([sys.executable, "-m", "bench.db_reference", str(spec_path)])
    result = json.loads(out.decode().splitlines()[-1])
    # SQLite's reference is the executemany of rows parsed before its clock started
    return {"wall": result["load_s"] if target.name == "sqlite" else wall, "rss": rss,
            "rows": result["rows"], "process_wall": wall}


def bench_database(target, data, base_url, repeat, log):
    from dap_core.dbschema import table_def
    ref_tdef = table_def(REF_NAMESPACE, TABLE, data["schema"])
    ref_ddl = target.dialect.create_table(ref_tdef)
    runs = {(op, side): [] for op in ("init", "sync") for side in ("dap", "reference")}
    check = None
    for r in range(repeat):
        url, connection = target.fresh(ref_ddl)
        try:
            specs = {op: reference_spec(target, data, op, ref_tdef, connection)
                     for op in ("init", "sync")}
            # alternate who goes first: neither side always inherits the other's writes
            sides = ("reference", "dap") if r % 2 == 0 else ("dap", "reference")
            for op in ("init", "sync"):
                for side in sides:
                    target.settle()
                    if side == "dap":
                        outcome = run_dap(op + "db", url, base_url, data[op + "_job"])
                    else:
                        outcome = run_reference(target, specs[op])
                    runs[op, side].append(outcome)
                    log(f"  {LABELS[target.name]} {op} {side}: {outcome['wall']:.2f} s, "
                        f"{outcome['rows']:,} rows, {outcome['rss']:.0f} MiB")
            if r == repeat - 1:
                check = target.same_rows([c.name for c in ref_tdef.columns])
                log(f"  {LABELS[target.name]}: dap's table and the reference's "
                    f"{'are the same' if check['same'] else 'DIFFER'}")
        finally:
            target.drop()
    out = []
    for op in ("init", "sync"):
        dap, ref = runs[op, "dap"], runs[op, "reference"]
        dap_wall = statistics.median(x["wall"] for x in dap)
        ref_wall = statistics.median(x["wall"] for x in ref)
        rows = dap[-1]["rows"]
        entry = {"database": target.name, "operation": op + "db", "rows": rows,
                 "reference_wall_s": round(ref_wall, 3), "dap_wall_s": round(dap_wall, 3),
                 "wall_ratio": round(dap_wall / ref_wall, 2),
                 "dap_rows_per_s": round(rows / dap_wall),
                 "reference_rows_per_s": round(ref[-1]["rows"] / ref_wall),
                 "dap_rss_mib": round(max(x["rss"] for x in dap), 1),
                 "reference_rss_mib": round(max(x["rss"] for x in ref), 1),
                 "dap_runs_s": [round(x["wall"], 3) for x in dap],
                 "reference_runs_s": [round(x["wall"], 3) for x in ref]}
        entry["goal"], entry["met"] = goal_of(entry)
        if op == "sync":
            entry["same_rows_as_reference"] = check
        out.append(entry)
    return out


def goal_of(entry):
    """(the goal in words, whether it is met) for one result."""
    rss_ok = entry["dap_rss_mib"] < GOALS["rss_mib"]
    if entry["operation"] == "syncdb":
        return (f"ratio <= {GOALS['sync_ratio']}", entry["wall_ratio"] <= GOALS["sync_ratio"]
                and rss_ok)
    if entry["database"] == "sqlite":
        goal = GOALS["sqlite_init_rows_per_s"]
        return f">= {goal:,} rows/s", entry["dap_rows_per_s"] >= goal and rss_ok
    limit = GOALS[entry["database"] + "_init_ratio"]
    return f"ratio <= {limit}", entry["wall_ratio"] <= limit and rss_ok


# -- the report ------------------------------------------------------------------------------

def render(report):
    lines = [f"# dap database benchmark: initdb of {report['rows']:,} submissions, syncdb of "
             f"{report['changes']:,} changes; median of {report['repeat']} runs", "",
             "| database | command | rows | reference s | dap s | ratio | dap rows/s "
             "| reference rows/s | dap peak RSS MiB (goal < 100) | goal | met |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for r in report["results"]:
        lines.append(f"| {LABELS[r['database']]} | {r['operation']} | {r['rows']:,} | "
                     f"{r['reference_wall_s']} | {r['dap_wall_s']} | {r['wall_ratio']} | "
                     f"{r['dap_rows_per_s']:,} | {r['reference_rows_per_s']:,} | "
                     f"{r['dap_rss_mib']} | {r['goal']} | {'yes' if r['met'] else 'NO'} |")
    for name, why in report["skipped"].items():
        lines.append(f"| {LABELS[name]} | skipped: {why} | | | | | | | | | |")
    checks = [f"{LABELS[r['database']]} "
              f"{'same' if r['same_rows_as_reference']['same'] else 'DIFFERENT'}"
              for r in report["results"] if r["operation"] == "syncdb"]
    lines += ["",
              "References (bench/db_reference.py, same decompressed TSV parts, downloaded "
              "beforehand): PostgreSQL a bare `COPY FROM STDIN` (meta columns cut off "
              "beforehand), MariaDB a bare `LOAD DATA LOCAL INFILE` per part, SQLite a bare "
              "`executemany` of pre-parsed rows (its time excludes the parsing); syncdb: the "
              "same bulk path into a typed staging table, one upsert and one DELETE by hand. "
              "dap's time is its whole process: start-up, job, download, gunzip, load.",
              "",
              f"Tables after syncdb, dap's against the reference's: {', '.join(checks) or '-'}. "
              f"Load average before/after: {report['load_before']} / {report['load_after']} "
              f"on {report['cpus']} CPUs; {report['elapsed_s']:.0f} s in all.", "",
              f"`{report['command']}`", ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="base rows of submissions")
    parser.add_argument("--changes", type=int, default=100_000,
                        help="changes in syncdb's window (about; the simulator's own count)")
    parser.add_argument("--sync-steps", type=int, default=10,
                        help="simulator steps the changes are spread over")
    parser.add_argument("--rows-per-part", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--databases", default="sqlite,postgresql,mysql")
    parser.add_argument("--postgresql", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="a server and a user that may create databases")
    parser.add_argument("--mysql", default="mysql://root@127.0.0.1:3306/test",
                        help="a server and a user that may create databases")
    args = parser.parse_args(argv)

    started = time.monotonic()
    load_before = " ".join("%.2f" % x for x in os.getloadavg())
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="dap-bench-db-"))
    urls = {"sqlite": None, "postgresql": args.postgresql, "mysql": args.mysql}
    targets, skipped = [], {}
    for name in [n for n in args.databases.split(",") if n]:
        target = TARGETS[name](urls[name], workdir)
        why = target.check()
        if why:
            skipped[name] = why
            print(f"bench: {LABELS[name]} skipped: {why}", file=sys.stderr)
        else:
            targets.append(target)

    def log(text):
        print(f"[{time.monotonic() - started:6.0f} s] {text}", file=sys.stderr, flush=True)

    per_step = max(1, round(args.changes * DUPLICATES / args.sync_steps))
    sim, base_url = start_simulator(args.rows, args.rows_per_part, per_step)
    try:
        log(f"bench: preparing {args.rows:,} rows and ~{args.changes:,} changes ...")
        data = prepare_data(base_url, workdir, args.sync_steps)
        log(f"bench: snapshot {data['init'].rows:,} rows, incremental {data['sync'].rows:,} "
            f"changes")
        results = []
        for target in targets:
            results += bench_database(target, data, base_url, args.repeat, log)
    finally:
        sim.terminate()
        sim.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    report = {"rows": data["init"].rows, "changes": data["sync"].rows,
              "rows_per_part": args.rows_per_part, "repeat": args.repeat,
              "python": sys.version.split()[0], "cpus": os.cpu_count(),
              "load_before": load_before,
              "load_after": " ".join("%.2f" % x for x in os.getloadavg()),
              "elapsed_s": round(time.monotonic() - started, 1),
              "command": "python -m bench.db " + " ".join(argv if argv is not None
                                                          else sys.argv[1:]),
              "results": results, "skipped": skipped, "goals": GOALS}
    common.save_report("db", report, render(report))
    return report


if __name__ == "__main__":
    main()
