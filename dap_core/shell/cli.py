"""dap - download Canvas Data 2 tables from Instructure's DAP Query API.

Usage:
  dap [options] list [--namespace=NS]
  dap [options] schema --table=TABLES [--namespace=NS]
      [--output-directory=DIR | --output=-]
  dap [options] snapshot --table=TABLES [--namespace=NS] [--format=FORMAT]
      [--mode=MODE] [--output-directory=DIR | --output=-] [--state=FILE]
  dap [options] incremental --table=TABLES [--since=TS] [--until=TS]
      [--namespace=NS] [--format=FORMAT] [--mode=MODE]
      [--output-directory=DIR | --output=-] [--state=FILE]
  dap [options] initdb --table=TABLES [--namespace=NS]
      [--connection-string=URL] [--replace] [--lock-wait=SECONDS]
  dap [options] syncdb --table=TABLES [--namespace=NS]
      [--connection-string=URL] [--reinit-if-needed] [--lock-wait=SECONDS]
  dap [options] dropdb --table=TABLES [--namespace=NS]
      [--connection-string=URL] [--lock-wait=SECONDS]
  dap [options] listdb [--connection-string=URL] [--format=FORMAT]
  dap COMMAND --help
  dap (--help | --version)

Commands:
  list          print the table names of a namespace, one per line
  schema        write each table's JSON Schema to DIR/<table>.schema.json
  snapshot      download each table as it is now
  incremental   download the changes to each table since a point in time
  initdb        copy each table into a database (a snapshot) and record where it is
  syncdb        apply each table's changes since then (initializes a new table)
  dropdb        remove each table and its checkpoint from the database
  listdb        print the tables in the database: namespace, table, target,
                checkpoint, schema version (JSON lines with --format json)

Options:
  --table=TABLES          one table, a comma list (accounts,users) or all
  --namespace=NS          canvas, canvas_logs, catalog, new_quizzes ...
                          [default: canvas]
  --format=FORMAT         jsonl, json, csv, tsv or parquet [default: jsonl]
  --mode=MODE             expanded (DAP's default: nested objects spread into
                          dotted columns) or condensed (one JSON column each)
  --since=TS              where the changes start (inclusive): ISO 8601 with a
                          zone, like 2024-07-13T09:30:00Z or
                          2022-07-13T09:30:00+02:00; with --state it may be left
                          out (then the checkpoint is used)
  --until=TS              where the changes end (exclusive); default: the
                          latest point DAP has data for
  --output-directory=DIR  write files into DIR [default: downloads]
  --output=OUT            OUT must be -: write the records to stdout instead
                          (several tables only as jsonl, each record then with
                          "table": "canvas.accounts" first; schemas of several
                          tables one a line)
  --state=FILE            keep the last at/until of each table in FILE (JSON);
                          incremental continues from it
  --connection-string=URL
                          the database [env: DAP_CONNECTION_STRING]:
                          sqlite:///path/file.db, postgresql://user:pw@host/db
                          or mysql://user:pw@host/db (MariaDB too); when unset,
                          SQLite in dap.db in the current directory
  --replace               initdb of a table that is there: build a new copy
                          beside it and swap it in at once
  --reinit-if-needed      syncdb: when DAP requires a new snapshot, rebuild the
                          table (initdb --replace) instead of stopping (exit 9)
  --lock-wait=SECONDS     wait this long for another run that holds a table's
                          lock, then stop with exit 15 [default: 0]

Global options:
  --base-url=URL          the DAP API [env: DAP_API_URL]
                          (https://api-gateway.instructure.com when unset)
  --api-key=KEY           an API key, base64 of region#client-id:secret
                          [env: DAP_API_KEY]
  --client-id=ID          a client ID [env: DAP_CLIENT_ID]
  --client-secret=SECRET  its secret [env: DAP_CLIENT_SECRET]
                          (a client ID and secret win over an API key)
  --ca-bundle=FILE        trust the CA certificates in FILE (PEM) for https
  --timeout=SECONDS       give up on an attempt that gets no answer for SECONDS
                          (a request is tried again for at most 3 x SECONDS,
                          and at least 30 s) [default: 60]
  --concurrency=N         work on at most N tables at once: their jobs wait side
                          by side, at most 4 of them download at a time [default: 8]
  --allow-insecure-http   allow plain http to a host that is not loopback
  --logfile=FILE          append the logs to FILE instead of stderr (errors and
                          summaries still go to stderr too)
  --logformat=FORMAT      plain (dap: info: ...) or json: one object a line with
                          time, level, table and message [default: plain]
  --loglevel=LEVEL        debug, info, warning or error; logs go to stderr
                          [default: warning]
  -h, --help              show this help, or a command's: dap snapshot --help
  --version               print the version

Examples:
  dap list
  dap list --namespace canvas_logs
  dap schema --table accounts
  dap schema --table accounts --output - | jq .version
  dap snapshot --table accounts --format csv
  dap snapshot --table accounts,users --format parquet --output-directory data
  dap snapshot --table accounts --format tsv --output - | psql -c '\\copy raw from stdin with (format text, header true)'
  dap snapshot --table all --state dap-state.json
  dap incremental --namespace canvas --table accounts --since 2022-07-13T09:30:00+02:00
  dap --base-url URL --api-key KEY incremental --table accounts --since 2024-07-13T09:30:00Z
  dap incremental --table accounts --since 2024-07-13T09:30:00Z --until 2024-07-14T00:00:00Z
  dap incremental --table accounts,users --state dap-state.json
  dap incremental --table users --since 2024-07-13T09:30:00Z --output - | jq -c .key
  next=$(dap incremental --table accounts --since "$next" | jq -r .next_since)
  dap initdb --table accounts                           # into SQLite dap.db
  dap syncdb --table all                                # nightly: every table
  dap syncdb --table all --connection-string postgresql://dap@db/canvas_data
  DAP_CONNECTION_STRING=mysql://dap@db/canvas dap initdb --table users --replace
  dap listdb --format json
  dap dropdb --table accounts

Output: with files, stdout gets one JSON line per table (job id, kind, at or
since/until, next_since, rows, file) and stderr one line saying the same; with
--output -, stdout gets the records as they arrive.  Logs go to stderr only.
Exit status: 0 ok, 1 a bug (please report it), 2 command line, 3 invalid input,
4 authentication, 5 forbidden, 6 not found, 7 rejected query, 8 out of range,
9 snapshot required, 10 job failed, 11 service unavailable, 12 output failed,
13 some tables failed, 14 database failed, 15 database table locked, 16 schema change
refused, 130 interrupted, 141 stdout closed early, 143 terminated (SIGTERM).
"""  # noqa: E501 (an example command line in the usage text is longer)
from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import time
import traceback
from typing import Any, Dict, List, Mapping, Optional, Sequence, TextIO, Tuple

