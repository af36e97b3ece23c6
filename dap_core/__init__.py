"""dap_core: a client for Instructure's DAP Query API (Canvas Data 2).

The library never prints, never exits and keeps no global state; the command line
(``bin/dap``, ``dap_core.shell.cli``) is a thin layer over it.

Example::

    from dap_core import Client, SnapshotQuery, IncrementalQuery, resolve_credentials

    credentials = resolve_credentials(client_id="us-east-1#...", client_secret="...")
    with Client("https://api-gateway.instructure.com", credentials) as dap:
        dap.list_tables("canvas")                  # ["accounts", ...]
        dap.get_schema("canvas", "accounts")       # {"schema": {...}, "version": 3}
        query = SnapshotQuery("canvas", "accounts", format="csv")
        job = dap.run(query)                       # start the job, wait until it is complete
        result = dap.download(job, query, "out/")  # DownloadResult(path, meta_path, rows, metadata)
        for record in dap.iter_records(dap.run(SnapshotQuery("canvas", "accounts"))):
            ...                                    # dicts: {"key": ..., "value": ..., "meta": ...}
        following = IncrementalQuery("canvas", "accounts", since=job.at)

Names (imported lazily, so ``import dap_core`` costs almost nothing):

* :class:`Client` -- a session with the API: ``list_tables``, ``get_schema``, ``run``,
  ``download``, ``write_records``, ``iter_records``, ``download_many``, and
  ``download_chained`` (each table continued from its checkpoint in a state file, the
  checkpoint moved once the output is committed); a context manager.
* :class:`DownloadResult` -- what ``Client.download`` wrote.
* :class:`Replica` -- DAP tables kept in a database (SQLite, PostgreSQL, MySQL/MariaDB):
  ``init``, ``sync``, ``drop``, ``list``; :class:`ReplicaResult` -- what one of them did.
* :func:`resolve_credentials`, :class:`Credentials` -- a client ID and secret, or an API key.
* :class:`SnapshotQuery`, :class:`IncrementalQuery` -- what to ask for (validated).
* :func:`parse_timestamp`, :func:`format_timestamp` -- ISO 8601 with a zone.
* :func:`next_since` -- where the next incremental query of a chain starts.
* the error classes (:class:`DapError` and its subclasses; each has ``exit_status``).
* ``__version__``.
"""
from __future__ import annotations

import importlib
from typing import Any, Dict, List

_ERRORS = (
    "DapError", "UserError", "UsageError", "InvalidInput", "InvalidTimestamp",
    "InvalidCredentials", "MissingCredentials", "ChainError", "StateConflict", "StateCorrupt",
    "ServiceError", "AuthenticationFailed", "Forbidden", "NotFound", "ValidationFailed",
    "OutOfRange", "SnapshotRequired", "JobFailed", "ServiceUnavailable", "RateLimited",
    "UnexpectedAnswer", "OutputError", "PartialFailure", "DatabaseError", "DatabaseBusy",
    "SchemaChangeRefused", "AlreadyInitialized",
)

# name -> module that defines it (relative to this package)
_WHERE: Dict[str, str] = {
    "__version__": ".version",
    "Client": ".shell.client",
    "DownloadResult": ".shell.client",
    "Replica": ".shell.replica",
    "ReplicaResult": ".shell.replica",
    "DEFAULT_BASE_URL": ".shell.http",
    "Credentials": ".credentials",
    "resolve_credentials": ".credentials",
    "SnapshotQuery": ".queries",
    "IncrementalQuery": ".queries",
    "parse_timestamp": ".timestamps",
    "format_timestamp": ".timestamps",
    "next_since": ".chain",
}
_WHERE.update((name, ".errors") for name in _ERRORS)

__all__: List[str] = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError("module 'dap_core' has no attribute %r" % name)
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # next time, no lookup
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))
