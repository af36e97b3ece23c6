"""Each fault fires as configured, deterministically, and only then."""
from __future__ import annotations

import gzip
import time
import zlib

import pytest

from .api import Api, FakeClock, request
from .test_downloads import first_url, raw_get


def statuses(api: Api, n: int = 40):
    return [api.schema("canvas", "accounts").status for _ in range(n)]


def test_no_fault_fires_unless_asked(simulator):
    api = Api(simulator)
    for table in ("accounts", "users"):
        job = api.run("canvas", table, {"format": "csv"})
        for url in api.part_urls(job):
            answer = request("GET", url)
            assert answer.status == 200
            gzip.decompress(answer.body)
    assert set(statuses(api, 20)) == {200}
    assert set(simulator.fault_counts.values()) == {0}


def test_fail_429_on_a_fraction_of_api_calls(make_simulator):
    sim = make_simulator(fail_429=0.5, seed=1)
    api = Api(sim)
    seen = statuses(api)
    assert 8 <= seen.count(429) <= 32 and set(seen) == {200, 429}
    assert sim.fault_counts["fail_429"] == seen.count(429)
    answer = next(a for a in (api.tables() for _ in range(50)) if a.status == 429)
    assert answer.headers["Retry-After"] == "1"
    assert answer.error["type"] == "TooManyRequestsError"
    assert all(api.login().status == 200 for _ in range(10)), "never on login"
    assert sim.fault_counts["rate_limit"] == 0


def test_faults_are_deterministic_per_seed(make_simulator):
    def sequence(seed):
        return statuses(Api(make_simulator(fail_429=0.3, fail_5xx=0.3, seed=seed)))

    assert sequence(5) == sequence(5)
    assert sequence(5) != sequence(6)


def test_fail_5xx_cycles_statuses_and_504_sometimes_has_no_json(make_simulator):
    sim = make_simulator(fail_5xx=1.0)
    api = Api(sim)
    answers = [api.schema("canvas", "users") for _ in range(8)]
    assert [a.status for a in answers] == [500, 502, 503, 504] * 2
    gateway = [a for a in answers if a.status == 504]
    assert gateway[0].headers["Content-Type"] == "text/html"
    assert gateway[1].error["type"] == "GatewayTimeoutError"
    assert answers[0].error["type"] == "ServerError"
    assert sim.fault_counts["fail_5xx"] == 8
    # downloads and login are never hit
    assert api.login().status == 200


def test_downloads_are_not_hit_by_api_faults(make_simulator):
    sim = make_simulator(fail_5xx=0.5, seed=2)
    api = Api(sim)
    job = None
    while job is None:
        answer = api.start("canvas", "accounts", {"format": "jsonl"})
        job = answer.json if answer.status == 200 else None
    while job["status"] != "complete":
        time.sleep(0.02)
        answer = api.job(job["id"])
        job = answer.json if answer.status == 200 else job
    urls = None
    while urls is None:
        answer = api.urls([o["id"] for o in job["objects"]])
        urls = answer.json["urls"] if answer.status == 200 else None
    for _ in range(10):
        for u in urls.values():
            assert request("GET", u["url"]).status == 200


def test_cut_download_after_bytes_for_n_downloads(make_simulator):
    sim = make_simulator(cut_download_after=64, cut_download_times=2)
    url = first_url(sim)
    results = [raw_get(url) for _ in range(3)]
    assert [complete for *_, complete in results] == [False, False, True]
    for status, headers, body, _ in results[:2]:
        assert status == 200 and len(body) == 64
        assert int(headers["Content-Length"]) == len(results[2][2])
    assert sim.fault_counts["cut_download"] == 2


def test_truncate_parts_drops_the_gzip_trailer(make_simulator):
    sim = make_simulator(truncate_parts=1)
    url = first_url(sim)
    status, headers, truncated, complete = raw_get(url)
    assert status == 200 and complete and int(headers["Content-Length"]) == len(truncated)
    full = request("GET", url).body
    assert truncated == full[:-8]
    inflate = zlib.decompressobj(31)
    inflate.decompress(truncated)
    assert not inflate.eof
    with pytest.raises(EOFError):
        gzip.decompress(truncated)
    gzip.decompress(full)
    assert sim.fault_counts["truncate_part"] == 1


