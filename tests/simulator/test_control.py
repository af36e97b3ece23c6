"""The control endpoints under /__simulator__/ (no auth) mirror the in-process handle."""
from __future__ import annotations

from .api import Api, request


def get(sim, path):
    return request("GET", sim.base_url + path)


def test_info(simulator):
    info = get(simulator, "/__simulator__/").json
    assert info["base_url"] == simulator.base_url
    assert info["client_id"] == "us-east-1#demo" and info["client_secret"] == "demo-secret"
    assert info["api_key"] == simulator.api_key
    assert info["frontier"] == simulator.frontier and info["steps"] == 3
    assert info["sizes"]["submissions"] == 250


def test_advance_and_state(simulator):
    before = get(simulator, "/__simulator__/state/canvas/accounts").json
    assert before == simulator.current_state("canvas", "accounts")
    answer = request("POST", simulator.base_url + "/__simulator__/advance?steps=2")
    assert answer.json == {"steps": 5, "frontier": "2026-01-01T05:00:00Z"}
    after = get(simulator, "/__simulator__/state/canvas/accounts").json
    assert after == simulator.current_state("canvas", "accounts") != before
    assert request("POST", simulator.base_url + "/__simulator__/advance").json["steps"] == 6
    assert request("POST", simulator.base_url + "/__simulator__/advance?steps=-1").status == 400
    assert get(simulator, "/__simulator__/state/canvas/nope").status == 404


def test_requests_and_faults(simulator):
    Api(simulator).tables()
    recorded = get(simulator, "/__simulator__/requests").json
    assert [r["path"] for r in recorded] == ["/ids/auth/login", "/dap/query/canvas/table"]
    assert recorded == simulator.requests
    assert request("DELETE", simulator.base_url + "/__simulator__/requests").status == 200
    assert get(simulator, "/__simulator__/requests").json == []
    assert get(simulator, "/__simulator__/faults").json == simulator.fault_counts
