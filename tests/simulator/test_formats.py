"""CSV and TSV parts decode back to the JSONL values, by the contract's rules (CSV as DAP's
"Data formats" documentation describes it: null and missing are an empty field, an empty
string is `""`); a snapshot has no meta.action in any format, an incremental has it."""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from typing import List, Optional, Tuple

import pytest

from fixtures.simulator.encoders import MISSING, csv_cell, tsv_cell

from .api import Api

CANVAS = ("accounts", "users", "courses", "enrollments", "submissions")


# ----------------------------------------------------------------------------- decoders


def csv_fields(text: str) -> List[List[Tuple[str, bool]]]:
    """RFC 4180 rows of (text, was_quoted): a quoted empty string differs from an empty field."""
    rows, row, i, n = [], [], 0, len(text)
    while i < n:
        if text[i] == '"':
            i += 1
            buf = []
            while True:
                j = text.index('"', i)
                buf.append(text[i:j])
                if j + 1 < n and text[j + 1] == '"':
                    buf.append('"')
                    i = j + 2
                    continue
                i = j + 1
                break
            row.append(("".join(buf), True))
        else:
            j = i
            while j < n and text[j] not in ",\n":
                j += 1
            assert '"' not in text[i:j], "a quote inside an unquoted field"
            row.append((text[i:j], False))
            i = j
        if i < n and text[i] == ",":
            i += 1
            if i == n or text[i] == "\n":
                row.append(("", False))
        if i < n and text[i] == "\n":
            rows.append(row)
            row = []
            i += 1
    assert not row, "the last line must end with \\n"
    return rows


def decode_copy_text(field: str) -> Optional[str]:
    """One field of PostgreSQL COPY text format."""
    if field == "\\N":
        return None
    out, i = [], 0
    escapes = {"t": "\t", "n": "\n", "r": "\r", "\\": "\\", "b": "\b", "f": "\f", "v": "\v"}
    while i < len(field):
        c = field[i]
        if c == "\\":
            i += 1
            out.append(escapes.get(field[i], field[i]))
        else:
            out.append(c)
        i += 1
    return "".join(out)


def tsv_rows(text: str) -> List[List[Optional[str]]]:
    assert text.endswith("\n") and "\r" not in text
    return [[decode_copy_text(f) for f in line.split("\t")] for line in text[:-1].split("\n")]


# ----------------------------------------------------------------------------- expectations


def expected_columns(schema: dict, mode: str, action: bool = True) -> List[Tuple[str, ...]]:
    """Dotted paths of the columns; `action=False`: a snapshot's, without meta.action."""
    cols = []

    def walk(obj, path, spread):
        for name, sub in obj["properties"].items():
            if spread and sub.get("type") == "object" and "properties" in sub:
                walk(sub, path + (name,), spread)
            else:
                cols.append(path + (name,))

    props = schema["properties"]
    walk(props["meta"], ("meta",), True)
    if not action:
        cols.remove(("meta", "action"))
    walk(props["key"], ("key",), True)
    walk(props["value"], ("value",), mode == "expanded")
    return cols


def value_at(record: dict, path):
    if path[0] not in record:
        return MISSING
    node = record[path[0]]
    for name in path[1:]:
        if node is None:
            return None
        node = node.get(name)
    return node


def as_text(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(",", ":"), ensure_ascii=False)
    if isinstance(v, float):
        return json.dumps(v)
    return str(v)


def run_all_formats(api: Api, namespace: str, table: str, mode: str, since: Optional[str]):
    body = {"mode": mode}
    if since:
        body["since"] = since
    jobs = {fmt: api.run(namespace, table, dict(body, format=fmt))
            for fmt in ("jsonl", "csv", "tsv")}
    return {fmt: [p.decode("utf-8") for p in api.parts(job)] for fmt, job in jobs.items()}


#: what makes DAP's CSV quote a string (besides being empty)
CSV_SPECIAL = ('"', ",", "\t", "\n", "\r")


# ----------------------------------------------------------------------------- tests