from .. import errors

__all__ = ["main", "USAGE", "command_help"]

USAGE = __doc__
COMMANDS = ("list", "schema", "snapshot", "incremental", "initdb", "syncdb", "dropdb",
            "listdb")
#: commands that talk to the database only, never to DAP (no credentials needed)
DATABASE_ONLY = ("dropdb", "listdb")
LOGLEVELS = ("debug", "info", "warning", "error")
#: exit status when stdout is a closed pipe (128 + SIGPIPE, what a shell reports for a
#: process killed by SIGPIPE): `set -o pipefail` scripts can tell that not everything was
#: delivered, and no checkpoint moves for output nobody read.
EXIT_BROKEN_PIPE = 141
EXIT_INTERRUPTED = 130
#: exit status after SIGTERM (128 + 15, what a shell reports for a process it killed)
EXIT_TERMINATED = 143

log = logging.getLogger("dap")


# -- the usage text, per command ---------------------------------------------------------------

def _section(title: str) -> List[str]:
    """The lines of a section of USAGE (without its title line)."""
    lines = USAGE.splitlines()
    start = lines.index(title + ":") + 1
    end = start
    while end < len(lines) and (lines[end].startswith(" ") or not lines[end].strip()):
        if not lines[end].strip() and (end + 1 == len(lines) or not lines[end + 1].startswith(" ")):
            break
        end += 1
    return lines[start:end]


def _option_blocks(title: str) -> List[Tuple[str, List[str]]]:
    """(long option name, its lines) for each option of an options section."""
    blocks: List[Tuple[str, List[str]]] = []
    for line in _section(title):
        match = re.match(r"\s+(?:-\w, )?(--[\w-]+)", line)
        if match:
            blocks.append((match.group(1), [line]))
        elif blocks:
            blocks[-1][1].append(line)
    return blocks


def _usage_lines(command: str) -> List[str]:
    lines, current = [], None
    for line in _section("Usage"):
        words = line.split()
        if words and words[0] == "dap":
            current = command in words[:3] and words[1] != "COMMAND"
        if current:
            lines.append(line)
    return lines


