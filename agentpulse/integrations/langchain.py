"""LangChain / LangGraph: every run of a chain, graph node, tool, retriever or model as a span.

``init()`` registers one callback handler through langchain-core's own
configure hook, so every ``invoke`` / ``stream`` / ``batch`` (sync or async) of
every runnable reports to AgentPulse with no change to your code. Runs become
spans under the span that was current when the outermost run started:

* a chain or runnable: ``chain`` (an ``AgentExecutor``: ``agent``)
* a LangGraph graph: ``graph``; each of its nodes: ``node``
* a tool: ``tool``; a retriever: ``retriever``
* a model call: an ``llm_call`` directly under the run that made it. When the
  model sits on a provider SDK AgentPulse patches (``ChatOpenAI`` -> openai,
  ``ChatAnthropic`` -> anthropic) that patch records the call; otherwise it is
  recorded from the callback with the usage LangChain reports. Either way once.

Runs tagged ``langsmith:hidden`` are internal plumbing and are skipped; their
children attach to the nearest shown run. Inputs and outputs travel only with
``capture_messages=True``.

Example::

    import agentpulse
    from langchain_openai import ChatOpenAI

    agentpulse.init()
    with agentpulse.session("summarise"):
        ChatOpenAI(model="gpt-4o-mini").invoke("Summarise the inbox")
"""

from __future__ import annotations

import contextvars
import time
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from .._internal import capture_internal_errors
from ..context import Span, _current
from ..frameworks import OpenSteps, Step, close, enabled_client, live
from ._common import as_int

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage
    from langchain_core.outputs import LLMResult

    from ..client import AgentPulse

__all__ = ["AgentPulseCallbackHandler", "install", "uninstall"]

#: Runs held open at most; beyond this the oldest is forgotten (a run whose end never came).
MAX_OPEN_RUNS = 10_000
_HIDDEN_TAG = "langsmith:hidden"
#: LangGraph's control-flow exceptions: an interrupt or a jump to the parent graph, not a failure.
_CONTROL_FLOW = frozenset({"GraphInterrupt", "NodeInterrupt", "ParentCommand", "GraphBubbleUp"})
_AGENT_CLASSES = frozenset({"AgentExecutor"})


class _Run(Step):
    """What one LangChain run is on our side."""

    __slots__ = ("first_token_at", "request", "streamed")

    def __init__(self, parent: Optional[Span]) -> None:
        super().__init__(parent)  # parent: where the run's children go when it has no span of its own
        self.request: Dict[str, Any] = {}
        self.first_token_at: Optional[float] = None
        self.streamed = False

    @property
    def children_parent(self) -> Optional[Span]:
        return self.span if self.span is not None else self.parent


