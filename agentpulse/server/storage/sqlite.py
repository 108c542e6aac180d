"""SQLite storage: the collector's default, on the very file the SDK's local exporter writes.

One writer connection (serialised by a lock; every ingest group-commit is one
``BEGIN IMMEDIATE`` transaction) and a small pool of reader connections, which
WAL mode lets run while the writer writes. The ``events`` table and its
migrations come from ``agentpulse.exporters.local``; the collector's own tables
are versioned in ``agentpulse_migrations``.

Example::

    from pathlib import Path
    from agentpulse.server.storage.sqlite import SQLiteStorage

    store = SQLiteStorage(Path("/tmp/agentpulse.db"))
    store.migrate()
    print(store.fetch("SELECT COUNT(*) AS n FROM events")[0]["n"])
    store.close()
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .base import EVENT_COLUMNS, Row, Storage, StorageError
from .migrations import MIGRATIONS_TABLE, SQLITE_MIGRATIONS, latest_version

__all__ = ["SQLiteStorage"]

_INSERT = (
    f"INSERT OR IGNORE INTO events ({', '.join(EVENT_COLUMNS)})"
    f" VALUES ({', '.join('?' for _ in EVENT_COLUMNS)})"
)


def _error(exc: sqlite3.Error, where: str) -> StorageError:
    # Locked, busy, disk I/O, a full disk: all may pass. A constraint or a bad statement will not.
    return StorageError(f"sqlite {where}: {exc}", retryable=isinstance(exc, sqlite3.OperationalError))


class SQLiteStorage(Storage):
    """The collector's store in one SQLite file (WAL mode; safe next to the SDK writing it)."""

    dialect = "sqlite"

    def __init__(self, path: Path, *, read_pool_size: int = 4, busy_timeout: float = 10.0) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._wlock = threading.Lock()
        self._writer: Optional[sqlite3.Connection] = None
        self._pool_lock = threading.Lock()
        self._idle: List[sqlite3.Connection] = []
        self._slots = threading.BoundedSemaphore(max(1, read_pool_size))
        self._closed = False

    # -- connections ------------------------------------------------------

    def _writer_conn(self) -> sqlite3.Connection:
        if self._closed:
            raise StorageError("store is closed", retryable=False)
        if self._writer is None:
            from ...exporters.local import connect

            try:
                self._writer = connect(self.path, timeout=self.busy_timeout)
            except sqlite3.Error as exc:
                raise _error(exc, "open") from None
        return self._writer

    def _open_reader(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            str(self.path), timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            conn.execute("PRAGMA query_only = 1")
        except BaseException:
            conn.close()
            raise
        return conn

    def _acquire(self) -> sqlite3.Connection:
        if not self._slots.acquire(timeout=self.busy_timeout):
            raise StorageError("no free reader connection", retryable=True)
        try:
            with self._pool_lock:
                if self._closed:
                    raise StorageError("store is closed", retryable=False)
                if self._idle:
                    return self._idle.pop()
                return self._open_reader()
        except BaseException:
            self._slots.release()
            raise

    def _release(self, conn: sqlite3.Connection) -> None:
        with self._pool_lock:
            if self._closed:
                conn.close()
            else:
                self._idle.append(conn)
        self._slots.release()

    # -- Storage ----------------------------------------------------------

    def migrate(self) -> int:
        with self._wlock:
            conn = self._writer_conn()
            try:
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} "
                    "(version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at REAL NOT NULL)"
                )
                target = latest_version(SQLITE_MIGRATIONS)
                if self._version(conn) >= target:
                    return self._version(conn)  # (statistics are refreshed by optimize())
                conn.execute("BEGIN IMMEDIATE")
                try:
                    # Read again under the write lock: another process may have migrated meanwhile.
                    current = self._version(conn)
                    for step in SQLITE_MIGRATIONS:
                        if step.version <= current:
                            continue
                        for statement in step.statements:
                            conn.execute(statement)
                        conn.execute(
                            f"INSERT INTO {MIGRATIONS_TABLE} (version, description, applied_at)"
                            " VALUES (?, ?, ?)",
                            (step.version, step.description, time.time()),
                        )
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                return self._version(conn)
            except sqlite3.Error as exc:
                raise _error(exc, "migrate") from None

    @staticmethod
    def _version(conn: sqlite3.Connection) -> int:
        row = conn.execute(f"SELECT MAX(version) FROM {MIGRATIONS_TABLE}").fetchone()
        return int(row[0] or 0)

    def insert_events(self, groups: Sequence[Sequence[Row]]) -> List[int]:
        with self._wlock:
            conn = self._writer_conn()
            stored: List[int] = []
            try:
                conn.execute("BEGIN IMMEDIATE")
                for rows in groups:
                    cur = conn.executemany(_INSERT, rows)
                    stored.append(max(0, cur.rowcount))
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback(conn)
                raise _error(exc, "insert") from None
            return stored

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> List[Dict[str, Any]]:
        conn = self._acquire()
        try:
            cur = conn.execute(sql, tuple(params))
            names = [d[0] for d in cur.description or ()]
            return [dict(zip(names, row)) for row in cur.fetchall()]
        except sqlite3.Error as exc:
            raise _error(exc, "query") from None
        finally:
            self._release(conn)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self._wlock:
            conn = self._writer_conn()
            try:
                conn.execute("BEGIN IMMEDIATE")
                cur = conn.execute(sql, tuple(params))
                conn.execute("COMMIT")
                return max(0, cur.rowcount)
            except sqlite3.Error as exc:
                self._rollback(conn)
                raise _error(exc, "write") from None

    def prune(self, before_ts: float, *, chunk: int = 5000) -> int:
        total = 0
        # Chunks, each its own short transaction, so ingest never waits long behind a purge.
        while True:
            n = self.execute(
                "DELETE FROM events WHERE rowid IN (SELECT rowid FROM events WHERE ts < ? LIMIT ?)",
                (before_ts, chunk),
            )
            total += n
            if n < chunk:
                break
        total += self.execute("DELETE FROM server_alerts WHERE ts < ?", (before_ts,))
        return total

    def optimize(self) -> None:
        # Without statistics SQLite may scan the (kind, ts) index where the trace index or the roots
        # index would answer at once. A sampled ANALYZE (at most 1000 rows an index) costs
        # milliseconds whatever the size of the file.
        with self._wlock:
            conn = self._writer_conn()
            try:
                conn.execute("PRAGMA analysis_limit = 1000")
                conn.execute("ANALYZE")
            except sqlite3.Error as exc:
                raise _error(exc, "analyze") from None

    def day_expr(self, column: str) -> str:
        # Timestamps are positive, so truncation is the floor.
        return f"CAST(({column} + ?) / 86400 AS INTEGER)"

    def describe(self) -> str:
        return f"sqlite:{self.path}"

    def close(self) -> None:
        with self._pool_lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        with self._wlock:
            writer, self._writer = self._writer, None
            if writer is not None:
                writer.close()

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    def __repr__(self) -> str:
        return f"SQLiteStorage({str(self.path)!r})"
