"""``agentpulse crons``: every cron job seen, its last run, and whether one was missed or overran.

Example::

    $ agentpulse crons
    MONITOR          SCHEDULE         LAST RUN     STATUS  DURATION  NEXT RUN     ALERT
    nightly-cleanup  0 3 * * * UTC    11-26 03:00  ok        12.4s   11-27 03:00
    inbox-sweep      */15 * * * * UTC 11-26 09:15  ok         820ms  11-26 09:30  MISSED (3)

    $ agentpulse crons --check    # exit code 1 when a job is missed, overran or failed
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from typing import Any, List

from ..cron_store import MonitorStatus, cron_statuses
from . import (
    add_store_options,
    emit_json,
    fmt_duration,
    fmt_time,
    glyphs,
    missing_store_message,
    out,
    render_table,
)
from . import store_path as _store_path

__all__ = ["register", "rows_for", "run"]


def register(subparsers: Any) -> None:
    """Add the ``crons`` command."""
    p = subparsers.add_parser(
        "crons",
        help="cron jobs: last run, status, duration, next expected run, MISSED / OVERRAN",
        description=(
            "List every cron monitor recorded in the store (agentpulse.cron or agentpulse run --cron): "
            "its last run, status and duration, when the next run is due, and MISSED / OVERRAN when due."
        ),
    )
    add_store_options(p)
    p.add_argument(
        "--check",
        action="store_true",
        help="exit with code 1 when any job was missed, overran or failed its last run",
    )
    p.set_defaults(func=run)


def _alert(m: MonitorStatus) -> str:
    parts = []
    for flag in m.flags:
        parts.append(f"MISSED ({m.missed_runs})" if flag == "MISSED" and m.missed_runs > 1 else flag)
    if m.schedule_error:
        parts.append("bad schedule")
    return " ".join(parts)


def rows_for(monitors: List[MonitorStatus]) -> List[List[str]]:
    """Table cells for ``monitors``."""
    dash = glyphs().dash
    rows = []
    for m in monitors:
        last = m.last_run
        schedule = f"{m.schedule} {m.timezone or 'UTC'}" if m.schedule else dash
        rows.append(
            [
                m.monitor,
                schedule,
                fmt_time(last.start) if last is not None else dash,
                m.last_status or dash,
                fmt_duration(last.duration_ms) if last is not None and last.end is not None else dash,
                fmt_time(m.next_expected) if m.next_expected is not None else dash,
                _alert(m),
            ]
        )
    return rows


def run(args: argparse.Namespace) -> int:
    """Print the table (or JSON).

    Exit code 1 with ``--check`` when a job needs attention, 2 when the store is unreadable.
    """
    path = _store_path(args)
    try:
        monitors = cron_statuses(path)
    except sqlite3.Error as exc:
        sys.stderr.write(f"agentpulse crons: cannot read {path}: {exc}\n")
        return 2
    check = bool(getattr(args, "check", False))
    bad = check and any(not m.healthy for m in monitors)
    if args.json:
        emit_json([m.to_dict() for m in monitors])
        return 1 if bad else 0
    if not path.is_file():
        out(missing_store_message(path))
        return 0
    if not monitors:
        out("No cron runs recorded yet.")
        out("Wrap a job with agentpulse.cron(...), or run it with: agentpulse run --cron NAME -- COMMAND")
        return 0
    headers = ["MONITOR", "SCHEDULE", "LAST RUN", "STATUS", "DURATION", "NEXT RUN", "ALERT"]
    align = ["<", "<", "<", "<", ">", "<", "<"]
    for line in render_table(headers, rows_for(monitors), align=align, flex=0):
        out(line)
    out("")
    out("Times are local. A run of a monitor: agentpulse sessions, then agentpulse show <ID>")
    return 1 if bad else 0
