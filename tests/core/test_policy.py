"""Retry, poll and pacing decisions: bounded, Retry-After honoured, deadlines kept."""
from datetime import datetime, timezone

from hypothesis import given, settings, strategies as st

from dap_core.errors import (
    AuthenticationFailed, Forbidden, NotFound, ServiceUnavailable, ValidationFailed,
    error_from_answer,
)
from dap_core.policy import (
    ACTIONS, Answer, RetryPolicy, backoff_delay, decide, next_poll_delay, pace_delay, poll_wait,
    parse_retry_after,
)

POLICY = RetryPolicy(max_attempts=5, base_delay=0.5, max_delay=30.0)
jitters = st.floats(0, 1, exclude_max=True)
retryable = st.sampled_from([None, 408, 429, 500, 502, 503, 504])
policies = st.builds(RetryPolicy, max_attempts=st.integers(1, 12),
                     base_delay=st.floats(0, 5), max_delay=st.floats(0, 120),
                     deadline=st.one_of(st.none(), st.floats(0, 3600)))


def test_success_is_ok():
    assert decide(Answer("api", 200), 1, 0, 0.5, POLICY).action == "ok"


def test_a_redirect_is_not_success():
    decision = decide(Answer("api", 302), 1, 0, 0.5, POLICY)
    assert decision.action == "give_up" and "302" in str(decision.error)


def test_a_503_is_retried_with_growing_backoff():
    delays = [decide(Answer("api", 503), n, 0, 0.0, POLICY).delay for n in range(1, 5)]
    assert delays == [0.25, 0.5, 1.0, 2.0]


def test_a_429_waits_at_least_retry_after_even_beyond_the_cap():
    decision = decide(Answer("api", 429, retry_after=45), 1, 0, 0.9, POLICY)
    assert decision.action == "retry" and decision.delay == 45


def test_giving_up_after_retries_says_attempts_and_last_status_and_keeps_the_uuid():
    last = error_from_answer(
        503, b'{"error": {"type": "Unavailable", "uuid": "u-3", "message": "busy"}}')
    decision = decide(Answer("api", 503, error=last), 5, 10, 0.5, POLICY)
    assert decision.action == "give_up" and isinstance(decision.error, ServiceUnavailable)
    text = str(decision.error)
    assert "5 attempts" in text and "503" in text and "(uuid u-3)" in text
    assert decision.error.exit_status == 11


def test_a_network_error_is_retried_then_given_up():
    assert decide(Answer("download", None), 1, 0, 0.5, POLICY).action == "retry"
    decision = decide(Answer("download", None), 5, 0, 0.5, POLICY)
    assert decision.action == "give_up" and "could not reach DAP" in str(decision.error)


def test_the_deadline_is_named_when_it_stops_the_retries():
    policy = RetryPolicy(deadline=60.0)
    decision = decide(Answer("api", 502), 2, 59.9, 0.5, policy)
    assert decision.action == "give_up" and "deadline of 60s" in str(decision.error)


def test_a_retry_after_beyond_the_limit_gives_up_instead_of_waiting_less():
    decision = decide(Answer("api", 429, retry_after=3600), 1, 0, 0.5, POLICY)
    assert decision.action == "give_up" and "3600" in str(decision.error)


def test_401_on_login_gives_up_naming_the_credential_variables():
    decision = decide(Answer("login", 401), 1, 0, 0.5, POLICY)
    assert isinstance(decision.error, AuthenticationFailed)
    assert "DAP_CLIENT_ID" in str(decision.error) and "DAP_API_KEY" in str(decision.error)


def test_401_on_an_api_call_refreshes_the_token_once():
    assert decide(Answer("api", 401), 1, 0, 0.5, POLICY).action == "refresh_token"
    decision = decide(Answer("api", 401), 2, 0, 0.5, POLICY, token_refreshed=True)
    assert decision.action == "give_up" and decision.error.exit_status == 4


def test_403_on_a_download_refreshes_the_url_a_bounded_number_of_times():
    assert decide(Answer("download", 403), 1, 0, 0.5, POLICY).action == "refresh_url"
    decision = decide(Answer("download", 403), 5, 0, 0.5, POLICY)
    assert decision.action == "give_up" and decision.error.exit_status == 11


