"""Anthropic: ``messages.create`` (plain and ``stream=True``), ``messages.stream()``,
``messages.parse()``, and their ``beta`` twins, sync and async.

Specs and pure extractors only; ``agentpulse.patching.engine`` does the wrapping.
Nothing here imports ``anthropic``.

Usage normalisation (see the wire contract): Anthropic's ``input_tokens`` count
only the uncached input, so ``input_tokens = input_tokens +
cache_creation_input_tokens + cache_read_input_tokens``, with
``cache_write_tokens`` / ``cache_read_tokens`` the two cache parts.
``output_tokens`` already include thinking tokens
(``output_tokens_details.thinking_tokens`` -> ``reasoning_tokens``). In a
stream, ``message_start`` carries the input counts and ``message_delta`` the
*cumulative* output count: a later value replaces the earlier one, never adds.

``messages.stream()`` does not go through ``create``: it returns a
``MessageStreamManager`` whose ``__enter__`` makes the request. The spec uses
``stream="manager"``; the engine arms the manager's request so the stream the
helper iterates is observed, and ``text_stream``, ``get_final_message()`` and
``until_done()`` keep working.

Example::

    import agentpulse, anthropic
    agentpulse.init()
    with anthropic.Anthropic().messages.stream(model="claude-sonnet-4-5", max_tokens=512,
                                               messages=[...]) as stream:
        print(stream.get_final_text())   # recorded once, with tokens and cost
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from ..patching.spec import PatchSpec, StreamState
from ._common import as_int, as_str, estimate_input, estimate_output, prompt_fingerprint, request_fields

__all__ = ["LIBRARY", "SPECS"]

LIBRARY = "anthropic"
RAW_RESPONSE_HEADER = "X-Stainless-Raw-Response"

Args = Tuple[Any, ...]
Fields = Dict[str, Any]

_TOOL_BLOCKS = frozenset(("tool_use", "server_tool_use", "mcp_tool_use"))


def usage_fields(usage: Any) -> Fields:
    """Normalised token fields from an Anthropic ``Usage``."""
    # Runs on every call: inline type tests rather than helper calls.
    out: Fields = {}
    if usage is None:
        return out
    inp = getattr(usage, "input_tokens", None)
    if type(inp) is not int or inp < 0:
        inp = None
    cw = getattr(usage, "cache_creation_input_tokens", None)
    if type(cw) is not int or cw < 0:
        cw = None
    cr = getattr(usage, "cache_read_input_tokens", None)
    if type(cr) is not int or cr < 0:
        cr = None
    if inp is not None or cw is not None or cr is not None:
        out["input_tokens"] = (inp or 0) + (cw or 0) + (cr or 0)
    if cw is not None:
        out["cache_write_tokens"] = cw
    if cr is not None:
        out["cache_read_tokens"] = cr
    ot = getattr(usage, "output_tokens", None)
    if type(ot) is int and ot >= 0:
        out["output_tokens"] = ot
    details = getattr(usage, "output_tokens_details", None)
    if details is not None:
        rt = getattr(details, "thinking_tokens", None)
        if type(rt) is int and rt >= 0:
            out["reasoning_tokens"] = rt
    return out


def messages_request(args: Args, kwargs: Dict[str, Any]) -> Fields:
    """Request fields of ``messages.create`` / ``stream`` / ``parse``."""
    return request_fields(kwargs, ("max_tokens",))


def messages_input(args: Args, kwargs: Dict[str, Any]) -> Any:
    """The messages, with the system prompt when given."""
    system = kwargs.get("system")
    if isinstance(system, (str, list)):
        return {"system": system, "messages": kwargs.get("messages")}
    return kwargs.get("messages")


def messages_prompt_hash(args: Args, kwargs: Dict[str, Any]) -> Optional[str]:
    """Fingerprint of the last message, for the loop detector."""
    return prompt_fingerprint(kwargs.get("messages"))


def message_response(result: Any) -> Fields:
    """Fields of a ``Message`` (also ``ParsedMessage`` and the beta ``BetaMessage``)."""
    out = usage_fields(getattr(result, "usage", None))
    model = getattr(result, "model", None)
    if type(model) is str and model:
        out["response_model"] = model
    stop = getattr(result, "stop_reason", None)
    if type(stop) is str and stop:
        out["finish_reason"] = stop
    content = getattr(result, "content", None)
    if isinstance(content, list):
        names: Optional[List[str]] = None
        for block in content:
            if getattr(block, "type", None) in _TOOL_BLOCKS:
                name = getattr(block, "name", None)
                if type(name) is str and name:
                    if names is None:
                        names = []
                    names.append(name)
        if names:
            out["tool_calls"] = names
    return out


def message_output(result: Any) -> Any:
    """The text blocks joined, with tool calls when the model asked for any."""
    content = getattr(result, "content", None)
    if not isinstance(content, list):
        return None
    text = "".join(b.text for b in content if getattr(b, "type", None) == "text" and isinstance(b.text, str))
    calls = [
        {"name": getattr(b, "name", None), "input": getattr(b, "input", None)}
        for b in content
        if getattr(b, "type", None) in _TOOL_BLOCKS
    ]
    return {"content": text, "tool_calls": calls} if calls else text


_RAW_USAGE = (
    ("input_tokens", "input_tokens"),
    ("cache_creation_input_tokens", "cache_creation_input_tokens"),
    ("cache_read_input_tokens", "cache_read_input_tokens"),
    ("output_tokens", "output_tokens"),
)


class _RawUsage:
    """Anthropic's own counts, as last reported; normalised only at the end."""

    __slots__ = (
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "input_tokens",
        "output_tokens",
        "thinking",
    )

    def __init__(self) -> None:
        self.input_tokens: Optional[int] = None
        self.cache_creation_input_tokens: Optional[int] = None
        self.cache_read_input_tokens: Optional[int] = None
        self.output_tokens: Optional[int] = None
        self.thinking: Optional[int] = None

    def take(self, usage: Any) -> None:
        # message_delta counts are cumulative: a value present replaces the earlier one, never adds.
        if usage is None:
            return
        for src, dst in _RAW_USAGE:
            v = as_int(getattr(usage, src, None))
            if v is not None:
                setattr(self, dst, v)
        details = getattr(usage, "output_tokens_details", None)
        if details is not None:
            v = as_int(getattr(details, "thinking_tokens", None))
            if v is not None:
                self.thinking = v


