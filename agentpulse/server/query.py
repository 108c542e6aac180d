"""The read side of the collector: traces, one trace tree, costs, crons, alerts, memory.

Every method returns plain JSON-ready dicts (what ``/api/*`` answers) and works
on any ``Storage``: the SQL is what SQLite and PostgreSQL share, with ``?``
placeholders.

A *trace* is everything under one root: an outermost span (a session, a cron
run, an agent call...) or an LLM call made outside any span. Its status is the
root's: ``success``, ``error``, ``cancelled``, or ``running`` while the root
span has not ended.

Example::

    from agentpulse.server.query import Query
    q = Query(storage)
    page = q.traces(agent="marcus", status="error", limit=20)
    tree = q.trace(page["traces"][0]["trace_id"])
    print(q.costs(["day", "model"], since=time.time() - 7 * 86400)["rows"])
"""

from __future__ import annotations

import datetime
import json
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from . import crons as cronlib
from .storage.base import Storage

__all__ = ["COST_DIMENSIONS", "TRACE_STATUSES", "Query", "day_name"]

#: What ``costs()`` can group by.
COST_DIMENSIONS = ("day", "model", "agent", "provider", "session")
#: Statuses a trace can have.
TRACE_STATUSES = ("success", "error", "cancelled", "running")

_ROOTS = "r.parent_span_id IS NULL AND r.kind IN ('span_start', 'llm_call')"
_TRACE_STATUS = "(CASE WHEN r.kind = 'llm_call' THEN r.status ELSE COALESCE(e.status, 'running') END)"
_TRACE_COST = (
    "(CASE WHEN r.kind = 'llm_call' THEN COALESCE(r.cost_usd, 0) ELSE"
    " (SELECT COALESCE(SUM(c.cost_usd), 0) FROM events c"
    " WHERE c.trace_id = r.trace_id AND {k}c.kind = 'llm_call') END)"
)
_EPOCH_ORDINAL = datetime.date(1970, 1, 1).toordinal()


def day_name(day_number: int) -> str:
    """``YYYY-MM-DD`` of a day number (days since 1970-01-01)."""
    return datetime.date.fromordinal(_EPOCH_ORDINAL + int(day_number)).isoformat()


def _json(raw: Any) -> Dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        out = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return out if isinstance(out, dict) else {}


def _num(value: Any) -> float:
    return float(value) if value is not None else 0.0


