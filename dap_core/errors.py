"""One error hierarchy for dap, and the exit status each error ends the program with.

    DapError                       1  a bug
      UserError                       the person can fix it without the service
        UsageError                 2  the command line is not understood
        InvalidInput               3  input refused before any request
          InvalidTimestamp, InvalidCredentials, MissingCredentials,
          ChainError, StateConflict, StateCorrupt
      ServiceError                    the service said no (or could not say anything)
        AuthenticationFailed       4
        Forbidden                  5
        NotFound                   6
        ValidationFailed           7
        OutOfRange                 8
        SnapshotRequired           9
        JobFailed                 10
        ServiceUnavailable        11  retries exhausted: 5xx, 429, network
          RateLimited                 429
          UnexpectedAnswer            an answer that does not follow the contract
      OutputError                 12
      PartialFailure              13
      DatabaseError               14  the database refused or could not be reached
        DatabaseBusy              15  another run holds the table's lock
        SchemaChangeRefused       16  a schema change that cannot be applied in place

`str(error)` is always one line: what failed, ` (uuid U)` when the service gave one, then
`: hint`, what to do about it.
"""
from __future__ import annotations

import json
import re
from typing import Any, Dict, Optional, Tuple

__all__ = [
    "DapError", "UserError", "UsageError", "InvalidInput", "InvalidTimestamp",
    "InvalidCredentials", "MissingCredentials", "ChainError", "StateConflict", "StateCorrupt",
    "ServiceError", "AuthenticationFailed", "Forbidden", "NotFound", "ValidationFailed",
    "OutOfRange", "SnapshotRequired", "JobFailed", "ServiceUnavailable", "RateLimited",
    "UnexpectedAnswer", "OutputError", "PartialFailure", "DatabaseError", "DatabaseBusy",
    "SchemaChangeRefused", "AlreadyInitialized", "Terminated", "EXIT_STATUSES",
    "exit_status_for", "EXIT_INTERRUPTED", "EXIT_BROKEN_PIPE", "EXIT_TERMINATED", "STDOUT_HINT",
    "error_from_answer", "one_line",
]

_MAX_SERVICE_TEXT = 300  # a service message is shown, but never pages of it


def one_line(text: Any, limit: Optional[int] = None) -> str:
    """`text` with all whitespace runs (newlines included) collapsed to one space."""
    flat = " ".join(str(text).split())
    if limit is not None and len(flat) > limit:
        flat = flat[: limit - 3] + "..."
    return flat