class MessageStreamState(StreamState):
    """Accumulates raw ``RawMessageStreamEvent``s (from ``stream=True`` or ``messages.stream()``)."""

    def __init__(self, args: Args, kwargs: Dict[str, Any]) -> None:
        self.parts: List[str] = []
        self.other: List[str] = []
        self.tools: List[str] = []
        self.usage = _RawUsage()
        self.saw_delta = False
        self.response_model: Optional[str] = None
        self.finish_reason: Optional[str] = None
        self.model = as_str(kwargs.get("model"))
        messages = kwargs.get("messages")
        self.messages = list(messages) if isinstance(messages, (list, tuple)) else messages
        self.system = kwargs.get("system")

    def record(self, chunk: Any) -> bool:
        t = chunk.type
        if t == "content_block_delta":
            delta = chunk.delta
            dt = delta.type
            if dt == "text_delta":
                self.parts.append(delta.text)
            elif dt == "thinking_delta":
                self.other.append(delta.thinking)
            elif dt == "input_json_delta":
                self.other.append(delta.partial_json)
            return True
        if t == "message_start":
            message = chunk.message
            self.response_model = as_str(getattr(message, "model", None))
            self.usage.take(getattr(message, "usage", None))
        elif t == "message_delta":
            self.saw_delta = True
            self.usage.take(getattr(chunk, "usage", None))
            stop = as_str(getattr(chunk.delta, "stop_reason", None))
            if stop is not None:
                self.finish_reason = stop
        elif t == "content_block_start":
            block = chunk.content_block
            if getattr(block, "type", None) in _TOOL_BLOCKS:
                name = as_str(getattr(block, "name", None))
                if name is not None:
                    self.tools.append(name)
        elif t == "message_stop":
            self.done = True
        return False

    def result(self) -> Fields:
        u = self.usage
        out: Fields = {}
        if u.input_tokens is not None or u.cache_creation_input_tokens is not None:
            cw, cr = u.cache_creation_input_tokens, u.cache_read_input_tokens
            out["input_tokens"] = (u.input_tokens or 0) + (cw or 0) + (cr or 0)
            if cw is not None:
                out["cache_write_tokens"] = cw
            if cr is not None:
                out["cache_read_tokens"] = cr
        if self.response_model is not None:
            out["response_model"] = self.response_model
        model = self.response_model or self.model
        if self.saw_delta and u.output_tokens is not None:
            out["output_tokens"] = u.output_tokens
            if u.thinking is not None:
                out["reasoning_tokens"] = u.thinking
        else:
            # Cut before message_delta: message_start's output count is only a placeholder.
            out["output_tokens"] = estimate_output(self.parts + self.other, model)
            out["usage_estimated"] = True
            if "input_tokens" not in out:
                inp = estimate_input(self.messages, model)
                if inp is not None:
                    out["input_tokens"] = inp + (estimate_input(self.system, model) or 0)
        if self.finish_reason is not None:
            out["finish_reason"] = self.finish_reason
        if self.tools:
            out["tool_calls"] = self.tools
        out["output"] = "".join(self.parts)
        return out


_MESSAGES = "anthropic.resources.messages.messages"
_BETA_MESSAGES = "anthropic.resources.beta.messages.messages"


def _spec(module: str, target: str, *, is_async: bool, stream: str) -> PatchSpec:
    return PatchSpec(
        library=LIBRARY,
        module=module,
        target=target,
        provider="anthropic",
        operation="chat",
        is_async=is_async,
        stream=stream,  # type: ignore[arg-type]
        manager_request_attr="__api_request" if stream == "manager" else None,
        raw_response_header=RAW_RESPONSE_HEADER,
        min_version="0.30",
        extract_request=messages_request,
        extract_response=message_response,
        extract_input=messages_input,
        extract_output=message_output,
        prompt_hash=messages_prompt_hash,
        stream_state=MessageStreamState if stream != "never" else None,
    )


#: Every Anthropic call AgentPulse records. ``messages.stream()`` returns a manager
#: (sync and async alike: ``AsyncMessages.stream`` is a plain ``def``).
SPECS: List[PatchSpec] = [
    spec
    for module in (_MESSAGES, _BETA_MESSAGES)
    for spec in (
        _spec(module, "Messages.create", is_async=False, stream="kwarg"),
        _spec(module, "AsyncMessages.create", is_async=True, stream="kwarg"),
        _spec(module, "Messages.stream", is_async=False, stream="manager"),
        _spec(module, "AsyncMessages.stream", is_async=False, stream="manager"),
        _spec(module, "Messages.parse", is_async=False, stream="never"),
        _spec(module, "AsyncMessages.parse", is_async=True, stream="never"),
    )
]
