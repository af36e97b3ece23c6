"""The download's resume fallbacks and a job's renewal, each against the simulator over
loopback: a cut download whose resume is refused (416), ignored (200 and the whole part) or
answered from another byte (a 206 with the wrong Content-Range) starts its part over, and
jobs handed out about to expire are asked for anew; the output is byte-identical to a clean
run's.  Time is the simulator's and the client's shared `FakeTime`, never the wall clock."""
from __future__ import annotations

import logging

import pytest

from dap_core.errors import UnexpectedAnswer
from dap_core.jobs import MAX_RENEWALS

from .conftest import FakeTime
from .test_faults import PARTS, download

CUTS = dict(cut_download_after=700, cut_download_times=2, **PARTS)


def clean_run(make_simulator, directory, seed=0):
    """The bytes of a clean run's CSV of submissions (the seed also seeds the data)."""
    return download(make_simulator(seed=seed, **PARTS), directory / "clean", "csv")[0]


@pytest.fixture
def clean_csv(make_simulator, tmp_path):
    return clean_run(make_simulator, tmp_path)


def downloads(sim):
    """(object path, Range header or None, status) of each part download, in order."""
    return [(r["path"].split("?")[0], r["headers"].get("range"), r["status"])
            for r in sim.requests if r["path"].startswith("/objects/")]


def after_each_ranged(sim):
    """(a ranged download, the download that came next or None), for each ranged one."""
    seen = downloads(sim) + [None]
    return [(seen[i], seen[i + 1]) for i in range(len(seen) - 1) if seen[i][1]]


def said(caplog, text) -> int:
    """How many of the download's log lines say `text`."""
    return sum(text in r.getMessage() for r in caplog.records if r.name == "dap.download")


def no_corruption_seen(caplog) -> bool:
    """The fallback itself started the part over: its gzip check never had to."""
    return said(caplog, "corrupt") == said(caplog, "ends early") == 0


def starts_over(ranged, then) -> bool:
    """`then` asks for the part of `ranged` from its first byte, and gets it."""
    return then is not None and then[0] == ranged[0] and then[1:] == (None, 200)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_resume_refused_with_416_starts_the_part_over_and_output_is_identical(
        make_simulator, tmp_path, clean_csv, fmt, caplog):
    caplog.set_level(logging.INFO, logger="dap.download")
    sim = make_simulator(refuse_ranges=2, **CUTS)
    data, _, _ = download(sim, tmp_path, fmt)
    if fmt == "csv":
        assert data == clean_csv
    assert sim.fault_counts["refuse_range"] == 2 and sim.fault_counts["cut_download"] == 2
    refused = [pair for pair in after_each_ranged(sim) if pair[0][2] == 416]
    assert len(refused) == 2 and all(starts_over(*pair) for pair in refused)
    assert said(caplog, "(HTTP 416); downloading it again") == 2 and no_corruption_seen(caplog)


def test_a_resume_answered_200_with_the_whole_part_is_read_from_its_start(
        make_simulator, tmp_path, clean_csv, caplog):
    caplog.set_level(logging.INFO, logger="dap.download")
    sim = make_simulator(ignore_ranges=2, **CUTS)
    data, _, _ = download(sim, tmp_path, "csv")
    assert data == clean_csv
    assert sim.fault_counts["ignore_range"] == 2 and sim.fault_counts["cut_download"] == 2
    # the 200's body was the part's new download: that part was not asked for again
    ignored = [pair for pair in after_each_ranged(sim) if pair[0][2] == 200]
    assert len(ignored) == 2
    assert all(then is None or then[0] != ranged[0] for ranged, then in ignored)
    assert said(caplog, "(HTTP 200); downloading it again") == 2 and no_corruption_seen(caplog)


@pytest.mark.parametrize("seed", [0, 3])
def test_a_resume_answered_from_another_byte_starts_the_part_over(make_simulator, tmp_path,
                                                                  seed, caplog):
    caplog.set_level(logging.INFO, logger="dap.download")
    sim = make_simulator(misplace_ranges=2, seed=seed, **CUTS)
    data, _, _ = download(sim, tmp_path, "csv")
    assert data == clean_run(make_simulator, tmp_path, seed)
    assert sim.fault_counts["misplace_range"] == 2 and sim.fault_counts["cut_download"] == 2
    misplaced = [pair for pair in after_each_ranged(sim) if pair[0][2] == 206]
    assert len(misplaced) == 2 and all(starts_over(*pair) for pair in misplaced)
    assert said(caplog, "resumed at the wrong offset") == 2 and no_corruption_seen(caplog)


def test_jobs_handed_out_about_to_expire_are_renewed_and_output_is_identical(
        make_simulator, tmp_path, clean_csv):
    clock = FakeTime()
    sim = make_simulator(expiring_jobs=MAX_RENEWALS, clock=clock, **PARTS)
    data, _, _ = download(sim, tmp_path, "csv", fake_time=clock)
    assert data == clean_csv
    starts = [r for r in sim.requests if r["path"].endswith("/data")]
    assert len(starts) == 1 + MAX_RENEWALS
    # each renewal waited until the job was gone (a minute) and the grace after it
    assert clock.delays[:MAX_RENEWALS] == [65.0] * MAX_RENEWALS
    assert [round(b["time"] - a["time"]) for a, b in zip(starts, starts[1:])] == \
        [65] * MAX_RENEWALS


def test_a_service_that_keeps_handing_out_expiring_jobs_is_given_up_on(make_simulator,
                                                                       tmp_path):
    clock = FakeTime()
    sim = make_simulator(expiring_jobs=MAX_RENEWALS + 1, clock=clock, **PARTS)
    with pytest.raises(UnexpectedAnswer) as caught:
        download(sim, tmp_path, "csv", fake_time=clock)
    assert caught.value.exit_status == 11 and "about to expire" in str(caught.value)
    assert len([r for r in sim.requests if r["path"].endswith("/data")]) == 1 + MAX_RENEWALS
    assert not any(r["path"].startswith("/objects/") for r in sim.requests)
    assert list(tmp_path.iterdir()) == []