def command_help(command: str) -> str:
    """The help of one command: its usage, options, the global options and its examples."""
    usage = _usage_lines(command)
    mentioned = set(re.findall(r"--[\w-]+", " ".join(usage)))
    summary = next(line.split(None, 1)[1] for line in _section("Commands")
                   if line.split()[0] == command)
    options = [line for name, block in _option_blocks("Options") if name in mentioned
               for line in block]
    examples = [line for line in _section("Examples")
                if re.search(r"\bdap\b(?: --\S+ \S+)* %s\b" % command, line)]
    parts = ["dap %s - %s." % (command, summary), "", "Usage:"] + usage
    if options:
        parts += ["", "Options:"] + options
    parts += ["", "Global options:"] + [line for _, block in _option_blocks("Global options")
                                        for line in block]
    if examples:
        parts += ["", "Examples:"] + examples
    return "\n".join(parts) + "\n"


def _docopt_usage() -> str:
    """USAGE up to its examples: what docopt parses (examples are for people)."""
    return USAGE.split("\nExamples:")[0]


# -- parsing the command line ---------------------------------------------------------------

def _before_dashes(argv: Sequence[str]) -> List[str]:
    """The arguments before a ``--`` (after it, nothing is an option)."""
    argv = list(argv)
    return argv[:argv.index("--")] if "--" in argv else argv


def _wants_help(argv: Sequence[str]) -> Tuple[bool, Optional[str]]:
    command = next((a for a in argv if a in COMMANDS), None)
    return bool({"-h", "--help"} & set(_before_dashes(argv))), command


def _options_taking_values() -> set:
    """The long options of USAGE that take a value (``--table=TABLES``)."""
    found = set()
    for title in ("Options", "Global options"):
        for name, block in _option_blocks(title):
            if re.match(r"\s+(?:-\w, )?--[\w-]+=", block[0]):
                found.add(name)
    return found


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    import difflib
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return " (did you mean %s?)" % close[0] if close else ""


def _explain_usage_error(argv: Sequence[str]) -> str:
    """A one-line reason why docopt refused ``argv`` (docopt's own text is not for people):
    which word is wrong, and what was probably meant."""
    takes_value = _options_taking_values()
    every_option = sorted({name for title in ("Options", "Global options")
                           for name, _ in _option_blocks(title)} | {"--help", "--version"})
    words: List[str] = []
    options: List[str] = []
    missing_value = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            words.extend(argv[i + 1:])
            break
        if arg.startswith("-") and arg != "-":
            name = arg.split("=", 1)[0]
            options.append(name)
            if name in takes_value and "=" not in arg:
                following = argv[i + 1] if i + 1 < len(argv) else None
                if following is None or (following.startswith("--") and following != "--"):
                    missing_value = missing_value or name
                else:
                    i += 1
        else:
            words.append(arg)
        i += 1
    known = ", ".join(COMMANDS)
    if not words:
        if missing_value:
            return "%s needs a value, and no command is given; the commands are %s" % (
                missing_value, known)
        return "no command given; the commands are " + known
    command = words[0]
    if command not in COMMANDS:
        return "unknown command %r%s; the commands are %s" % (
            command, _did_you_mean(command, COMMANDS), known)
    allowed = set(re.findall(r"--[\w-]+", " ".join(_usage_lines(command))))
    allowed |= {name for name, _ in _option_blocks("Global options")} | {"-h"}
    seen: Dict[str, int] = {}
    for name in options:
        if name not in every_option and name != "-h":
            return "unknown option %s%s" % (name, _did_you_mean(name, every_option))
        if name not in allowed:
            return "%s does not take %s" % (command, name)
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            return "%s is given twice" % name
    if missing_value:
        return "%s needs a value (%s)" % (missing_value, next(
            (line.split()[0].replace("=", " ") for title in ("Options", "Global options")
             for name, block in _option_blocks(title) if name == missing_value
             for line in block[:1]), missing_value))
    needs_table = bool(re.search(r"(?<!\[)--table=", " ".join(_usage_lines(command))))
    if len(words) > 1:
        extra = words[1]
        meant = " (did you mean --table %s?)" % extra if needs_table and \
            "--table" not in seen else ""
        return "%s does not take the word %r%s" % (command, extra, meant)
    if "--output" in seen and "--output-directory" in seen:
        return "--output and --output-directory exclude each other"
    if needs_table and "--table" not in seen:
        return "%s needs --table" % command
    return "the command line is not understood"


