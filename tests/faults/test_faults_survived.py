"""Each fault the simulator can inject is survived: with the fault switched on, the same
`bin/dap` command gives output byte-identical to a clean run against a second, fault-free
simulator with the same seed (same records, same virtual timestamps, so the same file names).

Every test also checks that its fault really fired (a test whose fault never fired proves
nothing) and that no object download carried a credential header.  Faults that do not heal
(a part corrupt on every download, a failed job) end in a clear error with the right exit
status and nothing written as complete.
"""
from __future__ import annotations

import json
import os
import re

import pytest

from . import checks, support
from .support import OUTPUTS, run_dap

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def statuses(sim, prefix):
    return [r["status"] for r in sim.requests if r["path"].startswith(prefix)]


# -- per-fault extra checks (beyond "byte-identical and the fault fired") ---------------------

def retry_after_was_honoured(sim):
    """After each 429 (Retry-After: 1) the next API request came at least 1 s later."""
    api = [r for r in sim.requests if r["path"].startswith("/dap/")]
    waits = [(after["time"] - before["time"], before, after)
             for before, after in zip(api, api[1:]) if before["status"] == 429]
    assert waits, "no 429 was followed by another request"
    for wait, before, after in waits:
        assert wait >= 0.95, (before, after)


def a_504_was_among_them(sim):
    """The 5xx cycle is 500, 502, 503, 504, and the first 504 comes without a JSON body."""
    assert 504 in statuses(sim, "/dap/")


def downloads_resumed_with_range(sim):
    ranged = [r for r in support.object_requests(sim) if "range" in r["headers"]]
    assert ranged and all(r["status"] == 206 for r in ranged), ranged
    assert all(re.fullmatch(r"bytes=[1-9]\d*-", r["headers"]["range"]) for r in ranged)


def parts_were_downloaded_again(sim):
    """A part failing its gzip check is fetched again from byte 0 (no Range on a bad part)."""
    objects = support.object_requests(sim)
    paths = [r["path"].split("?")[0] for r in objects]
    assert len(paths) > len(set(paths)), "no part was downloaded twice"
    assert all("range" not in r["headers"] for r in objects)


def fresh_urls_were_asked_for(sim):
    assert 403 in statuses(sim, "/objects/")
    assert len([r for r in sim.requests if r["path"] == "/dap/object/url"]) >= 2


def fresh_tokens_were_fetched(sim):
    logins = [r for r in sim.requests if r["path"] == "/ids/auth/login"]
    assert len(logins) >= 2 and 401 in statuses(sim, "/dap/")


#: name -> (simulator faults, fault kind counted, at least this many fired, data options,
#: extra check).  The expired-URL case cuts the first part's download five times: each cut
#: is followed by a retry delay of at least 0.25 s, so more than a second passes after the
#: URLs were handed out, longer than --url-ttl 1 lets them live (the fault fires for sure).
FAULTS = {
    "429-retry-after": (dict(fail_429=0.3), "fail_429", 1, None, retry_after_was_honoured),
    "5xx-and-504-without-body": (dict(fail_5xx=0.4), "fail_5xx", 4, None, a_504_was_among_them),
    "download-cut-mid-part": (dict(cut_download_after=300, cut_download_times=3),
                              "cut_download", 3, None, downloads_resumed_with_range),
    "truncated-gzip-part": (dict(truncate_parts=2), "truncate_part", 2, None,
                            parts_were_downloaded_again),
    "corrupt-gzip-part": (dict(corrupt_parts=2), "corrupt_part", 2, None,
                          parts_were_downloaded_again),
    "expired-presigned-urls": (dict(url_ttl=1, cut_download_after=200, cut_download_times=5),
                               "expired_url", 1, None, fresh_urls_were_asked_for),
    # the job stays pending 3 s, polled all the while, so its token outlives 1 s for sure;
    # a fresh token is never a second old before its first use (0.2 s was, on a busy machine:
    # refused twice in a row, the run ended with exit 4)
    "token-refused-before-exp": (dict(refuse_tokens_after=1.0, job_wait=3.0), "refuse_token", 1,
                                 None, fresh_tokens_were_fetched),
}


