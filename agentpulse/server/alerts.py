"""Alerts: the collector's rules, and delivery of every alert to a webhook with retry.

Rules (``AlertRules``), evaluated every ``alert_interval`` seconds:

* LLM spend in the current clock hour, or the current day, passed a threshold;
* a cron monitor was missed, is failing, or overran its ``max_runtime``;
* the share of failed LLM calls over ``error_rate_window`` passed ``error_rate``;
* and alerts the SDKs raised (budgets, loops, cron watchdog) are forwarded.

Each alert is stored once (a ``dedupe_key`` per hour, day, missed slot, failed
run or SDK event), shown in the dashboard, and POSTed to ``webhook_url`` as
JSON that Slack and Discord incoming webhooks both accept (``text`` for one,
``content`` for the other) plus the structured ``alert``. Connection errors,
timeouts, 429 and 5xx are retried with exponential backoff (``Retry-After``
honoured) up to ``webhook_max_attempts``; the outcome is kept with the alert.

Example::

    engine = AlertEngine(storage, settings)
    engine.start()            # delivery thread
    engine.evaluate()         # the collector calls this every alert_interval
    engine.stop()
"""

from __future__ import annotations

import datetime
import json
import secrets
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import requests

from .._internal import capture_internal_errors, logger
from ..exporters.http import parse_retry_after
from .query import Query, day_bounds
from .settings import ServerSettings
from .storage.base import Storage, StorageError

__all__ = ["AlertEngine", "DeliveryResult", "WebhookSender", "webhook_payload"]

_SEVERITY_MARK = {"info": "INFO", "warning": "WARNING", "error": "ERROR", "critical": "CRITICAL"}
_COLUMNS = (
    "id, dedupe_key, source, rule, event_id, ts, title, severity, agent, details, delivery, attempts,"
    " last_error, delivered_at"
)


def webhook_payload(alert: Dict[str, Any], *, public_url: Optional[str] = None) -> Dict[str, Any]:
    """The JSON posted for ``alert``: ``text`` (Slack), ``content`` (Discord) and the alert itself.

    Example::

        body = webhook_payload({"title": "Cron 'nightly' missed", "severity": "error", "details": {}})
        assert body["text"] == body["content"]
    """
    severity = str(alert.get("severity") or "warning")
    lines = [f"[AgentPulse] {_SEVERITY_MARK.get(severity, severity.upper())}: {alert.get('title')}"]
    details = alert.get("details") or {}
    if isinstance(details, str):
        details = json.loads(details or "{}")
    facts = [f"{k}={v}" for k, v in details.items() if v is not None and not isinstance(v, (dict, list))][:8]
    if alert.get("agent"):
        facts.insert(0, f"agent={alert['agent']}")
    if facts:
        lines.append(", ".join(facts))
    if public_url:
        lines.append(f"{public_url.rstrip('/')}/#/alerts")
    text = "\n".join(lines)
    return {
        "text": text,
        # Discord refuses content longer than 2000 characters.
        "content": text if len(text) <= 2000 else text[:1997] + "...",
        "username": "AgentPulse",
        "alert": {
            "id": alert.get("id"),
            "rule": alert.get("rule"),
            "source": alert.get("source"),
            "title": alert.get("title"),
            "severity": severity,
            "ts": alert.get("ts"),
            "agent": alert.get("agent"),
            "details": details,
        },
    }


class DeliveryResult:
    """What one POST to the webhook gave: ``ok``, whether a failure may be retried, and when."""

    __slots__ = ("error", "ok", "retry_after", "retryable", "status")

    def __init__(
        self,
        ok: bool,
        *,
        status: Optional[int] = None,
        error: Optional[str] = None,
        retryable: bool = False,
        retry_after: Optional[float] = None,
    ) -> None:
        self.ok = ok
        self.status = status
        self.error = error
        self.retryable = retryable
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"DeliveryResult(ok={self.ok}, status={self.status}, error={self.error!r})"