def test_403_on_an_api_call_is_forbidden():
    error = error_from_answer(
        403, b'{"error": {"type": "x", "uuid": "u", "message": "not onboarded"}}')
    decision = decide(Answer("api", 403, error=error), 1, 0, 0.5, POLICY)
    assert decision.action == "give_up" and isinstance(decision.error, Forbidden)


def test_a_404_on_a_download_says_the_objects_expired():
    decision = decide(Answer("download", 404), 1, 0, 0.5, POLICY)
    assert isinstance(decision.error, NotFound) and "run the query again" in str(decision.error)


def test_a_400_gives_up_with_its_own_error():
    error = error_from_answer(
        400, b'{"error": {"type": "ValidationError", "uuid": "u", "message": "m"}}')
    assert isinstance(decide(Answer("api", 400, error=error), 1, 0, 0.5, POLICY).error,
                      ValidationFailed)


@settings(max_examples=300, deadline=None)
@given(retryable, st.integers(1, 20), st.floats(0, 3600), jitters, policies,
       st.one_of(st.none(), st.floats(0, 900)))
def test_retries_are_bounded_and_never_shorter_than_retry_after(status, attempt, elapsed,
                                                                  jitter, policy, retry_after):
    decision = decide(Answer("api", status, retry_after=retry_after), attempt, elapsed, jitter,
                      policy)
    assert decision.action in ("retry", "give_up")
    if attempt >= policy.max_attempts:
        assert decision.action == "give_up"
    if decision.action == "retry":
        assert decision.delay >= 0
        if retry_after is not None:
            assert decision.delay >= retry_after
        else:
            assert decision.delay <= policy.max_delay
        if policy.deadline is not None:
            assert elapsed + decision.delay <= policy.deadline
    else:
        assert isinstance(decision.error, ServiceUnavailable)


@given(st.sampled_from(["login", "api", "download"]), st.one_of(st.none(), st.integers(100, 599)),
       st.integers(1, 20), jitters, st.booleans())
def test_every_answer_gets_a_known_action_and_give_up_always_carries_an_error(
        call, status, attempt, jitter, refreshed):
    decision = decide(Answer(call, status), attempt, 0.0, jitter, POLICY, token_refreshed=refreshed)
    assert decision.action in ACTIONS
    assert (decision.error is not None) == (decision.action == "give_up")
    if attempt >= POLICY.max_attempts:
        assert decision.action in ("ok", "give_up", "refresh_token")


@given(st.integers(1, 10_000), jitters)
def test_a_whole_retry_loop_ends_within_max_attempts(seed, jitter):
    policy = RetryPolicy(max_attempts=1 + seed % 10)
    attempt, elapsed = 1, 0.0
    while True:
        decision = decide(Answer("api", 503), attempt, elapsed, jitter, policy)
        if decision.action != "retry":
            break
        attempt, elapsed = attempt + 1, elapsed + decision.delay
    assert attempt == policy.max_attempts


@given(st.integers(1, 200), jitters)
def test_backoff_for_a_fixed_jitter_never_shrinks_and_stays_under_the_cap(attempt, jitter):
    assert backoff_delay(attempt, jitter, POLICY) <= \
        backoff_delay(attempt + 1, jitter, POLICY) <= 30


@given(st.integers(1, 10_000), jitters)
def test_poll_delays_grow_from_sub_second_to_a_cap_of_five_seconds(attempt, jitter):
    # a job is noticed within 5 s of completing, and a quick job within a second (#11)
    delay = next_poll_delay(attempt, jitter)
    assert 0 < delay <= 5.0
    assert delay <= next_poll_delay(attempt + 1, jitter)
    assert next_poll_delay(1, jitter) < 1.0
    assert next_poll_delay(100, jitter) == 5.0


@given(st.integers(1, 10_000), jitters, st.integers(1, 5_000))
def test_many_pending_jobs_stretch_polling_to_stay_within_the_status_budget(
        attempt, jitter, pending):
    wait = poll_wait(attempt, 0.0, jitter, None, pending=pending)
    # all pending jobs polled at this pace stay within 250 status calls a minute (DAP: 500)
    assert pending * 60.0 / wait <= 250.0 + 1e-9
    # and no job waits longer than it must: the cap, or the budget's share
    assert wait <= max(5.0, pending * 60.0 / 250.0) + 1e-9
    assert wait <= poll_wait(attempt, 0.0, jitter, None, pending=pending + 1)


