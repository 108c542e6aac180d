"""The reporter: queue bounds, batching, retries, flush / shutdown deadlines, supervision.

HTTP traffic is mocked with ``responses`` (it intercepts ``requests``, which is
what our exporter uses); the outage tests use real sockets on 127.0.0.1.
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import re
import socket
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest
import requests
import responses

import agentpulse
from agentpulse.exporters.base import EncodedBatch, Exporter, ExportError
from agentpulse.exporters.http import HttpExporter
from agentpulse.exporters.memory import MemoryExporter
from agentpulse.models import Batch
from agentpulse.reporter import Reporter, new_event_ids, process_info

URL = "http://collector.test"
INGEST = URL + "/v1/ingest"


def raw_event(i: int, **data: Any) -> Dict[str, Any]:
    return {"kind": "event", "ts": time.time(), "data": {"name": f"e{i}", "data": {"i": i, **data}}}


def names(batches: List[EncodedBatch]) -> List[str]:
    return [json.loads(t)["data"]["name"] for b in batches for t in b.events_json]


def body_of(call: Any) -> Dict[str, Any]:
    decoded: Dict[str, Any] = json.loads(gzip.decompress(call.request.body))
    return decoded


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    """``responses`` intercepting our ``requests`` traffic; request it before ``reporters``."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as m:
        yield m


@pytest.fixture
def reporters() -> Iterator[Callable[..., Reporter]]:
    """Make reporters that are shut down (quickly) when the test ends."""
    made: List[Reporter] = []

    def make(exporter: Exporter, **options: Any) -> Reporter:
        options.setdefault("agent_name", "test")
        options.setdefault("flush_interval", 60.0)
        rep = Reporter(exporter, **options)
        made.append(rep)
        return rep

    yield make
    for rep in made:
        rep.shutdown(timeout=2)


class Gate(Exporter):
    """An exporter whose first export blocks until released; records what it exported."""

    name = "gate"

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.batches: List[EncodedBatch] = []

    def export(self, batch: EncodedBatch) -> None:
        self.entered.set()
        assert self.release.wait(10)
        self.batches.append(batch)


class Failing(Exporter):
    """Refuses every batch (retryable) until ``ok`` is set."""

    name = "failing"

    def __init__(self) -> None:
        self.ok = False
        self.batches: List[EncodedBatch] = []
        self.attempts = 0

    def export(self, batch: EncodedBatch) -> None:
        self.attempts += 1
        if not self.ok:
            raise ExportError("collector down", retryable=True)
        self.batches.append(batch)


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


