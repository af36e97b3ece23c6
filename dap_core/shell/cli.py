"""dap's command line: parsing (``usage.py``) and printing (``console.py``, ``progress.py``)
around the library's calls, one runner per command; ``main`` turns every outcome into an
exit status (``errors.EXIT_STATUSES``)."""
from __future__ import annotations

import json
import logging
import os
import sys
import threading
import traceback
from typing import Any, List, Mapping, Optional, Sequence, TextIO, Tuple

from .. import errors
from .console import Console, Secrets
from .progress import LogFormatter, LogHandler, TerminalProgress
from .usage import (
    DATABASE_ONLY, USAGE, Settings, before_dashes, command_help, parse_command_line, wants_help,
)

__all__ = ["main", "program", "USAGE", "command_help"]

log = logging.getLogger("dap")


# -- commands ----------------------------------------------------------------------------------

def _tables(client, settings: Settings) -> Tuple[str, ...]:
    from .. import queries
    if settings.tables is None:  # USAGE: the commands that come here take --table
        raise errors.UsageError("%s needs --table" % settings.command)
    if settings.tables is queries.ALL:
        return queries.expand_tables(queries.ALL, client.list_tables(settings.namespace))
    return tuple(settings.tables)


def cmd_list(client, settings: Settings, console: Console) -> int:
    for name in client.list_tables(settings.namespace):
        console.stdout.write(name + "\n")
    console.stdout.flush()
    return 0


def _labelled(settings: Settings, work):
    """``work`` with the table named in every log record it makes."""
    from .pipeline import table_context

    def labelled(table: str):
        with table_context("%s.%s" % (settings.namespace, table)):
            return work(table)
    return labelled


def _each_table(tables: Sequence[str], settings: Settings, console: Console, work,
                concurrency: Optional[int] = None) -> int:
    """Run ``work(table)`` for each table, ``concurrency`` (default ``--concurrency``) at
    once, and report the outcomes (``_report``)."""
    from .pipeline import run_concurrently
    if concurrency is None:
        concurrency = getattr(settings, "concurrency", 1)
    return _report(tables, settings, console,
                   run_concurrently(tables, _labelled(settings, work), concurrency))


def _report(tables: Sequence[str], settings: Settings, console: Console, outcomes,
            show=None) -> int:
    """Each table's outcome ``(table, result, error)`` as it completes: ``show(result)`` of
    a success; with several tables, one failing loses none of the others; a summary on
    stderr; exit 13 when some failed."""
    failed: List[Tuple[str, errors.DapError]] = []
    done = 0
    try:
        for table, result, exc in outcomes:
            if exc is None:
                done += 1
                if show is not None:
                    show(result)
                continue
            if isinstance(exc, (errors.AuthenticationFailed, BrokenPipeError)) or \
                    not isinstance(exc, errors.DapError):
                raise exc  # nothing else can succeed either; or a bug
            if len(tables) == 1 and not settings.several:
                raise exc
            failed.append((table, exc))
            console.error("%s.%s: %s" % (settings.namespace, table, exc))
            if settings.logfile is not None:  # the log file tells the whole story
                log.error("%s", exc, extra={"table": "%s.%s" % (settings.namespace, table)})
    finally:
        outcomes.close()
    if len(tables) > 1 or settings.several:
        summary = "dap: %d table%s: %d done, %d failed" % (
            len(tables), "s" * (len(tables) != 1), done, len(failed))
        if failed:
            summary += " (%s)" % ", ".join("%s: exit %d" % (t, e.exit_status) for t, e in failed)
        console.say(summary)
    if failed:
        return errors.PartialFailure.exit_status
    return 0


def cmd_schema(client, settings: Settings, console: Console) -> int:
    from .. import layout
    from .sinks import write_file_atomically
    tables = _tables(client, settings)

    def work(table: str) -> None:
        schema = client.get_schema(settings.namespace, table)
        text = json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
        label = "%s.%s" % (settings.namespace, table)
        if settings.directory is None:  # --output -
            if settings.several:  # JSON Lines: one schema a line, named for its table
                text = json.dumps(dict({"table": label}, **schema), ensure_ascii=False) + "\n"
            console.stdout.write(text)
            console.stdout.flush()
            return
        path = os.path.join(settings.directory, layout.schema_name(table))
        try:
            write_file_atomically(path, text.encode("utf-8"))
        except OSError as exc:
            raise errors.OutputError("writing %s failed: %s" % (path, exc.strerror or exc)) \
                from exc
        console.data_line(json.dumps(layout.schema_metadata(settings.namespace, table, schema,
                                                            path)))
        console.say("%s: schema version %s -> %s" % (label, schema.get("version"), path))

    return _each_table(tables, settings, console, work, concurrency=1)  # quick calls, in order


