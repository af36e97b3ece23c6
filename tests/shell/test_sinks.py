"""Atomic files and the stdout sink: outputs appear whole or not at all; a rolled-back part
leaves no trace; stdout only ever carries verified parts."""
from __future__ import annotations

import io
import os

import pytest

from dap_core.shell.sinks import (
    STALE_AFTER, AtomicFile, SpoolSink, StdoutSink, write_file_atomically,
)


def names(directory):
    return sorted(os.listdir(directory))


def test_atomic_file_has_no_final_name_until_commit(tmp_path):
    target = tmp_path / "out.csv"
    f = AtomicFile(str(target))
    f.write(b"a,b\n1,2\n")
    assert not target.exists()
    [temp] = names(tmp_path)
    assert temp.startswith(".out.csv.") and temp.endswith(".part")
    f.commit()
    assert target.read_bytes() == b"a,b\n1,2\n"
    assert names(tmp_path) == ["out.csv"]


def test_atomic_file_abort_leaves_nothing_and_keeps_an_older_file(tmp_path):
    target = tmp_path / "out.csv"
    target.write_bytes(b"old\n")
    f = AtomicFile(str(target))
    f.write(b"new, but never finished")
    f.abort()
    assert names(tmp_path) == ["out.csv"]
    assert target.read_bytes() == b"old\n"


def test_atomic_file_rollback_truncates_to_the_mark(tmp_path):
    f = AtomicFile(str(tmp_path / "out"))
    f.write(b"part one\n")
    f.mark()
    f.write(b"part two, corrupt half")
    f.rollback()
    f.write(b"part two\n")
    f.commit()
    assert (tmp_path / "out").read_bytes() == b"part one\npart two\n"


def test_atomic_file_context_manager_commits_or_aborts(tmp_path):
    with AtomicFile(str(tmp_path / "good")) as f:
        f.write(b"x")
    with pytest.raises(RuntimeError):
        with AtomicFile(str(tmp_path / "bad")) as f:
            f.write(b"y")
            raise RuntimeError("boom")
    assert names(tmp_path) == ["good"]


def test_atomic_file_gets_ordinary_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        write_file_atomically(str(tmp_path / "f"), b"1")
    finally:
        os.umask(umask)
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o644


def test_atomic_file_handle_can_be_closed_for_a_writer_that_opens_by_name(tmp_path):
    f = AtomicFile(str(tmp_path / "t.parquet"))
    f.close_handle()
    with open(f.path, "wb") as other:
        other.write(b"PAR1")
    f.commit()
    assert (tmp_path / "t.parquet").read_bytes() == b"PAR1"


def test_stdout_sink_writes_a_part_only_when_it_is_done():
    stream = io.BytesIO()
    sink = StdoutSink(stream)
    sink.mark()
    sink.write(b"row 1\n")
    assert stream.getvalue() == b""
    sink.part_done()
    assert stream.getvalue() == b"row 1\n"
    sink.mark()
    sink.write(b"row 2, bad")
    sink.rollback()
    sink.write(b"row 2\n")
    sink.part_done()
    sink.write(b"]")  # bytes after the last part go out at commit
    sink.commit()
    assert stream.getvalue() == b"row 1\nrow 2\n]"


def test_stdout_sink_spools_large_parts_on_disk_not_in_memory():
    stream = io.BytesIO()
    sink = StdoutSink(stream, max_memory=1024)
    sink.mark()
    for _ in range(100):
        sink.write(b"x" * 100)
    assert sink._spool._rolled  # spilled to a temporary file
    sink.part_done()
    assert len(stream.getvalue()) == 10000


def test_spool_sink_hands_each_verified_part_to_its_consumer():
    seen = []
    sink = SpoolSink(lambda f: seen.append(f.read()))
    sink.mark()
    sink.write(b"a")
    sink.rollback()
    sink.write(b"b")
    sink.part_done()
    sink.mark()
    sink.part_done()
    assert seen == [b"b"]


def test_a_commit_removes_temporaries_that_killed_runs_left_for_the_same_output(tmp_path):
    final = tmp_path / "canvas.accounts.snapshot.20260101T030000Z.csv"
    stale = tmp_path / ".canvas.accounts.snapshot.20260101T030000Z.csv.k1ll3d.part"
    recent = tmp_path / ".canvas.accounts.snapshot.20260101T030000Z.csv.l1v3.part"
    other = tmp_path / ".canvas.users.snapshot.20260101T030000Z.csv.0ld.part"
    for path in (stale, recent, other):
        path.write_bytes(b"half a part")
    long_ago = os.stat(stale).st_mtime - STALE_AFTER - 1
    os.utime(stale, (long_ago, long_ago))
    os.utime(other, (long_ago, long_ago))

    with AtomicFile(final) as out:
        out.write(b"whole\n")

    assert final.read_bytes() == b"whole\n"
    assert not stale.exists(), "left by a killed run: tidied up"
    assert recent.exists(), "may belong to a run still writing"
    assert other.exists(), "another output's temporary is not this commit's business"
