"""Each fault the simulator injects, and the shell's answer to it: with the fault on, the
same download gives output byte-identical to a clean run; when a fault does not heal, a
clear error with its exit status and nothing half-written."""
from __future__ import annotations

import errno
import os
import socket
import time

import pytest

from dap_core import Client, SnapshotQuery, resolve_credentials
from dap_core.errors import OutputError, ServiceUnavailable
from dap_core.policy import RetryPolicy
from dap_core.shell.client import Progress

from .conftest import Sleeper, connect

PARTS = dict(rows_per_part=17)


def download(sim, directory, fmt="csv", table="submissions", **options):
    """Snapshot `table` of `sim` into `directory`; (data bytes, result, client)."""
    query = SnapshotQuery("canvas", table, format=fmt)
    with connect(sim, **options) as dap:
        result = dap.download(dap.run(query), query, str(directory))
    with open(result.path, "rb") as f:
        return f.read(), result, dap


@pytest.fixture
def clean(make_simulator, tmp_path):
    """The bytes of a clean run, per format."""
    sim = make_simulator(**PARTS)
    cache = {}

    def get(fmt="csv", table="submissions"):
        if (fmt, table) not in cache:
            cache[fmt, table] = download(sim, tmp_path / ("clean-" + fmt + table), fmt, table)[0]
        return cache[fmt, table]

    return get


def statuses(sim, prefix):
    return [r["status"] for r in sim.requests if r["path"].startswith(prefix)]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_429_is_retried_after_retry_after_and_output_is_identical(make_simulator, tmp_path,
                                                                  clean, fmt):
    sim = make_simulator(fail_429=0.3, **PARTS)
    sleeper = Sleeper()
    data, _, _ = download(sim, tmp_path, fmt, sleeper=sleeper)
    fired = sim.fault_counts["fail_429"]
    assert fired > 0 and data == clean(fmt)
    # every 429 was followed by a wait of at least its Retry-After (1 s): no retry storm
    assert sum(1 for d in sleeper.delays if d >= 1.0) >= fired
    api = statuses(sim, "/dap/")
    assert api.count(429) == fired and len(api) <= 3 * fired + 10


def test_5xx_on_api_calls_including_starting_the_job_is_retried(make_simulator, tmp_path, clean):
    sim = make_simulator(fail_5xx=0.35, **PARTS)
    data, _, _ = download(sim, tmp_path)
    assert sim.fault_counts["fail_5xx"] > 0 and data == clean()
    starts = [r["status"] for r in sim.requests if r["path"].endswith("/data")]
    assert starts[-1] == 200


def test_connection_errors_are_retried_a_bounded_number_of_times_with_growing_delays():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeper = Sleeper(cap=0)
    creds = resolve_credentials(client_id="us-east-1#x", client_secret="y")
    with Client("http://127.0.0.1:%d" % port, creds, sleep=sleeper,
                retry_policy=RetryPolicy(max_attempts=5)) as dap:
        with pytest.raises(ServiceUnavailable) as caught:
            dap.list_tables()
    assert caught.value.exit_status == 11
    assert len(sleeper.delays) == 4
    assert sleeper.delays == sorted(sleeper.delays) and sleeper.delays[-1] > sleeper.delays[0]


def test_a_download_cut_mid_part_resumes_with_range_and_loses_nothing(make_simulator, tmp_path,
                                                                      clean):
    sim = make_simulator(cut_download_after=700, cut_download_times=3, **PARTS)
    data, _, _ = download(sim, tmp_path, "csv")
    assert sim.fault_counts["cut_download"] == 3 and data == clean("csv")
    ranges = [r["headers"].get("range") for r in sim.requests if r["path"].startswith("/objects/")]
    resumed = [int(r[len("bytes="):-1]) for r in ranges if r]
    # each cut resumed exactly where it happened (the same decompressor goes on)
    assert len(resumed) == 3 and all(n % 700 == 0 and n > 0 for n in resumed)


@pytest.mark.parametrize("fault", ["truncate_parts", "corrupt_parts"])
@pytest.mark.parametrize("fmt", ["tsv", "json"])
def test_a_truncated_or_corrupt_part_is_fetched_again(make_simulator, tmp_path, clean, fault,
                                                      fmt):
    sim = make_simulator(**{fault: 2}, **PARTS)
    data, result, _ = download(sim, tmp_path, fmt)
    assert sim.fault_counts[fault.replace("_parts", "_part")] == 2
    assert data == clean(fmt)


