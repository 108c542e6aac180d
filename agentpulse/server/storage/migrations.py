"""Versioned schema migrations of the collector's own tables.

The ``events`` table of a SQLite store belongs to the SDK's local exporter
(``agentpulse.exporters.local``, versioned with ``PRAGMA user_version``); the
collector adds its own tables next to it and keeps their version in
``agentpulse_migrations``, one row per applied step. On PostgreSQL the
collector owns every table, ``events`` included.

Append a step to a list to change a schema; never edit a released step.

Example::

    from agentpulse.server.storage.migrations import SQLITE_MIGRATIONS, latest_version
    assert latest_version(SQLITE_MIGRATIONS) == SQLITE_MIGRATIONS[-1].version
"""

from __future__ import annotations

from typing import NamedTuple, Sequence, Tuple

__all__ = [
    "MIGRATIONS_TABLE",
    "POSTGRES_MIGRATIONS",
    "SQLITE_MIGRATIONS",
    "Migration",
    "latest_version",
]

MIGRATIONS_TABLE = "agentpulse_migrations"


class Migration(NamedTuple):
    """One step: its version (1, 2, ...), what it does, and its statements."""

    version: int
    description: str
    statements: Tuple[str, ...]


def _collector_tables(real: str) -> Tuple[str, ...]:
    return (
        f"""CREATE TABLE IF NOT EXISTS api_keys (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            prefix TEXT NOT NULL,
            hash TEXT NOT NULL UNIQUE,
            created_at {real} NOT NULL,
            last_used_at {real},
            revoked_at {real}
        )""",
        f"""CREATE TABLE IF NOT EXISTS server_alerts (
            id TEXT PRIMARY KEY,
            dedupe_key TEXT NOT NULL UNIQUE,
            source TEXT NOT NULL,
            rule TEXT NOT NULL,
            event_id TEXT,
            ts {real} NOT NULL,
            title TEXT NOT NULL,
            severity TEXT NOT NULL,
            agent TEXT,
            details TEXT NOT NULL,
            delivery TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            delivered_at {real}
        )""",
        "CREATE INDEX IF NOT EXISTS server_alerts_ts ON server_alerts(ts)",
        "CREATE INDEX IF NOT EXISTS server_alerts_delivery ON server_alerts(delivery)",
    )


#: SQLite: ``events`` comes from the SDK's local store; these are the collector's additions.
SQLITE_MIGRATIONS: Tuple[Migration, ...] = (Migration(1, "api keys and alerts", _collector_tables("REAL")),)

#: PostgreSQL: the same ``events`` columns as the SQLite store, plus the collector's tables.
POSTGRES_MIGRATIONS: Tuple[Migration, ...] = (
    Migration(
        1,
        "events, api keys and alerts",
        (
            """CREATE TABLE IF NOT EXISTS events (
                id TEXT PRIMARY KEY,
                kind TEXT NOT NULL,
                ts DOUBLE PRECISION NOT NULL,
                trace_id TEXT,
                span_id TEXT,
                parent_span_id TEXT,
                session TEXT,
                agent TEXT,
                pid BIGINT,
                host TEXT,
                name TEXT,
                status TEXT,
                duration_ms DOUBLE PRECISION,
                provider TEXT,
                model TEXT,
                input_tokens BIGINT,
                output_tokens BIGINT,
                cost_usd DOUBLE PRECISION,
                data TEXT NOT NULL
            )""",
            "CREATE INDEX IF NOT EXISTS events_trace ON events(trace_id)",
            "CREATE INDEX IF NOT EXISTS events_kind_ts ON events(kind, ts)",
            "CREATE INDEX IF NOT EXISTS events_session ON events(session)",
            "CREATE INDEX IF NOT EXISTS events_ts ON events(ts)",
            """CREATE INDEX IF NOT EXISTS events_roots ON events(ts)
                WHERE parent_span_id IS NULL AND kind IN ('span_start', 'llm_call')""",
            *_collector_tables("DOUBLE PRECISION"),
        ),
    ),
)


def latest_version(migrations: Sequence[Migration]) -> int:
    """The version a store has once every step of ``migrations`` ran."""
    return migrations[-1].version if migrations else 0
