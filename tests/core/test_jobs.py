"""Jobs: parsing answers into variants, the transition table, and the decision on a new job."""
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, strategies as st

from dap_core.errors import JobFailed, UnexpectedAnswer
from dap_core.jobs import (
    ASK_AGAIN_LIMIT, COMPLETE, FAILED, MAX_RENEWALS, RENEW_GRACE, RUNNING, STATUSES, TERMINAL,
    TRANSITIONS, WAITING, CompleteIncremental, CompleteSnapshot, FailedJob, JobError,
    PendingJob, check_transition,
    decide_created_job, is_terminal, parse_job,
)
from dap_core.queries import IncrementalQuery

UTC = timezone.utc
NOW = datetime(2024, 7, 13, 12, 0, tzinfo=UTC)


def _snapshot(**changes):
    data = {"id": "job-1", "status": "complete", "expires_at": "2024-07-14T09:30:00Z",
            "objects": [{"id": "obj-1"}, {"id": "obj-2"}], "schema_version": 3,
            "at": "2024-07-13T09:30:00Z"}
    data.update(changes)
    return data


def test_the_table_fits_one_screen_and_covers_every_status():
    assert set(TRANSITIONS) == set(STATUSES)
    assert TERMINAL == {COMPLETE, FAILED}


@given(st.sampled_from(sorted(TERMINAL)), st.sampled_from(STATUSES))
def test_no_transition_leaves_a_terminal_state(terminal, new):
    with pytest.raises(UnexpectedAnswer):
        check_transition(terminal, new)


@given(st.lists(st.sampled_from(STATUSES), min_size=1, max_size=12))
def test_any_accepted_sequence_only_moves_forward_and_stops_at_a_terminal(statuses):
    order = {WAITING: 0, RUNNING: 1, COMPLETE: 2, FAILED: 2}
    seen = [WAITING]
    for status in statuses:
        try:
            check_transition(seen[-1], status)
        except UnexpectedAnswer:
            assert is_terminal(seen[-1]) or order[status] < order[seen[-1]]
            break
        seen.append(status)
    assert all(order[a] <= order[b] for a, b in zip(seen, seen[1:]))
    assert all(not is_terminal(s) for s in seen[:-1])


def test_waiting_may_skip_running_and_running_may_not_go_back():
    assert check_transition(WAITING, COMPLETE) == COMPLETE
    with pytest.raises(UnexpectedAnswer):
        check_transition(RUNNING, WAITING)
    with pytest.raises(UnexpectedAnswer, match="unknown job status"):
        check_transition(RUNNING, "paused")


def test_a_complete_snapshot_answer():
    job = parse_job(_snapshot(), "snapshot")
    assert job == CompleteSnapshot("job-1", datetime(2024, 7, 14, 9, 30, tzinfo=UTC),
                                   ("obj-1", "obj-2"), 3, datetime(2024, 7, 13, 9, 30, tzinfo=UTC))
    assert job.status == COMPLETE and job.kind == "snapshot"


def test_a_complete_incremental_answer_with_since_and_until():
    job = parse_job({"id": "j", "status": "complete", "expires_at": None, "objects": [{"id": "o"}],
                     "schema_version": 1, "since": "2024-07-13T09:30:00Z",
                     "until": "2024-07-14T00:00:00+00:00"}, "incremental")
    assert isinstance(job, CompleteIncremental) and job.expires_at is None
    assert job.until == datetime(2024, 7, 14, tzinfo=UTC)


def test_kind_is_guessed_from_at_when_not_given():
    assert isinstance(parse_job(_snapshot()), CompleteSnapshot)


@pytest.mark.parametrize("status", [WAITING, RUNNING])
def test_pending_answers(status):
    assert parse_job({"id": "j", "status": status}, "snapshot") == PendingJob("j", status, None)


def test_a_failed_answer_carries_type_uuid_and_message():
    job = parse_job({"id": "j", "status": "failed", "expires_at": None,
                     "error": {"type": "InternalError", "uuid": "u-5", "message": "boom"}})
    assert isinstance(job, FailedJob) and job.status == FAILED
    error = job.error.to_exception(job.id)
    assert isinstance(error, JobFailed) and error.exit_status == 10
    assert error.type == "InternalError" and error.uuid == "u-5" and "boom" in str(error)


