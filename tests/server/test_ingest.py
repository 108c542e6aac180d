"""The ingest contract of ``POST /v1/ingest``: what is stored, what is refused and how."""

from __future__ import annotations

import gzip
import json
import threading
import time
import zlib
from pathlib import Path
from typing import Any, List, Sequence

import pytest
import requests
from collector_helpers import batch, ev, gz, llm, session_trace

from agentpulse.server.auth import KeyStore
from agentpulse.server.ingest import BodyReader, Inflater, IngestError, MemoryBudget
from agentpulse.server.storage import open_storage
from agentpulse.server.storage.base import Row
from agentpulse.server.storage.sqlite import SQLiteStorage


def _count(client: Any, sql: str = "SELECT COUNT(*) AS n FROM events") -> int:
    return int(client.app.state.collector.storage.fetch(sql)[0]["n"])


def test_valid_gzip_batch_is_stored(make_client: Any) -> None:
    client = make_client(auth=False)
    events = session_trace()
    r = client.post("/v1/ingest", content=gz(batch(events)), headers={"Content-Encoding": "gzip"})
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": len(events), "stored": len(events), "duplicates": 0}
    assert _count(client) == len(events)
    row = client.app.state.collector.storage.fetch(
        "SELECT agent, host, pid, model, cost_usd FROM events WHERE kind = 'llm_call' LIMIT 1"
    )[0]
    assert row == {"agent": "marcus", "host": "box", "pid": 4242, "model": "gpt-4o", "cost_usd": 0.01}


def test_plain_json_batch_is_stored(make_client: Any) -> None:
    client = make_client(auth=False)
    r = client.post("/v1/ingest", content=json.dumps(batch([ev("event", {"name": "hi"})])))
    assert r.status_code == 200
    assert r.json()["stored"] == 1


def test_retried_batch_is_stored_once(make_client: Any) -> None:
    client = make_client(auth=False)
    body = gz(batch(session_trace()))
    first = client.post("/v1/ingest", content=body, headers={"Content-Encoding": "gzip"}).json()
    second = client.post("/v1/ingest", content=body, headers={"Content-Encoding": "gzip"}).json()
    assert first["stored"] == first["accepted"]
    assert second == {"accepted": first["accepted"], "stored": 0, "duplicates": first["accepted"]}
    assert _count(client) == first["accepted"]


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b["events"][1]["data"].__setitem__("name", 5), "events[1].data.name"),
        (lambda b: b["events"][2]["data"].__setitem__("input_tokens", -3), "events[2].data.input_tokens"),
        (lambda b: b["events"][0].__setitem__("kind", "nope"), "events[0].kind"),
        (lambda b: b["events"][0].pop("kind"), "events[0].kind"),
        (lambda b: b["events"][3].pop("id"), "events[3].id"),
        (lambda b: b.pop("agent"), "agent"),
        (lambda b: b["process"].__setitem__("pid", "x"), "process.pid"),
        (lambda b: b["events"][0].__setitem__("surprise", 1), "events[0].surprise"),
    ],
)
def test_invalid_batch_gets_422_naming_the_field(make_client: Any, mutate: Any, field: str) -> None:
    client = make_client(auth=False)
    body = batch(session_trace())
    mutate(body)
    r = client.post("/v1/ingest", content=gz(body), headers={"Content-Encoding": "gzip"})
    assert r.status_code == 422, r.text
    payload = r.json()
    assert payload["error"] == "invalid_batch"
    assert payload["field"] == field
    assert field in payload["message"]
    assert _count(client) == 0  # nothing of a bad batch is stored


def test_not_json_is_400_and_bad_gzip_is_400(make_client: Any) -> None:
    client = make_client(auth=False)
    assert client.post("/v1/ingest", content=b"{not json").status_code == 400
    r = client.post("/v1/ingest", content=b"\x1f\x8b\x08garbage", headers={"Content-Encoding": "gzip"})
    assert r.status_code == 400
    truncated = gz(batch([ev("event", {"name": "x"})]))[:-12]
    r = client.post("/v1/ingest", content=truncated, headers={"Content-Encoding": "gzip"})
    assert r.status_code == 400
    assert "truncated" in r.json()["message"]


def test_unknown_encoding_is_415(make_client: Any) -> None:
    client = make_client(auth=False)
    r = client.post("/v1/ingest", content=b"{}", headers={"Content-Encoding": "br"})
    assert r.status_code == 415


def test_gzip_bomb_is_413_after_at_most_the_limit(make_client: Any) -> None:
    limit = 64 * 1024
    client = make_client(auth=False, max_decompressed_bytes=limit)
    bomb = gzip.compress(b"\0" * (32 * 1024 * 1024), compresslevel=9)  # 32 MiB inflated, ~32 KiB sent
    assert len(bomb) < 1024 * 1024
    r = client.post("/v1/ingest", content=bomb, headers={"Content-Encoding": "gzip"})
    assert r.status_code == 413
    assert r.json()["error"] == "too_large"
    # Nothing stays reserved once the request is answered.
    assert client.app.state.collector.budget.used == 0