def parse_command_line(argv: Sequence[str]) -> Dict[str, Any]:
    """docopt's dictionary for ``argv``, or ``UsageError`` with a one-line reason."""
    from docopt import DocoptExit, docopt  # docopt-ng
    try:
        return dict(docopt(_docopt_usage(), list(argv), default_help=False))
    except DocoptExit:
        command = next((a for a in argv if a in COMMANDS), None)
        raise errors.UsageError(_explain_usage_error(argv),
                                "see dap %s--help" % (command + " " if command else "")) from None


# -- settings: the command line and the environment, validated ---------------------------------

class Settings:
    """Everything the command line and the environment say, checked before any request."""

    def __init__(self, args: Mapping[str, Any], environ: Mapping[str, str]) -> None:
        from .. import queries
        from ..credentials import resolve_credentials
        from .http import DEFAULT_BASE_URL, check_base_url

        self.command = next(c for c in COMMANDS if args.get(c))
        check_no_empty_values(args)
        level = (args.get("--loglevel") or "warning").strip().lower()
        if level not in LOGLEVELS:
            raise errors.InvalidInput("unknown log level %r" % args.get("--loglevel"),
                                      "use one of " + ", ".join(LOGLEVELS))
        self.loglevel = level
        self.logformat = (args.get("--logformat") or "plain").strip().lower()
        if self.logformat not in ("plain", "json"):
            raise errors.InvalidInput("unknown log format %r" % args.get("--logformat"),
                                      "use plain or json")
        self.logfile = args.get("--logfile")
        if self.logfile is not None and not self.logfile.strip():
            raise errors.InvalidInput("--logfile is empty", "pass a file name, or leave it out")
        self.allow_insecure_http = bool(args.get("--allow-insecure-http"))
        self.base_url = check_base_url(args.get("--base-url") or environ.get("DAP_API_URL")
                                       or DEFAULT_BASE_URL, self.allow_insecure_http)
        self.ca_bundle = args.get("--ca-bundle")
        self.timeout = parse_timeout(args.get("--timeout"))
        self.concurrency = parse_concurrency(args.get("--concurrency"))
        # Credentials: when any is on the command line, the command line alone says which;
        # otherwise the environment does.  A client ID and secret win over an API key.
        if self.command in DATABASE_ONLY:
            self.credentials = None
        elif args.get("--client-id") or args.get("--client-secret"):
            self.credentials = resolve_credentials(
                client_id=args.get("--client-id") or environ.get("DAP_CLIENT_ID"),
                client_secret=args.get("--client-secret") or environ.get("DAP_CLIENT_SECRET"))
        elif args.get("--api-key"):
            self.credentials = resolve_credentials(api_key=args.get("--api-key"))
        else:
            self.credentials = resolve_credentials(
                api_key=environ.get("DAP_API_KEY") or None,
                client_id=environ.get("DAP_CLIENT_ID") or None,
                client_secret=environ.get("DAP_CLIENT_SECRET") or None)

        self.namespace = queries.check_name("namespace", args.get("--namespace") or "canvas")
        self.tables = queries.parse_tables(args["--table"]) if args.get("--table") else None
        self.format = queries.parse_format(args.get("--format") or "jsonl")
        self.mode = queries.parse_mode(args.get("--mode"))
        self.since = self._timestamp("since", args.get("--since"))
        self.until = self._timestamp("until", args.get("--until"))
        queries.check_window(self.since, self.until)
        output = args.get("--output")
        if output is not None and output != "-":
            raise errors.UsageError("--output takes only - (stdout); got %r" % output,
                                    "use --output-directory DIR to write files")
        self.to_stdout = output == "-"
        self.directory = None if self.to_stdout else (args.get("--output-directory")
                                                      or "downloads")
        self.state_path = args.get("--state")
        self.several = self.tables is not None and (
            self.tables is queries.ALL or len(self.tables) > 1)

        if self.command in ("snapshot", "incremental"):
            if self.to_stdout:
                queries.check_stdout_format(self.format, self.several)
            if self.format == "parquet":
                from .writers import require_parquet
                require_parquet()
        if self.command == "incremental" and self.since is None and self.state_path is None:
            raise errors.UsageError("incremental needs --since TS, or --state FILE with a "
                                    "checkpoint of the table",
                                    "see dap incremental --help")
        if self.ca_bundle is not None:
            from .client import _check_ca_bundle
            _check_ca_bundle(self.ca_bundle)
        if self.directory is not None and self.command in ("schema", "snapshot", "incremental"):
            prepare_directory(self.directory)
        from .dbcommands import database_settings
        database_settings(self, args, environ)
        self.state = None
        if self.state_path is not None:
            from .state import check_state_path, load_state
            check_state_path(self.state_path)
            self.state = load_state(self.state_path)

    @staticmethod
    def _timestamp(name: str, text: Optional[str]):
        if text is None:
            return None
        from ..timestamps import parse_timestamp
        try:
            return parse_timestamp(text)
        except errors.InvalidInput as exc:
            exc.message = "--%s: %s" % (name, exc.message)
            raise


