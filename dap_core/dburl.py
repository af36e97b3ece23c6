"""Database connection strings (pure): what to connect to, and how to show it safely.

    sqlite:///relative/path.db    sqlite:////absolute/path.db    sqlite:///:memory:
    postgresql://user:password@host:port/database?sslmode=require   (also postgres://)
    mysql://user:password@host:port/database                         (also mariadb://)

The password is a secret: :meth:`DatabaseUrl.redacted` is the only form of the string that
is ever shown. A string without a password is fine: the driver then takes it from where it
usually does (``PGPASSWORD``, ``~/.pgpass``; ``MYSQL_PWD`` for MySQL).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple
from urllib.parse import parse_qsl, unquote, urlsplit

from .errors import InvalidInput

__all__ = ["DatabaseUrl", "parse_database_url", "DEFAULT_DATABASE_URL", "SCHEMES"]

#: with no connection string at all: SQLite in the current directory
DEFAULT_DATABASE_URL = "sqlite:///dap.db"
SCHEMES = {"sqlite": "sqlite", "postgresql": "postgresql", "postgres": "postgresql",
           "mysql": "mysql", "mariadb": "mysql"}
_EXAMPLES = ("sqlite:///dap.db, postgresql://user:password@host:5432/database or "
             "mysql://user:password@host:3306/database")


@dataclass(frozen=True)
class DatabaseUrl:
    dialect: str                      # sqlite, postgresql, mysql
    database: str                     # a database name, or SQLite's file path
    user: Optional[str] = None
    password: Optional[str] = field(default=None, repr=False)
    host: Optional[str] = None
    port: Optional[int] = None
    options: Tuple[Tuple[str, str], ...] = ()

    def redacted(self) -> str:
        """The string with its password replaced by ``***``."""
        if self.dialect == "sqlite":
            return "sqlite:///" + self.database
        auth = ""
        if self.user is not None:
            auth = self.user + (":***" if self.password is not None else "") + "@"
        host = self.host or ""
        if self.port is not None:
            host += ":%d" % self.port
        query = "&".join("%s=%s" % kv for kv in self.options)
        return "%s://%s%s/%s%s" % (self.dialect, auth, host, self.database,
                                   "?" + query if query else "")

    def __str__(self) -> str:
        return self.redacted()

    @property
    def secrets(self) -> Tuple[str, ...]:
        return (self.password,) if self.password else ()

    def option_dict(self) -> Dict[str, str]:
        return dict(self.options)


def _refuse(why: str) -> InvalidInput:
    return InvalidInput("the connection string %s" % why,
                        "write it like " + _EXAMPLES)


def parse_database_url(text: Optional[str]) -> DatabaseUrl:
    """The connection string ``text`` (``InvalidInput`` when it cannot be one); never puts
    the password in a message."""
    if text is None:
        text = DEFAULT_DATABASE_URL
    text = text.strip()
    if not text:
        raise _refuse("is empty")
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise _refuse("has no scheme (sqlite://, postgresql:// or mysql://)")
    base = scheme.lower().split("+")[0]  # postgresql+psycopg, mysql+pymysql: the driver is ours
    if base not in SCHEMES:
        raise _refuse("has an unknown scheme %r" % scheme[:20])
    dialect = SCHEMES[base]
    if dialect == "sqlite":
        if not rest.startswith("/"):
            raise _refuse("for SQLite needs three slashes: sqlite:///path/to/file.db")
        path = unquote(rest[1:].split("?")[0])
        if not path:
            raise _refuse("for SQLite names no file: sqlite:///path/to/file.db")
        return DatabaseUrl("sqlite", path)
    try:
        parts = urlsplit("%s://%s" % (base, rest))
        port = parts.port
    except ValueError:
        raise _refuse("has a malformed host or port") from None
    database = unquote(parts.path.lstrip("/"))
    if not database or "/" in database:
        raise _refuse("names no database (…/database at its end)")
    if not parts.hostname and dialect == "mysql":
        raise _refuse("names no host")
    options = tuple(parse_qsl(parts.query, keep_blank_values=True))
    return DatabaseUrl(dialect, database,
                       user=unquote(parts.username) if parts.username else None,
                       password=unquote(parts.password) if parts.password is not None else None,
                       host=parts.hostname, port=port, options=options)
