"""The reference a database benchmark measures dap against: the database's bulk path, bare.

One child process per measurement, given a JSON spec by bench/db.py. It loads TSV parts that
the bench downloaded and decompressed beforehand (outside the timing) into a table that the
bench created, empty, with the very DDL dap makes; no DAP API, no download, no framework.

* ``init``: PostgreSQL ``COPY table FROM STDIN`` (psycopg 3) of the parts with their
  ``meta.*`` columns already cut off (COPY cannot skip an input column; every column of
  ``submissions`` is in a form COPY reads, which a ``text[]`` would not be); MySQL / MariaDB one
  ``LOAD DATA LOCAL INFILE`` per part into the table, ``meta.ts`` read into a throw-away
  variable and booleans and timestamps converted in its ``SET`` clause; SQLite one
  ``executemany`` of rows parsed and typed before the clock starts.
* ``sync``: staging + merge by hand: the same bulk path into a typed staging table, then one
  ``INSERT ... ON CONFLICT DO UPDATE`` / ``ON DUPLICATE KEY UPDATE`` / ``INSERT OR
  REPLACE`` and one ``DELETE`` of the keys marked ``D``, in one transaction.

It prints one JSON line: ``{"rows": N, "load_s": seconds}``; ``load_s`` is the time from
connecting to the commit (for SQLite, from the first INSERT: the rows are pre-parsed).

    python -m bench.db_reference SPEC.json
"""
import json
import sys
import time

TS = "CAST(REPLACE(REPLACE(%s, 'T', ' '), 'Z', '') AS DATETIME(6))"


def pg_ident(name):
    return '"%s"' % name.replace('"', '""')


def my_ident(name):
    return "`%s`" % name.replace("`", "``")


# -- PostgreSQL ---------------------------------------------------------------------------------

def pg_connect(spec):
    import psycopg
    return psycopg.connect(spec["conninfo"])


def pg_copy(conn, sql, paths):
    with conn.cursor() as cur, cur.copy(sql) as copy:
        for path in paths:
            with open(path, "rb") as part:
                while True:
                    chunk = part.read(1 << 20)
                    if not chunk:
                        break
                    copy.write(chunk)
        return None


def pg_init(spec):
    conn = pg_connect(spec)
    in_order = sorted(spec["columns"], key=lambda c: c["index"])
    names = ", ".join(pg_ident(c["name"]) for c in in_order)
    with conn.transaction():
        pg_copy(conn, "COPY %s (%s) FROM STDIN" % (spec["table"], names), spec["cut_parts"])
    conn.close()


def pg_sync(spec):
    conn = pg_connect(spec)
    table, key = spec["table"], [pg_ident(k) for k in spec["key"]]
    by_index = {c["index"]: c for c in spec["columns"]}
    staging, stage_columns = [], []
    for i in range(spec["width"]):
        if i in by_index:
            c = by_index[i]
            staging.append("%s %s" % (pg_ident(c["name"]), c["type"]))
            stage_columns.append(pg_ident(c["name"]))
        else:
            name = "meta_action" if i == spec["action"] else "meta_%d" % i
            staging.append("%s text" % name)
            stage_columns.append(name)
    names = [pg_ident(c["name"]) for c in spec["columns"]]
    with conn.transaction():
        conn.execute("CREATE TEMPORARY TABLE stage (%s) ON COMMIT DROP" % ", ".join(staging))
        pg_copy(conn, "COPY stage (%s) FROM STDIN" % ", ".join(stage_columns), spec["parts"])
        conn.execute("INSERT INTO %s (%s) SELECT %s FROM stage WHERE meta_action = 'U' "
                     "ON CONFLICT (%s) DO UPDATE SET %s" % (
                         table, ", ".join(names), ", ".join(names), ", ".join(key),
                         ", ".join("%s = EXCLUDED.%s" % (n, n) for n in names if n not in key)))
        conn.execute("DELETE FROM %s t USING stage s WHERE s.meta_action = 'D' AND %s" % (
            table, " AND ".join("t.%s = s.%s" % (k, k) for k in key)))
    conn.close()


# -- MySQL / MariaDB --------------------------------------------------------------------------

def my_connect(spec):
    import pymysql
    conn = pymysql.connect(local_infile=True, autocommit=False, charset="utf8mb4",
                           **spec["connect"])
    conn.cursor().execute("SET time_zone = '+00:00'")
    return conn


def my_load(cur, path, table, spec, meta_names):
    """LOAD DATA of one part into ``table``; meta columns into ``meta_names[i]`` (a column or
    a user variable), booleans and timestamps through variables and SET."""
    by_index = {c["index"]: c for c in spec["columns"]}
    targets, sets = [], []
    for i in range(spec["width"]):
        c = by_index.get(i)
        if c is None:
            targets.append(meta_names.get(i, "@skip"))
        elif c["kind"] == "boolean":
            targets.append("@v%d" % i)
            sets.append("%s = (@v%d = 'true')" % (my_ident(c["name"]), i))
        elif c["kind"] == "timestamp":
            targets.append("@v%d" % i)
            sets.append("%s = %s" % (my_ident(c["name"]), TS % ("@v%d" % i)))
        elif c["kind"] == "uuid":  # binary(16), as the official client makes it
            targets.append("@v%d" % i)
            sets.append("%s = UNHEX(REPLACE(@v%d, '-', ''))" % (my_ident(c["name"]), i))
        else:
            targets.append(my_ident(c["name"]))
    cur.execute("LOAD DATA LOCAL INFILE '%s' INTO TABLE %s CHARACTER SET utf8mb4 "
                "FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' "
                "(%s)%s" % (path, table, ", ".join(targets),
                            " SET " + ", ".join(sets) if sets else ""))


