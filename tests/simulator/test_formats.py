"""CSV and TSV parts decode back to the JSONL values, by the contract's rules."""
from __future__ import annotations

import csv
import io
import json
from typing import List, Optional, Tuple

import pytest

from fixtures.simulator.encoders import MISSING, csv_cell, tsv_cell

from .api import Api

CANVAS = ("accounts", "users", "courses", "enrollments", "submissions")


# ----------------------------------------------------------------------------- decoders


def csv_fields(text: str) -> List[List[Tuple[str, bool]]]:
    """RFC 4180 rows of (text, was_quoted): a quoted NULL differs from an unquoted one."""
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


def expected_columns(schema: dict, mode: str) -> List[Tuple[str, ...]]:
    cols = []

    def walk(obj, path, spread):
        for name, sub in obj["properties"].items():
            if spread and sub.get("type") == "object" and "properties" in sub:
                walk(sub, path + (name,), spread)
            else:
                cols.append(path + (name,))

    props = schema["properties"]
    walk(props["meta"], ("meta",), True)
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
    jobs = {fmt: api.run(namespace, table, dict(body, format=fmt)) for fmt in ("jsonl", "csv", "tsv")}
    return {fmt: [p.decode("utf-8") for p in api.parts(job)] for fmt, job in jobs.items()}


# ----------------------------------------------------------------------------- tests


@pytest.mark.parametrize("mode", ["expanded", "condensed"])
@pytest.mark.parametrize("table", CANVAS)
def test_csv_and_tsv_carry_the_jsonl_values(make_simulator, table, mode):
    sim = make_simulator(changes_per_step=25, rows_per_part=70, job_wait=0, job_run=0)
    api = Api(sim)
    schema = api.schema("canvas", table).json["schema"]
    cols = expected_columns(schema, mode)
    names = [".".join(c) for c in cols]
    since = sim.frontier
    sim.advance(2)
    for window in (None, since):  # a snapshot, then an incremental with deletes
        parts = run_all_formats(api, "canvas", table, mode, window)
        records = [json.loads(line) for p in parts["jsonl"] for line in p.splitlines()]
        assert len(parts["csv"]) == len(parts["tsv"]) == len(parts["jsonl"])
        if window:
            assert any(r["meta"]["action"] == "D" for r in records)

        csv_rows = []
        for part in parts["csv"]:
            rows = csv_fields(part)
            assert [t for t, _ in rows[0]] == names, "every part starts with its header"
            assert [[t for t, _ in r] for r in rows] == list(csv.reader(io.StringIO(part, newline="")))
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
                if v is MISSING:
                    assert (ctext, quoted) == ("", False) and ttext is None
                elif v is None:
                    assert (ctext, quoted) == ("NULL", False) and ttext is None
                else:
                    assert ctext == as_text(v) and ttext == as_text(v), (path, v)
                    if v == "" or v == "NULL":
                        assert quoted


def test_web_logs_in_tsv(simulator):
    api = Api(simulator)
    parts = run_all_formats(api, "canvas_logs", "web_logs", "expanded", None)
    records = [json.loads(line) for p in parts["jsonl"] for line in p.splitlines()]
    rows = [r for p in parts["tsv"] for r in tsv_rows(p)[1:]]
    assert [r[2] for r in rows] == [rec["key"]["id"] for rec in records]


def test_csv_cells():
    assert csv_cell(None) == "NULL"
    assert csv_cell(MISSING) == ""
    assert csv_cell("") == '""'
    assert csv_cell("NULL") == '"NULL"'
    assert csv_cell("null") == "null"
    assert csv_cell('say "hi"') == '"say ""hi"""'
    assert csv_cell("a,b") == '"a,b"'
    assert csv_cell(" lead") == '" lead"' and csv_cell("trail ") == '"trail "'
    assert csv_cell("a\tb") == '"a\tb"' and csv_cell("a\nb") == '"a\nb"' and csv_cell("a\rb") == '"a\rb"'
    assert csv_cell("\x01") == '"\x01"'
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
