"""Helpers for the CLI's tests: `bin/dap` as a subprocess (with this interpreter) against an
in-process bundled simulator, credentials in the environment."""
from __future__ import annotations

import fcntl
import json
import os
import pathlib
import pty
import struct
import subprocess
import sys
import termios
from typing import List, Optional

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DAP = [sys.executable, str(ROOT / "bin" / "dap")]


class Result:
    """A finished `bin/dap`: exit status, stdout bytes, stderr text."""

    def __init__(self, done: subprocess.CompletedProcess) -> None:
        self.status = done.returncode
        self.out = done.stdout
        self.err = done.stderr.decode("utf-8", "replace")

    @property
    def text(self) -> str:
        return self.out.decode("utf-8")

    @property
    def json_lines(self) -> List[dict]:
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]

    @property
    def err_lines(self) -> List[str]:
        return [line for line in self.err.splitlines() if line.strip()]

    def __repr__(self) -> str:
        return "Result(status=%d, out=%r, err=%r)" % (self.status, self.out[:300], self.err[-2000:])


def dap_env(sim=None, style: Optional[str] = "id", **extra) -> dict:
    """The environment of a run: no DAP_* of the caller's; the simulator's URL and
    credentials as client ID + secret (style "id"), API key ("key") or none (None)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAP_")}
    if sim is not None:
        env["DAP_API_URL"] = sim.base_url
        if style == "id":
            env.update(DAP_CLIENT_ID=sim.client_id, DAP_CLIENT_SECRET=sim.client_secret)
        elif style == "key":
            env["DAP_API_KEY"] = sim.api_key
    env.update(extra)
    return env


def run_dap(*args, sim=None, style: Optional[str] = "id", env=None, cwd=None,
            timeout: float = 120) -> Result:
    done = subprocess.run(DAP + [str(a) for a in args], capture_output=True, cwd=cwd,
                          env=env if env is not None else dap_env(sim, style),
                          timeout=timeout)
    return Result(done)



def run_on_terminal(args, env, columns=200):
    """bin/dap with stderr on a pseudo-terminal of ``columns`` columns (stdout discarded):
    (exit status, what the terminal got)."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    try:
        with subprocess.Popen(DAP + list(args), stdout=subprocess.DEVNULL, stderr=terminal,
                              env=env) as proc:
            try:
                os.close(terminal)
                chunks = []
                while True:
                    try:
                        data = os.read(controller, 65536)
                    except OSError:  # the terminal's last writer is gone
                        break
                    if not data:
                        break
                    chunks.append(data)
                proc.wait(timeout=120)
            finally:
                proc.kill()
        return proc.returncode, b"".join(chunks).decode("utf-8", "replace")
    finally:
        os.close(controller)

def assert_one_line_error(result: Result, status: int, *words: str) -> str:
    """A failure reported as exactly one line on stderr, no traceback, the given status."""
    assert result.status == status, result
    assert len(result.err_lines) == 1, result
    line = result.err_lines[0]
    assert line.startswith("dap: error: "), result
    assert "Traceback" not in result.err
    for word in words:
        assert word in line, (word, line)
    return line


@pytest.fixture
def sim(make_simulator):
    """The test simulator with small parts (several per result)."""
    return make_simulator(rows_per_part=17)