def test_a_part_that_stays_corrupt_is_an_error_and_nothing_is_written(make_simulator, tmp_path):
    sim = make_simulator(corrupt_parts=10 ** 6, **PARTS)
    with pytest.raises(ServiceUnavailable) as caught:
        download(sim, tmp_path, "csv")
    assert caught.value.exit_status == 11 and "corrupt" in str(caught.value)
    assert os.listdir(tmp_path) == []


def test_a_failed_parquet_download_releases_the_writers_spool_and_leaves_nothing(
        make_simulator, tmp_path, monkeypatch):
    from dap_core.shell import writers

    aborted = []
    real_abort = writers.ParquetWriter.abort

    def recording_abort(self):
        aborted.append(self)
        real_abort(self)

    monkeypatch.setattr(writers.ParquetWriter, "abort", recording_abort)
    sim = make_simulator(corrupt_parts=10 ** 6, **PARTS)
    with pytest.raises(ServiceUnavailable):
        download(sim, tmp_path, "parquet")
    assert len(aborted) == 1 and aborted[0]._spool._spool is None
    assert os.listdir(tmp_path) == []


class SlowAfterFirstPart(Progress):
    """Waits after the first part so that the URLs asked for with it expire."""

    def __init__(self, wait: float) -> None:
        self.wait = wait

    def part(self, index: int) -> None:
        if index == 1:
            time.sleep(self.wait)


def test_an_expired_download_url_is_replaced_by_a_fresh_one(make_simulator, tmp_path, clean):
    sim = make_simulator(url_ttl=1, **PARTS)
    data, _, _ = download(sim, tmp_path, "csv", progress=SlowAfterFirstPart(1.1))
    assert sim.fault_counts["expired_url"] >= 1 and data == clean("csv")
    assert 403 in statuses(sim, "/objects/")


def test_a_token_refused_during_a_long_job_is_renewed_once_and_the_job_goes_on(
        make_simulator, tmp_path, clean):
    sim = make_simulator(refuse_tokens_after=0.3, job_run=0.8, **PARTS)
    data, _, dap = download(sim, tmp_path, "csv", sleeper=Sleeper(cap=0.05))
    assert sim.fault_counts["refuse_token"] >= 1 and data == clean("csv")
    logins = [r for r in sim.requests if r["path"] == "/ids/auth/login"]
    assert len(logins) == dap.session.logins >= 2


def test_a_token_is_renewed_before_it_expires(simulator):
    offset = [0.0]
    with connect(simulator, clock=lambda: time.time() + offset[0]) as dap:
        dap.list_tables()
        offset[0] = 3600 - 60  # an hour-long token, a minute before exp
        dap.get_schema("canvas", "accounts")
        dap.get_schema("canvas", "users")
    logins = [r for r in simulator.requests if r["path"] == "/ids/auth/login"]
    assert len(logins) == 2
    assert 401 not in statuses(simulator, "/dap/")


def test_a_full_disk_is_an_output_error_and_leaves_no_partial_output(sim, tmp_path, monkeypatch):
    from dap_core.shell import sinks
    written = []
    real_write = sinks.AtomicFile.write

    def write(self, data):
        if sum(written) > 2000:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(len(data))
        real_write(self, data)

    monkeypatch.setattr(sinks.AtomicFile, "write", write)
    with pytest.raises(OutputError) as caught:
        download(sim, tmp_path, "csv")
    assert caught.value.exit_status == 12 and "No space left" in str(caught.value)
    assert os.listdir(tmp_path) == []


def test_pacing_keeps_job_starts_and_table_lists_within_the_limits(make_simulator):
    sim = make_simulator(no_rate_limits=False, rate_window=1.0)
    with connect(sim, sleep=time.sleep, pace_window=1.0) as dap:
        started = time.monotonic()
        for _ in range(7):
            dap.list_tables()
        for table in ("accounts", "users", "courses", "enrollments", "submissions",
                      "accounts", "users"):
            dap.session.start_job(SnapshotQuery("canvas", table))
        elapsed = time.monotonic() - started
    assert 429 not in statuses(sim, "/dap/")
    assert elapsed >= 2.0  # the sixth call of each kind waited for the window