window_calls = st.lists(st.integers(0, 600), max_size=30)


@settings(max_examples=300, deadline=None)
@given(window_calls, st.integers(0, 700), st.integers(1, 10), st.integers(1, 120))
def test_pace_delay_is_the_least_delay_that_keeps_the_limit(calls, now, limit, window):
    calls = [c for c in calls if c <= now]
    delay = pace_delay(float(now), [float(c) for c in calls], limit, float(window))
    at = now + delay

    def in_window(t):
        return sum(1 for c in calls if t - window < c <= t)
    assert delay >= 0
    assert in_window(at) + 1 <= limit
    if delay > 0:
        assert in_window(at - 1e-6) + 1 > limit


def test_pace_delay_examples():
    assert pace_delay(100.0, [], 5) == 0
    assert pace_delay(100.0, [41.0, 50.0, 60.0, 70.0, 99.0], 5) == 1.0
    assert pace_delay(100.0, [40.0, 50.0, 60.0, 70.0, 99.0], 5) == 0.0


def test_retry_after_header_in_seconds_or_as_a_date():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    now = datetime(2015, 10, 21, 7, 28, tzinfo=timezone.utc)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now) == 30.0
    assert parse_retry_after("-3") == 0.0


@given(st.integers(1, 10_000), st.floats(0, 100_000), jitters, st.floats(1, 50_000))
def test_poll_wait_never_sleeps_past_the_job_deadline(attempt, elapsed, jitter, deadline):
    wait = poll_wait(attempt, elapsed, jitter, deadline)
    if wait is None:
        assert elapsed + next_poll_delay(attempt, jitter) > deadline
    else:
        assert wait == next_poll_delay(attempt, jitter)
        assert elapsed + wait <= deadline


def test_poll_wait_without_a_deadline_always_waits():
    assert poll_wait(3, 10 ** 9, 0.5, None) == next_poll_delay(3, 0.5)


# -- failures with no answer: which kind decides (#12) ------------------------------------------

def test_a_name_that_does_not_resolve_gives_up_at_once():
    decision = decide(Answer("login", None, failure="unresolved"), 1, 0, 0.5, RetryPolicy())
    assert decision.action == "give_up" and decision.error.exit_status == 11


@given(st.integers(1, 7), st.floats(0, 100), jitters)
def test_a_refused_connection_is_retried_only_within_its_deadline(attempt, elapsed, jitter):
    policy = RetryPolicy(refused_deadline=20.0)
    decision = decide(Answer("api", None, failure="refused"), attempt, elapsed, jitter, policy)
    if decision.action == "retry":
        assert elapsed + decision.delay <= 20.0
    else:
        assert elapsed + backoff_delay(attempt, jitter, policy) > 20.0
        assert "gave up after %d attempt" % attempt in str(decision.error)


@given(st.sampled_from(["timeout", "other", None]), st.integers(1, 7), st.floats(0, 1000),
       jitters)
def test_no_answer_is_retried_only_within_the_network_deadline(failure, attempt, elapsed,
                                                                jitter):
    policy = RetryPolicy(network_deadline=180.0)
    decision = decide(Answer("api", None, failure=failure), attempt, elapsed, jitter, policy)
    if decision.action == "retry":
        assert elapsed + decision.delay <= 180.0
    else:
        assert elapsed + backoff_delay(attempt, jitter, policy) > 180.0


def test_the_network_deadline_does_not_cut_answers_of_the_service():
    policy = RetryPolicy(network_deadline=10.0, refused_deadline=1.0)
    assert decide(Answer("api", 503), 2, 50.0, 0.5, policy).action == "retry"


def test_the_network_deadline_allows_three_attempts_of_the_timeout_and_at_least_30_s():
    from dap_core.policy import network_deadline_for
    assert network_deadline_for(60) == 180 and network_deadline_for(1) == 30
