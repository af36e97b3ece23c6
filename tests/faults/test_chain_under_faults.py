"""A snapshot and five chained incrementals (`--state FILE`, the data moving on between them)
under a mix of faults, with runs SIGKILLed and rerun (for the tables whose checkpoint has not
moved yet, before the data moves on): applying every output in chain order (upsert `U` by
key, remove `D`) gives exactly the simulator's current state.  No change lost, none applied
twice, no output outside the chain, no table lagging behind.

Each kill comes at a moment reached by a protocol event (`support.ChainDriver.kill_at`):
a held job start, object URL request or part download, the second table's job start held
while the first is done (`--concurrency 1`), or a table's checkpoint written while stdout
is a full pipe.  So every kill lands, whatever the load of the machine: 10, as planned.
The other runs use the default concurrency (both tables at once)."""
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
#: the kills of the snapshot, then of each incremental.  "between" needs both tables in the
#: run, so it comes first in its step; after a "checkpoint" kill the step may be complete
#: (both tables' checkpoints moved), so it comes last.
SNAPSHOT_KILLS = ["between", "download", "checkpoint"]
INCREMENTAL_KILLS = [["download"], ["between", "urls"], [], ["start", "download"],
                     ["between", "checkpoint"]]


@pytest.mark.slow
def test_snapshot_and_five_incrementals_under_faults_and_kills_reconstruct_the_current_state(
        tmp_path):
    rng = random.Random(6)
    with Simulator(**dict(CHAIN_DATA, **FAULT_MIX)) as sim:
        driver = ChainDriver(sim, str(tmp_path), TABLES, rng)
        driver.step("snapshot", "jsonl", moments=SNAPSHOT_KILLS)
        for step in range(5):
            sim.advance()
            driver.step("incremental", FORMATS[step % 2], moments=INCREMENTAL_KILLS[step])
        found = driver.verify()
        fired = {kind: n for kind, n in sim.fault_counts.items() if n}

    assert driver.problems == []
    for table in TABLES:
        comparison, duplicated, orphans, lagging = found[table]
        assert comparison, (table, comparison)
        assert duplicated == 0, table
        assert orphans == [] and not lagging, table
    # every planned kill landed where it was meant to
    planned = SNAPSHOT_KILLS + [m for kills in INCREMENTAL_KILLS for m in kills]
    assert driver.kills == len(planned) == 10, (driver.landed, driver.failures)
    assert driver.landed == {m: planned.count(m) for m in set(planned)}, driver.landed
    # with one table at a time, the first table was done when the second's job started
    assert driver.first_done == planned.count("between") == 3
    # the faults really happened; those counted per download fire whatever the timing
    assert len(fired) >= 5, fired
    assert {"fail_5xx", "cut_download", "truncate_part", "corrupt_part"} <= set(fired), fired
