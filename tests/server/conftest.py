"""Fixtures of the collector tests: stores (SQLite always, PostgreSQL when reachable), apps, live servers."""

from __future__ import annotations

import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from agentpulse.server.storage import open_storage
from agentpulse.server.storage.base import Storage

PG_DSN_ENV = "AGENTPULSE_TEST_PG_DSN"
# Read at import: the suite's autouse fixture clears AGENTPULSE_* variables before each test.
_PG_DSN_GIVEN = os.environ.get(PG_DSN_ENV)


# -- stores -----------------------------------------------------------------------------


def _pg_dsn() -> Optional[str]:
    dsn = _PG_DSN_GIVEN
    if not dsn:
        return None
    try:
        import psycopg
    except ImportError:
        return None
    try:
        with psycopg.connect(dsn, connect_timeout=3):
            return dsn
    except Exception:
        return None


_PG: Dict[str, Optional[str]] = {}


def pg_dsn() -> Optional[str]:
    """The test PostgreSQL DSN when a server answers, else None (probed once)."""
    if "dsn" not in _PG:
        _PG["dsn"] = _pg_dsn()
    return _PG["dsn"]


@pytest.fixture
def pg_schema_dsn() -> Iterator[str]:
    """A DSN whose search_path is a fresh schema, dropped afterwards. Skips without PostgreSQL."""
    dsn = pg_dsn()
    if dsn is None:
        pytest.skip(f"PostgreSQL not reachable (set {PG_DSN_ENV}; .ci/postgres.sh starts one)")
    import psycopg
    from psycopg.conninfo import make_conninfo

    schema = "t_" + secrets.token_hex(6)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield make_conninfo(dsn, options=f"-c search_path={schema}")
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgres"])
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A SQLite path, then a PostgreSQL DSN (skipped when no server is reachable)."""
    if request.param == "sqlite":
        return str(tmp_path / "collector.db")
    return str(request.getfixturevalue("pg_schema_dsn"))


@pytest.fixture
def storage(store_target: str) -> Iterator[Storage]:
    """A migrated store on each backend."""
    store = open_storage(store_target)
    store.migrate()
    try:
        yield store
    finally:
        store.close()


# -- apps and servers ---------------------------------------------------------------------


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """``make_client(**settings)`` -> a started ``TestClient`` on a collector (closed afterwards)."""
    from starlette.testclient import TestClient

    from agentpulse.server.app import create_app
    from agentpulse.server.settings import ServerSettings

    clients: List[Any] = []

    def make(storage: Optional[Storage] = None, **settings: Any) -> Any:
        settings.setdefault("store", str(tmp_path / "collector.db"))
        settings.setdefault("maintenance_interval", 3600)
        settings.setdefault("parse_workers", 0)
        client = TestClient(create_app(ServerSettings(**settings), storage=storage))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in reversed(clients):
        client.__exit__(None, None, None)


class LiveServer:
    """uvicorn on 127.0.0.1 in a thread of this process; ``stop()`` ends it."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", ws="none", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="test-uvicorn", daemon=True)
        self.url = ""

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """``live_server(**settings)`` -> a collector served by uvicorn on 127.0.0.1 (stopped afterwards)."""
    from agentpulse.server.app import create_app
    from agentpulse.server.settings import ServerSettings

    servers: List[LiveServer] = []

    def start(storage: Optional[Storage] = None, **settings: Any) -> LiveServer:
        settings.setdefault("store", str(tmp_path / "collector.db"))
        settings.setdefault("maintenance_interval", 3600)
        settings.setdefault("parse_workers", 0)
        server = LiveServer(create_app(ServerSettings(**settings), storage=storage)).start()
        servers.append(server)
        return server

    yield start
    for server in reversed(servers):
        server.stop()
