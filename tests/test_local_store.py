"""The local SQLite store: the exporter that writes it and the Store that reads it."""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

import agentpulse
from agentpulse.context import new_span_id
from agentpulse.exporters.base import EncodedBatch, ExportError
from agentpulse.exporters.local import SCHEMA_VERSION, LocalExporter, connect, migrate
from agentpulse.exporters.memory import MemoryExporter
from agentpulse.reporter import Reporter
from agentpulse.store import AmbiguousIdError, Store

# -- helpers ----------------------------------------------------------------------


def _encode(raw: List[Dict[str, Any]]) -> EncodedBatch:
    """A real batch, validated and serialised the way the reporter does it."""
    batch = Reporter(MemoryExporter(), agent_name="store-test").encode(raw)
    assert batch is not None
    return batch


def _events(n: int, **extra: Any) -> List[Dict[str, Any]]:
    return [
        {"kind": "event", "ts": time.time(), "data": {"name": f"e{i}", "data": {"i": i}}, **extra}
        for i in range(n)
    ]


def _rows(path: Path, sql: str, params: Any = ()) -> List[Any]:
    conn = sqlite3.connect(str(path))
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "store" / "agentpulse.db"


# -- the exporter ----------------------------------------------------------------


def test_batch_written_and_read_back(db: Path) -> None:
    exp = LocalExporter(db)
    llm = {
        "kind": "llm_call",
        "ts": 100.0,
        "trace_id": "t" * 32,
        "span_id": "c" * 16,
        "parent_span_id": "p" * 16,
        "session": "daily",
        "data": {
            "provider": "openai",
            "model": "gpt-4o",
            "response_model": "gpt-4o-2024-08-06",
            "input_tokens": 150,
            "output_tokens": 89,
            "cost_usd": 0.0012,
            "latency_ms": 812.5,
        },
    }
    end = {
        "kind": "span_end",
        "ts": 101.0,
        "trace_id": "t" * 32,
        "span_id": "p" * 16,
        "data": {"name": "daily", "status": "error", "duration_ms": 1000.0, "error": {"type": "ValueError"}},
    }
    batch = _encode([llm, end, *_events(3, session="daily")])
    try:
        exp.export(batch)
    finally:
        exp.close()
    assert exp.written == 5
    rows = _rows(
        db,
        "SELECT id, kind, ts, trace_id, session, agent, pid, host, name, status, duration_ms, provider,"
        " model, input_tokens, output_tokens, cost_usd, data FROM events ORDER BY rowid",
    )
    assert [r[0] for r in rows] == [e.id for e in batch.events]
    call = rows[0]
    assert call[1:5] == ("llm_call", 100.0, "t" * 32, "daily")
    assert call[5] == "store-test" and call[6] == os.getpid() and call[7]
    assert call[8:16] == ("gpt-4o", "success", 812.5, "openai", "gpt-4o", 150, 89, 0.0012)
    assert json.loads(call[16]) == batch.events[0].data.model_dump(mode="json")
    assert rows[1][8:11] == ("daily", "error", 1000.0)
    assert [r[8] for r in rows[2:]] == ["e0", "e1", "e2"]
    assert json.loads(rows[4][16]) == {"name": "e2", "data": {"i": 2}}


def test_data_column_is_the_event_data_even_when_user_data_looks_like_json_keys(db: Path) -> None:
    tricky = {"data": {"data": 1}, "x": '","data":{"y":2}}', "kind": "event"}
    batch = _encode(
        [{"kind": "event", "ts": 1.0, "session": '"data":', "data": {"name": "n", "data": tricky}}]
    )
    exp = LocalExporter(db)
    exp.export(batch)
    exp.close()
    (data,) = _rows(db, "SELECT data FROM events")[0]
    assert json.loads(data) == {"name": "n", "data": tricky}


def test_duplicate_ids_are_stored_once(db: Path) -> None:
    exp = LocalExporter(db)
    batch = _encode(_events(50))
    exp.export(batch)
    exp.export(batch)  # a retried batch
    exp.close()
    assert _rows(db, "SELECT COUNT(*), COUNT(DISTINCT id) FROM events")[0] == (50, 50)


