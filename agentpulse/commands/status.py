"""``agentpulse status``: the resolved configuration, where events go, and what the store holds.

Example::

    $ agentpulse status
    $ agentpulse status --json
"""

from __future__ import annotations

import argparse
import os
from typing import Any, Dict, List

from .._version import __version__
from ..config import Config, ConfigError
from . import (
    add_store_options,
    clip,
    emit_json,
    fmt_ago,
    fmt_count,
    fmt_money,
    fmt_time,
    fmt_tokens,
    glyphs,
    missing_store_message,
    open_store,
    out,
    screen_width,
)

__all__ = ["destination", "register", "run"]

# Options worth a line in the text output; --json shows them all.
_SHOWN = (
    "agent_name",
    "exporter",
    "endpoint",
    "api_key",
    "local_path",
    "enabled",
    "capture_messages",
    "auto_patch",
    "flush_interval",
    "max_queue_size",
    "budget_usd_per_hour",
    "budget_usd_per_session",
)


def register(subparsers: Any) -> None:
    """Add the ``status`` command."""
    p = subparsers.add_parser(
        "status",
        help="configuration, where events go, and totals of the local store",
        description="Show the resolved configuration (key masked), where events go and the store's totals.",
    )
    add_store_options(p)
    p.set_defaults(func=run)


def destination(config: Config) -> str:
    """Where a process started with ``config`` sends its events, in words."""
    if not config.enabled:
        return "nowhere (enabled=False)"
    if config.exporter == "none":
        return "nowhere (exporter='none')"
    if config.exporter == "memory":
        return "memory (exporter='memory', for tests)"
    if config.uses_http():
        if config.endpoint is None:
            return "an HTTP collector, but no endpoint is set (AGENTPULSE_ENDPOINT)"
        return f"{config.endpoint}/v1/ingest"
    return f"local store {config.local_path}"


def run(args: argparse.Namespace) -> int:
    """Print the status; exit code 2 when the configuration in the environment is invalid."""
    config_error = None
    cfg: Dict[str, Any] = {}
    dest = ""
    try:
        config = Config.resolve({})
        cfg = config.public_dict()
        dest = destination(config)
    except ConfigError as exc:
        config_error = str(exc)
    with open_store(args) as store:
        st = store.status_counts()
    if args.json:
        emit_json(
            {
                "version": __version__,
                "destination": dest or None,
                "config": cfg or None,
                "config_error": config_error,
                "store": st.to_dict(),
            }
        )
        return 2 if config_error else 0
    g = glyphs()
    width = screen_width()
    lines: List[str] = [f"AgentPulse {__version__}"]
    if config_error:
        lines.append(f"Configuration error: {config_error}")
    else:
        lines.append(f"Events go to:  {dest}")
    lines.append("")
    lines.append(f"Store: {os.path.abspath(st.path)}")
    if not st.exists:
        lines.extend("  " + line for line in missing_store_message(store.path).splitlines())
    else:
        size = (
            f"{st.size_bytes / 1e6:.1f} MB" if st.size_bytes >= 100_000 else f"{st.size_bytes / 1e3:.0f} kB"
        )
        lines.append(f"  size         {size}, schema v{st.schema_version}")
        lines.append(f"  events       {fmt_count(st.events)}")
        lines.append(f"  traces       {fmt_count(st.traces)}")
        tokens = ""
        if st.llm_calls:
            tokens = f"  ({fmt_tokens(st.input_tokens)} in / {fmt_tokens(st.output_tokens)} out tokens)"
        lines.append(f"  LLM calls    {fmt_count(st.llm_calls)}{tokens}")
        cost = fmt_money(st.cost_usd, complete=st.calls_without_cost == 0)
        if st.calls_without_cost:
            cost += f"  ({st.calls_without_cost} calls of unknown cost)"
        lines.append(f"  total cost   {cost}")
        lines.append(f"  errors       {fmt_count(st.errors)}")
        lines.append(
            f"  processes    {fmt_count(st.processes)}"
            + (f"  agents: {', '.join(st.agents)}" if st.agents else "")
        )
        if st.last_ts is not None:
            lines.append(f"  last event   {fmt_time(st.last_ts, seconds=True)}  ({fmt_ago(st.last_ts)})")
    if cfg:
        lines.append("")
        lines.append("Configuration (init() options > AGENTPULSE_* env > defaults):")
        for name in _SHOWN:
            value = cfg.get(name)
            shown = g.dash if value is None else str(value)
            lines.append(f"  {name:<24}{shown}")
        lines.append("  (agentpulse status --json shows every option)")
    for line in lines:
        out(clip(line, width))
    return 2 if config_error else 0
