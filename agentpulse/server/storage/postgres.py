"""PostgreSQL storage (psycopg 3): for teams whose collector outgrows one SQLite file.

Same tables and columns as the SQLite store; one writer connection (each
ingest group-commit is one transaction) and a small pool of autocommit reader
connections. A broken connection is replaced on the next use, and the failure
surfaces as a retryable ``StorageError`` (the ingest API answers 503).

Example::

    from agentpulse.server.storage.postgres import PostgresStorage

    store = PostgresStorage("postgresql://agentpulse:secret@127.0.0.1:5432/agentpulse")
    store.migrate()
    store.close()
"""

from __future__ import annotations

import decimal
import threading
import time
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

from .base import EVENT_COLUMNS, Row, Storage, StorageError
from .migrations import MIGRATIONS_TABLE, POSTGRES_MIGRATIONS

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresStorage"]

_INSERT = (
    f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('%s' for _ in EVENT_COLUMNS)})"
    " ON CONFLICT (id) DO NOTHING"
)

# Any constant: serialises migrations of several collectors starting at once.
_MIGRATION_LOCK = 0x41505053


def _translate(sql: str) -> str:
    # Queries are written with SQLite's `?`; psycopg wants `%s` (and a literal `%` doubled).
    return sql.replace("%", "%%").replace("?", "%s")


def _plain(value: Any) -> Any:
    # SUM() over BIGINT is NUMERIC in PostgreSQL; JSON wants plain numbers.
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


class PostgresStorage(Storage):
    """The collector's store in a PostgreSQL database."""

    dialect = "postgres"

    def __init__(self, dsn: str, *, pool_size: int = 4, connect_timeout: float = 10.0) -> None:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise StorageError(
                "PostgreSQL storage needs psycopg: pip install 'agentpulse[server]'", retryable=False
            ) from None
        self.dsn = dsn
        self.connect_timeout = connect_timeout
        self._wlock = threading.Lock()
        self._writer: Optional[psycopg.Connection[Any]] = None
        self._pool_lock = threading.Lock()
        self._idle: List[psycopg.Connection[Any]] = []
        self._slots = threading.BoundedSemaphore(max(1, pool_size))
        self._closed = False
        self._sql: Dict[str, str] = {}

    # -- connections ------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        import psycopg

        if self._closed:
            raise StorageError("store is closed", retryable=False)
        try:
            return psycopg.connect(
                self.dsn, autocommit=True, connect_timeout=max(1, int(self.connect_timeout))
            )
        except psycopg.Error as exc:
            raise StorageError(f"postgres connect: {exc}", retryable=True) from None

    def _writer_conn(self) -> psycopg.Connection[Any]:
        if self._writer is not None and self._writer.broken:
            self._discard(self._writer)
            self._writer = None
        if self._writer is None:
            self._writer = self._connect()
        return self._writer

    def _acquire(self) -> psycopg.Connection[Any]:
        if not self._slots.acquire(timeout=self.connect_timeout):
            raise StorageError("no free reader connection", retryable=True)
        try:
            with self._pool_lock:
                conn = self._idle.pop() if self._idle else None
            if conn is not None and conn.broken:
                self._discard(conn)
                conn = None
            return conn if conn is not None else self._connect()
        except BaseException:
            self._slots.release()
            raise

    def _release(self, conn: psycopg.Connection[Any]) -> None:
        with self._pool_lock:
            keep = not self._closed and not conn.broken
            if keep:
                self._idle.append(conn)
        if not keep:
            self._discard(conn)
        self._slots.release()

    @staticmethod
    def _discard(conn: psycopg.Connection[Any]) -> None:
        try:
            conn.close()
        except Exception:
            pass

    def _q(self, sql: str) -> str:
        out = self._sql.get(sql)
        if out is None:
            out = _translate(sql)
            if len(self._sql) < 512:
                self._sql[sql] = out
        return out

    @staticmethod
    def _error(exc: Exception, where: str) -> StorageError:
        import psycopg

        retryable = isinstance(exc, (psycopg.OperationalError, psycopg.errors.SerializationFailure))
        return StorageError(f"postgres {where}: {exc}", retryable=retryable)

    # -- Storage ----------------------------------------------------------

    def migrate(self) -> int:
        import psycopg

        with self._wlock:
            conn = self._writer_conn()
            try:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                    conn.execute(
                        f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (version INTEGER PRIMARY KEY,"
                        " description TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
                    )
                    row = conn.execute(f"SELECT MAX(version) FROM {MIGRATIONS_TABLE}").fetchone()
                    current = int(row[0] or 0) if row else 0
                    for step in POSTGRES_MIGRATIONS:
                        if step.version <= current:
                            continue
                        for statement in step.statements:
                            conn.execute(statement)  # type: ignore[arg-type]
                        conn.execute(
                            f"INSERT INTO {MIGRATIONS_TABLE} (version, description, applied_at)"
                            " VALUES (%s, %s, %s)",
                            (step.version, step.description, time.time()),
                        )
                        current = step.version
                return current
            except psycopg.Error as exc:
                raise self._error(exc, "migrate") from None

    def insert_events(self, groups: Sequence[Sequence[Row]]) -> List[int]:
        import psycopg

        with self._wlock:
            conn = self._writer_conn()
            stored: List[int] = []
            try:
                with conn.transaction(), conn.cursor() as cur:
                    for rows in groups:
                        if not rows:
                            stored.append(0)
                            continue
                        cur.executemany(_INSERT, rows)
                        stored.append(max(0, cur.rowcount))
            except psycopg.Error as exc:
                raise self._error(exc, "insert") from None
            return stored

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> List[Dict[str, Any]]:
        import psycopg

        conn = self._acquire()
        try:
            with conn.cursor() as cur:
                cur.execute(self._q(sql), tuple(params))  # type: ignore[arg-type]
                names = [d.name for d in cur.description or ()]
                return [{k: _plain(v) for k, v in zip(names, row)} for row in cur.fetchall()]
        except psycopg.Error as exc:
            raise self._error(exc, "query") from None
        finally:
            self._release(conn)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        import psycopg

        with self._wlock:
            conn = self._writer_conn()
            try:
                with conn.transaction(), conn.cursor() as cur:
                    cur.execute(self._q(sql), tuple(params))  # type: ignore[arg-type]
                    return max(0, cur.rowcount)
            except psycopg.Error as exc:
                raise self._error(exc, "write") from None

    def prune(self, before_ts: float, *, chunk: int = 5000) -> int:
        total = 0
        while True:
            n = self.execute(
                "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE ts < ? LIMIT ?)",
                (before_ts, chunk),
            )
            total += n
            if n < chunk:
                break
        total += self.execute("DELETE FROM server_alerts WHERE ts < ?", (before_ts,))
        return total

    def optimize(self) -> None:
        # PostgreSQL's autovacuum keeps the planner's statistics current.
        return None

    def day_expr(self, column: str) -> str:
        return f"CAST(FLOOR(({column} + ?) / 86400) AS BIGINT)"

    def describe(self) -> str:
        try:
            from psycopg.conninfo import conninfo_to_dict

            info = conninfo_to_dict(self.dsn)
            host = f"{info.get('host') or ''}:{info.get('port') or 5432}"
            return f"postgresql://{info.get('user') or ''}@{host}/{info.get('dbname') or ''}"
        except Exception:
            return "postgresql"

    def close(self) -> None:
        with self._pool_lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            self._discard(conn)
        with self._wlock:
            writer, self._writer = self._writer, None
            if writer is not None:
                self._discard(writer)

    def __repr__(self) -> str:
        return f"PostgresStorage({self.describe()!r})"
