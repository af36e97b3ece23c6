"""What used to crash as a bug (exit 1) or silently meant the default (#12): empty option
values are refused before any request, and a stdout that cannot be written is exit 12 with
a hint about stdout (not the output directory)."""
from __future__ import annotations

import os
import subprocess

import pytest

from .conftest import DAP, assert_one_line_error, dap_env, run_dap

needs_dev_full = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")


@pytest.mark.parametrize("option", ["--table", "--format", "--output-directory", "--namespace",
                                    "--client-id", "--client-secret", "--state", "--mode",
                                    "--since", "--base-url", "--loglevel", "--timeout"])
def test_an_empty_option_value_is_refused_before_any_request(simulator, option):
    args = {"--table": ["snapshot", "--table", ""]}.get(option) or [
        "snapshot", "--table", "accounts", option, ""]
    if option == "--since":
        args[0] = "incremental"
    done = run_dap(*args, sim=simulator)
    assert_one_line_error(done, 3, option, "empty")
    assert simulator.requests == []


@needs_dev_full
@pytest.mark.parametrize("args", [
    ["list"],
    ["schema", "--table", "accounts", "--output", "-"],
    ["snapshot", "--table", "accounts", "--output", "-"],
    ["--version"],
], ids=["list", "schema", "records", "version"])
def test_a_full_stdout_is_exit_12_saying_stdout(simulator, args):
    with open("/dev/full", "wb") as full:
        done = subprocess.run(DAP + args, stdout=full, stderr=subprocess.PIPE,
                              env=dap_env(simulator), timeout=120)
    err = done.stderr.decode()
    assert done.returncode == 12, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "stdout" in lines[0] and "No space left" in lines[0]
    assert "output directory" not in lines[0] and "Exception ignored" not in err