class WebhookSender:
    """POSTs JSON to one webhook URL with ``requests`` (keep-alive), one attempt per ``post``."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url
        self.timeout = timeout
        self._session: Optional[requests.Session] = None

    def post(self, payload: Dict[str, Any]) -> DeliveryResult:
        if self._session is None:
            self._session = requests.Session()
        try:
            resp = self._session.post(
                self.url,
                data=json.dumps(payload, default=str).encode("utf-8"),
                headers={"Content-Type": "application/json", "User-Agent": "agentpulse-serve"},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            return DeliveryResult(False, error=f"{type(exc).__name__}: {exc}"[:500], retryable=True)
        with resp:
            code = resp.status_code
            if 200 <= code < 300:
                return DeliveryResult(True, status=code)
            retryable = code == 429 or code >= 500
            return DeliveryResult(
                False,
                status=code,
                error=f"HTTP {code}: {resp.text[:200]}",
                retryable=retryable,
                retry_after=parse_retry_after(resp.headers.get("Retry-After")) if retryable else None,
            )

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


class AlertEngine:
    """Raises alerts from the rules, stores them once, and delivers them on its own thread."""

    def __init__(
        self,
        storage: Storage,
        settings: ServerSettings,
        *,
        clock: Callable[[], float] = time.time,
        sender: Optional[WebhookSender] = None,
    ) -> None:
        self.storage = storage
        self.settings = settings
        self.rules = settings.rules
        self.query = Query(storage)
        self.clock = clock
        url = settings.webhook_url
        self.sender = sender or (WebhookSender(url, timeout=settings.webhook_timeout) if url else None)
        self._retry_at: Dict[str, float] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.delivered = 0
        self.failed = 0

    # -- raising ----------------------------------------------------------

    def raise_alert(
        self,
        dedupe_key: str,
        *,
        rule: str,
        title: str,
        severity: str = "warning",
        details: Optional[Dict[str, Any]] = None,
        agent: Optional[str] = None,
        source: str = "rule",
        event_id: Optional[str] = None,
        ts: Optional[float] = None,
    ) -> Optional[Dict[str, Any]]:
        """Store an alert unless one with ``dedupe_key`` exists; returns it when it is new."""
        alert = {
            "id": secrets.token_hex(8),
            "dedupe_key": dedupe_key,
            "source": source,
            "rule": rule,
            "event_id": event_id,
            "ts": self.clock() if ts is None else ts,
            "title": title,
            "severity": severity,
            "agent": agent,
            "details": json.dumps(details or {}, default=str),
            "delivery": "pending" if self.sender is not None else "none",
        }
        keys = list(alert)
        n = self.storage.execute(
            f"INSERT INTO server_alerts ({', '.join(keys)}) VALUES ({', '.join('?' for _ in keys)})"
            " ON CONFLICT (dedupe_key) DO NOTHING",
            [alert[k] for k in keys],
        )
        if n == 0:
            return None
        logger.info("agentpulse serve: alert %s: %s", rule, title)
        if self.sender is not None:
            self._wake.set()
        return alert

    def evaluate(self, now: Optional[float] = None) -> List[Dict[str, Any]]:
        """Check every rule once; returns the alerts that are new."""
        now = self.clock() if now is None else now
        new: List[Dict[str, Any]] = []
        for check in (self._cost_hour, self._cost_day, self._error_rate, self._crons, self._sdk_alerts):
            with capture_internal_errors(f"server.alerts.{check.__name__}"):
                try:
                    new.extend(a for a in check(now) if a is not None)
                except StorageError as exc:
                    logger.warning("agentpulse serve: alert rule %s skipped: %s", check.__name__, exc)
        return new

    def _spend(self, since: float) -> float:
        row = self.storage.fetch(
            "SELECT SUM(cost_usd) AS spend FROM events WHERE kind = 'llm_call' AND ts >= ?", [since]
        )[0]
        return float(row["spend"] or 0.0)

    def _cost_hour(self, now: float) -> List[Optional[Dict[str, Any]]]:
        limit = self.rules.cost_per_hour
        if limit is None:
            return []
        start = (now // 3600) * 3600
        spend = self._spend(start)
        if spend < limit:
            return []
        hour = datetime.datetime.fromtimestamp(start, datetime.timezone.utc).strftime("%Y-%m-%d %H:00 UTC")
        return [
            self.raise_alert(
                f"cost_hour:{int(start)}",
                rule="cost_per_hour",
                title=f"LLM spend ${spend:.2f} in the hour from {hour} passed ${limit:.2f}",
                severity="warning",
                details={"spend_usd": round(spend, 6), "threshold_usd": limit, "window_start": start},
            )
        ]

    def _cost_day(self, now: float) -> List[Optional[Dict[str, Any]]]:
        limit = self.rules.cost_per_day
        if limit is None:
            return []
        offset = datetime.datetime.fromtimestamp(now).astimezone().utcoffset() or datetime.timedelta(0)
        start, _ = day_bounds(now, offset.total_seconds() / 60.0)
        spend = self._spend(start)
        if spend < limit:
            return []
        day = datetime.datetime.fromtimestamp(start).strftime("%Y-%m-%d")
        return [
            self.raise_alert(
                f"cost_day:{day}",
                rule="cost_per_day",
                title=f"LLM spend ${spend:.2f} on {day} passed ${limit:.2f}",
                severity="warning",
                details={"spend_usd": round(spend, 6), "threshold_usd": limit, "day": day},
            )
        ]

    def _error_rate(self, now: float) -> List[Optional[Dict[str, Any]]]:
        rate = self.rules.error_rate
        if rate is None:
            return []
        window = self.rules.error_rate_window
        row = self.storage.fetch(
            "SELECT COUNT(*) AS calls, SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS errors"
            " FROM events WHERE kind = 'llm_call' AND ts >= ?",
            [now - window],
        )[0]
        calls, errors = int(row["calls"] or 0), int(row["errors"] or 0)
        if calls < self.rules.error_rate_min_calls or errors / calls < rate:
            return []
        return [
            self.raise_alert(
                f"error_rate:{int(now // window)}",
                rule="error_rate",
                title=(
                    f"{errors} of {calls} LLM calls failed in the last {window / 60:g} min"
                    f" ({errors / calls:.0%})"
                ),
                severity="error",
                details={
                    "calls": calls,
                    "errors": errors,
                    "rate": round(errors / calls, 4),
                    "threshold": rate,
                },
            )
        ]

    def _crons(self, now: float) -> List[Optional[Dict[str, Any]]]:
        if not self.rules.crons:
            return []
        out: List[Optional[Dict[str, Any]]] = []
        for m in self.query.crons(now=now, with_history=False):
            name, status, last = m["monitor"], m["status"], m.get("last_run") or {}
            base = {"monitor": name, "schedule": m.get("schedule"), "timezone": m.get("timezone")}
            if status == "missed" and m.get("last_missed") is not None:
                slot = float(m["last_missed"])
                when = datetime.datetime.fromtimestamp(slot, datetime.timezone.utc).strftime(
                    "%Y-%m-%d %H:%M UTC"
                )
                out.append(
                    self.raise_alert(
                        f"cron:{name}:missed:{int(slot)}",
                        rule="cron_missed",
                        title=f"Cron job {name!r} missed its run due {when}",
                        severity="error",
                        details={**base, "expected": slot},
                        agent=m.get("agent"),
                    )
                )
            elif status == "failing":
                out.append(
                    self.raise_alert(
                        f"cron:{name}:failing:{last.get('check_in_id')}",
                        rule="cron_failing",
                        title=f"Cron job {name!r} failed",
                        severity="error",
                        details={
                            **base,
                            "check_in_id": last.get("check_in_id"),
                            "trace_id": last.get("trace_id"),
                        },
                        agent=m.get("agent"),
                    )
                )
            elif status == "overran" and not last.get("timed_out"):
                # A run the SDK's watchdog caught already raised its own alert.
                out.append(
                    self.raise_alert(
                        f"cron:{name}:overran:{last.get('check_in_id')}",
                        rule="cron_overran",
                        title=f"Cron job {name!r} ran longer than its max_runtime of {m.get('max_runtime')}s",
                        severity="warning",
                        details={
                            **base,
                            "check_in_id": last.get("check_in_id"),
                            "duration_ms": last.get("duration_ms"),
                        },
                        agent=m.get("agent"),
                    )
                )
        return out

    def _sdk_alerts(self, now: float) -> List[Optional[Dict[str, Any]]]:
        if not self.rules.sdk_alerts:
            return []
        lookback = max(3600.0, 2 * self.settings.alert_interval)
        rows = self.storage.fetch(
            "SELECT e.id, e.ts, e.agent, e.session, e.trace_id, e.data FROM events e"
            " WHERE e.kind = 'alert' AND e.ts >= ?"
            " AND NOT EXISTS (SELECT 1 FROM server_alerts s WHERE s.dedupe_key = 'event:' || e.id)"
            " ORDER BY e.ts LIMIT 500",
            [now - lookback],
        )
        out: List[Optional[Dict[str, Any]]] = []
        for r in rows:
            try:
                data = json.loads(r["data"]) if r["data"] else {}
            except ValueError:
                data = {}
            details = dict(data.get("details") or {})
            details.update({"session": r["session"], "trace_id": r["trace_id"]})
            out.append(
                self.raise_alert(
                    f"event:{r['id']}",
                    rule="sdk",
                    source="sdk",
                    event_id=r["id"],
                    ts=float(r["ts"]),
                    title=str(data.get("title") or "alert"),
                    severity=str(data.get("severity") or "warning"),
                    details=details,
                    agent=r["agent"],
                )
            )
        return out

    # -- delivery ---------------------------------------------------------

    def start(self) -> None:
        """Start the delivery thread (only when a webhook is configured)."""
        if self.sender is None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="agentpulse-alert-delivery", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop delivering (pending alerts are retried at the next start) and close the HTTP session."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self.sender is not None:
            self.sender.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            wait = 5.0
            with capture_internal_errors("server.alerts.deliver"):
                try:
                    wait = self.deliver_pending()
                except StorageError as exc:
                    logger.warning("agentpulse serve: alert delivery paused: %s", exc)
            self._wake.wait(wait)
            self._wake.clear()

    def deliver_pending(self) -> float:
        """Try every pending alert whose retry time has come; returns seconds until the next is due."""
        sender = self.sender
        if sender is None:
            return 60.0
        rows = self.storage.fetch(
            f"SELECT {_COLUMNS} FROM server_alerts WHERE delivery = 'pending' ORDER BY ts LIMIT 50"
        )
        next_due = 30.0
        for row in rows:
            if self._stop.is_set():
                break
            now = time.monotonic()
            due = self._retry_at.get(row["id"], 0.0)
            if due > now:
                next_due = min(next_due, due - now)
                continue
            attempts = int(row["attempts"] or 0) + 1
            result = sender.post(webhook_payload(row, public_url=self.settings.public_url))
            if result.ok:
                self._retry_at.pop(row["id"], None)
                self.delivered += 1
                self._mark(row["id"], "sent", attempts, None, time.time())
                continue
            if result.retryable and attempts < self.settings.webhook_max_attempts:
                delay = self.settings.webhook_backoff * (2 ** (attempts - 1))
                if result.retry_after is not None:
                    delay = max(delay, result.retry_after)
                delay = min(delay, 3600.0)
                self._retry_at[row["id"]] = now + delay
                next_due = min(next_due, delay)
                self._mark(row["id"], "pending", attempts, result.error, None)
            else:
                self._retry_at.pop(row["id"], None)
                self.failed += 1
                logger.warning("agentpulse serve: alert %s not delivered: %s", row["id"], result.error)
                self._mark(row["id"], "failed", attempts, result.error, None)
        return max(0.01, next_due)

    def _mark(
        self, alert_id: str, delivery: str, attempts: int, error: Optional[str], at: Optional[float]
    ) -> None:
        self.storage.execute(
            "UPDATE server_alerts SET delivery = ?, attempts = ?, last_error = ?, delivered_at = ?"
            " WHERE id = ?",
            (delivery, attempts, error, at, alert_id),
        )

    def stats(self) -> Tuple[int, int]:
        """(delivered, failed) since start."""
        return self.delivered, self.failed
