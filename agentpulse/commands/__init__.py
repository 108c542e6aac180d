"""Subcommands of the ``agentpulse`` command, one module each, and what they share.

A command module exposes ``register(subparsers) -> None``: it adds its parser
and sets ``func`` to a function taking the parsed ``argparse.Namespace`` and
returning the exit code. ``agentpulse.cli`` imports the modules it knows by
name and skips those that are not installed.

Example (a new ``agentpulse/commands/hello.py``)::

    from agentpulse.commands import add_store_options, emit_json

    def register(subparsers):
        p = subparsers.add_parser("hello", help="say hello")
        add_store_options(p)
        p.set_defaults(func=run)

    def run(args):
        emit_json({"hello": "world"}) if args.json else print("hello")
        return 0
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
import time
import unicodedata
from pathlib import Path
from typing import Any, List, Optional, Sequence

from ..store import Store, default_store_path

__all__ = [
    "Glyphs",
    "add_store_options",
    "clip",
    "emit_json",
    "fmt_count",
    "fmt_duration",
    "fmt_money",
    "fmt_time",
    "fmt_tokens",
    "glyphs",
    "open_store",
    "out",
    "parse_since",
    "render_table",
    "screen_width",
    "text_width",
]

#: Widest line the commands print when stdout is not a terminal.
DEFAULT_WIDTH = 80


def add_store_options(parser: argparse.ArgumentParser, *, json_flag: bool = True) -> None:
    """Add ``--db PATH`` (the store to read) and, unless told not to, ``--json``."""
    parser.add_argument(
        "--db",
        metavar="PATH",
        type=Path,
        default=None,
        help="store file to read (default: $AGENTPULSE_LOCAL_PATH or ~/.agentpulse/agentpulse.db)",
    )
    if json_flag:
        parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def store_path(args: argparse.Namespace) -> Path:
    """The store file a command should read: ``--db`` or the configured default."""
    db: Optional[Path] = getattr(args, "db", None)
    return db.expanduser() if db is not None else default_store_path()


def open_store(args: argparse.Namespace) -> Store:
    """A ``Store`` on ``--db`` or the configured default path."""
    return Store(store_path(args))


def out(line: str = "") -> None:
    """Print one line to stdout (the commands' only way to write, so tests can capture it)."""
    try:
        sys.stdout.write(line + "\n")
    except UnicodeEncodeError:
        # A name or message the terminal's encoding cannot show: print it with replacements.
        encoding = getattr(sys.stdout, "encoding", None) or "ascii"
        sys.stdout.write(line.encode(encoding, "replace").decode(encoding) + "\n")


def emit_json(value: Any) -> None:
    """Print ``value`` as indented JSON (escaped to ASCII when stdout cannot encode Unicode)."""
    out(json.dumps(value, indent=2, ensure_ascii=not glyphs().unicode, default=str))


def missing_store_message(path: Path) -> str:
    """What to say when the store file does not exist yet."""
    return (
        "No events yet. The store file does not exist:\n"
        f"  {path}\n"
        "It is created by the first program that calls agentpulse.init()\n"
        "without an API key or endpoint. Try: agentpulse demo"
    )


# -- text -------------------------------------------------------------------


class Glyphs:
    """The characters the tree and tables are drawn with, Unicode or plain ASCII."""

    def __init__(self, unicode: bool) -> None:
        self.unicode = unicode
        self.tee = "├─ " if unicode else "|- "
        self.elbow = "└─ " if unicode else "`- "
        self.pipe = "│  " if unicode else "|  "
        self.blank = "   "
        self.dash = "—" if unicode else "-"
        self.arrow = "→" if unicode else "->"
        self.dot = "·" if unicode else "-"
        self.ellipsis = "…" if unicode else "~"


def glyphs() -> Glyphs:
    """Unicode glyphs when stdout can encode them, else ASCII (a C locale, an old Windows console)."""
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "├─└│—→·…".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return Glyphs(False)
    return Glyphs(True)


def screen_width() -> int:
    """Columns to fit: the terminal's width when stdout is one, else 80."""
    try:
        if sys.stdout.isatty():
            import shutil

            return max(60, min(200, shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns))
    except (AttributeError, ValueError, OSError):
        pass
    return DEFAULT_WIDTH


def _char_width(ch: str) -> int:
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def text_width(text: str) -> int:
    """Columns ``text`` takes in a terminal (wide East Asian characters count two)."""
    if text.isascii():
        return len(text)
    return sum(_char_width(c) for c in text)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def clip(text: str, width: int, ellipsis: Optional[str] = None) -> str:
    """``text`` on one line, cut to ``width`` columns with an ellipsis when longer.

    Example::

        clip("a very long session name", 10)   # 'a very lo…'
    """
    text = _CONTROL.sub(" ", text)
    if text_width(text) <= width:
        return text
    if width <= 0:
        return ""
    mark = glyphs().ellipsis if ellipsis is None else ellipsis
    room = width - text_width(mark)
    kept: List[str] = []
    used = 0
    for ch in text:
        w = _char_width(ch)
        if used + w > room:
            break
        kept.append(ch)
        used += w
    return "".join(kept) + mark


def pad(text: str, width: int, align: str = "<") -> str:
    """``text`` clipped and padded to exactly ``width`` columns."""
    text = clip(text, width)
    gap = " " * max(0, width - text_width(text))
    return gap + text if align == ">" else text + gap


def render_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    align: Sequence[str],
    flex: int,
    width: Optional[int] = None,
) -> List[str]:
    """Lines of a plain table fitting ``width`` columns; column ``flex`` takes what is left.

    ``align`` holds ``<`` or ``>`` per column. Every other column is as wide as
    its widest cell.
    """
    total = screen_width() if width is None else width
    n = len(headers)
    widths = [max([text_width(headers[i])] + [text_width(r[i]) for r in rows]) for i in range(n)]
    fixed = sum(w for i, w in enumerate(widths) if i != flex) + 2 * (n - 1)
    widths[flex] = max(4, min(widths[flex], total - fixed))
    lines = []
    for cells in [list(headers), *[list(r) for r in rows]]:
        line = "  ".join(pad(cells[i], widths[i], align[i]) for i in range(n))
        lines.append(clip(line.rstrip(), total))
    return lines


