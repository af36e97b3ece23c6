"""Output file names and the metadata that goes beside each output.

    canvas.accounts.snapshot.20240713T093000Z.csv
    canvas.accounts.incremental.20240713T093000Z_20240714T000000Z.jsonl
    canvas.accounts.snapshot.20240713T093000Z.csv.meta.json
    accounts.schema.json

Names sort by table and then by time, and say what they hold without opening them.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

from .chain import next_since
from .jobs import CompleteIncremental, CompleteSnapshot
from .queries import check_name, parse_format
from .timestamps import format_timestamp, format_timestamp_basic

__all__ = ["output_name", "meta_name", "job_metadata", "schema_name", "schema_metadata",
           "result_line", "summary_line"]


def _window(job: Any) -> str:
    if isinstance(job, CompleteSnapshot):
        return "snapshot.%s" % format_timestamp_basic(job.at)
    if isinstance(job, CompleteIncremental):
        return "incremental.%s_%s" % (format_timestamp_basic(job.since),
                                      format_timestamp_basic(job.until))
    raise ValueError("only a complete job has an output, not %r" % (job,))


def output_name(namespace: str, table: str, job: Any, format: str) -> str:
    """The file name of a result: namespace, table, kind, UTC time(s) in basic format, format."""
    return "%s.%s.%s.%s" % (check_name("namespace", namespace), check_name("table", table),
                            _window(job), parse_format(format))


def meta_name(output_name: str) -> str:
    """The metadata sidecar of an output file."""
    return output_name + ".meta.json"


def schema_name(table: str) -> str:
    """The file `dap schema` writes a table's schema to: `<table>.schema.json` (as the
    command's help and the README say; one namespace per output directory)."""
    return "%s.schema.json" % check_name("table", table)


def schema_metadata(namespace: str, table: str, schema: Dict[str, Any],
                    file: Optional[str]) -> Dict[str, Any]:
    """What `dap schema` tells about a schema it wrote (its stdout line)."""
    return {"namespace": namespace, "table": table, "version": schema.get("version"),
            "file": file}


def job_metadata(namespace: str, table: str, job: Any, format: str, rows: Optional[int],
                 file: Optional[str]) -> Dict[str, Any]:
    """What a run tells about its result (stdout line and sidecar): enough to chain the next."""
    data: Dict[str, Any] = {"job_id": job.id, "namespace": namespace, "table": table,
                            "kind": job.kind}
    if isinstance(job, CompleteSnapshot):
        data["at"] = format_timestamp(job.at)
    else:
        data["since"] = format_timestamp(job.since)
        data["until"] = format_timestamp(job.until)
    data.update(next_since=format_timestamp(next_since(job)), schema_version=job.schema_version,
                format=parse_format(format), rows=rows, file=file)
    return data


def result_line(metadata: Dict[str, Any], path: Optional[str],
                meta_path: Optional[str]) -> Dict[str, Any]:
    """The stdout line of a result written to files: the sidecar's metadata with `file` the
    output's path (the sidecar holds its base name) and `meta_file` the sidecar's path."""
    return dict(metadata, file=path, meta_file=meta_path)


def summary_line(metadata: Dict[str, Any], where: str) -> str:
    """The line a person reads on stderr about a result written to `where`."""
    if metadata["kind"] == "snapshot":
        when = "at %s" % metadata["at"]
    else:
        when = "since %s until %s" % (metadata["since"], metadata["until"])
    rows = metadata["rows"]
    return "%s.%s: %s %s, %d row%s -> %s (next since %s)" % (
        metadata["namespace"], metadata["table"], metadata["kind"], when, rows,
        "s" * (rows != 1), where, metadata["next_since"])

