"""Network failures as a person sees them (#12): what happened and to which host, retries
logged as they happen, an unresolvable name at once, --timeout per request with a bounded
total.  Real loopback sockets; sleeps are skipped by an injected clock, never mocked I/O."""
from __future__ import annotations

import io

import pytest

from dap_core.shell import cli

from shell.test_network import Clock, _resolves_as_unknown, refusing_port, silent_port
from .conftest import assert_one_line_error, dap_env, run_dap


def _main(argv, url):
    clock = Clock()
    out, err = io.StringIO(), io.StringIO()
    env = dap_env(None, DAP_API_URL=url, DAP_CLIENT_ID="us-east-1#demo",
                  DAP_CLIENT_SECRET="demo-secret-long")
    status = cli.main(argv, stdout=out, stderr=err, environ=env,
                      client_options={"sleep": clock.sleep, "monotonic": clock.monotonic})
    return status, err.getvalue().splitlines(), clock


def test_a_refused_connection_is_named_logged_at_each_retry_and_bounded():
    with refusing_port() as port:
        status, lines, clock = _main(["list"], "http://127.0.0.1:%d" % port)
    assert status == 11
    where = "connection to 127.0.0.1:%d refused" % port
    retries, last = lines[:-1], lines[-1]
    assert len(retries) == len(clock.slept) >= 1  # one warning per retry, as it happens
    for line in retries:
        assert line.startswith("dap: warning: login: ") and where in line and "trying again" in line
    assert last.startswith("dap: error: ") and where in last and "timed out" not in last
    assert sum(clock.slept) <= 20.0


def test_an_unresolvable_name_fails_at_once_with_one_line():
    if not _resolves_as_unknown("nonexistent.invalid"):
        pytest.skip("this machine's resolver does not answer 'no such name' for .invalid")
    env = dap_env(None, DAP_API_URL="https://nonexistent.invalid",
                  DAP_CLIENT_ID="us-east-1#demo", DAP_CLIENT_SECRET="demo-secret-long")
    done = run_dap("list", env=env, timeout=60)
    assert_one_line_error(done, 11, "could not resolve nonexistent.invalid", "--base-url")


def test_timeout_gives_up_on_a_server_that_never_answers():
    with silent_port() as port:
        status, lines, clock = _main(["--timeout", "0.3", "list"], "http://127.0.0.1:%d" % port)
    assert status == 11
    assert "no answer from 127.0.0.1:%d within 0.3 s" % port in lines[-1]
    assert "--timeout" in lines[-1]
    assert sum(clock.slept) <= 30.0


@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan", "inf", ""])
def test_a_timeout_that_is_not_a_positive_number_is_refused_before_any_request(simulator,
                                                                              value):
    done = run_dap("--timeout", value, "list", sim=simulator)
    assert done.status in (2, 3) and len(done.err_lines) == 1, done
    assert "--timeout" in done.err
    assert simulator.requests == []
