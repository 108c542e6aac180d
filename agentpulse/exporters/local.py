"""The embedded default: events go to a local SQLite file, read by the ``agentpulse`` command.

With no API key and no endpoint, ``agentpulse.init()`` writes every batch to
``~/.agentpulse/agentpulse.db`` (option ``local_path``). The file is in WAL
mode with a busy timeout, so several processes (a cron job, a worker pool, the
CLI reading) can use it at once. Each batch is one transaction; events are
keyed on their id, so a retried batch is stored once.

Example::

    import agentpulse
    agentpulse.init(local_path="/tmp/agent.db")   # the default exporter is this one
    agentpulse.event("hello")
    agentpulse.shutdown()
    # sqlite3 /tmp/agent.db "select kind, name from events"
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .._internal import log_once
from .base import EncodedBatch, Exporter, ExportError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "LocalExporter", "connect", "migrate"]

#: One tuple of statements per schema version; ``MIGRATIONS[i]`` moves a file from version i to i + 1.
#: Append to it, never edit a released entry.
MIGRATIONS: Tuple[Tuple[str, ...], ...] = (
    (
        """CREATE TABLE IF NOT EXISTS events (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            ts REAL NOT NULL,
            trace_id TEXT,
            span_id TEXT,
            parent_span_id TEXT,
            session TEXT,
            agent TEXT,
            pid INTEGER,
            host TEXT,
            name TEXT,
            status TEXT,
            duration_ms REAL,
            provider TEXT,
            model TEXT,
            input_tokens INTEGER,
            output_tokens INTEGER,
            cost_usd REAL,
            data TEXT NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS events_trace ON events(trace_id)",
        "CREATE INDEX IF NOT EXISTS events_kind_ts ON events(kind, ts)",
        "CREATE INDEX IF NOT EXISTS events_session ON events(session)",
        # The roots of traces (outermost spans, and LLM calls made outside any span), newest first.
        """CREATE INDEX IF NOT EXISTS events_roots ON events(ts)
            WHERE parent_span_id IS NULL AND kind IN ('span_start', 'llm_call')""",
    ),
)

#: The schema version this release writes (``PRAGMA user_version``).
SCHEMA_VERSION = len(MIGRATIONS)

