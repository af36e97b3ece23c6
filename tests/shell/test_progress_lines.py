"""On a terminal, several tables at once get one progress line each, redrawn in place
(#11); a table's line goes when it is done. The screen is rebuilt from the bytes written,
by a small terminal written here (carriage return, erase line, cursor up, newline)."""
from __future__ import annotations

import io
import re
import threading

from dap_core.shell.progress import TerminalProgress


def screen(text: str) -> list:
    """The lines a terminal shows after `text` (only the controls the progress uses)."""
    lines, row, col = [""], 0, 0
    for token in re.findall(r"\x1b\[1A|\x1b\[K|\r|\n|[^\x1b\r\n]+", text):
        if token == "\r":
            col = 0
        elif token == "\n":
            row += 1
            col = 0
            if row == len(lines):
                lines.append("")
        elif token == "\x1b[K":
            lines[row] = lines[row][:col]
        elif token == "\x1b[1A":
            row = max(0, row - 1)
        else:
            line = lines[row]
            lines[row] = line[:col] + token + line[col + len(token):]
            col += len(token)
    while lines and not lines[-1]:
        lines.pop()
    return lines


def in_thread(action):
    thread = threading.Thread(target=action)
    thread.start()
    thread.join()


def test_each_active_table_has_its_own_line_and_loses_it_when_done():
    stream = io.StringIO()
    progress = TerminalProgress(stream, width=70)
    ready = {}

    def accounts():
        progress.job("canvas.accounts", "job-a", "running")
        progress.start("canvas.accounts", 3)
        progress.part(1)
        progress.rows(500)
        ready["accounts"] = progress.current.label

    def users():
        progress.job("canvas.users", "job-u", "waiting")

    in_thread(accounts)
    in_thread(users)
    shown = screen(stream.getvalue())
    assert len(shown) == 2, shown
    assert shown[0].startswith("canvas.accounts: part 2/3, 500 rows")
    assert shown[1].startswith("canvas.users: job waiting")
    assert all(len(line) <= 69 for line in shown)

    def accounts_done():
        progress.current.label = ready["accounts"]
        progress.end()

    in_thread(accounts_done)
    assert [line.split(":")[0] for line in screen(stream.getvalue())] == ["canvas.users"]
    progress.clear()
    assert screen(stream.getvalue()) == []
