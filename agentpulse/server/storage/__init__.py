"""Where the collector keeps events: SQLite (default) or PostgreSQL, behind one small interface.

Example::

    from agentpulse.server.storage import open_storage

    store = open_storage("/tmp/agentpulse.db")          # or "postgresql://user@127.0.0.1/db"
    try:
        store.migrate()
        print(store.fetch("SELECT COUNT(*) AS n FROM events"))
    finally:
        store.close()
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

from .base import Storage, StorageError

__all__ = ["Storage", "StorageError", "is_postgres_dsn", "open_storage"]


def is_postgres_dsn(target: Union[str, Path]) -> bool:
    """True when ``target`` names a PostgreSQL database rather than a SQLite file."""
    text = str(target)
    return text.startswith(("postgres://", "postgresql://")) or (
        "=" in text and ("dbname=" in text or "host=" in text) and not Path(text).exists()
    )


def open_storage(target: Union[str, Path], *, read_pool_size: int = 4) -> Storage:
    """Open the store at ``target``: a ``postgresql://`` DSN or a SQLite file path (created if needed).

    The store is not migrated yet; call ``migrate()`` before use.
    """
    if is_postgres_dsn(target):
        from .postgres import PostgresStorage

        return PostgresStorage(str(target), pool_size=read_pool_size)
    from .sqlite import SQLiteStorage

    return SQLiteStorage(Path(str(target)).expanduser(), read_pool_size=read_pool_size)