def test_inflater_never_produces_more_than_the_limit() -> None:
    bomb = gzip.compress(b"a" * (50 * 1024 * 1024), compresslevel=9)
    inf = Inflater(limit=10_000)
    produced: List[int] = []
    with pytest.raises(IngestError) as info:
        for i in range(0, len(bomb), 4096):
            produced.append(inf.feed(bomb[i : i + 4096]))
    assert info.value.status == 413
    assert sum(produced) <= 10_001
    assert inf.size <= 10_001


def test_inflater_reads_concatenated_members_and_split_chunks() -> None:
    body = gzip.compress(b'{"a": ') + gzip.compress(b"1}")
    inf = Inflater(limit=1000)
    for b in body:
        inf.feed(bytes([b]))
    assert inf.finish() == b'{"a": 1}'


def test_body_over_the_limit_is_413(make_client: Any) -> None:
    client = make_client(auth=False, max_body_bytes=4096)
    big = json.dumps(batch([ev("event", {"name": "x" * 10_000})])).encode()
    assert client.post("/v1/ingest", content=big).status_code == 413
    # Without a Content-Length (chunked), the limit holds while reading.
    r = client.post("/v1/ingest", content=iter([big[:3000], big[3000:]]))
    assert r.status_code == 413


def test_plain_body_is_held_to_the_decompressed_limit_too(make_client: Any) -> None:
    client = make_client(auth=False, max_decompressed_bytes=2048)
    big = json.dumps(batch([ev("event", {"name": "x" * 5000})])).encode()
    assert client.post("/v1/ingest", content=big).status_code == 413


async def test_memory_budget_refuses_with_503() -> None:
    budget = MemoryBudget(1000)
    assert budget.reserve(900)
    reader = BodyReader(budget, max_body=10_000, max_decompressed=10_000, gzip=False)

    async def chunks() -> Any:
        yield b"x" * 200

    with pytest.raises(IngestError) as info:
        await reader.read(chunks())
    reader.release()
    assert info.value.status == 503
    assert info.value.headers["Retry-After"]
    budget.release(900)
    assert budget.used == 0


class _BlockingStorage(SQLiteStorage):
    """A real SQLite store whose commits wait for a signal: the disk is slow."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gate = threading.Event()
        self.entered = threading.Event()

    def insert_events(self, groups: Sequence[Sequence[Row]]) -> List[int]:
        self.entered.set()
        self.gate.wait(10)
        return super().insert_events(groups)


def test_overload_answers_503_with_retry_after(live_server: Any, tmp_path: Path) -> None:
    store = _BlockingStorage(tmp_path / "slow.db")
    try:
        server = live_server(storage=store, auth=False, max_queue_events=10)
        url = server.url + "/v1/ingest"
        first: List[Any] = []
        t = threading.Thread(
            target=lambda: first.append(
                requests.post(url, data=json.dumps(batch(session_trace(calls=5))), timeout=20)
            )
        )
        t.start()
        assert store.entered.wait(10)
        # The first batch (9 events) waits for the disk; 9 + 9 > 10: refused, not buffered.
        r = requests.post(url, data=json.dumps(batch(session_trace(calls=5))), timeout=10)
        assert r.status_code == 503
        assert r.headers["Retry-After"] == "1"
        assert r.json()["error"] == "overloaded"
        store.gate.set()
        t.join(20)
        assert first[0].status_code == 200
        # Once the disk caught up the same batch goes in.
        r = requests.post(url, data=json.dumps(batch(session_trace(calls=5))), timeout=10)
        assert r.status_code == 200
    finally:
        store.gate.set()
        store.close()


def test_sdk_http_exporter_delivers_to_the_collector(live_server: Any, tmp_path: Path) -> None:
    """The SDK's own HTTP exporter speaks the contract the collector enforces (gzip, bearer key)."""
    import agentpulse

    db = tmp_path / "collector.db"
    store = open_storage(db)
    store.migrate()
    _, key = KeyStore(store).create("sdk")
    store.close()
    server = live_server(store=str(db))
    agentpulse.init(endpoint=server.url, api_key=key, agent_name="exporter-test", flush_interval=0.05)
    with agentpulse.session("exported"):
        agentpulse.event("hello", {"n": 1})
    assert agentpulse.shutdown(timeout=10)
    check = open_storage(db)
    try:
        rows = check.fetch("SELECT kind, agent, session FROM events WHERE session = 'exported' ORDER BY ts")
    finally:
        check.close()
    assert [r["kind"] for r in rows] == ["span_start", "event", "span_end"]
    assert {r["agent"] for r in rows} == {"exporter-test"}


