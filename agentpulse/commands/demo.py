"""``agentpulse demo``: run a small instrumented agent offline and show what was recorded.

Example::

    $ agentpulse demo
    $ agentpulse demo --db /tmp/demo.db
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from . import add_store_options, emit_json, open_store, out, store_path
from .show import render_tree

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``demo`` command."""
    p = subparsers.add_parser(
        "demo",
        help="run a small offline agent end to end and show its trace",
        description=(
            "Run a small instrumented agent (an inbox triage with model calls answered in-process, "
            "events, metrics and a handled error), store its trace in the local store and print it."
        ),
    )
    add_store_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo and print its tree and what to try next."""
    from ..demo import run_demo

    db = store_path(args) if args.db is not None else None
    trace_id = run_demo(db)
    with open_store(args) as store:
        tree = store.trace_tree(trace_id)
    if tree is None:
        out(f"The demo ran (trace {trace_id}) but its events are not in {store.path}.")
        return 1
    if args.json:
        emit_json(tree.to_dict())
        return 0
    for line in render_tree(tree):
        out(line)
    where = "" if args.db is None else f" --db {shlex.quote(str(store.path))}"
    out("")
    out("Stored in " + str(store.path) + ". Next:")
    out(f"  agentpulse sessions{where}")
    out(f"  agentpulse show {trace_id[:8]}{where}")
    out(f"  agentpulse tail --once{where}")
    return 0