def test_wal_mode_schema_version_and_indexes(db: Path) -> None:
    exp = LocalExporter(db)
    exp.export(_encode(_events(1)))
    exp.close()
    assert _rows(db, "PRAGMA journal_mode")[0][0] == "wal"
    assert _rows(db, "PRAGMA user_version")[0][0] == SCHEMA_VERSION
    indexes = {r[0] for r in _rows(db, "SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"events_trace", "events_kind_ts", "events_session", "events_roots"} <= indexes


def test_migrate_is_idempotent_and_leaves_newer_files_alone(db: Path) -> None:
    conn = connect(db)
    try:
        assert migrate(conn) == SCHEMA_VERSION
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
        assert migrate(conn) == SCHEMA_VERSION + 5
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 5
    finally:
        conn.close()


def test_connection_opens_lazily_and_close_releases_it(db: Path) -> None:
    exp = LocalExporter(db)
    assert not db.exists()  # nothing happens until the first batch
    exp.export(_encode(_events(2)))
    exp.close()
    exp.close()  # twice is fine
    # A closed exporter that gets another batch reopens (the reporter never does this, but it is safe).
    exp.export(_encode(_events(1)))
    exp.close()
    assert _rows(db, "SELECT COUNT(*) FROM events")[0][0] == 3
    assert not Path(f"{db}-wal").exists()  # the last connection folded the WAL back


def test_locked_database_raises_retryable_export_error(db: Path) -> None:
    exp = LocalExporter(db, busy_timeout=0.05)
    exp.export(_encode(_events(1)))
    blocker = sqlite3.connect(str(db), isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        with pytest.raises(ExportError) as info:
            exp.export(_encode(_events(3)))
        assert info.value.retryable
        assert "locked" in str(info.value)
        blocker.execute("ROLLBACK")
        exp.export(_encode(_events(3)))  # the retry goes through once the lock is gone
    finally:
        blocker.close()
        exp.close()
    assert _rows(db, "SELECT COUNT(*) FROM events")[0][0] == 4


def test_a_file_that_is_not_a_database_is_not_retried(db: Path) -> None:
    db.parent.mkdir(parents=True)
    db.write_bytes(b"this is not a database, just some bytes " * 200)
    exp = LocalExporter(db)
    with pytest.raises(ExportError) as info:
        exp.export(_encode(_events(1)))
    assert not info.value.retryable
    exp.close()


def test_export_error_through_the_reporter_is_retried_not_swallowed(db: Path) -> None:
    blocker = sqlite3.connect(str(connect_and_close(db)), isolation_level=None)
    client = agentpulse.init(
        _exporter=LocalExporter(db, busy_timeout=0.02), flush_interval=0.02, auto_patch=False
    )
    try:
        blocker.execute("BEGIN IMMEDIATE")
        agentpulse.event("waiting")
        assert not client.flush(0.3)  # locked: the batch waits in the retry buffer
        assert client.stats()["export_errors"] >= 1
        blocker.execute("ROLLBACK")
        assert client.flush(5)
    finally:
        blocker.close()
        agentpulse.shutdown()
    assert _rows(db, "SELECT COUNT(*) FROM events WHERE kind = 'event'")[0][0] == 1


def connect_and_close(db: Path) -> Path:
    connect(db).close()
    return db


def test_init_uses_the_local_store_by_default(tmp_path: Path) -> None:
    # conftest points AGENTPULSE_LOCAL_PATH at tmp_path / "agentpulse.db"
    client = agentpulse.init(auto_patch=False)
    assert isinstance(client.exporter, LocalExporter)
    assert client.exporter.describe() == f"local store {tmp_path / 'agentpulse.db'}"
    with agentpulse.session("default-store"):
        agentpulse.event("hello", {"n": 1})
    agentpulse.shutdown()
    kinds = [r[0] for r in _rows(tmp_path / "agentpulse.db", "SELECT kind FROM events ORDER BY rowid")]
    assert kinds == ["process_start", "span_start", "event", "span_end", "process_stop"]


# -- several processes, fork ---------------------------------------------------


def _writer(path: str, n: int) -> None:
    import agentpulse as ap

    ap.init(local_path=path, auto_patch=False, capture_exceptions=False, agent_name=f"w{os.getpid()}")
    for i in range(n):
        ap.event("tick", {"i": i})
    ok = ap.shutdown(timeout=60)
    sys.exit(0 if ok else 3)


def test_four_processes_write_one_file(db: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(db), 2000)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(90)
    codes = [p.exitcode for p in procs]
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()
        p.close()
    assert codes == [0, 0, 0, 0]
    assert _rows(db, "SELECT COUNT(*) FROM events WHERE kind = 'event'")[0][0] == 8000
    assert _rows(db, "SELECT COUNT(DISTINCT pid) FROM events WHERE kind = 'event'")[0][0] == 4
    assert _rows(db, "PRAGMA integrity_check")[0][0] == "ok"


def _wait_child(pid: int, timeout: float) -> Optional[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status >> 8
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_child_reopens_its_own_connection_after_fork(db: Path) -> None:
    client = agentpulse.init(local_path=db, auto_patch=False, flush_interval=0.05)
    exporter = client.exporter
    assert isinstance(exporter, LocalExporter)
    agentpulse.event("before-fork")
    assert client.flush(5)
    parent_conn = exporter._conn
    assert parent_conn is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "fork() of a multi-threaded process" (3.12+)
        pid = os.fork()
    if pid == 0:  # the child: must not use the parent's connection
        code = 1
        try:
            agentpulse.event("in-child")
            ok = agentpulse.flush(10)
            code = 0 if ok and exporter._conn is not None and exporter._conn is not parent_conn else 2
        finally:
            os._exit(code)
    assert _wait_child(pid, 30) == 0
    agentpulse.event("after-fork")
    assert client.flush(5)
    assert exporter._conn is parent_conn  # the parent kept its connection
    agentpulse.shutdown()
    names = [r[0] for r in _rows(db, "SELECT name FROM events WHERE kind = 'event' ORDER BY rowid")]
    assert names == ["before-fork", "in-child", "after-fork"]
    pids = {r[0] for r in _rows(db, "SELECT DISTINCT pid FROM events WHERE kind = 'event'")}
    assert len(pids) == 2


def test_after_fork_forgets_the_connection_without_closing_it(db: Path) -> None:
    exp = LocalExporter(db)
    exp.export(_encode(_events(1)))
    inherited = exp._conn
    assert inherited is not None
    exp.after_fork()
    assert exp._conn is None
    assert inherited.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 1  # still open
    exp.export(_encode(_events(1)))
    assert exp._conn is not None and exp._conn is not inherited
    exp.close()
    inherited.close()


# -- the read side ----------------------------------------------------------------


def _populate(db: Path) -> Dict[str, str]:
    """A session with nested spans, LLM calls (one without a known cost), events and an error."""
    client = agentpulse.init(local_path=db, auto_patch=False, agent_name="reader", flush_interval=0.05)
    ids: Dict[str, str] = {}

    @agentpulse.trace(name="fetch")
    def fetch() -> None:
        agentpulse.event("fetched", {"count": 3})
        agentpulse.metric("inbox", 3)

    @agentpulse.trace(name="broken")
    def broken() -> None:
        raise KeyError("nope")

    with agentpulse.session("nightly") as scope:
        assert scope.span is not None
        ids["trace"] = scope.span.trace_id
        fetch()
        for cost in (0.001, None):
            client.emit(
                "llm_call",
                {
                    "provider": "openai",
                    "model": "gpt-4o",
                    "input_tokens": 100,
                    "output_tokens": 20,
                    "cost_usd": cost,
                },
                own_span_id=new_span_id(),
            )
        try:
            broken()
        except KeyError:
            pass
    # An LLM call made outside any span is a trace of its own.
    call_id = new_span_id()
    ids["call"] = call_id
    client.emit(
        "llm_call",
        {
            "provider": "anthropic",
            "model": "claude-sonnet-4",
            "input_tokens": 7,
            "output_tokens": 3,
            "cost_usd": 0.5,
        },
        span=None,
        own_span_id=call_id,
    )
    agentpulse.shutdown()
    return ids


def test_store_on_a_missing_file_is_empty(tmp_path: Path) -> None:
    with Store(tmp_path / "nope.db") as store:
        assert not store.exists
        st = store.status_counts()
        assert (st.exists, st.events, st.traces) == (False, 0, 0)
        assert store.recent_traces() == []
        assert store.trace_tree("abc") is None
        assert store.tail() == []
        assert store.last_rowid() == 0
    assert not (tmp_path / "nope.db").exists()


def test_status_counts(db: Path) -> None:
    _populate(db)
    with Store(db) as store:
        st = store.status_counts()
    assert st.exists and st.schema_version == SCHEMA_VERSION
    assert st.traces == 2
    assert st.llm_calls == 3
    assert st.input_tokens == 207 and st.output_tokens == 43
    assert st.cost_usd == pytest.approx(0.501)
    assert st.calls_without_cost == 1
    assert st.errors == 1
    assert st.processes == 1 and st.agents == ["reader"]
    assert st.events > 10 and st.first_ts is not None and st.last_ts is not None


def test_recent_traces(db: Path) -> None:
    ids = _populate(db)
    with Store(db) as store:
        traces = store.recent_traces()
        assert store.recent_traces(since=time.time() + 60) == []
        assert len(store.recent_traces(limit=1)) == 1
    assert [t.kind for t in traces] == ["llm_call", "session"]  # newest first
    call, session = traces
    assert call.trace_id == ids["call"] and call.name == "anthropic/claude-sonnet-4"
    assert (call.llm_calls, call.cost_usd, call.status) == (1, 0.5, "success")
    assert session.trace_id == ids["trace"]
    assert (session.name, session.status, session.llm_calls) == ("nightly", "success", 2)
    assert (session.input_tokens, session.output_tokens) == (200, 40)
    assert session.cost_usd == pytest.approx(0.001)
    assert session.cost_complete is False  # one call had no known cost
    assert session.errors == 1  # the span that raised
    assert session.duration_ms is not None and session.duration_ms >= 0


def test_trace_tree_nests_spans_calls_and_events(db: Path) -> None:
    ids = _populate(db)
    with Store(db) as store:
        tree = store.trace_tree(ids["trace"][:6])
    assert tree is not None and tree.trace_id == ids["trace"]
    (root,) = tree.roots
    assert (root.kind, root.name, root.status) == ("session", "nightly", "success")
    assert [(c.kind, c.name) for c in root.children] == [
        ("trace", "fetch"),
        ("llm_call", "openai/gpt-4o"),
        ("llm_call", "openai/gpt-4o"),
        ("trace", "broken"),
    ]
    fetch, call, _, broken = root.children
    assert [e.name for e in fetch.events] == ["fetched", "inbox"]
    assert call.llm is not None and call.llm["input_tokens"] == 100 and call.parent_span_id == root.span_id
    assert broken.status == "error" and broken.error == {"type": "KeyError", "message": "'nope'"}
    assert tree.loose == []
    as_json = json.loads(json.dumps(tree.to_dict()))
    assert as_json["roots"][0]["children"][0]["events"][0]["data"] == {
        "name": "fetched",
        "data": {"count": 3},
    }


def test_trace_tree_of_a_call_outside_any_span(db: Path) -> None:
    ids = _populate(db)
    with Store(db) as store:
        tree = store.trace_tree(ids["call"])
    assert tree is not None
    (node,) = tree.roots
    assert node.kind == "llm_call" and node.name == "anthropic/claude-sonnet-4"


def test_id_prefixes_resolve_like_git(db: Path) -> None:
    client = agentpulse.init(local_path=db, auto_patch=False)
    trace_ids = []
    for i in range(17):  # 17 ids, 16 hex digits: two of them must share a first digit
        with agentpulse.session(f"s{i}") as scope:
            assert scope.span is not None
            trace_ids.append(scope.span.trace_id)
    client.flush()
    agentpulse.shutdown()
    first = [t[0] for t in trace_ids]
    shared = next(c for c in first if first.count(c) > 1)
    with Store(db) as store:
        with pytest.raises(AmbiguousIdError) as info:
            store.trace_tree(shared)
        assert len(info.value.candidates) >= 2
        for tid in trace_ids:
            assert store.resolve(tid) == tid
            assert store.resolve(tid[:12].upper()) == tid
        assert store.resolve("zzzz") is None
        assert store.resolve("  ") is None


def test_tail_after_a_row(db: Path) -> None:
    _populate(db)
    with Store(db) as store:
        last = store.last_rowid()
        everything = store.tail(0)
        assert len(everything) == last
        assert [e.rowid for e in store.tail(last - 3)] == [last - 2, last - 1, last]
        assert store.tail(last) == []
        calls = store.tail(0, kinds=["llm_call"])
        assert [e.kind for e in calls] == ["llm_call"] * 3
        newest = store.last_events(2)
        assert [e.rowid for e in newest] == [last - 1, last]
        assert [e.kind for e in store.last_events(1, kinds=["span_start"])] == ["span_start"]
    # New events written by another process show up on the next call.
    agentpulse.init(local_path=db, auto_patch=False)
    agentpulse.event("later")
    agentpulse.shutdown()
    with Store(db) as store:
        names = [e.name for e in store.tail(last) if e.kind == "event"]
    assert names == ["later"]


def test_store_reads_while_a_writer_is_running(db: Path) -> None:
    client = agentpulse.init(local_path=db, auto_patch=False, flush_interval=0.05)
    agentpulse.event("one")
    client.flush()
    store = Store(db)
    try:
        first = store.last_rowid()
        agentpulse.event("two")
        client.flush()
        assert [e.name for e in store.tail(first)] == ["two"]
    finally:
        store.close()
        agentpulse.shutdown()