class AgentPulseCallbackHandler(BaseCallbackHandler):
    """Maps LangChain runs to AgentPulse spans.

    ``init()`` registers one instance for every run of the process; passing
    another in ``callbacks`` would record each run twice. To see what it
    records::

        agentpulse.init(exporter="memory")
        chain.invoke({"q": "..."})
        agentpulse.get_client().exporter.events   # span_start / span_end / llm_call
    """

    # Called in the caller's context, so the span it makes current is seen by the code the run executes.
    run_inline = True
    raise_error = False

    def __init__(self) -> None:
        super().__init__()
        self.enabled = True
        self._runs: OpenSteps[_Run] = OpenSteps(MAX_OPEN_RUNS, "langchain.runs", "LangChain runs")

    # -- bookkeeping ---------------------------------------------------------------

    def _client(self) -> Optional[AgentPulse]:
        return enabled_client(self.enabled)

    def _parent(self, parent_run_id: Optional[UUID]) -> Optional[Span]:
        if parent_run_id is not None:
            run = self._runs.get(parent_run_id)
            if run is not None:
                return live(run.children_parent)
        return live(_current.get())

    def _open(
        self,
        client: AgentPulse,
        run_id: UUID,
        parent_run_id: Optional[UUID],
        name: str,
        kind: str,
        metadata: Dict[str, Any],
        captured_input: Any,
        *,
        tags: Optional[List[str]] = None,
    ) -> None:
        parent = self._parent(parent_run_id)
        run = _Run(parent)
        if tags and _HIDDEN_TAG in tags:
            self._runs.keep(run_id, run)
            return
        if client.config.capture_messages and captured_input is not None:
            from ..recorder import recorder_for

            metadata["input"] = recorder_for(client).captured(captured_input)
        run.open(name, kind, metadata)
        self._runs.keep(run_id, run)

    def _close(
        self, run_id: UUID, error: Optional[BaseException], output: Any = None, **extra: Any
    ) -> Optional[_Run]:
        run = self._runs.pop(run_id)
        if run is None:
            return None
        run.exit()
        active = run.active
        if active is None:
            return run
        client = self._client()
        if client is not None and output is not None and client.config.capture_messages:
            from ..recorder import recorder_for

            active.set_result(recorder_for(client).captured(output))
        if extra:
            active.set_metadata(**extra)
        if error is not None and type(error).__name__ in _CONTROL_FLOW:
            active.set_metadata(interrupted=type(error).__name__)
            error = None
        close(active, error)
        return run

    # -- chains, graphs, nodes, agents -------------------------------------------------

    def on_chain_start(
        self,
        serialized: Optional[Dict[str, Any]],
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: Optional[UUID] = None,
        tags: Optional[List[str]] = None,
        metadata: Optional[Dict[str, Any]] = None,
        **kwargs: Any,
    ) -> None:
        client = self._client()
        if client is None:
            return
        with capture_internal_errors("langchain.chain_start"):
            name = _run_name(serialized, kwargs, "chain")
            kind, md = _chain_kind(name, serialized, tags, metadata)
            self._open(client, run_id, parent_run_id, name, kind, md, inputs, tags=tags)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        with capture_internal_errors("langchain.chain_end"):
            self._close(run_id, None, outputs)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        with capture_internal_errors("langchain.chain_error"):
            self._close(run_id, error)

    def on_agent_action(self, action: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._note(run_id, "agent_action", {"tool": getattr(action, "tool", None)})

    def on_agent_finish(self, finish: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._note(run_id, "agent_finish", {})

    def _note(self, run_id: UUID, name: str, data: Dict[str, Any]) -> None:
        client = self._client()
        if client is None:
            return
        with capture_internal_errors("langchain.note"):
            run = self._runs.get(run_id)
            if run is not None and run.span is not None and not run.span.ended:
                client.emit("event", {"name": name, "data": data, "type": "langchain"}, run.span)

    # -- tools and retrievers --------------------------------------------------------

    def on_tool_start(
        self,
        serialized: Optional[Dict[str, Any]],
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: Optional[UUID] = None,
        tags: Optional[List[str]] = None,
        metadata: Optional[Dict[str, Any]] = None,
        inputs: Optional[Dict[str, Any]] = None,
        **kwargs: Any,
    ) -> None:
        client = self._client()
        if client is None:
            return
        with capture_internal_errors("langchain.tool_start"):
            name = _run_name(serialized, kwargs, "tool")
            md: Dict[str, Any] = {}
            call_id = kwargs.get("tool_call_id")
            if isinstance(call_id, str):
                md["tool_call_id"] = call_id
            self._open(
                client,
                run_id,
                parent_run_id,
                name,
                "tool",
                md,
                inputs if inputs is not None else input_str,
                tags=tags,
            )

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        with capture_internal_errors("langchain.tool_end"):
            self._close(run_id, None, output)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        with capture_internal_errors("langchain.tool_error"):
            self._close(run_id, error)

    def on_retriever_start(
        self,
        serialized: Optional[Dict[str, Any]],
        query: str,
        *,
        run_id: UUID,
        parent_run_id: Optional[UUID] = None,
        tags: Optional[List[str]] = None,
        metadata: Optional[Dict[str, Any]] = None,
        **kwargs: Any,
    ) -> None:
        client = self._client()
        if client is None:
            return
        with capture_internal_errors("langchain.retriever_start"):
            name = _run_name(serialized, kwargs, "retriever")
            self._open(client, run_id, parent_run_id, name, "retriever", {}, query, tags=tags)

    def on_retriever_end(self, documents: Sequence[Any], *, run_id: UUID, **kwargs: Any) -> None:
        with capture_internal_errors("langchain.retriever_end"):
            count = len(documents) if isinstance(documents, Sequence) else None
            self._close(run_id, None, [getattr(d, "page_content", d) for d in documents], documents=count)

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        with capture_internal_errors("langchain.retriever_error"):
            self._close(run_id, error)

    # -- models ------------------------------------------------------------------------

    def on_chat_model_start(
        self,
        serialized: Optional[Dict[str, Any]],
        messages: List[List[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: Optional[UUID] = None,
        tags: Optional[List[str]] = None,
        metadata: Optional[Dict[str, Any]] = None,
        **kwargs: Any,
    ) -> None:
        client = self._client()
        if client is None:
            return
        with capture_internal_errors("langchain.chat_start"):
            prompt = [_message_dict(m) for m in messages[0]] if messages else None
            self._model_start(client, serialized, prompt, "chat", run_id, parent_run_id, metadata, kwargs)

    def on_llm_start(
        self,
        serialized: Optional[Dict[str, Any]],
        prompts: List[str],
        *,
        run_id: UUID,
        parent_run_id: Optional[UUID] = None,
        tags: Optional[List[str]] = None,
        metadata: Optional[Dict[str, Any]] = None,
        **kwargs: Any,
    ) -> None:
        client = self._client()
        if client is None:
            return
        with capture_internal_errors("langchain.llm_start"):
            prompt = prompts[0] if prompts else None
            self._model_start(
                client, serialized, prompt, "completion", run_id, parent_run_id, metadata, kwargs
            )

    def _model_start(
        self,
        client: AgentPulse,
        serialized: Optional[Dict[str, Any]],
        prompt: Any,
        operation: str,
        run_id: UUID,
        parent_run_id: Optional[UUID],
        metadata: Optional[Dict[str, Any]],
        kwargs: Dict[str, Any],
    ) -> None:
        parent = self._parent(parent_run_id)
        run = _Run(parent)
        name = _run_name(serialized, kwargs, "model")
        run.request = _model_request(name, operation, metadata, kwargs.get("invocation_params"))
        run.request["input"] = prompt
        # Under a model marker; with no span to nest under, a span of its own.
        run.open_model(name, {"provider": run.request.get("provider")})
        self._runs.keep(run_id, run)

    def on_llm_new_token(self, token: Any, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._runs.get(run_id)
        if run is not None:
            run.streamed = True
            if run.first_token_at is None:
                run.first_token_at = time.perf_counter()

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        with capture_internal_errors("langchain.llm_end"):
            self._model_end(run_id, response, None)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        with capture_internal_errors("langchain.llm_error"):
            self._model_end(run_id, None, error)

    def _model_end(self, run_id: UUID, response: Optional[LLMResult], error: Optional[BaseException]) -> None:
        run = self._runs.pop(run_id)
        if run is None:
            return
        run.exit()
        try:
            target = run.holder if run.span is not None else run.parent
            run.end_model(self._client(), target, lambda: _model_data(run, response, error))
        finally:
            close(run.active, error)


def _model_data(run: _Run, response: Optional[LLMResult], error: Optional[BaseException]) -> Dict[str, Any]:
    """The ``llm_call`` of a model run no provider patch recorded."""
    data = dict(run.request)
    data["latency_ms"] = (time.perf_counter() - run.t0) * 1000.0
    if run.first_token_at is not None:
        data["time_to_first_token_ms"] = (run.first_token_at - run.t0) * 1000.0
    if run.streamed:
        data["streaming"] = True
    if response is not None:
        data.update(_response_fields(response))
        data["status"] = "success"
    if error is not None:
        from ..recorder import error_info, status_of

        data["status"] = status_of(error)
        data["error"] = error_info(error)
    _estimate_usage(data)
    return data


# -- pure helpers ---------------------------------------------------------------------


def _run_name(serialized: Optional[Mapping[str, Any]], kwargs: Mapping[str, Any], default: str) -> str:
    name = kwargs.get("name")
    if isinstance(name, str) and name:
        return name
    if isinstance(serialized, Mapping):
        name = serialized.get("name")
        if isinstance(name, str) and name:
            return name
        ident = serialized.get("id")
        if isinstance(ident, list) and ident and isinstance(ident[-1], str):
            return ident[-1]
    return default


def _chain_kind(
    name: str,
    serialized: Optional[Mapping[str, Any]],
    tags: Optional[List[str]],
    metadata: Optional[Mapping[str, Any]],
) -> Tuple[str, Dict[str, Any]]:
    """``(span_kind, metadata)`` of a chain run: ``graph``, ``node``, ``agent`` or ``chain``."""
    md: Dict[str, Any] = {}
    meta = metadata if isinstance(metadata, Mapping) else {}
    node = meta.get("langgraph_node")
    if node is not None and node == name and any(t.startswith("graph:step:") for t in tags or ()):
        md["step"] = meta.get("langgraph_step")
        return "node", md
    if meta.get("ls_integration") == "langgraph" and (node is None or name == "LangGraph"):
        return "graph", md
    ident = serialized.get("id") if isinstance(serialized, Mapping) else None
    if name in _AGENT_CLASSES or (isinstance(ident, list) and ident and ident[-1] in _AGENT_CLASSES):
        return "agent", md
    return "chain", md


def _model_request(
    name: str, operation: str, metadata: Optional[Mapping[str, Any]], params: Any
) -> Dict[str, Any]:
    meta = metadata if isinstance(metadata, Mapping) else {}
    inv = params if isinstance(params, Mapping) else {}
    provider = meta.get("ls_provider")
    data: Dict[str, Any] = {
        "provider": provider if isinstance(provider, str) and provider else "langchain",
        "operation": operation,
        "framework": "langchain",
        "model_class": name,
    }
    model = meta.get("ls_model_name") or inv.get("model") or inv.get("model_name")
    if isinstance(model, str) and model:
        data["model"] = model
    temperature = meta.get("ls_temperature", inv.get("temperature"))
    if isinstance(temperature, (int, float)) and not isinstance(temperature, bool):
        data["temperature"] = float(temperature)
    max_tokens = meta.get("ls_max_tokens", inv.get("max_tokens"))
    if type(max_tokens) is int and max_tokens >= 0:
        data["max_tokens"] = max_tokens
    tools = inv.get("tools")
    if isinstance(tools, (list, tuple)):
        data["tools_count"] = len(tools)
    return data


def _message_dict(message: Any) -> Dict[str, Any]:
    return {"role": getattr(message, "type", "unknown"), "content": getattr(message, "content", None)}


def _response_fields(response: LLMResult) -> Dict[str, Any]:
    """Usage, model, finish reason, tool calls and text of a model run's result."""
    out: Dict[str, Any] = {}
    gens = response.generations[0] if response.generations else []
    gen = gens[0] if gens else None
    message = getattr(gen, "message", None)
    usage = getattr(message, "usage_metadata", None)
    if isinstance(usage, Mapping):
        out["input_tokens"] = as_int(usage.get("input_tokens"))
        out["output_tokens"] = as_int(usage.get("output_tokens"))
        details = usage.get("input_token_details")
        if isinstance(details, Mapping):
            out["cache_read_tokens"] = as_int(details.get("cache_read"))
            out["cache_write_tokens"] = as_int(details.get("cache_creation"))
        details = usage.get("output_token_details")
        if isinstance(details, Mapping):
            out["reasoning_tokens"] = as_int(details.get("reasoning"))
    else:
        llm_output = response.llm_output if isinstance(response.llm_output, Mapping) else {}
        tu = llm_output.get("token_usage") or llm_output.get("usage")
        if isinstance(tu, Mapping):
            out["input_tokens"] = as_int(tu.get("prompt_tokens", tu.get("input_tokens")))
            out["output_tokens"] = as_int(tu.get("completion_tokens", tu.get("output_tokens")))
    meta = getattr(message, "response_metadata", None)
    meta = meta if isinstance(meta, Mapping) else {}
    info = getattr(gen, "generation_info", None)
    info = info if isinstance(info, Mapping) else {}
    llm_output = response.llm_output if isinstance(response.llm_output, Mapping) else {}
    model = meta.get("model_name") or meta.get("model") or llm_output.get("model_name")
    if isinstance(model, str) and model:
        out["response_model"] = model
    reason = info.get("finish_reason") or meta.get("finish_reason") or meta.get("stop_reason")
    if isinstance(reason, str):
        out["finish_reason"] = reason
    calls = getattr(message, "tool_calls", None)
    if isinstance(calls, list) and calls:
        out["tool_calls"] = [str(c.get("name")) for c in calls if isinstance(c, Mapping)]
    output: Union[str, Any] = (
        getattr(message, "content", None) if message is not None else getattr(gen, "text", None)
    )
    out["output"] = output
    return {k: v for k, v in out.items() if v is not None}


def _estimate_usage(data: Dict[str, Any]) -> None:
    """A model that reported no usage gets estimated counts, flagged ``usage_estimated``."""
    if data.get("input_tokens") is not None or data.get("output_tokens") is not None:
        return
    if data.get("status") != "success":
        return
    from ._common import estimate_input, estimate_output

    model = data.get("model")
    prompt = data.get("input")
    inp = estimate_input(prompt, model) if prompt is not None else None
    out_text = data.get("output")
    out = estimate_output([out_text], model) if isinstance(out_text, str) else None
    if inp is not None or out is not None:
        data["input_tokens"] = inp
        data["output_tokens"] = out
        data["usage_estimated"] = True


# -- activation ----------------------------------------------------------------------

_handler: Optional[AgentPulseCallbackHandler] = None
_var: Optional[contextvars.ContextVar[Optional[AgentPulseCallbackHandler]]] = None


def install(client: AgentPulse) -> bool:
    """Register the handler with langchain-core's configure hook (idempotent)."""
    global _handler, _var
    from langchain_core.tracers.context import _configure_hooks, register_configure_hook

    if _handler is None or _var is None:
        _handler = AgentPulseCallbackHandler()
        # The default value makes the handler present in every context and thread.
        _var = contextvars.ContextVar("agentpulse_langchain_handler", default=_handler)
    _handler.enabled = True
    if not any(entry[0] is _var for entry in _configure_hooks):
        register_configure_hook(_var, True)
    return True


def uninstall() -> None:
    """Unregister the handler; runs still open are forgotten."""
    handler, var = _handler, _var
    if handler is None:
        return
    handler.enabled = False
    handler._runs.clear()
    from langchain_core.tracers.context import _configure_hooks

    _configure_hooks[:] = [entry for entry in _configure_hooks if entry[0] is not var]
