"""The simulator is an independent implementation of the contract: it never imports dap_core."""
from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_no_module_of_fixtures_imports_dap_core():
    for path in (ROOT / "fixtures").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n == "dap_core" or n.startswith("dap_core.") for n in names), path


def test_importing_and_running_the_simulator_loads_no_dap_core():
    code = ("import sys, urllib.request\n"
            "from fixtures.simulator import Simulator\n"
            "with Simulator() as sim:\n"
            "    urllib.request.urlopen(sim.base_url + '/__simulator__/').read()\n"
            "assert not [m for m in sys.modules if m.startswith('dap_core')]\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