@pytest.mark.parametrize("data", [
    None, [], "job", {"status": "complete"}, {"id": "", "status": "waiting"},
    {"id": "j", "status": "done"}, {"id": "j"},
    _snapshot(objects=None), _snapshot(objects=[{"name": "x"}]), _snapshot(at=None),
    _snapshot(at="2024-07-13T09:30:00"), _snapshot(schema_version="3"),
    _snapshot(expires_at="tomorrow"),
    {"id": "j", "status": "complete", "objects": [], "since": "2024-07-14T00:00:00Z",
     "until": "2024-07-13T00:00:00Z"},
])
def test_malformed_answers_are_unexpected(data):
    with pytest.raises(UnexpectedAnswer):
        parse_job(data, "snapshot" if isinstance(data, dict) and "at" in data else "incremental")


def test_a_complete_job_far_from_expiry_is_used():
    assert decide_created_job(parse_job(_snapshot()), NOW, 600).action == "use"


def test_a_job_without_expiry_is_used():
    assert decide_created_job(parse_job(_snapshot(expires_at=None)), NOW, 600).action == "use"


def test_a_job_about_to_expire_is_renewed_after_it_has_gone():
    job = parse_job(_snapshot(expires_at="2024-07-13T12:05:00Z"))
    decision = decide_created_job(job, NOW, 600)
    assert decision.action == "renew" and decision.wait == 300 + RENEW_GRACE


def test_an_already_expired_job_is_renewed_without_waiting_long():
    job = parse_job(_snapshot(expires_at="2024-07-13T11:00:00Z"))
    assert decide_created_job(job, NOW, 600).wait == RENEW_GRACE


def test_a_pending_job_is_polled_and_a_failed_one_fails():
    assert decide_created_job(PendingJob("j", WAITING), NOW, 600).action == "poll"
    failed = parse_job({"id": "j", "status": "failed", "error": {"message": "x"}})
    decision = decide_created_job(failed, NOW, 600)
    assert decision.action == "fail" and isinstance(decision.error, JobFailed)


@given(st.integers(-7200, 7200), st.integers(0, 3600))
def test_renew_exactly_within_the_margin_and_wait_until_past_expiry(seconds_left, margin):
    job = CompleteSnapshot("j", NOW + timedelta(seconds=seconds_left), ("o",), 1, NOW)
    decision = decide_created_job(job, NOW.timestamp(), margin)
    if seconds_left <= margin:
        assert decision.action == "renew"
        assert NOW + timedelta(seconds=decision.wait) > job.expires_at
    else:
        assert decision.action == "use" and decision.wait == 0


# -- renewals: a job handed out about to expire is asked for anew, a bounded number of times --

def _expiring(seconds_left=60):
    return CompleteSnapshot("j", NOW + timedelta(seconds=seconds_left), ("o",), 1, NOW)


def test_a_job_about_to_expire_after_max_renewals_fails_as_unexpected():
    decision = decide_created_job(_expiring(), NOW, 600, renewed=MAX_RENEWALS)
    assert decision.action == "fail" and isinstance(decision.error, UnexpectedAnswer)
    assert "about to expire" in str(decision.error) and decision.error.exit_status == 11
    assert decide_created_job(_expiring(), NOW, 600, renewed=MAX_RENEWALS - 1).action == "renew"


@given(st.integers(0, 2 * MAX_RENEWALS), st.integers(-7200, 7200), st.integers(0, 3600),
       st.booleans())
def test_renew_or_give_up_depends_on_renewals_only_when_the_job_is_about_to_expire(
        renewed, seconds_left, margin, pending):
    expires_at = NOW + timedelta(seconds=seconds_left)
    job = PendingJob("j", WAITING, expires_at) if pending else \
        CompleteSnapshot("j", expires_at, ("o",), 1, NOW)
    decision = decide_created_job(job, NOW, margin, renewed=renewed)
    if seconds_left > margin:
        assert decision == decide_created_job(job, NOW, margin)
        assert decision.action in ("poll", "use")
    elif renewed < MAX_RENEWALS:
        assert decision.action == "renew"
    else:
        assert decision.action == "fail" and isinstance(decision.error, UnexpectedAnswer)


def _created_jobs():
    """Jobs "start a query" may hand out: pending, complete (empty window or not), failed,
    each far from expiry or about to expire."""
    at = datetime(2024, 7, 13, 9, 30, tzinfo=UTC)
    expiry = st.sampled_from([None, NOW + timedelta(seconds=30), NOW + timedelta(days=1)])
    return st.one_of(
        st.builds(PendingJob, st.just("j"), st.sampled_from([WAITING, RUNNING]), expiry),
        st.builds(CompleteSnapshot, st.just("j"), expiry, st.just(("o",)), st.just(1),
                  st.just(at)),
        st.builds(CompleteIncremental, st.just("j"), expiry, st.just(("o",)), st.just(1),
                  st.just(at), st.sampled_from([at, NOW])),
        st.builds(FailedJob, st.just("j"), expiry, st.just(JobError(None, None, "x"))),
    )


