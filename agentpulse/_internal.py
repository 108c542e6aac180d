"""The one place where the SDK's own errors are caught, logged and counted.

User code never sees an AgentPulse error: every internal path runs inside
``capture_internal_errors()``. Each distinct site logs once at debug level on
the ``agentpulse`` logger, and every error is counted. Test suites switch on
``record_errors`` so a swallowed bug fails the test that caused it.
"""

from __future__ import annotations

import logging
import sys
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator, List, Optional, Set, Tuple, TypeVar

logger = logging.getLogger("agentpulse")

__all__ = ["capture_internal_errors", "guarded", "internal_errors", "logger", "log_once"]

F = TypeVar("F", bound=Callable[..., Any])


class _InternalErrors:
    """Counters for errors the SDK swallowed, and the test-suite switch."""

    def __init__(self) -> None:
        self.count = 0
        self.record = False
        self.recorded: List[Tuple[str, BaseException]] = []
        self._logged: Set[str] = set()
        self._lock = threading.Lock()

    def note(self, where: str, exc: BaseException) -> None:
        with self._lock:
            self.count += 1
            if self.record:
                self.recorded.append((where, exc))
            first = where not in self._logged
            self._logged.add(where)
        if first:
            logger.debug("agentpulse internal error in %s (logged once): %r", where, exc, exc_info=exc)

    def reset(self) -> None:
        with self._lock:
            self.count = 0
            self.recorded.clear()
            self._logged.clear()


internal_errors = _InternalErrors()
_once: Set[str] = set()


def log_once(key: str, msg: str, *args: Any, level: int = logging.DEBUG) -> None:
    """Log ``msg`` the first time ``key`` is seen in this process."""
    if key in _once:
        return
    _once.add(key)
    logger.log(level, msg, *args)


@contextmanager
def capture_internal_errors(where: str) -> Iterator[None]:
    """Swallow, count and log (once per ``where``) any ``Exception`` raised inside."""
    try:
        yield
    except Exception as exc:
        internal_errors.note(where, exc)


def guarded(where: str, default: Any = None) -> Callable[[F], F]:
    """Decorator form of ``capture_internal_errors``; returns ``default`` on error."""

    def deco(fn: F) -> F:
        def inner(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                internal_errors.note(where, exc)
                return default

        inner.__name__ = getattr(fn, "__name__", "guarded")
        inner.__doc__ = fn.__doc__
        inner.__wrapped__ = fn  # type: ignore[attr-defined]
        return inner  # type: ignore[return-value]

    return deco


_debug_handler: Optional[logging.Handler] = None


def set_debug(on: bool) -> None:
    """With ``debug=True`` the ``agentpulse`` logger also prints to stderr."""
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
