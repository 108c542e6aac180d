"""LiteLLM: ``litellm.completion`` / ``acompletion`` (streams too) and ``embedding`` / ``aembedding``.

Specs and pure extractors only; ``agentpulse.patching.engine`` does the wrapping.
Nothing here imports ``litellm``. What a call records: ``docs/integrations/litellm.md``.

LiteLLM normalises every provider's usage to OpenAI's shape (``prompt_tokens``
include cache reads and writes, ``completion_tokens`` include reasoning), which
is the wire contract's meaning, so its fields are read as they are. The cost
LiteLLM computes itself (``_hidden_params["response_cost"]``, or ``usage.cost`` on
a stream's usage chunk) is recorded with ``cost_source: "provider"``. LiteLLM
reports ``0.0`` for models it cannot price, so a zero cost is treated as unknown
and AgentPulse's price table is used instead.

The patched names are the package's (``litellm.completion``): they are
dispatchers that captured ``litellm.main.completion`` when LiteLLM was imported,
so ``litellm.main``'s functions are not the ones to patch. LiteLLM calls provider
SDKs underneath (the ``openai`` client for OpenAI-compatible endpoints): while a
LiteLLM call is recorded, the engine's in-call flag makes the provider's own
integration stand down, so each call is recorded once.

Example::

    import agentpulse, litellm
    agentpulse.init()
    litellm.completion(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from ..patching.spec import PatchSpec, StreamState
from ._common import as_int, as_str, estimate_input, estimate_output, prompt_fingerprint, request_fields

__all__ = ["LIBRARY", "SPECS"]

LIBRARY = "litellm"

Args = Tuple[Any, ...]
Fields = Dict[str, Any]

_CHAT_MAX = ("max_tokens", "max_completion_tokens")


def _arg(args: Args, kwargs: Dict[str, Any], name: str, position: int) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[position] if len(args) > position else None


# -- requests --------------------------------------------------------------------


def completion_request(args: Args, kwargs: Dict[str, Any]) -> Fields:
    """``model``, ``temperature``, ``max_tokens`` and ``tools_count`` of a completion call."""
    out = request_fields(kwargs, _CHAT_MAX)
    if "model" not in out:
        model = as_str(_arg(args, kwargs, "model", 0))
        if model is not None:
            out["model"] = model
    return out


def completion_input(args: Args, kwargs: Dict[str, Any]) -> Any:
    """The ``messages``."""
    return _arg(args, kwargs, "messages", 1)


def completion_prompt_hash(args: Args, kwargs: Dict[str, Any]) -> Optional[str]:
    """Fingerprint of the last message, for the loop detector."""
    return prompt_fingerprint(_arg(args, kwargs, "messages", 1))


def embedding_request(args: Args, kwargs: Dict[str, Any]) -> Fields:
    """``model`` and the number of inputs of an embedding call."""
    out: Fields = {}
    model = as_str(_arg(args, kwargs, "model", 0))
    if model is not None:
        out["model"] = model
    inputs = _arg(args, kwargs, "input", 1)
    if isinstance(inputs, list):
        out["inputs_count"] = len(inputs)
    return out


def embedding_input(args: Args, kwargs: Dict[str, Any]) -> Any:
    """The texts embedded."""
    return _arg(args, kwargs, "input", 1)


# -- responses -------------------------------------------------------------------


def usage_fields(usage: Any) -> Fields:
    """The contract's token fields from a ``litellm.Usage`` (OpenAI-shaped, normalised by LiteLLM)."""
    out: Fields = {}
    if usage is None:
        return out
    inp = as_int(getattr(usage, "prompt_tokens", None))
    outp = as_int(getattr(usage, "completion_tokens", None))
    if inp is not None:
        out["input_tokens"] = inp
        details = getattr(usage, "prompt_tokens_details", None)
        read = as_int(getattr(details, "cached_tokens", None))
        write = as_int(getattr(details, "cache_write_tokens", None))
        if write is None:
            write = as_int(getattr(usage, "cache_creation_input_tokens", None))
        if read is not None:
            out["cache_read_tokens"] = min(read, inp)
        if write is not None:
            out["cache_write_tokens"] = min(write, inp)
    if outp is not None:
        out["output_tokens"] = outp
        reasoning = as_int(
            getattr(getattr(usage, "completion_tokens_details", None), "reasoning_tokens", None)
        )
        if reasoning is not None:
            out["reasoning_tokens"] = min(reasoning, outp)
    return out


def _hidden(obj: Any) -> Dict[str, Any]:
    hidden = getattr(obj, "_hidden_params", None)
    return hidden if isinstance(hidden, dict) else {}


def provider_cost(*candidates: Any) -> Fields:
    """``cost_usd`` / ``cost_source="provider"`` from the first positive finite cost LiteLLM reported."""
    for value in candidates:
        t = type(value)
        if (t is float or t is int) and 0 < value < float("inf"):
            return {"cost_usd": float(value), "cost_source": "provider"}
    return {}


def completion_response(result: Any) -> Fields:
    """Model, tokens, LiteLLM's cost, finish reason and tool calls of a ``ModelResponse``."""
    usage = getattr(result, "usage", None)
    out = usage_fields(usage)
    model = as_str(getattr(result, "model", None))
    if model is not None:
        out["response_model"] = model
    out.update(provider_cost(_hidden(result).get("response_cost"), getattr(usage, "cost", None)))
    choices = getattr(result, "choices", None)
    if isinstance(choices, list) and choices:
        first = choices[0]
        finish = as_str(getattr(first, "finish_reason", None))
        if finish is not None:
            out["finish_reason"] = finish
        calls = getattr(getattr(first, "message", None), "tool_calls", None)
        if isinstance(calls, list):
            names = [
                n for n in (as_str(getattr(getattr(c, "function", None), "name", None)) for c in calls) if n
            ]
            if names:
                out["tool_calls"] = names
    return out


