"""Cohere: v2 chat (``ClientV2.chat`` / ``chat_stream``, sync and async) and v1 chat.

Specs and pure extractors only; ``agentpulse.patching.engine`` does the wrapping.
Nothing here imports ``cohere``. What a call records: ``docs/integrations/cohere.md``.

Usage normalisation (see the wire contract): Cohere reports two counts,
``billed_units`` (what is billed: the caller's tokens) and ``tokens`` (what the
model processed, including the prompt template Cohere adds). The event carries
the billed counts, and ``tokens`` only when a response has no ``billed_units``.
``cached_tokens`` (prompt tokens served from Cohere's cache) becomes
``cache_read_tokens``. Cohere sends the counts as floats (``12.0``).

``Client.__init__`` (and so ``ClientV2``) stores ``chat`` and ``chat_stream`` on
each instance, bound when the client is built: a client built before
``agentpulse.init()`` keeps the unpatched methods. ``V2Client.chat`` calls the
raw client's ``chat``, which is looked up at call time, so it is patched too:
non-streamed calls of such clients (and ``with_raw_response.chat``) are
recorded; nested under a patched ``V2Client.chat`` it stands down (one call,
one event).

Example::

    import agentpulse, cohere
    agentpulse.init()
    co = cohere.ClientV2()
    co.chat(model="command-a-03-2025", messages=[{"role": "user", "content": "hi"}])  # recorded
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from ..patching.spec import PatchSpec, StreamState
from ._common import as_str, estimate_input, estimate_output, prompt_fingerprint, request_fields

__all__ = ["LIBRARY", "SPECS"]

LIBRARY = "cohere"

Args = Tuple[Any, ...]
Fields = Dict[str, Any]


def count(value: Any) -> Optional[int]:
    """A token count Cohere sent (an int, or a whole float such as ``12.0``); None otherwise."""
    t = type(value)
    if t is int:
        return value if value >= 0 else None  # type: ignore[no-any-return]
    if t is float and value >= 0 and value.is_integer():
        return int(value)
    return None


def usage_fields(usage: Any) -> Fields:
    """Normalised tokens of a v2 ``usage`` or a v1 ``meta``: billed units first."""
    out: Fields = {}
    if usage is None:
        return out
    billed = getattr(usage, "billed_units", None)
    processed = getattr(usage, "tokens", None)
    inp = count(getattr(billed, "input_tokens", None))
    if inp is None:
        inp = count(getattr(processed, "input_tokens", None))
    outp = count(getattr(billed, "output_tokens", None))
    if outp is None:
        outp = count(getattr(processed, "output_tokens", None))
    if inp is not None:
        out["input_tokens"] = inp
        cached = count(getattr(usage, "cached_tokens", None))
        if cached is not None:
            out["cache_read_tokens"] = min(cached, inp)
    if outp is not None:
        out["output_tokens"] = outp
    return out


# -- requests --------------------------------------------------------------------


def chat_request(args: Args, kwargs: Dict[str, Any]) -> Fields:
    """``model``, ``temperature``, ``max_tokens`` and ``tools_count`` of a chat call."""
    return request_fields(kwargs, ("max_tokens",))


def v2_input(args: Args, kwargs: Dict[str, Any]) -> Any:
    """The v2 ``messages``."""
    return kwargs.get("messages")


def v2_prompt_hash(args: Args, kwargs: Dict[str, Any]) -> Optional[str]:
    """Fingerprint of the last message, for the loop detector."""
    return prompt_fingerprint(kwargs.get("messages"))


def v1_input(args: Args, kwargs: Dict[str, Any]) -> Any:
    """The v1 ``message``, with ``preamble`` and ``chat_history`` when given."""
    extra = {k: kwargs[k] for k in ("preamble", "chat_history") if isinstance(kwargs.get(k), (str, list))}
    message = kwargs.get("message")
    return {"message": message, **extra} if extra else message


def v1_prompt_hash(args: Args, kwargs: Dict[str, Any]) -> Optional[str]:
    """Fingerprint of the v1 ``message``."""
    return prompt_fingerprint(kwargs.get("message"))


def _v1_prompt_text(kwargs: Dict[str, Any]) -> List[Any]:
    texts: List[Any] = [kwargs.get("preamble"), kwargs.get("message")]
    for turn in kwargs.get("chat_history") or ():
        texts.append(getattr(turn, "message", None) if not isinstance(turn, dict) else turn.get("message"))
    return [{"role": "user", "content": t} for t in texts if isinstance(t, str)]


# -- v2 --------------------------------------------------------------------------


def _v2_body(result: Any) -> Any:
    # RawV2Client.chat returns an HttpResponse whose .data is the V2ChatResponse.
    if hasattr(result, "message"):
        return result
    data = getattr(result, "data", None)
    return data if data is not None else result


def v2_response(result: Any) -> Fields:
    """Tokens, finish reason and tool calls of a ``V2ChatResponse``."""
    body = _v2_body(result)
    out = usage_fields(getattr(body, "usage", None))
    finish = as_str(getattr(body, "finish_reason", None))
    if finish is not None:
        out["finish_reason"] = finish
    calls = getattr(getattr(body, "message", None), "tool_calls", None)
    if isinstance(calls, list):
        names = [n for n in (as_str(getattr(getattr(c, "function", None), "name", None)) for c in calls) if n]
        if names:
            out["tool_calls"] = names
    return out


def _texts(content: Any) -> str:
    if not isinstance(content, list):
        return ""
    return "".join(t for t in (getattr(item, "text", None) for item in content) if type(t) is str)


def v2_output(result: Any) -> Any:
    """The answer's text; for a tool call, its plan and the calls."""
    message = getattr(_v2_body(result), "message", None)
    text = _texts(getattr(message, "content", None))
    calls = getattr(message, "tool_calls", None)
    if isinstance(calls, list) and calls:
        return {
            "content": text or getattr(message, "tool_plan", None),
            "tool_calls": [
                {
                    "name": getattr(getattr(c, "function", None), "name", None),
                    "arguments": getattr(getattr(c, "function", None), "arguments", None),
                }
                for c in calls
            ],
        }
    return text


