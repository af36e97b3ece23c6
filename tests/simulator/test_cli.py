"""`python -m fixtures.simulator`: URL first on stdout, clean exit on SIGTERM/SIGINT, full
--help."""
from __future__ import annotations

import pathlib
import signal
import socket
import subprocess
import sys

import pytest

from fixtures.simulator.config import SimulatorConfig

from .api import Api, request

ROOT = pathlib.Path(__file__).resolve().parents[2]


class _Handle:
    def __init__(self, base_url):
        self.base_url = base_url
        self.api_key = "dXMtZWFzdC0xI2RlbW86ZGVtby1zZWNyZXQ="


def start(*args):
    proc = subprocess.Popen([sys.executable, "-m", "fixtures.simulator", "--port", "0", *args],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    return proc, line


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_prints_its_url_first_and_stops_cleanly(sig):
    proc, line = start("--job-wait", "0", "--job-run", "0")
    try:
        assert line.startswith("http://127.0.0.1:") and line.endswith("\n")
        base_url = line.strip()
        port = int(base_url.rsplit(":", 1)[1])
        assert port > 0
        api = Api(_Handle(base_url))
        assert api.tables().json["tables"][0] == "accounts"
        job = api.run("canvas", "accounts", {"format": "jsonl"})
        assert request("GET", api.part_urls(job)[0]).status == 200
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 0
        assert proc.stdout.read() == "", "nothing but the URL on stdout"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_help_lists_every_option_and_the_demo_credentials():
    done = subprocess.run([sys.executable, "-m", "fixtures.simulator", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0
    for name in SimulatorConfig.option_names():
        assert f"--{name.replace('_', '-')}" in done.stdout, name
    for text in ("us-east-1#demo", "demo-secret", "dXMtZWFzdC0xI2RlbW86ZGVtby1zZWNyZXQ="):
        assert text in done.stdout


@pytest.mark.parametrize("args", [["--rows", "nope=3"], ["--fail-429", "2"], ["--bogus"],
                                  ["--fail-table", "nope"]])
def test_bad_options_exit_2(args):
    done = subprocess.run([sys.executable, "-m", "fixtures.simulator", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and done.stdout == ""
    assert "usage:" in done.stderr


def test_a_busy_port_is_an_error():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "fixtures.simulator", "--port", str(port)],
                              cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and str(port) in done.stderr and done.stdout == ""
