"""Print the requirements setup.py declares, one a line: install_requires, then each extra
named on the command line (python3 ci/requirements.py parquet test); --without NAME,...
leaves out the distributions named.

setup.py runs with a stand-in for setuptools, so this needs no setuptools (Python 3.12's
venvs have none), builds nothing and writes nothing into the checkout.
"""
import os
import re
import runpy
import sys
import types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def name_of(requirement):
    """The distribution a requirement names, normalised: psycopg[binary]>=3.1 -> psycopg."""
    return re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0].lower().replace(
        "_", "-").replace(".", "-")


def declared(extras, without=()):
    captured = {}
    stand_in = types.ModuleType("setuptools")
    stand_in.setup = lambda **kwargs: captured.update(kwargs)
    stand_in.find_packages = lambda *args, **kwargs: []
    saved = sys.modules.get("setuptools")
    sys.modules["setuptools"] = stand_in
    try:
        runpy.run_path(os.path.join(ROOT, "setup.py"), run_name="__main__")
    finally:
        if saved is not None:
            sys.modules["setuptools"] = saved
        else:
            del sys.modules["setuptools"]
    wanted = list(captured.get("install_requires", []))
    for extra in extras:
        if extra not in captured.get("extras_require", {}):
            sys.exit("ci/requirements.py: setup.py has no extra %r" % extra)
        wanted.extend(captured["extras_require"][extra])
    skipped = {name_of(name) for name in without}
    seen = []
    for requirement in wanted:
        if requirement not in seen and name_of(requirement) not in skipped:
            seen.append(requirement)
    return seen


if __name__ == "__main__":
    args = sys.argv[1:]
    without = []
    if "--without" in args:
        at = args.index("--without")
        without = args[at + 1].split(",") if at + 1 < len(args) else []
        del args[at:at + 2]
    print("\n".join(declared(args, without)))
