"""CrewAI: crew kickoffs, tasks, agents, tool uses and flows as spans.

AgentPulse follows CrewAI's event bus: every event CrewAI emits (``crew_kickoff_started``,
``task_started``, ``agent_execution_started``, ``tool_usage_started``, ``flow_started``,
``method_execution_started``, ``llm_call_started`` and their completed / failed ends)
is read as it is emitted, on the thread that emits it. CrewAI's own listeners run
later on a thread pool; reading the event where it is emitted is what lets the
model calls CrewAI makes nest under the agent that made them.

* a crew kickoff: ``crew`` (named by the crew's name)
* a task: ``task`` (named by its name, else its description)
* an agent executing a task: ``agent`` (named by its role)
* a tool use: ``tool``; a flow: ``flow``; one of its methods: ``step``
* a model call: an ``llm_call`` under the agent. When CrewAI's LLM sits on a
  provider SDK AgentPulse patches (openai, anthropic, litellm, ...) that patch
  records it; a model with nothing patched beneath (a custom ``BaseLLM``) is
  recorded from CrewAI's ``llm_call_completed`` event. Either way once.

Example::

    import agentpulse
    from crewai import Agent, Crew, Task

    agentpulse.init()
    crew = Crew(agents=[researcher, writer], tasks=[research, write])
    crew.kickoff()
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Tuple

from .._internal import capture_internal_errors
from ..context import Span, _current
from ..frameworks import OpenSteps, Step, close, enabled_client, framework_error, live, text
from ..frameworks import attr as _get
from ._common import as_int

if TYPE_CHECKING:
    from ..client import AgentPulse

__all__ = ["install", "span_for_event", "uninstall"]

MAX_OPEN = 10_000

#: start event type -> span kind. ``llm_call_started`` is handled apart (a model call).
START_KINDS: Dict[str, str] = {
    "crew_kickoff_started": "crew",
    "task_started": "task",
    "agent_execution_started": "agent",
    "lite_agent_execution_started": "agent",
    "tool_usage_started": "tool",
    "flow_started": "flow",
    "method_execution_started": "step",
}

#: end event type -> (its start event type, whether it is a failure).
END_EVENTS: Dict[str, Tuple[str, bool]] = {
    "crew_kickoff_completed": ("crew_kickoff_started", False),
    "crew_kickoff_failed": ("crew_kickoff_started", True),
    "task_completed": ("task_started", False),
    "task_failed": ("task_started", True),
    "agent_execution_completed": ("agent_execution_started", False),
    "agent_execution_error": ("agent_execution_started", True),
    "lite_agent_execution_completed": ("lite_agent_execution_started", False),
    "lite_agent_execution_error": ("lite_agent_execution_started", True),
    "tool_usage_finished": ("tool_usage_started", False),
    "tool_usage_error": ("tool_usage_started", True),
    "flow_finished": ("flow_started", False),
    "flow_failed": ("flow_started", True),
    "method_execution_finished": ("method_execution_started", False),
    "method_execution_failed": ("method_execution_started", True),
    "llm_call_completed": ("llm_call_started", False),
    "llm_call_failed": ("llm_call_started", True),
}


def _str(value: Any) -> Optional[str]:
    return value.strip() if isinstance(value, str) and value.strip() else None


def span_for_event(event: Any, source: Any = None) -> Optional[Tuple[str, str, Dict[str, Any]]]:
    """``(span_kind, name, metadata)`` for a CrewAI start event, or ``None`` for other events.

    ``source`` is the object that emitted the event (the crew, the agent, ...).

    Example::

        span_for_event(TaskStartedEvent(context=None, task=task))
        # ('task', 'Summarise the inbox', {'agent': 'Writer'})
    """
    etype = _get(event, "type")
    kind = START_KINDS.get(etype) if isinstance(etype, str) else None
    if kind is None:
        return None
    md: Dict[str, Any] = {}
    name: Optional[str] = None
    if kind == "crew":
        name = _str(_get(event, "crew_name"))
        crew = _get(event, "crew")
        crew = source if crew is None else crew
        if crew is not None:
            agents, tasks = _get(crew, "agents"), _get(crew, "tasks")
            if isinstance(agents, list):
                md["agents"] = len(agents)
            if isinstance(tasks, list):
                md["tasks"] = len(tasks)
            process = _get(crew, "process")
            if process is not None:
                md["process"] = str(_get(process, "value") or process)
        name = name or "crew"
    elif kind == "task":
        task = _get(event, "task")
        name = _str(_get(task, "name")) or _str(_get(task, "description")) or _str(_get(event, "task_name"))
        role = _str(_get(_get(task, "agent"), "role"))
        if role:
            md["agent"] = role
        name = text(name or "task")
    elif kind == "agent":
        agent = _get(event, "agent")
        info = _get(event, "agent_info")
        role = _str(_get(agent, "role"))
        if role is None and isinstance(info, Mapping):
            role = _str(info.get("role"))
        name = role or _str(_get(event, "agent_role")) or "agent"
        tools = _get(event, "tools")
        if isinstance(tools, (list, tuple)):
            md["tools"] = [str(_get(t, "name") or t) for t in tools]
        llm = _get(agent, "llm")
        model = _str(_get(llm, "model")) if llm is not None else None
        if model:
            md["model"] = model
    elif kind == "tool":
        name = _str(_get(event, "tool_name")) or "tool"
        role = _str(_get(event, "agent_role"))
        if role:
            md["agent"] = role
    elif kind == "flow":
        name = _str(_get(event, "flow_name")) or "flow"
    else:
        name = _str(_get(event, "method_name")) or "step"
    return kind, name, md


class _Node(Step):
    __slots__ = ("model", "start_type")

    def __init__(self, start_type: str, parent: Optional[Span]) -> None:
        super().__init__(parent)
        self.start_type = start_type
        self.model: Optional[str] = None


class CrewAIListener:
    """Turns CrewAI events into spans, on the thread that emits them. Installed by ``init()``."""

    def __init__(self) -> None:
        self.enabled = True
        self._nodes: OpenSteps[_Node] = OpenSteps(MAX_OPEN, "crewai.nodes", "CrewAI steps")

    def _client(self) -> Optional[AgentPulse]:
        return enabled_client(self.enabled)

    def handle(self, source: Any, event: Any) -> None:
        """Read one emitted event (after CrewAI stamped its ids); ``source`` is what emitted it."""
        client = self._client()
        if client is None:
            return
        etype = _get(event, "type")
        if not isinstance(etype, str):
            return
        if etype in END_EVENTS:
            self._end(client, event, etype)
        elif etype == "llm_call_started":
            self._model_start(event)
        elif etype in START_KINDS:
            self._start(source, event, etype)

    def _parent(self, event: Any) -> Optional[Span]:
        pid = _get(event, "parent_event_id")
        if isinstance(pid, str):
            node = self._nodes.get(pid)
            if node is not None:
                return node.inner_parent()
        return live(_current.get())

    def _keep(self, event: Any, node: _Node) -> None:
        eid = _get(event, "event_id")
        self._nodes.keep(eid if isinstance(eid, str) else f"{node.start_type}:{id(event)}", node)

    def _take(self, event: Any, start_type: str) -> Optional[_Node]:
        sid = _get(event, "started_event_id")
        # Versions without ``started_event_id``: the latest open step of that type.
        return self._nodes.pop(sid if isinstance(sid, str) else None, lambda n: n.start_type == start_type)

    def _start(self, source: Any, event: Any, etype: str) -> None:
        found = span_for_event(event, source)
        if found is None:
            return
        kind, name, md = found
        node = _Node(etype, self._parent(event))
        if kind in ("flow", "step") and _internal(source):
            # CrewAI runs each agent as a flow of its own: plumbing, not a step of the user's.
            self._keep(event, node)
            return
        node.open(name, kind, md)
        self._keep(event, node)

    def _model_start(self, event: Any) -> None:
        node = _Node("llm_call_started", self._parent(event))
        node.model = _str(_get(event, "model"))
        if node.open_model(node.model or "llm", {}):
            self._keep(event, node)

    def _end(self, client: AgentPulse, event: Any, etype: str) -> None:
        start_type, failed = END_EVENTS[etype]
        node = self._take(event, start_type)
        if node is None:
            return
        node.exit()
        error: Optional[BaseException] = None
        if failed:
            err = _get(event, "error")
            etype_cls = _get(event, "error_type")
            type_name = _get(etype_cls, "__name__") if etype_cls is not None else None
            error = framework_error(type_name if isinstance(type_name, str) else None, str(err or etype))
        elif etype == "tool_usage_finished" and _get(event, "failure") is not None:
            error = framework_error(
                "ToolFailure", str(_get(_get(event, "failure"), "message") or "tool failed")
            )
        node.end_model(client, node.span or node.parent, lambda: _llm_data(event, node, error))
        if node.active is not None:
            if etype == "tool_usage_finished" and _get(event, "from_cache") is True:
                node.active.set_metadata(from_cache=True)
            if error is None and client.config.capture_messages:
                output = _get(event, "output")
                if output is not None:
                    from ..recorder import recorder_for

                    node.active.set_result(recorder_for(client).captured(output))
        close(node.active, error)


def _internal(source: Any) -> bool:
    module = getattr(type(source), "__module__", "") or ""
    return module == "crewai" or module.startswith("crewai.")


def _usage(usage: Any) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    if not isinstance(usage, Mapping):
        return out

    def count(*keys: str) -> Optional[int]:
        for k in keys:
            v = as_int(usage.get(k))
            if v is not None:
                return v
        return None

    out["input_tokens"] = count("prompt_tokens", "input_tokens")
    out["output_tokens"] = count("completion_tokens", "output_tokens")
    out["cache_read_tokens"] = count("cached_prompt_tokens", "cache_read_tokens", "cache_read_input_tokens")
    out["reasoning_tokens"] = count("reasoning_tokens")
    return {k: v for k, v in out.items() if v is not None}


def _llm_data(event: Any, node: _Node, error: Optional[BaseException]) -> Dict[str, Any]:
    """An ``llm_call`` from CrewAI's own events, for a model no provider patch saw."""
    model = node.model or _str(_get(event, "model"))
    provider = "crewai"
    if model and "/" in model:
        provider = model.split("/", 1)[0]
    data: Dict[str, Any] = {
        "provider": provider,
        "operation": "chat",
        "framework": "crewai",
        "latency_ms": (time.perf_counter() - node.t0) * 1000.0,
    }
    if model:
        data["model"] = model
    if error is not None:
        from ..recorder import error_info

        data["status"] = "error"
        data["error"] = error_info(error)
        return data
    data["status"] = "success"
    data.update(_usage(_get(event, "usage")))
    reason = _str(_get(event, "finish_reason"))
    if reason:
        data["finish_reason"] = reason
    messages = _get(event, "messages")
    response = _get(event, "response")
    data["input"] = messages
    data["output"] = response
    if data.get("input_tokens") is None and data.get("output_tokens") is None:
        from ._common import estimate_input, estimate_output

        data["input_tokens"] = estimate_input(messages, model) if messages is not None else None
        data["output_tokens"] = estimate_output([response], model) if isinstance(response, str) else None
        data["usage_estimated"] = True
    return data


