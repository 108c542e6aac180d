"""``agentpulse tail``: follow events as they are stored, like ``tail -f``.

Prints the last events, then every new one until Ctrl-C. ``--once`` prints and
exits; ``--after ROWID`` starts after a row (``--json`` prints one JSON object
per line, with its ``rowid``, so a script can resume where it stopped).

Example::

    $ agentpulse tail
    $ agentpulse tail --kind llm_call --kind error
    $ agentpulse tail --once --json -n 100
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, List, Optional

from ..models import EVENT_KINDS
from ..store import Store, StoredEvent
from . import (
    Glyphs,
    add_store_options,
    clip,
    fmt_duration,
    fmt_money,
    fmt_time,
    fmt_tokens,
    glyphs,
    missing_store_message,
    open_store,
    out,
    pad,
    screen_width,
)
from .sessions import status_label
from .show import _event_label

__all__ = ["format_event", "register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``tail`` command."""
    p = subparsers.add_parser(
        "tail",
        help="follow new events as they are stored (--once: print and exit)",
        description="Print the latest events, then follow new ones until interrupted.",
    )
    add_store_options(p)
    p.add_argument(
        "-n",
        "--lines",
        type=int,
        default=None,
        help="how many past events to print first (default 20; all with --after)",
    )
    p.add_argument("--once", action="store_true", help="print what is there and exit instead of following")
    p.add_argument(
        "--after", type=int, metavar="ROWID", help="print events stored after this row instead of the last N"
    )
    p.add_argument(
        "--kind", action="append", choices=EVENT_KINDS, help="only events of this kind (repeatable)"
    )
    p.add_argument(
        "--interval", type=float, default=0.5, help="seconds between polls when following (default 0.5)"
    )
    p.set_defaults(func=run)


def format_event(ev: StoredEvent, width: int, g: Optional[Glyphs] = None) -> str:
    """One line for ``ev``: time, session (or trace id), what happened.

    Example::

        format_event(ev, 80)
        # '14:59:03.120  daily-email     llm openai/gpt-4o 150→89 tok $0.0012 812ms'
    """
    g = glyphs() if g is None else g
    d = ev.data
    if ev.kind == "llm_call":
        what = "llm " + ("/".join(x for x in (ev.provider, ev.model) if x) or "call")
        what += f" {fmt_tokens(ev.input_tokens)}{g.arrow}{fmt_tokens(ev.output_tokens)} tok"
        what += f" {fmt_money(ev.cost_usd)} {fmt_duration(ev.duration_ms)}"
        if ev.status and ev.status != "success":
            err = d.get("error") or {}
            what += f" {ev.status} {err.get('type', '')}".rstrip()
    elif ev.kind == "span_start":
        what = f"start {d.get('span_kind') or 'span'} {ev.name or '?'}"
    elif ev.kind == "span_end":
        what = f"end {d.get('span_kind') or 'span'} {ev.name or '?'}"
        what += f" {fmt_duration(ev.duration_ms)} {status_label(ev.status)}"
    elif ev.kind == "process_start":
        what = f"process {ev.pid} started ({ev.agent or '?'} on {ev.host or '?'})"
    elif ev.kind == "process_stop":
        what = f"process {ev.pid} stopped"
    else:
        what = _event_label(ev, g)
    where = ev.session or (ev.trace_id or "")[:8] or g.dash
    return clip(f"{fmt_time(ev.ts, millis=True)}  {pad(where, 14)}  {what}", width)


def _print(events: List[StoredEvent], as_json: bool, width: int, g: Glyphs) -> None:
    for ev in events:
        if as_json:
            out(json.dumps(ev.to_dict(), ensure_ascii=not g.unicode, default=str))
        else:
            out(format_event(ev, width, g))
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    """Print, then follow until Ctrl-C (or exit at once with ``--once``)."""
    width = screen_width()
    g = glyphs()
    kinds = args.kind or None
    with open_store(args) as store:
        if not store.exists:
            if args.once:
                if not args.json:
                    out(missing_store_message(store.path))
                return 0
            sys.stderr.write(f"Waiting for {store.path} to be created (Ctrl-C to stop)...\n")
        try:
            last = _first_page(store, args, kinds, width, g)
            if args.once:
                return 0
            while True:
                time.sleep(max(0.05, args.interval))
                new = store.tail(after_rowid=last, limit=1000, kinds=kinds)
                if new:
                    _print(new, args.json, width, g)
                    last = new[-1].rowid
                elif kinds:
                    last = max(last, store.last_rowid())
        except KeyboardInterrupt:
            return 0


def _first_page(
    store: Store, args: argparse.Namespace, kinds: Optional[List[str]], width: int, g: Glyphs
) -> int:
    if args.after is not None:
        limit = 1_000_000 if args.lines is None else max(0, args.lines)
        events = store.tail(after_rowid=args.after, limit=limit, kinds=kinds)
        last = int(args.after)
    else:
        last = store.last_rowid()
        events = store.last_events(20 if args.lines is None else max(0, args.lines), kinds=kinds)
    _print(events, args.json, width, g)
    return max([last] + [e.rowid for e in events])
