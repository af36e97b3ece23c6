"""The newcomer path: the README's commands and the Makefile's jobs work as written.

These run the real `make` and `bin/dap` as a person would, against the bundled simulator,
so that the README cannot rot.
"""
from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import venv

import pytest

from tests.project.checkouts import make_checkout

ROOT = pathlib.Path(__file__).resolve().parents[2]
MAKE = shutil.which("make")
needs_make = pytest.mark.skipif(MAKE is None, reason="make is not installed")


def run(argv, env=None, cwd=ROOT, timeout=600):
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def dap_env(sim, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAP_")}
    env.update(DAP_API_URL=sim.base_url, DAP_CLIENT_ID=sim.client_id,
               DAP_CLIENT_SECRET=sim.client_secret, **extra)
    return env


@needs_make
def test_make_demo_runs_snapshot_then_chained_incremental(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path / "demo"))
    done = run([MAKE, "--no-print-directory", "demo"], env=env)
    assert done.returncode == 0, done.stderr
    files = sorted(p.name for p in (tmp_path / "demo").iterdir())
    snapshots = [f for f in files if ".snapshot." in f and f.endswith(".csv")]
    incrementals = [f for f in files if ".incremental." in f and f.endswith(".csv")]
    assert len(snapshots) == 1 and len(incrementals) == 1, files
    assert snapshots[0] + ".meta.json" in files and incrementals[0] + ".meta.json" in files
    snap_meta = json.loads((tmp_path / "demo" / (snapshots[0] + ".meta.json")).read_text())
    incr_meta = json.loads((tmp_path / "demo" / (incrementals[0] + ".meta.json")).read_text())
    assert incr_meta["since"] == snap_meta["at"]
    assert incr_meta["rows"] > 0, "the demo's incremental should show changes"


@needs_make
def test_make_demo_fails_and_says_so_when_a_step_fails(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path / "demo"), TABLE="no_such_table")
    done = run([MAKE, "--no-print-directory", "demo"], env=env, timeout=120)
    assert done.returncode != 0
    assert "no_such_table" in done.stderr


@needs_make
def test_make_help_lists_every_target_with_a_line_each():
    done = run([MAKE, "--no-print-directory", "help"])
    assert done.returncode == 0
    listed = set(re.findall(r"^\s+make (\S+)", done.stdout, re.M))
    declared = set(re.findall(r"^([a-z-]+):.*## ", (ROOT / "Makefile").read_text(), re.M))
    assert declared >= {"install", "demo", "test", "simulator", "bench", "clean", "wheelhouse",
                        "list", "schema", "snapshot", "incremental", "help"}
    assert listed == declared


@needs_make
def test_make_jobs_call_bin_dap_and_chain_from_the_checkpoint(make_simulator, tmp_path):
    sim = make_simulator()
    env = dap_env(sim)
    out = tmp_path / "out"
    common = [MAKE, "--no-print-directory", f"OUT={out}"]

    listed = run(common + ["list"], env=env)
    assert listed.returncode == 0, listed.stderr
    assert "accounts" in listed.stdout.split()

    snap = run(common + ["snapshot", "TABLE=accounts", "FORMAT=csv"], env=env)
    assert snap.returncode == 0, snap.stderr
    state = json.loads((out / "dap-state.json").read_text())
    assert "accounts" in json.dumps(state)

    sim.advance(2)
    incr = run(common + ["incremental", "TABLE=accounts", "FORMAT=csv"], env=env)
    assert incr.returncode == 0, incr.stderr
    snap_line = json.loads(snap.stdout.strip().splitlines()[-1])
    incr_line = json.loads(incr.stdout.strip().splitlines()[-1])
    assert incr_line["since"] == snap_line["next_since"]

    missing = run(common + ["schema"], env=env)
    assert missing.returncode != 0 and "TABLE=" in missing.stderr


