"""bin/dap bypasses setup.py's pins (#10): whatever urllib3 and docopt the interpreter finds
first is what runs.  One that is too old is refused at start-up in one line naming the
package, the version found and the version needed (exit 3), never a traceback and never
"a bug"; --help still works, since it needs nothing but the checkout."""
from __future__ import annotations

import re

import pytest

from dap_core.shell import dependencies

from .conftest import assert_one_line_error, dap_env, run_dap

OLD_DOCOPT = '''"""The original docopt's last release, as Debian's python3-docopt still ships it."""
__version__ = '0.6.2'


class DocoptExit(SystemExit):
    pass


def docopt(doc, argv=None, help=True, version=None, options_first=False):
    raise RuntimeError("the original docopt was used")
'''


@pytest.fixture
def old_docopt(tmp_path):
    where = tmp_path / "old-docopt"
    where.mkdir()
    (where / "docopt.py").write_text(OLD_DOCOPT)
    return where


def _fake_urllib3(tmp_path, version):
    where = tmp_path / ("urllib3-%s" % version)
    (where / "urllib3").mkdir(parents=True)
    (where / "urllib3" / "__init__.py").write_text("__version__ = %r\n" % version)
    return where


def test_the_original_docopt_is_named_with_the_version_found_and_needed(simulator, old_docopt):
    env = dap_env(simulator, PYTHONPATH=str(old_docopt))
    for args in (["list"], ["snapshot", "--table", "accounts", "--format", "csv"]):
        line = assert_one_line_error(run_dap(*args, env=env), 3, "docopt-ng 0.9 or newer",
                                     "docopt 0.6.2", "pip install", "'docopt-ng>=0.9,<1'")
        assert "bug" not in line and str(old_docopt / "docopt.py") in line
    assert simulator.requests == []
    helped = run_dap("--help", env=env)
    assert helped.status == 0 and "snapshot" in helped.text


@pytest.mark.parametrize("version", ["1.25.11", "1.24", "0.3"])
def test_too_old_a_urllib3_is_named_with_the_version_found_and_needed(simulator, tmp_path,
                                                                        version):
    env = dap_env(simulator, PYTHONPATH=str(_fake_urllib3(tmp_path, version)))
    line = assert_one_line_error(run_dap("list", env=env), 3, "urllib3 1.26 or newer",
                                 "urllib3 %s" % version, "'urllib3>=1.26,<3'")
    assert "bug" not in line
    assert simulator.requests == []


def test_a_urllib3_of_no_known_version_is_refused_too(simulator, tmp_path):
    where = tmp_path / "weird"
    (where / "urllib3").mkdir(parents=True)
    (where / "urllib3" / "__init__.py").write_text("# no __version__\n")
    env = dap_env(simulator, PYTHONPATH=str(where))
    assert_one_line_error(run_dap("list", env=env), 3, "urllib3 1.26 or newer",
                          "no known version")


def test_a_dependency_that_fails_to_import_is_one_line(simulator, tmp_path):
    where = tmp_path / "broken"
    (where / "urllib3").mkdir(parents=True)
    (where / "urllib3" / "__init__.py").write_text("raise RuntimeError('half installed')\n")
    env = dap_env(simulator, PYTHONPATH=str(where))
    assert_one_line_error(run_dap("list", env=env), 3, "cannot import urllib3",
                          "half installed", "pip install")


def test_the_versions_this_suite_runs_with_pass_the_check():
    assert dependencies.problem() is None


@pytest.mark.parametrize("text,expected", [
    ("1.26.0", (1, 26, 0)), ("2.0.0a1", (2, 0, 0)), ("0.9.0", (0, 9, 0)), ("1.24", (1, 24)),
    ("2.2.3.post1", (2, 2, 3)), ("", None), (None, None), ("dev", None), (3, None),
])
def test_version_tuple(text, expected):
    assert dependencies.version_tuple(text) == expected


def test_every_lowest_version_is_a_version():
    for distribution, lowest, requirement in dependencies.REQUIRED.values():
        assert dependencies.version_tuple(lowest) is not None
        assert re.fullmatch(r"%s>=%s(,<\d+)?" % (re.escape(distribution), re.escape(lowest)),
                            requirement), requirement


def test_text_formats_run_without_fastparquet_numpy_or_pandas(simulator, tmp_path):
    """numpy, pandas and fastparquet serve Parquet only: hidden (as an install without the
    extra has none of them), every other format still runs, and Parquet is refused in one
    line naming the extra."""
    where = tmp_path / "no-extra"
    for name in ("numpy", "pandas", "fastparquet"):
        (where / name).mkdir(parents=True)
        (where / name / "__init__.py").write_text(
            "raise ModuleNotFoundError(%r, name=%r)\n" % ("hidden: " + name, name))
    env = dap_env(simulator, PYTHONPATH=str(where))
    for fmt in ("tsv", "csv", "jsonl", "json"):
        done = run_dap("snapshot", "--table", "accounts", "--format", fmt,
                       "--output-directory", str(tmp_path / fmt), env=env)
        assert done.status == 0, done.text
    assert_one_line_error(run_dap("snapshot", "--table", "accounts", "--format", "parquet",
                                  "--output-directory", str(tmp_path / "pq"), env=env),
                          3, "fastparquet", "pip install 'dap-cd2[parquet]'")


def test_a_parquet_run_leaves_an_installed_pyarrow_unimported(simulator, tmp_path):
    """pandas imports pyarrow wherever it finds one (some 35 MiB dap does not use): bin/dap
    keeps it out.  This pyarrow, first on the path, leaves a mark when imported."""
    where, mark = tmp_path / "with-pyarrow", tmp_path / "pyarrow-imported"
    (where / "pyarrow").mkdir(parents=True)
    (where / "pyarrow" / "__init__.py").write_text(
        "open(%r, 'w').close()\nraise ImportError('a pyarrow that leaves a mark')\n"
        % str(mark))
    env = dap_env(simulator, PYTHONPATH=str(where))
    done = run_dap("snapshot", "--table", "accounts", "--format", "parquet",
                   "--output-directory", str(tmp_path / "out"), env=env)
    assert done.status == 0, done.text
    assert list((tmp_path / "out").glob("*.parquet")) and not mark.exists()
