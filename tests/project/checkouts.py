"""A copy of the checkout's runnable parts, for the tests of how bin/dap starts."""
from __future__ import annotations

import pathlib
import shutil

ROOT = pathlib.Path(__file__).resolve().parents[2]


def make_checkout(where, venv_dir=None):
    """A checkout of bin/, dap_core/ and the Makefile in ``where``, with ``venv_dir`` as its
    .venv (none when None)."""
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "bin", where / "bin", ignore=ignore)
    shutil.copytree(ROOT / "dap_core", where / "dap_core", ignore=ignore)
    shutil.copy(ROOT / "Makefile", where / "Makefile")
    if venv_dir is not None:
        (where / ".venv").symlink_to(venv_dir, target_is_directory=True)
    return where