def test_dap_version_prints_the_version_setup_py_builds():
    built = run([sys.executable, "setup.py", "--version"])
    assert built.returncode == 0, built.stderr
    version = built.stdout.strip().splitlines()[-1]
    done = run([sys.executable, "bin/dap", "--version"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().split()[-1] == version


@needs_make
def test_wheelhouse_installs_offline_and_runs_a_snapshot(make_simulator, tmp_path):
    wheels = tmp_path / "wheels"
    built = run([MAKE, "--no-print-directory", f"WHEELS={wheels}", "wheelhouse"])
    assert built.returncode == 0, built.stderr
    names = {p.name.split("-")[0].lower() for p in wheels.glob("*.whl")}
    # every extra a production install may want: Parquet, the fast inflate, both drivers
    assert {"dap_cd2", "urllib3", "docopt_ng", "fastparquet", "isal", "psycopg", "pymysql"} <= names

    target = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(target)
    pip_env = dict(os.environ, PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1")
    installed = run([str(target / "bin" / "python"), "-m", "pip", "install", "--quiet",
                     "--no-index", "--find-links", str(wheels), "dap-cd2"], env=pip_env)
    assert installed.returncode == 0, installed.stderr

    dap = str(target / "bin" / "dap")
    helped = run([dap, "--help"], cwd=tmp_path)
    assert helped.returncode == 0 and "snapshot" in helped.stdout

    sim = make_simulator()
    out = tmp_path / "out"
    snap = run([dap, "snapshot", "--table", "accounts", "--format", "tsv",
                "--output-directory", str(out)], env=dap_env(sim), cwd=tmp_path)
    assert snap.returncode == 0, snap.stderr
    line = json.loads(snap.stdout.strip().splitlines()[-1])
    written = pathlib.Path(line["file"])
    assert line["rows"] > 0
    assert (written if written.is_absolute() else tmp_path / written).exists()


# -- bin/dap with the python3 a fresh machine has (#12) -------------------------------------------

README = (ROOT / "README.md").read_text(encoding="utf-8")


def _readme_dap_commands():
    """The bin/dap lines of the README's "## Commands" block, as argv lists, in order."""
    import shlex
    section = README.split("## Commands", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    return [shlex.split(line, comments=True) for line in block.splitlines()
            if line.startswith("bin/dap")]


@pytest.fixture
def bare_python(tmp_path_factory):
    """A python3 with nothing installed (no docopt, no urllib3), as on a fresh machine."""
    where = tmp_path_factory.mktemp("bare")
    venv.EnvBuilder(with_pip=False).create(where)
    python = where / "bin" / "python3"
    assert run([str(python), "-c", "import docopt"]).returncode != 0
    assert run([str(python), "-c", "import urllib3"]).returncode != 0
    return where / "bin"


def _path_first(directory, sim=None, **extra):
    env = dap_env(sim, **extra) if sim is not None else dict(os.environ, **extra)
    env["PATH"] = str(directory) + os.pathsep + env.get("PATH", "")
    return env


def test_readme_commands_run_with_a_python3_that_lacks_docopt_once_make_made_the_venv(
        make_simulator, bare_python, tmp_path):
    if not os.access(ROOT / ".venv" / "bin" / "python", os.X_OK):
        pytest.skip("no .venv in this checkout (make install makes it)")
    checkout = make_checkout(tmp_path / "checkout", ROOT / ".venv")
    sim = make_simulator(retention_days=100000)
    env = _path_first(bare_python, sim)
    commands = _readme_dap_commands()
    assert [c[:2] for c in commands[:2]] == [["bin/dap", "list"]] * 2 and len(commands) >= 6
    for argv in commands:
        argv = [{"URL": sim.base_url, "KEY": sim.api_key}.get(a, a) for a in argv]
        done = run([str(checkout / argv[0])] + argv[1:], env=env, cwd=checkout, timeout=120)
        # dated examples may lie outside the simulator's data (8); nothing else may fail
        assert done.returncode in (0, 8), (argv, done.stderr)
        assert "Traceback" not in done.stderr
        if argv[1:] == ["list"]:
            assert "accounts" in done.stdout.split()
    assert (checkout / "downloads" / "accounts.schema.json").exists()


def test_bin_dap_without_a_venv_says_exactly_what_to_run(bare_python, tmp_path):
    checkout = make_checkout(tmp_path / "checkout")
    done = run([str(checkout / "bin" / "dap"), "list"], env=_path_first(bare_python),
               cwd=tmp_path, timeout=60)
    assert done.returncode == 3
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert "make install" in lines[0] and "pip install" in lines[0] and "docopt-ng" in lines[0]
    # help needs nothing but the checkout
    helped = run([str(checkout / "bin" / "dap"), "--help"], env=_path_first(bare_python))
    assert helped.returncode == 0 and "snapshot" in helped.stdout


def test_bin_dap_runs_a_venv_that_lacks_the_dependencies_too_only_once(bare_python, tmp_path):
    checkout = make_checkout(tmp_path / "checkout", bare_python.parent)
    done = run([str(checkout / "bin" / "dap"), "list"], env=_path_first(bare_python),
               cwd=tmp_path, timeout=60)
    assert done.returncode == 3 and "make install" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_every_pip_install_names_the_distribution_setup_py_builds():
    """`dap` on PyPI is another project: README, Makefile and error hints name ours (#12)."""
    built = run([sys.executable, "setup.py", "--name"])
    assert built.returncode == 0, built.stderr
    name = built.stdout.strip().splitlines()[-1]
    assert name == "dap-cd2"
    texts = [(ROOT / "README.md").read_text(), (ROOT / "Makefile").read_text()]
    texts += [p.read_text() for p in (ROOT / "dap_core").rglob("*.py")]
    named = re.findall(r"pip install [^\n]*?'([a-z0-9_-]+)\[", "\n".join(texts))
    # the one other project installed on purpose: Instructure's client, into its own
    # virtualenv, for the compatibility tests (make official-client)
    assert named.count("instructure-dap-client") <= 1
    named = [n for n in named if n != "instructure-dap-client"]
    assert named and set(named) == {name}, named


@needs_make
def test_make_incremental_with_since_after_a_checkpoint_continues_and_failures_name_daps_status(
        make_simulator, tmp_path):
    """SINCE once a checkpoint exists used to be refused (the Makefile always passes
    --state); and make's own exit status 2 hid dap's (#12)."""
    sim = make_simulator()
    env = dap_env(sim)
    out = tmp_path / "out"
    common = [MAKE, "--no-print-directory", f"OUT={out}"]
    assert run(common + ["snapshot", "TABLE=accounts"], env=env).returncode == 0
    at = json.loads((out / "dap-state.json").read_text())["checkpoints"]["canvas.accounts"]
    sim.advance(1)
    incr = run(common + ["incremental", "TABLE=accounts", "SINCE=2020-01-01T00:00:00Z"], env=env)
    assert incr.returncode == 0, incr.stderr
    assert "SINCE=2020-01-01T00:00:00Z is not used" in incr.stderr
    assert json.loads(incr.stdout.strip().splitlines()[-1])["since"] == at["next_since"]

    failed = run(common + ["snapshot", "TABLE=no_such_table"], env=env)
    assert failed.returncode == 2  # make's own
    assert "dap failed with exit status 6" in failed.stderr
