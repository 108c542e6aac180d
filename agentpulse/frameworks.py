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
from types import ModuleType
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Set, Tuple, Type

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


def text(value: Any, limit: int = 200) -> str:
    """A short one-line name from ``value`` (a task description, a query)."""
    s = " ".join(str(value).split())
    return s if len(s) <= limit else s[: limit - 1] + "…"
