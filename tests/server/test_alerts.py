"""Alert rules, and delivery to a webhook on 127.0.0.1 that fails, then answers."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
from collector_helpers import cron_run, ev, insert, llm

from agentpulse.server.alerts import AlertEngine, webhook_payload
from agentpulse.server.query import Query
from agentpulse.server.service import Collector
from agentpulse.server.settings import AlertRules, ServerSettings
from agentpulse.server.storage.base import Storage

HOUR = 3600.0


class WebhookReceiver:
    """A webhook endpoint on 127.0.0.1 answering from a script: (status, headers) per request, then 200."""

    def __init__(self, script: Optional[List[Tuple[int, Dict[str, str]]]] = None) -> None:
        self.script = list(script or [])
        self.bodies: List[Dict[str, Any]] = []
        self.statuses: List[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length))
                status, headers = receiver.script.pop(0) if receiver.script else (200, {})
                receiver.bodies.append(body)
                receiver.statuses.append(status)
                payload = b"ok" if status < 300 else b"nope"
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T000/B000"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Any]:
    made: List[WebhookReceiver] = []

    def make(script: Optional[List[Tuple[int, Dict[str, str]]]] = None) -> WebhookReceiver:
        r = WebhookReceiver(script)
        made.append(r)
        return r

    yield make
    for r in made:
        r.stop()


def _settings(**kw: Any) -> ServerSettings:
    kw.setdefault("store", "unused")
    kw.setdefault("webhook_backoff", 0.01)
    return ServerSettings(**kw)


def _wait_delivery(storage: Storage, state: str, timeout: float = 10.0) -> Dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        rows = storage.fetch("SELECT delivery, attempts, last_error, delivered_at FROM server_alerts")
        if rows and rows[0]["delivery"] == state:
            return rows[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"delivery never became {state}: {rows}")
        time.sleep(0.01)


def test_delivery_retries_until_the_webhook_answers(storage: Storage, receiver: Any) -> None:
    hook = receiver([(503, {"Retry-After": "0"}), (500, {}), (429, {"Retry-After": "0"})])
    engine = AlertEngine(
        storage, _settings(webhook_url=hook.url, public_url="http://agentpulse.internal:8484")
    )
    engine.start()
    try:
        alert = engine.raise_alert(
            "k1", rule="cost_per_hour", title="Spend passed $5.00", details={"spend_usd": 6.1}
        )
        assert alert is not None and alert["delivery"] == "pending"
        row = _wait_delivery(storage, "sent")
    finally:
        engine.stop()
    assert row["attempts"] == 4 and row["delivered_at"] is not None
    assert hook.statuses == [503, 500, 429, 200]
    body = hook.bodies[-1]
    assert body["text"] == body["content"]  # Slack reads text, Discord reads content
    assert "Spend passed $5.00" in body["text"] and "spend_usd=6.1" in body["text"]
    assert "http://agentpulse.internal:8484/#/alerts" in body["text"]
    assert body["alert"]["rule"] == "cost_per_hour" and body["alert"]["details"] == {"spend_usd": 6.1}


def test_a_refused_alert_is_not_retried(storage: Storage, receiver: Any) -> None:
    hook = receiver([(400, {})])
    engine = AlertEngine(storage, _settings(webhook_url=hook.url))
    engine.start()
    try:
        engine.raise_alert("k2", rule="error_rate", title="Errors")
        row = _wait_delivery(storage, "failed")
    finally:
        engine.stop()
    assert row["attempts"] == 1 and "HTTP 400" in row["last_error"]
    assert hook.statuses == [400]


def test_delivery_gives_up_after_max_attempts(storage: Storage, receiver: Any) -> None:
    hook = receiver([(502, {})] * 10)
    engine = AlertEngine(storage, _settings(webhook_url=hook.url, webhook_max_attempts=3))
    engine.start()
    try:
        engine.raise_alert("k3", rule="cron_missed", title="Missed")
        row = _wait_delivery(storage, "failed")
    finally:
        engine.stop()
    assert row["attempts"] == 3 and hook.statuses == [502, 502, 502]
    assert engine.stats() == (0, 1)


def test_unreachable_webhook_is_retried(storage: Storage) -> None:
    from collector_helpers import free_port

    engine = AlertEngine(
        storage, _settings(webhook_url=f"http://127.0.0.1:{free_port()}/hook", webhook_max_attempts=2)
    )
    engine.raise_alert("k4", rule="sdk", title="x")
    engine.deliver_pending()
    time.sleep(0.02)
    engine.deliver_pending()
    engine.stop()
    row = storage.fetch("SELECT delivery, attempts, last_error FROM server_alerts")[0]
    assert row["delivery"] == "failed" and row["attempts"] == 2 and "ConnectionError" in row["last_error"]


def test_without_webhook_alerts_are_only_shown(storage: Storage) -> None:
    engine = AlertEngine(storage, _settings())
    engine.start()  # nothing to deliver to: no thread
    assert engine.raise_alert("k5", rule="sdk", title="x") is not None
    engine.stop()
    assert storage.fetch("SELECT delivery FROM server_alerts")[0]["delivery"] == "none"


def test_payload_fits_discord() -> None:
    body = webhook_payload(
        {"title": "x" * 3000, "severity": "critical", "details": {"a": 1, "nested": {"b": 2}}}
    )
    assert len(body["content"]) == 2000 and body["text"].startswith("[AgentPulse] CRITICAL: x")
    assert "nested" not in body["text"].splitlines()[1]


# -- rules ------------------------------------------------------------------------------------


def _calls(n: int, ts: float, *, cost: float = 0.5, errors: int = 0) -> List[Dict[str, Any]]:
    return [
        ev(
            "llm_call",
            llm(cost=cost, status="error" if i < errors else "success"),
            ts=ts + i,
            span_id=f"{i:016x}",
        )
        for i in range(n)
    ]


def test_cost_rules_fire_once_per_window(storage: Storage) -> None:
    now = time.time()
    hour_start = (now // HOUR) * HOUR
    insert(storage, _calls(3, max(hour_start, now - 30), cost=0.5))  # $1.50 this hour
    engine = AlertEngine(storage, _settings(rules=AlertRules(cost_per_hour=1.0, cost_per_day=1.2)))
    first = engine.evaluate(now)
    assert sorted(a["rule"] for a in first) == ["cost_per_day", "cost_per_hour"]
    assert engine.evaluate(now) == []  # the same hour and day: no second alert
    hour_alert = next(a for a in first if a["rule"] == "cost_per_hour")
    assert "$1.50" in hour_alert["title"] and "$1.00" in hour_alert["title"]
    assert engine.evaluate(now + HOUR) == []  # next hour: nothing spent yet


def test_cost_rule_stays_quiet_under_the_threshold(storage: Storage) -> None:
    now = time.time()
    insert(storage, _calls(1, now - 1, cost=0.1))
    engine = AlertEngine(storage, _settings(rules=AlertRules(cost_per_hour=1.0)))
    assert engine.evaluate(now) == []


def test_error_rate_rule(storage: Storage) -> None:
    now = time.time()
    insert(storage, _calls(10, now - 100, cost=0.0, errors=4))
    quiet = AlertEngine(storage, _settings(rules=AlertRules(error_rate=0.5)))
    assert quiet.evaluate(now) == []
    too_few = AlertEngine(storage, _settings(rules=AlertRules(error_rate=0.3, error_rate_min_calls=20)))
    assert too_few.evaluate(now) == []
    loud = AlertEngine(storage, _settings(rules=AlertRules(error_rate=0.3)))
    (alert,) = loud.evaluate(now)
    assert alert["rule"] == "error_rate" and alert["severity"] == "error" and "4 of 10" in alert["title"]


def test_cron_rules(storage: Storage) -> None:
    now = (time.time() // HOUR) * HOUR + 20 * 60
    slot = (now // HOUR) * HOUR
    events = cron_run("skipped", slot - 3 * HOUR + 5) + cron_run("broken", slot + 5, ok=False)
    events += cron_run("slow", slot + 5, duration=600, max_runtime=60)
    insert(storage, events)
    engine = AlertEngine(storage, _settings())
    alerts = {a["rule"]: a for a in engine.evaluate(now)}
    assert set(alerts) == {"cron_missed", "cron_failing", "cron_overran"}
    assert "'skipped' missed" in alerts["cron_missed"]["title"]
    assert engine.evaluate(now) == []
    # An hour later every monitor missed its next slot: one new alert each.
    later = engine.evaluate(now + HOUR)
    assert {a["rule"] for a in later} == {"cron_missed"}
    assert sorted(a["details"] for a in later) == sorted(
        json.dumps({"monitor": m, "schedule": "0 * * * *", "timezone": "UTC", "expected": slot + HOUR})
        for m in ("broken", "skipped", "slow")
    )
    off = AlertEngine(storage, _settings(rules=AlertRules(crons=False)))
    assert off.evaluate(now + 2 * HOUR) == []


def test_sdk_alerts_are_forwarded_once_and_listed_once(storage: Storage) -> None:
    now = time.time()
    insert(
        storage,
        [ev("alert", {"title": "Budget of $5/h passed", "severity": "error"}, ts=now - 5, session="s")],
    )
    engine = AlertEngine(storage, _settings())
    (alert,) = engine.evaluate(now)
    assert alert["source"] == "sdk" and alert["title"] == "Budget of $5/h passed"
    assert engine.evaluate(now) == []
    listed = Query(storage).alerts()["alerts"]
    assert len(listed) == 1 and listed[0]["rule"] == "sdk"


def test_collector_maintenance_runs_rules_and_retention(storage: Storage) -> None:
    now = time.time()
    insert(storage, [ev("event", {"name": "ancient"}, ts=now - 100 * 86400), ev("event", {"name": "fresh"})])
    insert(storage, _calls(2, now - 10, cost=1.0))
    collector = Collector(
        ServerSettings(store="unused", retention_days=30, rules=AlertRules(cost_per_hour=1.5)), storage
    )
    collector.maintain_once(now)
    names = {r["name"] for r in storage.fetch("SELECT name FROM events WHERE kind = 'event'")}
    assert names == {"fresh"}
    assert collector.pruned == 1
    assert [a["rule"] for a in collector.query.alerts()["alerts"]] == ["cost_per_hour"]
