"""Cron runs as the local store holds them, and what they mean now: late, overrunning, fine.

Reads the ``cron_checkin`` events of the SQLite store written by the local
exporter, groups them into runs by ``check_in_id`` and works out, for each
monitor, its last run and what it should be doing now:

* ``MISSED``: the schedule says a run should have started (plus ``grace``,
  60 s when not given) and none did;
* ``OVERRAN``: the last run took longer than ``max_runtime``, is still running
  past it, or the watchdog reported it (a ``timeout`` check-in).

Example::

    from agentpulse.cron_store import cron_statuses

    for m in cron_statuses("/tmp/agent.db"):
        print(m.monitor, m.last_status, m.flags, m.next_expected)
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

__all__ = [
    "DEFAULT_GRACE",
    "CronRunInfo",
    "MonitorStatus",
    "cron_statuses",
    "load_checkins",
    "monitor_statuses",
]

#: Seconds a run may start late before it counts as missed, when the monitor gives no ``grace``.
DEFAULT_GRACE = 60.0

# Check-ins read per monitor: enough for the last run and a short history.
_PER_MONITOR = 200
_MAX_MISSED_COUNT = 1000


@dataclass
class CronRunInfo:
    """One run of a monitor, put together from its check-ins."""

    check_in_id: str
    start: Optional[float] = None
    end: Optional[float] = None
    status: str = "in_progress"
    duration_ms: Optional[float] = None
    timed_out: bool = False
    trace_id: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass
class MonitorStatus:
    """One line of ``agentpulse crons``.

    ``last_status`` is ``ok``, ``error`` or ``running``; ``flags`` holds
    ``MISSED`` and / or ``OVERRAN``; ``next_expected`` is when the next run is
    due (in the past when it was missed; ``missed_runs`` says how many slots
    passed with no run).
    """

    monitor: str
    schedule: Optional[str]
    timezone: Optional[str]
    max_runtime: Optional[float]
    grace: Optional[float]
    last_run: Optional[CronRunInfo]
    last_status: Optional[str]
    next_expected: Optional[float]
    runs: int = 0
    missed_runs: int = 0
    flags: List[str] = field(default_factory=list)
    schedule_error: Optional[str] = None

    @property
    def healthy(self) -> bool:
        """No flag raised and the last run did not fail."""
        return not self.flags and self.last_status != "error"

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict."""
        out = asdict(self)
        out["healthy"] = self.healthy
        return out


Checkin = Tuple[float, Dict[str, Any], Optional[str]]  # (ts, data, trace_id)


def load_checkins(path: Union[str, Path], per_monitor: int = _PER_MONITOR) -> Dict[str, List[Checkin]]:
    """The latest ``per_monitor`` check-ins of every monitor in the store at ``path``, oldest first.

    A missing file, or one with no ``events`` table yet, gives ``{}``; an
    unreadable one raises ``sqlite3.Error``.
    """
    p = Path(os.path.expanduser(str(path)))
    if not p.is_file():
        return {}
    conn = sqlite3.connect(p.resolve().as_uri() + "?mode=ro", uri=True, timeout=10.0)
    try:
        conn.execute("PRAGMA busy_timeout = 10000")
        if not conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'"
        ).fetchone():
            return {}
        names = [r[0] for r in conn.execute("SELECT DISTINCT name FROM events WHERE kind = 'cron_checkin'")]
        out: Dict[str, List[Checkin]] = {}
        for name in names:
            if name is None:
                continue
            rows = conn.execute(
                "SELECT ts, data, trace_id FROM events WHERE kind = 'cron_checkin' AND name = ?"
                " ORDER BY ts DESC LIMIT ?",
                (name, max(1, per_monitor)),
            ).fetchall()
            items: List[Checkin] = []
            for ts, raw, trace_id in reversed(rows):
                try:
                    data = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(data, dict):
                    items.append((float(ts), data, trace_id))
            out[str(name)] = items
        return out
    finally:
        conn.close()


def _runs(checkins: Iterable[Checkin]) -> List[CronRunInfo]:
    runs: Dict[str, CronRunInfo] = {}
    for ts, data, trace_id in checkins:
        cid = str(data.get("check_in_id") or "")
        run = runs.get(cid)
        if run is None:
            run = runs[cid] = CronRunInfo(check_in_id=cid, trace_id=trace_id)
        status = data.get("status")
        if status == "in_progress":
            run.start = ts if run.start is None else min(run.start, ts)
        elif status == "timeout":
            run.timed_out = True
        elif status in ("ok", "error"):
            run.status = str(status)
            run.end = ts
            duration = data.get("duration_ms")
            if isinstance(duration, (int, float)):
                run.duration_ms = float(duration)
    for run in runs.values():
        if run.start is None and run.end is not None:
            run.start = run.end - (run.duration_ms or 0.0) / 1000.0
    return sorted((r for r in runs.values() if r.start is not None), key=lambda r: r.start or 0.0)


def _status(monitor: str, checkins: List[Checkin], now: float) -> MonitorStatus:
    latest = checkins[-1][1] if checkins else {}
    schedule = latest.get("schedule")
    tz = latest.get("timezone") or "UTC"
    max_runtime = latest.get("max_runtime")
    grace = latest.get("grace")
    runs = _runs(checkins)
    last = runs[-1] if runs else None
    st = MonitorStatus(
        monitor=monitor,
        schedule=schedule,
        timezone=tz if schedule else latest.get("timezone"),
        max_runtime=max_runtime,
        grace=grace,
        last_run=last,
        last_status=None,
        next_expected=None,
        runs=len(runs),
    )
    if last is None:
        return st
    running = last.end is None
    st.last_status = "running" if running else last.status
    limit = float(max_runtime) if isinstance(max_runtime, (int, float)) and max_runtime > 0 else None
    if last.timed_out:
        st.flags.append("OVERRAN")
    elif limit is not None and last.start is not None:
        took = (now - last.start) if running else (last.duration_ms or 0.0) / 1000.0
        if took > limit:
            st.flags.append("OVERRAN")
    if schedule and last.start is not None:
        from .crons import next_run

        try:
            # One second of slack: a run started a moment before its slot still counts for it.
            expected = next_run(str(schedule), str(tz), last.start + 1.0)
        except (ValueError, KeyError, TypeError) as exc:
            st.schedule_error = str(exc)
        else:
            st.next_expected = expected
            margin = float(grace) if isinstance(grace, (int, float)) and grace >= 0 else DEFAULT_GRACE
            if not running and now > expected + margin:
                st.flags.insert(0, "MISSED")
                st.missed_runs = _count_slots(str(schedule), str(tz), expected, now - margin)
    return st


def _count_slots(schedule: str, tz: str, first: float, until: float) -> int:
    from .crons import next_run

    count, t = 0, first
    while t <= until and count < _MAX_MISSED_COUNT:
        count += 1
        t = next_run(schedule, tz, t)
    return count


def monitor_statuses(checkins: Dict[str, List[Checkin]], now: Optional[float] = None) -> List[MonitorStatus]:
    """Each monitor's status at ``now`` (default: the current time), sorted by name."""
    at = time.time() if now is None else now
    return [_status(name, items, at) for name, items in sorted(checkins.items())]


def cron_statuses(path: Union[str, Path], now: Optional[float] = None) -> List[MonitorStatus]:
    """``monitor_statuses(load_checkins(path), now)``: what ``agentpulse crons`` prints.

    Example::

        bad = [m for m in cron_statuses("~/.agentpulse/agentpulse.db") if not m.healthy]
    """
    return monitor_statuses(load_checkins(path), now)
