"""The database commands of the command line: ``initdb``, ``syncdb``, ``dropdb``, ``listdb``.

Each is parsing and printing around one :class:`~dap_core.shell.replica.Replica` call per
table: stdout gets one JSON line per table (what was done, rows, checkpoint, schema
version), stderr one line a person reads.
"""
from __future__ import annotations

import json
import logging
from typing import Any, Mapping

from .. import errors

__all__ = ["database_settings", "run"]

log = logging.getLogger("dap")


def database_settings(settings: Any, args: Mapping[str, Any], environ: Mapping[str, str]
                      ) -> None:
    """The database options of ``args`` (and ``DAP_CONNECTION_STRING``), checked, onto
    ``settings``."""
    from ..dburl import DEFAULT_DATABASE_URL, parse_database_url
    settings.database_secrets = []
    settings.database_url = None
    if settings.command not in ("initdb", "syncdb", "dropdb", "listdb"):
        return
    text = args.get("--connection-string")
    if text is None:
        text = environ.get("DAP_CONNECTION_STRING") or None
    settings.default_database = text is None
    url = parse_database_url(text if text is not None else DEFAULT_DATABASE_URL)
    settings.database_url = url
    settings.database_secrets = list(url.secrets)
    settings.replace = bool(args.get("--replace"))
    settings.reinit_if_needed = bool(args.get("--reinit-if-needed"))
    wait_text = args.get("--lock-wait") or "0"
    try:
        wait = float(wait_text)
    except ValueError:
        wait = -1.0
    if not 0 <= wait <= 86400:
        raise errors.InvalidInput("--lock-wait takes a number of seconds from 0 to 86400, "
                                  "not %r" % wait_text, "pass for example --lock-wait 600")
    settings.lock_wait = wait
    # listdb: a table for people unless JSON lines are asked for
    settings.listdb_json = settings.command == "listdb" and _format_given(args)


def _format_given(args: Mapping[str, Any]) -> bool:
    # docopt fills --format with its default (jsonl) for every command; listdb's default is
    # the table for people, so only an explicit json/jsonl switches it
    if not args.get("__format_given__"):
        return False
    if args.get("--format") not in ("json", "jsonl"):
        raise errors.InvalidInput("listdb prints a table or JSON lines, not %r" % args.get(
            "--format"), "leave --format out, or pass --format json")
    return True


def run(client: Any, settings: Any, console: Any, each_table, tables_of) -> int:
    from .replica import Replica
    if settings.default_database:
        console.say("dap: no connection string: using SQLite in %s (set "
                    "DAP_CONNECTION_STRING or --connection-string for another database)"
                    % settings.database_url.database)
    with Replica(client, settings.database_url, lock_wait=settings.lock_wait) as replica:
        if settings.command == "listdb":
            return _listdb(replica, settings, console)
        if settings.command == "dropdb" and settings.tables is not None:
            from .. import queries
            if settings.tables is queries.ALL:
                tables = tuple(sorted(r["table"] for r in replica.list()
                                      if r["namespace"] == settings.namespace))
            else:
                tables = tuple(settings.tables)
        else:
            tables = tables_of(client, settings)

        def work(table: str) -> None:
            if settings.command == "initdb":
                result = replica.init(settings.namespace, table, replace=settings.replace)
            elif settings.command == "syncdb":
                result = replica.sync(settings.namespace, table,
                                      reinit_if_needed=settings.reinit_if_needed)
            else:
                result = replica.drop(settings.namespace, table)
            console.data_line(json.dumps(result.as_dict()))
            console.say(_summary(result, replica))

        return each_table(tables, settings, console, work)


def _summary(result: Any, replica: Any) -> str:
    where = "%s (%s)" % (result.target, replica.url.redacted())
    label = "%s.%s" % (result.namespace, result.table)
    if result.action == "drop":
        return "%s: dropped %s" % (label, where)
    checkpoint = result.as_dict()["checkpoint"]
    if result.action == "sync":
        text = "%s: %d change%s applied to %s, checkpoint %s" % (
            label, result.rows, "s" * (result.rows != 1), where, checkpoint)
        if result.schema_changed:
            text += ", schema now version %s" % result.schema_version
        return text
    return "%s: %s %d rows into %s, checkpoint %s" % (
        label, "replaced with" if result.action == "replace" else "loaded", result.rows,
        where, checkpoint)


def _listdb(replica: Any, settings: Any, console: Any) -> int:
    rows = replica.list()
    for row in rows:
        if settings.listdb_json:
            console.data_line(json.dumps(row))
        else:
            console.data_line("\t".join(str(row[k]) for k in (
                "namespace", "table", "target", "checkpoint", "schema_version")))
    if not rows:
        console.say("dap: no tables in %s" % replica.url.redacted())
    return 0
