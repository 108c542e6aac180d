"""Cron monitors: runs rebuilt from check-ins, the schedule's expected runs, and a computed status.

A monitor's status is one of:

* ``missed``: the latest expected run (per its cron schedule and IANA timezone)
  did not start within ``grace`` seconds (60 when not given);
* ``overran``: the latest run took longer than ``max_runtime``, is still
  running past it, or was reported by the SDK's watchdog (``timeout``);
* ``failing``: the latest run ended with an error;
* ``ok``: none of those.

Example::

    from agentpulse.server.crons import evaluate
    status = evaluate("nightly", checkins, now=time.time())
    print(status["status"], [h["type"] for h in status["history"]])
"""

from __future__ import annotations

import datetime
import json
import time
from typing import Any, Dict, List, Optional

__all__ = ["DEFAULT_GRACE", "EARLY_TOLERANCE", "CronRun", "build_runs", "evaluate", "expected_slots"]

#: Seconds a run may start after its slot when the monitor gives no ``grace``.
DEFAULT_GRACE = 60.0
#: Seconds a run may start before its slot and still count for it (clock drift between hosts).
EARLY_TOLERANCE = 60.0
MAX_SLOTS = 500


class CronRun:
    """One run of a monitor, merged from its check-ins (same ``check_in_id``)."""

    __slots__ = ("check_in_id", "duration_ms", "end", "slot", "start", "status", "timed_out", "trace_id")

    def __init__(self, check_in_id: str) -> None:
        self.check_in_id = check_in_id
        self.start: Optional[float] = None
        self.end: Optional[float] = None
        self.status = "in_progress"
        self.duration_ms: Optional[float] = None
        self.timed_out = False
        self.trace_id: Optional[str] = None
        self.slot: Optional[float] = None

    def overran(self, max_runtime: Optional[float], now: float) -> bool:
        if self.timed_out:
            return True
        if max_runtime is None:
            return False
        if self.duration_ms is not None and self.status != "in_progress":
            return self.duration_ms / 1000.0 > max_runtime
        return self.status == "in_progress" and self.start is not None and now - self.start > max_runtime

    def as_dict(self, max_runtime: Optional[float], now: float) -> Dict[str, Any]:
        return {
            "type": "run",
            "check_in_id": self.check_in_id,
            "start": self.start,
            "end": self.end,
            "status": self.status,
            "duration_ms": self.duration_ms,
            "overran": self.overran(max_runtime, now),
            "timed_out": self.timed_out,
            "trace_id": self.trace_id,
            "slot": self.slot,
        }


def _data(row: Dict[str, Any]) -> Dict[str, Any]:
    raw = row.get("data")
    if isinstance(raw, dict):
        return raw
    try:
        out = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return out if isinstance(out, dict) else {}


def build_runs(checkins: List[Dict[str, Any]]) -> List[CronRun]:
    """Merge check-in rows (``ts``, ``status``, ``duration_ms``, ``trace_id``, ``data``) into runs.

    Runs come out oldest first.
    """
    runs: Dict[str, CronRun] = {}
    for row in sorted(checkins, key=lambda r: float(r["ts"])):
        data = _data(row)
        cid = str(data.get("check_in_id") or row.get("id"))
        run = runs.get(cid)
        if run is None:
            run = runs[cid] = CronRun(cid)
        ts = float(row["ts"])
        status = str(row.get("status") or data.get("status") or "")
        run.trace_id = run.trace_id or row.get("trace_id")
        duration = row.get("duration_ms", data.get("duration_ms"))
        if status == "in_progress":
            run.start = ts if run.start is None else min(run.start, ts)
        elif status == "timeout":
            run.timed_out = True
        elif status in ("ok", "error"):
            run.status = status
            run.end = ts
            if duration is not None:
                run.duration_ms = float(duration)
        if run.start is None and duration is not None:
            run.start = ts - float(duration) / 1000.0
    return sorted(runs.values(), key=lambda r: r.start if r.start is not None else 0.0)


