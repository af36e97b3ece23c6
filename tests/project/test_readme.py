"""The README stays true: its library example runs, its tables match the code."""
from __future__ import annotations

import contextlib
import io
import pathlib
import re

from dap_core import errors

ROOT = pathlib.Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_library_example_runs_against_the_simulator(simulator, tmp_path, monkeypatch):
    block = re.search(r"```python\n(.*?)```", README, re.S).group(1)
    assert "http://127.0.0.1:8642" in block
    code = block.replace("http://127.0.0.1:8642", simulator.base_url)
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    namespace: dict = {}
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), namespace)
    assert "accounts" in printed.getvalue()
    assert namespace["result"].rows == len(simulator.current_state("canvas", "accounts"))
    assert pathlib.Path(namespace["result"].path).exists()
    assert namespace["following"].since == namespace["job"].at


def test_readme_exit_status_table_is_the_code_table():
    rows = re.search(r"## Exit statuses\n\n(.*?)\n\n", README, re.S).group(1)
    documented = {int(m) for m in re.findall(r"^\| (\d+) \|", rows, re.M)}
    coded = {row[0] for row in errors.EXIT_STATUSES}
    assert documented == coded


def test_dap_help_lists_every_exit_status_of_the_code_table():
    from dap_core.shell.cli import USAGE
    listed = USAGE.split("Exit status:", 1)[1]
    named = {int(m) for m in re.findall(r"(?<![\w-])(\d+) [a-z]", listed)}
    assert named == {row[0] for row in errors.EXIT_STATUSES}


def test_readme_shows_the_two_commands_first():
    first_commands = README.split("## Credentials")[0]
    assert "make demo" in first_commands and "make test" in first_commands


def test_every_python_block_of_the_readme_runs_against_the_simulator(simulator, tmp_path,
                                                                     monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        code = block.replace("http://127.0.0.1:8642", simulator.base_url)
        # DAP's 5 job starts a minute, paced over half a second here
        assert code.count("credentials) as dap") == 1
        code = code.replace("credentials) as dap", "credentials, pace_window=0.5) as dap")
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code, "README.md", "exec"), {})
    # the replication example: its list and each table of sync_many were printed
    assert "'namespace': 'canvas'" in printed.getvalue()
    assert "accounts" in printed.getvalue() and "users" in printed.getvalue()
