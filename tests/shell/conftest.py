"""Helpers for the shell's tests: a client of the bundled simulator whose waits are short.

Waiting is policy-driven (retries, polls, pacing); `Sleeper` records every delay the shell
asked for and sleeps at most a few milliseconds, so tests are quick and can still check
that a delay (Retry-After, pacing) was honoured.  Where a test depends on how much time
passes (a URL's or a token's life, a rate window), `FakeTime` is the one clock of both the
simulator (`make_simulator(clock=t)`) and the client (`connect(sim, fake_time=t)`): it
moves only when the client sleeps, by exactly the delay asked for, so every window is exact
and nothing depends on how fast the machine is.
"""
from __future__ import annotations

import json
import random
import threading
import time

import pytest

from dap_core import Client, resolve_credentials
from tests.simulator.api import FakeClock


class Sleeper:
    """An injectable `sleep`: records the delays asked for, sleeps at most `cap` seconds."""

    def __init__(self, cap: float = 0.01) -> None:
        self.delays = []
        self.cap = cap

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        time.sleep(min(seconds, self.cap))


class FakeTime(FakeClock):
    """A clock (epoch seconds, from `FakeClock.START`) that moves only by `sleep(seconds)`
    or `advance(seconds)`, for the simulator and the client at once.  `sleep` returns at
    once; `delays` lists every delay asked for, in order."""

    def __init__(self, start: float = FakeClock.START) -> None:
        super().__init__(start)
        self.delays = []
        self._lock = threading.Lock()

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.delays.append(seconds)
            self.now += max(0.0, seconds)

    def advance(self, seconds: float) -> float:
        with self._lock:
            return super().advance(seconds)


def connect(sim, *, api_key: bool = False, sleeper=None, fake_time: FakeTime = None,
            **options) -> Client:
    """A `Client` of `sim` with quick sleeps and seeded jitter; given `fake_time`, its
    clocks (wall and monotonic) are that one and its sleeps move it."""
    if api_key:
        credentials = resolve_credentials(api_key=sim.api_key)
    else:
        credentials = resolve_credentials(client_id=sim.client_id,
                                          client_secret=sim.client_secret)
    if fake_time is not None:
        options.update(clock=fake_time, monotonic=fake_time, sleep=fake_time.sleep)
    options.setdefault("sleep", sleeper or Sleeper())
    options.setdefault("rng", random.Random(7))
    return Client(sim.base_url, credentials, **options)


def key_of(record) -> str:
    return json.dumps(record["key"], sort_keys=True, separators=(",", ":"))


def as_state_record(record) -> dict:
    """A record as the simulator's state holds it (a snapshot's shape): meta without action."""
    return dict(record, meta={k: v for k, v in record["meta"].items() if k != "action"})


def apply_changes(state: dict, records) -> dict:
    """Upserts and deletes of JSONL records applied to {key text: record without
    meta.action}: a snapshot's records (meta.ts only) and an incremental's U are upserts."""
    for record in records:
        action = record["meta"].get("action")
        if action == "D":
            state.pop(key_of(record), None)
        else:
            assert action in (None, "U"), record
            state[key_of(record)] = as_state_record(record)
    return state


def read_jsonl(path) -> list:
    with open(path, "rb") as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture
def sleeper():
    return Sleeper()


@pytest.fixture
def sim(make_simulator):
    """The test simulator with small parts, so that every result has several."""
    return make_simulator(rows_per_part=17)
