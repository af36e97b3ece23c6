"""The checker of these tests and of the soak catches what it is there to catch: a file cut
short under a final name, a sidecar that lies, a checkpoint pointing at nothing, a lost
change, a change delivered twice (a checker that never fails would prove nothing)."""
from __future__ import annotations

import json

from . import checks

SNAP = "canvas.t.snapshot.20260101T000000Z.jsonl"
INC = "canvas.t.incremental.20260101T000000Z_20260101T010000Z.jsonl"


def record(key, ts, action="U", value=None):
    """An incremental's record (action U or D), or with action None a snapshot's (and a
    state's): meta.ts only."""
    meta = {"ts": ts} if action is None else {"ts": ts, "action": action}
    out = {"key": {"id": key}, "meta": meta}
    if action != "D":
        out["value"] = {"v": value}
    return out


def write_output(directory, name, records, kind, **window):
    text = "".join(json.dumps(r) + "\n" for r in records)
    (directory / name).write_text(text)
    meta = dict(job_id="job-" + kind + str(len(name)), namespace="canvas", table="t", kind=kind,
                format="jsonl", rows=len(records), file=name, **window)
    meta["next_since"] = window.get("at") or window.get("until")
    (directory / (name + ".meta.json")).write_text(json.dumps(meta))
    return meta


def chain_directory(tmp_path):
    write_output(tmp_path, SNAP, [record(1, "t0", None, "a"), record(2, "t0", None, "b")],
                 "snapshot", at="T1")
    meta = write_output(tmp_path, INC, [record(1, "t1", value="a2"), record(2, "t1", "D")],
                        "incremental", since="T1", until="T2")
    return {"namespace": "canvas", "table": "t", "job_id": meta["job_id"], "next_since": "T2",
            "kind": "incremental"}


def truth():
    """The simulator's state: records as a snapshot has them."""
    return {checks.key_text({"id": 1}): record(1, "t1", None, "a2")}


def test_a_whole_chain_passes_every_check(tmp_path):
    checkpoint = chain_directory(tmp_path)
    listing = checks.inspect_directory(str(tmp_path))
    assert listing.problems == [] and len(listing.data) == 2
    chain, problems = checks.chain_of(listing, "canvas", "t", checkpoint)
    assert problems == [] and [m["kind"] for m in chain] == ["snapshot", "incremental"]
    assert checks.chain_of(listing, "canvas", "t")[0] == chain
    got, duplicated = checks.reconstruct(str(tmp_path), chain)
    assert checks.compare_states(got, truth()) and duplicated == 0


def test_a_file_cut_short_or_a_lying_sidecar_is_a_problem(tmp_path):
    chain_directory(tmp_path)
    data = (tmp_path / INC).read_bytes()
    (tmp_path / INC).write_bytes(data[:-7])
    assert any("newline" in p or "not JSON" in p
               for p in checks.inspect_directory(str(tmp_path)).problems)
    (tmp_path / INC).write_bytes(data.split(b"\n")[0] + b"\n")
    assert any("sidecar says" in p for p in checks.inspect_directory(str(tmp_path)).problems)
    (tmp_path / (SNAP + ".meta.json")).write_text("{\"job_id\": ")
    assert any("not valid JSON" in p for p in checks.inspect_directory(str(tmp_path)).problems)


def test_cut_csv_and_tsv_files_are_problems(tmp_path):
    (tmp_path / "a.csv").write_text('meta.ts,key.id,value.x\n1,2,"open quote\n')
    (tmp_path / "b.tsv").write_text("meta.ts\tkey.id\tvalue.x\n1\t2\n")
    (tmp_path / "c.json").write_text('[{"key": {"id": 1}, "meta": {}}')
    problems = checks.inspect_directory(str(tmp_path)).problems
    assert len(problems) == 3, problems


def test_temporary_files_are_listed_apart_and_never_read(tmp_path):
    chain_directory(tmp_path)
    (tmp_path / ("." + SNAP + ".k2j3h4.part")).write_text("half a li")
    listing = checks.inspect_directory(str(tmp_path))
    assert listing.problems == [] and listing.temporary == ["." + SNAP + ".k2j3h4.part"]


def test_a_checkpoint_pointing_at_no_whole_output_is_a_problem(tmp_path):
    checkpoint = chain_directory(tmp_path)
    (tmp_path / "state.json").write_text(json.dumps(
        {"checkpoints": {"canvas.t": dict(checkpoint, next_since="T3")}, "version": 1}))
    listing = checks.inspect_directory(str(tmp_path), state_names=["state.json"])
    assert checks.check_state(str(tmp_path / "state.json"), listing)[1]
    (tmp_path / "state.json").write_text("{")
    assert checks.check_state(str(tmp_path / "state.json"), listing)[1]


def test_a_lost_change_and_a_change_applied_twice_are_counted(tmp_path):
    checkpoint = chain_directory(tmp_path)
    listing = checks.inspect_directory(str(tmp_path))
    chain, _ = checks.chain_of(listing, "canvas", "t", checkpoint)
    # without the incremental: the update of 1 and the delete of 2 are lost
    got, _ = checks.reconstruct(str(tmp_path), chain[:1])
    comparison = checks.compare_states(got, truth())
    assert not comparison and comparison.rows_lost == 2
    # the incremental twice: its two changes are counted as duplicated
    assert checks.reconstruct(str(tmp_path), chain + chain[1:])[1] == 2
