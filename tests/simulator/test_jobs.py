"""Job deduplication and the contract's rate limits."""
from __future__ import annotations

import json

from .api import Api, FakeClock


def test_an_identical_query_returns_the_living_job(simulator):
    api = Api(simulator)
    first = api.start("canvas", "accounts", {"format": "csv", "mode": "expanded"}).json
    again = api.start("canvas", "accounts", b'{"mode": "expanded",  "format": "csv"}').json
    assert again["id"] == first["id"]
    complete = api.wait(first)
    again = api.start("canvas", "accounts", {"format": "csv", "mode": "expanded"})
    assert again.json == api.job(first["id"]).json
    assert complete["status"] == "complete"
    others = {
        api.start("canvas", "accounts", {"format": "tsv"}).json["id"],
        api.start("canvas", "accounts", {"format": "csv"}).json["id"],
        api.start("canvas", "users", {"format": "csv", "mode": "expanded"}).json["id"],
        api.start("canvas", "accounts", {"format": "csv", "mode": "expanded",
                                         "since": "2026-01-01T00:00:00Z"}).json["id"],
    }
    assert len(others) == 4 and first["id"] not in others


def test_a_deduplicated_incremental_keeps_its_until(simulator):
    """As with the real service: asking again within the job's life gets the same answer,
    even though the frontier moved meanwhile."""
    api = Api(simulator)
    body = {"format": "jsonl", "since": "2026-01-01T01:00:00Z"}
    first = api.run("canvas", "users", body)
    simulator.advance(2)
    again = api.run("canvas", "users", body)
    assert again == first and again["until"] == "2026-01-01T03:00:00Z"


def test_after_expiry_a_new_job_is_made(make_simulator):
    clock = FakeClock()
    sim = make_simulator(clock=clock, job_ttl=600, job_wait=0, job_run=0)
    api = Api(sim)
    first = api.run("canvas", "accounts", {"format": "jsonl"})
    object_id = first["objects"][0]["id"]
    clock.advance(599)
    assert api.job(first["id"]).status == 200 and api.urls([object_id]).status == 200
    assert api.start("canvas", "accounts", {"format": "jsonl"}).json["id"] == first["id"]
    clock.advance(1)  # the job's life is over
    assert api.job(first["id"]).status == 404
    answer = api.urls([object_id])
    assert answer.status == 404 and answer.error["kind"] == "object"
    second = api.start("canvas", "accounts", {"format": "jsonl"}).json
    assert second["id"] != first["id"]


def test_rate_limits_per_call_type_over_a_minute(make_simulator):
    clock = FakeClock()
    sim = make_simulator(clock=clock, no_rate_limits=False)
    api = Api(sim)
    answers = [api.tables() for _ in range(6)]
    assert [a.status for a in answers] == [200] * 5 + [429]
    limited = answers[-1]
    assert limited.error["type"] == "TooManyRequestsError"
    assert limited.headers["Retry-After"] == "60"  # the first of the five leaves in 60 s
    assert api.schema("canvas", "users").status == 200, "counted per call type"
    created = [api.start("canvas", "accounts", {"format": f}).status
               for f in ("jsonl", "csv", "tsv", "jsonl", "csv", "tsv")]
    assert created == [200] * 5 + [429]
    assert sim.fault_counts["rate_limit"] == 2
    clock.advance(59.5)
    limited = api.tables()
    assert limited.status == 429 and limited.headers["Retry-After"] == "1"
    clock.advance(0.5)
    assert [api.tables().status for _ in range(6)] == [200] * 5 + [429]


def test_rate_limits_are_the_contracts():
    from fixtures.simulator.ratelimit import LIMITS, RateLimiter

    assert LIMITS == {"create_job": 5, "list_tables": 5, "job_status": 500, "schema": 500,
                      "object_urls": 200}
    now = [0.0]
    limiter = RateLimiter(window=60.0, clock=lambda: now[0])
    assert all(limiter.check("a", "object_urls") is None for _ in range(200))
    assert limiter.check("a", "object_urls") == 60
    assert limiter.check("b", "object_urls") is None, "per client"
    now[0] = 59.5
    assert limiter.check("a", "object_urls") == 1
    now[0] = 60.0
    assert limiter.check("a", "object_urls") is None
    assert RateLimiter(enabled=False).check("a", "list_tables") is None


def test_no_rate_limits_switch(make_simulator):
    sim = make_simulator(no_rate_limits=True)
    api = Api(sim)
    assert {api.tables().status for _ in range(12)} == {200}
    assert json.loads(json.dumps(sim.fault_counts))["rate_limit"] == 0
