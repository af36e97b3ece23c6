"""A snapshot and five chained incrementals (`--state FILE`, the data moving on between them)
under a mix of faults, with runs SIGKILLed at random moments and rerun (for the tables whose
checkpoint has not moved yet, before the data moves on): applying every output in chain
order (upsert `U` by key, remove `D`) gives exactly the simulator's current state.  No change
lost, none applied twice, no output outside the chain, no table lagging behind."""
from __future__ import annotations

import random

import pytest

from fixtures.simulator import Simulator

from .support import DATA_OPTIONS, ChainDriver

#: a bit of every fault, spread over the whole chain (the per-download faults are counted
#: from the first download: they hit the snapshot)
FAULT_MIX = dict(fail_429=0.04, fail_5xx=0.12, cut_download_after=1500, cut_download_times=6,
                 truncate_parts=1, corrupt_parts=1, refuse_tokens_after=1.0, url_ttl=2)
CHAIN_DATA = dict(DATA_OPTIONS, seed=3, changes_per_step=40)
TABLES = ("accounts", "submissions")
FORMATS = ("jsonl", "json")


@pytest.mark.slow
def test_snapshot_and_five_incrementals_under_faults_and_kills_reconstruct_the_current_state(
        tmp_path):
    rng = random.Random(6)
    with Simulator(**dict(CHAIN_DATA, **FAULT_MIX)) as sim:
        driver = ChainDriver(sim, str(tmp_path), TABLES, rng)
        driver.step("snapshot", "jsonl", kills=3, max_delay=1.5)
        for step in range(5):
            sim.advance()
            driver.step("incremental", FORMATS[step % 2], kills=rng.choice((0, 1, 2, 2)),
                        max_delay=1.5)
        found = driver.verify()
        fired = {kind: n for kind, n in sim.fault_counts.items() if n}

    assert driver.problems == []
    for table in TABLES:
        comparison, duplicated, orphans, lagging = found[table]
        assert comparison, (table, comparison)
        assert duplicated == 0, table
        assert orphans == [] and not lagging, table
    # the faults and kills really happened
    assert driver.kills >= 6, (driver.kills, driver.runs)
    assert len(fired) >= 5, fired
