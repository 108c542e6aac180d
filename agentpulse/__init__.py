"""AgentPulse: zero-config observability for LLM agents.

Example::

    import agentpulse
    agentpulse.init()   # every OpenAI / Anthropic / LiteLLM / ... call is now captured

    with agentpulse.session("daily-email"):
        ...
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from ._version import __version__
from .client import AgentPulse, get_client
from .client import init as _init
from .client import shutdown as _shutdown
from .config import ConfigError
from .context import Span, current_span
from .crons import cron
from .guards import BudgetExceeded
from .memory import memory_report
from .structure import agent, session, set_metadata, set_user, task, trace

__all__ = [
    "AgentPulse",
    "BudgetExceeded",
    "ConfigError",
    "Span",
    "__version__",
    "agent",
    "alert",
    "cron",
    "current_span",
    "event",
    "flush",
    "get_client",
    "init",
    "memory_report",
    "metric",
    "patch",
    "session",
    "set_metadata",
    "set_user",
    "shutdown",
    "stats",
    "task",
    "trace",
    "unpatch",
]


def init(**options: Any) -> AgentPulse:
    """Start AgentPulse for this process and return the client.

    Every option can also come from an ``AGENTPULSE_<OPTION>`` environment
    variable; keyword arguments win. A bad value raises ``ConfigError`` naming
    the option. Calling ``init()`` again returns the same client.

    Example::

        import agentpulse
        agentpulse.init(agent_name="marcus", capture_messages=False)
    """
    return _init(**options)


def shutdown(timeout: Optional[float] = None) -> bool:
    """Flush what is queued (bounded by ``timeout``), stop the worker and undo all patches."""
    _wait_for_memory_reports(timeout)
    return _shutdown(timeout)


def flush(timeout: Optional[float] = None) -> bool:
    """Wait until queued events are exported; ``True`` if done within ``timeout`` seconds."""
    client = get_client()
    if client is None:
        return True
    _wait_for_memory_reports(timeout)
    return client.flush(timeout)


def _wait_for_memory_reports(timeout: Optional[float]) -> None:
    # memory_report() reads files on a background thread: let those reports reach the queue first.
    from .memory import wait_for_reports

    wait_for_reports(5.0 if timeout is None else timeout)


def stats() -> Dict[str, int]:
    """The reporter's counters: queued, sent, dropped, failed, retried, coerced, truncated, ..."""
    client = get_client()
    return {} if client is None else client.stats()


def event(name: str, data: Optional[Dict[str, Any]] = None) -> None:
    """Record a named event: ``agentpulse.event("email_sent", {"to": 3})``."""
    client = get_client()
    if client is not None:
        client.event(name, data)


def metric(name: str, value: float, tags: Optional[Dict[str, Any]] = None) -> None:
    """Record a number: ``agentpulse.metric("inbox_size", 42, tags={"box": "main"})``."""
    client = get_client()
    if client is not None:
        client.metric(name, value, tags)


def alert(title: str, severity: str = "warning", details: Optional[Dict[str, Any]] = None) -> None:
    """Record something that needs a human: ``agentpulse.alert("quota low", "error")``."""
    client = get_client()
    if client is not None:
        client.alert(title, severity, details)


def patch(library: Optional[str] = None) -> List[str]:
    """Instrument ``library`` (or every library with an integration) now; returns what was patched.

    ``init()`` already patches every installed library; use this after
    ``init(auto_patch=False)`` or after ``unpatch()``. Raises ``ValueError`` for
    a library with no integration.

    Example::

        agentpulse.init(auto_patch=False)
        agentpulse.patch("anthropic")
    """
    from .patching import patch as _patch

    return _patch(library)


def unpatch(library: Optional[str] = None) -> List[str]:
    """Restore the original methods of ``library`` (or of everything); returns the targets restored.

    Example::

        agentpulse.unpatch("openai")   # OpenAI calls are no longer recorded
    """
    from .patching import unpatch as _unpatch

    return _unpatch(library)
