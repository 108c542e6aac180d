"""Agent frameworks: LangChain / LangGraph, CrewAI and the OpenAI Agents SDK.

``install_frameworks(client)`` (run by ``init()``) activates the adapter of every
framework already imported, and registers an import hook for the others, so
``import langgraph`` after ``init()`` is covered too. Each adapter is switched
off by its option: ``patch_langchain``, ``patch_crewai``, ``patch_openai_agents``
(or ``auto_patch=False`` for all). ``uninstall_frameworks()`` (run by
``shutdown()``) undoes them.

The adapters turn the framework's own notion of a step (a LangChain run, a
CrewAI event, an Agents SDK span) into AgentPulse spans. They share the helpers
below: a span opened under an explicit parent, a safe way to make it current
for the code the framework runs inside it, and *model markers*. A model
marker stands for one framework model call: it is made current while the call
runs and shares its parent's ids, so an ``llm_call`` recorded by a provider
patch beneath (ChatOpenAI -> openai) lands directly under the framework's span.
When no patched SDK recorded anything under the marker, the adapter records the
call itself from what the framework reported, so every model call is counted
exactly once.

Example::

    import agentpulse
    agentpulse.init()                  # LangChain, CrewAI, Agents SDK: already covered

    import agentpulse.frameworks as fw
    fw.installed()                     # e.g. ['langchain']
"""

from __future__ import annotations

import contextvars
import sys
import threading
import time
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable, Dict, Generic, List, Optional, Set, Tuple, Type, TypeVar

from . import client as _client_mod
from ._internal import capture_internal_errors, log_once, logger
from .context import Span, _current

if TYPE_CHECKING:
    from .client import AgentPulse
    from .structure import ActiveSpan

__all__ = [
    "ADAPTERS",
    "FrameworkError",
    "install_frameworks",
    "installed",
    "uninstall_frameworks",
]

#: Config name -> (module whose import activates it, adapter module, attribute the module must have).
ADAPTERS: Dict[str, Tuple[str, str, str]] = {
    "langchain": ("langchain_core", "agentpulse.integrations.langchain", "__version__"),
    "crewai": ("crewai", "agentpulse.integrations.crewai", "Crew"),
    "openai_agents": ("agents", "agentpulse.integrations.openai_agents", "add_trace_processor"),
}

_lock = threading.RLock()
_client: Optional[AgentPulse] = None
_active: Dict[str, ModuleType] = {}
_hooked: Set[str] = set()


# -- activation -----------------------------------------------------------------


def install_frameworks(client: AgentPulse) -> None:
    """Activate the adapter of each framework the config allows: now if imported, else on import.

    Idempotent; called by ``init()``.

    Example::

        install_frameworks(agentpulse.get_client())
    """
    global _client
    with _lock:
        _client = client
        wanted = [name for name in ADAPTERS if client.config.patch_enabled(name)]
    for name in wanted:
        module_name = ADAPTERS[name][0]
        module = sys.modules.get(module_name)
        if module is not None:
            _activate(name, module)
        with _lock:
            if module_name in _hooked:
                continue
            _hooked.add(module_name)
        with capture_internal_errors("frameworks.hook"):
            import wrapt

            # wrapt calls the hook at once when the module is already imported: harmless,
            # activation is idempotent.
            wrapt.register_post_import_hook(_on_import, module_name)


def uninstall_frameworks() -> None:
    """Undo every adapter; the import hooks stay registered but do nothing until the next ``init()``.

    Example::

        uninstall_frameworks()   # agentpulse.shutdown() does this
    """
    global _client
    with _lock:
        _client = None
        active = list(_active.items())
        _active.clear()
    for name, adapter in active:
        with capture_internal_errors(f"frameworks.uninstall.{name}"):
            adapter.uninstall()


def installed() -> List[str]:
    """Names of the adapters active now (``langchain``, ``crewai``, ``openai_agents``)."""
    with _lock:
        return sorted(_active)


def _on_import(module: ModuleType) -> None:
    with capture_internal_errors("frameworks.on_import"):
        name = module.__name__
        for key, (module_name, _adapter, _attr) in ADAPTERS.items():
            if module_name == name:
                client = _client
                if client is not None and client.config.patch_enabled(key):
                    _activate(key, module)


def _activate(name: str, module: ModuleType) -> None:
    module_name, adapter_name, required = ADAPTERS[name]
    with _lock:
        client = _client
        if client is None or name in _active:
            return
        if not hasattr(module, required):
            # Another package with the same import name (a user's own `agents`).
            log_once(
                f"frameworks.skip.{name}", "agentpulse: %r is not the framework we know; skipped", module_name
            )
            return
        with capture_internal_errors(f"frameworks.install.{name}"):
            import importlib

            adapter = importlib.import_module(adapter_name)
            if adapter.install(client):
                _active[name] = adapter
                logger.debug("agentpulse: %s adapter installed", name)


# -- spans shared by the adapters ----------------------------------------------------


class FrameworkError(Exception):
    """An error a framework reported as data (a message, a type name) rather than as an exception.

    Spans record it like any exception: ``{"type": <the framework's type name>, "message": ...}``.
    """


