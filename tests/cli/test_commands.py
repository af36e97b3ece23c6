"""bin/dap's commands against the bundled simulator: help, list, schema, snapshot and
incremental in every format, to files and to stdout, one table, a comma list or all."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from .conftest import ROOT, assert_one_line_error, dap_env, run_dap

FORMATS = ("jsonl", "json", "csv", "tsv", "parquet")
COMMANDS = ("list", "schema", "snapshot", "incremental")


# -- help and usage --------------------------------------------------------------------------

def test_help_shows_every_command_option_and_examples():
    done = run_dap("--help", style=None)
    assert done.status == 0 and done.err == ""
    for word in COMMANDS + ("--base-url", "--api-key", "--client-id", "--client-secret",
                            "--loglevel", "--version", "--format", "--output-directory",
                            "--output", "--state", "--since", "--until", "DAP_API_URL",
                            "Examples:", "jq -r .next_since"):
        assert word in done.text, word


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_its_own_help_with_examples(command):
    done = run_dap(command, "--help", style=None)
    assert done.status == 0
    assert done.text.startswith("dap %s - " % command)
    assert "Global options:" in done.text and "--base-url" in done.text
    assert "Examples:" in done.text and "dap %s" % command in done.text.split("Examples:")[1]
    others = set(COMMANDS) - {command}
    usage = done.text.split("Options:")[0].split("Global options:")[0]
    assert not any(" %s " % other in usage for other in others)


def test_version_prints_the_version():
    from dap_core import __version__
    done = run_dap("--version", style=None)
    assert done.status == 0 and done.text == "dap %s\n" % __version__


@pytest.mark.parametrize("argv,words", [
    ([], ["no command"]),
    (["frobnicate"], ["unknown command", "frobnicate"]),
    (["list", "--format", "csv"], ["list does not take --format"]),
    (["snapshot"], ["snapshot needs --table"]),
    (["snapshot", "--table", "a", "--bogus"], ["unknown option --bogus"]),
    (["snapshot", "--table", "a", "--output", "-", "--output-directory", "d"], ["exclude"]),
    (["snapshot", "--table", "a", "--output", "file.csv"], ["--output takes only -"]),
    (["incremental", "--table", "a"], ["--since", "--state"]),
])
def test_a_command_line_that_is_not_understood_exits_2_with_one_line(simulator, argv, words):
    assert_one_line_error(run_dap(*argv, sim=simulator), 2, *words)
    assert simulator.requests == []


def test_bin_dap_runs_as_an_executable_from_a_checkout(simulator, tmp_path):
    env = dap_env(simulator)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    done = subprocess.run([str(ROOT / "bin" / "dap"), "list"], capture_output=True, env=env,
                          cwd=tmp_path, timeout=60)
    assert done.returncode == 0 and b"accounts" in done.stdout.split()
    assert os.access(ROOT / "bin" / "dap", os.X_OK)


# -- list and schema ----------------------------------------------------------------------------

def test_list_prints_table_names_one_per_line_and_nothing_else(simulator):
    done = run_dap("list", sim=simulator)
    assert done.status == 0
    assert done.text == "accounts\ncourses\nenrollments\nsubmissions\nusers\n"
    done = run_dap("list", "--namespace", "canvas_logs", sim=simulator)
    assert done.text == "web_logs\n"


def test_schema_writes_pretty_json_with_its_version(simulator, tmp_path):
    done = run_dap("schema", "--table", "accounts,users", "--output-directory", tmp_path,
                   sim=simulator)
    assert done.status == 0, done
    for line, table in zip(done.json_lines, ("accounts", "users")):
        path = tmp_path / ("%s.schema.json" % table)
        assert line == {"namespace": "canvas", "table": table, "file": str(path),
                        "version": json.loads(path.read_text())["version"]}
        text = path.read_text()
        assert text.startswith("{\n  ") and "schema" in json.loads(text)
    assert sorted(os.listdir(tmp_path)) == ["accounts.schema.json", "users.schema.json"]
    assert len(done.err_lines) == 3  # a line per table and the summary


def test_schema_to_stdout_prints_it(simulator, tmp_path):
    done = run_dap("schema", "--table", "accounts", "--output", "-", sim=simulator, cwd=tmp_path)
    assert done.status == 0 and json.loads(done.text)["version"] >= 1
    assert os.listdir(tmp_path) == []


# -- snapshot and incremental, to files ----------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
def test_snapshot_writes_one_file_per_table_and_a_metadata_line(sim, tmp_path, fmt):
    done = run_dap("snapshot", "--table", "users", "--format", fmt, "--output-directory",
                   tmp_path, sim=sim)
    assert done.status == 0, done
    [line] = done.json_lines
    name = os.path.basename(line["file"])
    assert name.startswith("canvas.users.snapshot.") and name.endswith("." + fmt)
    assert line["file"] == str(tmp_path / name) and line["meta_file"] == line["file"] + ".meta.json"
    assert sorted(os.listdir(tmp_path)) == [name, name + ".meta.json"]
    meta = json.loads((tmp_path / (name + ".meta.json")).read_text())
    assert meta["rows"] == line["rows"] == len(sim.current_state("canvas", "users"))
    assert meta["next_since"] == meta["at"] == line["next_since"]
    for field in ("job_id", "namespace", "table", "kind", "schema_version", "format"):
        assert meta[field] == line[field]
    [human] = done.err_lines
    assert human == "canvas.users: snapshot at %s, %d rows -> %s (next since %s)" % (
        meta["at"], meta["rows"], line["file"], meta["at"])


@pytest.mark.parametrize("fmt", FORMATS)
def test_incremental_writes_the_changes_with_since_and_until(sim, tmp_path, fmt):
    since = sim.frontier
    sim.advance(3)
    done = run_dap("incremental", "--table", "enrollments", "--since", since, "--format", fmt,
                   "--output-directory", tmp_path, sim=sim)
    assert done.status == 0, done
    [line] = done.json_lines
    assert line["kind"] == "incremental" and line["since"] == since
    assert line["until"] == line["next_since"] == sim.frontier and line["rows"] > 0
    assert "since %s until %s" % (since, sim.frontier) in done.err


def test_the_default_output_directory_is_downloads(sim, tmp_path):
    done = run_dap("snapshot", "--table", "accounts", sim=sim, cwd=tmp_path)
    assert done.status == 0, done
    assert done.json_lines[0]["file"].startswith("downloads" + os.sep)
    assert len(os.listdir(tmp_path / "downloads")) == 2


def test_a_comma_list_and_all_give_one_output_per_table(sim, tmp_path):
    done = run_dap("snapshot", "--table", "accounts,courses", "--format", "csv",
                   "--output-directory", tmp_path / "two", sim=sim)
    # one line per table, in the order the tables completed (they run concurrently)
    assert done.status == 0 and sorted(r["table"] for r in done.json_lines) == ["accounts",
                                                                              "courses"]
    done = run_dap("snapshot", "--table", "all", "--output-directory", tmp_path / "all", sim=sim)
    assert done.status == 0, done
    assert sorted(r["table"] for r in done.json_lines) == ["accounts", "courses", "enrollments",
                                                           "submissions", "users"]
    assert len(os.listdir(tmp_path / "all")) == 10
    assert done.err_lines[-1] == "dap: 5 tables: 5 done, 0 failed"


@pytest.mark.parametrize("style", ["id", "key"])
def test_both_credential_styles_in_the_environment(sim, tmp_path, style):
    done = run_dap("snapshot", "--table", "accounts", "--output-directory", tmp_path, sim=sim,
                   style=style)
    assert done.status == 0, done


def test_the_seed_commands_work_verbatim(make_simulator, tmp_path):
    sim = make_simulator(retention_days=5000)
    done = run_dap("incremental", "--namespace", "canvas", "--table", "accounts", "--since",
                   "2022-07-13T09:30:00+02:00", sim=sim, cwd=tmp_path)
    assert done.status == 0, done
    assert done.json_lines[0]["since"] == "2022-07-13T07:30:00Z"
    done = run_dap("--base-url", sim.base_url, "--api-key", sim.api_key, "incremental",
                   "--namespace", "canvas", "--table", "accounts", "--since",
                   "2022-07-13T09:30:00+02:00", env=dap_env(None), cwd=tmp_path)
    assert done.status == 0, done


def test_options_beat_the_environment(sim, tmp_path):
    env = dap_env(None, DAP_API_URL="http://127.0.0.1:9", DAP_API_KEY="not-a-key")
    done = run_dap("--base-url", sim.base_url, "--client-id", sim.client_id, "--client-secret",
                   sim.client_secret, "list", env=env)
    assert done.status == 0, done


# -- to stdout ----------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "tsv"])
def test_stdout_carries_the_same_bytes_as_the_file(sim, tmp_path, fmt):
    to_file = run_dap("snapshot", "--table", "submissions", "--format", fmt,
                      "--output-directory", tmp_path, sim=sim)
    to_stdout = run_dap("snapshot", "--table", "submissions", "--format", fmt, "--output", "-",
                        sim=sim, cwd=tmp_path)
    assert to_file.status == to_stdout.status == 0, to_stdout
    with open(to_file.json_lines[0]["file"], "rb") as f:
        assert to_stdout.out == f.read()
    assert "-> stdout" in to_stdout.err
    if fmt == "json":
        assert len(json.loads(to_stdout.out)) == to_file.json_lines[0]["rows"]


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "tsv"])
def test_stdout_has_meta_action_in_incrementals_only_as_dap_sends_it(sim, fmt):
    """A snapshot's records carry meta.ts only (no meta.action column in CSV/TSV); an
    incremental's carry meta.action U or D."""
    since = sim.frontier
    sim.advance(3)
    for kind, extra in (("snapshot", []), ("incremental", ["--since", since])):
        done = run_dap(kind, "--table", "enrollments", "--format", fmt, "--output", "-", *extra,
                       sim=sim)
        assert done.status == 0, done
        if fmt in ("jsonl", "json"):
            recs = json.loads(done.out) if fmt == "json" else done.json_lines
            actions = {r["meta"].get("action") for r in recs}
        else:
            sep = "," if fmt == "csv" else "\t"
            lines = done.text.split("\n")
            header = lines[0].split(sep)
            assert header[0] == "meta.ts"
            actions = ({line.split(sep)[1] for line in lines[1:] if line[:4] == "2026"}
                       if header[1] == "meta.action" else {None})
        assert actions == ({None} if kind == "snapshot" else {"U", "D"}), (kind, fmt)


def test_several_tables_to_stdout_only_as_jsonl(sim):
    done = run_dap("snapshot", "--table", "accounts,users", "--format", "csv", "--output", "-",
                   sim=sim)
    assert_one_line_error(done, 3, "jsonl")
    assert sim.requests == []
    done = run_dap("snapshot", "--table", "accounts,users", "--output", "-", sim=sim)
    assert done.status == 0, done
    tables = {json.loads(line)["key"]["id"] for line in done.text.splitlines()}
    expected = len(sim.current_state("canvas", "accounts")) + len(sim.current_state("canvas",
                                                                                    "users"))
    assert len(done.text.splitlines()) == expected and tables


def test_parquet_to_stdout_is_refused(sim):
    assert_one_line_error(run_dap("snapshot", "--table", "users", "--format", "parquet",
                                  "--output", "-", sim=sim), 3, "Parquet")


def test_logs_go_to_stderr_only(sim, tmp_path):
    done = run_dap("--loglevel", "info", "snapshot", "--table", "accounts", "--output", "-",
                   sim=sim)
    assert done.status == 0
    assert "dap: info: " in done.err
    assert all(json.loads(line)["meta"] for line in done.text.splitlines())