def check_no_empty_values(args: Mapping[str, Any]) -> None:
    """An option given an empty value (``--format ''``, ``--state ''``) is refused: it would
    otherwise silently mean the default, or fail late."""
    for name in sorted(args):
        value = args[name]
        if name.startswith("--") and isinstance(value, str) and not value.strip():
            raise errors.InvalidInput("%s is given an empty value" % name,
                                      "pass a value, or leave %s out" % name)


def parse_concurrency(text: Optional[str]) -> int:
    """--concurrency: tables at once, 1 to 64; the pipeline's default when not given."""
    from .pipeline import DEFAULT_CONCURRENCY
    if text is None:
        return DEFAULT_CONCURRENCY
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 64:
        raise errors.InvalidInput("--concurrency takes a number of tables from 1 to 64, not %r"
                                  % text, "pass for example --concurrency 4")
    return value


def parse_timeout(text: Optional[str]) -> float:
    """--timeout: seconds, more than 0 and at most a day; 60 when not given."""
    if text is None:
        return 60.0
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 86400:
        raise errors.InvalidInput("--timeout takes a number of seconds above 0 (at most a "
                                  "day), not %r" % text, "pass for example --timeout 60")
    return value


def prepare_directory(path: str) -> None:
    """Make sure ``path`` is a writable directory (creating it), or ``InvalidInput``."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise errors.InvalidInput("the output directory %s is not a directory" % path,
                                  "pass a directory to --output-directory")
    if not os.path.isdir(path):
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise errors.InvalidInput("cannot create the output directory %s: %s" % (
                path, exc.strerror or exc), "pass a writable --output-directory") from None
    # by trying, not by permission bits: root passes os.access on a read-only mount, an
    # immutable directory or a full disk, and would find out only after the download
    import tempfile
    try:
        fd, probe = tempfile.mkstemp(prefix=".dap-probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise errors.InvalidInput("the output directory %s is not writable: %s" % (
            path, exc.strerror or exc), "pass a writable --output-directory") from None


# -- logging and progress ------------------------------------------------------------------------

class _Secrets:
    """The texts no line on stderr may show; grows when a token is issued."""

    def __init__(self) -> None:
        self.sources: List[Any] = []
        self.fixed: List[str] = []

    def all(self) -> List[str]:
        found = list(self.fixed)
        for source in self.sources:
            try:
                found.extend(source())
            except Exception:  # pragma: no cover - never let redaction break logging
                pass
        return [s for s in found if s]

    def redact(self, text: str) -> str:
        from ..credentials import redact
        return redact(text, self.all())


class _Formatter(logging.Formatter):
    """``dap: info: canvas.accounts: message``, or with ``json`` one object a line:
    ``{"time", "level", "table", "message"}``; secrets redacted either way."""

    def __init__(self, secrets: _Secrets, style: str = "plain") -> None:
        super().__init__("dap: %(levelname)s: %(message)s")
        self.secrets = secrets
        self.style = style

    def format(self, record: logging.LogRecord) -> str:
        level = record.levelname.lower()
        message = self.secrets.redact(record.getMessage())
        table = getattr(record, "table", None)
        if self.style == "json":
            import datetime
            moment = datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
            return json.dumps({"time": moment.isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"), "level": level, "table": table, "message": message},
                ensure_ascii=False)
        if table and not message.startswith(table):
            message = "%s: %s" % (table, message)  # every line of a multi-table run
        return "dap: %s: %s" % (level, message)


class _Handler(logging.StreamHandler):
    """stderr logs that first clear a progress line being drawn there."""

    progress: Optional["TerminalProgress"] = None
    muted = False

    def mute(self) -> None:
        """Write no record from now on (threads abandoned by an interrupt go on logging):
        a record being written ends first, under the handler's lock."""
        with self.lock:  # type: ignore[union-attr]
            self.muted = True

    def emit(self, record: logging.LogRecord) -> None:
        if self.muted:  # emit runs under the lock that mute takes
            return
        if self.progress is not None:
            self.progress.clear()
        super().emit(record)