def _cases():
    for name in FAULTS:
        for fmt, where in OUTPUTS:
            yield pytest.param(name, fmt, where, id="%s-%s-%s" % (name, fmt, where))


class Case:
    """One faulty run: its simulator (kept running for its request log), run and directory."""

    def __init__(self, fault, fmt, where, sim, run, tmp):
        self.fault, self.fmt, self.where = fault, fmt, where
        self.sim, self.run, self.tmp = sim, run, tmp
        self.out = os.path.join(tmp, "out")


@pytest.fixture(scope="module")
def fault_runs(request, tmp_path_factory, reference):
    """Every selected (fault, format, output) case, run concurrently: the runs mostly wait
    (Retry-After, backoff, polls), so running them side by side keeps this module quick.
    Each has its own fresh simulator; the clean references are made first."""
    from concurrent.futures import ThreadPoolExecutor
    from fixtures.simulator import Simulator

    wanted = sorted({tuple(item.callspec.params[k] for k in ("fault", "fmt", "where"))
                     for item in request.session.items
                     if getattr(item, "originalname", None) == NAME and
                     item.module is request.module})
    for fmt, where in sorted({(f, w) for _, f, w in wanted}):
        reference(fmt, where)
    sims = []

    def one(case):
        fault, fmt, where = case
        options = dict(support.DATA_OPTIONS, **(FAULTS[fault][3] or {}))
        options.update(FAULTS[fault][0])
        sim = Simulator(**options).start()
        sims.append(sim)
        tmp = str(tmp_path_factory.mktemp("fault"))
        run = run_dap(sim, support.query_args("snapshot", "submissions", fmt, where,
                                              os.path.join(tmp, "out")), cwd=tmp)
        return Case(fault, fmt, where, sim, run, tmp)

    with ThreadPoolExecutor(max_workers=8) as pool:
        done = dict(zip(wanted, pool.map(one, wanted)))
    yield done
    for sim in sims:
        sim.stop()


NAME = "test_output_under_fault_is_byte_identical_to_a_clean_run"


@pytest.mark.slow
@pytest.mark.parametrize("fault, fmt, where", list(_cases()))
def test_output_under_fault_is_byte_identical_to_a_clean_run(fault, fmt, where, fault_runs,
                                                             reference):
    case = fault_runs[fault, fmt, where]
    sim, run = case.sim, case.run
    faults, kind, at_least, data_options, extra_check = FAULTS[fault]
    assert run.returncode == 0, run
    fired = sim.fault_counts[kind]
    assert fired >= at_least, "the fault %s fired %d times: the test proves nothing" % (
        kind, fired)

    clean_run, clean_files = reference(fmt, where, data_options=data_options)
    if where == "stdout":
        assert run.stdout == clean_run.stdout
        assert run.stdout  # records really came out
        assert os.listdir(case.tmp) == [], "--output - wrote files"
    else:
        got = support.directory_contents(case.out)
        assert sorted(got) == sorted(clean_files)
        for name in clean_files:
            assert got[name] == clean_files[name], name
        listing = checks.inspect_directory(case.out)
        assert listing.problems == [] and listing.temporary == [], listing.problems
        assert support.stdout_lines_comparable(run) == \
            support.stdout_lines_comparable(clean_run)

    assert support.credentials_on_downloads(sim) == []
    assert len(support.object_requests(sim)) >= 7  # 250 rows in parts of 40
    extra_check(sim)


# -- faults that do not heal -----------------------------------------------------------------