def cmd_query(client, settings: Settings, console: Console) -> int:
    """snapshot and incremental: ``Client.download_chained``, then each result printed."""
    from .. import layout
    tables = _tables(client, settings)
    # every query is made (timestamps and checkpoints checked) here, before the first job
    outcomes = client.download_chained(
        settings.state_path, settings.namespace, tables, settings.directory,
        stream=console.binary if settings.to_stdout else None, kind=settings.command,
        since=settings.since, until=settings.until, format=settings.format,
        mode=settings.mode, name_table=settings.several, concurrency=settings.concurrency)

    def show(result) -> None:
        if settings.to_stdout:
            console.say(layout.summary_line(result.metadata, "stdout"))
            return
        console.data_line(json.dumps(layout.result_line(result.metadata, result.path,
                                                        result.meta_path)))
        console.say(layout.summary_line(result.metadata, result.path))

    return _report(tables, settings, console, _by_table(outcomes), show)


def _by_table(outcomes):
    try:
        for query, result, exc in outcomes:
            yield query.table, result, exc
    finally:
        outcomes.close()  # no worker takes another table


def _database_command(client, settings: Settings, console: Console) -> int:
    from . import dbcommands
    return dbcommands.run(client, settings, console, _each_table, _tables)


HANDLERS = {"list": cmd_list, "schema": cmd_schema, "snapshot": cmd_query,
            "incremental": cmd_query, "initdb": _database_command,
            "syncdb": _database_command, "dropdb": _database_command,
            "listdb": _database_command}


# -- main --------------------------------------------------------------------------------------

def _version() -> str:
    from ..version import __version__
    return __version__


def program() -> int:
    """The program's entry (``bin/dap``, the ``dap`` console script): ``main`` in a process
    of its own.  pandas, which fastparquet needs, imports pyarrow wherever it finds it, for
    nothing dap uses: some 35 MiB and a third of a second of Parquet's start-up.  A process
    that is only dap goes without; a library caller's process is left as it is."""
    sys.modules.setdefault("pyarrow", None)  # type: ignore[arg-type]
    return main()


