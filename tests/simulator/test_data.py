"""The synthetic data: deterministic, realistic, and chaining reconstructs the current state."""
from __future__ import annotations

import json
import time
import tracemalloc

import pytest

from fixtures.simulator import Simulator
from fixtures.simulator.config import SimulatorConfig, parse_rows
from fixtures.simulator.tables import OVERSIZED
from fixtures.simulator.timeline import Dataset
from fixtures.simulator.timestamps import HOUR, T0, format_point, parse

from .api import Api, apply, as_state_record, key_text

CANVAS = ("accounts", "users", "courses", "enrollments", "submissions")


@pytest.mark.parametrize("namespace,table",
                         [("canvas", t) for t in CANVAS] + [("canvas_logs", "web_logs")])
def test_snapshot_then_chained_incrementals_reconstruct_the_current_state(simulator, namespace,
                                                                          table):
    api = Api(simulator)
    snapshot = api.run(namespace, table, {"format": "jsonl"})
    records = api.records(snapshot)
    assert all(set(r["meta"]) == {"ts"} for r in records), "a snapshot has no meta.action"
    state = apply({}, records)
    assert state == simulator.current_state(namespace, table)
    since = snapshot["at"]
    for steps in (1, 2, 3):
        simulator.advance(steps)
        job = api.run(namespace, table, {"format": "jsonl", "since": since})
        assert job["since"] == since and job["until"] == simulator.frontier
        records = api.records(job)
        keys = [key_text(r) for r in records]
        assert len(keys) == len(set(keys)), "keys are unique within a result"
        for r in records:
            assert parse(since) <= parse(r["meta"]["ts"]) < parse(job["until"])
            assert set(r["meta"]) == {"ts", "action"}
            if r["meta"]["action"] == "D":
                assert set(r) == {"key", "meta"}
            else:
                assert r["meta"]["action"] == "U" and set(r) == {"key", "value", "meta"}
        apply(state, records)
        assert state == simulator.current_state(namespace, table)
        since = job["until"]


def test_changes_include_inserts_updates_and_deletes(make_simulator):
    sim = make_simulator(changes_per_step=20)
    api = Api(sim)
    before = sim.current_state("canvas", "users")
    since = sim.frontier
    sim.advance(3)
    records = api.records(api.run("canvas", "users", {"format": "jsonl", "since": since}))
    actions = {("D" if r["meta"]["action"] == "D" else
                "U" if key_text(r) in before else "I") for r in records}
    assert actions == {"I", "U", "D"}
    assert all(parse(since) <= parse(r["meta"]["ts"]) for r in records)
    for r in records:  # an update is a new version: updated_at follows meta.ts
        if r["meta"]["action"] == "U":
            assert r["value"]["updated_at"] == r["meta"]["ts"]


def test_the_latest_version_in_the_window_wins(make_simulator):
    sim = make_simulator(changes_per_step=40, rows={"accounts": 5})
    api = Api(sim)
    since = sim.frontier
    sim.advance(5)
    records = api.records(api.run("canvas", "accounts", {"format": "jsonl", "since": since}))
    state = sim.current_state("canvas", "accounts")
    for r in records:
        if r["meta"]["action"] == "U":
            assert state[key_text(r)] == as_state_record(r)


def test_incremental_before_t0_includes_base_rows_committed_in_the_window(make_simulator):
    sim = make_simulator(retention_days=400)
    api = Api(sim)
    at = "2025-06-01T00:00:00Z"
    first = api.records(api.run("canvas", "accounts", {"format": "jsonl",
                                                       "since": "2024-12-01T00:00:00Z",
                                                       "until": at}))
    assert first and all(parse(r["meta"]["ts"]) < parse(at) for r in first)
    rest = api.records(api.run("canvas", "accounts", {"format": "jsonl", "since": at}))
    assert apply(apply({}, first), rest) == sim.current_state("canvas", "accounts")


def test_the_data_is_deterministic_per_seed():
    def states(seed):
        ds = Dataset(seed, {"users": 30}, 5, 3600, 4)
        return ds.state("canvas", "users"), ds.state("canvas_logs", "web_logs")

    assert states(0) == states(0)
    assert states(0) != states(1)


