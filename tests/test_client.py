"""The client: init() once per process, enabled=False, manual events, process events."""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

import agentpulse
from agentpulse import context
from agentpulse.client import get_client

Captured = Any


def reporter_threads() -> List[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "agentpulse-reporter"]


def test_enabled_false_is_a_cheap_no_op(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import openai.resources.chat.completions as chat

    create = chat.Completions.__dict__["create"]
    start, hook, thook = threading.Thread.start, sys.excepthook, threading.excepthook
    before = len(reporter_threads())
    db = tmp_path / "off.db"
    client = agentpulse.init(enabled=False, local_path=str(db))
    assert client.enabled is False and repr(client) == "<AgentPulse disabled>"
    with agentpulse.session("s"):
        agentpulse.event("e", {"x": 1})
        agentpulse.metric("m", 1)
        agentpulse.alert("a")
    assert agentpulse.flush() is True and agentpulse.stats() == {}
    # Nothing patched, no hook, no thread, no file.
    assert chat.Completions.__dict__["create"] is create
    assert (threading.Thread.start, sys.excepthook, threading.excepthook) == (start, hook, thook)
    assert len(reporter_threads()) == before and not db.exists()
    assert agentpulse.shutdown() is True


def test_enabled_false_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTPULSE_ENABLED", "false")
    assert agentpulse.init().enabled is False


def test_second_init_returns_the_same_client(caplog: pytest.LogCaptureFixture) -> None:
    first = agentpulse.init(exporter="memory", agent_name="a")
    with caplog.at_level(logging.WARNING, logger="agentpulse"):
        assert agentpulse.init() is first
        assert agentpulse.init(exporter="memory", agent_name="a") is first
        assert not caplog.records
        assert agentpulse.init(exporter="memory", agent_name="other") is first
    (record,) = caplog.records
    assert record.name == "agentpulse" and "called again with other options" in record.getMessage()
    assert get_client() is first


def test_init_after_shutdown_makes_a_new_client() -> None:
    first = agentpulse.init(exporter="memory")
    agentpulse.shutdown()
    assert get_client() is None
    agentpulse.event("ignored")  # no client: a no-op
    assert agentpulse.init(exporter="memory") is not first


def test_default_exporter_is_the_local_store(tmp_path: Path) -> None:
    client = agentpulse.init()
    assert client.exporter.name == "local" and str(tmp_path) in client.exporter.describe()


def test_api_key_without_endpoint_is_a_config_error() -> None:
    with pytest.raises(agentpulse.ConfigError, match="endpoint"):
        agentpulse.init(api_key="k")


def test_manual_events(ap: Captured) -> None:
    agentpulse.event("email_sent", {"to": 3})
    agentpulse.metric("inbox_size", 42, tags={"box": "main"})
    agentpulse.alert("quota low", "error", {"left": 1})
    event, metric, alert = (ap.events(k)[0]["data"] for k in ("event", "metric", "alert"))
    assert event == {"name": "email_sent", "data": {"to": 3}}
    assert metric == {"name": "inbox_size", "value": 42.0, "tags": {"box": "main"}}
    assert alert == {"title": "quota low", "severity": "error", "details": {"left": 1}}


def test_manual_events_never_raise_on_odd_input(ap: Captured) -> None:
    agentpulse.event("list", [1, 2])  # type: ignore[arg-type]
    agentpulse.event("none", None)
    agentpulse.event("obj", object())  # type: ignore[arg-type]
    agentpulse.event(123, {"k": 1})  # type: ignore[arg-type]
    agentpulse.metric("not a number", "lots")  # type: ignore[arg-type]
    agentpulse.metric("nan", float("nan"))
    agentpulse.alert("odd severity", "urgent")
    events = ap.events()
    by_name = {e["data"].get("name") or e["data"].get("title"): e for e in events[1:]}
    assert by_name["list"]["data"]["data"] == {"value": [1, 2]}
    assert by_name["none"]["data"]["data"] == {}
    assert by_name["obj"]["data"]["data"]["value"].startswith("<object object")
    assert by_name["odd severity"]["data"]["severity"] == "warning"
    stats = agentpulse.stats()
    assert stats["invalid"] == 3  # name 123, "lots", NaN: dropped, counted, not raised


def test_data_is_captured_at_call_time(ap: Captured) -> None:
    data: Dict[str, Any] = {"step": 1}
    agentpulse.event("a", data)
    data["step"] = 2
    agentpulse.event("b", data)
    assert [e["data"]["data"]["step"] for e in ap.events("event")] == [1, 2]
    assert data == {"step": 2}  # and the user's dict is not touched


def test_before_send_can_edit_or_drop(capture: Any) -> None:
    def before_send(ev: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        if ev["kind"] == "event" and ev["data"]["name"] == "secret":
            return None
        ev["data"].setdefault("seen", True)
        return ev

    ap = capture(before_send=before_send)
    agentpulse.event("secret")
    agentpulse.event("public")
    (event,) = ap.events("event")
    assert event["data"]["name"] == "public" and event["data"]["seen"] is True
    assert agentpulse.stats()["dropped_by_before_send"] == 1


@pytest.mark.internal_errors_expected
def test_a_failing_before_send_keeps_the_event(capture: Any) -> None:
    def before_send(ev: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        raise RuntimeError("user bug")

    ap = capture(before_send=before_send)
    agentpulse.event("kept")
    assert [e["data"]["name"] for e in ap.events("event")] == ["kept"]


def test_process_start_and_stop(ap: Captured) -> None:
    (start,) = ap.events("process_start")
    fingerprint = start["data"]["fingerprint"]
    assert fingerprint["pid"] > 0 and fingerprint["python"] and fingerprint["libraries"]["openai"]
    agentpulse.event("x")
    exporter = ap.client.exporter
    agentpulse.shutdown()
    stop = [e for e in exporter.events if e["kind"] == "process_stop"]
    assert len(stop) == 1 and stop[0]["data"]["uptime_s"] >= 0
    assert stop[0]["data"]["counters"]["enqueued"] >= 2


def test_stats_counters(ap: Captured) -> None:
    for i in range(5):
        agentpulse.event("e", {"i": i})
    assert agentpulse.flush(5)
    stats = agentpulse.stats()
    for key in ("queued", "sent", "dropped", "retried", "failed", "coerced", "truncated"):
        assert key in stats
    assert stats["sent"] == 6 and stats["queued"] == 0 and stats["dropped"] == 0


def test_reporter_thread_does_not_carry_the_users_span(capture: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from agentpulse.exporters.memory import MemoryExporter
    from agentpulse.reporter import Reporter

    bound: List[threading.Thread] = []
    real = context._bind_run
    monkeypatch.setattr(context, "_bind_run", lambda t: (bound.append(t), real(t)))
    capture()  # installs thread propagation
    rep = Reporter(MemoryExporter(), agent_name="t", flush_interval=60)
    try:
        with agentpulse.session("s"):
            user_thread = threading.Thread(target=lambda: None)
            user_thread.start()
            user_thread.join()
            rep.enqueue({"kind": "event", "ts": time.time(), "data": {"name": "x", "data": {}}})
        assert rep._thread is not None
        assert user_thread in bound and rep._thread not in bound
    finally:
        rep.shutdown(2)


# -- thread propagation: install / uninstall ----------------------------------------


def test_pool_threads_do_not_keep_the_span_they_were_started_in(ap: Captured) -> None:
    from concurrent.futures import ThreadPoolExecutor

    seen: List[Optional[str]] = []

    def where() -> None:
        span = agentpulse.current_span()
        seen.append(span.name if span is not None else None)

    with ThreadPoolExecutor(max_workers=1) as pool:
        with agentpulse.session("first"):
            pool.submit(where).result()  # the pool starts its thread here, inside "first"
        pool.submit(where).result()  # same thread, outside any span
        with agentpulse.session("second"):
            pool.submit(where).result()
    assert seen == ["first", None, "second"]


def test_uninstall_restores_and_leaves_later_wrappers_working(capture: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    original_start, original_submit = threading.Thread.start, ThreadPoolExecutor.submit
    capture()
    ours = threading.Thread.start
    assert ours is not original_start and ThreadPoolExecutor.submit is not original_submit
    agentpulse.shutdown()
    assert threading.Thread.start is original_start and ThreadPoolExecutor.submit is original_submit

    capture()
    ours = threading.Thread.start
    calls: List[str] = []

    def theirs(self: threading.Thread, *a: Any, **k: Any) -> Any:  # another tool wraps ours
        calls.append(self.name)
        return ours(self, *a, **k)

    threading.Thread.start = theirs  # type: ignore[method-assign]
    try:
        agentpulse.shutdown()
        assert threading.Thread.start is theirs  # not ripped out from under them
        capture()  # a new init() wraps again: no recursion, no double binding
        with agentpulse.session("s"):
            box: List[Optional[str]] = []
            t = threading.Thread(
                target=lambda: box.append(getattr(agentpulse.current_span(), "name", None)), name="u"
            )
            t.start()
            t.join()
        assert box == ["s"] and "u" in calls
        agentpulse.shutdown()
        assert threading.Thread.start is theirs
    finally:
        threading.Thread.start = original_start  # type: ignore[method-assign]
