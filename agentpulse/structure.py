"""Sessions, agents, tasks and traces: the shape of an agent's day.

Every block or decorated call is a span. Spans nest through a ``ContextVar``, so
an LLM call made anywhere inside (a thread, an asyncio task, a generator) lands
under the span that was open when it was made.

* ``session(name)`` is one run of your agent, usually the root of a trace. Every
  event inside carries the session's name. A session opened inside another span
  becomes a child of it (same trace) and renames the session for what runs
  inside; its ``span_start`` says which session it was opened in
  (``parent_session``).
* ``agent`` / ``task`` / ``trace`` are decorators (bare or with ``name=`` and
  ``metadata=``) for functions, ``async def``, generators, async generators,
  methods and classes, and context managers when given a name.

Example::

    import agentpulse as ap

    @ap.task
    def fetch(box: str) -> list: ...

    with ap.session("daily-email", metadata={"box": "main"}) as s:
        mails = fetch("main")
        s.log("fetched", count=len(mails))
        s.set_result({"sent": 3})
"""

from __future__ import annotations

import functools
import inspect
import threading
from types import TracebackType
from typing import (
    TYPE_CHECKING,
    Any,
    AsyncGenerator,
    Callable,
    Dict,
    Generator,
    List,
    Optional,
    Type,
    TypeVar,
    Union,
    overload,
)

from ._internal import capture_internal_errors, log_once
from .client import get_client
from .context import Span, _current, reset_current, set_current

if TYPE_CHECKING:
    import contextvars

    from .client import AgentPulse

F = TypeVar("F", bound=Callable[..., Any])

__all__ = [
    "ActiveSpan",
    "SpanScope",
    "agent",
    "session",
    "set_metadata",
    "set_user",
    "task",
    "trace",
]

#: Attribute set on every function this module wraps: ``(scope, original function)``.
WRAPPED_ATTR = "__agentpulse_scope__"


def _status_of(exc: Optional[BaseException]) -> str:
    if exc is None:
        return "success"
    if isinstance(exc, SystemExit):
        return "success" if exc.code in (None, 0) else "error"
    if isinstance(exc, (GeneratorExit, KeyboardInterrupt)):
        return "cancelled"
    # asyncio / concurrent.futures / trio cancellation, without importing them here.
    if type(exc).__name__ in ("CancelledError", "Cancelled"):
        return "cancelled"
    return "error"


def _error_info(client: AgentPulse, exc: BaseException) -> Dict[str, Any]:
    try:
        message = str(exc)
    except Exception:
        message = f"<unprintable {type(exc).__name__}>"
    return {"type": type(exc).__name__, "message": client.redact(message)}


class ActiveSpan:
    """One running span: what ``with ap.session(...) as s`` gives you.

    A new one is made for every ``with`` block and every decorated call, so
    concurrent runs never share it. Before ``init()`` (or with
    ``enabled=False``) it is inert: ``span`` is ``None`` and every method
    does nothing.

    Example::

        with ap.session("triage") as s:
            s.log("inbox read", unread=17)
            s.set_metadata(inbox="main")
            s.set_result({"archived": 12})
    """

    __slots__ = ("_client", "_has_result", "_result", "_token", "span")

    def __init__(
        self,
        span: Optional[Span] = None,
        client: Optional[AgentPulse] = None,
        token: Optional[contextvars.Token[Optional[Span]]] = None,
    ) -> None:
        self.span = span
        self._client = client
        self._token = token
        self._result: Any = None
        self._has_result = False

    # -- reading --------------------------------------------------------------

    @property
    def trace_id(self) -> Optional[str]:
        """The trace this span belongs to (``None`` when inert)."""
        return self.span.trace_id if self.span is not None else None

    @property
    def span_id(self) -> Optional[str]:
        """This span's id (``None`` when inert)."""
        return self.span.span_id if self.span is not None else None

    # -- writing --------------------------------------------------------------

    def log(self, message: str, **data: Any) -> None:
        """Record an ``event`` named ``message`` on this span, with ``data`` (redacted like captured text).

        Example::

            s.log("draft written", words=212)
        """
        span, client = self.span, self._client
        if span is None or client is None or span.ended:
            return
        with capture_internal_errors("span.log"):
            client.emit(
                "event",
                {"name": client.redact(str(message)), "data": client.redact(dict(data)), "type": "log"},
                span,
            )

    def set_result(self, value: Any) -> None:
        """Record the outcome of the run; it travels (redacted) in the span's ``span_end`` as ``result``.

        Example::

            s.set_result({"emails_sent": 3})
        """
        if self.span is None or self.span.ended:
            return
        self._result = value
        self._has_result = True

    def set_metadata(self, **kv: Any) -> None:
        """Add metadata to this span; the final metadata travels in its ``span_end``.

        Example::

            s.set_metadata(model_tier="cheap", retries=2)
        """
        _add_metadata(self.span, self._client, kv)

    def set_user(self, user_id: str) -> None:
        """Name the user this run serves (``metadata.user_id``)."""
        _add_metadata(self.span, self._client, {"user_id": user_id})

    # -- lifecycle (internal) -------------------------------------------------

    def _finish(self, exc: Optional[BaseException]) -> None:
        """End the span with the status ``exc`` implies: exactly once, status first."""
        span, client, token = self.span, self._client, self._token
        self._token = None
        try:
            if span is not None and client is not None and not span.ended:
                with capture_internal_errors("span.end"):
                    _end_span(client, span, exc, self._result if self._has_result else _NO_RESULT)
        finally:
            if token is not None:
                with capture_internal_errors("span.reset"):
                    reset_current(token)

    def __repr__(self) -> str:
        return f"<ActiveSpan {self.span!r}>"


