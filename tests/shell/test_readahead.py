"""Read-ahead (``readahead.py``): the next parts download, inflate and verify in a background
thread while the writer works, against the simulator over loopback.  The writer sees the
parts in order through the same protocol; a corrupt or truncated part that fits the hold is
fetched again without the writer seeing it; a larger one gets ``restart_part`` as before;
the thread stays within its bounds; errors come out in the writer's thread, in order."""
from __future__ import annotations

import sys
import threading
import time

import pytest

from dap_core import SnapshotQuery
from dap_core.errors import ServiceUnavailable
from dap_core.shell import readahead

from .conftest import connect

PARTS = dict(rows_per_part=17)


class Recorder:
    """A ``Client.load`` sink that records the protocol calls and keeps the verified bytes."""

    read_ahead = None  # the default hold
    rows = 0

    def __init__(self) -> None:
        self.calls = []
        self.parts = {}
        self.current = bytearray()

    def begin_part(self, index):
        self.calls.append(("begin", index))
        self.current = bytearray()

    def feed(self, data):
        assert self.calls[-1][0] in ("begin", "feed", "restart")
        if self.calls[-1][0] != "feed":
            self.calls.append(("feed", None))
        self.current += data

    def restart_part(self):
        self.calls.append(("restart", None))
        self.current = bytearray()

    def end_part(self):
        index = self.calls[-1][1] if self.calls[-1][0] == "begin" else [
            i for kind, i in self.calls if kind == "begin"][-1]
        self.parts[index] = bytes(self.current)
        self.calls.append(("end", index))

    def finish(self):
        self.calls.append(("finish", None))

    def data(self):
        return b"".join(self.parts[i] for i in sorted(self.parts))


def load(sim, sink, **options):
    query = SnapshotQuery("canvas", "submissions", format="jsonl")
    with connect(sim, **options) as dap:
        job = dap.run(query)
        dap.load(job, sink, "canvas.submissions")
    return job


def object_gets(sim):
    return [r for r in sim.requests if r["path"].startswith("/objects/")]


def test_parts_reach_the_writer_in_order_through_the_protocol(make_simulator):
    sim = make_simulator(**PARTS)
    sink = Recorder()
    job = load(sim, sink)
    count = len(job.objects)
    assert count > 3
    begins = [i for kind, i in sink.calls if kind == "begin"]
    ends = [i for kind, i in sink.calls if kind == "end"]
    assert begins == ends == list(range(count))
    assert sink.calls[-1] == ("finish", None) and ("restart", None) not in sink.calls
    assert all(part.endswith(b"\n") for part in sink.parts.values())


@pytest.mark.parametrize("fault", ["corrupt_parts", "truncate_parts"])
def test_a_damaged_part_within_the_hold_is_fetched_again_unseen_by_the_writer(
        make_simulator, fault):
    clean = Recorder()
    load(make_simulator(**PARTS), clean)
    sim = make_simulator(**dict(PARTS, **{fault: 2}))
    sink = Recorder()
    load(sim, sink)
    assert sim.fault_counts[fault.replace("_parts", "_part")] == 2
    paths = [r["path"].split("?")[0] for r in object_gets(sim)]
    assert len(paths) > len(set(paths))  # a part was downloaded again ...
    assert ("restart", None) not in sink.calls  # ... and the writer never knew
    assert sink.data() == clean.data()


class SmallHold(Recorder):
    """A writer that lets the read-ahead hold back only 64 bytes of a part."""

    read_ahead = {"hold_memory": 64, "hold_total": 64, "queue_bytes": 64}


def test_a_damaged_part_larger_than_the_hold_restarts_the_writers_part(make_simulator):
    clean = Recorder()
    load(make_simulator(**PARTS), clean)
    sim = make_simulator(truncate_parts=1, **PARTS)  # the whole part arrives, then no trailer
    sink = SmallHold()
    load(sim, sink)
    assert sim.fault_counts["truncate_part"] == 1
    restarts = [n for n, call in enumerate(sink.calls) if call[0] == "restart"]
    assert len(restarts) == 1
    # the restart came inside the part, after some of its bytes, which came again after it
    assert sink.calls[restarts[0] - 1][0] == "feed" and sink.calls[restarts[0] + 1][0] == "feed"
    assert sink.data() == clean.data()


