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
from typing import Any, Callable, Dict, List, Optional, Tuple

__all__ = [
    "Span",
    "current_span",
    "install_thread_propagation",
    "new_span_id",
    "new_trace_id",
    "note_error_span",
    "span_for_error",
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
        "__weakref__",
        "agent",
        "cost_usd",
        "ended",
        "error",
        "kind",
        "llm_calls",
        "metadata",
        "name",
        "parent",
        "session",
        "span_id",
        "start_perf",
        "start_ts",
        "status",
        "trace_id",
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
        self.trace_id: str = parent.trace_id if parent is not None else new_trace_id()
        self.span_id: str = new_span_id()
        if session is None and parent is not None:
            session = parent.session
        self.session: Optional[str] = session
        self.agent: Optional[str] = (
            agent if agent is not None else (parent.agent if parent is not None else None)
        )
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
    span = _current.get()
    if span is not None and span.error is not None:
        note_error_span(span.error, span)
    try:
        _current.reset(token)
    except ValueError:
        _current.set(span.parent if span is not None else None)


# -- which span an exception went through ----------------------------------

# Per thread, the innermost span the latest error ended: (id of the exception, its type, a
# detached copy of the span). No reference to the exception itself is kept, so a handled
# exception's frames are never held alive here; sys.excepthook / threading.excepthook look
# the span up when the error reaches them.
_errors = threading.local()


def _detached(span: Span, *, keep_parent: bool = True) -> Span:
    """A copy of ``span``'s identity (ids, name, session) that holds nothing else: no error, no metadata."""
    copy = Span.__new__(Span)
    copy.name = span.name
    copy.kind = span.kind
    copy.trace_id = span.trace_id
    copy.span_id = span.span_id
    copy.session = span.session
    copy.agent = span.agent
    copy.metadata = {}
    copy.start_ts = span.start_ts
    copy.start_perf = span.start_perf
    copy.status = span.status
    copy.error = None
    copy.ended = True
    copy.cost_usd = 0.0
    copy.llm_calls = 0
    parent = span.parent
    copy.parent = _detached(parent, keep_parent=False) if parent is not None and keep_parent else None
    return copy


def note_error_span(exc: BaseException, span: Optional[Span]) -> None:
    """Remember that ``exc`` ended ``span`` (the innermost span claims it; outer ones don't).

    Example::

        note_error_span(exc, span)     # what ending a span with an error does
        span_for_error(exc) is not None
    """
    if span is None:
        return
    last = getattr(_errors, "last", None)
    if last is not None and last[0] == id(exc) and last[1] is type(exc):
        return
    _errors.last = (id(exc), type(exc), _detached(span))


def span_for_error(exc: BaseException) -> Optional[Span]:
    """The innermost span ``exc`` (or an exception it was raised from) ended in this thread, if known."""
    last = getattr(_errors, "last", None)
    if last is None:
        return None
    seen = 0
    e: Optional[BaseException] = exc
    while e is not None and seen < 8:
        if id(e) == last[0] and type(e) is last[1]:
            span: Span = last[2]
            return span
        e = e.__cause__ or e.__context__
        seen += 1
    return None


# -- threads -------------------------------------------------------------

_install_lock = threading.Lock()
_tls = threading.local()


class _Patch:
    """One installed patch: the attribute it replaced and whether it is still switched on.

    Each ``install_thread_propagation()`` makes new ones; uninstalling switches
    them off and puts the original back, unless something wrapped ours since:
    then ours stays in that chain and only passes through.
    """

    __slots__ = ("active", "attr", "original", "owner", "wrapper")

    def __init__(self, owner: Any, attr: str) -> None:
        self.owner = owner
        self.attr = attr
        self.original: Any = getattr(owner, attr)
        self.active = True
        self.wrapper: Any = None


_patches: List[_Patch] = []


def _patched_start(patch: _Patch) -> Callable[..., Any]:
    original = patch.original

    def start(self: threading.Thread, *args: Any, **kwargs: Any) -> Any:
        # Bind run() to a copy of the starter's context. Done per instance, so Thread
        # subclasses that override run() are covered too. Threads a thread pool starts
        # for itself are not user work and get nothing.
        if patch.active and _current.get() is not None and not getattr(_tls, "in_submit", False):
            try:
                _bind_run(self)
            except Exception:
                pass
        return original(self, *args, **kwargs)

    return start


def _bind_run(thread: threading.Thread) -> None:
    ctx = contextvars.copy_context()
    original_run = thread.run

    def run_in_context() -> None:
        try:
            ctx.run(original_run)
        except BaseException as exc:
            note_error_span(exc, ctx.get(_current))
            raise
        finally:
            try:
                del thread.run  # back to the class's run(); let go of the context
            except Exception:
                pass

    thread.run = run_in_context  # type: ignore[method-assign]


def _patched_submit(patch: _Patch) -> Callable[..., Any]:
    original = patch.original

    def submit(self: ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        if not patch.active or _current.get() is None:
            return original(self, fn, *args, **kwargs)
        ctx = contextvars.copy_context()
        _tls.in_submit = True
        try:
            return original(self, ctx.run, fn, *args, **kwargs)
        finally:
            _tls.in_submit = False

    return submit


def install_thread_propagation() -> None:
    """Carry the current span into new threads and thread-pool work. Idempotent.

    Example::

        install_thread_propagation()   # init() does this unless propagate_context=False
    """
    with _install_lock:
        if _patches:
            return
        for owner, attr, make in (
            (threading.Thread, "start", _patched_start),
            (ThreadPoolExecutor, "submit", _patched_submit),
        ):
            patch = _Patch(owner, attr)
            patch.wrapper = make(patch)
            setattr(owner, attr, patch.wrapper)
            _patches.append(patch)


def uninstall_thread_propagation() -> None:
    """Undo ``install_thread_propagation``.

    A patch that something else wrapped since stays in place but does nothing,
    so that wrapper keeps working.
    """
    with _install_lock:
        for patch in _patches:
            patch.active = False
            if patch.owner.__dict__.get(patch.attr) is patch.wrapper:
                setattr(patch.owner, patch.attr, patch.original)
        _patches.clear()


def copy_context_of(span: Optional[Span]) -> Tuple[contextvars.Context, Optional[Span]]:
    """A context copy with ``span`` current, for running work detached from the caller."""
    ctx = contextvars.copy_context()
    ctx.run(_current.set, span)
    return ctx, span