# -- auth -----------------------------------------------------------------------------------


def test_missing_or_bad_key_is_401(make_client: Any, tmp_path: Path) -> None:
    client = make_client()
    body = gz(batch([ev("event", {"name": "x"})]))
    headers = {"Content-Encoding": "gzip"}
    r = client.post("/v1/ingest", content=body, headers=headers)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert r.json()["error"] == "unauthorized"
    r = client.post("/v1/ingest", content=body, headers={**headers, "Authorization": "Bearer ap_nope"})
    assert r.status_code == 401
    r = client.post("/v1/ingest", content=body, headers={**headers, "Authorization": "Basic abc"})
    assert r.status_code == 401
    assert _count(client) == 0


def test_key_created_while_running_works_and_revoked_key_stops(make_client: Any, tmp_path: Path) -> None:
    client = make_client()
    # Created by another process (`agentpulse keys create`) after the collector started.
    other = open_storage(tmp_path / "collector.db")
    other.migrate()
    keys = KeyStore(other)
    record, secret = keys.create("ci")
    headers = {"Authorization": f"Bearer {secret}"}
    r = client.post("/v1/ingest", content=json.dumps(batch([ev("event", {"name": "x"})])), headers=headers)
    assert r.status_code == 200, r.text
    keys.revoke(record.id)
    other.close()
    client.app.state.collector.maintain_once()  # the periodic refresh
    r = client.post("/v1/ingest", content=json.dumps(batch([ev("event", {"name": "y"})])), headers=headers)
    assert r.status_code == 401


def test_reads_need_a_key_off_loopback_but_not_on_it(make_client: Any, tmp_path: Path) -> None:
    local = make_client()
    assert local.get("/api/traces").status_code == 200
    guarded = make_client(read_auth=True, store=str(tmp_path / "other.db"))
    assert guarded.get("/api/traces").status_code == 401
    _, secret = guarded.app.state.collector.keys.create("reader")
    r = guarded.get("/api/traces", headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code == 200
    # The dashboard's own files and the API description stay public: they hold no data.
    assert guarded.get("/").status_code == 200
    assert guarded.get("/api/openapi.json").status_code == 200


def test_llm_call_without_span_is_a_trace_of_its_own(make_client: Any) -> None:
    client = make_client(auth=False)
    call = ev("llm_call", llm("gpt-4o-mini", 0.002), span_id="00f067aa0ba902b7")
    assert client.post("/v1/ingest", content=json.dumps(batch([call]))).status_code == 200
    traces = client.get("/api/traces").json()["traces"]
    assert traces[0]["trace_id"] == "00f067aa0ba902b7"
    assert traces[0]["root_kind"] == "llm_call"
    tree = client.get("/api/traces/00f067aa0ba902b7").json()
    assert tree["spans"][0]["type"] == "llm_call"
    assert tree["cost_usd"] == 0.002


def test_zlib_is_not_gzip(make_client: Any) -> None:
    client = make_client(auth=False)
    body = zlib.compress(json.dumps(batch([ev("event", {"name": "x"})])).encode())
    r = client.post("/v1/ingest", content=body, headers={"Content-Encoding": "gzip"})
    assert r.status_code == 400


def test_parse_workers_validate_in_other_processes(make_client: Any) -> None:
    client = make_client(auth=False, parse_workers=1, parse_threshold_bytes=0)
    parser = client.app.state.collector.parser
    deadline = time.monotonic() + 60
    while not parser.ready and time.monotonic() < deadline:
        time.sleep(0.02)
    assert parser.ready
    events = session_trace(calls=4)
    r = client.post("/v1/ingest", content=gz(batch(events)), headers={"Content-Encoding": "gzip"})
    assert r.json() == {"accepted": len(events), "stored": len(events), "duplicates": 0}
    bad = batch(session_trace())
    bad["events"][2]["data"]["output_tokens"] = "many"
    r = client.post("/v1/ingest", content=gz(bad), headers={"Content-Encoding": "gzip"})
    assert r.status_code == 422 and r.json()["field"] == "events[2].data.output_tokens"
    assert client.post("/v1/ingest", content=b"[1,").status_code == 400


def test_a_big_batch_is_validated_off_the_event_loop(make_client: Any) -> None:
    client = make_client(auth=False, parse_workers=0)
    events = [ev("event", {"name": f"e{i}", "data": {"text": "x" * 400}}) for i in range(1500)]
    body = json.dumps(batch(events)).encode()
    assert len(body) > 512 * 1024
    r = client.post("/v1/ingest", content=gzip.compress(body), headers={"Content-Encoding": "gzip"})
    assert r.json() == {"accepted": 1500, "stored": 1500, "duplicates": 0}