def test_a_hold_spilling_to_disk_still_hides_a_damaged_part(make_simulator):
    clean = Recorder()
    load(make_simulator(**PARTS), clean)

    class DiskHold(Recorder):
        read_ahead = {"hold_memory": 100, "hold_total": 1 << 30, "queue_bytes": 1000}

    sim = make_simulator(corrupt_parts=1, **PARTS)
    sink = DiskHold()
    load(sim, sink)
    assert sim.fault_counts["corrupt_part"] == 1
    assert ("restart", None) not in sink.calls and sink.data() == clean.data()


def _parked(ahead) -> bool:
    """The read-ahead thread waits for room, and has to (its queue is full, or enough
    verified parts wait): seen under its lock, so it cannot move meanwhile."""
    with ahead._cond:
        frame = sys._current_frames().get(ahead._thread.ident)
        while frame is not None:
            name = frame.f_code.co_name
            if name == "_put_data":
                return ahead._queued >= ahead._queue_bytes
            if name == "_wait_for_room":
                return ahead._ended >= ahead._parts_ahead
            frame = frame.f_back
    return False


@pytest.mark.parametrize("queue_bytes,parts_ahead,most", [(100, 2, 3), (1 << 30, 2, 3),
                                                         (1 << 30, 1, 2)],
                         ids=["bytes-bound", "parts-bound-2", "parts-bound-1"])
def test_the_thread_stays_within_its_parts_and_bytes(make_simulator, queue_bytes, parts_ahead,
                                                     most):
    """The writer takes part 0 and stops taking: the thread fills what it may and waits,
    having asked for no more parts than that.  A queue of 100 bytes: part 1 handed over (in
    one piece), part 2 held, waiting for room to hand it over; a large queue: as many
    verified parts as ``parts_ahead`` wait, and the next is not asked for."""
    sim = make_simulator(**PARTS)
    query = SnapshotQuery("canvas", "submissions", format="jsonl")
    with connect(sim) as dap:
        job = dap.run(query)
        assert len(job.objects) > 6
        ahead = readahead.ReadAhead(dap._transport, dap._urls(job.objects), job.objects,
                                    "test", hold_memory=1 << 20, queue_bytes=queue_bytes,
                                    parts_ahead=parts_ahead)
        with ahead:
            events = ahead.events()
            taken = []
            for kind, value in events:
                taken.append((kind, value))
                if kind == "end":
                    break  # the writer is "busy" with part 0 from here on
            deadline = time.monotonic() + 60
            while not _parked(ahead):
                assert time.monotonic() < deadline, "the read-ahead thread never waited"
                time.sleep(0.01)
            assert len({r["path"].split("?")[0] for r in object_gets(sim)}) == most
            assert ahead._queued <= min(queue_bytes, 1 << 20) + readahead.MAX_OUTPUT
            rest = list(events)
        ends = [v for k, v in taken + rest if k == "end"]
        assert ends == list(range(len(job.objects)))


class FailingWriter(Recorder):
    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at

    def begin_part(self, index):
        super().begin_part(index)
        if index == self.at:
            raise OSError("the writer failed")


def test_a_writer_error_stops_the_thread_and_comes_out_as_it_was(make_simulator):
    sim = make_simulator(**PARTS)
    sink = FailingWriter(at=1)
    before = {t.ident for t in threading.enumerate()}
    with pytest.raises(OSError, match="the writer failed"):
        load(sim, sink)
    deadline = time.monotonic() + 60
    while any(t.name.startswith("dap-read-ahead") and t.ident not in before
              for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the read-ahead thread did not stop"
        time.sleep(0.01)
    served = len({r["path"].split("?")[0] for r in object_gets(sim)})
    assert served <= 1 + 1 + readahead.PARTS_AHEAD + 1  # it stopped, not ran to the end


def test_a_download_error_comes_out_in_the_writers_thread_after_the_parts_before_it(
        make_simulator):
    sim = make_simulator(corrupt_parts=10 ** 6, **PARTS)
    sink = Recorder()
    with pytest.raises(ServiceUnavailable):
        load(sim, sink)
    assert not any(kind == "begin" for kind, _ in sink.calls)  # part 0 never verified