def test_corrupt_parts_fail_the_check(make_simulator):
    sim = make_simulator(corrupt_parts=2)
    url = first_url(sim)
    bad = [request("GET", url).body for _ in range(2)]
    good = request("GET", url).body
    for body in bad:
        assert len(body) == len(good)
        assert sum(a != b for a, b in zip(body, good)) == 1
        with pytest.raises((OSError, zlib.error, EOFError)):
            gzip.decompress(body)
    gzip.decompress(good)
    assert sim.fault_counts["corrupt_part"] == 2


def test_refuse_tokens_after_seconds(make_simulator):
    clock = FakeClock()
    sim = make_simulator(clock=clock, refuse_tokens_after=300)
    api = Api(sim)
    clock.advance(300)
    assert api.tables().status == 200
    clock.advance(0.5)
    answer = api.tables()
    assert answer.status == 401 and answer.error["type"] == "AuthenticationError"
    assert sim.fault_counts["refuse_token"] == 1
    assert Api(sim).tables().status == 200, "a fresh token works again"


def test_url_ttl_makes_urls_expire(make_simulator):
    clock = FakeClock()
    sim = make_simulator(clock=clock, url_ttl=60, job_wait=0, job_run=0)
    url = first_url(sim)
    clock.advance(59.5)
    assert request("GET", url).status == 200
    clock.advance(0.5)
    answer = request("GET", url)
    assert answer.status == 403 and answer.error["type"] == "ForbiddenError"
    assert "expired" in answer.error["message"]
    assert sim.fault_counts["expired_url"] == 1


def test_tampered_or_unsigned_urls_are_403(simulator):
    url = first_url(simulator)
    base, query = url.split("?")
    expires, signature = (kv.split("=")[1] for kv in query.split("&"))
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    for bad in (f"{base}?expires={expires}&signature={flipped}",
                f"{base}?expires={int(expires) + 3600}&signature={signature}",
                base, f"{base}?expires={expires}",
                base.replace("part-00000", "part-00001") + "?" + query):
        answer = request("GET", bad)
        assert answer.status == 403 and answer.error["type"] == "ForbiddenError", bad
    assert simulator.fault_counts["expired_url"] == 0
    assert request("GET", url).status == 200


def test_fail_table_fails_its_jobs_only(make_simulator):
    sim = make_simulator(fail_table=("users",))
    api = Api(sim)
    failed = api.run("canvas", "users", {"format": "jsonl"})
    assert failed["status"] == "failed"
    assert set(failed) == {"id", "status", "expires_at", "error"}
    assert set(failed["error"]) == {"type", "uuid", "message"}
    assert api.run("canvas", "accounts", {"format": "jsonl"})["status"] == "complete"
    assert sim.fault_counts["fail_table"] == 1


def test_request_headers_are_recorded(simulator):
    api = Api(simulator, header="x-instauth")
    url = api.part_urls(api.run("canvas", "accounts", {"format": "jsonl"}))[0]
    request("GET", url, headers={"X-Probe": "yes"})
    recorded = simulator.requests
    login = [r for r in recorded if r["path"] == "/ids/auth/login"]
    assert login and login[0]["method"] == "POST"
    assert login[0]["headers"]["authorization"].startswith("Basic ")
    calls = [r for r in recorded if r["path"].startswith("/dap/")]
    assert calls and all(r["headers"]["x-instauth"] == api.token for r in calls)
    assert all(r["status"] == 200 for r in calls)
    download = recorded[-1]
    assert download["path"] == url[len(simulator.base_url):]
    assert download["headers"]["x-probe"] == "yes" and "authorization" not in download["headers"]
    assert download["status"] == 200
    assert not any(r["path"].startswith("/__simulator__") for r in recorded)


def test_the_request_log_is_bounded(make_simulator):
    sim = make_simulator(record_limit=5)
    api = Api(sim)
    for _ in range(8):
        api.tables()
    assert len(sim.requests) == 5
    sim.clear_requests()
    assert sim.requests == []


def test_forbid_namespace_answers_403_on_its_api_calls(make_simulator):
    sim = make_simulator(forbid_namespace=("canvas_logs",))
    api = Api(sim)
    for answer in (api.tables("canvas_logs"), api.schema("canvas_logs", "web_logs"),
                   api.start("canvas_logs", "web_logs", {"format": "jsonl"})):
        assert answer.status == 403 and answer.error["type"] == "ForbiddenError"
    assert api.tables("canvas").status == 200


