"""The part download's state machine (dap_core.transfer), driven by a model server over
arbitrary sequences of answers, cuts and corrupt bytes: what it passes on is only ever the
true object, in order, once; every run ends within a bound set by the policy; and it gives
up exactly when the policy says."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dap_core import transfer
from dap_core.errors import DapError, ServiceUnavailable, UnexpectedAnswer, error_from_answer
from dap_core.policy import Answer, RetryPolicy, decide
from dap_core.transfer import Done, Fetch, GiveUp, PartDownload, ReadBody, ReportFailure


@dataclass(frozen=True)
class Serve:
    """A 200 (or a 206 from the byte asked for) with the object's bytes from there, in
    chunks of `chunk`; cut after `cut_after` bytes; byte `flip` of the body flipped; a
    flipped byte noticed by the gzip check at once (`noticed`) or only at the end."""

    chunk: int = 7
    cut_after: Optional[int] = None
    flip: Optional[int] = None
    noticed: bool = True


@dataclass(frozen=True)
class Whole:
    """A 200 with the whole object, whatever the Range."""


@dataclass(frozen=True)
class Misplaced:
    """A 206 from byte `start` (`None`: no Content-Range at all)."""

    start: Optional[int]


@dataclass(frozen=True)
class Status:
    """An error answer, or no answer (`status` None) with `failure`."""

    status: Optional[int]
    failure: Optional[str] = None


OBJECT = bytes(range(256)) * 2 + b"the end"

serves = st.builds(Serve, chunk=st.integers(1, 200),
                   cut_after=st.none() | st.integers(0, len(OBJECT)),
                   flip=st.none() | st.integers(0, len(OBJECT) - 1), noticed=st.booleans())
answers = st.one_of(
    serves,
    st.just(Whole()),
    st.builds(Misplaced, st.none() | st.integers(0, len(OBJECT) - 1)),
    st.just(Status(416)),
    st.builds(Status, st.sampled_from([401, 403, 404, 408, 429, 500, 503, 400])),
    st.builds(Status, st.none(), st.sampled_from(["refused", "timeout", "other", "unresolved"])),
)
policies = st.builds(RetryPolicy, max_attempts=st.integers(1, 6),
                     base_delay=st.floats(0, 2), max_delay=st.floats(0, 30),
                     deadline=st.none() | st.floats(1, 100),
                     network_deadline=st.none() | st.floats(1, 100))


class Run:
    """One download played against a model server: `answers` first, then clean ones."""

    def __init__(self, answers: List[object], policy: RetryPolicy, max_downloads: int,
                 jitter: float = 0.5) -> None:
        self.answers = list(answers)
        self.policy = policy
        self.jitter = jitter
        self.part = PartDownload("part 1 of 1", max_downloads, policy)
        self.now = 0.0
        self.output = bytearray()      # what went on to the caller, since the last rollback
        self.taken = bytearray()       # compressed bytes in the decompressor
        self.tainted = False           # a flipped byte is in the decompressor
        self.requests = 0
        self.checked = []              # (the policy's decision, the machine's) per failure
        self.since_progress = 0.0

    def play(self, limit: int = 100000):
        decision = self.part.begin(self.now)
        while isinstance(decision, Fetch):
            assert self.requests < limit, "no end in sight"
            self.perform(decision)
            decision = self.request(decision.offset)
        return decision

    def perform(self, decision) -> None:
        assert decision.rollback == (decision.fresh and bool(self.output))
        if decision.rollback:
            self.output.clear()
        if decision.fresh:
            assert not self.output, "a part started over without its output rolled back"
            self.taken.clear()
            self.tainted = False
        self.now += getattr(decision, "wait", 0.0)

    def request(self, offset: int):
        self.requests += 1
        assert offset == len(self.taken), "asked for another byte than the next one"
        answer = self.answers.pop(0) if self.answers else Serve()
        if isinstance(answer, Status) and answer.status is None:
            return self.fail(None, answer.failure)
        if isinstance(answer, Status):
            decision = self.part.answered(answer.status)
            return self.fail(answer.status, None) if isinstance(decision, ReportFailure) \
                else decision
        start = 0 if isinstance(answer, Whole) or not offset else offset
        status = 206 if offset and not isinstance(answer, Whole) else 200
        content_range = "bytes %d-%d/%d" % (start, len(OBJECT) - 1, len(OBJECT))
        if isinstance(answer, Misplaced):
            start = answer.start or 0
            content_range = None if answer.start is None else "bytes %d-%d/%d" % (
                start, len(OBJECT) - 1, len(OBJECT))
            if offset == 0:
                status = 206
        decision = self.part.answered(status, content_range)
        if isinstance(decision, ReportFailure):
            return self.fail(status, None)
        if not isinstance(decision, ReadBody):
            assert isinstance(decision, (Fetch, GiveUp))
            return decision
        self.perform(decision)
        serve = answer if isinstance(answer, Serve) else Serve()
        return self.stream(start, serve)

    def fail(self, status: Optional[int], failure: Optional[str]):
        answer = Answer("download", status, failure=failure,
                        error=error_from_answer(status, None) if status else
                        ServiceUnavailable("could not download a part: no answer"))
        attempt = self.part.attempt + 1
        decision = self.part.failed(answer, self.now, self.jitter)
        expected = decide(answer, attempt, self.now - self.since_progress, self.jitter,
                          self.policy)
        self.checked.append((expected, decision))
        return decision

    def stream(self, start: int, serve: Serve):
        body = bytearray(OBJECT[start:])
        if serve.flip is not None and serve.flip < len(body):
            body[serve.flip] ^= 0xFF
        end = len(body) if serve.cut_after is None else min(serve.cut_after, len(body))
        for at in range(0, end, serve.chunk):
            chunk = bytes(body[at:min(at + serve.chunk, end)])
            self.part.received(len(chunk), self.now)
            self.since_progress = self.now
            self.taken += chunk
            self.tainted = self.tainted or self.taken != OBJECT[:len(self.taken)]
            if self.tainted and serve.noticed:
                return self.part.corrupt()
            self.part.passed_on()
            self.output += chunk
            if not self.tainted:  # a flipped byte may go on: the CRC is checked at the end
                assert self.output == OBJECT[:len(self.output)], "a byte twice or out of place"
        if serve.cut_after is not None and serve.cut_after < len(body):
            return self.fail(None, "other")
        if self.tainted:
            return self.part.corrupt()
        return self.part.ended(bytes(self.taken) == OBJECT)


def request_bound(policy: RetryPolicy, max_downloads: int) -> int:
    """Each download takes at most len(OBJECT) steps of progress, and between two of them
    (or before the first) at most max_attempts failed requests and one that starts over."""
    return max_downloads * (len(OBJECT) + 1) * (policy.max_attempts + 1)


@settings(max_examples=400)
@given(st.lists(answers, max_size=25), policies, st.integers(1, 6),
       st.floats(0, 1, exclude_max=True))
def test_any_answers_pass_on_only_the_true_object_and_end_within_the_bound(
        script, policy, max_downloads, jitter):
    run = Run(script, policy, max_downloads, jitter)
    outcome = run.play(limit=request_bound(policy, max_downloads))
    assert isinstance(outcome, (Done, GiveUp))
    assert run.part.downloads <= max_downloads
    if isinstance(outcome, Done):
        assert bytes(run.output) == OBJECT and outcome.compressed == len(OBJECT)
    else:
        assert isinstance(outcome.error, DapError)


@given(st.lists(answers, max_size=25), policies, st.integers(1, 6),
       st.floats(0, 1, exclude_max=True))
def test_a_failure_gives_up_exactly_when_the_policy_says(script, policy, max_downloads, jitter):
    run = Run(script, policy, max_downloads, jitter)
    outcome = run.play(limit=request_bound(policy, max_downloads))
    for expected, decision in run.checked:
        if expected.action == "retry":
            assert decision == Fetch(decision.offset, wait=expected.delay)
        elif expected.action == "refresh_url":
            assert decision == Fetch(decision.offset, refresh_url=True)
        else:
            assert isinstance(decision, GiveUp) and decision is outcome
            if expected.action == "give_up":
                assert type(decision.error) is type(expected.error)
                assert str(decision.error) == str(expected.error)


def test_a_start_over_rolls_back_only_output_passed_on_since_the_last_one():
    run = Run([Serve(cut_after=100), Status(416), Serve(flip=0)], RetryPolicy(), 5)
    assert isinstance(run.play(), Done) and run.part.downloads == 3


@given(st.integers(1, 6), st.lists(st.sampled_from(["corrupt", "short", "416", "whole",
                                                    "misplaced"]), min_size=1, max_size=12))
def test_a_part_starts_over_at_most_max_downloads_times_then_gives_up(max_downloads, faults):
    part = PartDownload("part 2 of 3", max_downloads)
    decision = part.begin(0.0)
    starts = 1
    for fault in faults:
        if isinstance(decision, GiveUp):
            break
        part.received(10, 0.0)  # some bytes in, so that the next request resumes
        if fault == "corrupt":
            decision = part.corrupt()
        elif fault == "short":
            decision = part.ended(False)
        elif fault == "416":
            decision = part.answered(416)
        elif fault == "whole":
            decision = part.answered(200)
        else:
            decision = part.answered(206, "bytes 3-9/100")
        starts += 1
        if starts > max_downloads:
            assert isinstance(decision, GiveUp)
            assert "stayed corrupt after %d downloads" % max_downloads in str(decision.error)
            assert decision.error.exit_status == 11
        else:
            assert decision.fresh and part.offset == 0 and part.downloads == starts


def test_progress_starts_the_retry_count_again():
    policy = RetryPolicy(max_attempts=2)
    part = PartDownload("part", 5, policy)
    part.begin(0.0)
    cut = Answer("download", None, failure="other")
    for _ in range(5):
        part.answered(206 if part.offset else 200, "bytes %d-99/100" % part.offset)
        part.received(3, 0.0)
        decision = part.cut(cut, 0.0, 0.5)
        assert isinstance(decision, Fetch) and decision.offset == part.offset
    assert part.attempt == 1
    assert isinstance(part.cut(cut, 0.0, 0.5), GiveUp)


def test_a_resume_asks_for_the_next_byte_and_takes_the_206_that_starts_there():
    part = PartDownload()
    assert part.begin(0.0) == Fetch(0, fresh=True)
    assert part.answered(200) == ReadBody()
    part.received(700, 1.0)
    part.passed_on()
    assert part.cut(Answer("download", None, failure="other"), 1.0, 0.0) == \
        Fetch(700, wait=0.25)
    assert part.answered(206, "bytes 700-999/1000") == ReadBody()
    part.received(300, 2.0)
    assert part.ended(True) == Done(1000)


@pytest.mark.parametrize("status, content_range, then", [
    (416, "bytes */1000", Fetch(0, fresh=True, rollback=True)),
    (200, None, ReadBody(fresh=True, rollback=True)),
    (206, "bytes 0-999/1000", Fetch(0, fresh=True, rollback=True)),
    (206, None, Fetch(0, fresh=True, rollback=True)),
])
def test_an_answer_that_cannot_resume_starts_the_part_over_with_its_output_rolled_back(
        status, content_range, then):
    part = PartDownload()
    part.begin(0.0)
    part.answered(200)
    part.received(700, 0.0)
    part.passed_on()
    part.cut(Answer("download", None, failure="other"), 0.0, 0.0)
    assert part.answered(status, content_range) == then
    assert part.offset == 0 and part.downloads == 2


def test_a_206_to_a_request_for_the_whole_part_is_an_unexpected_answer():
    part = PartDownload("part 1 of 2")
    part.begin(0.0)
    decision = part.answered(206, "bytes 0-9/10")
    assert isinstance(decision, GiveUp) and isinstance(decision.error, UnexpectedAnswer)
    assert "part 1 of 2: unexpected HTTP 206" in str(decision.error)


def test_a_download_that_is_over_takes_no_more_events():
    part = PartDownload()
    part.begin(0.0)
    part.answered(200)
    part.ended(True)
    with pytest.raises(ValueError):
        part.corrupt()


@pytest.mark.parametrize("header, start", [
    ("bytes 700-999/1000", 700), ("BYTES 0-9/10", 0), ("bytes */1000", None),
    ("items 1-2/3", None), ("", None), (None, None)])
def test_content_range_start_reads_the_first_byte(header, start):
    assert transfer.content_range_start(header) == start
