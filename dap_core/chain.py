"""Chaining: each result says where the next query starts, and a checkpoint only moves forward.

Windows are [since, until): a snapshot's `at` is the first incremental's `since`, and each
incremental's `until` the next one's `since`, so the windows tile time with no gap and no
overlap. A result that would break that is refused, never silently accepted.

The state file is JSON, one checkpoint per namespace and table:

    {"checkpoints": {"canvas.accounts": {"namespace": "canvas", "table": "accounts",
      "next_since": "2024-07-13T09:30:00Z", "job_id": "...", "kind": "snapshot"}},
     "version": 1}

Fields dap does not know are kept as they are, at the top and in each checkpoint.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from .errors import ChainError, DapError, InvalidInput, StateConflict, StateCorrupt
from .jobs import CompleteIncremental, CompleteSnapshot
from .queries import IncrementalQuery, Query, SnapshotQuery, check_name
from .timestamps import format_timestamp, parse_timestamp

__all__ = [
    "next_since", "Checkpoint", "State", "advance", "since_for", "chained_query",
    "state_to_text", "state_from_text", "STATE_VERSION",
]

STATE_VERSION = 1
_CHECKPOINT_FIELDS = ("namespace", "table", "next_since", "job_id", "kind")

Key = Tuple[str, str]


def next_since(job: Any) -> datetime:
    """Where the next incremental starts: a snapshot's `at`, an incremental's `until`."""
    if isinstance(job, CompleteSnapshot):
        return job.at
    if isinstance(job, CompleteIncremental):
        return job.until
    raise ChainError("job %s is not complete: nothing to chain from" % getattr(job, "id", job))


@dataclass(frozen=True)
class Checkpoint:
    namespace: str
    table: str
    next_since: datetime
    job_id: Optional[str]
    kind: str
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class State:
    """All checkpoints, by (namespace, table); `extra` holds unknown top-level fields."""

    checkpoints: Mapping[Key, Checkpoint] = field(default_factory=dict, hash=False)
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def get(self, namespace: str, table: str) -> Optional[Checkpoint]:
        return self.checkpoints.get((namespace, table))


def _label(namespace: str, table: str) -> str:
    return "%s.%s" % (namespace, table)


def advance(state: State, namespace: str, table: str, job: Any) -> State:
    """`state` with the checkpoint of (namespace, table) moved past `job`'s result."""
    key = (namespace, table)
    old = state.checkpoints.get(key)
    label = _label(namespace, table)
    target = next_since(job)
    if isinstance(job, CompleteIncremental) and old is not None and job.since != old.next_since:
        word = "a gap" if job.since > old.next_since else "an overlap"
        raise ChainError(
            "the result of job %s starts at %s, but the checkpoint of %s is at %s: chaining it "
            "would leave %s" % (job.id, format_timestamp(job.since), label,
                                format_timestamp(old.next_since), word),
            "continue from the checkpoint (leave --since out), or take a new snapshot")
    if old is not None and target < old.next_since:
        raise ChainError(
            "the %s of job %s ends at %s, before the checkpoint of %s at %s: the checkpoint only "
            "moves forward" % (job.kind, job.id, format_timestamp(target), label,
                               format_timestamp(old.next_since)),
            "keep the checkpoint, or remove %s from the state file to start over" % label)
    checkpoints = dict(state.checkpoints)
    checkpoints[key] = Checkpoint(namespace, table, target, job.id, job.kind,
                                  dict(old.extra) if old is not None else {})
    return State(checkpoints, dict(state.extra))


def since_for(state: State, namespace: str, table: str,
              explicit_since: Union[str, datetime, None]) -> datetime:
    """Where an incremental of (namespace, table) starts: the checkpoint or `--since`."""
    checkpoint = state.get(namespace, table)
    label = _label(namespace, table)
    explicit = parse_timestamp(explicit_since) if explicit_since is not None else None
    if checkpoint is None:
        if explicit is None:
            raise InvalidInput("no checkpoint for %s and no --since" % label,
                               "take a snapshot first (dap snapshot --table %s --state ...), "
                               "or pass --since" % table)
        return explicit
    if explicit is not None and explicit != checkpoint.next_since:
        raise StateConflict(
            "--since %s differs from the checkpoint of %s at %s" % (
                format_timestamp(explicit), label, format_timestamp(checkpoint.next_since)),
            "leave --since out to continue the chain, or use another state file")
    return checkpoint.next_since


