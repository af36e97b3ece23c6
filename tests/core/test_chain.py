"""Chaining: windows tile time with no gap and no overlap; checkpoints only move forward."""
import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings, strategies as st

from dap_core.chain import (
    Checkpoint, State, advance, chained_query, next_since, since_for, state_from_text,
    state_to_text,
)
from dap_core.errors import ChainError, InvalidInput, StateConflict, StateCorrupt
from dap_core.jobs import CompleteIncremental, CompleteSnapshot, PendingJob
from dap_core.queries import IncrementalQuery, SnapshotQuery

UTC = timezone.utc
T0 = datetime(2024, 7, 13, 9, 30, tzinfo=UTC)


def snapshot(at, job_id="snap"):
    return CompleteSnapshot(job_id, None, ("o",), 1, at)


def incremental(since, until, job_id="inc"):
    return CompleteIncremental(job_id, None, ("o",), 1, since, until)


steps = st.lists(st.integers(0, 86_400 * 3), max_size=15)  # seconds each window covers


def test_a_snapshot_at_is_the_next_since_and_an_incremental_until_after_that():
    assert next_since(snapshot(T0)) == T0
    assert next_since(incremental(T0, T0 + timedelta(hours=4))) == T0 + timedelta(hours=4)
    with pytest.raises(ChainError):
        next_since(PendingJob("j", "running"))


def test_the_chained_query_continues_from_the_checkpoint_with_format_and_mode():
    state = advance(State(), "canvas", "accounts", snapshot(T0))
    assert chained_query(state, "incremental", "canvas", "accounts", format="csv",
                         mode="condensed") == IncrementalQuery(
        "canvas", "accounts", T0, format="csv", mode="condensed")
    assert chained_query(state, "snapshot", "canvas", "accounts", format="csv") == \
        SnapshotQuery("canvas", "accounts", format="csv")
    until = T0 + timedelta(hours=1)
    assert chained_query(None, "incremental", "canvas", "users", since=T0, until=until) == \
        IncrementalQuery("canvas", "users", T0, until)


def test_a_chained_query_needs_a_checkpoint_or_since_and_never_contradicts_the_checkpoint():
    with pytest.raises(InvalidInput):
        chained_query(State(), "incremental", "canvas", "accounts")
    with pytest.raises(InvalidInput):
        chained_query(None, "incremental", "canvas", "accounts")
    state = advance(State(), "canvas", "accounts", snapshot(T0))
    with pytest.raises(StateConflict):
        chained_query(state, "incremental", "canvas", "accounts", since=T0 + timedelta(hours=1))


@settings(max_examples=200, deadline=None)
@given(steps)
def test_chained_windows_tile_the_timeline_without_gap_or_overlap(durations):
    state = advance(State(), "canvas", "accounts", snapshot(T0))
    windows = []
    for n, seconds in enumerate(durations):
        query = chained_query(state, "incremental", "canvas", "accounts")
        # the service answers `until`: as far as it has data, at or after `since`
        job = incremental(query.since, query.since + timedelta(seconds=seconds), "inc-%d" % n)
        state = advance(state, "canvas", "accounts", job)
        windows.append((job.since, job.until))
    last_until = windows[-1][1] if windows else T0
    assert all(a[1] == b[0] for a, b in zip(windows, windows[1:]))  # no gap, no overlap
    assert (windows[0][0] if windows else T0) == T0
    assert sum((u - s for s, u in windows), timedelta()) == last_until - T0
    assert state.get("canvas", "accounts").next_since == last_until


@given(st.integers(1, 86_400), st.booleans())
def test_an_incremental_that_does_not_start_at_the_checkpoint_is_refused(offset, later):
    state = advance(State(), "canvas", "accounts", snapshot(T0))
    since = T0 + timedelta(seconds=offset if later else -offset)
    with pytest.raises(ChainError, match="gap" if later else "overlap"):
        advance(state, "canvas", "accounts", incremental(since, since + timedelta(hours=1)))


@given(st.integers(-86_400, 86_400))
def test_the_checkpoint_never_moves_backwards(offset):
    state = advance(State(), "canvas", "accounts", snapshot(T0))
    at = T0 + timedelta(seconds=offset)
    if offset < 0:
        with pytest.raises(ChainError, match="only moves forward"):
            advance(state, "canvas", "accounts", snapshot(at))
    else:
        advanced = advance(state, "canvas", "accounts", snapshot(at))
        assert advanced.get("canvas", "accounts").next_since == at


