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
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from ._internal import internal_errors
from .context import Span, _current, span_for_error

if TYPE_CHECKING:
    from .client import AgentPulse

__all__ = ["error_data", "install", "installed", "uninstall"]

#: Longest traceback text kept: the first and, mostly, the last frames (where the error is).
MAX_TRACEBACK = 16_000

_client: Optional[AgentPulse] = None
_lock = threading.Lock()


class _Hook:
    """One installed wrapper: records, then calls the hook that was there before it.

    Each ``install()`` makes new ones; ``uninstall()`` switches them off. One
    that cannot be taken out (something wrapped it since) only passes through.
    """

    __slots__ = ("active", "prev", "record")

    def __init__(self, prev: Any, record: Any) -> None:
        self.prev = prev
        self.record = record
        self.active = True

    def __call__(self, *args: Any) -> Any:
        if self.active:
            self.record(*args)
        return self.prev(*args)


def _record_sys(exc_type: Any, exc: BaseException, tb: Any) -> None:
    _record(exc, None)


def _record_thread(args: Any) -> None:
    thread = getattr(args, "thread", None)
    _record(getattr(args, "exc_value", None), getattr(thread, "name", None))


_TARGETS = ((sys, "excepthook", _record_sys), (threading, "excepthook", _record_thread))
_installed: List[Tuple[Any, str, _Hook]] = []


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


def install(client: AgentPulse) -> None:
    """Wrap the excepthooks (once) and route what they see to ``client``.

    Example::

        hooks.install(agentpulse.get_client())   # init() does this
    """
    global _client
    with _lock:
        _client = client
        if not client.config.capture_exceptions or _installed:
            return
        for owner, attr, record in _TARGETS:
            hook = _Hook(getattr(owner, attr), record)
            setattr(owner, attr, hook)
            _installed.append((owner, attr, hook))


def uninstall() -> None:
    """Put back the hooks that were there before ``install``.

    A hook that something else wrapped since stays in its chain, passing through.

    Example::

        hooks.uninstall()   # agentpulse.shutdown() does this
    """
    global _client
    with _lock:
        _client = None
        for owner, attr, hook in _installed:
            hook.active = False
            if getattr(owner, attr) is hook:
                setattr(owner, attr, hook.prev)
        _installed.clear()


def installed() -> bool:
    """Whether our hooks are in place and recording."""
    return bool(_installed)