def _duration(seconds: float) -> str:
    """``12 s``, ``4:05``, ``1:02:03``."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return "%d s" % seconds
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return "%d:%02d" % (minutes, secs)
    return "%d:%02d:%02d" % (minutes // 60, minutes % 60, secs)


class _Download:
    __slots__ = ("parts", "index", "bytes", "rows", "started")

    def __init__(self, parts: int, started: float) -> None:
        self.parts, self.index, self.bytes, self.rows, self.started = parts, 0, 0, 0, started


class TerminalProgress:
    """One status line on a terminal, cut to its width, redrawn at most ten times a second
    (and every half second while dap sleeps, see :meth:`sleep`): what the run is doing now.

    * a job: ``canvas.users: job waiting, 12 s (job 4f0c...)``, the time since it started;
    * a wait: ``canvas.users: waiting 47 s: DAP's rate limit``, counting down;
    * a download: ``canvas.users: part 3/10, 12,345 rows, 1.2 MiB gzip at 0.8 MiB/s, 5 s``
      (MiB of compressed parts as downloaded).

    Thread-safe: with several tables at once (--concurrency), one line per active table,
    each with its own figures, redrawn in place; a table's line goes when it is done."""

    def __init__(self, stream: TextIO, width: Optional[int] = None) -> None:
        self.stream = stream
        self.width = width
        self.lock = threading.RLock()
        self.lines: Dict[str, Any] = {}  # label -> () -> the text of its line now
        self.jobs: Dict[str, float] = {}
        self.downloads: Dict[str, _Download] = {}
        self.current = threading.local()  # the table of this thread
        self.shown = 0.0
        self.drawn = 0  # lines on the screen now

    @property
    def line(self) -> Optional[Any]:
        """The text of the latest line (None when no table is active)."""
        return next(reversed(list(self.lines.values())), None)

    @property
    def dirty(self) -> bool:
        return self.drawn > 0

    # -- events --------------------------------------------------------------------------------
    def job(self, label: str, job_id: str, state: str) -> None:
        with self.lock:
            since = self.jobs.setdefault(job_id, time.monotonic())
            self._set(label, lambda: "%s: job %s, %s (job %s)" % (
                label, state, _duration(time.monotonic() - since), job_id))
            self._draw(force=True)

    def wait(self, label: str, reason: str, seconds: float) -> None:
        with self.lock:
            until = time.monotonic() + seconds
            self._set(label, lambda: "%s: waiting %s: %s" % (
                label, _duration(until - time.monotonic() + 0.999), reason))
            self._draw(force=True)

    def start(self, label: str, parts: int) -> None:
        with self.lock:
            self.downloads[label] = _Download(parts, time.monotonic())
            self._show_download(label, force=True)

    def part(self, index: int) -> None:
        self._update(lambda d: setattr(d, "index", index))

    def add_bytes(self, count: int) -> None:
        self._update(lambda d: setattr(d, "bytes", d.bytes + count))

    def rows(self, count: int) -> None:
        self._update(lambda d: setattr(d, "rows", count))

    def end(self) -> None:
        """A download ended: forget its table's line (and redraw the others)."""
        with self.lock:
            label = getattr(self.current, "label", None)
            self.lines.pop(label, None)
            self.downloads.pop(label, None)
            self.clear()
            self._draw(force=True)

    def clear(self) -> None:
        """Take the lines off the screen (a log line is about to be written there); the next
        event or tick draws them again."""
        with self.lock:
            if self.drawn:
                self.stream.write(self._erase())
                self.stream.flush()
                self.drawn = 0

    def _erase(self) -> str:
        # from the last line drawn up to the first, each cleared; the cursor ends on the first
        return "\r\x1b[K" + "\x1b[1A\x1b[K" * max(0, self.drawn - 1)

    def _set(self, label: str, text) -> None:
        self.current.label = label
        self.lines.pop(label, None)  # the table's line moves to the bottom, newest last
        self.lines[label] = text

    def sleep(self, seconds: float) -> None:
        """``time.sleep`` that keeps the line's clock and countdown moving."""
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(0.5, left))
            with self.lock:
                if self.lines:
                    self._draw(force=True)

    # -- drawing -------------------------------------------------------------------------------
    def _update(self, change) -> None:
        with self.lock:
            label = getattr(self.current, "label", None)
            download = self.downloads.get(label) if label is not None else None
            if download is None:
                return
            change(download)
            self._show_download(label)

    def _show_download(self, label: str, force: bool = False) -> None:
        d = self.downloads[label]

        def text() -> str:
            elapsed = time.monotonic() - d.started
            mib = d.bytes / 1048576.0
            return "%s: part %d/%d, %s rows, %.1f MiB gzip at %.1f MiB/s, %s" % (
                label, min(d.index + 1, d.parts), d.parts, "{:,}".format(d.rows), mib,
                mib / elapsed if elapsed > 0 else 0.0, _duration(elapsed))
        if self.lines.get(label) is not text:
            self.current.label = label
            self.lines[label] = text
        self._draw(force)

    def _columns(self) -> int:
        if self.width is not None:
            return self.width
        try:
            return os.get_terminal_size(self.stream.fileno()).columns or 80
        except (AttributeError, ValueError, OSError):
            return 80

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self.lines or (not force and now - self.shown < 0.1):
            return
        self.shown = now
        width = max(self._columns() - 1, 10)
        texts = [line()[:width] for line in self.lines.values()]
        self.stream.write(self._erase() + "\n\x1b[K".join(texts))
        self.stream.flush()
        self.drawn = len(texts)