def chained_query(state: Optional[State], kind: str, namespace: str, table: str, *,
                  since: Union[str, datetime, None] = None,
                  until: Union[str, datetime, None] = None,
                  format: str = "jsonl", mode: Optional[str] = None) -> Query:
    """The next query of (namespace, table): a snapshot, or an incremental from the table's
    checkpoint in `state` (`since` only where it has none, see `since_for`; with no state,
    `since` itself)."""
    if kind == "snapshot":
        return SnapshotQuery(namespace, table, format, mode)
    if kind != "incremental":
        raise ValueError("a query is a snapshot or an incremental, not %r" % (kind,))
    if state is not None:
        since = since_for(state, namespace, table, since)
    return IncrementalQuery(namespace, table, since, until, format, mode)  # type: ignore[arg-type]


# -- the state file's text --------------------------------------------------------------------

def _checkpoint_json(checkpoint: Checkpoint) -> Dict[str, Any]:
    data = dict(checkpoint.extra)
    data.update(namespace=checkpoint.namespace, table=checkpoint.table,
                next_since=format_timestamp(checkpoint.next_since),
                job_id=checkpoint.job_id, kind=checkpoint.kind)
    return data


def state_to_text(state: State) -> str:
    """The state file's text: indented JSON, keys sorted, a trailing newline."""
    data = dict(state.extra)
    data["version"] = STATE_VERSION
    data["checkpoints"] = {_label(*key): _checkpoint_json(cp)
                           for key, cp in state.checkpoints.items()}
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _corrupt(why: str) -> StateCorrupt:
    return StateCorrupt("the state file is corrupt: %s" % why)


def _checkpoint_from(label: str, data: Any) -> Checkpoint:
    if not isinstance(data, dict):
        raise _corrupt("checkpoint %r is not an object" % label)
    missing = [name for name in ("namespace", "table", "next_since", "kind") if name not in data]
    if missing:
        raise _corrupt("checkpoint %r lacks %s" % (label, ", ".join(missing)))
    try:
        namespace = check_name("namespace", data["namespace"])
        table = check_name("table", data["table"])
        since = parse_timestamp(data["next_since"])
    except DapError as exc:
        raise _corrupt("checkpoint %r: %s" % (label, exc.message)) from None
    if label != _label(namespace, table):
        raise _corrupt("checkpoint %r is for %s" % (label, _label(namespace, table)))
    if data["kind"] not in ("snapshot", "incremental"):
        raise _corrupt("checkpoint %r has kind %r" % (label, data["kind"]))
    job_id = data.get("job_id")
    if job_id is not None and not isinstance(job_id, str):
        raise _corrupt("checkpoint %r has a job_id that is not text" % label)
    extra = {k: v for k, v in data.items() if k not in _CHECKPOINT_FIELDS}
    return Checkpoint(namespace, table, since, job_id, data["kind"], extra)


def state_from_text(text: str) -> State:
    """The state a state file's text holds; `StateCorrupt` says what is wrong with it."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise _corrupt("not JSON (%s)" % exc) from None
    if not isinstance(data, dict):
        raise _corrupt("not a JSON object")
    version = data.get("version", STATE_VERSION)
    if version != STATE_VERSION:
        raise StateCorrupt("the state file has version %r; this dap reads version %d"
                           % (version, STATE_VERSION),
                           "use the dap that wrote it, or move the file aside")
    raw = data.get("checkpoints", {})
    if not isinstance(raw, dict):
        raise _corrupt("'checkpoints' is not an object")
    checkpoints = {}
    for label, entry in raw.items():
        checkpoint = _checkpoint_from(label, entry)
        checkpoints[(checkpoint.namespace, checkpoint.table)] = checkpoint
    extra = {k: v for k, v in data.items() if k not in ("version", "checkpoints")}
    return State(checkpoints, extra)
