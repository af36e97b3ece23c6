"""Connection strings: what they name, what is refused, and that the password never shows."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from urllib.parse import quote

from dap_core import errors
from dap_core.dburl import parse_database_url


@pytest.mark.parametrize("text, dialect, database, host, port, user", [
    ("sqlite:///dap.db", "sqlite", "dap.db", None, None, None),
    ("sqlite:////var/lib/dap/x.db", "sqlite", "/var/lib/dap/x.db", None, None, None),
    ("sqlite:///:memory:", "sqlite", ":memory:", None, None, None),
    ("postgresql://dap@db.example.edu:5433/canvas", "postgresql", "canvas", "db.example.edu", 5433,
     "dap"),
    ("postgres://dap:pw@db/canvas", "postgresql", "canvas", "db", None, "dap"),
    ("postgresql+psycopg://h/canvas", "postgresql", "canvas", "h", None, None),
    ("mysql://root@127.0.0.1:3306/test", "mysql", "test", "127.0.0.1", 3306, "root"),
    ("mariadb://u:p@h/d", "mysql", "d", "h", None, "u"),
])
def test_what_a_connection_string_names(text, dialect, database, host, port, user):
    url = parse_database_url(text)
    assert (url.dialect, url.database, url.host, url.port, url.user) == (
        dialect, database, host, port, user)


def test_no_connection_string_is_sqlite_in_dap_db():
    assert parse_database_url(None).redacted() == "sqlite:///dap.db"


@pytest.mark.parametrize("text", ["", "dap.db", "oracle://h/db", "sqlite://dap.db",
                                  "postgresql://h", "postgresql://h:notaport/db",
                                  "mysql:///db", "sqlite:///"])
def test_malformed_connection_strings_are_invalid_input(text):
    with pytest.raises(errors.InvalidInput) as refused:
        parse_database_url(text)
    assert refused.value.exit_status == 3 and "sqlite:///" in str(refused.value)


@given(st.text(max_size=30).map(lambda s: "Zq" + s))  # "Zq" is nowhere else in the string
def test_the_password_is_never_in_what_is_shown(password):
    text = "postgresql://dap:%s@db.example.edu/canvas" % quote(password, safe="")
    url = parse_database_url(text)
    assert url.password == password
    for shown in (url.redacted(), str(url), repr(url)):
        assert password not in shown and quote(password, safe="") not in shown
    assert url.redacted() == "postgresql://dap:***@db.example.edu/canvas"
