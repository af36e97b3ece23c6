"""The packages the command line cannot run without, checked at start-up.

``bin/dap`` runs from a checkout and so bypasses the pins of setup.py: whatever ``urllib3`` or
``docopt`` the interpreter finds is what runs.  Too old a urllib3 and a cut connection could
pass for the end of a body; the original ``docopt`` (0.6) parses differently from docopt-ng
and failed deep inside a command as "a bug".  :func:`problem` says instead, in one line,
which package is missing or too old, which version was found and which one is needed.

REQUIRED is kept equal to setup.py's install_requires by tests/project/test_ci_matrix.py.
"""
from __future__ import annotations

import os
import re
import sys
from typing import Optional, Tuple

from ..errors import one_line

__all__ = ["REQUIRED", "problem", "missing_line", "version_tuple"]

#: import name -> (distribution, lowest version, pip requirement)
REQUIRED = {
    "urllib3": ("urllib3", "1.26", "urllib3>=1.26,<3"),
    "docopt": ("docopt-ng", "0.9", "docopt-ng>=0.9,<1"),
}


def version_tuple(text: object) -> Optional[Tuple[int, ...]]:
    """(1, 26, 0) for "1.26.0" (or "1.26.0rc1"); None when ``text`` holds no version."""
    match = re.match(r"\s*(\d+(?:\.\d+)*)", text if isinstance(text, str) else "")
    return tuple(int(part) for part in match.group(1).split(".")) if match else None


def _checkout_root() -> Optional[str]:
    """The checkout this dap_core runs from (it has a Makefile and bin/), or None."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if os.path.isfile(os.path.join(root, "Makefile")) and os.path.isdir(os.path.join(root, "bin")):
        return root
    return None


def _what_to_run(module: str) -> str:
    """make install in a checkout, else pip for this very interpreter; pip is given every
    requirement (one command mends all; those already right stay as they are)."""
    python = sys.executable or "python3"
    pip = "%s -m pip install %s" % (python, " ".join("'%s'" % r for _, _, r in REQUIRED.values()))
    root = _checkout_root()
    if root is not None:
        return "run make install in %s (bin/dap then uses its .venv), or %s" % (root, pip)
    return pip


def missing_line(module: str) -> str:
    """What to say when the required ``module`` cannot be imported at all."""
    distribution, lowest, _ = REQUIRED[module]
    return "dap needs the Python package %s (%s or newer), which %s lacks: %s" % (
        distribution, lowest, sys.executable or "python3", _what_to_run(module))


def _too_old_line(module: str, found: str, where: str) -> str:
    distribution, lowest, _ = REQUIRED[module]
    return "dap needs %s %s or newer, but %s has %s%s: %s" % (
        distribution, lowest, sys.executable or "python3", found,
        " (%s)" % where if where else "", _what_to_run(module))


def _check(module: str) -> Optional[str]:
    """One line about ``module`` when it is missing, broken or too old; else None."""
    try:
        imported = __import__(module)
    except ImportError as exc:
        if exc.name not in (None, module) and not (exc.name or "").startswith(module + "."):
            # the package is there but something it imports is not
            return "dap cannot import %s: %s: %s" % (module, one_line(exc, 200),
                                                     _what_to_run(module))
        return missing_line(module)
    except Exception as exc:  # a broken installation: still one line, never a traceback
        return "dap cannot import %s (%s: %s): %s" % (
            module, type(exc).__name__, one_line(exc, 200), _what_to_run(module))
    lowest = REQUIRED[module][1]
    text = getattr(imported, "__version__", None)
    found = version_tuple(text)
    where = getattr(imported, "__file__", None) or ""
    # the original docopt (0.6.2 is its last release) has the same import name and the same
    # DocoptExit as docopt-ng: only the version tells them apart, so it is named by module
    name = module
    if found is None:
        return _too_old_line(module, "a %s of no known version" % name, where)
    if found < version_tuple(lowest):  # type: ignore[operator]
        return _too_old_line(module, "%s %s" % (name, text), where)
    return None


def problem() -> Optional[str]:
    """The first required package that is missing or too old, as one line; None when all
    are there.  Imports them (the command about to run needs them anyway)."""
    for module in ("docopt", "urllib3"):
        line = _check(module)
        if line is not None:
            return line
    return None
