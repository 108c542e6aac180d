"""OpenAI: chat completions, the Responses API, legacy completions, embeddings and decisions.

Specs and pure extractors only; ``agentpulse.patching.engine`` does the wrapping.
Nothing here imports ``openai``: the engine patches each resource module when
it is imported (the SDK imports its resources lazily, on first use).

Usage normalisation (see the wire contract): ``prompt_tokens`` already include
cached tokens, so ``input_tokens = prompt_tokens`` and
``cache_read_tokens = prompt_tokens_details.cached_tokens``;
``output_tokens = completion_tokens``, which include
``completion_tokens_details.reasoning_tokens``. The Responses API reports the
same split as ``input_tokens`` / ``input_tokens_details`` and ``output_tokens`` /
``output_tokens_details``. A chat stream carries usage only when the caller
asked for ``stream_options={"include_usage": True}``; we never add it to their
request, we estimate instead and set ``usage_estimated``.

Example::

    import agentpulse, openai
    agentpulse.init()
    openai.OpenAI().chat.completions.create(model="gpt-4o-mini", messages=[...])  # recorded
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from ..patching.spec import PatchSpec, StreamState
from ._common import (
    as_int,
    as_str,
    estimate_input,
    estimate_output,
    prompt_fingerprint,
    request_fields,
)

__all__ = ["LIBRARY", "SPECS"]

LIBRARY = "openai"
RAW_RESPONSE_HEADER = "X-Stainless-Raw-Response"

Args = Tuple[Any, ...]
Fields = Dict[str, Any]

_CHAT_MAX = ("max_completion_tokens", "max_tokens")
_RESP_MAX = ("max_output_tokens",)
_TOOL_ITEMS = frozenset(("function_call", "custom_tool_call", "mcp_call"))
_TERMINAL = frozenset(("response.completed", "response.incomplete", "response.failed"))
_OUTPUT_DELTAS = frozenset(
    (
        "response.refusal.delta",
        "response.function_call_arguments.delta",
        "response.custom_tool_call_input.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_text.delta",
        "response.audio.delta",
    )
)


# -- shared ----------------------------------------------------------------------


def instance_fields(instance: Any) -> Fields:
    """``provider="azure"`` when the resource belongs to an Azure OpenAI client."""
    client = getattr(instance, "_client", None)
    if client is not None and "Azure" in type(client).__name__:
        return {"provider": "azure"}
    return {}


def chat_usage(usage: Any) -> Fields:
    """Token fields from a ``CompletionUsage`` (chat and legacy completions)."""
    # Runs on every call: inline type tests rather than helper calls.
    out: Fields = {}
    if usage is None:
        return out
    v = getattr(usage, "prompt_tokens", None)
    if type(v) is int and v >= 0:
        out["input_tokens"] = v
    v = getattr(usage, "completion_tokens", None)
    if type(v) is int and v >= 0:
        out["output_tokens"] = v
    details = getattr(usage, "prompt_tokens_details", None)
    if details is not None:
        v = getattr(details, "cached_tokens", None)
        if type(v) is int and v >= 0:
            out["cache_read_tokens"] = v
        v = getattr(details, "cache_write_tokens", None)
        if type(v) is int and v >= 0:
            out["cache_write_tokens"] = v
    details = getattr(usage, "completion_tokens_details", None)
    if details is not None:
        v = getattr(details, "reasoning_tokens", None)
        if type(v) is int and v >= 0:
            out["reasoning_tokens"] = v
    return out


def responses_usage(usage: Any) -> Fields:
    """Token fields from a Responses API ``ResponseUsage``."""
    out: Fields = {}
    if usage is None:
        return out
    v = getattr(usage, "input_tokens", None)
    if type(v) is int and v >= 0:
        out["input_tokens"] = v
    v = getattr(usage, "output_tokens", None)
    if type(v) is int and v >= 0:
        out["output_tokens"] = v
    details = getattr(usage, "input_tokens_details", None)
    if details is not None:
        v = getattr(details, "cached_tokens", None)
        if type(v) is int and v >= 0:
            out["cache_read_tokens"] = v
        v = getattr(details, "cache_write_tokens", None)
        if type(v) is int and v >= 0:
            out["cache_write_tokens"] = v
    details = getattr(usage, "output_tokens_details", None)
    if details is not None:
        v = getattr(details, "reasoning_tokens", None)
        if type(v) is int and v >= 0:
            out["reasoning_tokens"] = v
    return out


def _snapshot(value: Any) -> Any:
    # A shallow copy: the caller appending to their list later must not change our estimate.
    return list(value) if isinstance(value, (list, tuple)) else value


# -- chat completions --------------------------------------------------------------


def chat_request(args: Args, kwargs: Dict[str, Any]) -> Fields:
    """Request fields of ``chat.completions.create`` / ``parse``."""
    return request_fields(kwargs, _CHAT_MAX)


def chat_input(args: Args, kwargs: Dict[str, Any]) -> Any:
    """The messages (captured only with ``capture_messages=True``)."""
    return kwargs.get("messages")


def chat_prompt_hash(args: Args, kwargs: Dict[str, Any]) -> Optional[str]:
    """Fingerprint of the last message, for the loop detector."""
    return prompt_fingerprint(kwargs.get("messages"))


def chat_response(result: Any) -> Fields:
    """Fields of a ``ChatCompletion`` (or ``ParsedChatCompletion``)."""
    out = chat_usage(getattr(result, "usage", None))
    model = getattr(result, "model", None)
    if type(model) is str:
        out["response_model"] = model
    choices = getattr(result, "choices", None)
    if type(choices) is list and choices:
        fr = getattr(choices[0], "finish_reason", None)
        if type(fr) is str:
            out["finish_reason"] = fr
        names: Optional[List[str]] = None
        for choice in choices:
            calls = getattr(getattr(choice, "message", None), "tool_calls", None)
            if calls:
                for call in calls:
                    name = getattr(getattr(call, "function", None), "name", None)
                    if type(name) is str:
                        if names is None:
                            names = []
                        names.append(name)
        if names:
            out["tool_calls"] = names
    return out


def chat_output(result: Any) -> Any:
    """The answer text (and tool calls) of the first choice."""
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


class ChatStreamState(StreamState):
    """Accumulates ``ChatCompletionChunk``s: text, tool calls, finish reason, usage if sent.

    Keeps strings and numbers only, never the chunks (see ``StreamState``).
    """

    def __init__(self, args: Args, kwargs: Dict[str, Any]) -> None:
        self.parts: List[str] = []
        self.tool_parts: List[str] = []
        self.tools: List[str] = []
        self.response_model: Any = None
        self.usage: Optional[Fields] = None
        self.finish_reason: Optional[str] = None
        self.model = as_str(kwargs.get("model"))
        self.messages = _snapshot(kwargs.get("messages"))

    def record(self, chunk: Any) -> bool:
        if self.response_model is None:
            self.response_model = getattr(chunk, "model", None)
        choices = chunk.choices
        if choices:
            c = choices[0]
            if c.finish_reason is not None:
                self.finish_reason = c.finish_reason
                self.done = True
            delta = c.delta
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
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            self.usage = chat_usage(usage)
        return False

    def result(self) -> Fields:
        out: Fields = {}
        model = as_str(self.response_model)
        if model is not None:
            out["response_model"] = model
        if self.usage is not None:
            out.update(self.usage)
        if "output_tokens" not in out:
            est_model = model or self.model
            inp = estimate_input(self.messages, est_model)
            if inp is not None:
                out["input_tokens"] = inp
            out["output_tokens"] = estimate_output(self.parts + self.tool_parts, est_model)
            out["usage_estimated"] = True
        if self.finish_reason is not None:
            out["finish_reason"] = self.finish_reason
        if self.tools:
            out["tool_calls"] = self.tools
        out["output"] = "".join(self.parts)
        return out


# -- responses API -----------------------------------------------------------------


def responses_request(args: Args, kwargs: Dict[str, Any]) -> Fields:
    """Request fields of ``responses.create`` / ``parse``."""
    return request_fields(kwargs, _RESP_MAX)


def responses_input(args: Args, kwargs: Dict[str, Any]) -> Any:
    """``input``, with ``instructions`` when given."""
    instructions = kwargs.get("instructions")
    if type(instructions) is str:
        return {"instructions": instructions, "input": kwargs.get("input")}
    return kwargs.get("input")


def responses_prompt_hash(args: Args, kwargs: Dict[str, Any]) -> Optional[str]:
    """Fingerprint of the last input item."""
    return prompt_fingerprint(kwargs.get("input"))


def responses_response(result: Any) -> Fields:
    """Fields of a Responses API ``Response``."""
    out = responses_usage(getattr(result, "usage", None))
    model = as_str(getattr(result, "model", None))
    if model is not None:
        out["response_model"] = model
    status = as_str(getattr(result, "status", None))
    if status == "incomplete":
        reason = as_str(getattr(getattr(result, "incomplete_details", None), "reason", None))
        out["finish_reason"] = reason or status
    elif status == "failed":
        out["finish_reason"] = status
        out["status"] = "error"
        err = getattr(result, "error", None)
        out["error"] = {
            "type": as_str(getattr(err, "code", None)) or "response_failed",
            "message": as_str(getattr(err, "message", None)) or "",
        }
    elif status is not None:
        out["finish_reason"] = status
    items = getattr(result, "output", None)
    if isinstance(items, list):
        names = [
            n
            for n in (
                as_str(getattr(i, "name", None)) for i in items if getattr(i, "type", None) in _TOOL_ITEMS
            )
            if n is not None
        ]
        if names:
            out["tool_calls"] = names
    return out


def responses_output(result: Any) -> Any:
    """``Response.output_text``."""
    return getattr(result, "output_text", None)


class ResponsesStreamState(StreamState):
    """Accumulates Responses API stream events; usage comes in the terminal event."""

    def __init__(self, args: Args, kwargs: Dict[str, Any]) -> None:
        self.parts: List[str] = []
        self.other = 0
        self.final: Optional[Fields] = None
        self.response_model: Optional[str] = None
        self.model = as_str(kwargs.get("model"))
        self.input = _snapshot(kwargs.get("input"))
        self.instructions = kwargs.get("instructions")

    def record(self, chunk: Any) -> bool:
        t = chunk.type
        if t == "response.output_text.delta":
            self.parts.append(chunk.delta)
            return True
        if t in _OUTPUT_DELTAS:
            self.other += 1
            return True
        if t in _TERMINAL:
            # Read now: the final response is the largest object of the stream, not one to hold.
            self.final = responses_response(chunk.response)
            self.done = True
        elif t == "response.created":
            self.response_model = as_str(getattr(chunk.response, "model", None))
        return False

    def result(self) -> Fields:
        if self.final is not None:
            out = dict(self.final)
        else:
            out = {}
            if self.response_model is not None:
                out["response_model"] = self.response_model
        if "output_tokens" not in out:
            model = self.response_model or self.model
            inp = estimate_input(self.input, model)
            if type(self.instructions) is str:
                inp = (inp or 0) + (estimate_input(self.instructions, model) or 0)
            if inp is not None:
                out["input_tokens"] = inp
            out["output_tokens"] = estimate_output(self.parts, model) + self.other
            out["usage_estimated"] = True
        out["output"] = "".join(self.parts)
        return out


# -- legacy completions ------------------------------------------------------------


def completion_request(args: Args, kwargs: Dict[str, Any]) -> Fields:
    """Request fields of ``completions.create``."""
    return request_fields(kwargs, ("max_tokens",))


def completion_input(args: Args, kwargs: Dict[str, Any]) -> Any:
    """The prompt."""
    return kwargs.get("prompt")


def completion_prompt_hash(args: Args, kwargs: Dict[str, Any]) -> Optional[str]:
    """Fingerprint of the prompt."""
    prompt = kwargs.get("prompt")
    return prompt_fingerprint(prompt if isinstance(prompt, str) else repr(prompt))


def completion_response(result: Any) -> Fields:
    """Fields of a legacy ``Completion``."""
    out = chat_usage(getattr(result, "usage", None))
    model = as_str(getattr(result, "model", None))
    if model is not None:
        out["response_model"] = model
    choices = getattr(result, "choices", None)
    if isinstance(choices, list) and choices:
        fr = as_str(getattr(choices[0], "finish_reason", None))
        if fr is not None:
            out["finish_reason"] = fr
    return out


def completion_output(result: Any) -> Any:
    """The first choice's text."""
    choices = getattr(result, "choices", None)
    if isinstance(choices, list) and choices:
        return getattr(choices[0], "text", None)
    return None


