"""What "survived" means, as plain checks over an output directory (no pytest, no dap_core).

Shared by the tests in this directory and the soak (`bench/soak.py`), so both judge a run
the same way.  Everything here reads files only: it never trusts what `dap` says about them.

* :func:`inspect_directory` parses every output of a directory fully: a data file must parse
  in its format and hold as many records as its ``.meta.json`` sidecar says; a sidecar must be
  valid JSON naming a data file that exists.  Temporary files (``.<name>.<random>.part``,
  what ``dap_core.shell.sinks.AtomicFile`` writes before its rename) are listed apart and
  never read as output.
* :func:`check_state` reads a ``--state`` file: valid JSON, and each checkpoint points at an
  output (by job id and next_since) that exists whole.
* :func:`chain_of` orders a table's outputs along the chain (snapshot ``at`` -> first
  ``since``, each ``until`` -> the next ``since``) ending at the checkpoint;
  :func:`reconstruct` applies them (``U`` upserts by key, ``D`` removes) and
  :func:`compare_states` counts rows lost and changes applied twice.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
from typing import Dict, Iterable, List, Optional, Tuple

__all__ = [
    "TEMP_NAME", "FORMATS", "Listing", "format_of", "count_rows", "inspect_directory",
    "check_state", "read_records", "key_text", "chain_of", "reconstruct", "compare_states",
    "Comparison", "strip_volatile",
]

#: a temporary file of an atomic write: ``.`` + final name + ``.`` + random + ``.part``
TEMP_NAME = re.compile(r"^\..+\.[^.]+\.part$")
FORMATS = ("jsonl", "json", "csv", "tsv", "parquet")
META_SUFFIX = ".meta.json"
#: metadata fields that differ between two simulators given the same seed (uuid4 job ids)
#: or between two directories (paths)
VOLATILE = ("job_id", "meta_file")


def format_of(name: str) -> Optional[str]:
    ext = name.rsplit(".", 1)[-1] if "." in name else ""
    return ext if ext in FORMATS else None


class BadOutput(Exception):
    """A file under a final name that is not a whole output."""


def _text(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadOutput("%s is not UTF-8 (%s)" % (name, exc)) from None


def count_rows(path: str, fmt: Optional[str] = None) -> int:
    """Parse a data file fully and return its record count; :class:`BadOutput` when it is
    cut short or malformed anywhere."""
    name = os.path.basename(path)
    fmt = fmt or format_of(name)
    with open(path, "rb") as f:
        data = f.read()
    if fmt == "jsonl":
        if data and not data.endswith(b"\n"):
            raise BadOutput("%s does not end with a newline (cut short?)" % name)
        rows = 0
        for number, line in enumerate(_text(data, name).split("\n"), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise BadOutput("%s line %d is not JSON: %s" % (name, number, exc)) from None
            if not isinstance(record, dict) or "key" not in record or "meta" not in record:
                raise BadOutput("%s line %d is not a record" % (name, number))
            rows += 1
        return rows
    if fmt == "json":
        try:
            records = json.loads(_text(data, name))
        except ValueError as exc:
            raise BadOutput("%s is not JSON: %s" % (name, exc)) from None
        if not isinstance(records, list) or not all(
                isinstance(r, dict) and "key" in r and "meta" in r for r in records):
            raise BadOutput("%s is not a JSON array of records" % name)
        return len(records)
    if fmt == "csv":
        text = _text(data, name)
        if not text.endswith("\n"):
            raise BadOutput("%s does not end with a newline (cut short?)" % name)
        try:
            rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
        except csv.Error as exc:
            raise BadOutput("%s is not CSV: %s" % (name, exc)) from None
        if not rows or not rows[0] or rows[0][0] != "meta.ts":
            raise BadOutput("%s lacks its header row" % name)
        width = len(rows[0])
        for number, row in enumerate(rows[1:], 2):
            if len(row) != width:
                raise BadOutput("%s row %d has %d fields, the header %d" % (
                    name, number, len(row), width))
        return len(rows) - 1
    if fmt == "tsv":
        text = _text(data, name)
        if not text.endswith("\n"):
            raise BadOutput("%s does not end with a newline (cut short?)" % name)
        lines = text[:-1].split("\n")
        if not lines or not lines[0].startswith("meta.ts\t"):
            raise BadOutput("%s lacks its header row" % name)
        width = lines[0].count("\t")
        for number, line in enumerate(lines[1:], 2):
            if line.count("\t") != width:
                raise BadOutput("%s line %d has %d fields, the header %d" % (
                    name, number, line.count("\t") + 1, width + 1))
        return len(lines) - 1
    if fmt == "parquet":
        if not data.startswith(b"PAR1") or not data.endswith(b"PAR1"):
            raise BadOutput("%s is not a whole Parquet file" % name)
        import fastparquet  # only for parquet outputs
        return int(fastparquet.ParquetFile(path).count())
    raise BadOutput("%s: unknown format" % name)


class Listing:
    """What :func:`inspect_directory` found."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.data: Dict[str, int] = {}        # data file name -> rows (parsed fully)
        self.meta: Dict[str, dict] = {}       # data file name -> its sidecar's JSON
        self.temporary: List[str] = []        # leftovers of atomic writes
        self.unpaired: List[str] = []         # whole data files without a sidecar
        self.other: List[str] = []            # anything else (not ours to judge)
        self.problems: List[str] = []         # partial or malformed files under final names

    def __repr__(self) -> str:
        return "Listing(%d data, %d meta, %d temporary, %d problems)" % (
            len(self.data), len(self.meta), len(self.temporary), len(self.problems))

    def outputs(self, namespace: Optional[str] = None, table: Optional[str] = None) -> List[dict]:
        """The sidecars of whole outputs (of one table)."""
        return [m for name, m in sorted(self.meta.items())
                if (namespace is None or m.get("namespace") == namespace)
                and (table is None or m.get("table") == table)]


