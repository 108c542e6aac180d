"""``agentpulse show ID``: one trace as a tree of spans, LLM calls and events.

``ID`` is a trace id or any unique prefix of one, as ``agentpulse sessions``
prints it.

Example::

    $ agentpulse show 3f2a9c1e
    $ agentpulse show 3f2a --json
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, List, Optional, Tuple, Union

from ..store import AmbiguousIdError, StoredEvent, TraceNode, TraceTree
from . import (
    Glyphs,
    add_store_options,
    clip,
    emit_json,
    fmt_duration,
    fmt_money,
    fmt_time,
    fmt_tokens,
    glyphs,
    missing_store_message,
    open_store,
    out,
    screen_width,
    text_width,
)
from .sessions import status_label

__all__ = ["register", "render_tree", "run"]


def register(subparsers: Any) -> None:
    """Add the ``show`` command."""
    p = subparsers.add_parser(
        "show",
        help="one trace as a tree: spans, LLM calls (tokens, cost, latency), events, errors",
        description="Show one trace as a tree. ID is a trace id or a unique prefix of one.",
    )
    p.add_argument("id", metavar="ID", help="trace id or unique prefix (from `agentpulse sessions`)")
    add_store_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the tree; exit code 1 when no trace matches or the prefix is ambiguous."""
    with open_store(args) as store:
        if not store.exists:
            sys.stderr.write(missing_store_message(store.path) + "\n")
            return 1
        try:
            tree = store.trace_tree(args.id)
        except AmbiguousIdError as exc:
            sys.stderr.write(f"agentpulse show: {exc}\n")
            return 1
    if tree is None:
        sys.stderr.write(f"agentpulse show: no trace with id {args.id!r} in {store.path}\n")
        return 1
    if args.json:
        emit_json(tree.to_dict())
        return 0
    for line in render_tree(tree):
        out(line)
    return 0


# -- rendering ------------------------------------------------------------------


def render_tree(tree: TraceTree, width: Optional[int] = None, g: Optional[Glyphs] = None) -> List[str]:
    """The text of ``agentpulse show``: a header with the totals, then the tree, each line <= ``width``.

    Example::

        for line in render_tree(store.trace_tree("3f2a")):
            print(line)
    """
    width = screen_width() if width is None else width
    g = glyphs() if g is None else g
    s = tree.summary
    lines = [clip(f"Trace {s.trace_id}", width)]
    head = [f"{s.name} ({s.kind})", fmt_time(s.start, seconds=True), fmt_duration(s.duration_ms)]
    head.append(status_label(s.status))
    lines.append(clip(f" {g.dot} ".join(head), width))
    totals = [f"{s.llm_calls} LLM call" + ("" if s.llm_calls == 1 else "s")]
    if s.llm_calls:
        totals.append(f"{fmt_tokens(s.input_tokens)} in / {fmt_tokens(s.output_tokens)} out tokens")
        totals.append(fmt_money(s.cost_usd, complete=s.cost_complete))
    if s.errors:
        totals.append(f"{s.errors} error" + ("" if s.errors == 1 else "s"))
    lines.append(clip(f" {g.dot} ".join(totals), width))
    lines.append("")
    for root in tree.roots:
        _node(root, "", "", "", width, g, lines)
    if any(n.llm and n.llm.get("simulated") for n in tree.nodes()):
        lines.append("")
        lines.append(clip("* recorded by the demo itself: no LLM integration recorded these calls", width))
    if tree.loose:
        lines.append("")
        lines.append(clip("Events outside any recorded span:", width))
        for i, ev in enumerate(tree.loose):
            conn = g.elbow if i == len(tree.loose) - 1 else g.tee
            lines.append(_line(conn + _event_label(ev, g), "", width))
    return lines


def _line(left: str, right: str, width: int) -> str:
    if not right:
        return clip(left, width)
    room = width - text_width(right) - 2
    left = clip(left, max(1, room))
    return (left + " " * max(2, width - text_width(left) - text_width(right)) + right).rstrip()


def _node(
    node: TraceNode, lead: str, conn: str, child_lead: str, width: int, g: Glyphs, lines: List[str]
) -> None:
    if node.kind == "llm_call":
        label, right = _llm_label(node, g)
    else:
        label = f"{node.kind} {node.name}"
        right = f"{fmt_duration(node.duration_ms):>7}  {status_label(node.status or 'running'):<7}"
    lines.append(_line(lead + conn + label, right, width))
    items: List[Tuple[float, int, Union[TraceNode, StoredEvent, str]]] = []
    if node.error:
        err = node.error
        items.append((node.start, 0, f"{err.get('type', 'error')}: {err.get('message', '')}".rstrip(": ")))
    items.extend((e.ts, 1, e) for e in node.events)
    items.extend((c.start, 2, c) for c in node.children)
    items.sort(key=lambda it: (it[0], it[1]))
    for i, (_, _, item) in enumerate(items):
        last = i == len(items) - 1
        c = g.elbow if last else g.tee
        below = child_lead + (g.blank if last else g.pipe)
        if isinstance(item, TraceNode):
            _node(item, child_lead, c, below, width, g, lines)
        elif isinstance(item, StoredEvent):
            lines.append(_line(child_lead + c + _event_label(item, g), "", width))
        else:
            lines.append(_line(child_lead + c + "raised " + item, "", width))


def _llm_label(node: TraceNode, g: Glyphs) -> Tuple[str, str]:
    d = node.llm or {}
    label = f"llm {node.name}"
    if d.get("simulated"):
        label += "*"
    if d.get("streaming"):
        label += " stream"
    tin, tout = d.get("input_tokens"), d.get("output_tokens")
    tokens = f"{fmt_tokens(tin)}{g.arrow}{fmt_tokens(tout)} tok"
    if d.get("usage_estimated"):
        tokens += "~"
    cost = fmt_money(d.get("cost_usd"))
    right = f"{tokens}  {cost:>8}  {fmt_duration(node.duration_ms):>7}  {status_label(node.status):<7}"
    return label, right


def _compact(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
    except (TypeError, ValueError):
        return repr(value)


def _event_label(ev: StoredEvent, g: Glyphs) -> str:
    d = ev.data
    kind = ev.kind
    if kind == "event":
        extra = d.get("data")
        return f"event {d.get('name', '?')}" + (f" {_compact(extra)}" if extra else "")
    if kind == "metric":
        tags = d.get("tags")
        value = d.get("value")
        shown = f"{value:g}" if isinstance(value, (int, float)) else str(value)
        return f"metric {d.get('name', '?')} = {shown}" + (f" {_compact(tags)}" if tags else "")
    if kind == "alert":
        return f"alert [{d.get('severity', 'warning')}] {d.get('title', '?')}"
    if kind == "error":
        return f"error {d.get('type', '?')}: {d.get('message', '')}".rstrip(": ")
    if kind == "cron_checkin":
        return f"cron {d.get('monitor', '?')} {d.get('status', '?')}"
    if kind == "memory_snapshot":
        files = d.get("files") or []
        return f"memory {len(files)} file" + ("" if len(files) == 1 else "s")
    return f"{kind} {ev.name or ''}".rstrip()
