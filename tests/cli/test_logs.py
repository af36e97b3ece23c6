"""Logs for operations (#11): --logfile FILE and --logformat json (one object a line: time,
level, table, message); every line of a multi-table run names its table; no secret."""
from __future__ import annotations

import json

from .conftest import assert_one_line_error, run_dap


def test_json_logs_in_a_file_name_the_table_of_every_line(sim, tmp_path):
    logfile = tmp_path / "dap.log"
    done = run_dap("--loglevel", "info", "--logformat", "json", "--logfile", logfile,
                   "snapshot", "--table", "accounts,users,courses", "--output-directory",
                   tmp_path / "out", sim=sim)
    assert done.status == 0, done
    records = [json.loads(line) for line in logfile.read_text().splitlines()]
    assert records, "the log file is empty"
    assert all(set(r) == {"time", "level", "table", "message"} for r in records)
    assert all(r["time"].endswith("Z") and r["level"] in ("debug", "info", "warning", "error")
               for r in records)
    tables = {r["table"] for r in records}
    assert tables == {"canvas.accounts", "canvas.users", "canvas.courses"}
    for table in tables:  # each table's job is logged under its name
        assert any(r["table"] == table and "job" in r["message"] for r in records)
    # stderr keeps what a person reads: the summaries, no log lines
    assert not any(line.startswith("dap: info:") for line in done.err_lines)
    assert done.err_lines[-1] == "dap: 3 tables: 3 done, 0 failed"
    assert sim.client_secret not in logfile.read_text()


def test_plain_logs_of_several_tables_say_their_table(sim, tmp_path):
    done = run_dap("--loglevel", "info", "snapshot", "--table", "accounts,users",
                   "--output-directory", tmp_path, sim=sim)
    assert done.status == 0, done
    logged = [line for line in done.err_lines if line.startswith("dap: info: ")]
    assert logged
    for line in logged:
        assert line[len("dap: info: "):].startswith(("canvas.accounts: ", "canvas.users: ")), line


def test_a_failing_table_is_in_the_log_file_too(make_simulator, tmp_path):
    sim = make_simulator(fail_table=("users",))
    logfile = tmp_path / "dap.log"
    done = run_dap("--logformat", "json", "--logfile", logfile, "snapshot", "--table",
                   "accounts,users", "--output-directory", tmp_path / "out", sim=sim)
    assert done.status == 13, done
    errors = [json.loads(line) for line in logfile.read_text().splitlines()
              if json.loads(line)["level"] == "error"]
    assert [e["table"] for e in errors] == ["canvas.users"]


def test_a_bad_log_format_or_log_file_is_refused_before_any_request(sim, tmp_path):
    assert_one_line_error(run_dap("--logformat", "xml", "list", sim=sim), 3, "log format")
    assert_one_line_error(run_dap("--logfile", tmp_path / "no" / "such" / "dir.log", "list",
                                  sim=sim), 3, "log file")
    assert sim.requests == []
