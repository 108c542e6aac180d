"""Both storage backends: migrations, idempotent inserts, retention, keys; SQLite next to the SDK's writer."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from collector_helpers import batch, ev, insert, llm, session_trace

from agentpulse.models import Batch
from agentpulse.server.auth import KeyStore, bearer_token, hash_key
from agentpulse.server.storage import is_postgres_dsn, open_storage
from agentpulse.server.storage.base import Storage, StorageError, rows_from_batch
from agentpulse.server.storage.migrations import POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS, latest_version


def test_migrate_is_versioned_and_idempotent(store_target: str) -> None:
    expected = latest_version(POSTGRES_MIGRATIONS if is_postgres_dsn(store_target) else SQLITE_MIGRATIONS)
    first = open_storage(store_target)
    try:
        assert first.migrate() == expected
        assert first.migrate() == expected
        steps = first.fetch("SELECT version, description FROM agentpulse_migrations ORDER BY version")
        assert [s["version"] for s in steps] == list(range(1, expected + 1))
    finally:
        first.close()
    # A second collector starting on the same store finds it migrated.
    second = open_storage(store_target)
    try:
        assert second.migrate() == expected
    finally:
        second.close()


def test_insert_counts_new_rows_and_skips_known_ids(storage: Storage) -> None:
    events = session_trace(calls=3)
    rows = rows_from_batch(Batch.model_validate(batch(events)))
    assert storage.insert_events([rows[:4], rows[2:]]) == [4, len(rows) - 4]
    assert storage.insert_events([rows]) == [0]
    assert storage.fetch("SELECT COUNT(*) AS n FROM events")[0]["n"] == len(rows)


def test_rows_have_the_columns_the_local_store_derives(storage: Storage) -> None:
    insert(storage, [ev("llm_call", llm("gpt-4o", 0.5, input_tokens=7, output_tokens=3), span_id="a" * 16)])
    row = storage.fetch(
        "SELECT kind, name, status, provider, model, input_tokens, output_tokens, cost_usd FROM events"
    )[0]
    assert row == {
        "kind": "llm_call",
        "name": "gpt-4o",
        "status": "success",
        "provider": "openai",
        "model": "gpt-4o",
        "input_tokens": 7,
        "output_tokens": 3,
        "cost_usd": 0.5,
    }


def test_prune_deletes_only_older_events(storage: Storage) -> None:
    now = time.time()
    old = [ev("event", {"name": f"old{i}"}, ts=now - 40 * 86400) for i in range(7)]
    new = [ev("event", {"name": "new"}, ts=now)]
    insert(storage, old + new)
    assert storage.prune(now - 30 * 86400, chunk=3) == 7
    assert [r["name"] for r in storage.fetch("SELECT name FROM events")] == ["new"]


def test_day_expr_honours_the_offset(storage: Storage) -> None:
    # 2026-01-01 23:30 UTC is already 2026-01-02 at UTC+1.
    ts = 1767310200.0
    insert(storage, [ev("event", {"name": "x"}, ts=ts)])
    utc = storage.fetch(f"SELECT {storage.day_expr('ts')} AS d FROM events", [0])[0]["d"]
    east = storage.fetch(f"SELECT {storage.day_expr('ts')} AS d FROM events", [3600])[0]["d"]
    assert east == utc + 1


def test_keys_are_stored_hashed_and_revocable(storage: Storage) -> None:
    keys = KeyStore(storage)
    record, secret = keys.create("laptop")
    assert secret.startswith("ap_") and len(secret) > 40
    stored = storage.fetch("SELECT hash, prefix FROM api_keys")[0]
    assert stored["hash"] == hash_key(secret)
    assert secret not in str(storage.fetch("SELECT * FROM api_keys"))
    assert secret.startswith(stored["prefix"])
    assert keys.verify(secret) == record.id
    assert keys.verify("ap_wrong") is None
    assert keys.lookup("ap_wrong") is None
    assert keys.revoke("laptop") is not None
    assert keys.verify(secret) is None
    listed = keys.list()
    assert listed[0].revoked_at is not None and not listed[0].active
    assert keys.list(include_revoked=False) == []
    assert keys.flush_usage() == 1  # verified once above
    assert keys.list()[0].last_used_at is not None


def test_revoke_refuses_an_ambiguous_name(storage: Storage) -> None:
    keys = KeyStore(storage)
    keys.create("ci")
    keys.create("ci")
    with pytest.raises(ValueError, match="matches 2 keys"):
        keys.revoke("ci")
    assert keys.revoke("nobody") is None


def test_bearer_token_parsing() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token("Bearer ") is None
    assert bearer_token(None) is None


def test_sqlite_store_is_the_file_the_sdk_writes(tmp_path: Path) -> None:
    """The SDK's local exporter and the collector share one file: each sees the other's rows."""
    import agentpulse

    db = tmp_path / "shared.db"
    agentpulse.init(local_path=db, agent_name="local-agent", flush_interval=0.05)
    with agentpulse.session("written-locally"):
        agentpulse.event("step", {"n": 1})
    agentpulse.flush(5)
    store = open_storage(db)
    try:
        store.migrate()  # adds the collector's tables next to the SDK's
        insert(store, session_trace("sent-to-collector"))
        agentpulse.event("after", {})
        assert agentpulse.shutdown(timeout=5)
        sessions = {
            r["session"] for r in store.fetch("SELECT DISTINCT session FROM events WHERE session IS NOT NULL")
        }
        assert sessions == {"written-locally", "sent-to-collector"}
        names = [r["name"] for r in store.fetch("SELECT name FROM events WHERE kind = 'event' ORDER BY ts")]
        assert "after" in names
    finally:
        store.close()


def test_sqlite_store_reports_a_bad_path(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    store = open_storage(blocker / "sub" / "db.sqlite")
    try:
        with pytest.raises((StorageError, OSError)):
            store.migrate()
    finally:
        store.close()


def test_postgres_dsn_detection() -> None:
    assert is_postgres_dsn("postgresql://u@h/db")
    assert is_postgres_dsn("postgres://u@h/db")
    assert not is_postgres_dsn("/tmp/x.db")
    assert not is_postgres_dsn("relative.db")


def test_postgres_unreachable_is_a_retryable_error() -> None:
    pytest.importorskip("psycopg")
    from collector_helpers import free_port

    store = open_storage(f"postgresql://nobody@127.0.0.1:{free_port()}/none?connect_timeout=1")
    try:
        with pytest.raises(StorageError) as info:
            store.migrate()
        assert info.value.retryable
        assert "nobody@127.0.0.1" in store.describe()
    finally:
        store.close()


def test_postgres_describe_hides_the_password(pg_schema_dsn: Any) -> None:
    store = open_storage(pg_schema_dsn)
    try:
        assert ":agentpulse@" not in store.describe()  # user:password@ -> user@
        assert store.describe().startswith("postgresql://")
    finally:
        store.close()