def test_reload_table_needs_a_new_snapshot(make_simulator):
    sim = make_simulator(reload_table=("accounts",))
    api = Api(sim)
    reloaded_at = sim.frontier
    answer = api.start("canvas", "accounts", {"format": "jsonl", "since": "2026-01-01T00:00:00Z"})
    assert answer.status == 400 and answer.error["type"] == "SnapshotRequiredError"
    assert answer.error["since"] == reloaded_at and answer.error["until"] == sim.frontier
    started = api.start("canvas", "users", {"format": "jsonl", "since": "2026-01-01T00:00:00Z"})
    assert started.status == 200
    snapshot = api.run("canvas", "accounts", {"format": "jsonl"})
    sim.advance(1)
    incremental = api.run("canvas", "accounts", {"format": "jsonl", "since": snapshot["at"]})
    assert incremental["status"] == "complete"


def test_a_504_on_starting_a_job_comes_after_the_job_was_made(make_simulator):
    sim = make_simulator(fail_5xx=1.0)
    api = Api(sim)
    answers = [api.start("canvas", "accounts", {"format": "jsonl"}) for _ in range(4)]
    assert [a.status for a in answers] == [500, 502, 503, 504]
    started = [r for r in sim.requests if r["path"].endswith("/data")]
    assert [r["status"] for r in started] == [500, 502, 503, 504]
    assert len(sim.service.jobs) == 1, "only the 504 left a job behind"


def test_refuse_ranges_answers_the_first_ranged_downloads_416(make_simulator):
    sim = make_simulator(refuse_ranges=2)
    url = first_url(sim)
    full = request("GET", url).body
    answers = [request("GET", url, headers={"Range": "bytes=10-"}) for _ in range(3)]
    assert [a.status for a in answers] == [416, 416, 206]
    assert answers[0].headers["Content-Range"] == f"bytes */{len(full)}"
    assert answers[2].body == full[10:]
    assert sim.fault_counts["refuse_range"] == 2


def test_ignore_ranges_answers_200_with_the_whole_object(make_simulator):
    sim = make_simulator(ignore_ranges=1)
    url = first_url(sim)
    ignored = request("GET", url, headers={"Range": "bytes=10-"})
    assert ignored.status == 200 and "Content-Range" not in ignored.headers
    assert ignored.body == request("GET", url).body
    assert request("GET", url, headers={"Range": "bytes=10-"}).status == 206
    assert sim.fault_counts["ignore_range"] == 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_misplace_ranges_answers_206_from_another_byte_as_content_range_says(make_simulator,
                                                                            seed):
    sim = make_simulator(misplace_ranges=1, seed=seed)
    url = first_url(sim)
    full = request("GET", url).body
    size = len(full)
    misplaced = request("GET", url, headers={"Range": "bytes=10-"})
    unit, _, span = misplaced.headers["Content-Range"].partition(" ")
    start = int(span.partition("-")[0])
    assert misplaced.status == 206 and unit == "bytes" and start != 10
    assert span == f"{start}-{size - 1}/{size}" and misplaced.body == full[start:]
    assert request("GET", url, headers={"Range": "bytes=10-"}).body == full[10:]
    assert sim.fault_counts["misplace_range"] == 1


def test_misplaced_starts_are_seeded(make_simulator):
    def starts(seed):
        sim = make_simulator(misplace_ranges=3, seed=seed)
        url = first_url(sim)
        return [request("GET", url, headers={"Range": "bytes=10-"}).headers["Content-Range"]
                for _ in range(3)]
    assert starts(5) == starts(5)


def test_range_faults_leave_downloads_without_a_range_alone(make_simulator):
    sim = make_simulator(refuse_ranges=1, ignore_ranges=1, misplace_ranges=1)
    url = first_url(sim)
    assert [request("GET", url).status for _ in range(3)] == [200] * 3
    assert sim.fault_counts["refuse_range"] == 0


def test_expiring_jobs_makes_the_first_jobs_expire_within_a_minute(make_simulator):
    clock = FakeClock()
    sim = make_simulator(expiring_jobs=1, clock=clock)
    api = Api(sim)
    first = api.start("canvas", "accounts", {"format": "jsonl"}).json
    assert first["expires_at"] == "2026-01-01T00:01:00Z"
    clock.advance(60)
    second = api.start("canvas", "accounts", {"format": "jsonl"}).json
    assert second["id"] != first["id"] and second["expires_at"] == "2026-01-02T00:01:00Z"
    assert sim.fault_counts["expiring_job"] == 1