_error_types: Dict[str, Type[FrameworkError]] = {}


def framework_error(type_name: Optional[str], message: str) -> FrameworkError:
    """An exception whose type name is ``type_name`` (for the span's ``error.type``)."""
    name = type_name if type_name and type_name.isidentifier() else "FrameworkError"
    cls = FrameworkError if name == "FrameworkError" else _error_types.get(name)
    if cls is None:
        if len(_error_types) >= 256:
            cls = FrameworkError
        else:
            cls = _error_types.setdefault(name, type(name, (FrameworkError,), {}))
    return cls(message)


def open_child(
    parent: Optional[Span],
    name: str,
    kind: str,
    metadata: Optional[Dict[str, Any]] = None,
    *,
    agent: Optional[str] = None,
) -> Optional[ActiveSpan]:
    """Open a span (``span_start``) under ``parent``, not made current; ``None`` when AgentPulse is off."""
    from .structure import open_span

    token = _current.set(parent)
    try:
        return open_span(name, kind, metadata, agent=agent, activate=False)
    finally:
        _current.reset(token)


def close(run: Optional[ActiveSpan], error: Optional[BaseException] = None) -> None:
    """End ``run`` (``span_end``) with the status ``error`` implies; a second call does nothing."""
    if run is not None:
        run._finish(error)


def live(span: Optional[Span]) -> Optional[Span]:
    """``span`` or its nearest ancestor that has not ended (a parent to attach new work to)."""
    while span is not None and span.ended:
        span = span.parent
    return span


def stand_in(span: Span, name: Optional[str] = None, kind: str = "stand_in") -> Span:
    """A span object standing for ``span`` in a context: its ids, its metadata; ``span`` is its parent.

    Work recorded under it (an ``llm_call``, a span opened by ``@agentpulse.task``)
    lands under ``span``. Its own counters (``llm_calls``) tell what happened
    while it was current.
    """
    s = Span(name or span.name, kind, span)
    s.span_id = span.span_id
    s.metadata = span.metadata
    return s


def _retarget(s: Span, target: Optional[Span]) -> None:
    """Make the stand-in ``s`` stand for ``target`` from now on (for contexts where it stays current)."""
    if target is None:
        s.ended = True
        return
    s.parent = target
    s.trace_id = target.trace_id
    s.span_id = target.span_id
    s.session = target.session
    s.agent = target.agent
    s.metadata = target.metadata


class Current:
    """Makes a framework step current for the code the framework runs inside it.

    The value made current is a stand-in for ``span`` (``stand_in``), or the
    span given itself with ``as_is=True`` (a model marker, already a stand-in).
    ``exit`` may run elsewhere than ``__init__`` (a callback at the start of a
    run, another at its end): in the same context it restores what was current
    before; in another context it cannot, so the stand-in, which may stay
    current where the step started, is first turned into a stand-in for the
    step's parent. LangChain ends async runs in a copy of the caller's context:
    without this the caller would go on under a step that has ended.
    """

    __slots__ = ("prev", "span", "token", "value")

    def __init__(self, span: Span, *, as_is: bool = False) -> None:
        self.span = span
        self.value = span if as_is else stand_in(span)
        self.prev: Optional[Span] = _current.get()
        self.token: Optional[contextvars.Token[Optional[Span]]] = _current.set(self.value)

    def exit(self) -> None:
        token, self.token = self.token, None
        if token is None:
            return
        if self.value is not self.span:
            _retarget(self.value, live(self.span.parent))
        try:
            _current.reset(token)
        except (ValueError, RuntimeError):
            if _current.get() is self.value:
                _current.set(live(self.prev))
            return
        cur = _current.get()
        if cur is not None and cur.ended:
            # An enclosing step ended before this one (out-of-order callbacks): never leave an
            # ended span current.
            _current.set(live(cur))


def model_marker(parent: Span, name: str) -> Span:
    """A stand-in for ``parent`` while one framework model call runs (make it current with ``as_is``).

    An ``llm_call`` a provider patch records inside gets ``parent`` as its
    parent, and ``marker.llm_calls`` counts it.
    """
    return stand_in(parent, name, "llm")


def provider_recorded(marker: Span) -> bool:
    """Whether a provider patch recorded an LLM call while ``marker`` was current."""
    return marker.llm_calls > 0


def record_llm_call(
    client: AgentPulse,
    parent: Optional[Span],
    data: Dict[str, Any],
    *,
    ts: Optional[float] = None,
) -> None:
    """Record an ``llm_call`` reported by a framework (no patched SDK beneath it).

    ``data`` holds the normalised fields (``provider``, ``model``, tokens,
    ``latency_ms``, ``status`` ...); cost is computed here like for patched
    calls, and the budget guards see the call.
    """
    from .context import new_span_id
    from .recorder import recorder_for

    rec = recorder_for(client)
    if rec.capture:
        for key in ("input", "output"):
            if key in data:
                data[key] = rec.captured(data[key])
    else:
        data.pop("input", None)
        data.pop("output", None)
    rec.cost(data)
    with capture_internal_errors("frameworks.guards"):
        client.guards.after_call(data, parent)
    client.emit("llm_call", data, span=parent, own_span_id=new_span_id(), ts=ts)


