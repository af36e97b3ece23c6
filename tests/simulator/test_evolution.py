"""`--evolve-schema NS.TABLE=STEP`: once the frontier reaches STEP the table's schema version
rises by one, `value` gains the nullable `sim_added_note` and its first enum the value
`sim_new_state`; the changes from that step on use them, older records keep their shape, and
a snapshot plus chained incrementals across the step still rebuild the current state."""
from __future__ import annotations

import copy
import csv
import io
import subprocess
import sys

import pytest

from fixtures.simulator.config import SimulatorConfig, parse_evolve_schema
from fixtures.simulator.timestamps import HOUR, T0, format_point, parse

from .api import Api, apply, request
from .test_schemas import violations

STEP = 5  # the quick simulator starts at step 3
#: the start of step STEP (the default step interval is an hour): changes from here on are new
EVOLVED_FROM = T0 + (STEP - 1) * HOUR
NOTE, STATE = "sim_added_note", "sim_new_state"


def first_enum(schema: dict) -> str:
    return next(name for name, sub in schema["properties"]["value"]["properties"].items()
                if "enum" in sub)


def expected_evolution(old: dict) -> dict:
    """What the brief says the evolved schema is, made from the old one."""
    new = copy.deepcopy(old)
    value = new["properties"]["value"]
    value["properties"][NOTE] = {"type": "string"}
    value["properties"][first_enum(old)]["enum"].append(STATE)
    return new


@pytest.fixture
def sim(make_simulator):
    return make_simulator(changes_per_step=30, evolve_schema={"canvas.accounts": STEP})


@pytest.mark.parametrize("namespace,table", [("canvas", "accounts"), ("canvas", "users"),
                                             ("canvas", "submissions"),
                                             ("canvas_logs", "web_logs")])
def test_the_schema_changes_when_the_frontier_reaches_the_step(make_simulator, namespace, table):
    sim = make_simulator(evolve_schema={f"{namespace}.{table}": STEP})
    api = Api(sim)
    before = api.schema(namespace, table).json
    other = api.schema("canvas", "courses").json
    sim.advance(STEP - 4)  # the frontier is at step STEP - 1: not yet
    assert api.schema(namespace, table).json == before
    sim.advance(1)
    after = api.schema(namespace, table).json
    assert after["version"] == before["version"] + 1
    assert after["schema"] == expected_evolution(before["schema"])
    assert NOTE not in after["schema"]["properties"]["value"]["required"]
    assert api.schema(namespace, table).json["schema"]["properties"]["value"][
        "additionalProperties"] is False
    sim.advance(3)  # once only
    assert api.schema(namespace, table).json == after
    assert api.schema("canvas", "courses").json == other  # other tables untouched


