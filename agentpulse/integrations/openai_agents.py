"""OpenAI Agents SDK: agent runs, handoffs, tool calls and guardrails as spans.

``init()`` adds one tracing processor with ``agents.add_trace_processor``; the
SDK's own processors (its export to the OpenAI dashboard) keep running. Each
SDK trace and span becomes an AgentPulse span under the span that was current
when the run started:

* a trace (``Runner.run``, ``with trace(...)``): ``workflow``
* an agent's turn at the wheel: ``agent`` (named by the agent)
* a function tool call: ``tool``; a handoff: ``handoff`` (``From -> To``);
  a guardrail: ``guardrail`` (``metadata.triggered``); a custom span: ``custom``
* a model call (the SDK's ``response`` / ``generation`` span): an ``llm_call``
  directly under the agent. The openai patch records it from the SDK call
  beneath; a model with no patched SDK beneath is recorded from the usage the
  Agents SDK reports. Either way once.

Tracing switched off in the SDK (``OPENAI_AGENTS_DISABLE_TRACING=1``,
``set_tracing_disabled(True)``) leaves only the model calls, at the top level.

Example::

    import agentpulse
    from agents import Agent, Runner

    agentpulse.init()
    with agentpulse.session("support"):
        Runner.run_sync(Agent(name="Triage", instructions="..."), "Where is my order?")
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Tuple

from agents.tracing import TracingProcessor  # type: ignore[import-not-found, unused-ignore]

from .._internal import capture_internal_errors
from ..context import Span, _current
from ..frameworks import OpenSteps, Step, close, enabled_client, framework_error, live, open_child
from ..frameworks import attr as _get
from ._common import as_int

if TYPE_CHECKING:
    from agents.tracing import Span as SdkSpan  # type: ignore[import-not-found, unused-ignore]
    from agents.tracing import Trace as SdkTrace  # type: ignore[import-not-found, unused-ignore]

    from ..client import AgentPulse

__all__ = ["AgentPulseProcessor", "install", "span_for", "uninstall"]

MAX_OPEN = 10_000
_MODEL_TYPES = frozenset({"response", "generation"})
#: The SDK's ``task`` (one ``Runner.run``) and ``turn`` (one loop of an agent) spans repeat what the
#: trace and the agent span already show; their children attach to the span above them.
_TRANSPARENT = frozenset({"task", "turn"})
#: SDK span type -> AgentPulse span kind.
KINDS: Dict[str, str] = {
    "agent": "agent",
    "function": "tool",
    "handoff": "handoff",
    "guardrail": "guardrail",
    "custom": "custom",
    "mcp_tools": "tool",
    "transcription": "speech",
    "speech": "speech",
    "speech_group": "speech",
}


def span_for(data: Any) -> Tuple[str, str, Dict[str, Any]]:
    """``(span_kind, name, metadata)`` of an SDK span from its ``span_data``.

    Example::

        span_for(AgentSpanData(name="Triage", tools=["lookup"]))
        # ('agent', 'Triage', {'tools': ['lookup']})
    """
    stype = _get(data, "type")
    stype = stype if isinstance(stype, str) else "custom"
    kind = KINDS.get(stype, stype)
    md: Dict[str, Any] = {}
    name = _get(data, "name")
    if stype == "agent":
        for key in ("tools", "handoffs"):
            value = _get(data, key)
            if isinstance(value, list) and value:
                md[key] = [str(v) for v in value]
        output_type = _get(data, "output_type")
        if isinstance(output_type, str) and output_type != "str":
            md["output_type"] = output_type
    elif stype == "handoff":
        src, dst = _get(data, "from_agent"), _get(data, "to_agent")
        md = {"from_agent": src, "to_agent": dst}
        name = f"{src or '?'} -> {dst or '?'}"
    elif stype == "mcp_tools":
        server = _get(data, "server")
        name = f"list_tools {server}" if server else "list_tools"
    elif stype == "function":
        mcp = _get(data, "mcp_data")
        if isinstance(mcp, Mapping):
            md["mcp"] = dict(mcp)
    if not isinstance(name, str) or not name:
        name = stype
    return kind, name, md


class _Node(Step):
    __slots__ = ("kind", "stype")

    def __init__(self, stype: str, parent: Optional[Span]) -> None:
        super().__init__(parent)
        self.stype = stype
        self.kind = KINDS.get(stype, stype)


class AgentPulseProcessor(TracingProcessor):  # type: ignore[misc, unused-ignore]
    """Maps Agents SDK traces and spans to AgentPulse spans. Registered by ``init()``."""

    def __init__(self) -> None:
        self.enabled = True
        self._added = False
        self._nodes: OpenSteps[_Node] = OpenSteps(MAX_OPEN, "openai_agents.nodes", "Agents SDK spans")

    def _client(self) -> Optional[AgentPulse]:
        return enabled_client(self.enabled)

    def _node(self, key: Optional[str]) -> Optional[_Node]:
        return self._nodes.get(key) if isinstance(key, str) else None

    def _take(self, key: Any) -> Optional[_Node]:
        return self._nodes.pop(key) if isinstance(key, str) else None

    # -- traces --------------------------------------------------------------------

    def on_trace_start(self, trace: SdkTrace) -> None:
        if self._client() is None:
            return
        with capture_internal_errors("openai_agents.trace_start"):
            parent = live(_current.get())
            node = _Node("trace", parent)
            md: Dict[str, Any] = {}
            group = _get(trace, "group_id")
            if isinstance(group, str):
                md["group_id"] = group
            md["sdk_trace_id"] = trace.trace_id
            node.active = open_child(parent, trace.name or "workflow", "workflow", md)
            if node.active is not None:
                node.span = node.active.span
            self._nodes.keep("trace:" + trace.trace_id, node)

    def on_trace_end(self, trace: SdkTrace) -> None:
        with capture_internal_errors("openai_agents.trace_end"):
            node = self._take("trace:" + trace.trace_id)
            if node is not None:
                close(node.active, None)

    # -- spans ---------------------------------------------------------------------

    def on_span_start(self, span: SdkSpan[Any]) -> None:
        if self._client() is None:
            return
        with capture_internal_errors("openai_agents.span_start"):
            data = span.span_data
            stype = _get(data, "type")
            stype = stype if isinstance(stype, str) else "custom"
            node = _Node(stype, self._parent(span))
            if stype in _MODEL_TYPES:
                self._model_start(node, data)
            elif stype not in _TRANSPARENT and stype != "handoff":
                # (a handoff is opened when it ends: its target is known only then)
                kind, name, md = span_for(data)
                node.open(name, kind, md)
            self._nodes.keep(span.span_id, node)

    def _parent(self, span: SdkSpan[Any]) -> Optional[Span]:
        node = self._node(span.parent_id) or self._node("trace:" + span.trace_id)
        if node is not None:
            return node.inner_parent()
        return live(_current.get())

    def _model_start(self, node: _Node, data: Any) -> None:
        model = _get(data, "model")
        node.open_model(model if isinstance(model, str) and model else "model", {})

    def on_span_end(self, span: SdkSpan[Any]) -> None:
        client = self._client()
        with capture_internal_errors("openai_agents.span_end"):
            node = self._take(span.span_id)
            if node is None:
                return
            node.exit()
            data = span.span_data
            error: Optional[BaseException] = None
            err = span.error
            if err:
                message = err.get("message") if isinstance(err, Mapping) else str(err)
                error = framework_error(None, str(message or "error"))
            if node.holder is not None:
                node.end_model(client, node.span or node.parent, lambda: _model_fields(data, node, error))
                close(node.active, error)
                return
            if node.stype == "handoff" and client is not None:
                kind, name, md = span_for(data)
                node.active = open_child(node.parent, name, kind, md)
                if node.active is not None and node.active.span is not None:
                    node.active.span.start_perf = node.t0
            active = node.active
            if active is None:
                return
            if node.stype == "guardrail":
                active.set_metadata(triggered=bool(_get(data, "triggered")))
            elif node.stype == "agent":
                # The SDK fills in an agent's tools and handoffs after its span started.
                active.set_metadata(**span_for(data)[2])
            if node.stype == "function" and client is not None and client.config.capture_messages:
                from ..recorder import recorder_for

                active.set_result(recorder_for(client).captured(_get(data, "output")))
            close(active, error)

    def shutdown(self) -> None:
        """Nothing to flush: events are already queued for AgentPulse's reporter."""

    def force_flush(self) -> None:
        """Nothing to flush: events are already queued for AgentPulse's reporter."""


