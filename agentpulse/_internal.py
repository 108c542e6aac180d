"""The one place where the SDK's own errors are caught, logged and counted.

User code never sees an AgentPulse error: every internal path runs inside
``capture_internal_errors()`` (or calls ``internal_errors.note`` from its own
``except``). Each distinct site logs once at debug level on the ``agentpulse``
logger, and every error is counted. Test suites switch on ``record`` so a
swallowed bug fails the test that caused it.

Example::

    from agentpulse._internal import capture_internal_errors

    with capture_internal_errors("exporter.describe"):
        text = exporter.describe()   # an exception here is logged and counted, never raised
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
from types import TracebackType
from typing import Any, Callable, List, Optional, Set, Tuple, Type, TypeVar

logger = logging.getLogger("agentpulse")

__all__ = ["capture_internal_errors", "guarded", "internal_errors", "log_once", "logger", "set_debug"]

F = TypeVar("F", bound=Callable[..., Any])


class _InternalErrors:
    """Counters for errors the SDK swallowed, and the test-suite switch.

    Example::

        from agentpulse._internal import internal_errors
        internal_errors.note("my.site", ValueError("bad"))
        assert internal_errors.count >= 1
    """

    def __init__(self) -> None:
        self.count = 0
        self.record = False
        self.recorded: List[Tuple[str, BaseException]] = []
        self._logged: Set[str] = set()
        self._lock = threading.Lock()

    def note(self, where: str, exc: BaseException) -> None:
        """Count ``exc`` as swallowed at ``where``; log it the first time ``where`` is seen."""
        with self._lock:
            self.count += 1
            if self.record:
                self.recorded.append((where, exc))
            first = where not in self._logged
            self._logged.add(where)
        if first:
            logger.debug("agentpulse internal error in %s (logged once): %r", where, exc, exc_info=exc)

    def reset(self) -> None:
        """Forget the counts, the recorded errors and which sites were logged."""
        with self._lock:
            self.count = 0
            self.recorded.clear()
            self._logged.clear()

    def _after_fork(self) -> None:
        # Another thread may have held the lock at fork(): the child gets a fresh one.
        self._lock = threading.Lock()


internal_errors = _InternalErrors()
_once: Set[str] = set()
_once_lock = threading.Lock()


def log_once(key: str, msg: str, *args: Any, level: int = logging.DEBUG) -> None:
    """Log ``msg`` the first time ``key`` is seen in this process."""
    with _once_lock:
        if key in _once:
            return
        _once.add(key)
    logger.log(level, msg, *args)


def _after_fork_in_child() -> None:
    global _once_lock
    _once_lock = threading.Lock()
    internal_errors._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class capture_internal_errors:
    """Swallow, count and log (once per ``where``) any ``Exception`` raised inside the block.

    A small class rather than a generator context manager: it sits on paths
    that run for every LLM call and span, and costs a fraction of the latter.

    Example::

        with capture_internal_errors("span.end"):
            emit_span_end()
    """

    __slots__ = ("where",)

    def __init__(self, where: str) -> None:
        self.where = where

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, et: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> bool:
        if exc is None or not isinstance(exc, Exception):
            return False
        internal_errors.note(self.where, exc)
        return True


def guarded(where: str, default: Any = None) -> Callable[[F], F]:
    """Decorator form of ``capture_internal_errors``; returns ``default`` on error.

    Example::

        @guarded("exporter.describe", default="?")
        def describe() -> str: ...
    """

    def deco(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                internal_errors.note(where, exc)
                return default

        return inner  # type: ignore[return-value]

    return deco


_debug_handler: Optional[logging.Handler] = None


def set_debug(on: bool) -> None:
    """With ``debug=True`` the ``agentpulse`` logger also prints to stderr.

    Example::

        set_debug(True)    # what init(debug=True) does
    """
    global _debug_handler
    if on and _debug_handler is None:
        _debug_handler = logging.StreamHandler(sys.stderr)
        _debug_handler.setFormatter(logging.Formatter("agentpulse %(levelname)s %(message)s"))
        logger.addHandler(_debug_handler)
        logger.setLevel(logging.DEBUG)
    elif not on and _debug_handler is not None:
        logger.removeHandler(_debug_handler)
        _debug_handler = None
        logger.setLevel(logging.NOTSET)
