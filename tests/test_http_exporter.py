"""The HTTP exporter on its own: headers, gzip, retry policy, Retry-After, deadlines, fork."""

from __future__ import annotations

import email.utils
import gzip
import json
import socket
import threading
import time
from typing import Any, Dict, Iterator, List

import pytest
import responses

from agentpulse.exporters.base import EncodedBatch, ExportError
from agentpulse.exporters.http import HttpExporter, parse_retry_after
from agentpulse.models import Batch
from agentpulse.reporter import Reporter

URL = "http://collector.test"
INGEST = URL + "/v1/ingest"


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as m:
        yield m


def batch_of(n: int = 2) -> EncodedBatch:
    raw: List[Dict[str, Any]] = [
        {"kind": "metric", "ts": time.time(), "data": {"name": f"m{i}", "value": i, "tags": {}}}
        for i in range(n)
    ]
    batch = Reporter(HttpExporter(URL), agent_name="exp-test").encode(raw)
    assert batch is not None
    return batch


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


# -- Retry-After ---------------------------------------------------------------------


def test_parse_retry_after() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(None) is None and parse_retry_after("") is None
    assert parse_retry_after("soon") is None and parse_retry_after("nan") is None
    now = time.time()
    future = email.utils.formatdate(now + 30, usegmt=True)
    assert 28 <= (parse_retry_after(future, now=now) or 0) <= 31
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


# -- the request ---------------------------------------------------------------------


def test_body_headers_and_no_key(mock: responses.RequestsMock) -> None:
    mock.add(responses.POST, INGEST, status=200)
    batch = batch_of(3)
    HttpExporter(URL).export(batch)
    req = mock.calls[0].request
    assert "Authorization" not in req.headers
    assert req.headers["User-Agent"].startswith("agentpulse-python/")
    assert gzip.decompress(req.body) == batch.body()
    parsed = Batch.model_validate(json.loads(gzip.decompress(req.body)))
    assert [e.data.name for e in parsed.events] == ["m0", "m1", "m2"]  # type: ignore[union-attr]


def test_5xx_exhausts_retries_with_growing_jittered_backoff(mock: responses.RequestsMock) -> None:
    mock.add(responses.POST, INGEST, status=502)
    sleeps: List[float] = []
    exp = HttpExporter(URL, max_retries=4, backoff_initial=1.0, backoff_max=5.0, sleep=sleeps.append)
    with pytest.raises(ExportError) as info:
        exp.export(batch_of())
    assert info.value.retryable
    assert len(mock.calls) == 5 and exp.retries == 4
    for n, s in enumerate(sleeps):
        base = min(5.0, 1.0 * 2**n)
        assert base * 0.5 <= s <= base


def test_401_is_final_and_warned_once_per_exporter(
    mock: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    mock.add(responses.POST, INGEST, status=401, body="bad key")
    exp = HttpExporter(URL, "wrong", sleep=lambda s: None)
    for _ in range(3):
        with pytest.raises(ExportError) as info:
            exp.export(batch_of())
        assert not info.value.retryable
    assert len(mock.calls) == 3
    warned = [r for r in caplog.records if "HTTP 401" in r.getMessage()]
    assert len(warned) == 1 and "bad key" in warned[0].getMessage()


def test_connection_refused_is_retryable() -> None:
    sleeps: List[float] = []
    exp = HttpExporter(f"http://127.0.0.1:{closed_port()}", max_retries=2, sleep=sleeps.append)
    with pytest.raises(ExportError) as info:
        exp.export(batch_of())
    assert info.value.retryable and len(sleeps) == 2
    exp.close()


def test_silent_server_times_out() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    try:
        exp = HttpExporter(f"http://127.0.0.1:{server.getsockname()[1]}", timeout=0.3, max_retries=0)
        t = time.monotonic()
        with pytest.raises(ExportError) as info:
            exp.export(batch_of())
        assert info.value.retryable and time.monotonic() - t < 5
        exp.close()
    finally:
        server.close()


def test_stop_cuts_a_backoff_sleep_short() -> None:
    exp = HttpExporter(f"http://127.0.0.1:{closed_port()}", backoff_initial=20, backoff_max=20, max_retries=3)
    threading.Timer(0.3, exp.stop).start()
    t = time.monotonic()
    with pytest.raises(ExportError):
        exp.export(batch_of())
    assert time.monotonic() - t < 5
    exp.close()


def test_past_deadline_no_request_is_made(mock: responses.RequestsMock) -> None:
    exp = HttpExporter(URL)
    exp.deadline = time.monotonic() - 1
    with pytest.raises(ExportError, match="no time left"):
        exp.export(batch_of())
    assert len(mock.calls) == 0


def test_deadline_bounds_backoff(mock: responses.RequestsMock) -> None:
    mock.add(responses.POST, INGEST, status=503, headers={"Retry-After": "25"})
    sleeps: List[float] = []
    exp = HttpExporter(URL, sleep=sleeps.append)
    exp.deadline = time.monotonic() + 2
    with pytest.raises(ExportError):
        exp.export(batch_of())
    assert sleeps and all(s <= 2 for s in sleeps)


def test_after_fork_drops_the_parents_session() -> None:
    exp = HttpExporter(URL)
    parent_session = exp._get_session()
    exp.after_fork()
    assert exp._get_session() is not parent_session
    exp.close()
    assert exp._session is None
    parent_session.close()


def test_session_is_reused_and_closed(mock: responses.RequestsMock) -> None:
    mock.add(responses.POST, INGEST, status=200)
    exp = HttpExporter(URL)
    exp.export(batch_of())
    session = exp._session
    exp.export(batch_of())
    assert exp._session is session and exp.requests_ok == 2
    exp.close()
    assert exp._session is None