def _zone(name: Optional[str]) -> datetime.tzinfo:
    if name:
        try:
            from zoneinfo import ZoneInfo

            return ZoneInfo(name)
        except Exception:
            pass
    return datetime.timezone.utc


def expected_slots(schedule: str, timezone: Optional[str], since: float, until: float) -> List[float]:
    """Unix times the schedule fired in ``[since, until]``, oldest first (at most the last 500)."""
    from croniter import croniter

    tz = _zone(timezone)
    it = croniter(schedule, datetime.datetime.fromtimestamp(until, tz))
    out: List[float] = []
    # croniter's get_prev is strict: a slot exactly at `until` is not returned, which is what we want
    # for a window that closes at `until`.
    while len(out) < MAX_SLOTS:
        t = float(it.get_prev(float))
        if t < since:
            break
        out.append(t)
    out.reverse()
    return out


def _next_slot(schedule: str, timezone: Optional[str], now: float) -> Optional[float]:
    from croniter import croniter

    try:
        return float(
            croniter(schedule, datetime.datetime.fromtimestamp(now, _zone(timezone))).get_next(float)
        )
    except Exception:
        return None


def evaluate(monitor: str, checkins: List[Dict[str, Any]], now: Optional[float] = None) -> Dict[str, Any]:
    """The status of ``monitor`` from its check-in rows, with its runs and missed slots, newest first."""
    now = time.time() if now is None else now
    latest = _data(max(checkins, key=lambda r: float(r["ts"]))) if checkins else {}
    schedule = latest.get("schedule") or None
    timezone = latest.get("timezone") or None
    max_runtime = latest.get("max_runtime")
    max_runtime = float(max_runtime) if max_runtime is not None else None
    grace = latest.get("grace")
    grace = float(grace) if grace is not None else DEFAULT_GRACE
    runs = build_runs(checkins)

    missed: List[float] = []
    schedule_error: Optional[str] = None
    last_slot_missed: Optional[float] = None
    if schedule and runs:
        first = min((r.start for r in runs if r.start is not None), default=now)
        try:
            slots = expected_slots(str(schedule), timezone, first - EARLY_TOLERANCE, now - grace)
        except Exception as exc:
            slots = []
            schedule_error = f"{type(exc).__name__}: {exc}"
        starts = [r for r in runs if r.start is not None]
        i = 0
        for slot in slots:
            while i < len(starts) and starts[i].start < slot - EARLY_TOLERANCE:  # type: ignore[operator]
                i += 1
            if i < len(starts) and starts[i].start <= slot + grace:  # type: ignore[operator]
                starts[i].slot = slot
                i += 1
            else:
                missed.append(slot)
        if missed and slots and missed[-1] == slots[-1]:
            last_slot_missed = missed[-1]

    last = runs[-1] if runs else None
    status = "ok"
    if last_slot_missed is not None and not (
        last is not None and last.start is not None and last.start >= last_slot_missed - EARLY_TOLERANCE
    ):
        status = "missed"
    elif last is not None and last.overran(max_runtime, now):
        status = "overran"
    elif last is not None and last.status == "error":
        status = "failing"

    history: List[Dict[str, Any]] = [r.as_dict(max_runtime, now) for r in runs]
    history += [{"type": "missed", "expected": t, "start": t, "status": "missed"} for t in missed]
    history.sort(key=lambda h: h.get("start") or 0.0, reverse=True)
    return {
        "monitor": monitor,
        "status": status,
        "running": last is not None and last.status == "in_progress",
        "schedule": schedule,
        "timezone": timezone,
        "max_runtime": max_runtime,
        "grace": grace,
        "schedule_error": schedule_error,
        "last_run": last.as_dict(max_runtime, now) if last is not None else None,
        "next_expected": _next_slot(str(schedule), timezone, now) if schedule else None,
        "runs": len(runs),
        "missed": len(missed),
        "failures": sum(1 for r in runs if r.status == "error"),
        "last_missed": missed[-1] if missed else None,
        "history": history,
    }