def _prompt_text(prompt: Any) -> Any:
    if isinstance(prompt, (list, tuple)) and all(isinstance(p, str) for p in prompt):
        return "\n".join(prompt)
    return prompt if isinstance(prompt, str) else None


class CompletionStreamState(StreamState):
    """Accumulates legacy ``Completion`` chunks."""

    def __init__(self, args: Args, kwargs: Dict[str, Any]) -> None:
        self.parts: List[str] = []
        self.response_model: Any = None
        self.usage: Optional[Fields] = None
        self.finish_reason: Optional[str] = None
        self.model = as_str(kwargs.get("model"))
        self.prompt = _prompt_text(kwargs.get("prompt"))

    def record(self, chunk: Any) -> bool:
        if self.response_model is None:
            self.response_model = getattr(chunk, "model", None)
        choices = chunk.choices
        if choices:
            c = choices[0]
            if c.finish_reason is not None:
                self.finish_reason = c.finish_reason
                self.done = True
            if c.text:
                self.parts.append(c.text)
                return True
            return False
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            self.usage = chat_usage(usage)
        return False

    def result(self) -> Fields:
        out: Fields = {}
        model = as_str(self.response_model)
        if model is not None:
            out["response_model"] = model
        if self.usage is not None:
            out.update(self.usage)
        if "output_tokens" not in out:
            inp = estimate_input(self.prompt, model or self.model)
            if inp is not None:
                out["input_tokens"] = inp
            out["output_tokens"] = estimate_output(self.parts, model or self.model)
            out["usage_estimated"] = True
        if self.finish_reason is not None:
            out["finish_reason"] = self.finish_reason
        out["output"] = "".join(self.parts)
        return out