def inspect_directory(directory: str, state_names: Iterable[str] = ()) -> Listing:
    """Parse every file of ``directory`` (see the module's doc).  ``state_names`` are file
    names to leave alone (a state file kept in the same directory)."""
    listing = Listing(directory)
    skip = set(state_names)
    names = sorted(os.listdir(directory)) if os.path.isdir(directory) else []
    for name in names:
        path = os.path.join(directory, name)
        if name in skip or os.path.isdir(path):
            continue
        if TEMP_NAME.match(name):
            listing.temporary.append(name)
            continue
        if name.endswith(META_SUFFIX):
            data_name = name[:-len(META_SUFFIX)]
            try:
                with open(path, "rb") as f:
                    meta = json.loads(f.read().decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as exc:
                listing.problems.append("%s is not valid JSON: %s" % (name, exc))
                continue
            if not isinstance(meta, dict):
                listing.problems.append("%s is not a JSON object" % name)
                continue
            listing.meta[data_name] = meta
            continue
        if format_of(name) is None:
            if name.endswith(".schema.json"):
                continue
            listing.other.append(name)
            continue
        try:
            listing.data[name] = count_rows(path)
        except BadOutput as exc:
            listing.problems.append(str(exc))
    for data_name, meta in sorted(listing.meta.items()):
        if data_name not in listing.data:
            if os.path.exists(os.path.join(directory, data_name)):
                continue  # already reported as a problem
            listing.problems.append("%s%s names a data file that does not exist"
                                    % (data_name, META_SUFFIX))
            continue
        if os.path.basename(str(meta.get("file", data_name))) != data_name:
            listing.problems.append("%s%s says its file is %r" % (data_name, META_SUFFIX,
                                                                  meta.get("file")))
        if meta.get("rows") != listing.data[data_name]:
            listing.problems.append("%s holds %d records, its sidecar says %r" % (
                data_name, listing.data[data_name], meta.get("rows")))
    listing.unpaired = sorted(n for n in listing.data if n not in listing.meta)
    return listing


def check_state(path: str, listing: Listing) -> Tuple[Optional[dict], List[str]]:
    """(the state file's JSON or None when absent, problems).  A checkpoint must point at a
    whole output of ``listing``: same job id, same next_since, data and sidecar present."""
    if not os.path.exists(path):
        return None, []
    try:
        with open(path, "rb") as f:
            state = json.loads(f.read().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        return None, ["the state file %s is not valid JSON: %s" % (path, exc)]
    problems = []
    checkpoints = state.get("checkpoints") if isinstance(state, dict) else None
    if not isinstance(checkpoints, dict):
        return None, ["the state file %s has no checkpoints object" % path]
    for label, cp in sorted(checkpoints.items()):
        if not isinstance(cp, dict):
            problems.append("checkpoint %s is not an object" % label)
            continue
        found = [m for m in listing.outputs(cp.get("namespace"), cp.get("table"))
                 if m.get("job_id") == cp.get("job_id")
                 and m.get("next_since") == cp.get("next_since")
                 and m.get("kind") == cp.get("kind")]
        if not found:
            problems.append("checkpoint %s (job %s, next_since %s) points at no whole output"
                            % (label, cp.get("job_id"), cp.get("next_since")))
    return state, problems


# -- reconstruction ---------------------------------------------------------------------------

def key_text(key: dict) -> str:
    """The simulator's key text: JSON, sorted keys, compact."""
    return json.dumps(key, sort_keys=True, separators=(",", ":"))


def read_records(path: str) -> List[dict]:
    """The records of a jsonl or json output."""
    fmt = format_of(os.path.basename(path))
    with open(path, "rb") as f:
        data = f.read().decode("utf-8")
    if fmt == "json":
        return json.loads(data)
    if fmt == "jsonl":
        return [json.loads(line) for line in data.split("\n") if line.strip()]
    raise ValueError("records can be read back from jsonl and json outputs, not %s" % fmt)


def chain_of(listing: Listing, namespace: str, table: str,
             checkpoint: Optional[dict] = None) -> Tuple[List[dict], List[str]]:
    """(the table's outputs in chain order, problems).

    With a ``checkpoint`` (the state file's entry) the chain is walked back from the output
    it points at; without one, from the output no other incremental continues.  Each step
    back takes the output whose next_since is this one's since, until a snapshot.  One job
    written in two formats (json and jsonl ask DAP for the same jsonl job) is one link;
    empty windows ``[u, u)`` (an incremental asked when nothing was new) are links too, and
    come after the window that ends at ``u``.
    """
    outputs: List[dict] = []
    jobs = set()
    for m in listing.outputs(namespace, table):
        if m.get("job_id") not in jobs:  # one output per job
            jobs.add(m.get("job_id"))
            outputs.append(m)
    problems: List[str] = []
    if not outputs:
        return [], ["no outputs of %s.%s" % (namespace, table)]
    if checkpoint is not None:
        ends = [m for m in outputs if m.get("job_id") == checkpoint.get("job_id")
                and m.get("next_since") == checkpoint.get("next_since")]
    else:
        ends = [m for m in outputs if not _empty(m) and not any(
            o is not m and o.get("kind") == "incremental" and not _empty(o)
            and o.get("since") == m.get("next_since") for o in outputs)]
        if len(ends) == 1:  # empty windows after it come later in the chain
            ends = [m for m in outputs if _empty(m) and m.get("since") == ends[0]["next_since"]
                    ] or ends
    if len(ends) != 1:
        return [], ["%s.%s: %d outputs could end the chain" % (namespace, table, len(ends))]
    chain = [ends[0]]
    while chain[-1].get("kind") == "incremental":
        since = chain[-1].get("since")
        before = [m for m in outputs if m.get("next_since") == since and m not in chain]
        empties = [m for m in before if _empty(m)]
        others = [m for m in before if not _empty(m)]
        chain.extend(empties)
        if len(others) != 1:
            problems.append("%s.%s: %d outputs end where %s starts (%s)" % (
                namespace, table, len(others), chain[-1].get("file"), since))
            break
        chain.append(others[0])
    chain.reverse()
    return chain, problems


def _empty(meta: dict) -> bool:
    """An incremental of an empty window [u, u)."""
    return meta.get("kind") == "incremental" and meta.get("since") == meta.get("until")


def reconstruct(directory: str, chain: List[dict]) -> Tuple[Dict[str, dict], int]:
    """Apply the chain's outputs in order: (key text -> latest record, changes applied twice).

    A change is a (key, meta.ts, action) triple; the windows of a chain never overlap, so
    one seen in two outputs was delivered twice."""
    state: Dict[str, dict] = {}
    seen = set()
    duplicated = 0
    for meta in chain:
        path = os.path.join(directory, os.path.basename(str(meta["file"])))
        for record in read_records(path):
            key = key_text(record["key"])
            change = (key, record["meta"].get("ts"), record["meta"].get("action"))
            if change in seen:
                duplicated += 1
            seen.add(change)
            if record["meta"].get("action") == "D":
                state.pop(key, None)
            else:  # a snapshot's record (meta.ts only) or an incremental's U
                meta = {k: v for k, v in record["meta"].items() if k != "action"}
                state[key] = dict(record, meta=meta)  # as the simulator's state has it
    return state, duplicated


class Comparison:
    def __init__(self, lost: List[str], extra: List[str], stale: List[str]) -> None:
        self.lost = lost      # keys in the truth, missing from the reconstruction
        self.extra = extra    # keys in the reconstruction the truth deleted (or never had)
        self.stale = stale    # keys whose reconstructed version is not the latest

    @property
    def rows_lost(self) -> int:
        """Changes the reconstruction misses (an insert, an update or a delete)."""
        return len(self.lost) + len(self.extra) + len(self.stale)

    def __bool__(self) -> bool:
        return self.rows_lost == 0

    def __repr__(self) -> str:
        return "Comparison(lost=%d %s, extra=%d %s, stale=%d %s)" % (
            len(self.lost), self.lost[:3], len(self.extra), self.extra[:3],
            len(self.stale), self.stale[:3])


def compare_states(got: Dict[str, dict], truth: Dict[str, dict]) -> Comparison:
    lost = sorted(k for k in truth if k not in got)
    extra = sorted(k for k in got if k not in truth)
    stale = sorted(k for k in truth if k in got and got[k] != truth[k])
    return Comparison(lost, extra, stale)


def strip_volatile(metadata: dict) -> dict:
    """Metadata without what two equal runs cannot share: the job id (a uuid4 of the
    service) and paths (the ``file`` fields reduced to base names)."""
    out = {k: v for k, v in metadata.items() if k not in VOLATILE}
    if "file" in out and isinstance(out["file"], str):
        out["file"] = os.path.basename(out["file"])
    return out