@pytest.mark.parametrize("mode", ["expanded", "condensed"])
@pytest.mark.parametrize("table", CANVAS)
def test_csv_and_tsv_carry_the_jsonl_values(make_simulator, table, mode):
    sim = make_simulator(changes_per_step=25, rows_per_part=70, job_wait=0, job_run=0)
    api = Api(sim)
    schema = api.schema("canvas", table).json["schema"]
    since = sim.frontier
    sim.advance(2)
    for window in (None, since):  # a snapshot, then an incremental with deletes
        cols = expected_columns(schema, mode, action=window is not None)
        names = [".".join(c) for c in cols]
        parts = run_all_formats(api, "canvas", table, mode, window)
        records = [json.loads(line) for p in parts["jsonl"] for line in p.splitlines()]
        assert len(parts["csv"]) == len(parts["tsv"]) == len(parts["jsonl"])
        if window:
            assert any(r["meta"]["action"] == "D" for r in records)
            assert all(r["meta"]["action"] in ("U", "D") for r in records)
        else:
            assert all("action" not in r["meta"] for r in records)

        csv_rows = []
        for part in parts["csv"]:
            rows = csv_fields(part)
            assert [t for t, _ in rows[0]] == names, "every part starts with its header"
            assert [[t for t, _ in r] for r in rows] == \
                list(csv.reader(io.StringIO(part, newline="")))
            csv_rows += rows[1:]
        tsv_rows_ = []
        for part in parts["tsv"]:
            rows = tsv_rows(part)
            assert rows[0] == names
            tsv_rows_ += rows[1:]
        assert len(csv_rows) == len(tsv_rows_) == len(records)

        for record, crow, trow in zip(records, csv_rows, tsv_rows_):
            assert len(crow) == len(trow) == len(cols)
            for path, (ctext, quoted), ttext in zip(cols, crow, trow):
                v = value_at(record, path)
                if v is MISSING or v is None:  # a deleted record's value, or null
                    assert (ctext, quoted) == ("", False) and ttext is None
                else:
                    assert ctext == as_text(v) and ttext == as_text(v), (path, v)
                    if isinstance(v, str):
                        special = v == "" or any(c in v for c in CSV_SPECIAL)
                        assert quoted == special, (path, v)


def test_web_logs_in_tsv(simulator):
    api = Api(simulator)
    parts = run_all_formats(api, "canvas_logs", "web_logs", "expanded", None)
    records = [json.loads(line) for p in parts["jsonl"] for line in p.splitlines()]
    header = tsv_rows(parts["tsv"][0])[0]
    assert header[:2] == ["meta.ts", "key.id"]
    rows = [r for p in parts["tsv"] for r in tsv_rows(p)[1:]]
    assert [r[1] for r in rows] == [rec["key"]["id"] for rec in records]


def test_csv_cells():
    assert csv_cell(None) == "" and csv_cell(MISSING) == ""  # no characters at all
    assert csv_cell("") == '""'
    assert csv_cell("NULL") == "NULL" and csv_cell("null") == "null"  # ordinary strings
    assert csv_cell('say "hi"') == '"say ""hi"""'
    assert csv_cell("a,b") == '"a,b"'
    assert csv_cell(" lead") == " lead" and csv_cell("trail ") == "trail "
    assert csv_cell("a\tb") == '"a\tb"' and csv_cell("a\nb") == '"a\nb"'
    assert csv_cell("a\rb") == '"a\rb"'
    assert csv_cell("\x01") == "\x01"
    assert csv_cell("back\\slash") == "back\\slash"
    assert csv_cell("Zoë 🎓") == "Zoë 🎓"
    assert csv_cell(True) == "true" and csv_cell(False) == "false"
    assert csv_cell(12) == "12" and csv_cell(87.5) == "87.5" and csv_cell(1e-7) == "1e-07"
    assert csv_cell([1, 2]) == '"[1,2]"'
    assert csv_cell({"a": "é"}) == '"{""a"":""é""}"'
    assert csv_cell([]) == "[]"