# -- embeddings --------------------------------------------------------------------


def embedding_request(args: Args, kwargs: Dict[str, Any]) -> Fields:
    """Request fields of ``embeddings.create``."""
    model = kwargs.get("model")
    out: Fields = {"model": model} if type(model) is str else {}
    inp = kwargs.get("input")
    if isinstance(inp, list):
        out["inputs_count"] = len(inp)
    return out


def embedding_input(args: Args, kwargs: Dict[str, Any]) -> Any:
    """The texts embedded."""
    return kwargs.get("input")


def embedding_response(result: Any) -> Fields:
    """Fields of a ``CreateEmbeddingResponse``: input tokens; an embedding has no output tokens."""
    out: Fields = {}
    usage = getattr(result, "usage", None)
    pt = as_int(getattr(usage, "prompt_tokens", None)) if usage is not None else None
    if pt is not None:
        out["input_tokens"] = pt
        out["output_tokens"] = 0
    model = as_str(getattr(result, "model", None))
    if model is not None:
        out["response_model"] = model
    return out


# -- decisions (classification / scoring questions) ----------------------------------


def decision_request(args: Args, kwargs: Dict[str, Any]) -> Fields:
    """Request fields of ``decisions.create``."""
    model = kwargs.get("model")
    out: Fields = {"model": model} if type(model) is str else {}
    questions = kwargs.get("questions")
    if isinstance(questions, (list, tuple)):
        out["questions_count"] = len(questions)
    return out