def my_init(spec):
    conn = my_connect(spec)
    cur = conn.cursor()
    cur.execute("START TRANSACTION")
    for path in spec["parts"]:
        my_load(cur, path, spec["table"], spec, {})
    conn.commit()
    conn.close()


def my_sync(spec):
    conn = my_connect(spec)
    cur = conn.cursor()
    table, key = spec["table"], [my_ident(k) for k in spec["key"]]
    names = [my_ident(c["name"]) for c in spec["columns"]]
    cur.execute("START TRANSACTION")
    cur.execute("CREATE TEMPORARY TABLE stage (meta_action char(1), %s) ENGINE=InnoDB "
                "DEFAULT CHARSET=utf8mb4" % ", ".join(
                    "%s %s NULL" % (my_ident(c["name"]), c["type"]) for c in spec["columns"]))
    for path in spec["parts"]:
        my_load(cur, path, "stage", spec, {spec["action"]: "meta_action"})
    cur.execute("INSERT INTO %s (%s) SELECT %s FROM stage WHERE meta_action = 'U' "
                "ON DUPLICATE KEY UPDATE %s" % (
                    table, ", ".join(names), ", ".join(names),
                    ", ".join("%s = VALUES(%s)" % (n, n) for n in names if n not in key)))
    # staging first: InnoDB's statistics of a table loaded a moment ago may say it is empty
    cur.execute("DELETE t FROM stage s STRAIGHT_JOIN %s t ON %s WHERE s.meta_action = 'D'" % (
        table, " AND ".join("t.%s = s.%s" % (k, k) for k in key)))
    conn.commit()
    cur.execute("DROP TEMPORARY TABLE stage")
    conn.close()


# -- SQLite -------------------------------------------------------------------------------------

def lite_rows(spec, with_action):
    """Every part's rows, decoded and typed as dap stores them (outside the timing)."""
    from dap_core.copytext import decode_lines
    bool_of = {"true": 1, "false": 0}
    conv = {"int64": int, "int32": int, "float": float, "boolean": bool_of.__getitem__}
    picks = [(c["index"], conv.get(c["kind"])) for c in spec["columns"]]
    if with_action:
        picks.append((spec["action"], None))
    rows = []
    for path in spec["parts"]:
        with open(path, "rb") as part:
            for fields in decode_lines(part.read(), spec["width"]):
                rows.append(tuple(
                    None if fields[i] is None else (f(fields[i]) if f else fields[i])
                    for i, f in picks))
    return rows


def lite_init(spec):
    import sqlite3
    rows = lite_rows(spec, False)
    start = time.perf_counter()
    conn = sqlite3.connect(spec["path"], isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO %s (%s) VALUES (%s)" % (
        spec["table"], ", ".join(pg_ident(c["name"]) for c in spec["columns"]),
        ", ".join("?" * len(spec["columns"]))), rows)
    conn.execute("COMMIT")
    conn.close()
    return len(rows), time.perf_counter() - start


def lite_sync(spec):
    import sqlite3
    rows = lite_rows(spec, True)
    start = time.perf_counter()
    names = [pg_ident(c["name"]) for c in spec["columns"]]
    key = [pg_ident(k) for k in spec["key"]]
    conn = sqlite3.connect(spec["path"], isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("CREATE TEMP TABLE stage (%s, meta_action)" % ", ".join(names))
    conn.executemany("INSERT INTO temp.stage VALUES (%s)" % ", ".join("?" * (len(names) + 1)),
                     rows)
    conn.execute("INSERT OR REPLACE INTO %s (%s) SELECT %s FROM temp.stage "
                 "WHERE meta_action = 'U'" % (spec["table"], ", ".join(names), ", ".join(names)))
    conn.execute("DELETE FROM %s WHERE (%s) IN (SELECT %s FROM temp.stage "
                 "WHERE meta_action = 'D')" % (spec["table"], ", ".join(key), ", ".join(key)))
    conn.execute("COMMIT")
    conn.close()
    return len(rows), time.perf_counter() - start


RUN = {("postgresql", "init"): pg_init, ("postgresql", "sync"): pg_sync,
       ("mysql", "init"): my_init, ("mysql", "sync"): my_sync,
       ("sqlite", "init"): lite_init, ("sqlite", "sync"): lite_sync}


def main(argv):
    with open(argv[0]) as f:
        spec = json.load(f)
    start = time.perf_counter()
    outcome = RUN[spec["dialect"], spec["op"]](spec)
    rows, load_s = outcome if outcome else (spec["rows"], time.perf_counter() - start)
    print(json.dumps({"rows": rows, "load_s": round(load_s, 4)}))


if __name__ == "__main__":
    main(sys.argv[1:])