class SilentServer:
    """Accepts connections and reads whatever comes, but never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.conns: List[socket.socket] = []
        self.received = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                pass
            else:
                conn.settimeout(0.05)
                self.conns.append(conn)
            for c in list(self.conns):
                try:
                    self.received += len(c.recv(65536))
                except (socket.timeout, OSError):
                    pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for c in self.conns:
            c.close()
        self.sock.close()


# -- batching and the wire -------------------------------------------------------


def test_batches_respect_max_batch_size_and_body_is_contract_json(
    mock: responses.RequestsMock, reporters: Callable[..., Reporter]
) -> None:
    mock.add(responses.POST, INGEST, status=202)
    rep = reporters(HttpExporter(URL, "secret-key"), max_batch_size=10)
    for i in range(25):
        rep.enqueue(raw_event(i))
    assert rep.flush(5)
    bodies = [body_of(c) for c in mock.calls]
    sizes = [len(b["events"]) for b in bodies]
    assert sum(sizes) == 25 and max(sizes) <= 10 and len(sizes) >= 3
    for call, body in zip(mock.calls, bodies):
        Batch.model_validate(body)
        assert call.request.headers["Content-Encoding"] == "gzip"
        assert call.request.headers["Content-Type"] == "application/json"
        assert call.request.headers["Authorization"] == "Bearer secret-key"
        assert body["agent"] == "test" and body["process"]["pid"] > 0
    got = [e["data"]["name"] for b in bodies for e in b["events"]]
    assert got == [f"e{i}" for i in range(25)]  # in order, once each
    stats = rep.stats()
    assert stats["sent"] == 25 and stats["queued"] == 0 and stats["dropped"] == 0


def test_event_ids_are_unique_time_ordered_uuid7() -> None:
    ids = new_event_ids(500) + new_event_ids(500)
    assert len(set(ids)) == 1000
    for i in ids:
        assert re.fullmatch(r"[0-9a-f]{12}7[0-9a-f]{3}[89ab][0-9a-f]{15}", i)
    assert ids[0][:12] <= ids[-1][:12]


def test_process_start_fingerprint_is_filled_on_the_worker(reporters: Callable[..., Reporter]) -> None:
    exp = MemoryExporter()
    rep = reporters(exp)
    rep.enqueue({"kind": "process_start", "ts": time.time(), "data": {}})
    assert rep.flush(5)
    fp = exp.events[0]["data"]["fingerprint"]
    assert fp["pid"] > 0 and fp["python"] and "openai" in fp["libraries"]
    assert process_info()["libraries"] == fp["libraries"]


# -- retries -------------------------------------------------------------------------


def test_5xx_then_200_is_delivered_once(
    mock: responses.RequestsMock, reporters: Callable[..., Reporter]
) -> None:
    mock.add(responses.POST, INGEST, status=503)
    mock.add(responses.POST, INGEST, status=200)
    sleeps: List[float] = []
    exp = HttpExporter(URL, sleep=sleeps.append)
    rep = reporters(exp)
    for i in range(3):
        rep.enqueue(raw_event(i))
    assert rep.flush(5)
    assert len(mock.calls) == 2 and len(sleeps) == 1
    first, second = (body_of(c) for c in mock.calls)
    assert [e["id"] for e in first["events"]] == [e["id"] for e in second["events"]]  # the same batch, resent
    stats = rep.stats()
    assert stats["sent"] == 3 and stats["retried"] == 1 and stats["failed"] == 0


def test_429_retry_after_is_honoured(mock: responses.RequestsMock) -> None:
    mock.add(responses.POST, INGEST, status=429, headers={"Retry-After": "7"})
    mock.add(responses.POST, INGEST, status=200)
    sleeps: List[float] = []
    exp = HttpExporter(URL, sleep=sleeps.append)
    exp.export(Reporter(exp, agent_name="t").encode([raw_event(1)]))  # type: ignore[arg-type]
    assert sleeps == [7.0]
    assert len(mock.calls) == 2


def test_retry_after_longer_than_backoff_keeps_the_batch_without_blocking(
    mock: responses.RequestsMock,
) -> None:
    mock.add(responses.POST, INGEST, status=429, headers={"Retry-After": "120"})
    sleeps: List[float] = []
    exp = HttpExporter(URL, sleep=sleeps.append, backoff_max=30)
    batch = Reporter(exp, agent_name="t").encode([raw_event(1)])
    assert batch is not None
    with pytest.raises(ExportError) as info:
        exp.export(batch)
    assert info.value.retryable and sleeps == []
    # Until then no request is made at all.
    with pytest.raises(ExportError, match="Retry-After"):
        exp.export(batch)
    assert len(mock.calls) == 1


def test_400_is_not_retried_and_logged_once(
    mock: responses.RequestsMock, reporters: Callable[..., Reporter], caplog: pytest.LogCaptureFixture
) -> None:
    mock.add(responses.POST, INGEST, status=400, body="bad batch")
    sleeps: List[float] = []
    rep = reporters(HttpExporter(URL, sleep=sleeps.append), max_batch_size=2)
    with caplog.at_level(logging.DEBUG, logger="agentpulse"):
        for i in range(4):
            rep.enqueue(raw_event(i))
        assert rep.flush(5)
    assert len(mock.calls) == 2 and sleeps == []  # one request per batch, no retry
    refused = [r for r in caplog.records if "HTTP 400" in r.getMessage() and r.levelno == logging.WARNING]
    assert len(refused) == 1
    stats = rep.stats()
    assert stats["failed"] == 4 and stats["sent"] == 0


def test_redirect_is_not_followed(mock: responses.RequestsMock) -> None:
    mock.add(responses.POST, INGEST, status=307, headers={"Location": "http://elsewhere.test/"})
    exp = HttpExporter(URL, sleep=lambda s: None)
    with pytest.raises(ExportError) as info:
        exp.export(Reporter(exp, agent_name="t").encode([raw_event(1)]))  # type: ignore[arg-type]
    assert not info.value.retryable and len(mock.calls) == 1


def test_sleeping_between_retries_keeps_draining_the_queue(
    mock: responses.RequestsMock, reporters: Callable[..., Reporter]
) -> None:
    mock.add(responses.POST, INGEST, status=503)
    rep: Optional[Reporter] = None

    def sleep(seconds: float) -> None:
        assert rep is not None
        for i in range(100, 130):
            rep.enqueue(raw_event(i))

    exp = HttpExporter(URL, sleep=sleep, max_retries=1)
    rep = reporters(exp, max_batch_size=1000)
    rep.enqueue(raw_event(0))
    rep.flush(0.5)
    # While the exporter waited, the worker moved the new events into encoded batches.
    assert len(rep._q) == 0
    assert rep.stats()["queued"] >= 31
    t = time.monotonic()
    assert rep.shutdown(0) is False  # the collector is still down: give up at once
    assert time.monotonic() - t < 5
    if rep._thread is not None:
        rep._thread.join(5)  # the worker gives the rest up on its own, right after
    assert rep.stats()["failed"] >= 31 and rep.stats()["queued"] == 0


# -- outages ---------------------------------------------------------------------------


def test_endpoint_down_user_code_unaffected_and_deadlines_hold() -> None:
    port = closed_port()
    agentpulse.init(endpoint=f"http://127.0.0.1:{port}", api_key="k", shutdown_timeout=1, flush_interval=0.05)
    for i in range(200):
        assert agentpulse.event("work", {"i": i}) is None
    t = time.monotonic()
    assert agentpulse.flush(timeout=1) is False
    assert time.monotonic() - t < 5
    t = time.monotonic()
    agentpulse.shutdown()
    assert time.monotonic() - t < 5


def test_silent_endpoint_flush_and_shutdown_return_in_time() -> None:
    server = SilentServer()
    try:
        agentpulse.init(endpoint=f"http://127.0.0.1:{server.port}", shutdown_timeout=1, flush_interval=0.05)
        for i in range(50):
            agentpulse.event("work", {"i": i})
        t = time.monotonic()
        assert agentpulse.flush(timeout=1) is False
        assert time.monotonic() - t < 5
        t = time.monotonic()
        agentpulse.shutdown()
        assert time.monotonic() - t < 5
        assert server.received > 0  # it did reach the server, which never answered
    finally:
        server.stop()


# -- bounds ----------------------------------------------------------------------------


def test_overflow_drops_the_oldest_and_counts_it(reporters: Callable[..., Reporter]) -> None:
    gate = Gate()
    rep = reporters(gate, max_queue_size=5, max_batch_size=1)
    rep.enqueue(raw_event(0))
    assert gate.entered.wait(5)  # the worker is stuck exporting event 0
    for i in range(1, 13):
        rep.enqueue(raw_event(i))
    assert rep.stats()["dropped"] == 7
    gate.release.set()
    assert rep.flush(5)
    assert names(gate.batches) == ["e0", "e8", "e9", "e10", "e11", "e12"]
    stats = rep.stats()
    assert stats["enqueued"] == 13 and stats["sent"] == 6 and stats["dropped"] == 7


def test_byte_bound_is_respected_during_an_outage(reporters: Callable[..., Reporter]) -> None:
    exp = Failing()
    rep = reporters(exp, max_queue_bytes=8_000, max_batch_size=2)
    for i in range(60):
        rep.enqueue(raw_event(i, pad="x" * 400))
    assert rep.flush(0.5) is False
    rep.flush(0.2)
    stats = rep.stats()
    assert stats["pending_bytes"] <= 8_000 + 2 * 600
    assert stats["dropped"] > 0 and stats["dropped"] + stats["queued"] == 60
    exp.ok = True
    assert rep.flush(5)
    delivered = names(exp.batches)
    assert delivered and delivered[-1] == "e59"
    assert delivered == sorted(delivered, key=lambda n: int(n[1:]))  # what survived is the newest, in order
    assert len(delivered) + rep.stats()["dropped"] == 60


def test_counters_are_exact_under_many_threads(reporters: Callable[..., Reporter]) -> None:
    exp = MemoryExporter()
    rep = reporters(exp, max_queue_size=500, max_batch_size=50, flush_interval=0.01)

    def produce(k: int) -> None:
        for i in range(2000):
            rep.enqueue(raw_event(k * 10_000 + i))

    threads = [threading.Thread(target=produce, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert rep.flush(10)
    stats = rep.stats()
    assert stats["enqueued"] == 16_000
    assert stats["sent"] + stats["dropped"] == 16_000
    assert stats["sent"] == len(exp.events) and stats["queued"] == 0
    assert len({e["id"] for e in exp.events}) == stats["sent"]


def test_flush_waits_only_for_what_was_queued_before_it(reporters: Callable[..., Reporter]) -> None:
    exp = MemoryExporter()
    rep = reporters(exp, flush_interval=0.01)
    assert rep.flush(1)  # nothing queued: immediate
    stop = threading.Event()

    def keep_producing() -> None:
        i = 0
        while not stop.is_set():
            rep.enqueue(raw_event(i))
            i += 1
            time.sleep(0.0005)

    t = threading.Thread(target=keep_producing)
    t.start()
    try:
        rep.enqueue(raw_event(-1))
        assert rep.flush(5)  # not starved by the producer that never stops
        assert "e-1" in names(exp.batches)
    finally:
        stop.set()
        t.join()


# -- the worker --------------------------------------------------------------------------


class Die(BaseException):
    pass


class Killer(Exporter):
    """Raises ``Die`` (not an Exception: it gets past ordinary handlers) on its first export."""

    name = "killer"

    def __init__(self) -> None:
        self.kills = 1
        self.batches: List[EncodedBatch] = []

    def export(self, batch: EncodedBatch) -> None:
        if self.kills:
            self.kills -= 1
            raise Die()
        self.batches.append(batch)


def test_dead_worker_is_restarted_on_next_enqueue(reporters: Callable[..., Reporter]) -> None:
    exp = Killer()
    rep = reporters(exp, flush_interval=0.01)
    rep.enqueue(raw_event(0))
    first = rep._thread
    assert first is not None
    first.join(5)
    assert not first.is_alive() and not rep._running
    rep.enqueue(raw_event(1))
    assert rep.flush(5)
    assert rep._thread is not first and rep._thread is not None and rep._thread.is_alive()
    assert names(exp.batches) == ["e1"]
    stats = rep.stats()
    assert stats["worker_restarts"] == 1 and stats["failed"] == 1 and stats["sent"] == 1


class Buggy(Exporter):
    name = "buggy"

    def __init__(self) -> None:
        self.calls = 0

    def export(self, batch: EncodedBatch) -> None:
        self.calls += 1
        raise KeyError("a bug in an exporter")


@pytest.mark.internal_errors_expected
def test_exception_in_exporter_is_contained(reporters: Callable[..., Reporter]) -> None:
    exp = Buggy()
    rep = reporters(exp, flush_interval=0.01, max_batch_size=1)
    for i in range(3):
        rep.enqueue(raw_event(i))
    assert rep.flush(5)
    assert rep._thread is not None and rep._thread.is_alive()  # survived
    assert rep.stats()["failed"] == 3 and exp.calls == 3


def test_no_thread_at_exit_means_the_flush_runs_inline(
    reporters: Callable[..., Reporter], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't create new thread at interpreter shutdown")

    exp = MemoryExporter()
    rep = reporters(exp)
    monkeypatch.setattr(threading.Thread, "start", refuse)
    rep.enqueue(raw_event(0))  # cannot start the worker: never raises
    assert rep.flush(2)
    assert [e["data"]["name"] for e in exp.events] == ["e0"]


def test_shutdown_closes_exporter_once_and_drops_later_events() -> None:
    closed: List[int] = []

    class Closing(MemoryExporter):
        def close(self) -> None:
            closed.append(1)

    rep = Reporter(Closing(), agent_name="t", flush_interval=0.01)
    rep.enqueue(raw_event(0))
    assert rep.shutdown(2)
    assert rep.shutdown(2)
    rep.enqueue(raw_event(1))
    assert closed == [1]
    stats = rep.stats()
    assert stats["sent"] == 1 and stats["dropped"] == 1


# -- what reaches the wire -----------------------------------------------------------------


def test_bad_user_fields_are_repaired_or_dropped_not_raised(reporters: Callable[..., Reporter]) -> None:
    exp = MemoryExporter()
    rep = reporters(exp)
    rep.enqueue(
        {"kind": "alert", "ts": time.time(), "data": {"title": "t", "severity": "urgent", "details": {}}}
    )
    rep.enqueue({"kind": "metric", "ts": time.time(), "data": {"name": "m", "value": math.nan, "tags": {}}})
    rep.enqueue({"kind": "metric", "ts": time.time(), "data": {"name": "m", "value": 1.5, "tags": {}}})
    assert rep.flush(5)
    alert, metric = exp.events
    assert alert["data"]["severity"] == "warning" and alert["data"]["_invalid"] == {"severity": "'urgent'"}
    assert metric["data"]["value"] == 1.5
    stats = rep.stats()
    assert stats["repaired"] == 1 and stats["invalid"] == 1 and stats["sent"] == 2
    Batch.model_validate(json.loads(exp.batches[0].body()))


@pytest.mark.internal_errors_expected
def test_an_sdk_event_that_fails_validation_is_an_internal_error(reporters: Callable[..., Reporter]) -> None:
    from agentpulse._internal import internal_errors

    exp = MemoryExporter()
    rep = reporters(exp)
    rep.enqueue({"kind": "span_end", "ts": time.time(), "data": {"name": "s"}})  # no status, no duration
    rep.enqueue({"kind": "no_such_kind", "ts": time.time(), "data": {}})
    assert rep.flush(5)
    assert exp.events == [] and rep.stats()["invalid"] == 2
    assert {w for w, _ in internal_errors.recorded} >= {"reporter.validate.span_end"}


def test_lone_surrogates_are_replaced_not_fatal(reporters: Callable[..., Reporter]) -> None:
    exp = MemoryExporter()
    rep = reporters(exp)
    rep.enqueue(raw_event(0, text="broken \ud800 text"))
    assert rep.flush(5)
    assert exp.events[0]["data"]["data"]["text"] == "broken ? text"


def test_requests_is_our_transport_not_httpx() -> None:
    # Users' tests that mock httpx/httpx2 (the LLM SDKs' transport) must never see our traffic.
    from pathlib import Path

    import agentpulse.exporters.http as http_module

    source = Path(http_module.__file__).read_text(encoding="utf-8")
    assert "import requests" in source and "httpx" not in source.replace("httpx/httpx2", "")
    assert isinstance(HttpExporter(URL)._get_session(), requests.Session)