class V2StreamState(StreamState):
    """Reads ``chat_stream`` events: text and tool-call deltas, then ``message-end`` with the usage."""

    def __init__(self, args: Args, kwargs: Dict[str, Any]) -> None:
        self.parts: List[str] = []
        self.other: List[str] = []
        self.tools: List[str] = []
        self.end: Any = None
        self.model = as_str(kwargs.get("model"))
        messages = kwargs.get("messages")
        self.messages = list(messages) if isinstance(messages, (list, tuple)) else messages

    def record(self, chunk: Any) -> bool:
        kind = chunk.type
        if kind == "content-delta":
            content = chunk.delta.message.content
            text = content.text
            if text:
                self.parts.append(text)
                return True
            thinking = content.thinking
            if thinking:
                self.other.append(thinking)
                return True
            return False
        if kind == "tool-call-start":
            self.tools.append(chunk.delta.message.tool_calls.function.name)
            return True
        if kind == "tool-call-delta" or kind == "tool-plan-delta":
            message = chunk.delta.message
            piece = message.tool_plan if kind == "tool-plan-delta" else message.tool_calls.function.arguments
            if piece:
                self.other.append(piece)
            return True
        if kind == "message-end":
            self.end = chunk.delta
            self.done = True
        return False

    def result(self) -> Fields:
        out: Fields = {}
        end = self.end
        if end is not None:
            out.update(usage_fields(getattr(end, "usage", None)))
            finish = as_str(getattr(end, "finish_reason", None))
            if finish is not None:
                out["finish_reason"] = finish
        if "output_tokens" not in out:
            inp = estimate_input(self.messages, self.model)
            if inp is not None:
                out["input_tokens"] = inp
            out["output_tokens"] = estimate_output(self.parts + self.other, self.model)
            out["usage_estimated"] = True
        if self.tools:
            out["tool_calls"] = [t for t in self.tools if type(t) is str]
        out["output"] = "".join(self.parts)
        return out


# -- v1 --------------------------------------------------------------------------