def test_advance_leaves_the_old_state_and_other_tables_alone():
    state = advance(State(), "canvas", "users", snapshot(T0, "u"))
    after = advance(state, "canvas", "accounts", snapshot(T0, "a"))
    assert state.get("canvas", "accounts") is None
    assert after.get("canvas", "users") == state.get("canvas", "users")


def test_an_incremental_without_a_checkpoint_starts_one():
    state = advance(State(), "canvas", "accounts", incremental(T0, T0 + timedelta(hours=1)))
    assert state.get("canvas", "accounts").kind == "incremental"


def test_since_comes_from_the_checkpoint_or_the_option():
    state = advance(State(), "canvas", "accounts", snapshot(T0))
    assert since_for(state, "canvas", "accounts", None) == T0
    assert since_for(state, "canvas", "accounts", "2024-07-13T11:30:00+02:00") == T0
    assert since_for(State(), "canvas", "accounts", "2024-07-13T09:30:00Z") == T0


def test_since_that_disagrees_with_the_checkpoint_is_a_conflict():
    state = advance(State(), "canvas", "accounts", snapshot(T0))
    with pytest.raises(StateConflict, match="leave --since out"):
        since_for(state, "canvas", "accounts", "2024-07-13T09:31:00Z")


def test_neither_checkpoint_nor_since_says_to_snapshot_or_pass_since():
    with pytest.raises(InvalidInput, match="snapshot") as info:
        since_for(State(), "canvas", "accounts", None)
    assert "--since" in str(info.value)


def test_state_text_is_sorted_indented_json_with_a_trailing_newline():
    state = advance(State(), "canvas", "accounts", snapshot(T0, "job-1"))
    text = state_to_text(state)
    assert text.endswith("}\n") and text.startswith("{\n  ")
    assert json.loads(text) == {"version": 1, "checkpoints": {"canvas.accounts": {
        "namespace": "canvas", "table": "accounts", "next_since": "2024-07-13T09:30:00Z",
        "job_id": "job-1", "kind": "snapshot"}}}


def test_unknown_fields_survive_a_read_and_write():
    text = json.dumps({"version": 1, "note": "mine", "checkpoints": {"canvas.accounts": {
        "namespace": "canvas", "table": "accounts", "next_since": "2024-07-13T09:30:00Z",
        "job_id": "j", "kind": "snapshot", "rows": 12}}})
    state = state_from_text(text)
    state = advance(state, "canvas", "accounts", incremental(T0, T0 + timedelta(hours=1), "j2"))
    data = json.loads(state_to_text(state))
    assert data["note"] == "mine" and data["checkpoints"]["canvas.accounts"]["rows"] == 12
    assert data["checkpoints"]["canvas.accounts"]["job_id"] == "j2"


labels = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)


@given(st.dictionaries(st.tuples(labels, labels),
                       st.tuples(st.datetimes(timezones=st.just(UTC)),
                                 st.one_of(st.none(), st.text(max_size=8)),
                                 st.sampled_from(["snapshot", "incremental"])), max_size=5),
       st.dictionaries(st.text(max_size=5).filter(lambda k: k not in ("version", "checkpoints")),
                       st.integers(), max_size=3))
def test_state_text_round_trips(entries, extra):
    state = State({key: Checkpoint(key[0], key[1], since, job_id, kind)
                   for key, (since, job_id, kind) in entries.items()}, extra)
    assert state_from_text(state_to_text(state)) == state


@pytest.mark.parametrize("text", [
    "", "{", "[]", '{"checkpoints": []}', '{"version": 2}',
    '{"checkpoints": {"canvas.accounts": 1}}',
    '{"checkpoints": {"canvas.accounts": {"namespace": "canvas", "table": "accounts"}}}',
    '{"checkpoints": {"canvas.accounts": {"namespace": "canvas", "table": "accounts", '
    '"next_since": "2024-07-13T09:30:00", "kind": "snapshot"}}}',
    '{"checkpoints": {"canvas.users": {"namespace": "canvas", "table": "accounts", '
    '"next_since": "2024-07-13T09:30:00Z", "kind": "snapshot"}}}',
    '{"checkpoints": {"canvas.accounts": {"namespace": "canvas", "table": "accounts", '
    '"next_since": "2024-07-13T09:30:00Z", "kind": "full"}}}',
])
def test_a_corrupt_state_is_reported_never_reset(text):
    with pytest.raises(StateCorrupt) as info:
        state_from_text(text)
    assert info.value.exit_status == 3 and "\n" not in str(info.value)