def _model_fields(data: Any, node: _Node, error: Optional[BaseException]) -> Dict[str, Any]:
    """An ``llm_call`` from a model span the SDK reported, for a model no provider patch saw."""
    out: Dict[str, Any] = {
        "provider": "openai_agents",
        "operation": "responses" if node.stype == "response" else "chat",
        "framework": "openai_agents",
        "latency_ms": (time.perf_counter() - node.t0) * 1000.0,
        "status": "success" if error is None else "error",
    }
    if error is not None:
        from ..recorder import error_info

        out["error"] = error_info(error)
    model = _get(data, "model")
    usage: Any = _get(data, "usage")
    response = _get(data, "response")
    if response is not None:
        resolved = _get(response, "model")
        if isinstance(resolved, str) and resolved:
            out["response_model"] = resolved
            model = model or resolved  # the SDK's response span does not say what was asked for
        usage = usage or _get(response, "usage")
    if isinstance(model, str) and model:
        out["model"] = model
    if usage is not None and not isinstance(usage, Mapping):
        dump = _get(usage, "model_dump")
        usage = dump() if callable(dump) else None
    if isinstance(usage, Mapping):
        out["input_tokens"] = as_int(usage.get("input_tokens", usage.get("prompt_tokens")))
        out["output_tokens"] = as_int(usage.get("output_tokens", usage.get("completion_tokens")))
        details = usage.get("input_tokens_details")
        if isinstance(details, Mapping):
            out["cache_read_tokens"] = as_int(details.get("cached_tokens"))
        details = usage.get("output_tokens_details")
        if isinstance(details, Mapping):
            out["reasoning_tokens"] = as_int(details.get("reasoning_tokens"))
    out["input"] = _get(data, "input")
    out["output"] = _get(data, "output")
    return {k: v for k, v in out.items() if v is not None}


# -- activation ----------------------------------------------------------------------

_processor: Optional[AgentPulseProcessor] = None


def _is_registered(processor: AgentPulseProcessor) -> bool:
    try:
        from agents.tracing import get_trace_provider  # type: ignore[import-not-found, unused-ignore]

        multi = getattr(get_trace_provider(), "_multi_processor", None)
        processors = getattr(multi, "_processors", None)
    except Exception:
        processors = None
    if isinstance(processors, tuple):
        return processor in processors
    return getattr(processor, "_added", False) is True


def install(client: AgentPulse) -> bool:
    """Register the processor with ``agents.add_trace_processor`` (idempotent).

    The SDK cannot remove a processor: it is added once and switched off by
    ``uninstall()``; added again only if the application replaced the SDK's
    processors since (``set_trace_processors``).
    """
    global _processor
    from agents import add_trace_processor  # type: ignore[import-not-found, unused-ignore]

    if _processor is None:
        _processor = AgentPulseProcessor()
    _processor.enabled = True
    if not _is_registered(_processor):
        add_trace_processor(_processor)
        _processor._added = True
    return True


def uninstall() -> None:
    """Switch the processor off; spans still open are forgotten."""
    if _processor is not None:
        _processor.enabled = False
        _processor._nodes.clear()