def completion_output(result: Any) -> Any:
    """The first choice's text, or its tool calls."""
    choices = getattr(result, "choices", None)
    if not isinstance(choices, list) or not choices:
        return None
    message = getattr(choices[0], "message", None)
    content = getattr(message, "content", None)
    calls = getattr(message, "tool_calls", None)
    if isinstance(calls, list) and calls:
        return {
            "content": content,
            "tool_calls": [
                {
                    "name": getattr(getattr(c, "function", None), "name", None),
                    "arguments": getattr(getattr(c, "function", None), "arguments", None),
                }
                for c in calls
            ],
        }
    return content


def embedding_response(result: Any) -> Fields:
    """Model, input tokens and LiteLLM's cost of an ``EmbeddingResponse``; no output tokens."""
    out: Fields = {}
    usage = getattr(result, "usage", None)
    inp = as_int(getattr(usage, "prompt_tokens", None))
    if inp is not None:
        out["input_tokens"] = inp
        out["output_tokens"] = 0
    model = as_str(getattr(result, "model", None))
    if model is not None:
        out["response_model"] = model
    out.update(provider_cost(_hidden(result).get("response_cost")))
    return out


class CompletionStreamState(StreamState):
    """Reads the ``ModelResponseStream`` chunks of a ``CustomStreamWrapper``.

    A chunk carries ``usage`` only when the caller asked for it with
    ``stream_options={"include_usage": True}``. Otherwise, when the stream ends,
    LiteLLM counts the tokens itself and leaves them in the last chunk's
    ``_hidden_params["usage"]``: recorded, flagged ``usage_estimated``. A stream
    stopped early is estimated from what was seen.
    """

    def __init__(self, args: Args, kwargs: Dict[str, Any]) -> None:
        self.parts: List[str] = []
        self.tool_parts: List[str] = []
        self.tools: List[str] = []
        self.usage_chunk: Any = None
        self.last: Any = None
        self.response_model: Optional[str] = None
        self.finish: Optional[str] = None
        self.model = as_str(_arg(args, kwargs, "model", 0))
        messages = _arg(args, kwargs, "messages", 1)
        self.messages = list(messages) if isinstance(messages, (list, tuple)) else messages

    def record(self, chunk: Any) -> bool:
        self.last = chunk
        if self.response_model is None:
            self.response_model = chunk.model
        if getattr(chunk, "usage", None) is not None:
            self.usage_chunk = chunk
        choices = chunk.choices
        if not choices:
            return False
        choice = choices[0]
        if choice.finish_reason is not None:
            self.finish = choice.finish_reason
            self.done = True
        delta = choice.delta
        if delta is None:
            return False
        content = delta.content
        if content:
            self.parts.append(content)
            return True
        calls = delta.tool_calls
        if calls:
            for call in calls:
                fn = call.function
                if fn is not None:
                    if fn.name:
                        self.tools.append(fn.name)
                    if fn.arguments:
                        self.tool_parts.append(fn.arguments)
            return True
        return False

    def result(self) -> Fields:
        out: Fields = {}
        model = as_str(self.response_model)
        if model is not None:
            out["response_model"] = model
        if self.usage_chunk is not None:
            usage = self.usage_chunk.usage
            out.update(usage_fields(usage))
            out.update(
                provider_cost(_hidden(self.usage_chunk).get("response_cost"), getattr(usage, "cost", None))
            )
        elif self.done and self.last is not None:
            # LiteLLM's own count, written when the stream ended.
            usage = _hidden(self.last).get("usage")
            counted = usage_fields(usage)
            if "output_tokens" in counted:
                out.update(counted)
                out.update(provider_cost(getattr(usage, "cost", None)))
                out["usage_estimated"] = True
        if "output_tokens" not in out:
            est_model = model or self.model
            inp = estimate_input(self.messages, est_model)
            if inp is not None:
                out["input_tokens"] = inp
            out["output_tokens"] = estimate_output(self.parts + self.tool_parts, est_model)
            out["usage_estimated"] = True
        finish = as_str(self.finish)
        if finish is not None:
            out["finish_reason"] = finish
        tools = [t for t in self.tools if type(t) is str]
        if tools:
            out["tool_calls"] = tools
        out["output"] = "".join(self.parts)
        return out


# -- the specs ---------------------------------------------------------------------


def _spec(target: str, operation: str, *, is_async: bool) -> PatchSpec:
    if operation == "chat":
        reads: Dict[str, Any] = {
            "stream": "kwarg",
            "extract_request": completion_request,
            "extract_response": completion_response,
            "extract_input": completion_input,
            "extract_output": completion_output,
            "prompt_hash": completion_prompt_hash,
            "stream_state": CompletionStreamState,
        }
    else:
        reads = {
            "extract_request": embedding_request,
            "extract_response": embedding_response,
            "extract_input": embedding_input,
        }
    return PatchSpec(
        library=LIBRARY,
        module="litellm",
        target=target,
        provider="litellm",
        operation=operation,
        min_version="1.40",
        is_async=is_async,
        **reads,
    )


#: Every LiteLLM call AgentPulse records. ``litellm.Router`` calls these package attributes,
#: so its calls are covered too; ``from litellm import completion`` done before ``init()`` is not.
SPECS: List[PatchSpec] = [
    _spec("completion", "chat", is_async=False),
    _spec("acompletion", "chat", is_async=True),
    _spec("embedding", "embedding", is_async=False),
    _spec("aembedding", "embedding", is_async=True),
]