def main(argv: Optional[Sequence[str]] = None, *, stdout: Optional[TextIO] = None,
         stderr: Optional[TextIO] = None, environ: Optional[Mapping[str, str]] = None,
         client_options: Optional[Mapping[str, Any]] = None) -> int:
    """Run the command line; return the exit status (it never raises for expected failures).

    ``stdout``, ``stderr`` and ``environ`` default to the process's; ``client_options`` are
    passed to :class:`dap_core.shell.client.Client` (tests inject instant sleeps).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    env = os.environ if environ is None else environ
    secrets = Secrets()
    console = Console(out, err, secrets)

    asks_help, command = wants_help(argv)
    if asks_help or "--version" in before_dashes(argv):
        try:
            console.stdout.write((command_help(command) if command else USAGE.lstrip())
                                 if asks_help else "dap %s\n" % _version())
            console.stdout.flush()
        except BrokenPipeError as exc:
            _silence_stdout(out)
            return errors.exit_status_for(exc)
        except errors.OutputError as exc:
            _silence_stdout(out)
            console.error(str(exc))
            return exc.exit_status
        return 0

    # bin/dap bypasses setup.py's pins: a missing or too old urllib3 or docopt is one line
    from .dependencies import problem as dependency_problem
    missing = dependency_problem()
    if missing is not None:
        console.error(missing)
        return errors.InvalidInput.exit_status

    from .pipeline import TableFilter
    handler = LogHandler(err)
    handler.setFormatter(LogFormatter(secrets))
    handler.addFilter(TableFilter())
    previous = (log.level, log.propagate)
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.WARNING)
    debug = "--loglevel=debug" in argv or any(
        a == "--loglevel" and b.lower() == "debug" for a, b in zip(argv, argv[1:]))
    previous_sigterm = _handle_sigterm()
    try:
        args = parse_command_line(argv)
        args["__format_given__"] = any(a == "--format" or a.startswith("--format=")
                                       for a in before_dashes(argv))
        # secrets known from the command line and environment, even before they are checked
        secrets.fixed.extend(v for v in (args.get("--api-key"), args.get("--client-secret"),
                                         env.get("DAP_API_KEY"), env.get("DAP_CLIENT_SECRET"))
                             if v)
        settings = Settings(args, env)
        if settings.credentials is not None:
            secrets.sources.append(settings.credentials.secrets)
        secrets.fixed.extend(settings.database_secrets)
        log.setLevel(getattr(logging, settings.loglevel.upper()))
        handler.setFormatter(LogFormatter(secrets, settings.logformat))
        if settings.logfile is not None:
            logfile = _open_logfile(settings.logfile)
            handler.setStream(logfile)
            handler.progress = None
        return _run(settings, console, secrets, err, client_options or {}, handler)
    except errors.DapError as exc:
        if console.stdout.failed:
            _silence_stdout(out)  # else the interpreter's last flush fails once more
        console.error(str(exc))
        return errors.exit_status_for(exc)
    except errors.Terminated as exc:
        _stop_workers()
        handler.mute()  # the last line is this one, whatever worker threads log
        console.error("terminated (SIGTERM); nothing half-written was kept, no checkpoint "
                      "moved: run the same command again")
        return errors.exit_status_for(exc)
    except KeyboardInterrupt as exc:
        _stop_workers()
        handler.mute()
        console.error("interrupted; nothing half-written was kept")
        return errors.exit_status_for(exc)
    except BrokenPipeError as exc:
        _silence_stdout(out)
        return errors.exit_status_for(exc)
    except ImportError as exc:
        from .dependencies import REQUIRED, missing_line
        if exc.name in REQUIRED:
            console.error(missing_line(exc.name))
            return errors.InvalidInput.exit_status
        return _bug(exc, debug, console)
    except Exception as exc:  # a bug: one line, the traceback only at debug
        return _bug(exc, debug, console)
    finally:
        log.removeHandler(handler)
        if handler.stream is not err:
            handler.stream.close()
        log.setLevel(previous[0])
        log.propagate = previous[1]
        _restore_sigterm(previous_sigterm)


def _open_logfile(path: str):
    try:
        return open(path, "a", encoding="utf-8", buffering=1)
    except OSError as exc:
        raise errors.InvalidInput("cannot open the log file %s: %s" % (
            path, exc.strerror or exc), "pass a writable --logfile") from None


def _stop_workers() -> None:
    """Tables worked on in other threads (--concurrency) are abandoned with the process:
    their temporaries go now, and nothing of theirs is committed from now on."""
    from .sinks import stop_writing
    stop_writing()


def _raise_terminated(signum: int, frame: Any) -> None:
    raise errors.Terminated()


def _handle_sigterm() -> Any:
    """SIGTERM unwinds the program like Ctrl-C (temporaries removed, no checkpoint moved);
    the previous handler, to restore (None when signals are not ours to handle)."""
    import signal
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)


def _restore_sigterm(previous: Any) -> None:
    if previous is not None:
        import signal
        signal.signal(signal.SIGTERM, previous)


def _bug(exc: BaseException, debug: bool, console: Console) -> int:
    """An unexpected exception: one line (the traceback too at debug), exit status 1."""
    if debug:
        console.say("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip())
    console.error("unexpected %s: %s; this is a bug, please report it%s" % (
        type(exc).__name__, errors.one_line(exc, 300),
        "" if debug else " (run with --loglevel debug for the traceback)"))
    return errors.exit_status_for(exc)


def _run(settings: Settings, console: Console, secrets: Secrets, err: TextIO,
         client_options: Mapping[str, Any], handler: Optional[LogHandler] = None) -> int:
    from .client import Client
    from .http import DEFAULT_TIMEOUT
    options = dict(client_options)
    if settings.command in DATABASE_ONLY:
        return HANDLERS[settings.command](None, settings, console)
    if "progress" not in options and _isatty(err) and settings.command in (
            "snapshot", "incremental", "initdb", "syncdb"):
        options["progress"] = TerminalProgress(err)
        options.setdefault("sleep", options["progress"].sleep)  # the line's clock ticks on
        console.progress = options["progress"]
        if handler is not None and handler.stream is err:
            handler.progress = options["progress"]
    options.setdefault("timeout", (min(DEFAULT_TIMEOUT[0], settings.timeout), settings.timeout))
    with Client(settings.base_url, settings.credentials, ca_bundle=settings.ca_bundle,
                allow_insecure_http=settings.allow_insecure_http, **options) as client:
        secrets.sources.append(client.secrets)
        return HANDLERS[settings.command](client, settings, console)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _silence_stdout(out: TextIO) -> None:
    """After a closed pipe, point stdout at /dev/null so the interpreter's final flush does
    not print 'Exception ignored ... BrokenPipeError' (the recipe of Python's docs)."""
    try:
        fd = out.fileno()
    except (AttributeError, ValueError, OSError):
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    except OSError:
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
