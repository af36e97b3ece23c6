"""The command line's interface: the docopt usage text (where every option is declared, with
its help and examples), each command's help cut from it, and the command line parsed and
checked, with the environment, into :class:`Settings` before any request.

Importing this module costs little: what validation needs (urllib3's helpers, the state
file, the database URL) is imported when ``Settings`` is made, so ``--help`` stays quick.
"""
from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple

from .. import errors

if TYPE_CHECKING:
    from ..dburl import DatabaseUrl

__all__ = ["USAGE", "COMMANDS", "DATABASE_ONLY", "command_help", "parse_command_line",
           "Settings", "wants_help", "before_dashes"]

USAGE = """dap - download Canvas Data 2 tables from Instructure's DAP Query API.

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
COMMANDS = ("list", "schema", "snapshot", "incremental", "initdb", "syncdb", "dropdb",
            "listdb")
#: commands that talk to the database only, never to DAP (no credentials needed)
DATABASE_ONLY = ("dropdb", "listdb")
LOGLEVELS = ("debug", "info", "warning", "error")


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

def before_dashes(argv: Sequence[str]) -> List[str]:
    """The arguments before a ``--`` (after it, nothing is an option)."""
    argv = list(argv)
    return argv[:argv.index("--")] if "--" in argv else argv


def wants_help(argv: Sequence[str]) -> Tuple[bool, Optional[str]]:
    command = next((a for a in argv if a in COMMANDS), None)
    return bool({"-h", "--help"} & set(before_dashes(argv))), command


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

    # the database options: set by dbcommands.database_settings (for any other command,
    # only database_secrets, empty, and database_url, None)
    database_secrets: List[str]
    database_url: Optional[DatabaseUrl]
    default_database: bool
    replace: bool
    reinit_if_needed: bool
    lock_wait: float
    listdb_json: bool

    def __init__(self, args: Mapping[str, Any], environ: Mapping[str, str]) -> None:
        from .. import queries
        from ..credentials import resolve_credentials
        from .http import DEFAULT_BASE_URL, check_base_url

        self.command = next(c for c in COMMANDS if args.get(c))
        check_no_empty_values(args)
        # docopt fills every option's [default: ...] of USAGE: the defaults live there alone
        level = args["--loglevel"].strip().lower()
        if level not in LOGLEVELS:
            raise errors.InvalidInput("unknown log level %r" % args.get("--loglevel"),
                                      "use one of " + ", ".join(LOGLEVELS))
        self.loglevel = level
        self.logformat = args["--logformat"].strip().lower()
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
        self.timeout = parse_timeout(args["--timeout"])
        self.concurrency = parse_concurrency(args["--concurrency"])
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

        self.namespace = queries.check_name("namespace", args["--namespace"])
        self.tables = queries.parse_tables(args["--table"]) if args.get("--table") else None
        self.format = queries.parse_format(args["--format"])
        self.mode = queries.parse_mode(args.get("--mode"))
        self.since = self._timestamp("since", args.get("--since"))
        self.until = self._timestamp("until", args.get("--until"))
        queries.check_window(self.since, self.until)
        output = args.get("--output")
        if output is not None and output != "-":
            raise errors.UsageError("--output takes only - (stdout); got %r" % output,
                                    "use --output-directory DIR to write files")
        self.to_stdout = output == "-"
        self.directory: Optional[str] = None if self.to_stdout else args["--output-directory"]
        self.state_path = args.get("--state")
        self.several = self.tables is not None and (
            self.tables is queries.ALL or len(self.tables) > 1)

        if self.command in ("snapshot", "incremental"):
            if self.to_stdout:
                queries.check_stdout_format(self.format, self.several)
            if self.format == "parquet":
                from .parquet import require_parquet
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
        if self.state_path is not None:  # refused before any request, not after a job
            from .state import check_state_path, load_state
            check_state_path(self.state_path)
            load_state(self.state_path)

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


def parse_concurrency(text: str) -> int:
    """--concurrency: tables at once, 1 to 64."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 64:
        raise errors.InvalidInput("--concurrency takes a number of tables from 1 to 64, not %r"
                                  % text, "pass for example --concurrency 4")
    return value


def parse_timeout(text: str) -> float:
    """--timeout: seconds, more than 0 and at most a day."""
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
