"""Failures as a person sees them: one line on stderr that says what to do, the exit status
of docs/architecture.md, no traceback; input that is wrong on its face sends no request;
no secret ever appears in any output."""
from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess

import pytest

from .conftest import assert_one_line_error, dap_env, run_dap

SINCE = "2024-07-13T09:30:00Z"


@pytest.mark.parametrize("args,words", [
    (["--since", "2024-07-13T09:30:00"], ["--since", "Z"]),          # naive
    (["--since", "2024-07-13"], ["--since"]),                          # date only
    (["--since", "2024-02-30T00:00:00Z"], ["--since"]),                # impossible
    (["--since", "yesterday"], ["--since"]),
    (["--since", SINCE, "--until", "2024-07-13T09:00:00+00:00"], ["until", "not after since"]),
    (["--since", SINCE, "--until", SINCE], ["not after"]),
    (["--since", SINCE, "--format", "xml"], ["unknown format", "jsonl"]),
    (["--since", SINCE, "--mode", "flat"], ["unknown mode"]),
    (["--since", SINCE, "--namespace", "Canvas!"], ["namespace"]),
], ids=["naive", "date-only", "impossible", "words", "until-before", "until-equal", "format",
        "mode", "namespace"])
def test_bad_input_is_refused_before_any_request(simulator, args, words):
    done = run_dap("incremental", "--table", "accounts", *args, sim=simulator)
    assert_one_line_error(done, 3, *words)
    assert simulator.requests == []


def test_a_bad_table_name_is_refused_before_any_request(simulator):
    assert_one_line_error(run_dap("snapshot", "--table", "accounts,Users;drop", sim=simulator),
                          3, "table name")
    assert simulator.requests == []


@pytest.mark.parametrize("env_extra,words", [
    ({}, ["no credentials", "DAP_CLIENT_ID", "DAP_API_KEY"]),
    ({"DAP_API_KEY": "not base64!"}, ["API key", "base64"]),
    ({"DAP_API_KEY": base64.b64encode(b"no-colon-here").decode()},
     ["API key", "region#client-id:secret"]),
    ({"DAP_CLIENT_ID": "us-east-1#x"}, ["client secret"]),
], ids=["none", "not-base64", "wrong-pattern", "half"])
def test_missing_or_malformed_credentials_are_refused_before_any_request(simulator, env_extra,
                                                                         words):
    env = dap_env(simulator, style=None, **env_extra)
    assert_one_line_error(run_dap("list", env=env), 3, *words)
    assert simulator.requests == []


@pytest.mark.parametrize("url,words", [
    ("api-gateway.instructure.com", ["malformed"]),
    ("https://host:99999", ["malformed"]),
    ("http://api.example.com", ["http", "--allow-insecure-http"]),
])
def test_a_bad_base_url_is_refused(simulator, url, words):
    env = dap_env(simulator)
    env["DAP_API_URL"] = url
    assert_one_line_error(run_dap("list", env=env), 3, *words)


def test_an_output_path_that_is_not_a_directory_is_refused(simulator, tmp_path):
    path = tmp_path / "a-file"
    path.write_text("x")
    done = run_dap("snapshot", "--table", "accounts", "--output-directory", path, sim=simulator)
    assert_one_line_error(done, 3, "not a directory")
    assert simulator.requests == []


