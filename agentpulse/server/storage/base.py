"""The one small interface every storage backend of the collector implements.

A backend stores rows of the ``events`` table (the schema of the SDK's local
SQLite store, so ``agentpulse serve`` can read the file the SDK writes) plus the
collector's own tables (API keys, alerts), and runs the SQL that
``agentpulse.server.query`` writes. Queries use ``?`` placeholders and only SQL
that SQLite and PostgreSQL share; the few spots where they differ go through
``day_expr``.

Example::

    from agentpulse.server.storage import open_storage

    store = open_storage("/tmp/agentpulse.db")
    store.migrate()
    rows = store.fetch("SELECT kind, COUNT(*) AS n FROM events GROUP BY kind")
    store.close()
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, Dict, List, Sequence, Tuple

if TYPE_CHECKING:
    from ...models import Batch

__all__ = ["EVENT_COLUMNS", "Row", "Storage", "StorageError", "rows_from_batch"]

#: Columns of the ``events`` table, in insert order (the SDK's local store writes the same).
EVENT_COLUMNS: Tuple[str, ...] = (
    "id",
    "kind",
    "ts",
    "trace_id",
    "span_id",
    "parent_span_id",
    "session",
    "agent",
    "pid",
    "host",
    "name",
    "status",
    "duration_ms",
    "provider",
    "model",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "data",
)

Row = Tuple[Any, ...]


class StorageError(Exception):
    """The store failed. ``retryable`` is True when trying again later may succeed (locked, busy, down)."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


def rows_from_batch(batch: Batch) -> List[Row]:
    """Turn a validated ingest batch into ``events`` rows, exactly as the SDK's local store would.

    Example::

        rows = rows_from_batch(Batch.model_validate_json(body))
    """
    from ...exporters.local import _row

    agent = batch.agent
    pid = batch.process.pid
    host = batch.process.host
    return [_row(ev, ev.model_dump_json(), agent, pid, host) for ev in batch.events]


class Storage(abc.ABC):
    """A place to keep events. Thread-safe: the ingest writer, the query API and the alert engine share it."""

    #: ``sqlite`` or ``postgres``.
    dialect: str = ""

    @abc.abstractmethod
    def migrate(self) -> int:
        """Create or upgrade every table the collector uses; returns the collector schema version."""

    @abc.abstractmethod
    def insert_events(self, groups: Sequence[Sequence[Row]]) -> List[int]:
        """Store several groups of rows in ONE transaction; events already stored (same id) are skipped.

        Returns, per group, how many rows were new. Raises ``StorageError``.
        """

    @abc.abstractmethod
    def fetch(self, sql: str, params: Sequence[Any] = ()) -> List[Dict[str, Any]]:
        """Run a read query (``?`` placeholders) and return its rows as dicts."""

    @abc.abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one write statement in its own transaction; returns the number of rows it changed."""

    @abc.abstractmethod
    def prune(self, before_ts: float, *, chunk: int = 5000) -> int:
        """Delete events (and collector alerts) older than ``before_ts``, in chunks; returns rows deleted."""

    @abc.abstractmethod
    def optimize(self) -> None:
        """Refresh the query planner's statistics, if the backend needs it done (cheap, bounded)."""

    @abc.abstractmethod
    def day_expr(self, column: str) -> str:
        """SQL for the day number (days since 1970-01-01) of ``column + ?`` seconds; takes one parameter."""

    @abc.abstractmethod
    def describe(self) -> str:
        """Where the data lives, without secrets."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close every connection. Idempotent."""

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
