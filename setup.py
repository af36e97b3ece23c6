"""Packaging for dap, the client and command-line tool for Instructure's DAP Query API.

The version lives in dap_core/version.py and is read as text here, so that building a
wheel never imports the package (or its dependencies).
"""
import pathlib
import re

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent
#: Every floor below is what CI's lowest job installs (ci/constraints-lowest.txt, make
#: test-matrix): raise one only with it.  Parquet: fastparquet from 2024.11 (older ones fail
#: the writer's tests: built for numpy 1, or timestamps read back as 1970 under pandas 3);
#: pandas from 2.2 (2.1 cannot hold timestamps past 2262 in microseconds); below 2027
#: because the writer uses fastparquet's internals.  None of them installs on Python 3.8.
PARQUET = ["fastparquet>=2024.11,<2027", "pandas>=2.2", "numpy>=1.22.4"]
VERSION = re.search(
    r'^__version__ = "([^"]+)"', (HERE / "dap_core" / "version.py").read_text(), re.M
).group(1)

setup(
    # "dap" on PyPI is another project: the distribution is dap-cd2 (Canvas Data 2); the
    # import package stays dap_core and the command stays dap
    name="dap-cd2",
    version=VERSION,
    description="Client and CLI for Instructure's Data Access Platform (Canvas Data 2) Query API",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    packages=find_packages(include=["dap_core", "dap_core.*"]),
    # Locked-down servers run older Pythons and their urllib3 1.26: CI runs 3.8 with the
    # lowest versions below (dap_core/shell/dependencies.py checks them at start-up)
    python_requires=">=3.8",
    install_requires=[
        "urllib3>=1.26,<3",
        "docopt-ng>=0.9,<1",
    ],
    extras_require={
        "parquet": PARQUET,  # Python 3.9 or newer
        # faster, same bytes: ISA-L's inflate for every part
        # (dap_core/shell/fast.py; DAP_NO_FAST=1 turns it off)
        "fast": ["isal>=1.0"],
        # database replication: SQLite needs nothing; these only for their databases
        "postgresql": ["psycopg[binary]>=3.1,<4"],
        "mysql": ["PyMySQL>=1.0,<2"],
        "test": ["pytest>=7", "hypothesis>=6.85", "ruff==0.17.6",
                 # make test runs the suite on two workers (pytest -n 2); 3.5 is the
                 # newest floor that still installs on Python 3.8 with pytest 7.0
                 "pytest-xdist>=3.5,<4",
                 # make lint: mypy dap_core (mypy.ini); mypy 2 runs on Python 3.10 or newer
                 "mypy==2.4.1; python_version >= '3.10'",
                 # make coverage: `patch = subprocess` follows bin/dap; none for Python 3.8
                 "coverage>=7.10; python_version >= '3.9'",
                 "psycopg[binary]>=3.1,<4", "PyMySQL>=1.0,<2",
                 "isal>=1.0",  # both paths of the extra fast are tested
                 # a second reader of every Parquet file the tests write (tests/parquet_readers.py)
                 "pyarrow>=16,<27; python_version >= '3.9'",
                 "backports.zoneinfo>=0.2.1; python_version < '3.9'"]
                + [r + "; python_version >= '3.9'" for r in PARQUET],  # 3.8: Parquet skipped
    },
    entry_points={"console_scripts": ["dap = dap_core.shell.cli:program"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Environment :: Console",
        "Topic :: Database",
    ],
)