@pytest.fixture
def locked_directory(tmp_path):
    """A directory in which no file can be made: mode 0500, and for root, whom the mode does
    not stop (CI runs as root), the immutable attribute as well, which stops root too."""
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    chattr = shutil.which("chattr") if os.geteuid() == 0 else None
    if os.geteuid() == 0:
        if chattr is None:
            pytest.skip("root ignores the mode, and chattr (e2fsprogs) is not installed")
        done = subprocess.run([chattr, "+i", str(locked)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip("root ignores the mode, and the filesystem refuses chattr +i: "
                        + (done.stderr.strip() or "exit %d" % done.returncode))
    try:
        with pytest.raises(OSError):  # the test's own check that it is locked indeed
            (locked / "probe").write_bytes(b"x")
        yield locked
    finally:
        if chattr is not None:
            subprocess.run([chattr, "-i", str(locked)], check=True)
        locked.chmod(0o700)


def test_an_output_directory_that_is_not_writable_is_refused(simulator, locked_directory):
    locked = locked_directory
    done = run_dap("snapshot", "--table", "accounts", "--output-directory", locked, sim=simulator)
    assert_one_line_error(done, 3, "not writable")
    assert simulator.requests == []


def test_an_output_directory_that_cannot_be_made_is_refused(simulator):
    done = run_dap("snapshot", "--table", "accounts", "--output-directory", "/proc/self/dap-out",
                   sim=simulator)
    assert_one_line_error(done, 3, "output directory")
    assert simulator.requests == []


def test_a_missing_dependency_is_named_with_what_to_install(simulator, tmp_path):
    blocker = tmp_path / "block"
    (blocker / "urllib3").mkdir(parents=True)
    (blocker / "urllib3" / "__init__.py").write_text(
        "raise ImportError('No module named urllib3', name='urllib3')\n")
    env = dap_env(simulator, PYTHONPATH=str(blocker))
    assert run_dap("--help", env=env).status == 0  # help needs nothing but the checkout
    assert_one_line_error(run_dap("list", env=env), 3, "urllib3", "pip install")


def test_a_ca_bundle_that_is_not_a_file_is_refused(simulator, tmp_path):
    done = run_dap("--ca-bundle", tmp_path / "missing.pem", "list", sim=simulator)
    assert_one_line_error(done, 3, "CA bundle")


def test_wrong_credentials_exit_4_with_the_services_uuid(make_simulator):
    sim = make_simulator()
    env = dap_env(sim)
    env["DAP_CLIENT_SECRET"] = "not-the-secret"
    line = assert_one_line_error(run_dap("list", env=env), 4, "uuid")
    assert re.search(r"\(uuid [0-9a-f-]{8,}\)", line)
    assert "not-the-secret" not in line


@pytest.mark.parametrize("args,words", [
    (["snapshot", "--table", "no_such_table"], ["no_such_table", "uuid", "dap list"]),
    (["snapshot", "--namespace", "nowhere", "--table", "users"], ["nowhere", "uuid"]),
    (["list", "--namespace", "nowhere"], ["nowhere", "uuid"]),
    (["schema", "--table", "no_such_table"], ["no_such_table", "uuid"]),
])
def test_unknown_table_or_namespace_exit_6_with_the_services_uuid(simulator, tmp_path, args,
                                                                  words):
    if args[0] != "list":
        args = args + ["--output-directory", tmp_path]
    done = run_dap(*args, sim=simulator)
    assert_one_line_error(done, 6, *words)
    assert os.listdir(tmp_path) == []


def test_since_outside_the_data_exits_9_or_8(make_simulator, tmp_path):
    sim = make_simulator(retention_days=1)
    assert_one_line_error(run_dap("incremental", "--table", "users",
                                  "--since", "2020-01-01T00:00:00Z",
                                  "--output-directory", tmp_path, sim=sim), 9, "snapshot")
    assert_one_line_error(run_dap("incremental", "--table", "users",
                                  "--since", "2999-01-01T00:00:00Z",
                                  "--output-directory", tmp_path, sim=sim), 8)


def test_a_failed_job_exits_10_with_message_and_uuid_and_writes_nothing(make_simulator, tmp_path):
    sim = make_simulator(fail_table=("users",))
    done = run_dap("snapshot", "--table", "users", "--output-directory", tmp_path, sim=sim)
    assert_one_line_error(done, 10, "failed", "uuid")
    assert os.listdir(tmp_path) == []


def test_parquet_without_fastparquet_names_the_extra_to_install(simulator, tmp_path):
    blocker = tmp_path / "block"
    (blocker / "fastparquet").mkdir(parents=True)
    (blocker / "fastparquet" / "__init__.py").write_text(
        "raise ImportError('No module named fastparquet', name='fastparquet')\n")
    env = dap_env(simulator,
                  PYTHONPATH=str(blocker) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = run_dap("snapshot", "--table", "users", "--format", "parquet", "--output-directory",
                   tmp_path / "out", env=env)
    assert_one_line_error(done, 3, "fastparquet", "pip install 'dap-cd2[parquet]'")
    assert simulator.requests == []
    # the other formats do not need it
    done = run_dap("snapshot", "--table", "users", "--format", "csv", "--output-directory",
                   tmp_path / "out", env=env)
    assert done.status == 0, done


def _tokens(sim):
    found = set()
    for request in sim.requests:
        auth = request["headers"].get("authorization") or ""
        if auth.startswith("Bearer "):
            found.add(auth[len("Bearer "):])
    return found


def test_no_secret_key_or_token_appears_in_any_output_even_at_debug(make_simulator, tmp_path):
    sim = make_simulator(rows_per_part=17, refuse_tokens_after=0.5, job_run=0.6)
    basic = base64.b64encode(("%s:%s" % (sim.client_id, sim.client_secret)).encode()).decode()
    state = tmp_path / "state.json"
    runs = [
        ["list"],
        ["schema", "--table", "accounts", "--output-directory", tmp_path],
        ["snapshot", "--table", "accounts,users", "--format", "csv", "--output-directory", tmp_path,
         "--state", state],
        ["incremental", "--table", "accounts", "--state", state, "--output", "-"],
        ["snapshot", "--table", "no_such_table", "--output-directory", tmp_path],
    ]
    outputs = []
    for style in ("id", "key"):
        for args in runs:
            done = run_dap("--loglevel", "debug", *args, sim=sim, style=style)
            outputs.append(done.out.decode("utf-8", "replace") + done.err)
        done = run_dap("--loglevel", "debug", "--api-key", sim.api_key, "list",
                       env=dap_env(sim, style=None))
        outputs.append(done.out.decode("utf-8", "replace") + done.err)
    tokens = _tokens(sim)
    assert tokens and sim.fault_counts["refuse_token"] >= 1
    text = "\n".join(outputs)
    assert "dap: debug: " in text
    for secret in [sim.client_secret, sim.api_key, basic] + sorted(tokens):
        assert secret not in text
    for token in tokens:  # not even the token's signature
        assert token.rsplit(".", 1)[-1] not in text
    assert "signature=" not in text  # pre-signed URLs are logged without their query


def test_an_unexpected_error_is_one_line_that_says_it_is_a_bug(simulator, tmp_path, monkeypatch):
    from dap_core.shell import cli
    import io

    def broken(*args, **kwargs):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(cli, "cmd_list", broken)
    monkeypatch.setitem(cli.HANDLERS, "list", broken)
    err = io.StringIO()
    status = cli.main(["list"], stdout=io.StringIO(), stderr=err, environ=dap_env(simulator))
    assert status == 1
    lines = err.getvalue().splitlines()
    assert len(lines) == 1 and "this is a bug" in lines[0] and "Traceback" not in lines[0]
    err = io.StringIO()
    status = cli.main(["--loglevel", "debug", "list"], stdout=io.StringIO(), stderr=err,
                      environ=dap_env(simulator))
    assert status == 1 and "Traceback" in err.getvalue()


def test_an_output_directory_no_file_can_be_made_in_is_refused_before_any_request(sim):
    # sysfs takes no new files, for root neither: only trying tells (#10)
    done = run_dap("snapshot", "--table", "accounts", "--output-directory", "/sys/kernel",
                   sim=sim)
    assert_one_line_error(done, 3, "not writable", "/sys/kernel")
    assert sim.requests == []
