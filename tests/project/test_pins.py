"""The floors setup.py declares are the ones CI tests, and bin/dap holds to them (#10).

- ci/constraints-lowest.txt (what CI's lowest job installs) pins every requirement of the
  test extra at the floor setup.py declares, so raising or lowering a floor in one place
  and not the other fails here, not silently in a user's install.
- dap_core/shell/dependencies.py (what bin/dap checks at start-up) names the same floors
  as install_requires.
- bin/dap run by a python3 whose docopt or urllib3 is too old (Debian's python3-docopt is
  the original docopt 0.6.2) runs with the checkout's .venv when there is one, and says in
  one line what is too old when there is none.
"""
from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import venv

import pytest

from dap_core.shell import dependencies
from tests.project.checkouts import make_checkout

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _load_ci_requirements():
    """ci/requirements.py (setup.py's requirements, read without setuptools)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("ci_requirements",
                                                  ROOT / "ci" / "requirements.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


requirements = _load_ci_requirements()

#: not loaded by the fast tests, so not installed by the lowest job (ci/test-python)
UNCHECKED = {"psycopg", "pymysql"}


def _version(text):
    """(1, 26) for "1.26" and "1.26.0": trailing zeros say nothing more."""
    parts = [int(p) for p in text.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def _floors(extras):
    """{distribution: floor text} of setup.py's requirements with a >= or == bound."""
    floors = {}
    for requirement in requirements.declared(extras):
        spec = requirement.split(";")[0]
        match = re.search(r"(>=|==)\s*([0-9][0-9.]*)", spec)
        if match:
            floors[requirements.name_of(requirement)] = match.group(2)
    return floors


def _constraints():
    pins = {}
    for line in (ROOT / "ci" / "constraints-lowest.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, "only name==version lines: %r" % line
            pins[requirements.name_of(name)] = version.strip()
    return pins


def test_the_lowest_job_installs_every_floor_setup_py_declares():
    floors = {name: floor for name, floor in _floors(["test"]).items()
              if name not in UNCHECKED}
    pins = _constraints()
    assert set(floors) <= set(pins), "add these to ci/constraints-lowest.txt: %s" % sorted(
        set(floors) - set(pins))
    for name, floor in floors.items():
        assert _version(pins[name]) == _version(floor), (name, floor, pins[name])
    assert set(pins) <= set(floors), "no floor in setup.py for %s" % sorted(
        set(pins) - set(floors))


def test_the_parquet_extra_and_the_test_extra_agree():
    assert _floors(["parquet"]).items() <= _floors(["test"]).items()


def test_start_up_checks_the_floors_of_install_requires():
    declared = [r for r in requirements.declared([])]
    assert sorted(r for _, _, r in dependencies.REQUIRED.values()) == sorted(
        r.replace(" ", "") for r in declared)
    for distribution, lowest, requirement in dependencies.REQUIRED.values():
        assert requirements.name_of(requirement) == requirements.name_of(distribution)
        assert _version(lowest) == _version(_floors([])[requirements.name_of(distribution)])


# -- bin/dap with a python3 whose packages are too old ---------------------------------------

OLD_DOCOPT = ("__version__ = '0.6.2'\n\n\n"
              "def docopt(*args, **kwargs):\n    raise RuntimeError('used')\n")


@pytest.fixture
def old_python(tmp_path_factory):
    """A python3 whose site-packages hold the original docopt 0.6.2 and urllib3 1.25.11
    (stand-ins), as a Debian system Python might."""
    where = tmp_path_factory.mktemp("old")
    venv.EnvBuilder(with_pip=False).create(where)
    python = where / "bin" / "python3"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], capture_output=True, text=True, check=True)
    site = pathlib.Path(site.stdout.strip())
    (site / "docopt.py").write_text(OLD_DOCOPT)
    (site / "urllib3").mkdir()
    (site / "urllib3" / "__init__.py").write_text("__version__ = '1.25.11'\n")
    return where / "bin"


def _env(python_dir, sim=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAP_")
           and k != "PYTHONPATH"}
    env["PATH"] = str(python_dir) + os.pathsep + env.get("PATH", "")
    if sim is not None:
        env.update(DAP_API_URL=sim.base_url, DAP_CLIENT_ID=sim.client_id,
                   DAP_CLIENT_SECRET=sim.client_secret)
    return env


def _venv_with_dependencies():
    """A virtualenv whose python has dap's dependencies: the checkout's .venv, else the
    one running these tests."""
    own = ROOT / ".venv"
    if (own / "bin" / "python").exists():
        return own
    if sys.prefix != sys.base_prefix:
        return pathlib.Path(sys.prefix)
    pytest.skip("no virtualenv with dap's dependencies to link as .venv")


def test_bin_dap_with_too_old_packages_runs_the_checkouts_venv(old_python, tmp_path,
                                                              make_simulator):
    checkout = make_checkout(tmp_path / "checkout", _venv_with_dependencies())
    sim = make_simulator()
    done = subprocess.run([str(checkout / "bin" / "dap"), "list"], env=_env(old_python, sim),
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "accounts" in done.stdout.split()


def test_bin_dap_with_too_old_packages_and_no_venv_names_what_is_too_old(old_python, tmp_path):
    checkout = make_checkout(tmp_path / "checkout")
    done = subprocess.run([str(checkout / "bin" / "dap"), "list"], env=_env(old_python),
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "docopt-ng 0.9 or newer" in lines[0] and "docopt 0.6.2" in lines[0]
    assert "make install" in lines[0]
    helped = subprocess.run([str(checkout / "bin" / "dap"), "--help"], env=_env(old_python),
                            capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "snapshot" in helped.stdout
