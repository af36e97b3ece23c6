"""Each fault the simulator injects, and the shell's answer to it: with the fault on, the
same download gives output byte-identical to a clean run; when a fault does not heal, a
clear error with its exit status and nothing half-written.

Where time matters (Retry-After, a URL's or a token's life, rate windows), the simulator and
the client share one `FakeTime` that moves only when the client sleeps: the windows are
exact, whatever the load of the machine, and the delays are checked to the value."""
from __future__ import annotations

import errno
import os
import socket

import pytest

from dap_core import Client, SnapshotQuery, resolve_credentials
from dap_core.errors import OutputError, ServiceUnavailable
from dap_core.policy import RetryPolicy

from .conftest import FakeTime, connect

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


def call_of(request):
    return request["method"], request["path"]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_429_is_retried_after_retry_after_and_output_is_identical(make_simulator, tmp_path,
                                                                  clean, fmt):
    clock = FakeTime()
    sim = make_simulator(fail_429=0.3, clock=clock, **PARTS)
    data, _, _ = download(sim, tmp_path, fmt, fake_time=clock)
    fired = sim.fault_counts["fail_429"]
    assert fired > 0 and data == clean(fmt)
    api = [r for r in sim.requests if r["path"].startswith("/dap/")]
    assert [r["status"] for r in api].count(429) == fired and len(api) <= 3 * fired + 10
    # each 429 (Retry-After: 1) is followed by the same call, never sooner than 1 s later
    # (the simulator's clock moves only by the client's sleeps), and exactly 1 s later
    # after the call's first failure, whose own backoff is shorter: no retry storm, no
    # wait longer than asked
    first_failures = 0
    for before, answer, retry in zip([None] + api, api, api[1:]):
        if answer["status"] != 429:
            continue
        assert call_of(retry) == call_of(answer)
        waited = retry["time"] - answer["time"]
        if before is None or call_of(before) != call_of(answer) or before["status"] < 400:
            first_failures += 1
            assert waited == 1.0, (answer, retry)
        else:
            assert waited >= 1.0, (answer, retry)
    assert first_failures >= 1


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
    clock = FakeTime()  # the refused-connection deadline counts these sleeps only
    creds = resolve_credentials(client_id="us-east-1#x", client_secret="y")
    with Client("http://127.0.0.1:%d" % port, creds, sleep=clock.sleep, monotonic=clock,
                clock=clock, retry_policy=RetryPolicy(max_attempts=5)) as dap:
        with pytest.raises(ServiceUnavailable) as caught:
            dap.list_tables()
    assert caught.value.exit_status == 11
    assert len(clock.delays) == 4
    assert clock.delays == sorted(clock.delays) and clock.delays[-1] > clock.delays[0]


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
    from dap_core.shell import parquet

    aborted = []
    real_abort = parquet.ParquetWriter.abort

    def recording_abort(self):
        aborted.append(self)
        real_abort(self)

    monkeypatch.setattr(parquet.ParquetWriter, "abort", recording_abort)
    sim = make_simulator(corrupt_parts=10 ** 6, **PARTS)
    with pytest.raises(ServiceUnavailable):
        download(sim, tmp_path, "parquet")
    assert len(aborted) == 1 and aborted[0]._spool._spool is None
    assert os.listdir(tmp_path) == []


def on_request(sim, matches, action):
    """Call `action()` when a request for which `matches(method, path)` reaches `sim`,
    before it is served."""
    record = sim.service.record

    def recording(method, path, headers):
        entry = record(method, path, headers)
        if matches(method, path):
            action()
        return entry
    sim.service.record = recording


def test_an_expired_download_url_is_replaced_by_a_fresh_one(make_simulator, tmp_path, clean):
    clock = FakeTime()
    sim = make_simulator(url_ttl=1, clock=clock, **PARTS)
    downloads = []

    def second_download_comes_late():  # after the URLs' second of life, to the request
        downloads.append(1)
        if len(downloads) == 2:
            clock.advance(2)
    on_request(sim, lambda method, path: path.startswith("/objects/"),
               second_download_comes_late)
    data, _, _ = download(sim, tmp_path, "csv", fake_time=clock)
    assert data == clean("csv")
    # that one download was refused as expired; fresh URLs were asked for, and the same
    # part fetched again with one of them; nothing else expired
    assert sim.fault_counts["expired_url"] == 1
    calls = [(r["path"].split("?")[0], r["status"]) for r in sim.requests
             if r["path"].startswith(("/objects/", "/dap/object/url"))]
    refused = [i for i, (_, status) in enumerate(calls) if status == 403]
    assert len(refused) == 1, calls
    i = refused[0]
    assert [c for c in calls[:i + 1] if c[0] != "/dap/object/url"][1:] == [calls[i]], calls
    assert calls[i + 1] == ("/dap/object/url", 200) and calls[i + 2] == (calls[i][0], 200)
    assert [c for c in calls if c[0] == "/dap/object/url"] == [("/dap/object/url", 200)] * 2


def test_a_token_refused_during_a_long_job_is_renewed_once_and_the_job_goes_on(
        make_simulator, tmp_path, clean):
    clock = FakeTime()
    sim = make_simulator(refuse_tokens_after=0.3, job_run=0.8, clock=clock, **PARTS)
    data, _, dap = download(sim, tmp_path, "csv", fake_time=clock)
    refused = sim.fault_counts["refuse_token"]
    assert refused >= 1 and data == clean("csv")  # polls come 0.3 s and more apart
    # one login at first, then exactly one per refusal, after which the same call went
    # through with the fresh token
    logins = [r for r in sim.requests if r["path"] == "/ids/auth/login"]
    assert len(logins) == dap.session.logins == 1 + refused
    calls = [r for r in sim.requests if not r["path"].startswith("/objects/")]
    for i, answer in enumerate(calls):
        if answer["status"] == 401:
            login, again = calls[i + 1], calls[i + 2]
            assert (login["path"], login["status"]) == ("/ids/auth/login", 200)
            assert call_of(again) == call_of(answer) and again["status"] == 200


def test_a_token_is_renewed_before_it_expires(make_simulator):
    clock = FakeTime()
    sim = make_simulator(clock=clock)  # tokens live an hour
    with connect(sim, fake_time=clock) as dap:
        dap.list_tables()
        clock.advance(3600 - 60)  # a minute before exp: the service would still take it
        dap.get_schema("canvas", "accounts")
        dap.get_schema("canvas", "users")
    logins = [r["time"] - FakeTime.START for r in sim.requests
              if r["path"] == "/ids/auth/login"]
    assert logins == [0.0, 3540.0]
    assert 401 not in statuses(sim, "/dap/")


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
    clock = FakeTime()
    sim = make_simulator(no_rate_limits=False, rate_window=1.0, clock=clock)
    with connect(sim, fake_time=clock, pace_window=1.0) as dap:
        for _ in range(7):
            dap.list_tables()
        for table in ("accounts", "users", "courses", "enrollments", "submissions",
                      "accounts", "users"):
            dap.session.start_job(SnapshotQuery("canvas", table))
    assert 429 not in statuses(sim, "/dap/")

    def times(calls):
        return [r["time"] - FakeTime.START for r in sim.requests if calls(r["path"])]
    # DAP takes 5 of each a window: five at once, then the sixth and seventh exactly one
    # window after them, not sooner (the simulator would answer 429) and not later
    assert times(lambda path: path == "/dap/query/canvas/table") == [0.0] * 5 + [1.0] * 2
    assert times(lambda path: path.endswith("/data")) == [1.0] * 5 + [2.0] * 2
