"""Helpers of the collector tests: wire events, batches, cron runs, storing raw events."""

from __future__ import annotations

import gzip
import json
import secrets
import socket
import time
import uuid
from typing import Any, Dict, List, Optional

from agentpulse.server.storage.base import Storage

# -- wire helpers ----------------------------------------------------------------------


def ev(kind: str, data: Dict[str, Any], *, ts: Optional[float] = None, **kw: Any) -> Dict[str, Any]:
    """One wire event (a fresh id unless given)."""
    out = {
        "id": kw.pop("id", None) or uuid.uuid4().hex,
        "kind": kind,
        "ts": time.time() if ts is None else ts,
    }
    out.update(kw)
    out["data"] = data
    return out


def batch(
    events: List[Dict[str, Any]], *, agent: str = "marcus", host: str = "box", pid: int = 4242
) -> Dict[str, Any]:
    """An ingest body around ``events``."""
    return {
        "agent": agent,
        "sdk_version": "0.1.0",
        "process": {"pid": pid, "host": host, "python": "3.11.7", "os": "Linux", "libraries": {}},
        "events": events,
    }


def gz(body: Dict[str, Any]) -> bytes:
    return gzip.compress(json.dumps(body).encode())


def llm(
    model: str = "gpt-4o", cost: Optional[float] = 0.01, status: str = "success", **extra: Any
) -> Dict[str, Any]:
    data: Dict[str, Any] = {
        "provider": "openai",
        "operation": "chat",
        "model": model,
        "response_model": model,
        "input_tokens": 100,
        "output_tokens": 20,
        "latency_ms": 250.0,
        "cost_usd": cost,
        "cost_source": "table" if cost is not None else None,
        "status": status,
    }
    if status == "error":
        data["error"] = {"type": "RateLimitError", "message": "slow down"}
    data.update(extra)
    return data


def session_trace(
    name: str = "daily-email",
    *,
    ts: Optional[float] = None,
    calls: int = 2,
    cost: float = 0.01,
    status: str = "success",
    model: str = "gpt-4o",
) -> List[Dict[str, Any]]:
    """The events of one session run: start, a task, ``calls`` LLM calls inside it, end."""
    t0 = time.time() - 5 if ts is None else ts
    trace = uuid.uuid4().hex
    root = secrets.token_hex(8)
    task = secrets.token_hex(8)
    common = {"trace_id": trace, "session": name}
    events = [
        ev(
            "span_start",
            {"name": name, "span_kind": "session", "metadata": {"user_id": "u1"}},
            ts=t0,
            span_id=root,
            **common,
        ),
        ev(
            "span_start",
            {"name": "classify", "span_kind": "task"},
            ts=t0 + 0.1,
            span_id=task,
            parent_span_id=root,
            **common,
        ),
    ]
    for i in range(calls):
        events.append(
            ev(
                "llm_call",
                llm(model, cost),
                ts=t0 + 0.2 + i * 0.3,
                span_id=secrets.token_hex(8),
                parent_span_id=task,
                **common,
            )
        )
    events.append(
        ev(
            "event",
            {"name": "labelled", "data": {"n": 3}},
            ts=t0 + 1.0,
            span_id=task,
            parent_span_id=root,
            **common,
        )
    )
    events.append(
        ev(
            "span_end",
            {"name": "classify", "span_kind": "task", "status": "success", "duration_ms": 1000.0},
            ts=t0 + 1.1,
            span_id=task,
            parent_span_id=root,
            **common,
        )
    )
    end: Dict[str, Any] = {"name": name, "span_kind": "session", "status": status, "duration_ms": 1500.0}
    if status == "error":
        end["error"] = {"type": "ValueError", "message": "bad inbox"}
    events.append(ev("span_end", end, ts=t0 + 1.5, span_id=root, **common))
    return events


def checkin(
    monitor: str,
    check_in_id: str,
    status: str,
    ts: float,
    *,
    schedule: Optional[str] = "0 * * * *",
    duration_ms: Optional[float] = None,
    max_runtime: Optional[float] = None,
    grace: Optional[float] = None,
    timezone: Optional[str] = "UTC",
) -> Dict[str, Any]:
    return ev(
        "cron_checkin",
        {
            "monitor": monitor,
            "check_in_id": check_in_id,
            "status": status,
            "schedule": schedule,
            "timezone": timezone,
            "duration_ms": duration_ms,
            "max_runtime": max_runtime,
            "grace": grace,
        },
        ts=ts,
        session=monitor,
    )


def cron_run(
    monitor: str, start: float, *, ok: bool = True, duration: float = 30.0, **kw: Any
) -> List[Dict[str, Any]]:
    cid = uuid.uuid4().hex
    return [
        checkin(monitor, cid, "in_progress", start, **kw),
        checkin(monitor, cid, "ok" if ok else "error", start + duration, duration_ms=duration * 1000, **kw),
    ]


def insert(storage: Storage, events: List[Dict[str, Any]], **kw: Any) -> int:
    """Store raw wire events through the same path ingest uses."""
    from agentpulse.models import Batch
    from agentpulse.server.storage.base import rows_from_batch

    rows = rows_from_batch(Batch.model_validate(batch(events, **kw)))
    return storage.insert_events([rows])[0]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