# -- output ------------------------------------------------------------------------------------

class Console:
    """stdout (data) and stderr (people), the only places the program writes to."""

    def __init__(self, stdout: TextIO, stderr: TextIO, secrets: _Secrets) -> None:
        self.stdout = _StdoutGuard(stdout)
        self.stderr = stderr
        self.secrets = secrets
        #: the status line on stderr, if one is drawn: cleared before a line is said
        self.progress: Optional[TerminalProgress] = None
        # tables finish in worker threads: one line at a time, never two mixed; a table's
        # records on stdout go out whole under `records` (see cmd_query)
        self.lock = threading.RLock()
        self.records = threading.Lock()

    @property
    def binary(self):
        self.stdout.flush()
        return getattr(self.stdout, "buffer", None) or _TextAsBinary(self.stdout)

    def data_line(self, text: str) -> None:
        with self.lock:
            self.stdout.write(text + "\n")
            self.stdout.flush()

    def say(self, text: str) -> None:
        with self.lock:
            if self.progress is not None:
                self.progress.clear()
            self.stderr.write(self.secrets.redact(text) + "\n")
            self.stderr.flush()

    def error(self, text: str) -> None:
        self.say("dap: error: " + text)


#: what to do when writing to stdout fails
STDOUT_HINT = "check the free space of the file or device that stdout goes to"


class _StdoutGuard:
    """stdout whose write failures (a full disk, an I/O error) are ``OutputError`` (exit 12),
    not a bug; a closed pipe stays ``BrokenPipeError`` (exit 141)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.failed = False

    def _guard(self, action, *args):
        try:
            return action(*args)
        except BrokenPipeError:
            raise
        except OSError as exc:
            self.failed = True
            raise errors.OutputError("writing stdout failed: %s" % (exc.strerror or exc),
                                     STDOUT_HINT) from exc

    def write(self, text: str) -> int:
        return self._guard(self._stream.write, text)

    def flush(self) -> None:
        self._guard(self._stream.flush)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _TextAsBinary:
    """Bytes to a text stream that has no ``buffer`` (a StringIO in tests)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, data: bytes) -> int:
        self.stream.write(data.decode("utf-8"))
        return len(data)

    def flush(self) -> None:
        self.stream.flush()


# -- commands ----------------------------------------------------------------------------------