def v1_response(result: Any) -> Fields:
    """Tokens, finish reason and tool calls of a v1 ``NonStreamedChatResponse``."""
    out = usage_fields(getattr(result, "meta", None))
    finish = as_str(getattr(result, "finish_reason", None))
    if finish is not None:
        out["finish_reason"] = finish
    calls = getattr(result, "tool_calls", None)
    if isinstance(calls, list):
        names = [n for n in (as_str(getattr(c, "name", None)) for c in calls) if n]
        if names:
            out["tool_calls"] = names
    return out


def v1_output(result: Any) -> Any:
    """The answer's text."""
    return getattr(result, "text", None)


class V1StreamState(StreamState):
    """Reads v1 ``chat_stream`` events: ``text-generation``, then ``stream-end`` with the response."""

    def __init__(self, args: Args, kwargs: Dict[str, Any]) -> None:
        self.parts: List[str] = []
        self.response: Any = None
        self.finish: Optional[str] = None
        self.tool_events = 0
        self.model = as_str(kwargs.get("model"))
        self.prompt = _v1_prompt_text(kwargs)

    def record(self, chunk: Any) -> bool:
        kind = chunk.event_type
        if kind == "text-generation":
            text = chunk.text
            if text:
                self.parts.append(text)
                return True
            return False
        if kind == "tool-calls-generation" or kind == "tool-calls-chunk":
            self.tool_events += 1
            return True
        if kind == "stream-end":
            self.response = chunk.response
            self.finish = as_str(chunk.finish_reason)
            self.done = True
        return False

    def result(self) -> Fields:
        out: Fields = v1_response(self.response) if self.response is not None else {}
        if self.finish is not None:
            out["finish_reason"] = self.finish
        if "output_tokens" not in out:
            out["input_tokens"] = estimate_input(self.prompt, self.model) or 0
            out["output_tokens"] = estimate_output(self.parts, self.model) + self.tool_events
            out["usage_estimated"] = True
        out["output"] = "".join(self.parts)
        return out


# -- the specs ---------------------------------------------------------------------

_V2_MODULE = "cohere.v2.client"
_V2_RAW_MODULE = "cohere.v2.raw_client"
_V1_MODULE = "cohere.base_client"


def _spec(module: str, target: str, *, v2: bool, is_async: bool = False, stream: bool = False) -> PatchSpec:
    if v2:
        reads: Dict[str, Any] = {
            "extract_response": v2_response,
            "extract_input": v2_input,
            "extract_output": v2_output,
            "prompt_hash": v2_prompt_hash,
            "stream_state": V2StreamState if stream else None,
        }
    else:
        reads = {
            "extract_response": v1_response,
            "extract_input": v1_input,
            "extract_output": v1_output,
            "prompt_hash": v1_prompt_hash,
            "stream_state": V1StreamState if stream else None,
        }
    return PatchSpec(
        library=LIBRARY,
        module=module,
        target=target,
        provider="cohere",
        operation="chat",
        min_version="5.5",
        is_async=is_async,
        stream="always" if stream else "never",
        extract_request=chat_request,
        **reads,
    )


#: Every Cohere call AgentPulse records. ``chat_stream`` is a generator function (an async
#: generator function on the async clients, called without ``await``), so its wrapper is a sync
#: one that hands the generator to a stream proxy; the request is made on the first iteration.
SPECS: List[PatchSpec] = [
    _spec(_V2_MODULE, "V2Client.chat", v2=True),
    _spec(_V2_MODULE, "V2Client.chat_stream", v2=True, stream=True),
    _spec(_V2_MODULE, "AsyncV2Client.chat", v2=True, is_async=True),
    _spec(_V2_MODULE, "AsyncV2Client.chat_stream", v2=True, stream=True),
    _spec(_V2_RAW_MODULE, "RawV2Client.chat", v2=True),
    _spec(_V2_RAW_MODULE, "AsyncRawV2Client.chat", v2=True, is_async=True),
    _spec(_V1_MODULE, "BaseCohere.chat", v2=False),
    _spec(_V1_MODULE, "BaseCohere.chat_stream", v2=False, stream=True),
    _spec(_V1_MODULE, "AsyncBaseCohere.chat", v2=False, is_async=True),
    _spec(_V1_MODULE, "AsyncBaseCohere.chat_stream", v2=False, stream=True),
]
