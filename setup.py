"""Packaging for dap, the client and command-line tool for Instructure's DAP Query API.

The version lives in dap_core/version.py and is read as text here, so that building a
wheel never imports the package (or its dependencies).
"""
import pathlib
import re

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent
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
    # Locked-down servers run older Pythons; 3.8 is the oldest we test (urllib3 2.2 there).
    python_requires=">=3.8",
    install_requires=[
        "urllib3>=2.0,<3",
        "docopt-ng>=0.9,<1",
    ],
    extras_require={
        "parquet": ["fastparquet>=2023.2"],
        # faster, same bytes: ISA-L's inflate for every part, orjson for Parquet's JSON
        # (dap_core/shell/fast.py; DAP_NO_FAST=1 turns them off)
        "fast": ["isal>=1.0", "orjson>=3.6"],
        # database replication: SQLite needs nothing; these only for their databases
        "postgresql": ["psycopg[binary]>=3.1,<4"],
        "mysql": ["PyMySQL>=1.0,<2"],
        "test": ["pytest>=7", "hypothesis>=6.50", "fastparquet>=2023.2",
                 "psycopg[binary]>=3.1,<4", "PyMySQL>=1.0,<2",
                 "isal>=1.0", "orjson>=3.6"],  # both paths of the extra fast are tested
    },
    entry_points={"console_scripts": ["dap = dap_core.shell.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Environment :: Console",
        "Topic :: Database",
    ],
)