def _tables(client, settings: Settings) -> Tuple[str, ...]:
    from .. import queries
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
    once; with several tables, one failing loses none of the others; a summary on stderr;
    exit 13 when some failed."""
    from .pipeline import run_concurrently
    failed: List[Tuple[str, errors.DapError]] = []
    done = 0
    if concurrency is None:
        concurrency = getattr(settings, "concurrency", 1)
    outcomes = run_concurrently(tables, _labelled(settings, work), concurrency)
    try:
        for table, _, exc in outcomes:
            if exc is None:
                done += 1
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
        if settings.to_stdout:
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


def _query(settings: Settings, table: str, state):
    from .. import chain, queries
    if settings.command == "snapshot":
        return queries.SnapshotQuery(settings.namespace, table, settings.format, settings.mode)
    since = settings.since
    if state is not None:
        since = chain.since_for(state, settings.namespace, table, settings.since)
    if since is None:  # pragma: no cover - Settings refuses this earlier
        raise errors.UsageError("incremental needs --since")
    return queries.IncrementalQuery(settings.namespace, table, since, settings.until,
                                    settings.format, settings.mode)


def cmd_query(client, settings: Settings, console: Console) -> int:
    """snapshot and incremental."""
    from .. import layout
    from .state import save_checkpoint

    # Every query is made (and so checked: timestamps, checkpoints) before the first job
    # starts; for an explicit list of tables, before the first request.
    tables = _tables(client, settings)
    queries = {table: _query(settings, table, settings.state) for table in tables}

    def work(table: str) -> None:
        query = queries[table]
        job = client.run(query)
        if settings.to_stdout:
            with console.records:  # one table's records at a time: lines never interleave
                result = client.write_records(job, query, console.binary,
                                              name_table=settings.several)
            where = "stdout"
        else:
            result = client.download(job, query, settings.directory)
            where = result.path
        if settings.state_path is not None:
            # the outputs are durable: now, and only now, the checkpoint moves (this table's
            # alone, under the state file's lock: other runs may share the file)
            save_checkpoint(settings.state_path, query.namespace, query.table, job)
        if not settings.to_stdout:
            console.data_line(json.dumps(layout.result_line(result.metadata, result.path,
                                                            result.meta_path)))
        console.say(layout.summary_line(result.metadata, where))

    return _each_table(tables, settings, console, work)


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
    secrets = _Secrets()
    console = Console(out, err, secrets)

    wants_help, command = _wants_help(argv)
    if wants_help or "--version" in _before_dashes(argv):
        try:
            console.stdout.write((command_help(command) if command else USAGE.lstrip())
                                 if wants_help else "dap %s\n" % _version())
            console.stdout.flush()
        except BrokenPipeError:
            _silence_stdout(out)
            return EXIT_BROKEN_PIPE
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
    handler = _Handler(err)
    handler.setFormatter(_Formatter(secrets))
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
                                       for a in _before_dashes(argv))
        # secrets known from the command line and environment, even before they are checked
        secrets.fixed.extend(v for v in (args.get("--api-key"), args.get("--client-secret"),
                                         env.get("DAP_API_KEY"), env.get("DAP_CLIENT_SECRET"))
                             if v)
        settings = Settings(args, env)
        if settings.credentials is not None:
            secrets.sources.append(settings.credentials.secrets)
        secrets.fixed.extend(settings.database_secrets)
        log.setLevel(getattr(logging, settings.loglevel.upper()))
        handler.setFormatter(_Formatter(secrets, settings.logformat))
        if settings.logfile is not None:
            logfile = _open_logfile(settings.logfile)
            handler.setStream(logfile)
            handler.progress = None
        return _run(settings, console, secrets, err, client_options or {}, handler)
    except errors.DapError as exc:
        if console.stdout.failed:
            _silence_stdout(out)  # else the interpreter's last flush fails once more
        console.error(str(exc))
        return exc.exit_status
    except errors.Terminated:
        _stop_workers()
        handler.mute()  # the last line is this one, whatever worker threads log
        console.error("terminated (SIGTERM); nothing half-written was kept, no checkpoint "
                      "moved: run the same command again")
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        _stop_workers()
        handler.mute()
        console.error("interrupted; nothing half-written was kept")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout(out)
        return EXIT_BROKEN_PIPE
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
    import threading
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)


def _restore_sigterm(previous: Any) -> None:
    if previous is not None:
        import signal
        signal.signal(signal.SIGTERM, previous)


def _bug(exc: BaseException, debug: bool, console: "Console") -> int:
    """An unexpected exception: one line (the traceback too at debug), exit status 1."""
    if debug:
        console.say("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip())
    console.error("unexpected %s: %s; this is a bug, please report it%s" % (
        type(exc).__name__, errors.one_line(exc, 300),
        "" if debug else " (run with --loglevel debug for the traceback)"))
    return 1


def _run(settings: Settings, console: Console, secrets: _Secrets, err: TextIO,
         client_options: Mapping[str, Any], handler: Optional[_Handler] = None) -> int:
    from .client import Client
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
    options.setdefault("timeout", (min(10.0, settings.timeout), settings.timeout))
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
