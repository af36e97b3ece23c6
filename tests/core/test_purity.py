"""The core modules do no I/O, read no clock, draw no randomness: a scan of their sources."""
import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "dap_core"
# __init__.py is the public face and imports the shell (Client); it decides nothing.
CORE_MODULES = sorted(p for p in CORE.glob("*.py") if p.name != "__init__.py")

FORBIDDEN_MODULES = {"urllib3", "socket", "http", "random", "secrets", "time", "os",
                     "subprocess", "shutil", "io", "tempfile", "threading", "asyncio",
                     "requests", "ssl", "select", "signal", "sys"}
FORBIDDEN_ATTRIBUTE_CALLS = {("time", "time"), ("time", "sleep"), ("time", "monotonic"),
                             ("time", "perf_counter"), ("datetime", "now"),
                             ("datetime", "utcnow"), ("datetime", "today"), ("date", "today")}
FORBIDDEN_NAME_CALLS = {"open", "print", "input", "exit", "quit", "now", "utcnow"}


def _violations(path):
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names = alias.name.split(".")
                if names[0] in FORBIDDEN_MODULES or "shell" in names:
                    found.append("import %s" % alias.name)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            parts = module.split(".")
            if node.level == 0 and parts[0] in FORBIDDEN_MODULES:
                found.append("from %s import" % module)
            if "shell" in parts or any(alias.name == "shell" for alias in node.names):
                found.append("from %s%s import shell" % ("." * node.level, module))
            if parts[0] == "datetime" or module == "time":
                for alias in node.names:
                    if alias.name in ("now", "utcnow", "today", "sleep", "time"):
                        found.append("from %s import %s" % (module, alias.name))
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in FORBIDDEN_NAME_CALLS:
                found.append("%s()" % func.id)
            if isinstance(func, ast.Attribute):
                owner = func.value
                owner_name = owner.id if isinstance(owner, ast.Name) else (
                    owner.attr if isinstance(owner, ast.Attribute) else None)
                if (owner_name, func.attr) in FORBIDDEN_ATTRIBUTE_CALLS:
                    found.append("%s.%s()" % (owner_name, func.attr))
                if func.attr in ("now", "utcnow"):
                    found.append(".%s()" % func.attr)
    return found


def test_there_are_core_modules_to_scan():
    names = {p.name for p in CORE_MODULES}
    assert {"errors.py", "timestamps.py", "credentials.py", "queries.py"} <= names


@pytest.mark.parametrize("path", CORE_MODULES, ids=lambda p: p.name)
def test_core_module_does_no_io_reads_no_clock_draws_no_randomness(path):
    assert _violations(path) == []


def test_the_scan_catches_what_it_looks_for(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import urllib3\nimport random\nfrom .shell import http\n"
                   "from datetime import datetime\nimport time\n"
                   "x = time.time()\ny = datetime.now()\ntime.sleep(1)\n")
    found = _violations(bad)
    for expected in ("import urllib3", "import random", "from .shell import shell",
                     "time.time()", "datetime.now()", "time.sleep()", "import time"):
        assert any(expected in f for f in found), (expected, found)
