"""Feeding a job's parts to the Parquet writer as the client does, for the writer's tests: a
part at a time, each in pieces that cut its lines, the file committed, or aborted (nothing
left) when the writer refuses a part."""
from __future__ import annotations

from dap_core.shell.parquet import PARQUET_BATCH_ROWS, ParquetWriter
from dap_core.shell.sinks import AtomicFile

#: a table of every flat kind of column: integer key, text, number, boolean, time, array
FLAT_SCHEMA = {"type": "object", "properties": {
    "key": {"type": "object", "properties": {"id": {"type": "integer"}}},
    "value": {"type": "object", "properties": {
        "name": {"type": "string"},
        "score": {"type": "number"},
        "active": {"type": "boolean"},
        "at": {"type": "string", "format": "date-time"},
        "tags": {"type": "array", "items": {"type": "string"}}}},
    "meta": {"type": "object", "properties": {
        "ts": {"type": "string", "format": "date-time"},
        "action": {"type": "string", "enum": ["U", "D"]}}}}}


def write_parts(path, schema, parts, *, mode=None, snapshot=False,
                batch_rows=PARQUET_BATCH_ROWS, piece=4096) -> ParquetWriter:
    """``parts`` (bytes, each a whole part) written to ``path`` by a ``ParquetWriter`` of
    ``schema``, each fed ``piece`` bytes at a time; the writer, committed."""
    writer = ParquetWriter(AtomicFile(str(path)), {"schema": schema, "version": 1}, mode,
                           batch_rows=batch_rows, snapshot=snapshot)
    try:
        for index, data in enumerate(parts):
            writer.begin_part(index)
            for at in range(0, len(data), piece):
                writer.feed(data[at:at + piece])
            writer.end_part()
        writer.finish()
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return writer