_INSERT = (
    "INSERT OR IGNORE INTO events (id, kind, ts, trace_id, span_id, parent_span_id, session, agent, pid,"
    " host, name, status, duration_ms, provider, model, input_tokens, output_tokens, cost_usd, data)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

_DATA_KEY = ',"data":'

Row = Tuple[Any, ...]


def connect(path: Path, *, timeout: float = 10.0) -> sqlite3.Connection:
    """Open (creating if needed) the store at ``path`` in WAL mode, migrated to ``SCHEMA_VERSION``.

    The connection is in autocommit mode (``isolation_level=None``): callers
    open their own transactions. It may be used from another thread than the
    one that opened it, one thread at a time.

    Example::

        conn = connect(Path("/tmp/agent.db"))
        try:
            print(conn.execute("select count(*) from events").fetchone())
        finally:
            conn.close()
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=timeout, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        _set_wal(conn, timeout)
        # WAL + NORMAL: a commit survives a crash of the process; only a power loss may lose the last ones.
        conn.execute("PRAGMA synchronous = NORMAL")
        # After a burst the WAL is cut back to this size at the next checkpoint, not kept at its peak.
        conn.execute("PRAGMA journal_size_limit = 67108864")
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _set_wal(conn: sqlite3.Connection, timeout: float) -> None:
    # WAL is a property of the file: once set by any process it stays. Switching needs a brief
    # exclusive lock, which SQLite does not wait for, so a racing first start retries here.
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() == "wal":
                return
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":  # e.g. a network file system without shared memory
                log_once(
                    "local.wal", "agentpulse: the local store cannot use WAL mode (journal_mode=%s)", mode
                )
            return
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema of ``conn``'s file up to ``SCHEMA_VERSION``; returns the version found.

    Safe when several processes start at once: the version is read again under
    the write lock, so each migration runs exactly once. A file written by a
    newer release (higher version) is left alone.
    """
    found = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if found >= SCHEMA_VERSION:
        return found
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        for step in MIGRATIONS[version:]:
            for statement in step:
                conn.execute(statement)
        if version < SCHEMA_VERSION:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return found


def _retryable(exc: Exception) -> bool:
    # Locked, busy, disk full, I/O error, no permission: may pass. A corrupt file or not a database: will not.
    return isinstance(exc, (sqlite3.OperationalError, OSError))


def _is_busy(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class LocalExporter(Exporter):
    """Writes batches to the local SQLite store (the default when no collector is configured).

    The connection opens lazily on the reporter's worker thread, is dropped
    (not closed: it belongs to the parent) after ``fork()``, and is closed by
    ``close()``. A locked or failing file raises a retryable ``ExportError``;
    the reporter keeps the batch and tries again later.

    Example::

        from pathlib import Path
        import agentpulse
        from agentpulse.exporters.local import LocalExporter

        agentpulse.init(_exporter=LocalExporter(Path("/tmp/agent.db")))
    """

    name = "local"
    #: Derived columns are read from the validated models, so the reporter keeps them for us.
    wants_models = True

    def __init__(self, path: Path, *, busy_timeout: float = 10.0) -> None:
        self.path = Path(os.path.expanduser(str(path)))
        self.busy_timeout = busy_timeout
        self.written = 0
        self._conn: Optional[sqlite3.Connection] = None
        self._wait_ms = int(busy_timeout * 1000)
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._headers: Dict[str, Tuple[Optional[str], Optional[int], Optional[str]]] = {}

    # -- Exporter ---------------------------------------------------------

    def export(self, batch: EncodedBatch) -> None:
        """Store every event of ``batch`` in one transaction; events already stored are skipped."""
        if self._pid != os.getpid():
            self.after_fork()
        rows = self._rows(batch)
        with self._lock:
            try:
                conn = self._connection()
            except (sqlite3.Error, OSError) as exc:
                retryable = _retryable(exc)
                log_once("local.open", "agentpulse: cannot open the local store %s: %s", self.path, exc)
                raise ExportError(f"{self.path}: {exc}", retryable=retryable) from None
            try:
                self._limit_wait(conn)
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(_INSERT, rows)
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback(conn)
                if not _is_busy(exc):
                    # Disk full, I/O error, a file replaced under us: start afresh on the next try.
                    self._drop(close=True)
                retryable = _retryable(exc)
                log_once(
                    f"local.write.{retryable}",
                    "agentpulse: writing to the local store %s failed: %s",
                    self.path,
                    exc,
                )
                raise ExportError(f"{self.path}: {exc}", retryable=retryable) from None
        self.written += len(rows)

    def after_fork(self) -> None:
        """Forget the parent's connection; the child opens its own on its first export.

        The inherited connection is neither used nor closed: closing it in the
        child could disturb the parent's locks and WAL. It is kept referenced so
        it is never finalised here.
        """
        self._pid = os.getpid()
        self._lock = threading.Lock()
        if self._conn is not None:
            _inherited.append(self._conn)
            self._conn = None

    def close(self) -> None:
        """Close the connection (the last writer to close folds the WAL back into the file)."""
        with self._lock:
            self._drop(close=self._pid == os.getpid())

    def describe(self) -> str:
        return f"local store {self.path}"

    def __repr__(self) -> str:
        return f"LocalExporter(path={str(self.path)!r}, written={self.written})"

    # -- helpers ----------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = connect(self.path, timeout=self.busy_timeout)
            self._wait_ms = int(self.busy_timeout * 1000)
        return self._conn

    def _limit_wait(self, conn: sqlite3.Connection) -> None:
        # Waiting for another writer's lock must not outlast the reporter's shutdown deadline.
        left = self.time_left()
        wait_ms = int(self.busy_timeout * 1000)
        if left is not None:
            wait_ms = min(wait_ms, int(left * 1000))
        if wait_ms != self._wait_ms:
            conn.execute(f"PRAGMA busy_timeout = {wait_ms}")
            self._wait_ms = wait_ms

    def _drop(self, *, close: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and close:
            try:
                conn.close()
            except sqlite3.Error:
                pass

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    def _header(self, header_json: str) -> Tuple[Optional[str], Optional[int], Optional[str]]:
        found = self._headers.get(header_json)
        if found is None:
            try:
                head = json.loads(header_json)
                proc = head.get("process") or {}
                found = (head.get("agent"), proc.get("pid"), proc.get("host"))
            except (ValueError, AttributeError):
                found = (None, None, None)
            if len(self._headers) > 16:
                self._headers.clear()
            self._headers[header_json] = found
        return found

    def _rows(self, batch: EncodedBatch) -> List[Row]:
        agent, pid, host = self._header(batch.header_json)
        return [_row(ev, text, agent, pid, host) for ev, text in zip(batch.events, batch.events_json)]


# Connections inherited across fork(): never used, never closed by the child.
_inherited: List[sqlite3.Connection] = []


def _data_json(event: Any, text: str) -> str:
    # The wire JSON ends with the event's data object (models declare `data` last), so the data is a
    # slice of text already serialised; JSON strings cannot contain `,"data":` unescaped.
    i = text.find(_DATA_KEY)
    if i >= 0 and text.endswith("}}"):
        return text[i + len(_DATA_KEY) : -1]
    return json.dumps(event.data.model_dump(mode="json"), separators=(",", ":"))


def _row(event: Any, text: str, agent: Optional[str], pid: Optional[int], host: Optional[str]) -> Row:
    kind = event.kind
    d = event.data
    name: Optional[str] = None
    status: Optional[str] = None
    duration: Optional[float] = None
    provider: Optional[str] = None
    model: Optional[str] = None
    tin: Optional[int] = None
    tout: Optional[int] = None
    cost: Optional[float] = None
    if kind == "llm_call":
        provider = d.provider
        model = d.model or d.response_model
        name = model
        status = d.status
        duration = d.latency_ms
        tin = d.input_tokens
        tout = d.output_tokens
        cost = d.cost_usd
    elif kind == "span_end":
        name = d.name
        status = d.status
        duration = d.duration_ms
    elif kind in ("span_start", "event", "metric"):
        name = d.name
    elif kind == "alert":
        name = d.title
        status = d.severity
    elif kind == "error":
        name = d.type
        status = "error"
    elif kind == "cron_checkin":
        name = d.monitor
        status = d.status
        duration = d.duration_ms
    return (
        event.id,
        kind,
        event.ts,
        event.trace_id,
        event.span_id,
        event.parent_span_id,
        event.session,
        agent,
        pid,
        host,
        name,
        status,
        duration,
        provider,
        model,
        tin,
        tout,
        cost,
        _data_json(event, text),
    )