# -- numbers ------------------------------------------------------------------


def fmt_money(usd: Optional[float], *, complete: bool = True) -> str:
    """``$0.0012``; ``—`` when unknown; a trailing ``+`` when some costs were unknown.

    Example::

        fmt_money(0.00123)   # '$0.0012'
        fmt_money(None)      # '—'
    """
    if usd is None:
        return glyphs().dash
    if usd == 0:
        text = "$0"
    elif usd < 0.000001:
        text = "<$0.000001"
    elif usd < 0.0001:
        text = f"${usd:.6f}".rstrip("0")
    elif usd < 1:
        text = f"${usd:.4f}"
    elif usd < 1000:
        text = f"${usd:.2f}"
    else:
        text = f"${usd:,.0f}"
    return text if complete else text + "+"


def fmt_tokens(n: Optional[int]) -> str:
    """``845``, ``12.3k``, ``4.1M``; ``?`` when unknown."""
    if n is None:
        return "?"
    if n < 1000:
        return str(n)
    if n < 100_000:
        return f"{n / 1000:.1f}k"
    if n < 1_000_000:
        return f"{n // 1000}k"
    return f"{n / 1_000_000:.1f}M"


def fmt_count(n: Optional[int]) -> str:
    """``1,234``."""
    return "0" if n is None else f"{n:,}"


def fmt_duration(ms: Optional[float]) -> str:
    """``820ms``, ``1.24s``, ``3m05s``, ``2h01m``; ``—`` when unknown."""
    if ms is None:
        return glyphs().dash
    if ms < 1:
        return f"{ms:.2f}ms"
    if ms < 1000:
        return f"{ms:.0f}ms"
    s = ms / 1000
    if s < 60:
        return f"{s:.2f}s" if s < 10 else f"{s:.1f}s"
    if s < 3600:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"


def fmt_time(ts: Optional[float], *, seconds: bool = False, millis: bool = False) -> str:
    """Local time: ``11-26 14:59`` (``seconds``: ``11-26 14:59:03``; ``millis``: ``14:59:03.123``)."""
    if ts is None:
        return glyphs().dash
    dt = datetime.datetime.fromtimestamp(ts)
    if millis:
        return dt.strftime("%H:%M:%S.") + f"{dt.microsecond // 1000:03d}"
    return dt.strftime("%m-%d %H:%M:%S" if seconds else "%m-%d %H:%M")


def fmt_ago(ts: Optional[float], now: Optional[float] = None) -> str:
    """``3 min ago``."""
    if ts is None:
        return ""
    delta = max(0.0, (time.time() if now is None else now) - ts)
    if delta < 60:
        return f"{delta:.0f} s ago"
    if delta < 3600:
        return f"{delta / 60:.0f} min ago"
    if delta < 86400:
        return f"{delta / 3600:.1f} h ago"
    return f"{delta / 86400:.0f} days ago"


_SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: Optional[float] = None) -> float:
    """``30m``, ``2h``, ``7d`` (ago) or an ISO date/time -> Unix time. Raises ``ValueError``.

    Example::

        parse_since("2h")            # two hours ago
        parse_since("2026-11-26")    # that midnight, local time
    """
    m = _SINCE.match(text)
    if m:
        return (time.time() if now is None else now) - float(m.group(1)) * _UNIT[m.group(2)]
    try:
        return datetime.datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise ValueError(f"expected a duration like 30m, 2h, 7d or a date like 2026-11-26, got {text!r}")
