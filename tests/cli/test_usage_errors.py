"""A command line that is not understood says which word is wrong and what was probably
meant (#12), in one line, exit 2, before any request."""
from __future__ import annotations

import pytest

from .conftest import assert_one_line_error, run_dap


@pytest.mark.parametrize("argv,words", [
    (["snapshto", "--table", "accounts"], ["unknown command 'snapshto'", "did you mean snapshot?"]),
    (["snapshot", "accounts"], ["does not take the word 'accounts'",
                                "did you mean --table accounts?"]),
    (["list", "--namespace"], ["--namespace needs a value"]),
    (["snapshot", "--tabel", "accounts"], ["unknown option --tabel", "did you mean --table?"]),
    (["incremental", "--table", "a", "--since"], ["--since needs a value"]),
    (["--namespace"], ["--namespace needs a value", "no command"]),
], ids=["command-typo", "word-for-table", "missing-value", "option-typo", "since-value",
        "only-option"])
def test_the_wrong_word_is_named_with_what_was_meant(simulator, argv, words):
    line = assert_one_line_error(run_dap(*argv, sim=simulator), 2, *words)
    assert "not understood" not in line
    assert simulator.requests == []


def test_the_usage_texts_defaults_are_the_librarys():
    """docopt's defaults are literal text in USAGE: they must say what the library does."""
    from dap_core.shell.http import DEFAULT_TIMEOUT
    from dap_core.shell.pipeline import DEFAULT_CONCURRENCY, DOWNLOADS_AT_ONCE
    from dap_core.shell.usage import USAGE, parse_command_line
    args = parse_command_line(["list"])
    assert int(args["--concurrency"]) == DEFAULT_CONCURRENCY
    assert float(args["--timeout"]) == DEFAULT_TIMEOUT[1]
    assert "at most %d of them download at a time" % DOWNLOADS_AT_ONCE in " ".join(USAGE.split())