def decision_input(args: Args, kwargs: Dict[str, Any]) -> Any:
    """The input and the questions asked about it."""
    return {"input": kwargs.get("input"), "questions": kwargs.get("questions")}


def decision_response(result: Any) -> Fields:
    """Fields of a ``Decision`` (its usage has the Responses API's shape)."""
    out = responses_usage(getattr(result, "usage", None))
    model = as_str(getattr(result, "model", None))
    if model is not None:
        out["response_model"] = model
    return out


def decision_output(result: Any) -> Any:
    """The answers."""
    return getattr(result, "answers", None)


# -- the specs ---------------------------------------------------------------------

_CHAT = "openai.resources.chat.completions.completions"
_RESPONSES = "openai.resources.responses.responses"
_BETA_RESPONSES = "openai.resources.beta.responses.responses"
_COMPLETIONS = "openai.resources.completions"
_EMBEDDINGS = "openai.resources.embeddings"
_DECISIONS = "openai.resources.decisions"


def _spec(module: str, target: str, operation: str, min_version: str = "1.0", **kw: Any) -> PatchSpec:
    return PatchSpec(
        library=LIBRARY,
        module=module,
        target=target,
        provider="openai",
        operation=operation,
        raw_response_header=RAW_RESPONSE_HEADER,
        min_version=min_version,
        extract_instance=instance_fields,
        **kw,
    )


