"""Unhandled exceptions become ``error`` events; the previous hooks still run, in order.

``sys.excepthook`` and ``threading.excepthook`` are wrapped, never replaced
outright: our hook records the error, then calls whatever hook was installed
before it.
"""

from __future__ import annotations

import sys
import threading
import traceback
from typing import TYPE_CHECKING, Any, Dict, Optional

from ._internal import capture_internal_errors
from .context import Span, _current

if TYPE_CHECKING:
    from .client import AgentPulse

__all__ = ["install", "uninstall", "error_data"]

_prev: Dict[str, Any] = {}
_client: Optional[AgentPulse] = None


def error_data(exc: BaseException, thread: Optional[str] = None) -> Dict[str, Any]:
    """The ``error`` event payload for ``exc``: type, message, traceback."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    data: Dict[str, Any] = {"type": type(exc).__name__, "message": str(exc), "traceback": tb}
    if thread is not None:
        data["thread"] = thread
    return data


def _record(exc: BaseException, thread: Optional[str], span: Optional[Span]) -> None:
    client = _client
    if client is None or isinstance(exc, (KeyboardInterrupt, SystemExit)):
        return
    with capture_internal_errors("hooks.record"):
        client.emit("error", error_data(exc, thread), span=span)


def _excepthook(exc_type: Any, exc: BaseException, tb: Any) -> None:
    _record(exc, None, _current.get())
    prev = _prev.get("sys", sys.__excepthook__)
    prev(exc_type, exc, tb)


def _thread_excepthook(args: Any) -> None:
    if args.exc_value is not None:
        name = args.thread.name if args.thread is not None else None
        _record(args.exc_value, name, _current.get())
    prev = _prev.get("threading", threading.__excepthook__)
    prev(args)


def install(client: AgentPulse) -> None:
    """Wrap the excepthooks (once) and route what they see to ``client``."""
    global _client
    _client = client
    if not client.config.capture_exceptions or _prev:
        return
    _prev["sys"] = sys.excepthook
    _prev["threading"] = threading.excepthook
    sys.excepthook = _excepthook
    threading.excepthook = _thread_excepthook


def uninstall() -> None:
    """Put back the hooks that were there before ``install``, if nobody replaced ours since."""
    global _client
    _client = None
    if not _prev:
        return
    if sys.excepthook is _excepthook:
        sys.excepthook = _prev["sys"]
    if threading.excepthook is _thread_excepthook:
        threading.excepthook = _prev["threading"]
    _prev.clear()
