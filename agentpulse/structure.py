"""Sessions, crons, agents, tasks and traces: the shape of an agent's day.

(Minimal first version: ``session`` and ``trace`` spans.)
"""

from __future__ import annotations

import functools
import inspect
from types import TracebackType
from typing import Any, Callable, Dict, Optional, Type, TypeVar

from ._internal import capture_internal_errors
from .client import get_client
from .context import Span, _current, reset_current, set_current

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["SpanScope", "session", "trace"]


class SpanScope:
    """A span as a ``with`` / ``async with`` block."""

    def __init__(self, name: str, kind: str, metadata: Optional[Dict[str, Any]] = None) -> None:
        self.name = name
        self.kind = kind
        self.metadata = dict(metadata) if metadata else {}
        self.span: Optional[Span] = None
        self._token: Any = None

    def __enter__(self) -> SpanScope:
        client = get_client()
        if client is None or not client.enabled:
            return self
        with capture_internal_errors("span.start"):
            parent = _current.get()
            session = self.name if self.kind == "session" else None
            span = Span(self.name, self.kind, parent, self.metadata, session=session)
            self.span = span
            self._token = set_current(span)
            client.emit("span_start", {"name": span.name, "span_kind": span.kind, "metadata": span.metadata}, span)
        return self

    def __exit__(
        self, et: Optional[Type[BaseException]], ev: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        span = self.span
        if span is None or span.ended:
            return
        with capture_internal_errors("span.end"):
            span.ended = True
            span.status = "success" if ev is None else "error"
            data: Dict[str, Any] = {
                "name": span.name,
                "span_kind": span.kind,
                "status": span.status,
                "duration_ms": span.elapsed_ms(),
            }
            if ev is not None:
                data["error"] = {"type": type(ev).__name__, "message": str(ev)}
            client = get_client()
            if client is not None:
                client.emit("span_end", data, span)
            reset_current(self._token)

    async def __aenter__(self) -> SpanScope:
        return self.__enter__()

    async def __aexit__(
        self, et: Optional[Type[BaseException]], ev: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self.__exit__(et, ev, tb)


def session(name: str = "session", metadata: Optional[Dict[str, Any]] = None) -> SpanScope:
    """A root span for one run of your agent: ``with agentpulse.session("daily-email"):``."""
    return SpanScope(name, "session", metadata)


def trace(fn: Optional[F] = None, *, name: Optional[str] = None) -> Any:
    """Decorate a function so each call is a ``trace`` span."""

    def deco(f: F) -> F:
        span_name = name or f.__qualname__
        if inspect.iscoroutinefunction(f):

            @functools.wraps(f)
            async def aw(*a: Any, **k: Any) -> Any:
                with SpanScope(span_name, "trace"):
                    return await f(*a, **k)

            return aw  # type: ignore[return-value]

        @functools.wraps(f)
        def w(*a: Any, **k: Any) -> Any:
            with SpanScope(span_name, "trace"):
                return f(*a, **k)

        return w  # type: ignore[return-value]

    return deco(fn) if fn is not None else deco