@pytest.mark.parametrize("fmt, where", [("csv", "file"), ("jsonl", "file"), ("jsonl", "stdout")])
def test_a_part_corrupt_on_every_download_is_exit_11_with_no_output(fmt, where, faulty,
                                                                    tmp_path):
    sim = faulty(corrupt_parts=10 ** 6)
    out = tmp_path / "out"
    state = tmp_path / "state.json"
    run = run_dap(sim, support.query_args("snapshot", "submissions", fmt, where, str(out),
                                          state=str(state)), cwd=str(tmp_path))
    assert run.returncode == 11, run
    assert sim.fault_counts["corrupt_part"] >= 2
    assert "dap: error:" in run.stderr and "corrupt" in run.stderr
    assert "Traceback" not in run.stderr
    if where == "stdout":
        assert run.stdout == b""  # no record of an unverified part reached stdout
    else:
        assert os.listdir(str(out)) == []  # no output, no sidecar, no temporary file
    assert not state.exists()  # no checkpoint for a result that was not delivered


def _failed_job_error(sim):
    errors = [job.error for job in sim.service.jobs.values() if job.error]
    assert len(errors) == 1
    return errors[0]


@pytest.mark.parametrize("fmt, where", [("csv", "file"), ("jsonl", "stdout")])
def test_a_failed_job_is_exit_10_with_the_service_message_and_uuid_and_nothing_written(
        fmt, where, faulty, tmp_path):
    sim = faulty(fail_table=("submissions",))
    out = tmp_path / "out"
    state = tmp_path / "state.json"
    # a checkpoint of another table exists before: it must come out of the failure unchanged
    first = run_dap(sim, support.query_args("snapshot", "accounts", "jsonl", "file", str(out),
                                            state=str(state)), cwd=str(tmp_path))
    assert first.returncode == 0, first
    before_files = support.directory_contents(str(out))
    before_state = state.read_bytes()

    run = run_dap(sim, support.query_args("snapshot", "submissions", fmt, where, str(out),
                                          state=str(state)), cwd=str(tmp_path))
    assert run.returncode == 10, run
    assert sim.fault_counts["fail_table"] == 1
    error = _failed_job_error(sim)
    assert error["message"] in run.stderr
    assert error["uuid"] in run.stderr and re.search(UUID, run.stderr)
    assert "Traceback" not in run.stderr
    if where == "stdout":
        assert run.stdout == b""
    assert support.directory_contents(str(out)) == before_files
    assert [n for n in os.listdir(str(out)) if checks.TEMP_NAME.match(n)] == []
    assert state.read_bytes() == before_state
    assert "canvas.submissions" not in json.loads(state.read_text())["checkpoints"]


def _refused_again_after_a_wait(sim):
    """401, a fresh token that gets past authentication (429), a wait, 401 again: the
    sequence a token that dies early meets when the service is also busy."""
    seq = [(r["path"], r["status"]) for r in sim.requests if not r["path"].startswith("/objects/")]
    for i in range(len(seq) - 3):
        (p1, s1), (p2, _), (p3, s3), (p4, s4) = seq[i:i + 4]
        if (s1, p2, s3, s4) == (401, "/ids/auth/login", 429, 401) and p1 == p3 == p4:
            return True
    return False


def test_a_token_refused_again_after_waiting_out_a_429_is_renewed_again(faulty, reference,
                                                                        tmp_path):
    """The token fetched after a 401 is accepted (the next answer is a 429, which only an
    authenticated call gets), then refused once more after the Retry-After wait: that is no
    "freshly issued token refused", and no tight loop either; dap fetches another one."""
    data = dict(seed=1)
    sim = faulty(data, refuse_tokens_after=0.3, fail_429=0.3)
    out = tmp_path / "out"
    run = run_dap(sim, support.query_args("snapshot", "submissions", "jsonl", "file", str(out)),
                  cwd=str(tmp_path))
    assert _refused_again_after_a_wait(sim), [(r["path"], r["status"]) for r in sim.requests]
    assert run.returncode == 0, run
    _, clean_files = reference("jsonl", "file", data_options=data)
    assert support.directory_contents(str(out)) == clean_files
