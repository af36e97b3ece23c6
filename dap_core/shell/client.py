"""The library's ``Client``: a session with the DAP API, usable without the command line.

Example::

    from dap_core import Client, SnapshotQuery, resolve_credentials

    with Client("https://api-gateway.instructure.com",
                resolve_credentials(client_id="us-east-1#...", client_secret="...")) as dap:
        query = SnapshotQuery("canvas", "accounts", format="csv")
        job = dap.run(query)
        result = dap.download(job, query, "downloads")
        print(result.path, result.rows, result.metadata["next_since"])

The client never prints, never exits, and keeps its state to itself; errors are the
``dap_core.errors`` classes.  Logs go to the ``dap`` logger (never a secret or a token).
"""
from __future__ import annotations

import functools
import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, Dict, Iterator, Optional, Tuple

from .. import errors, layout
from ..credentials import Credentials
from ..policy import JOB_DEADLINE
from ..queries import check_stdout_format
from .download import ObjectUrls, fetch_part
from . import pipeline
from .http import DEFAULT_BASE_URL, DEFAULT_TIMEOUT, Transport, check_base_url, check_object_url
from .readahead import ReadAhead
from .session import Session
from .sinks import SPOOL_MEMORY, AtomicFile, ByteStream, StdoutSink, TableNamingStream
from .parquet import ParquetWriter, require_parquet
from .writers import StreamWriter

__all__ = ["Client", "DownloadResult", "Progress"]

log = logging.getLogger("dap.client")

@dataclass(frozen=True)
class DownloadResult:
    """What ``Client.download`` (or ``write_records``) wrote.

    ``path`` and ``meta_path`` are None when the records went to a stream; ``metadata`` is
    the job's metadata (``layout.job_metadata``: job id, kind, at or since/until,
    ``next_since``, schema version, format, rows, file)."""

    path: Optional[str]
    meta_path: Optional[str]
    rows: int
    metadata: Dict[str, Any] = field(default_factory=dict)


class Progress:
    """Receives progress events; the default does nothing (the CLI draws a line on a tty).

    ``job``: a query job of ``label`` (``namespace.table``) is in ``state`` (at its start
    and after each poll); ``wait``: the client is about to wait ``seconds`` because of
    ``reason`` (DAP's rate limit, a retry); the others follow a download."""

    def job(self, label: str, job_id: str, state: str) -> None: ...

    def wait(self, label: str, reason: str, seconds: float) -> None: ...

    def start(self, label: str, parts: int) -> None: ...

    def part(self, index: int) -> None: ...

    def add_bytes(self, count: int) -> None: ...

    def rows(self, count: int) -> None: ...

    def end(self) -> None: ...


def _check_ca_bundle(path: Optional[str]) -> Optional[str]:
    if path is None:
        return None
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise errors.InvalidInput("the CA bundle %s is not a readable file" % path,
                                  "pass a PEM file of CA certificates to --ca-bundle")
    import ssl
    try:
        ssl.create_default_context(cafile=path)
    except (ssl.SSLError, ValueError, UnicodeDecodeError) as exc:
        raise errors.InvalidInput("the CA bundle %s holds no usable CA certificate (%s)" % (
            path, errors.one_line(getattr(exc, "reason", None) or exc, 120)),
            "pass a PEM file of CA certificates to --ca-bundle") from None
    return path