def test_tsv_cells():
    assert tsv_cell(None) == "\\N" and tsv_cell(MISSING) == "\\N"
    assert tsv_cell("") == ""
    assert tsv_cell("\\N") == "\\\\N"
    assert tsv_cell("a\tb\nc\rd\\e") == "a\\tb\\nc\\rd\\\\e"
    assert tsv_cell('quote " and , comma') == 'quote " and , comma'
    assert tsv_cell(True) == "true" and tsv_cell(3) == "3" and tsv_cell(0.5) == "0.5"
    assert tsv_cell({"a": "x\ny"}) == '{"a":"x\\\\ny"}'


# ----------------------------------------------------------------------------- meta.action


def header_of(fmt: str, part: bytes) -> List[str]:
    first = part.decode("utf-8").split("\n", 1)[0]
    if fmt == "csv":
        return next(csv.reader(io.StringIO(first + "\n", newline="")))
    return first.split("\t")


def meta_actions(fmt: str, part: bytes) -> Optional[List[Optional[str]]]:
    """The meta.action of every record of a part, or None when the part has no such field
    or column at all."""
    if fmt == "jsonl":
        records = [json.loads(line) for line in part.decode("utf-8").splitlines()]
        has = {"action" in r["meta"] for r in records}
        assert len(has) <= 1, "every record of a part has the same shape"
        return [r["meta"]["action"] for r in records] if has == {True} else None
    if fmt == "parquet":
        pandas = pytest.importorskip("pandas")
        frame = pandas.read_parquet(io.BytesIO(part))
        assert list(frame.columns)[0] == "meta.ts"
        return frame["meta.action"].tolist() if "meta.action" in frame.columns else None
    header = header_of(fmt, part)
    assert header[0] == "meta.ts"
    if "meta.action" not in header:
        return None
    assert header[1] == "meta.action"
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(part.decode("utf-8"), newline="")))[1:]
    else:
        rows = tsv_rows(part.decode("utf-8"))[1:]
    return [row[1] for row in rows]


def served_formats():
    formats = ["jsonl", "csv", "tsv"]
    try:
        import fastparquet  # noqa: F401
        import pandas  # noqa: F401
        formats.append("parquet")
    except ImportError:
        pass
    return formats


@pytest.mark.parametrize("mode", ["expanded", "condensed"])
@pytest.mark.parametrize("snapshot_action", [False, True])
def test_meta_action_in_snapshots_only_with_the_option_in_incrementals_always(
        make_simulator, mode, snapshot_action):
    """As the real DAP: a snapshot's records have meta.ts only and its CSV/TSV/Parquet no
    meta.action column; an incremental's have U or D. `snapshot_action` brings U back."""
    options = {"snapshot_action": True} if snapshot_action else {}
    sim = make_simulator(changes_per_step=20, **options)
    api = Api(sim)
    since = sim.frontier
    sim.advance(2)
    for fmt in served_formats():
        snapshot = api.run("canvas", "users", {"format": fmt, "mode": mode})
        parts = [meta_actions(fmt, p) for p in api.parts(snapshot)]
        if snapshot_action:
            assert all(p is not None and set(p) == {"U"} for p in parts), fmt
            assert sum(map(len, parts)) == len(sim.current_state("canvas", "users"))
        else:
            assert parts and all(p is None for p in parts), fmt
        incremental = api.run("canvas", "users", {"format": fmt, "mode": mode, "since": since})
        actions = [a for p in api.parts(incremental) for a in meta_actions(fmt, p)]
        assert set(actions) == {"U", "D"}, fmt


def test_snapshot_action_on_the_command_line():
    from .test_cli import ROOT, _Handle

    for args, want in (([], None), (["--snapshot-action"], "U")):
        proc = subprocess.Popen([sys.executable, "-m", "fixtures.simulator", "--port", "0",
                                 "--job-wait", "0", "--job-run", "0", *args],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True)
        try:
            api = Api(_Handle(proc.stdout.readline().strip()))
            job = api.run("canvas", "accounts", {"format": "jsonl"})
            records = api.records(job)
            assert records and {r["meta"].get("action") for r in records} == {want}
            csv_job = api.run("canvas", "accounts", {"format": "csv"})
            header = header_of("csv", api.parts(csv_job)[0])
            assert ("meta.action" in header) == (want is not None)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            proc.stdout.close()