_NO_RESULT: Any = object()


def _add_metadata(span: Optional[Span], client: Optional[AgentPulse], kv: Dict[str, Any]) -> None:
    if span is None or client is None or not kv or span.ended:
        return
    if not client.config.capture_metadata:
        return
    span.metadata.update(kv)


def _end_span(client: AgentPulse, span: Span, exc: Optional[BaseException], result: Any) -> None:
    span.status = _status_of(exc)
    if exc is not None and span.status != "success":
        span.error = exc
    span.ended = True
    data: Dict[str, Any] = {
        "name": span.name,
        "span_kind": span.kind,
        "status": span.status,
        "duration_ms": span.elapsed_ms(),
        "metadata": dict(span.metadata),
    }
    if span.error is not None:
        data["error"] = _error_info(client, span.error)
    if result is not _NO_RESULT:
        data["result"] = client.redact(result)
    totals = client.guards.totals(span)
    if totals is not None:
        data["cost_usd"], data["llm_calls"] = totals
    client.emit("span_end", data, span)


def open_span(
    name: str,
    kind: str,
    metadata: Optional[Dict[str, Any]] = None,
    *,
    agent: Optional[str] = None,
    activate: bool = True,
    extra: Optional[Dict[str, Any]] = None,
    root_session: Optional[str] = None,
    handle: Type[ActiveSpan] = ActiveSpan,
) -> Optional[ActiveSpan]:
    """Start a span under the current one and emit ``span_start``; ``None`` before ``init()``.

    With ``activate`` the span becomes current until ``ActiveSpan._finish``.
    ``root_session`` names the session of a span that opens a new trace (a
    cron run uses its monitor name); ``handle`` is the ``ActiveSpan`` subclass
    returned. For the structure layer and integrations that build spans of
    their own kind.
    """
    client = get_client()
    if client is None or not client.enabled:
        return None
    run: Optional[ActiveSpan] = None
    with capture_internal_errors("span.start"):
        parent = _current.get()
        session_name: Optional[str] = None
        if kind == "session":
            session_name = name
        elif parent is None:
            session_name = root_session
        md = dict(metadata) if metadata and client.config.capture_metadata else {}
        span = Span(name, kind, parent, md, session=session_name, agent=agent)
        data: Dict[str, Any] = {"name": name, "span_kind": kind, "metadata": dict(md)}
        if span.agent is not None:
            data["agent"] = span.agent
        if kind == "session" and parent is not None and parent.session is not None:
            data["parent_session"] = parent.session
        if extra:
            data.update(extra)
        client.emit("span_start", data, span)
        token = set_current(span) if activate else None
        run = handle(span, client, token)
    return run


# -- wrapping functions ----------------------------------------------------------

Opener = Callable[[bool], Optional[ActiveSpan]]


def _default_name(fn: Any) -> str:
    qual = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__
    return str(qual).rsplit("<locals>.", 1)[-1]


