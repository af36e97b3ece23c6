"""The checkpoint file on disk: missing is empty, corrupt is an error (never a reset),
writes are atomic and leave no temporary files."""
from __future__ import annotations

import os
from datetime import datetime, timezone

import pytest

from dap_core import chain
from dap_core.errors import InvalidInput, OutputError, StateCorrupt
from dap_core.jobs import CompleteSnapshot
from dap_core.shell.state import check_state_path, load_state, save_state

AT = datetime(2024, 7, 13, 9, 30, tzinfo=timezone.utc)


def test_a_missing_state_file_is_an_empty_state(tmp_path):
    state = load_state(str(tmp_path / "state.json"))
    assert state.get("canvas", "accounts") is None


def test_state_round_trips_through_the_file_atomically(tmp_path):
    path = tmp_path / "state.json"
    job = CompleteSnapshot("job-1", None, ("o",), 1, AT)
    save_state(str(path), chain.advance(chain.State(), "canvas", "accounts", job))
    assert os.listdir(tmp_path) == ["state.json"]
    assert load_state(str(path)).get("canvas", "accounts").next_since == AT
    assert "2024-07-13T09:30:00Z" in path.read_text()


@pytest.mark.parametrize("text", ["{", "[]", '{"checkpoints": 3}', "\xff\xfe"])
def test_a_corrupt_state_file_is_an_error_naming_the_file(tmp_path, text):
    path = tmp_path / "state.json"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(StateCorrupt) as caught:
        load_state(str(path))
    assert str(path) in str(caught.value) and caught.value.exit_status == 3
    assert path.read_bytes() == text.encode("latin-1")  # never reset


def test_state_path_checks(tmp_path):
    with pytest.raises(InvalidInput):
        check_state_path(str(tmp_path))  # a directory
    with pytest.raises(InvalidInput):
        check_state_path(str(tmp_path / "no" / "such" / "dir" / "state.json"))
    check_state_path(str(tmp_path / "state.json"))


def test_a_state_file_that_cannot_be_written_is_an_output_error(tmp_path, monkeypatch):
    import errno

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("dap_core.shell.sinks.AtomicFile.write", full)
    with pytest.raises(OutputError) as caught:
        save_state(str(tmp_path / "state.json"), chain.State())
    assert os.listdir(tmp_path) == []
    text = str(caught.value)  # the state file is blamed, not an output directory (#12)
    assert "state file's directory" in text and "output directory" not in text


def test_save_checkpoint_rereads_the_file_and_moves_only_its_table(tmp_path):
    """Another run wrote the file since this run read it: its checkpoint is kept (#12)."""
    from dap_core.jobs import CompleteIncremental
    from dap_core.shell.state import save_checkpoint
    from datetime import timedelta
    path = tmp_path / "state.json"
    snap = CompleteSnapshot("job-1", None, ("o",), 1, AT)
    state = chain.advance(chain.advance(chain.State(), "canvas", "accounts", snap),
                          "canvas", "users", snap)
    save_state(str(path), state)  # what both runs read at their start
    later = AT + timedelta(hours=1)
    other = chain.advance(state, "canvas", "users",
                          CompleteIncremental("job-2", None, ("o",), 1, AT, later))
    save_state(str(path), other)  # the other run saved first
    mine = save_checkpoint(str(path), "canvas", "accounts",
                           CompleteIncremental("job-3", None, ("o",), 1, AT, later))
    on_disk = load_state(str(path))
    assert on_disk.get("canvas", "users").next_since == later
    assert on_disk.get("canvas", "accounts").next_since == later
    assert mine.get("canvas", "users").next_since == later
    # the same table moved by another run meanwhile: refused, never overwritten
    with pytest.raises(chain.ChainError):
        save_checkpoint(str(path), "canvas", "accounts",
                        CompleteIncremental("job-4", None, ("o",), 1, AT, later))
    assert load_state(str(path)).get("canvas", "accounts").job_id == "job-3"
    assert sorted(os.listdir(tmp_path)) == ["state.json", "state.json.lock"]
