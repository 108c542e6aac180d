"""``agentpulse sessions``: the latest traces with their LLM calls, tokens, cost and status.

Example::

    $ agentpulse sessions
    $ agentpulse sessions --since 2h -n 50 --json
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, List, Optional

from ..store import TraceSummary
from . import (
    add_store_options,
    emit_json,
    fmt_duration,
    fmt_money,
    fmt_time,
    fmt_tokens,
    missing_store_message,
    open_store,
    out,
    parse_since,
    render_table,
)

__all__ = ["register", "run", "status_label"]


def register(subparsers: Any) -> None:
    """Add the ``sessions`` command."""
    p = subparsers.add_parser(
        "sessions",
        help="recent traces: name, start, duration, LLM calls, tokens, cost, status",
        description="List recent traces (sessions, cron runs, LLM calls outside any span), newest first.",
    )
    add_store_options(p)
    p.add_argument("-n", "--limit", type=int, default=20, help="how many traces (default 20)")
    p.add_argument("--since", metavar="WHEN", help="only traces started since: 30m, 2h, 7d or 2026-11-26")
    p.set_defaults(func=run)


def status_label(status: Optional[str]) -> str:
    """``ok``, ``error``, ``running`` ... as shown in tables."""
    if status is None:
        return "?"
    return {"success": "ok", "cancelled": "cancel"}.get(status, status)


def rows_for(traces: List[TraceSummary]) -> List[List[str]]:
    """Table cells for ``traces``."""
    rows = []
    for t in traces:
        tokens = "" if not t.llm_calls else f"{fmt_tokens(t.input_tokens)}/{fmt_tokens(t.output_tokens)}"
        cost = fmt_money(t.cost_usd, complete=t.cost_complete) if t.llm_calls else ""
        rows.append(
            [
                t.trace_id[:8],
                t.name,
                fmt_time(t.start),
                fmt_duration(t.duration_ms),
                str(t.llm_calls),
                tokens,
                cost,
                status_label(t.status),
            ]
        )
    return rows


def run(args: argparse.Namespace) -> int:
    """Print the table (or JSON); exit code 2 on a bad ``--since``."""
    since = None
    if args.since:
        try:
            since = parse_since(args.since)
        except ValueError as exc:
            sys.stderr.write(f"agentpulse sessions: --since: {exc}\n")
            return 2
    with open_store(args) as store:
        if not store.exists:
            if args.json:
                emit_json([])
            else:
                out(missing_store_message(store.path))
            return 0
        traces = store.recent_traces(limit=args.limit, since=since)
    if args.json:
        emit_json([t.to_dict() for t in traces])
        return 0
    if not traces:
        out("No traces yet." + (" (none since then)" if since is not None else ""))
        return 0
    headers = ["ID", "NAME", "STARTED", "DURATION", "LLM", "TOKENS", "COST", "STATUS"]
    align = ["<", "<", "<", ">", ">", ">", ">", "<"]
    for line in render_table(headers, rows_for(traces), align=align, flex=1):
        out(line)
    out("")
    shown = f"{len(traces)} trace" + ("" if len(traces) == 1 else "s")
    out(f"{shown}, newest first. The tree of one: agentpulse show <ID>")
    return 0