def wrap_callable(fn: F, opener: Opener) -> F:
    """Wrap ``fn`` so every call runs inside a span made by ``opener``; keeps its kind and signature.

    Sync functions, ``async def``, generators and async generators are all
    kept what they were (``inspect.iscoroutinefunction`` and friends answer the
    same). Generator spans end on exhaustion, ``close()`` and garbage
    collection. ``opener(activate)`` is called once per call.
    """
    if isinstance(fn, (staticmethod, classmethod)):
        return type(fn)(wrap_callable(fn.__func__, opener))  # type: ignore[return-value]
    if inspect.isasyncgenfunction(fn):
        wrapper = _wrap_async_gen(fn, opener)
    elif inspect.isgeneratorfunction(fn):
        wrapper = _wrap_gen(fn, opener)
    elif inspect.iscoroutinefunction(fn):
        wrapper = _wrap_coro(fn, opener)
    else:
        wrapper = _wrap_sync(fn, opener)
    try:
        functools.update_wrapper(wrapper, fn)
    except Exception:
        wrapper.__wrapped__ = fn  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def _wrap_sync(fn: Callable[..., Any], opener: Opener) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        run = opener(True)
        if run is None:
            return fn(*args, **kwargs)
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            run._finish(exc)
            raise
        run._finish(None)
        return result

    return wrapper


def _wrap_coro(fn: Callable[..., Any], opener: Opener) -> Callable[..., Any]:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        run = opener(True)
        if run is None:
            return await fn(*args, **kwargs)
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            run._finish(exc)
            raise
        run._finish(None)
        return result

    return wrapper


def _wrap_gen(fn: Callable[..., Any], opener: Opener) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        run = opener(False)
        gen = fn(*args, **kwargs)
        if run is None:
            return (yield from gen)
        return (yield from _drive(gen, run))

    return wrapper


def _wrap_async_gen(fn: Callable[..., Any], opener: Opener) -> Callable[..., Any]:
    async def wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        run = opener(False)
        agen = fn(*args, **kwargs)
        span = run.span if run is not None else None
        to_send: Any = None
        to_throw: Optional[BaseException] = None
        # Driven by hand (async generators have no `yield from`): the span is current only
        # while the body runs, and every asend/athrow/aclose reaches the wrapped generator.
        while True:
            token = set_current(span) if span is not None else None
            try:
                if to_throw is not None:
                    exc, to_throw = to_throw, None
                    item = await agen.athrow(exc)
                else:
                    item = await agen.asend(to_send)
            except StopAsyncIteration:
                if run is not None:
                    run._finish(None)
                return
            except BaseException as exc:
                if run is not None:
                    run._finish(exc)
                raise
            finally:
                if token is not None:
                    reset_current(token)
            try:
                to_send = yield item
            except GeneratorExit as stop:
                token = set_current(span) if span is not None else None
                try:
                    await agen.aclose()
                except BaseException as exc:
                    if run is not None:
                        run._finish(exc)
                    raise
                finally:
                    if token is not None:
                        reset_current(token)
                if run is not None:
                    run._finish(stop)
                raise
            except BaseException as exc:
                to_throw = exc
                to_send = None

    return wrapper


def _drive(gen: Generator[Any, Any, Any], run: ActiveSpan) -> Generator[Any, Any, Any]:
    # The span is current only while the generator body runs, never while its consumer does.
    span = run.span
    to_send: Any = None
    to_throw: Optional[BaseException] = None
    while True:
        token = set_current(span)
        try:
            if to_throw is not None:
                exc, to_throw = to_throw, None
                item = gen.throw(exc)
            else:
                item = gen.send(to_send)
        except StopIteration as stop:
            run._finish(None)
            return stop.value
        except BaseException as exc:
            run._finish(exc)
            raise
        finally:
            reset_current(token)
        try:
            to_send = yield item
        except GeneratorExit as stop:
            token = set_current(span)
            try:
                gen.close()
            except BaseException as exc:
                run._finish(exc)
                raise
            finally:
                reset_current(token)
            run._finish(stop)
            raise
        except BaseException as exc:
            to_throw = exc
            to_send = None


# -- scopes: context manager + decorator -----------------------------------------


def pop_run(runs: List[Any], lock: threading.Lock) -> Optional[Any]:
    """Take the run a ``with`` block is leaving out of ``runs``, the runs open on one scope object.

    Several threads or tasks may share one scope object: the run leaving is
    the one whose span is current in this context (else the newest).
    """
    current = _current.get()
    with lock:
        if not runs:
            return None
        for i in range(len(runs) - 1, -1, -1):
            if runs[i].span is current:
                return runs.pop(i)
        return runs.pop()