def test_two_simulators_with_one_seed_serve_the_same_records(make_simulator):
    one, two = make_simulator(seed=3), make_simulator(seed=3)
    assert one.current_state("canvas", "submissions") == two.current_state("canvas", "submissions")
    a = Api(one).records(Api(one).run("canvas", "courses", {"format": "jsonl"}))
    b = Api(two).records(Api(two).run("canvas", "courses", {"format": "jsonl"}))
    assert a == b


def test_the_frontier_moves_with_advance_and_per_job(make_simulator):
    sim = make_simulator(advance_per_job=2, initial_steps=1, step_interval=1800)
    assert sim.frontier == "2026-01-01T00:30:00Z"
    api = Api(sim)
    job = api.run("canvas", "accounts", {"format": "jsonl"})
    assert job["at"] == "2026-01-01T00:30:00Z"
    assert sim.frontier == "2026-01-01T01:30:00Z"
    api.run("canvas", "accounts", {"format": "jsonl"})  # deduplicated: no move
    assert sim.frontier == "2026-01-01T01:30:00Z"
    assert sim.advance(1) == "2026-01-01T02:00:00Z"


def test_realistic_values_are_there(make_simulator):
    sim = make_simulator(rows={"submissions": 3000, "users": 400, "courses": 200})
    values = []
    for table in ("users", "courses", "submissions"):
        values += [r["value"] for r in sim.current_state("canvas", table).values()]
    text = json.dumps(values, ensure_ascii=False)
    strings = [v for value in values for v in value.values() if isinstance(v, str)]
    assert OVERSIZED in strings
    assert "NULL" in strings and "" in strings and "\\N" in strings
    assert any("\t" in s for s in strings) and any("\n" in s for s in strings)
    assert any("\r" in s for s in strings) and any('"' in s for s in strings)
    assert any("\\" in s for s in strings) and any("," in s for s in strings)
    assert any(s != s.strip() for s in strings)
    assert any(ord(c) > 0xFFFF for c in text), "some text outside the BMP"
    assert any(ord(c) < 0x20 and c not in "\t\n\r" for s in strings for c in s), \
        "a control character"
    assert any("preferences" in v and "notifications" in v["preferences"] for v in values)
    assert any(v.get("attachment_ids") for v in values)
    assert any(v.get("turnitin_data") for v in values)
    assert any(isinstance(v.get("score"), float) for v in values)
    assert any(isinstance(v.get("late"), bool) for v in values)
    assert any("short_name" not in v for v in values if "sortable_name" in v), "nullable: omitted"


def test_web_logs_have_text_keys_and_only_inserts(simulator):
    api = Api(simulator)
    since = simulator.frontier
    simulator.advance(2)
    records = api.records(api.run("canvas_logs", "web_logs", {"format": "jsonl", "since": since}))
    assert len(records) == 10
    assert all(r["meta"]["action"] == "U" and isinstance(r["key"]["id"], str) for r in records)


def test_rows_option():
    assert parse_rows("submissions=10, users=5") == {"submissions": 10, "users": 5}
    assert parse_rows({"canvas_logs.web_logs": 3}) == {"canvas_logs.web_logs": 3}
    for bad in ("nope=3", "users", "users=x", "users=-1"):
        with pytest.raises(ValueError):
            parse_rows(bad)
    with pytest.raises(ValueError):
        SimulatorConfig(fail_429=0.7, fail_5xx=0.7)
    with pytest.raises(TypeError):
        Simulator(no_such_option=1)


def test_a_table_of_millions_is_served_as_a_stream():
    """A million rows: counting and reaching the last part costs neither memory nor time."""
    ds = Dataset(0, {"submissions": 2_000_000}, 5, 3600, 3)
    tracemalloc.start()
    started = time.process_time()  # CPU time: not how busy the machine is
    result = ds.timeline("canvas", "submissions").snapshot(ds.frontier)
    assert result.total > 2_000_000 - 10
    last = list(result.records(result.total - 500, 500))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(last) == 500 and last[-1]["key"]["id"] >= 2_000_000
    assert peak < 20 * 1024 * 1024
    assert time.process_time() - started < 5
    assert format_point(ds.frontier) == format_point(T0 + 3 * HOUR)