class DapError(Exception):
    """Base of every error dap raises on purpose; exit status 1 means it escaped as a bug."""

    exit_status = 1
    default_hint: Optional[str] = None
    uuid: Optional[str] = None

    def __init__(self, message: str, hint: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint

    def __str__(self) -> str:
        text = one_line(self.message)
        if self.uuid:
            text += " (uuid %s)" % one_line(self.uuid)
        if self.hint:
            text += ": " + one_line(self.hint)
        return text

    def __repr__(self) -> str:
        return "%s(%r)" % (type(self).__name__, str(self))


# -- user errors: the person can fix these without the service ---------------------------

class UserError(DapError):
    """Bad input from the person running dap (as opposed to an answer from the service)."""


class UsageError(UserError):
    exit_status = 2
    default_hint = "see dap --help"


class InvalidInput(UserError):
    exit_status = 3


class InvalidTimestamp(InvalidInput):
    pass


class InvalidCredentials(InvalidInput):
    pass


class MissingCredentials(InvalidInput):
    default_hint = ("set DAP_CLIENT_ID and DAP_CLIENT_SECRET (or --client-id and "
                    "--client-secret), or DAP_API_KEY (or --api-key)")


class ChainError(InvalidInput):
    """A query or result that would leave a gap in a chain, or move it backwards."""


class StateConflict(InvalidInput):
    """The state file and the command line disagree."""


class StateCorrupt(InvalidInput):
    default_hint = ("repair the state file or move it aside (the next run then needs --since or "
                    "a snapshot)")


# -- service errors -------------------------------------------------------------------------

class ServiceError(DapError):
    """An answer from DAP that ends the operation; fields are those of the contract's error body."""

    exit_status = 11

    def __init__(self, message: str, hint: Optional[str] = None, *, status: Optional[int] = None,
                 type: Optional[str] = None, uuid: Optional[str] = None,
                 extra: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(message, hint)
        self.status = status
        self.type = type
        self.uuid = uuid
        self.extra = dict(extra or {})


class AuthenticationFailed(ServiceError):
    exit_status = 4
    default_hint = "check DAP_CLIENT_ID and DAP_CLIENT_SECRET, or DAP_API_KEY"


class Forbidden(ServiceError):
    exit_status = 5
    default_hint = ("check that the account is onboarded to DAP and enabled; "
                    "if DAP is under maintenance, try again later")


class NotFound(ServiceError):
    exit_status = 6


class ValidationFailed(ServiceError):
    exit_status = 7
    default_hint = "check the options of the query (timestamps, format, mode)"


class OutOfRange(ServiceError):
    exit_status = 8
    default_hint = ("pass --since and --until inside the range DAP has data for (without "
                    "--until, the changes end at the latest data)")


class SnapshotRequired(ServiceError):
    exit_status = 9
    default_hint = ("take a new snapshot (dap snapshot --table TABLE), then chain incrementals "
                    "from its `at`")


class JobFailed(ServiceError):
    exit_status = 10
    default_hint = "run the query again; if it fails again, report the uuid to Instructure support"


class ServiceUnavailable(ServiceError):
    exit_status = 11
    default_hint = "try again later"


class RateLimited(ServiceUnavailable):
    default_hint = ("wait a minute and try again; queries and table lists are limited to 5 per "
                    "minute")


class UnexpectedAnswer(ServiceUnavailable):
    """An answer that does not follow the contract: malformed JSON, a job of unknown shape."""
    default_hint = "try again; if it persists, report it together with the uuid, if any"


# -- the rest ---------------------------------------------------------------------------------

class OutputError(DapError):
    exit_status = 12
    default_hint = "check free space and permissions of the output directory"


#: what to do when writing to stdout fails (there is no output directory to blame)
STDOUT_HINT = "check the free space of the file or device that stdout goes to"


class PartialFailure(DapError):
    """Several tables were asked for and some failed; the others' outputs are whole."""

    exit_status = 13

    def __init__(self, message: str, hint: Optional[str] = None,
                 failures: Optional[Dict[str, DapError]] = None) -> None:
        super().__init__(message, hint)
        self.failures = dict(failures or {})


class AlreadyInitialized(InvalidInput):
    """initdb of a table the database already holds."""


class DatabaseError(DapError):
    """The database could not be reached, refused the credentials, or refused a statement."""

    exit_status = 14
    default_hint = ("check the connection string (host, port, user, password, database) "
                    "and that the user may create and write tables there")


class DatabaseBusy(DatabaseError):
    """Another run (cron overlap, another machine) holds the table's lock."""

    exit_status = 15
    default_hint = ("another dap run is replicating this table; let it finish, or wait "
                    "longer with --lock-wait SECONDS")


class SchemaChangeRefused(DatabaseError):
    exit_status = 16
    default_hint = "rebuild the table with dap initdb --replace"


#: exit statuses that no error class carries: 128 + the signal, as a shell reports a process
#: the signal killed, so that `set -o pipefail` scripts and service managers can tell
EXIT_INTERRUPTED = 130  # SIGINT, Ctrl-C
EXIT_BROKEN_PIPE = 141  # SIGPIPE: not everything was delivered, no checkpoint moved
EXIT_TERMINATED = 143  # SIGTERM

# The one table of exit statuses; tests check it against the classes above.
EXIT_STATUSES: Tuple[Tuple[int, Optional[str], str], ...] = (
    (0, None, "success"),
    (1, "DapError", "a bug: report it"),
    (2, "UsageError", "the command line is not understood"),
    (3, "InvalidInput", "input refused before any request: timestamp, format, name, "
                        "credentials, base URL, output directory, state file"),
    (4, "AuthenticationFailed", "401 that a fresh token does not cure; wrong credentials"),
    (5, "Forbidden", "403 on an API call: not onboarded, disabled, maintenance"),
    (6, "NotFound", "404: namespace, table, job or object"),
    (7, "ValidationFailed", "400 validation error from the service"),
    (8, "OutOfRange", "400: since/until outside the data DAP has"),
    (9, "SnapshotRequired", "400: since too old or table reloaded; take a new snapshot"),
    (10, "JobFailed", "the query job failed"),
    (11, "ServiceUnavailable", "5xx, 429, network errors, corrupt parts, unexpected answers: "
                               "retries exhausted"),
    (11, "ServiceError", "any other answer from the service that ends the run (an HTTP "
                         "status the contract does not name)"),
    (12, "OutputError", "writing the output failed (disk full, I/O error)"),
    (13, "PartialFailure", "several tables asked, some failed (the others' outputs are whole)"),
    (14, "DatabaseError", "the database could not be reached, refused the login, or refused "
                          "a statement"),
    (15, "DatabaseBusy", "another run holds the table's lock in the database"),
    (16, "SchemaChangeRefused", "the table's new schema cannot be applied in place: "
                                "initdb --replace"),
    (EXIT_INTERRUPTED, None, "interrupted (SIGINT)"),
    (EXIT_BROKEN_PIPE, None, "stdout was closed early (SIGPIPE): not everything was "
                             "delivered, no checkpoint moved"),
    (EXIT_TERMINATED, None, "terminated (SIGTERM): cleaned up like an interrupt, no "
                            "checkpoint moved"),
)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is so that it unwinds like Ctrl-C: temporaries
    removed, no checkpoint moved (the CLI installs the handler; exit 143)."""


def exit_status_for(error: BaseException) -> int:
    """The exit status the program ends with for `error` (a bug: DapError's, 1)."""
    if isinstance(error, Terminated):
        return EXIT_TERMINATED
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(error, BrokenPipeError):
        return EXIT_BROKEN_PIPE
    if isinstance(error, DapError):
        return error.exit_status
    return DapError.exit_status


# -- mapping an HTTP answer ---------------------------------------------------------------------

def _error_fields(body: Optional[bytes]) -> Dict[str, Any]:
    """The contract's `{"error": {...}}` object, or {} when the body is absent or not that."""
    if not body:
        return {}
    try:
        data = json.loads(body.decode("utf-8") if isinstance(body, (bytes, bytearray)) else body)
    except (ValueError, UnicodeDecodeError):
        return {}  # a gateway page, not the service's JSON
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        return dict(data["error"])
    if isinstance(data, dict) and ("type" in data or "message" in data):
        return data  # tolerate an unwrapped error object
    return {}


def _kind_of_400(type_text: str, message: str, extra: Dict[str, Any]):
    """Which 400 this is. The contract names three but not their `type` strings, so:
    a `type` (or, failing that, message) mentioning "snapshot" -> SnapshotRequired;
    one mentioning "range" -> OutOfRange; otherwise `since`/`until` extras without a
    `location` -> OutOfRange; anything else -> ValidationFailed."""
    words = type_text.lower()
    if "snapshot" in words:
        return SnapshotRequired
    if "range" in words:
        return OutOfRange
    if not words:
        text = message.lower()
        if "snapshot" in text:
            return SnapshotRequired
        if "range" in text:
            return OutOfRange
    if ("since" in extra or "until" in extra) and "location" not in extra:
        return OutOfRange
    return ValidationFailed


def _location_text(location: Any) -> str:
    if not isinstance(location, dict):
        return ""
    parts = ["%s %s" % (name, location[name]) for name in ("line", "column", "character")
             if location.get(name) is not None]
    return " at " + ", ".join(parts) if parts else ""


def _range_text(extra: Dict[str, Any]) -> str:
    if extra.get("since") is None and extra.get("until") is None:
        return ""
    return " (DAP has data from %s until %s)" % (one_line(extra.get("since", "?")),
                                                  one_line(extra.get("until", "?")))


def error_from_answer(status: Optional[int], body: Optional[bytes], *,
                      namespace: Optional[str] = None,
                      table: Optional[str] = None) -> ServiceError:
    """The error an HTTP answer means. `body` may be absent or not JSON (a gateway's 504);
    `namespace` and `table`, when the caller knows them, make messages and hints concrete."""
    fields = _error_fields(body)
    type_text = one_line(fields.get("type") or "")
    uuid = fields.get("uuid")
    uuid = one_line(uuid) if uuid else None
    said = one_line(fields.get("message") or "", _MAX_SERVICE_TEXT)
    extra = {k: v for k, v in fields.items() if k not in ("type", "uuid", "message")}
    common: Dict[str, Any] = dict(status=status, type=type_text or None, uuid=uuid,
                                  extra=extra)
    reason = ": " + said if said else ""
    where = "%s.%s" % (namespace, table) if namespace and table else (table or namespace or "")

    if status is None:
        return ServiceUnavailable("could not reach DAP (connection error or timeout)", **common)
    if status == 400:
        cls = _kind_of_400(type_text, said, extra)
        if cls is SnapshotRequired:
            hint = ("take a new snapshot (dap snapshot --table %s), then chain incrementals "
                    "from its `at`" % (table or "TABLE"))
            said = _SAYS_TAKE_A_SNAPSHOT.sub("", said)  # the hint says it, with the command
            return SnapshotRequired("DAP needs a new snapshot%s%s" % (
                " of " + where if where else "", ": " + said if said else ""), hint, **common)
        if cls is OutOfRange:
            return OutOfRange("since/until is outside the data DAP has%s%s" % (
                _range_text(extra), reason), **common)
        return ValidationFailed("DAP refused the request%s%s" % (
            _location_text(extra.get("location")), reason), **common)
    if status == 401:
        return AuthenticationFailed("authentication failed%s" % reason, **common)
    if status == 403:
        return Forbidden("DAP refused access%s" % reason, **common)
    if status == 404:
        return _not_found(extra, said, namespace, table, common)
    if status == 429:
        return RateLimited("too many requests (HTTP 429)%s" % reason, **common)
    if 500 <= status <= 599:
        return ServiceUnavailable("DAP is unavailable (HTTP %d)%s" % (status, reason), **common)
    if 300 <= status <= 399:
        # API calls never follow a redirect: the Authorization header stays with the API host
        return UnexpectedAnswer("DAP answered with a redirect (HTTP %d), which dap does not "
                                "follow%s" % (status, reason), **common)
    return ServiceError("unexpected answer from DAP (HTTP %d)%s" % (status, reason),
                        "try again; if it persists, report it", **common)


#: a service message's closing advice to take a new snapshot (the hint gives it, once)
_SAYS_TAKE_A_SNAPSHOT = re.compile(r"[\s,;:.]*(?:please\s+)?take a (?:new |fresh )?snapshot"
                                   r"[^,;:]*$", re.I)
#: DAP's namespaces (the contract's examples); an account may not have all of them
KNOWN_NAMESPACES = ("canvas", "canvas_logs", "catalog", "new_quizzes")


def _not_found(extra: Dict[str, Any], said: str, namespace: Optional[str],
               table: Optional[str], common: Dict[str, Any]) -> NotFound:
    kind = one_line(extra.get("kind") or "").lower()
    ident = one_line(extra.get("id") or "")
    if not kind and not ident:
        return NotFound("not found%s" % (": " + said if said else ""), **common)
    what = "%s %r" % (kind or "object", ident) if ident else (kind or "object")
    if kind == "table" and namespace:
        what += " not found in namespace %r" % namespace
    else:
        what += " not found"
    hints = {
        "namespace": (
            "%s is one of DAP's namespaces, but this DAP does not serve it to this account: "
            "ask Instructure support whether it is enabled" % ident
            if ident in KNOWN_NAMESPACES else
            "check the name: DAP's namespaces include %s" % ", ".join(KNOWN_NAMESPACES)),
        "table": "list the tables with dap list%s" % (
            " --namespace " + namespace if namespace else ""),
        "job": "the job may have expired; run the query again",
        "object": "the job's objects expire after about a day; run the query again",
    }
    return NotFound(what, hints.get(kind), **common)