def _chat(target: str, *, is_async: bool, stream: bool) -> PatchSpec:
    return _spec(
        _CHAT,
        target,
        "chat",
        is_async=is_async,
        stream="kwarg" if stream else "never",
        extract_request=chat_request,
        extract_response=chat_response,
        extract_input=chat_input,
        extract_output=chat_output,
        prompt_hash=chat_prompt_hash,
        stream_state=ChatStreamState if stream else None,
    )


def _responses(module: str, target: str, *, is_async: bool, stream: bool) -> PatchSpec:
    # The Responses API arrived in openai 1.66.
    return _spec(
        module,
        target,
        "responses",
        min_version="1.66",
        is_async=is_async,
        stream="kwarg" if stream else "never",
        extract_request=responses_request,
        extract_response=responses_response,
        extract_input=responses_input,
        extract_output=responses_output,
        prompt_hash=responses_prompt_hash,
        stream_state=ResponsesStreamState if stream else None,
    )


#: Every OpenAI call AgentPulse records. ``chat.completions.stream()`` and
#: ``responses.stream()`` call ``create(stream=True)`` and are covered by it.
SPECS: List[PatchSpec] = [
    _chat("Completions.create", is_async=False, stream=True),
    _chat("AsyncCompletions.create", is_async=True, stream=True),
    _chat("Completions.parse", is_async=False, stream=False),
    _chat("AsyncCompletions.parse", is_async=True, stream=False),
    _responses(_RESPONSES, "Responses.create", is_async=False, stream=True),
    _responses(_RESPONSES, "AsyncResponses.create", is_async=True, stream=True),
    _responses(_RESPONSES, "Responses.parse", is_async=False, stream=False),
    _responses(_RESPONSES, "AsyncResponses.parse", is_async=True, stream=False),
    _responses(_BETA_RESPONSES, "Responses.create", is_async=False, stream=True),
    _responses(_BETA_RESPONSES, "AsyncResponses.create", is_async=True, stream=True),
    *(
        _spec(
            _COMPLETIONS,
            target,
            "completion",
            is_async=is_async,
            stream="kwarg",
            extract_request=completion_request,
            extract_response=completion_response,
            extract_input=completion_input,
            extract_output=completion_output,
            prompt_hash=completion_prompt_hash,
            stream_state=CompletionStreamState,
        )
        for target, is_async in (("Completions.create", False), ("AsyncCompletions.create", True))
    ),
    *(
        _spec(
            _EMBEDDINGS,
            target,
            "embedding",
            is_async=is_async,
            extract_request=embedding_request,
            extract_response=embedding_response,
            extract_input=embedding_input,
        )
        for target, is_async in (("Embeddings.create", False), ("AsyncEmbeddings.create", True))
    ),
    *(
        _spec(
            _DECISIONS,
            target,
            "decision",
            is_async=is_async,
            extract_request=decision_request,
            extract_response=decision_response,
            extract_input=decision_input,
            extract_output=decision_output,
            prompt_hash=responses_prompt_hash,
        )
        for target, is_async in (("Decisions.create", False), ("AsyncDecisions.create", True))
    ),
]