def day_bounds(now: float, tz_offset_minutes: float) -> Tuple[float, float]:
    """Unix times of the start of today and of this week (Monday), in the caller's UTC offset."""
    offset = tz_offset_minutes * 60.0
    local = now + offset
    today = (local // 86400) * 86400
    weekday = datetime.datetime.fromtimestamp(today, datetime.timezone.utc).weekday()
    return today - offset, today - weekday * 86400 - offset


class Query:
    """Read-only questions over a ``Storage``. Thread-safe (the storage is)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        # In a join by trace, SQLite without statistics may prefer the (kind, ts) index over the trace
        # index and scan every span_end for each root. A unary `+` makes a term unusable for an index
        # in SQLite; PostgreSQL plans from its own statistics and has no unary `+` for text.
        self._k = "+" if storage.dialect == "sqlite" else ""
        self._cost = _TRACE_COST.format(k=self._k)

    # -- traces -----------------------------------------------------------

    def traces(
        self,
        *,
        agent: Optional[str] = None,
        session: Optional[str] = None,
        status: Optional[str] = None,
        since: Optional[float] = None,
        until: Optional[float] = None,
        min_cost: Optional[float] = None,
        max_cost: Optional[float] = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Dict[str, Any]:
        """Traces, newest first, filtered by agent, session name, status, start time and cost."""
        where = [_ROOTS]
        params: List[Any] = []
        for clause, value in (
            ("r.agent = ?", agent),
            ("r.session = ?", session),
            ("r.ts >= ?", since),
            ("r.ts < ?", until),
            (f"{_TRACE_STATUS} = ?", status),
            (f"{self._cost} >= ?", min_cost),
            (f"{self._cost} <= ?", max_cost),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        limit = max(1, min(int(limit), 500))
        offset = max(0, int(offset))
        sql = (
            "SELECT r.id, r.kind, r.ts, r.trace_id, r.span_id, r.session, r.agent, r.host, r.name, r.status,"
            " r.duration_ms, r.model, r.cost_usd, r.input_tokens, r.output_tokens, r.data,"
            " e.status AS end_status, e.duration_ms AS end_duration, e.data AS end_data"
            " FROM events r LEFT JOIN events e"
            f" ON e.trace_id = r.trace_id AND e.span_id = r.span_id AND {self._k}e.kind = 'span_end'"
            f" WHERE {' AND '.join(where)} ORDER BY r.ts DESC LIMIT ? OFFSET ?"
        )
        rows = self.storage.fetch(sql, [*params, limit + 1, offset])
        has_more = len(rows) > limit
        rows = rows[:limit]
        stats = self._trace_stats(
            [r["trace_id"] for r in rows if r["kind"] == "span_start" and r["trace_id"]]
        )
        out = []
        for r in rows:
            out.append(
                self._trace_summary(r, stats.get(r["trace_id"]) if r["kind"] == "span_start" else None)
            )
        return {"traces": out, "limit": limit, "offset": offset, "has_more": has_more}

    def _trace_stats(self, trace_ids: Sequence[str]) -> Dict[str, Dict[str, Any]]:
        if not trace_ids:
            return {}
        marks = ", ".join("?" for _ in trace_ids)
        rows = self.storage.fetch(
            "SELECT trace_id, COUNT(*) AS events,"
            " SUM(CASE WHEN kind = 'llm_call' THEN 1 ELSE 0 END) AS llm_calls,"
            " SUM(cost_usd) AS cost_usd, SUM(input_tokens) AS input_tokens,"
            " SUM(output_tokens) AS output_tokens,"
            " SUM(CASE WHEN kind = 'error' OR (kind IN ('llm_call', 'span_end') AND status = 'error')"
            " THEN 1 ELSE 0 END) AS errors, MAX(ts) AS last_ts"
            f" FROM events WHERE trace_id IN ({marks}) GROUP BY trace_id",
            list(trace_ids),
        )
        return {r["trace_id"]: r for r in rows}

    @staticmethod
    def _trace_summary(r: Dict[str, Any], stats: Optional[Dict[str, Any]]) -> Dict[str, Any]:
        if r["kind"] == "llm_call":
            return {
                "trace_id": r["trace_id"] or r["span_id"],
                "root_kind": "llm_call",
                "name": r["name"] or r["model"] or "llm call",
                "session": r["session"],
                "agent": r["agent"],
                "host": r["host"],
                "start": r["ts"],
                "duration_ms": r["duration_ms"],
                "status": r["status"],
                "llm_calls": 1,
                "cost_usd": r["cost_usd"],
                "input_tokens": r["input_tokens"],
                "output_tokens": r["output_tokens"],
                "errors": 1 if r["status"] == "error" else 0,
            }
        data = _json(r["data"])
        stats = stats or {}
        status = r["end_status"] or "running"
        duration = r["end_duration"]
        if duration is None and stats.get("last_ts") is not None:
            duration = max(0.0, (float(stats["last_ts"]) - float(r["ts"])) * 1000.0)
        return {
            "trace_id": r["trace_id"],
            "root_kind": data.get("span_kind") or "span",
            "name": r["name"] or data.get("name"),
            "session": r["session"],
            "agent": r["agent"],
            "host": r["host"],
            "start": r["ts"],
            "duration_ms": duration,
            "status": status,
            "llm_calls": int(stats.get("llm_calls") or 0),
            "cost_usd": stats.get("cost_usd"),
            "input_tokens": stats.get("input_tokens"),
            "output_tokens": stats.get("output_tokens"),
            "errors": int(stats.get("errors") or 0),
        }

    def trace(self, trace_id: str, *, max_events: int = 20_000) -> Optional[Dict[str, Any]]:
        """One trace as a tree of spans and LLM calls, each with its events; None when unknown."""
        cols = (
            "id, kind, ts, trace_id, span_id, parent_span_id, session, agent, host, name, status,"
            " duration_ms, provider, model, input_tokens, output_tokens, cost_usd, data"
        )
        rows = self.storage.fetch(
            f"SELECT {cols} FROM events WHERE trace_id = ? ORDER BY ts LIMIT ?", [trace_id, max_events]
        )
        if not rows:
            rows = self.storage.fetch(
                f"SELECT {cols} FROM events WHERE trace_id IS NULL AND span_id = ? AND kind = 'llm_call'",
                [trace_id],
            )
        if not rows:
            return None
        return _build_tree(trace_id, rows, truncated=len(rows) >= max_events)

    # -- costs ------------------------------------------------------------

    def costs(
        self,
        group_by: Sequence[str],
        *,
        since: Optional[float] = None,
        until: Optional[float] = None,
        agent: Optional[str] = None,
        tz_offset: float = 0.0,
    ) -> Dict[str, Any]:
        """LLM spend, calls and tokens grouped by ``day``, ``model``, ``agent``, ``provider``, ``session``.

        ``tz_offset`` (minutes east of UTC) decides where days start.
        """
        dims = [d for d in group_by if d in COST_DIMENSIONS]
        if not dims:
            raise ValueError(f"group_by needs one of {', '.join(COST_DIMENSIONS)}")
        select: List[str] = []
        params: List[Any] = []
        for d in dims:
            if d == "day":
                select.append(f"{self.storage.day_expr('ts')} AS day")
                params.append(tz_offset * 60.0)
            else:
                select.append(f"COALESCE({d}, '(none)') AS {d}")
        where = ["kind = 'llm_call'"]
        for clause, value in (("ts >= ?", since), ("ts < ?", until), ("agent = ?", agent)):
            if value is not None:
                where.append(clause)
                params.append(value)
        positions = ", ".join(str(i + 1) for i in range(len(dims)))
        rows = self.storage.fetch(
            f"SELECT {', '.join(select)}, COUNT(*) AS calls, SUM(cost_usd) AS cost_usd,"
            " SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens,"
            " SUM(CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END) AS unpriced,"
            " SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS errors"
            f" FROM events WHERE {' AND '.join(where)} GROUP BY {positions} ORDER BY {positions}",
            params,
        )
        for r in rows:
            if "day" in r and r["day"] is not None:
                r["day"] = day_name(int(r["day"]))
            r["cost_usd"] = round(_num(r["cost_usd"]), 10)
        total = {
            "cost_usd": round(sum(_num(r["cost_usd"]) for r in rows), 10),
            "calls": sum(int(r["calls"] or 0) for r in rows),
            "input_tokens": sum(int(r["input_tokens"] or 0) for r in rows),
            "output_tokens": sum(int(r["output_tokens"] or 0) for r in rows),
            "unpriced": sum(int(r["unpriced"] or 0) for r in rows),
        }
        return {"group_by": dims, "since": since, "until": until, "rows": rows, "total": total}

    # -- overview ---------------------------------------------------------

    def overview(self, *, now: Optional[float] = None, tz_offset: float = 0.0) -> Dict[str, Any]:
        """The dashboard's first screen: spend today and this week, calls, error rate, cron health."""
        now = time.time() if now is None else now
        today, week = day_bounds(now, tz_offset)
        start = min(today, week)
        llm = self.storage.fetch(
            "SELECT SUM(CASE WHEN ts >= ? THEN cost_usd ELSE 0 END) AS spend_today,"
            " SUM(cost_usd) AS spend_week,"
            " SUM(CASE WHEN ts >= ? THEN 1 ELSE 0 END) AS calls_today, COUNT(*) AS calls_week,"
            " SUM(CASE WHEN ts >= ? AND status = 'error' THEN 1 ELSE 0 END) AS errors_today,"
            " SUM(CASE WHEN ts >= ? THEN input_tokens ELSE 0 END) AS input_tokens_today,"
            " SUM(CASE WHEN ts >= ? THEN output_tokens ELSE 0 END) AS output_tokens_today"
            " FROM events WHERE kind = 'llm_call' AND ts >= ?",
            [today, today, today, today, today, start],
        )[0]
        roots = self.storage.fetch(
            "SELECT COUNT(*) AS traces, SUM(CASE WHEN e.status = 'error' THEN 1 ELSE 0 END) AS failed"
            " FROM events r LEFT JOIN events e"
            f" ON e.trace_id = r.trace_id AND e.span_id = r.span_id AND {self._k}e.kind = 'span_end'"
            f" WHERE {_ROOTS} AND r.ts >= ?",
            [today],
        )[0]
        calls = int(llm["calls_today"] or 0)
        errors = int(llm["errors_today"] or 0)
        monitors = self.crons(now=now, with_history=False)
        health: Dict[str, int] = {"ok": 0, "missed": 0, "overran": 0, "failing": 0}
        for m in monitors:
            health[m["status"]] = health.get(m["status"], 0) + 1
        alerts = self.alerts(since=now - 86400, limit=5)
        return {
            "now": now,
            "today_start": today,
            "week_start": week,
            "spend_today": round(_num(llm["spend_today"]), 10),
            "spend_week": round(_num(llm["spend_week"]), 10),
            "calls_today": calls,
            "calls_week": int(llm["calls_week"] or 0),
            "errors_today": errors,
            "error_rate_today": (errors / calls) if calls else None,
            "input_tokens_today": int(llm["input_tokens_today"] or 0),
            "output_tokens_today": int(llm["output_tokens_today"] or 0),
            "traces_today": int(roots["traces"] or 0),
            "failed_traces_today": int(roots["failed"] or 0),
            "crons": health,
            "cron_monitors": monitors,
            "alerts_24h": alerts["total"],
            "recent_alerts": alerts["alerts"],
        }

    def facets(self, *, since: Optional[float] = None) -> Dict[str, Any]:
        """Agents and session names seen (last 30 days by default): for the filters of the dashboard."""
        since = time.time() - 30 * 86400 if since is None else since
        agents = self.storage.fetch(
            "SELECT agent, MAX(ts) AS last_seen, COUNT(*) AS events FROM events"
            " WHERE kind IN ('process_start', 'span_start', 'llm_call') AND ts >= ? AND agent IS NOT NULL"
            " GROUP BY agent ORDER BY agent",
            [since],
        )
        sessions = self.storage.fetch(
            f"SELECT r.session AS session, COUNT(*) AS runs, MAX(r.ts) AS last_seen FROM events r"
            f" WHERE {_ROOTS} AND r.ts >= ? AND r.session IS NOT NULL GROUP BY r.session ORDER BY r.session",
            [since],
        )
        return {"agents": agents, "sessions": sessions}

    # -- crons ------------------------------------------------------------

    def crons(
        self, *, now: Optional[float] = None, with_history: bool = True, per_monitor: int = 400
    ) -> List[Dict[str, Any]]:
        """Every cron monitor with its computed status (``ok``, ``missed``, ``overran``, ``failing``)."""
        now = time.time() if now is None else now
        names = self.storage.fetch(
            "SELECT name, MAX(ts) AS last_ts FROM events WHERE kind = 'cron_checkin' AND name IS NOT NULL"
            " GROUP BY name ORDER BY name"
        )
        out = []
        for row in names:
            status = self.cron(str(row["name"]), now=now, per_monitor=per_monitor)
            if status is None:
                continue
            if not with_history:
                status.pop("history", None)
            out.append(status)
        return out

    def cron(
        self, monitor: str, *, now: Optional[float] = None, per_monitor: int = 400
    ) -> Optional[Dict[str, Any]]:
        """One monitor: status, settings and its run history with missed runs marked; None when unknown."""
        rows = self.storage.fetch(
            "SELECT id, ts, trace_id, status, duration_ms, agent, data FROM events"
            " WHERE kind = 'cron_checkin' AND name = ? ORDER BY ts DESC LIMIT ?",
            [monitor, per_monitor],
        )
        if not rows:
            return None
        result = cronlib.evaluate(monitor, rows, now=time.time() if now is None else now)
        result["agent"] = rows[0].get("agent")
        return result

    # -- alerts -----------------------------------------------------------

    def alerts(self, *, since: Optional[float] = None, limit: int = 100) -> Dict[str, Any]:
        """Alerts newest first: the collector's (rules, delivered SDK alerts) and SDK alerts only on disk."""
        since = 0.0 if since is None else since
        limit = max(1, min(int(limit), 1000))
        own = self.storage.fetch(
            "SELECT id, source, rule, event_id, ts, title, severity, agent, details, delivery, attempts,"
            " last_error, delivered_at FROM server_alerts WHERE ts >= ? ORDER BY ts DESC LIMIT ?",
            [since, limit],
        )
        sdk = self.storage.fetch(
            "SELECT e.id, e.ts, e.agent, e.session, e.trace_id, e.name, e.status, e.data FROM events e"
            " WHERE e.kind = 'alert' AND e.ts >= ?"
            " AND NOT EXISTS (SELECT 1 FROM server_alerts s WHERE s.dedupe_key = 'event:' || e.id)"
            " ORDER BY e.ts DESC LIMIT ?",
            [since, limit],
        )
        items: List[Dict[str, Any]] = []
        for a in own:
            a["details"] = _json(a["details"])
            items.append(a)
        for e in sdk:
            data = _json(e["data"])
            items.append(
                {
                    "id": e["id"],
                    "source": "sdk",
                    "rule": "sdk",
                    "event_id": e["id"],
                    "ts": e["ts"],
                    "title": data.get("title") or e["name"],
                    "severity": data.get("severity") or e["status"] or "warning",
                    "agent": e["agent"],
                    "details": {
                        **(data.get("details") or {}),
                        "session": e["session"],
                        "trace_id": e["trace_id"],
                    },
                    "delivery": "none",
                    "attempts": 0,
                    "last_error": None,
                    "delivered_at": None,
                }
            )
        items.sort(key=lambda a: float(a["ts"]), reverse=True)
        total = len(items)
        if len(own) >= limit or len(sdk) >= limit:  # more than one page: count them all
            total = int(
                self.storage.fetch("SELECT COUNT(*) AS n FROM server_alerts WHERE ts >= ?", [since])[0]["n"]
            ) + int(
                self.storage.fetch(
                    "SELECT COUNT(*) AS n FROM events e WHERE e.kind = 'alert' AND e.ts >= ?"
                    " AND NOT EXISTS (SELECT 1 FROM server_alerts s WHERE s.dedupe_key = 'event:' || e.id)",
                    [since],
                )[0]["n"]
            )
        return {"alerts": items[:limit], "total": total}

    # -- memory -----------------------------------------------------------

    def memory(self, *, agent: Optional[str] = None, limit: int = 200) -> Dict[str, Any]:
        """Memory snapshots newest first, and per file its latest state and size history."""
        limit = max(1, min(int(limit), 2000))
        params: List[Any] = []
        clause = ""
        if agent is not None:
            clause = " AND agent = ?"
            params.append(agent)
        rows = self.storage.fetch(
            "SELECT id, ts, agent, host, session, trace_id, data FROM events"
            f" WHERE kind = 'memory_snapshot'{clause} ORDER BY ts DESC LIMIT ?",
            [*params, limit],
        )
        snapshots = []
        files: Dict[Tuple[Any, str], Dict[str, Any]] = {}
        for r in rows:
            data = _json(r["data"])
            fl = [f for f in data.get("files") or [] if isinstance(f, dict)]
            snapshots.append(
                {k: r[k] for k in ("id", "ts", "agent", "host", "session", "trace_id")} | {"files": fl}
            )
            for f in fl:
                key = (r["agent"], str(f.get("path")))
                entry = files.get(key)
                if entry is None:
                    entry = files[key] = {"agent": r["agent"], **f, "ts": r["ts"], "history": []}
                entry["history"].append({"ts": r["ts"], "size": f.get("size"), "lines": f.get("lines")})
        for entry in files.values():
            entry["history"].reverse()
        return {
            "snapshots": snapshots,
            "files": sorted(files.values(), key=lambda f: (str(f["agent"]), f["path"])),
        }


# -- trace tree ------------------------------------------------------------------


def _node(span_id: str) -> Dict[str, Any]:
    return {
        "span_id": span_id,
        "parent_span_id": None,
        "type": "span",
        "span_kind": None,
        "name": None,
        "start": None,
        "end": None,
        "duration_ms": None,
        "status": "running",
        "error": None,
        "metadata": {},
        "events": [],
        "children": [],
    }


def _build_tree(trace_key: str, rows: List[Dict[str, Any]], *, truncated: bool) -> Dict[str, Any]:
    nodes: Dict[str, Dict[str, Any]] = {}
    loose: List[Dict[str, Any]] = []
    first = rows[0]
    for r in rows:
        data = _json(r["data"])
        kind = r["kind"]
        sid = r["span_id"]
        if kind in ("span_start", "span_end") and sid:
            n = nodes.get(sid)
            if n is None:
                n = nodes[sid] = _node(sid)
            n["name"] = data.get("name") or n["name"]
            n["span_kind"] = data.get("span_kind") or n["span_kind"]
            n["metadata"].update(data.get("metadata") or {})
            if kind == "span_start":
                n["start"] = r["ts"]
                n["parent_span_id"] = r["parent_span_id"]
            else:
                n["end"] = r["ts"]
                n["status"] = data.get("status") or r["status"]
                n["duration_ms"] = data.get("duration_ms")
                n["error"] = data.get("error")
                if n["start"] is None and n["duration_ms"] is not None:
                    n["start"] = r["ts"] - float(n["duration_ms"]) / 1000.0
        elif kind == "llm_call" and sid:
            n = nodes.get(sid)
            if n is None:
                n = nodes[sid] = _node(sid)
            latency = data.get("latency_ms")
            n.update(
                {
                    "type": "llm_call",
                    "span_kind": "llm_call",
                    "parent_span_id": r["parent_span_id"],
                    "name": data.get("response_model") or data.get("model") or "llm call",
                    "start": r["ts"],
                    "end": r["ts"] + float(latency) / 1000.0 if latency is not None else r["ts"],
                    "duration_ms": latency,
                    "status": data.get("status") or "success",
                    "error": data.get("error"),
                    "llm": {k: v for k, v in data.items() if k not in ("status", "error")},
                }
            )
        else:
            item = {
                "id": r["id"],
                "kind": kind,
                "ts": r["ts"],
                "name": r["name"],
                "status": r["status"],
                "data": data,
            }
            target = nodes.get(sid) if sid else None
            if target is None and sid:
                target = nodes[sid] = _node(sid)
            (target["events"] if target is not None else loose).append(item)

    roots: List[Dict[str, Any]] = []
    for n in nodes.values():
        if n["start"] is None:
            n["start"] = min((e["ts"] for e in n["events"]), default=first["ts"])
        parent = nodes.get(n["parent_span_id"]) if n["parent_span_id"] else None
        (parent["children"] if parent is not None else roots).append(n)
    for n in nodes.values():
        n["children"].sort(key=lambda c: c["start"])
    roots.sort(key=lambda c: c["start"])

    llm = [n for n in nodes.values() if n["type"] == "llm_call"]
    start = min(float(n["start"]) for n in nodes.values()) if nodes else float(first["ts"])
    ends = [float(n["end"]) for n in nodes.values() if n["end"] is not None]
    ends += [float(r["ts"]) for r in rows]
    end = max(ends)
    root = roots[0] if roots else None

    def cost(n: Dict[str, Any]) -> Optional[float]:
        value = n["llm"].get("cost_usd")
        return float(value) if value is not None else None

    costs = [c for c in (cost(n) for n in llm) if c is not None]
    return {
        "trace_id": trace_key,
        "session": first["session"],
        "agent": first["agent"],
        "host": first["host"],
        "name": root["name"] if root else None,
        "status": root["status"] if root else None,
        "start": start,
        "end": end,
        "duration_ms": (end - start) * 1000.0,
        "llm_calls": len(llm),
        "cost_usd": round(sum(costs), 10) if costs else None,
        "input_tokens": sum(int(n["llm"].get("input_tokens") or 0) for n in llm),
        "output_tokens": sum(int(n["llm"].get("output_tokens") or 0) for n in llm),
        "errors": sum(1 for n in nodes.values() if n["status"] == "error")
        + sum(1 for r in rows if r["kind"] == "error"),
        "truncated": truncated,
        "spans": roots,
        "events": loose,
    }