@given(st.lists(_created_jobs(), min_size=1 + MAX_RENEWALS + ASK_AGAIN_LIMIT,
                max_size=1 + MAX_RENEWALS + ASK_AGAIN_LIMIT))
def test_a_run_starts_a_bounded_number_of_jobs_and_gives_up_exactly_past_max_renewals(
        answers):
    """The session's loop, counting as it does: whatever jobs the service hands out, the
    run ends (use, poll or fail) by its 1 + MAX_RENEWALS + ASK_AGAIN_LIMIT-th job."""
    renewed = asked_again = variant = started = 0
    for job in answers:
        started += 1
        decision = decide_created_job(job, NOW, 600, asked_again, variant, renewed)
        expiring = job.expires_at is not None and job.expires_at - NOW <= timedelta(minutes=10)
        gives_up = expiring and not isinstance(job, FailedJob) and renewed == MAX_RENEWALS
        assert (decision.action == "fail" and isinstance(decision.error, UnexpectedAnswer)) \
            == gives_up
        if decision.action == "renew":
            renewed += 1
        elif decision.action == "ask_again":
            asked_again, variant = asked_again + 1, decision.variant
        else:
            break
    assert decision.action in ("use", "poll", "fail")
    assert renewed <= MAX_RENEWALS and asked_again <= ASK_AGAIN_LIMIT
    assert started == 1 + renewed + asked_again


# -- an empty window at creation: perhaps an old job the service deduplicated ----------------

def _incremental(since, until, expires_at=None):
    return CompleteIncremental("j", expires_at, ("o",), 1, since, until)


def test_an_empty_window_at_creation_is_asked_again_a_few_times_then_used():
    at = datetime(2024, 7, 13, 9, 30, tzinfo=UTC)
    empty = _incremental(at, at)
    decision = decide_created_job(empty, NOW, 600)
    assert decision.action == "ask_again" and decision.variant >= 1
    again = decide_created_job(empty, NOW, 600, asked_again=1, variant=decision.variant)
    assert again.action == "ask_again"
    query = IncrementalQuery("canvas", "accounts", since=at)
    assert query.body(variant=again.variant) != query.body(variant=decision.variant)
    assert decide_created_job(empty, NOW, 600, asked_again=ASK_AGAIN_LIMIT,
                              variant=7).action == "use"
    assert decide_created_job(_incremental(at, NOW), NOW, 600).action == "use"
    assert decide_created_job(parse_job(_snapshot()), NOW, 600).action == "use"


def test_an_empty_window_about_to_expire_is_renewed_not_asked_again():
    empty = _incremental(NOW, NOW, expires_at=NOW + timedelta(seconds=60))
    assert decide_created_job(empty, NOW, 600).action == "renew"


def _run_of_asks(job, now):
    """The variants one run asks for while every answer is the same stale job."""
    variants, decision = [], decide_created_job(job, now, 600)
    while decision.action == "ask_again":
        variants.append(decision.variant)
        decision = decide_created_job(job, now, 600, len(variants), decision.variant)
    return variants


@given(st.floats(0, 4e9), st.datetimes(min_value=datetime(2000, 1, 1),
                                       max_value=datetime(2100, 1, 1), timezones=st.just(UTC)))
def test_one_run_asks_for_distinct_equivalent_bodies_chosen_by_now_alone(now, at):
    query = IncrementalQuery("canvas", "accounts", since=at)
    empty = _incremental(at, at)
    variants = _run_of_asks(empty, now)
    assert len(variants) == ASK_AGAIN_LIMIT
    assert variants == _run_of_asks(empty, now)  # deterministic given now
    texts = [query.body(variant=v)["since"] for v in variants]
    assert len(set(texts)) == len(texts) and query.body()["since"] not in texts


@given(st.integers(0, 4 * 10 ** 12), st.integers(1, 112))
def test_runs_a_few_milliseconds_apart_start_from_different_forms(ms, apart):
    at = datetime(2024, 7, 13, 9, 30, tzinfo=UTC)  # 341 forms
    query = IncrementalQuery("canvas", "accounts", since=at)
    empty = _incremental(at, at)
    first = decide_created_job(empty, ms / 1000.0 + 0.0004, 600)
    later = decide_created_job(empty, (ms + apart) / 1000.0 + 0.0004, 600)
    assert query.body(variant=first.variant) != query.body(variant=later.variant)
