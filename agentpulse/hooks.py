"""Unhandled exceptions become ``error`` events; the previous hooks still run, in order.

``sys.excepthook`` and ``threading.excepthook`` are wrapped, never replaced
outright: our hook records the error (type, message, traceback, and the span
it happened in), then calls whatever hook was installed before it.
``uninstall()`` puts the previous hooks back; if something wrapped ours in the
meantime, ours stays in its chain but only passes through.

Example::

    import agentpulse
    agentpulse.init()                # installs the hooks (capture_exceptions=True)
    raise RuntimeError("boom")       # recorded as an `error` event, then printed as usual
"""

from __future__ import annotations

import sys
import threading
import traceback
from typing import TYPE_CHECKING, Any, Dict, Optional, Set

from ._internal import internal_errors
from .context import Span, _current, span_for_error

if TYPE_CHECKING:
    from .client import AgentPulse

__all__ = ["error_data", "install", "uninstall"]

#: Longest traceback text kept: the first and, mostly, the last frames (where the error is).
MAX_TRACEBACK = 16_000

_prev: Dict[str, Any] = {}
_active = False
_stuck: Set[str] = set()
_client: Optional[AgentPulse] = None
_lock = threading.Lock()


def error_data(exc: BaseException, thread: Optional[str] = None) -> Dict[str, Any]:
    """The ``error`` event payload for ``exc``: type, message, traceback (and thread).

    Example::

        try:
            1 / 0
        except ZeroDivisionError as e:
            error_data(e)["type"]   # 'ZeroDivisionError'
    """
    try:
        message = str(exc)
    except Exception:
        message = f"<unprintable {type(exc).__name__}>"
    try:
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    except Exception:
        tb = ""
    if len(tb) > MAX_TRACEBACK:
        head = MAX_TRACEBACK // 8
        tail = MAX_TRACEBACK - head
        tb = f"{tb[:head]}\n…[{len(tb) - head - tail} chars of traceback left out]…\n{tb[-tail:]}"
    data: Dict[str, Any] = {"type": type(exc).__name__, "message": message, "traceback": tb}
    if thread is not None:
        data["thread"] = thread
    return data


def _record(exc: Optional[BaseException], thread: Optional[str]) -> None:
    client = _client
    if client is None or exc is None or isinstance(exc, (KeyboardInterrupt, SystemExit)):
        return
    try:
        span: Optional[Span] = span_for_error(exc) or _current.get()
        client.emit("error", error_data(exc, thread), span=span)
    except Exception as err:
        internal_errors.note("hooks.record", err)


def _excepthook(exc_type: Any, exc: BaseException, tb: Any) -> None:
    if _active:
        _record(exc, None)
    prev = _prev.get("sys") or sys.__excepthook__
    prev(exc_type, exc, tb)


def _thread_excepthook(args: Any) -> None:
    if _active:
        thread = getattr(args, "thread", None)
        _record(getattr(args, "exc_value", None), getattr(thread, "name", None))
    prev = _prev.get("threading") or threading.__excepthook__
    prev(args)


_HOOKS = (
    (sys, "excepthook", "sys", _excepthook),
    (threading, "excepthook", "threading", _thread_excepthook),
)


def install(client: AgentPulse) -> None:
    """Wrap the excepthooks (once) and route what they see to ``client``.

    Example::

        hooks.install(agentpulse.get_client())   # init() does this
    """
    global _client, _active
    with _lock:
        _client = client
        if not client.config.capture_exceptions or _active:
            return
        for owner, attr, key, ours in _HOOKS:
            if key not in _stuck:
                _prev[key] = getattr(owner, attr)
                setattr(owner, attr, ours)
        _active = True


def uninstall() -> None:
    """Put back the hooks that were there before ``install``.

    A hook that something else wrapped since stays in its chain, passing through.

    Example::

        hooks.uninstall()   # agentpulse.shutdown() does this
    """
    global _client, _active
    with _lock:
        _client = None
        if not _active:
            return
        _active = False
        for owner, attr, key, ours in _HOOKS:
            if getattr(owner, attr) is ours:
                setattr(owner, attr, _prev.pop(key))
                _stuck.discard(key)
            else:
                _stuck.add(key)