def test_a_jobs_schema_version_is_the_one_at_its_at_or_until(sim):
    api = Api(sim)
    old = api.schema("canvas", "accounts").json["version"]
    start = sim.frontier  # step 3
    assert api.run("canvas", "accounts", {"format": "jsonl"})["schema_version"] == old
    sim.advance(3)  # step 6: past the evolution
    new = api.schema("canvas", "accounts").json["version"]
    assert new == old + 1
    assert api.run("canvas", "accounts", {"format": "csv"})["schema_version"] == new
    until_before = format_point(EVOLVED_FROM)  # ends where the new changes begin
    until_inside = format_point(EVOLVED_FROM + HOUR // 2)
    cases = [({"since": start, "until": until_before}, old),
             ({"since": start, "until": until_inside}, new),
             ({"since": start}, new),
             ({"since": until_inside}, new)]
    for window, version in cases:
        job = api.run("canvas", "accounts", dict(window, format="jsonl"))
        assert job["schema_version"] == version, window
    assert api.run("canvas", "users", {"format": "jsonl", "since": start})["schema_version"] \
        == Api(sim).schema("canvas", "users").json["version"]


def test_records_from_the_step_on_have_the_new_shape_and_older_ones_keep_theirs(sim):
    api = Api(sim)
    old_schema = api.schema("canvas", "accounts").json["schema"]
    enum_name = first_enum(old_schema)
    since = sim.frontier
    sim.advance(4)
    new_schema = api.schema("canvas", "accounts").json["schema"]
    records = api.records(api.run("canvas", "accounts", {"format": "jsonl", "since": since}))
    values = [(parse(r["meta"]["ts"]), r["value"]) for r in records if "value" in r]
    old = [v for ts, v in values if ts < EVOLVED_FROM]
    new = [v for ts, v in values if ts >= EVOLVED_FROM]
    assert len(old) > 5 and len(new) > 30
    assert not any(NOTE in v or v.get(enum_name) == STATE for v in old)
    assert [r for r in records if parse(r["meta"]["ts"]) < EVOLVED_FROM
            and "value" in r and violations(r, old_schema)] == []
    notes = [v[NOTE] for v in new if NOTE in v]
    assert 0 < len(notes) < len(new), "a mix of present and absent"
    assert all(isinstance(n, str) for n in notes) and len(set(notes)) > 3
    assert 0 < sum(v.get(enum_name) == STATE for v in new) < len(new)
    assert [p for r in records for p in violations(r, new_schema)] == []


def test_a_snapshot_after_the_step_has_the_new_column_for_every_record_that_has_it(sim):
    api = Api(sim)
    sim.advance(4)
    state = sim.current_state("canvas", "accounts")
    assert state == request("GET", sim.base_url + "/__simulator__/state/canvas/accounts").json
    with_note = {k: r["value"][NOTE] for k, r in state.items() if NOTE in r["value"]}
    assert with_note and all(parse(state[k]["meta"]["ts"]) >= EVOLVED_FROM for k in with_note)
    assert any(r["value"]["workflow_state"] == STATE for r in state.values())

    records = api.records(api.run("canvas", "accounts", {"format": "jsonl"}))
    assert apply({}, records) == state

    part_texts = [p.decode() for p in api.parts(api.run("canvas", "accounts", {"format": "csv"}))]
    rows = [row for text in part_texts
            for row in list(csv.DictReader(io.StringIO(text, newline="")))]
    assert list(rows[0])[-1] == "value.sim_added_note"
    assert len(rows) == len(state)
    got = {row["key.id"]: row["value.sim_added_note"] for row in rows}
    for record in state.values():
        # null (no note) is an empty field; an empty note is "" which csv reads as empty too
        assert got[str(record["key"]["id"])] == record["value"].get(NOTE, "")


@pytest.mark.parametrize("first", [3, 4])
def test_snapshot_and_chained_incrementals_across_the_step_rebuild_the_state(sim, first):
    """The rebuild check of test_data, with the evolution inside the chain."""
    api = Api(sim)
    sim.advance(first - 3)
    snapshot = api.run("canvas", "accounts", {"format": "jsonl"})
    state = apply({}, api.records(snapshot))
    assert state == sim.current_state("canvas", "accounts")
    since = snapshot["at"]
    versions = [snapshot["schema_version"]]
    for steps in (1, 1, 2):
        sim.advance(steps)
        job = api.run("canvas", "accounts", {"format": "jsonl", "since": since})
        versions.append(job["schema_version"])
        apply(state, api.records(job))
        assert state == sim.current_state("canvas", "accounts")
        since = job["until"]
    assert versions[-1] == versions[0] + 1 and sorted(versions) == versions
    assert any(NOTE in r["value"] for r in state.values())


def test_the_option_is_parsed_and_checked():
    assert parse_evolve_schema("canvas.accounts=5") == {"canvas.accounts": 5}
    assert parse_evolve_schema(["accounts=2", "canvas_logs.web_logs=7"]) == {
        "canvas.accounts": 2, "canvas_logs.web_logs": 7}
    assert SimulatorConfig(evolve_schema={"users": 4}).evolve_schema == {"canvas.users": 4}
    assert SimulatorConfig().evolve_schema == {}
    for bad in ("canvas.nope=3", "canvas.accounts", "canvas.accounts=x", "canvas.accounts=0"):
        with pytest.raises(ValueError, match="--evolve-schema"):
            parse_evolve_schema(bad)


def test_evolve_schema_on_the_command_line():
    from .test_cli import ROOT, _Handle

    proc = subprocess.Popen([sys.executable, "-m", "fixtures.simulator", "--port", "0",
                             "--job-wait", "0", "--job-run", "0", "--advance-per-job", "0",
                             "--evolve-schema", "canvas.users=4",
                             "--evolve-schema", "canvas.courses=9"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        base = proc.stdout.readline().strip()
        api = Api(_Handle(base))
        users, courses = api.schema("canvas", "users").json, api.schema("canvas", "courses").json
        assert request("POST", base + "/__simulator__/advance?steps=1").status == 200
        assert api.schema("canvas", "users").json["version"] == users["version"] + 1
        assert api.schema("canvas", "courses").json == courses
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()
    done = subprocess.run([sys.executable, "-m", "fixtures.simulator", "--evolve-schema",
                           "canvas.users=0"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "--evolve-schema" in done.stderr