class SpanScope:
    """A span as a ``with`` / ``async with`` block, or as a decorator.

    Returned by ``session(...)``, ``agent("name")``, ``task("name")``,
    ``trace("name")`` and ``agent(name=...)``. Entering it starts a new span
    and returns its ``ActiveSpan``; as a decorator, every call gets its own
    span. The scope object holds no per-run state of its own beyond the runs
    currently open, so one module-level scope may be used by many tasks.

    Example::

        step = ap.task("summarise")

        with step:
            ...

        @step
        def summarise(text: str) -> str: ...
    """

    def __init__(
        self,
        name: Optional[str],
        kind: str,
        metadata: Optional[Dict[str, Any]] = None,
        *,
        agent: Optional[str] = None,
    ) -> None:
        self.name = name
        self.kind = kind
        self.metadata: Dict[str, Any] = dict(metadata) if metadata else {}
        self.agent = agent
        self._runs: List[ActiveSpan] = []
        self._lock = threading.Lock()

    # -- what a span of this scope looks like ------------------------------------

    def _agent_for(self, name: str) -> Optional[str]:
        if self.agent is not None:
            return self.agent
        return name if self.kind == "agent" else None

    def _open(self, name: str, activate: bool) -> Optional[ActiveSpan]:
        return open_span(name, self.kind, self.metadata, agent=self._agent_for(name), activate=activate)

    def with_agent(self, agent: str) -> SpanScope:
        """A copy of this scope whose spans name ``agent``."""
        return type(self)(self.name, self.kind, self.metadata, agent=agent)

    # -- with / async with -------------------------------------------------------

    def __enter__(self) -> ActiveSpan:
        run = self._open(self.name or self.kind, True) or ActiveSpan()
        with self._lock:
            self._runs.append(run)
        return run

    def __exit__(
        self, et: Optional[Type[BaseException]], ev: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        run = self._pop()
        if run is not None:
            run._finish(ev)

    async def __aenter__(self) -> ActiveSpan:
        return self.__enter__()

    async def __aexit__(
        self, et: Optional[Type[BaseException]], ev: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self.__exit__(et, ev, tb)

    def _pop(self) -> Optional[ActiveSpan]:
        return pop_run(self._runs, self._lock)

    # -- decorator -------------------------------------------------------------

    def __call__(self, target: F) -> F:
        """Decorate a function, method, generator, coroutine function or class."""
        if inspect.isclass(target):
            return _decorate_class(target, self)  # type: ignore[return-value]
        fn = target.__func__ if isinstance(target, (staticmethod, classmethod)) else target
        name = self.name or _default_name(fn)
        scope = self if self.name is not None else SpanScope(name, self.kind, self.metadata, agent=self.agent)

        def opener(activate: bool) -> Optional[ActiveSpan]:
            return scope._open(name, activate)

        wrapped = wrap_callable(target, opener)
        inner = wrapped.__func__ if isinstance(wrapped, (staticmethod, classmethod)) else wrapped
        with capture_internal_errors("structure.mark"):
            setattr(inner, WRAPPED_ATTR, (scope, fn))
        return wrapped

    def __repr__(self) -> str:
        return f"<SpanScope {self.kind}:{self.name!r}>"


def _decorate_class(cls: Type[Any], scope: SpanScope) -> Type[Any]:
    """Wrap the class's public methods (and ``__call__``); ``@agent`` names the agent for all of them."""
    agent_name: Optional[str] = None
    if scope.kind == "agent":
        agent_name = scope.agent or scope.name or cls.__name__
    prefix = scope.name or cls.__name__
    for attr, value in list(vars(cls).items()):
        if attr.startswith("_") and attr != "__call__":
            continue
        is_descriptor = isinstance(value, (staticmethod, classmethod))
        raw = value.__func__ if is_descriptor else value
        if not inspect.isfunction(raw):
            continue
        marked = getattr(raw, WRAPPED_ATTR, None)
        if marked is not None:
            # Already a span of its own (@task on the method): keep it, just name the agent.
            if agent_name is None:
                continue
            inner_scope, original = marked
            new_scope = inner_scope.with_agent(agent_name)
            new = new_scope(original)
        else:
            method_scope = SpanScope(f"{prefix}.{attr}", scope.kind, scope.metadata, agent=agent_name)
            new = method_scope(raw)
        setattr(cls, attr, type(value)(new) if is_descriptor else new)
    if agent_name is not None:
        with capture_internal_errors("structure.class"):
            cls.__agentpulse_agent__ = agent_name
    return cls


# -- public API ------------------------------------------------------------------


@overload
def session(
    name: str = ...,
    metadata: Optional[Dict[str, Any]] = ...,
    *,
    user_id: Optional[str] = ...,
    session_id: Optional[str] = ...,
) -> SpanScope: ...


@overload
def session(
    name: F,
    metadata: Optional[Dict[str, Any]] = ...,
    *,
    user_id: Optional[str] = ...,
    session_id: Optional[str] = ...,
) -> F: ...


def session(
    name: Union[str, F] = "session",
    metadata: Optional[Dict[str, Any]] = None,
    *,
    user_id: Optional[str] = None,
    session_id: Optional[str] = None,
) -> Union[SpanScope, F]:
    """One run of your agent: a root span whose name every event inside carries.

    Use it as ``with``, ``async with`` or a decorator. The status is
    ``success``, or ``error`` when the block raises (the exception goes on
    unchanged). ``user_id`` and ``session_id`` (your own identifier, e.g. a
    conversation id) land in the metadata. Opened inside another span, the
    session becomes its child in the same trace.

    Example::

        with agentpulse.session("daily-email", metadata={"box": "main"}, user_id="u_42") as s:
            s.log("start")
    """
    md: Dict[str, Any] = dict(metadata) if metadata else {}
    if user_id is not None:
        md["user_id"] = user_id
    if session_id is not None:
        md["session_id"] = session_id
    if callable(name):
        return SpanScope(_default_name(name), "session", md)(name)
    return SpanScope(str(name), "session", md)


def _decorator(kind: str, target: Any, name: Optional[str], metadata: Optional[Dict[str, Any]]) -> Any:
    if isinstance(target, str):
        name, target = target, None
    scope = SpanScope(name, kind, metadata)
    if target is None:
        return scope
    return scope(target)


@overload
def agent(fn: F, *, name: Optional[str] = ..., metadata: Optional[Dict[str, Any]] = ...) -> F: ...


@overload
def agent(
    fn: Optional[str] = ..., *, name: Optional[str] = ..., metadata: Optional[Dict[str, Any]] = ...
) -> SpanScope: ...


def agent(fn: Any = None, *, name: Optional[str] = None, metadata: Optional[Dict[str, Any]] = None) -> Any:
    """An ``agent`` span per call; spans opened inside carry the agent's name.

    On a class, every public method (and ``__call__``) opens an ``agent`` span
    named ``Class.method``, and every span inside names the agent. Bare, with
    ``name=`` / ``metadata=``, or ``agent("name")`` as a ``with`` block.

    Example::

        @agentpulse.agent
        class Marcus:
            def run(self, inbox: str) -> None: ...

        @agentpulse.agent(name="researcher")
        async def research(topic: str) -> str: ...
    """
    return _decorator("agent", fn, name, metadata)


@overload
def task(fn: F, *, name: Optional[str] = ..., metadata: Optional[Dict[str, Any]] = ...) -> F: ...


@overload
def task(
    fn: Optional[str] = ..., *, name: Optional[str] = ..., metadata: Optional[Dict[str, Any]] = ...
) -> SpanScope: ...


def task(fn: Any = None, *, name: Optional[str] = None, metadata: Optional[Dict[str, Any]] = None) -> Any:
    """A ``task`` span per call: one unit of work of an agent.

    Example::

        @agentpulse.task
        def fetch_inbox(box: str) -> list: ...

        with agentpulse.task("rank"):
            ...
    """
    return _decorator("task", fn, name, metadata)


@overload
def trace(fn: F, *, name: Optional[str] = ..., metadata: Optional[Dict[str, Any]] = ...) -> F: ...


@overload
def trace(
    fn: Optional[str] = ..., *, name: Optional[str] = ..., metadata: Optional[Dict[str, Any]] = ...
) -> SpanScope: ...


def trace(fn: Any = None, *, name: Optional[str] = None, metadata: Optional[Dict[str, Any]] = None) -> Any:
    """A ``trace`` span per call: any function you want to see in the tree.

    Example::

        @agentpulse.trace(name="parse", metadata={"v": 2})
        def parse(text: str) -> dict: ...
    """
    return _decorator("trace", fn, name, metadata)


def set_metadata(**kv: Any) -> None:
    """Add metadata to the current span; it travels in that span's ``span_end``.

    Does nothing outside a span or before ``init()``; with
    ``capture_metadata=False`` metadata is not recorded.

    Example::

        @agentpulse.task
        def rank(items: list) -> list:
            agentpulse.set_metadata(items=len(items))
            ...
    """
    span = _current.get()
    if span is None:
        log_once("set_metadata.nospan", "agentpulse.set_metadata() called outside any span; ignored")
        return
    _add_metadata(span, get_client(), kv)


def set_user(user_id: str) -> None:
    """Name the user the current session serves (``metadata.user_id`` of the session span).

    Set on the nearest enclosing session, or on the outermost span when there
    is no session.

    Example::

        with agentpulse.session("chat"):
            agentpulse.set_user("u_42")
    """
    span = _current.get()
    if span is None:
        return
    target: Optional[Span] = span
    while target is not None and target.kind != "session":
        target = target.parent
    _add_metadata(target if target is not None else span.root(), get_client(), {"user_id": user_id})