class Client:
    """A session with the DAP Query API.

    :param base_url: the API (default ``https://api-gateway.instructure.com``); plain http
        only to loopback unless ``allow_insecure_http``.
    :param credentials: from :func:`dap_core.resolve_credentials`.
    :param ca_bundle: a PEM file of CA certificates to trust instead of the default store.
    :param sleep, rng, clock, monotonic: the waiting, randomness and clocks used (tests
        make sleeping instant).
    :param retry_policy: a ``dap_core.policy.RetryPolicy`` (bounded retries, growing delays).
    :param pacing: wait rather than exceed the service's per-minute limits (default on);
        ``pace_window`` is the limits' window in seconds (60).
    :param job_deadline: seconds a query job may stay pending before ``run`` gives up with
        ``ServiceUnavailable`` (default ``policy.JOB_DEADLINE``, 6 hours; None: no limit).
    :param progress: a :class:`Progress` receiving events while downloading.
    """

    def __init__(self, base_url: str = DEFAULT_BASE_URL, credentials: Optional[Credentials] = None,
                 *, ca_bundle: Optional[str] = None, allow_insecure_http: bool = False,
                 timeout: Tuple[float, float] = DEFAULT_TIMEOUT, retry_policy: Any = None,
                 sleep: Callable[[float], None] = time.sleep, rng: Any = None,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic,
                 pacing: bool = True, pace_window: float = 60.0,
                 job_deadline: Optional[float] = JOB_DEADLINE,
                 progress: Optional[Progress] = None) -> None:
        if credentials is None:
            raise errors.MissingCredentials("no credentials")
        self.base_url = check_base_url(base_url, allow_insecure_http)
        self.allow_insecure_http = allow_insecure_http
        self._transport = Transport(ca_bundle=_check_ca_bundle(ca_bundle), timeout=timeout,
                                    retry_policy=retry_policy, sleep=sleep, rng=rng,
                                    monotonic=monotonic, clock=clock)
        self._session = Session(self._transport, self.base_url, credentials, pacing=pacing,
                                pace_window=pace_window, job_deadline=job_deadline)
        self.progress = progress or Progress()
        # tables in other threads download at most this many at once (memory stays flat)
        self._download_slots = threading.BoundedSemaphore(pipeline.DOWNLOADS_AT_ONCE)
        self._transport.progress = self.progress

    def __repr__(self) -> str:
        return "Client(%r)" % (self.base_url,)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._transport.close()

    @property
    def session(self) -> Session:
        return self._session

    def secrets(self) -> Tuple[str, ...]:
        """Texts that must never be shown (for a log filter): secret, key, token."""
        return self._session.secrets()

    # -- the API -------------------------------------------------------------------------------
    def list_tables(self, namespace: str = "canvas") -> list:
        """The table names of a namespace."""
        return self._session.list_tables(namespace)

    def get_schema(self, namespace: str, table: str) -> Dict[str, Any]:
        """``{"schema": <JSON Schema>, "version": <int>}`` of a table."""
        return self._session.get_schema(namespace, table)

    def run(self, query) -> Any:
        """Start ``query`` (``SnapshotQuery`` / ``IncrementalQuery``) and wait for its job;
        return the complete job (``at``, or ``since``/``until``; ``objects``)."""
        return self._session.run(query)

    # -- results ---------------------------------------------------------------------------------
    def download(self, job, query, directory: str) -> DownloadResult:
        """Write the job's result into ``directory`` (created if missing) as one file in
        ``query.format``, with its ``.meta.json`` sidecar; both appear whole or not at all."""
        _check_job(job, query)
        name = layout.output_name(query.namespace, query.table, job, query.format)
        path = os.path.join(directory, name)
        meta_path = os.path.join(directory, layout.meta_name(name))
        label = "%s.%s" % (query.namespace, query.table)
        if query.format == "parquet":
            require_parquet()
        try:
            os.makedirs(directory, exist_ok=True)
            target = AtomicFile(path)
        except OSError as exc:
            raise errors.OutputError("cannot create a file in %s: %s" % (
                directory, exc.strerror or exc)) from exc
        writer = None
        try:
            writer = self._writer(job, query, target, path)
            self._transfer(job, writer, label)
            metadata = layout.job_metadata(query.namespace, query.table, job, query.format,
                                           writer.rows, name)
            meta = AtomicFile(meta_path)
            try:
                meta.write((json.dumps(metadata, indent=2) + "\n").encode("utf-8"))
                writer.commit()
                meta.commit()
            except OSError as exc:
                meta.abort()
                if target.done:  # the data went in but its sidecar did not: take it back
                    _unlink(path)
                raise errors.OutputError("writing %s failed: %s" % (
                    meta_path, exc.strerror or exc)) from exc
            except BaseException:
                meta.abort()
                raise
        except BaseException:
            # the writer's abort also drops what it holds besides the target (Parquet's spool)
            (writer or target).abort()
            raise
        log.info("%s: %d rows -> %s", label, writer.rows, path)
        return DownloadResult(path, meta_path, writer.rows, metadata)

    def write_records(self, job, query, stream: BinaryIO,
                      name_table: bool = False) -> DownloadResult:
        """Write the job's records to a binary stream (stdout) in ``query.format`` (not
        parquet), a part at a time, each only after it verified.

        ``name_table`` (JSON Lines only) puts ``"table": "namespace.table"`` first in each
        record, so that several tables in one stream can be told apart."""
        _check_job(job, query)
        check_stdout_format(query.format)
        label = "%s.%s" % (query.namespace, query.table)
        naming = None
        out: ByteStream = stream
        if name_table:
            if query.format != "jsonl":
                raise errors.InvalidInput("records name their table only in JSON Lines, "
                                          "not %s" % query.format, "use format jsonl")
            out = naming = TableNamingStream(stream, label)
        writer = self._writer(job, query, StdoutSink(out), "stdout")
        try:
            self._transfer(job, writer, label)
            writer.commit()
            if naming is not None:
                naming.finish()
        except errors.OutputError as exc:
            if exc.hint == errors.OutputError.default_hint:
                exc.hint = errors.STDOUT_HINT
            raise
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise errors.OutputError("writing stdout failed: %s" % (exc.strerror or exc),
                                     errors.STDOUT_HINT) from exc
        finally:
            writer.abort()
        metadata = layout.job_metadata(query.namespace, query.table, job, query.format,
                                       writer.rows, "-")
        return DownloadResult(None, None, writer.rows, metadata)

    def download_many(self, queries, directory: str, concurrency: Optional[int] = None
                      ) -> Iterator[Tuple[Any, Optional[DownloadResult], Optional[BaseException]]]:
        """``run`` and ``download`` of several queries at once (``concurrency`` tables at a
        time, default 8): ``(query, result, None)`` or ``(query, None, error)`` as each
        completes; one failing stops none of the others."""
        def work(query) -> DownloadResult:
            with pipeline.table_context("%s.%s" % (query.namespace, query.table)):
                return self.download(self.run(query), query, directory)

        return pipeline.run_concurrently(list(queries), work,
                                         concurrency or pipeline.DEFAULT_CONCURRENCY)

    def download_chained(self, state_path: Optional[str], namespace: str, tables=None,
                         directory: Optional[str] = None, **options: Any) -> Iterator[
                             Tuple[Any, Optional[DownloadResult], Optional[BaseException]]]:
        """Each table continued from its checkpoint in the state file ``state_path``: its
        query made from the checkpoint (``since`` only for a table that has none), run,
        written into ``directory`` (or ``stream=``), and only then its checkpoint moved.
        ``kind="snapshot"`` starts (or restarts) the chains.  ``(query, result, None)`` or
        ``(query, None, error)`` as each table completes; see
        :func:`dap_core.shell.state.download_chained` for every option."""
        from .state import download_chained
        return download_chained(self, state_path, namespace, tables, directory, **options)

    def load(self, job, sink, label: Optional[str] = None) -> None:
        """Stream the job's parts, in order, into ``sink``: an object with ``begin_part(i)``,
        ``feed(bytes)``, ``restart_part()`` (the part is fed again from its first byte),
        ``end_part()`` and ``finish()`` -- a database loader, for instance."""
        self._transfer(job, sink, label or "job %s" % getattr(job, "id", "?"))

    def iter_records(self, job) -> Iterator[Dict[str, Any]]:
        """The job's records as dicts (``key``, ``value``, ``meta``) as DAP sends them: a
        snapshot's ``meta`` holds ``ts`` only, an incremental's also ``action`` (``U``, or
        ``D`` for a delete, which has no ``value``); use ``record["meta"].get("action")``.
        The job must have been asked for as JSONL (``format="jsonl"``, ``"json"`` or
        ``"parquet"``).  Each part is verified before its first record is yielded."""
        objects = tuple(job.objects)
        urls = self._urls(objects)
        for index, object_id in enumerate(objects):
            spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY, mode="w+b")
            with spool:
                fetch_part(self._transport, urls, object_id, spool.write,
                           functools.partial(_empty, spool),
                           label="part %d of %d" % (index + 1, len(objects)))
                urls.forget(object_id)
                spool.seek(0)
                for line in spool:
                    if not line.strip():
                        continue
                    try:
                        record = json.loads(line)
                    except ValueError:
                        raise errors.InvalidInput(
                            "the job's result is not JSON Lines",
                            "iter_records needs a job asked for with format jsonl") from None
                    yield record

    # -- helpers ---------------------------------------------------------------------------------
    def _urls(self, objects) -> ObjectUrls:
        return ObjectUrls(self._session.object_urls, objects,
                          check=lambda url: check_object_url(url, self.allow_insecure_http))

    def _writer(self, job, query, sink, describe: str):
        # a snapshot's records carry meta.ts only (no meta.action), as DAP sends them
        snapshot = query.kind == "snapshot"
        if query.format == "parquet":
            schema = self._schema_for(job, query)
            return ParquetWriter(sink, schema, query.mode, describe=describe, snapshot=snapshot)

        def empty_header() -> str:
            from .. import columns as layout_of
            schema = self._schema_for(job, query)
            columns = layout_of.columns_from_schema(schema["schema"], query.mode or "expanded",
                                                  action=not snapshot)
            if query.format == "csv":
                return layout_of.csv_header(columns)
            return layout_of.tsv_header(columns)

        return StreamWriter(query.format, sink, describe, empty_header)

    def _schema_for(self, job, query) -> Dict[str, Any]:
        schema = self._session.get_schema(query.namespace, query.table)
        version = getattr(job, "schema_version", None)
        if version is not None and schema.get("version") != version:
            log.warning("%s.%s: the job's records follow schema version %s, DAP's current "
                        "schema is version %s", query.namespace, query.table, version,
                        schema.get("version"))
        return schema

    def _transfer(self, job, writer, label: str) -> None:
        """The job's parts, in order, into ``writer`` (``begin_part``, ``feed``,
        ``restart_part``, ``end_part``, ``finish``), each part downloaded, inflated and
        verified ahead in a background thread while the writer works (``readahead.py``).
        A writer may tune it with a ``read_ahead`` dict of ``ReadAhead``'s options (how much
        of a part to hold back until it verified, in memory and in all)."""
        with self._download_slots:
            self._transfer_parts(job, writer, label)

    def _transfer_parts(self, job, writer, label: str) -> None:
        objects = tuple(job.objects)
        urls = self._urls(objects)
        progress = self.progress
        progress.start(label, len(objects))
        options = dict(getattr(writer, "read_ahead", None) or {})
        # the read-ahead thread's log lines name this thread's table
        table = getattr(pipeline._context, "table", None)
        context = pipeline.table_context(table) if table is not None else None
        try:
            with ReadAhead(self._transport, urls, objects, label, context=context,
                           **options) as ahead:
                for kind, value in ahead.events():
                    if kind == "data":
                        writer.feed(value)
                    elif kind == "bytes":
                        progress.add_bytes(value)
                    elif kind == "begin":
                        progress.part(value)
                        writer.begin_part(value)
                    elif kind == "end":
                        writer.end_part()
                        progress.rows(writer.rows)
                    elif kind == "restart":
                        writer.restart_part()
            writer.finish()
        finally:
            progress.end()


def _check_job(job, query) -> None:
    kind = getattr(job, "kind", None)
    if getattr(job, "status", None) != "complete" or kind is None:
        raise errors.InvalidInput("the job %s is not complete" % getattr(job, "id", "?"),
                                  "run the query with Client.run first")
    if kind != query.kind:
        raise errors.InvalidInput("the job is a %s, the query a %s" % (kind, query.kind))


def _empty(spool) -> None:
    """A part's spool back to nothing: the part is fed again from its first byte."""
    spool.seek(0)
    spool.truncate()


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