# -- activation ----------------------------------------------------------------------

_listener: Optional[CrewAIListener] = None
_patched: List[Tuple[Any, str, Any]] = []


def _bus_class() -> Any:
    import importlib

    # Where the bus lives: CrewAI 1.x, then the 0.x releases.
    for name in ("crewai.events.event_bus", "crewai.utilities.events.crewai_event_bus"):
        try:
            return importlib.import_module(name).CrewAIEventsBus
        except (ImportError, AttributeError):
            continue
    raise ImportError("CrewAI's event bus was not found")


def _make_emit(original: Callable[..., Any], listener: CrewAIListener) -> Callable[..., Any]:
    def emit(self: Any, source: Any, event: Any = None, *args: Any, **kwargs: Any) -> Any:
        # CrewAI passes the event positionally or as ``event=``.
        result = original(self, source, event, *args, **kwargs)
        with capture_internal_errors("crewai.event"):
            listener.handle(source, event)
        return result

    emit.__wrapped__ = original  # type: ignore[attr-defined]
    emit.__agentpulse__ = True  # type: ignore[attr-defined]
    emit.__name__ = getattr(original, "__name__", "emit")
    emit.__doc__ = getattr(original, "__doc__", None)
    return emit


def install(client: AgentPulse) -> bool:
    """Follow CrewAI's event bus (idempotent)."""
    global _listener
    cls = _bus_class()
    if _listener is None:
        _listener = CrewAIListener()
    _listener.enabled = True
    current = cls.__dict__.get("emit")
    if current is None or getattr(current, "__agentpulse__", False):
        return current is not None
    cls.emit = _make_emit(current, _listener)
    _patched.append((cls, "emit", current))
    return True


def uninstall() -> None:
    """Stop following the event bus and restore its ``emit``."""
    if _listener is not None:
        _listener.enabled = False
        _listener._nodes.clear()
    while _patched:
        cls, attr, original = _patched.pop()
        if getattr(cls.__dict__.get(attr), "__agentpulse__", False):
            setattr(cls, attr, original)
