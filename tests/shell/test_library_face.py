"""The library face: `from dap_core import ...` gives a small documented API, imports
nothing heavy until used, and no repr shows a secret."""
from __future__ import annotations

import subprocess
import sys

import dap_core


def test_every_public_name_resolves_and_is_documented():
    for name in dap_core.__all__:
        value = getattr(dap_core, name)
        if isinstance(value, type) and issubclass(value, Exception):
            continue  # the error classes are documented together, in dap_core.errors
        if callable(value):
            assert value.__doc__, name
    for name in ("Client", "DownloadResult", "resolve_credentials", "Credentials",
                 "SnapshotQuery", "IncrementalQuery", "DapError", "NotFound", "__version__"):
        assert name in dap_core.__all__


def test_importing_dap_core_loads_neither_urllib3_nor_the_shell():
    code = ("import sys, dap_core; "
            "from dap_core import SnapshotQuery, resolve_credentials, DapError; "
            "bad = [m for m in ('urllib3', 'dap_core.shell', 'fastparquet', 'pandas') "
            "if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_cli_help_imports_neither_urllib3_nor_pandas():
    code = ("import sys, io; from dap_core.shell import cli; "
            "cli.main(['--help'], stdout=io.StringIO()); "
            "print([m for m in ('urllib3', 'pandas', 'fastparquet') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_unknown_names_are_attribute_errors():
    import pytest
    with pytest.raises(AttributeError):
        dap_core.no_such_thing  # noqa: B018


def test_client_and_credentials_reprs_hide_secrets():
    from dap_core import Client, resolve_credentials
    creds = resolve_credentials(client_id="us-east-1#abc", client_secret="s3cret-value")
    assert "s3cret" not in repr(creds)
    with Client("http://127.0.0.1:9", creds) as client:
        assert "s3cret" not in repr(client) and "s3cret" not in repr(client.session)
