"""No long silent waits (#12): on a terminal, one status line says what the run is doing
(a job's state and how long it has been pending, a download's parts, rows, compressed MiB,
rate and elapsed time), cut to the terminal's width; off a terminal, log lines at info."""
from __future__ import annotations

import re

from .conftest import dap_env, run_dap, run_on_terminal

CLEAR = "\r\x1b[K"


def drawn(err):
    """The status lines drawn (the texts after each clear that no newline ends)."""
    return [seg for seg in err.split(CLEAR) if seg and "\n" not in seg]


def test_a_pending_job_and_the_download_are_shown_with_elapsed_time_and_rate(make_simulator,
                                                                          tmp_path):
    sim = make_simulator(job_wait=1.2, rows_per_part=17)
    status, err = run_on_terminal(["snapshot", "--table", "users", "--output-directory",
                                   str(tmp_path)], dap_env(sim))
    assert status == 0, err
    lines = drawn(err)
    assert any(re.match(r"canvas\.users: job waiting, \d+ s \(job \S+\)$", s) for s in lines), lines
    downloads = [s for s in lines if re.match(
        r"canvas\.users: part \d+/\d+, [\d,]+ rows, \d+\.\d MiB gzip at \d+\.\d MiB/s, \d+ s$", s)]
    assert downloads, lines


def test_the_status_line_fits_the_terminal(make_simulator, tmp_path):
    sim = make_simulator(job_wait=0.6, rows_per_part=17)
    status, err = run_on_terminal(["snapshot", "--table", "submissions", "--output-directory",
                                   str(tmp_path)], dap_env(sim), columns=40)
    assert status == 0, err
    lines = drawn(err)
    assert lines and all(len(s) <= 39 for s in lines), [s for s in lines if len(s) > 39]


def test_off_a_terminal_a_pending_job_is_an_info_log_line_and_silent_by_default(make_simulator,
                                                                             tmp_path):
    sim = make_simulator(job_wait=0.6)
    quiet = run_dap("snapshot", "--table", "users", "--output-directory", tmp_path, sim=sim)
    assert quiet.status == 0 and len(quiet.err_lines) == 1 and CLEAR not in quiet.err
    told = run_dap("--loglevel", "info", "snapshot", "--table", "accounts",  # a new job
                   "--output-directory", tmp_path, sim=sim)
    assert told.status == 0
    assert any(re.search(r"dap: info: canvas\.accounts: snapshot job \S+ is waiting", line)
               for line in told.err_lines), told.err
