"""The span tree: which session / agent / task / trace is running right now.

A ``contextvars.ContextVar`` holds the current ``Span``. Context follows
``asyncio`` tasks on its own; ``install_thread_propagation()`` makes it follow
``threading.Thread`` and ``concurrent.futures.ThreadPoolExecutor`` work too, so
an LLM call made in a worker thread nests under the span that started it.

Example::

    from agentpulse.context import current_span
    span = current_span()
    if span is not None:
        print(span.trace_id, span.name)
"""

from __future__ import annotations

import contextvars
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, Optional, Tuple

__all__ = [
    "Span",
    "current_span",
    "new_span_id",
    "new_trace_id",
    "install_thread_propagation",
    "uninstall_thread_propagation",
]

_getrandbits = random.getrandbits


def new_trace_id() -> str:
    """A random 128-bit trace id, 32 hex digits (the OpenTelemetry shape)."""
    return f"{_getrandbits(128):032x}"


def new_span_id() -> str:
    """A random 64-bit span id, 16 hex digits."""
    return f"{_getrandbits(64):016x}"


class Span:
    """One node of the trace tree. Created by the structure API, never by hand.

    ``ended`` guards the rule that a span ends exactly once; ``status`` and
    ``error`` are set before it ends.
    """

    __slots__ = (
        "name",
        "kind",
        "trace_id",
        "span_id",
        "parent",
        "session",
        "agent",
        "metadata",
        "start_ts",
        "start_perf",
        "status",
        "error",
        "ended",
        "cost_usd",
        "llm_calls",
        "__weakref__",
    )

    def __init__(
        self,
        name: str,
        kind: str,
        parent: Optional[Span] = None,
        metadata: Optional[Dict[str, Any]] = None,
        *,
        session: Optional[str] = None,
        agent: Optional[str] = None,
    ) -> None:
        self.name = name
        self.kind = kind
        self.parent = parent
        self.trace_id = parent.trace_id if parent is not None else new_trace_id()
        self.span_id = new_span_id()
        if session is None and parent is not None:
            session = parent.session
        self.session = session
        self.agent = agent if agent is not None else (parent.agent if parent is not None else None)
        self.metadata: Dict[str, Any] = dict(metadata) if metadata else {}
        self.start_ts = time.time()
        self.start_perf = time.perf_counter()
        self.status: Optional[str] = None
        self.error: Optional[BaseException] = None
        self.ended = False
        self.cost_usd = 0.0
        self.llm_calls = 0

    @property
    def parent_span_id(self) -> Optional[str]:
        return self.parent.span_id if self.parent is not None else None

    def root(self) -> Span:
        """The outermost span of this trace (usually the session)."""
        span = self
        while span.parent is not None:
            span = span.parent
        return span

    def elapsed_ms(self) -> float:
        return max(0.0, (time.perf_counter() - self.start_perf) * 1000.0)

    def __repr__(self) -> str:
        state = "ended" if self.ended else "open"
        return f"<Span {self.kind}:{self.name!r} {self.span_id} trace={self.trace_id[:8]} {state}>"


_current: contextvars.ContextVar[Optional[Span]] = contextvars.ContextVar("agentpulse_span", default=None)


def current_span() -> Optional[Span]:
    """The innermost open span in this context, or ``None``."""
    return _current.get()


def set_current(span: Optional[Span]) -> contextvars.Token[Optional[Span]]:
    """Make ``span`` current; give the token back to ``reset_current``."""
    return _current.set(span)


def reset_current(token: contextvars.Token[Optional[Span]]) -> None:
    """Restore the span that was current before ``set_current``.

    A token made in another context (a generator resumed elsewhere) cannot be
    reset; then the parent of the span being closed becomes current instead.
    """
    try:
        _current.reset(token)
    except ValueError:
        span = _current.get()
        _current.set(span.parent if span is not None else None)


# -- threads -------------------------------------------------------------

_installed: Dict[str, Any] = {}
_install_lock = threading.Lock()


def _thread_start(self: threading.Thread, *args: Any, **kwargs: Any) -> Any:
    # Bind run() to a copy of the starter's context. Done per instance, so
    # Thread subclasses that override run() are covered too.
    if _current.get() is not None:
        try:
            ctx = contextvars.copy_context()
            original_run = self.run

            def run_in_context() -> None:
                ctx.run(original_run)

            self.run = run_in_context  # type: ignore[method-assign]
        except Exception:
            pass
    return _installed["Thread.start"](self, *args, **kwargs)


def _executor_submit(self: ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    if _current.get() is None:
        return _installed["ThreadPoolExecutor.submit"](self, fn, *args, **kwargs)
    ctx = contextvars.copy_context()
    return _installed["ThreadPoolExecutor.submit"](self, ctx.run, fn, *args, **kwargs)


def install_thread_propagation() -> None:
    """Carry the current span into new threads and thread-pool work. Idempotent."""
    with _install_lock:
        if _installed:
            return
        _installed["Thread.start"] = threading.Thread.start
        _installed["ThreadPoolExecutor.submit"] = ThreadPoolExecutor.submit
        threading.Thread.start = _thread_start  # type: ignore[method-assign]
        ThreadPoolExecutor.submit = _executor_submit  # type: ignore[method-assign]


def uninstall_thread_propagation() -> None:
    """Undo ``install_thread_propagation``."""
    with _install_lock:
        if not _installed:
            return
        threading.Thread.start = _installed.pop("Thread.start")  # type: ignore[method-assign]
        ThreadPoolExecutor.submit = _installed.pop("ThreadPoolExecutor.submit")  # type: ignore[method-assign]


def copy_context_of(span: Optional[Span]) -> Tuple[contextvars.Context, Optional[Span]]:
    """A context copy with ``span`` current, for running work detached from the caller."""
    ctx = contextvars.copy_context()
    ctx.run(_current.set, span)
    return ctx, span