def attr(obj: Any, name: str) -> Any:
    """``obj.name``, or ``None`` when missing or when reading it raises (frameworks' objects vary).

    Example::

        attr(event, "crew_name")   # None on a version without it
    """
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def enabled_client(adapter_on: bool) -> Optional[AgentPulse]:
    """The running client when the adapter is on and AgentPulse is enabled, else ``None``.

    Example::

        client = enabled_client(self.enabled)
        if client is None:
            return
    """
    client = _client_mod._client
    if not adapter_on or client is None or not client.enabled:
        return None
    return client


class Step:
    """One framework step on our side: a LangChain run, a CrewAI start event, an Agents SDK span.

    ``parent`` is the span it was started under; ``active`` / ``span`` its own
    span when it has one; ``current`` what it made current; ``holder`` the
    model marker (or own span) of a model call. Adapters subclass it for what
    their framework adds.

    Example::

        step = Step(live(_current.get()))
        step.open("Researcher", "agent", {})
        ...
        step.exit()
        close(step.active, None)
    """

    __slots__ = ("active", "current", "holder", "parent", "span", "t0", "ts")

    def __init__(self, parent: Optional[Span]) -> None:
        self.parent = parent
        self.active: Optional[ActiveSpan] = None
        self.span: Optional[Span] = None
        self.current: Optional[Current] = None
        self.holder: Optional[Span] = None
        self.t0 = time.perf_counter()
        self.ts = time.time()

    def open(self, name: str, kind: str, metadata: Dict[str, Any]) -> None:
        """Open the step's span under ``parent`` and make it current (nothing when AgentPulse is off)."""
        self.active = open_child(self.parent, name, kind, metadata, agent=name if kind == "agent" else None)
        if self.active is not None and self.active.span is not None:
            self.span = self.active.span
            self.current = Current(self.span)

    def open_model(self, name: str, metadata: Dict[str, Any]) -> bool:
        """Start a model call: a model marker under ``parent``, or at the top level a span of its own.

        ``False`` when there is no parent and no span could be opened: nothing to record under.
        """
        if self.parent is not None:
            self.current = Current(model_marker(self.parent, name), as_is=True)
        else:
            self.active = open_child(None, name, "llm", metadata)
            if self.active is None or self.active.span is None:
                return False
            self.span = self.active.span
            self.current = Current(self.span)
        self.holder = self.current.value
        return True

    def inner_parent(self) -> Optional[Span]:
        """Where a step started inside this one attaches: its span, else its model marker, else its parent."""
        return live(self.span or self.holder or self.parent)

    def exit(self) -> None:
        """Restore what was current before the step (see ``Current.exit``)."""
        if self.current is not None:
            self.current.exit()

    def end_model(
        self, client: Optional[AgentPulse], parent: Optional[Span], build: Callable[[], Dict[str, Any]]
    ) -> None:
        """End a model call: record ``build()`` under ``parent`` unless a provider patch beneath did.

        The marker never serves as a parent again once its call is over.
        """
        holder = self.holder
        if holder is None:
            return
        try:
            if client is not None and not provider_recorded(holder):
                record_llm_call(client, parent, build(), ts=self.ts)
        finally:
            holder.ended = True


S = TypeVar("S", bound=Step)


class OpenSteps(Generic[S]):
    """Steps started and not ended yet, by key; bounded: beyond ``limit`` the oldest is forgotten.

    Example::

        runs: OpenSteps[Step] = OpenSteps(10_000, "langchain.runs", "LangChain runs")
        runs.keep(run_id, Step(None))
        runs.pop(run_id)
    """

    def __init__(self, limit: int, log_key: str, what: str) -> None:
        self.limit = limit
        self.log_key = log_key
        self.what = what
        self._steps: Dict[Any, S] = {}
        self._lock = threading.Lock()

    def keep(self, key: Any, step: S) -> None:
        """Hold ``step`` under ``key`` until its end comes."""
        with self._lock:
            self._steps[key] = step
            if len(self._steps) > self.limit:
                self._steps.pop(next(iter(self._steps)))
                log_once(self.log_key, "agentpulse: more than %d %s open", self.limit, self.what)

    def get(self, key: Any) -> Optional[S]:
        """The step under ``key``, left open."""
        with self._lock:
            return self._steps.get(key)

    def pop(self, key: Any, latest: Optional[Callable[[S], bool]] = None) -> Optional[S]:
        """Remove and return the step under ``key``; failing that, the most recent one ``latest`` accepts."""
        with self._lock:
            if key in self._steps:
                return self._steps.pop(key)
            if latest is not None:
                for k in reversed(list(self._steps)):
                    if latest(self._steps[k]):
                        return self._steps.pop(k)
        return None

    def clear(self) -> None:
        """Forget every open step."""
        with self._lock:
            self._steps.clear()


def text(value: Any, limit: int = 200) -> str:
    """A short one-line name from ``value`` (a task description, a query)."""
    s = " ".join(str(value).split())
    return s if len(s) <= limit else s[: limit - 1] + "…"
