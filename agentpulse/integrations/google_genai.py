"""Google GenAI: ``models.generate_content`` / ``generate_content_stream``, sync and ``aio``.

Specs and pure extractors only; ``agentpulse.patching.engine`` does the wrapping.
Nothing here imports ``google.genai``. What a call records:
``docs/integrations/google-genai.md``.

Usage normalisation (see the wire contract): Gemini's ``prompt_token_count``
already includes ``cached_content_token_count`` (kept as ``cache_read_tokens``);
``thoughts_token_count`` is *not* part of ``candidates_token_count``, so
``output_tokens = candidates + thoughts`` and ``reasoning_tokens = thoughts``;
``tool_use_prompt_token_count`` (tool results fed back to the model) is billed
input and is added to ``input_tokens``. Gemini leaves zero counts out of its
JSON, so once a response reports usage, a missing count is 0. In a stream each
chunk carries the request's running totals: the latest replaces the earlier.

``chats.Chat.send_message`` / ``send_message_stream`` call these methods and are
covered through them.

Example::

    import agentpulse
    from google import genai
    agentpulse.init()
    genai.Client().models.generate_content(model="gemini-2.5-flash", contents="hi")  # recorded
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from ..patching.spec import PatchSpec, StreamState
from ._common import as_float, as_int, as_str, estimate_input, estimate_output, field, prompt_fingerprint

__all__ = ["LIBRARY", "SPECS"]

LIBRARY = "google_genai"

Args = Tuple[Any, ...]
Fields = Dict[str, Any]


# -- requests --------------------------------------------------------------------


def generate_request(args: Args, kwargs: Dict[str, Any]) -> Fields:
    """``model``, and from ``config``: ``temperature``, ``max_output_tokens`` and the number of tools."""
    out: Fields = {}
    model = as_str(kwargs.get("model"))
    if model is not None:
        out["model"] = model
    config = kwargs.get("config")
    if config is None:
        return out
    temperature = as_float(field(config, "temperature"))
    if temperature is not None:
        out["temperature"] = temperature
    max_tokens = as_int(field(config, "max_output_tokens"))
    if max_tokens is not None:
        out["max_tokens"] = max_tokens
    tools = field(config, "tools")
    if isinstance(tools, (list, tuple)):
        out["tools_count"] = len(tools)
    return out


def generate_input(args: Args, kwargs: Dict[str, Any]) -> Any:
    """``contents``, with the config's ``system_instruction`` when there is one."""
    system = field(kwargs.get("config"), "system_instruction")
    contents = kwargs.get("contents")
    return {"system_instruction": system, "contents": contents} if system is not None else contents


def generate_prompt_hash(args: Args, kwargs: Dict[str, Any]) -> Optional[str]:
    """Fingerprint of the last content, for the loop detector."""
    contents = kwargs.get("contents")
    if isinstance(contents, (list, tuple)) and contents:
        last = contents[-1]
        return prompt_fingerprint(last if isinstance(last, str) else repr(last))
    return prompt_fingerprint(contents if isinstance(contents, str) else repr(contents))


def _prompt_texts(kwargs: Dict[str, Any]) -> List[str]:
    """The prompt's text, for an estimate when a stream ends without usage."""
    texts: List[str] = []

    def add(item: Any) -> None:
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, (list, tuple)):
            for sub in item:
                add(sub)
        else:
            parts = field(item, "parts")
            if isinstance(parts, (list, tuple)):
                for part in parts:
                    add(part if isinstance(part, str) else field(part, "text"))
            else:
                text = field(item, "text")
                if isinstance(text, str):
                    texts.append(text)

    add(field(kwargs.get("config"), "system_instruction"))
    add(kwargs.get("contents"))
    return texts


# -- responses -------------------------------------------------------------------


def usage_fields(usage: Any) -> Fields:
    """Normalised tokens of a ``usage_metadata``."""
    out: Fields = {}
    if usage is None:
        return out
    prompt = as_int(getattr(usage, "prompt_token_count", None))
    candidates = as_int(getattr(usage, "candidates_token_count", None))
    thoughts = as_int(getattr(usage, "thoughts_token_count", None))
    if prompt is None and candidates is None and thoughts is None:
        return out
    tool_prompt = as_int(getattr(usage, "tool_use_prompt_token_count", None)) or 0
    cached = as_int(getattr(usage, "cached_content_token_count", None)) or 0
    if prompt is not None:
        out["input_tokens"] = prompt + tool_prompt
        out["cache_read_tokens"] = min(cached, prompt)
    out["output_tokens"] = (candidates or 0) + (thoughts or 0)
    out["reasoning_tokens"] = thoughts or 0
    return out


def _finish_reason(candidate: Any) -> Optional[str]:
    reason = getattr(candidate, "finish_reason", None)
    if reason is None:
        return None
    return as_str(getattr(reason, "value", reason))


def _parts(candidate: Any) -> List[Any]:
    parts = getattr(getattr(candidate, "content", None), "parts", None)
    return parts if isinstance(parts, list) else []


def _first_candidate(result: Any) -> Any:
    candidates = getattr(result, "candidates", None)
    return candidates[0] if isinstance(candidates, list) and candidates else None


def generate_response(result: Any) -> Fields:
    """Model version, tokens, finish reason and function calls of a ``GenerateContentResponse``."""
    out = usage_fields(getattr(result, "usage_metadata", None))
    version = as_str(getattr(result, "model_version", None))
    if version is not None:
        out["response_model"] = version
    candidate = _first_candidate(result)
    if candidate is not None:
        finish = _finish_reason(candidate)
        if finish is not None:
            out["finish_reason"] = finish
        names = [
            n
            for n in (
                as_str(getattr(getattr(p, "function_call", None), "name", None)) for p in _parts(candidate)
            )
            if n
        ]
        if names:
            out["tool_calls"] = names
    return out


def generate_output(result: Any) -> Any:
    """The answer's text (thought summaries left out), or the function calls."""
    candidate = _first_candidate(result)
    if candidate is None:
        return None
    texts: List[str] = []
    calls: List[Dict[str, Any]] = []
    for part in _parts(candidate):
        text = getattr(part, "text", None)
        if type(text) is str and not getattr(part, "thought", None):
            texts.append(text)
        call = getattr(part, "function_call", None)
        if call is not None:
            calls.append({"name": getattr(call, "name", None), "arguments": getattr(call, "args", None)})
    if calls:
        return {"content": "".join(texts) or None, "tool_calls": calls}
    return "".join(texts)


class GenerateStreamState(StreamState):
    """Reads streamed ``GenerateContentResponse`` chunks; the latest usage wins."""

    def __init__(self, args: Args, kwargs: Dict[str, Any]) -> None:
        self.parts: List[str] = []
        self.thoughts: List[str] = []
        self.tools: List[str] = []
        self.usage: Any = None
        self.version: Optional[str] = None
        self.finish: Optional[str] = None
        self.model = as_str(kwargs.get("model"))
        self.prompt = _prompt_texts(kwargs)

    def record(self, chunk: Any) -> bool:
        usage = chunk.usage_metadata
        if usage is not None:
            self.usage = usage
        if self.version is None:
            self.version = chunk.model_version
        candidates = chunk.candidates
        if not candidates:
            return False
        candidate = candidates[0]
        produced = False
        content = candidate.content
        if content is not None and content.parts:
            for part in content.parts:
                text = part.text
                if text:
                    produced = True
                    (self.thoughts if part.thought else self.parts).append(text)
                elif part.function_call is not None:
                    produced = True
                    self.tools.append(part.function_call.name)
        if candidate.finish_reason is not None:
            self.finish = _finish_reason(candidate)
            self.done = True
        return produced

    def result(self) -> Fields:
        out = usage_fields(self.usage)
        version = as_str(self.version)
        if version is not None:
            out["response_model"] = version
        if self.finish is not None:
            out["finish_reason"] = self.finish
        if "input_tokens" not in out or not self.done:
            # Stopped early: the running totals, if any, do not cover what was generated.
            model = version or self.model
            out["input_tokens"] = out.get("input_tokens") or (estimate_input(self.prompt, model) or 0)
            out["output_tokens"] = max(
                out.get("output_tokens") or 0, estimate_output(self.parts + self.thoughts, model)
            )
            out["usage_estimated"] = True
        tools = [t for t in self.tools if type(t) is str]
        if tools:
            out["tool_calls"] = tools
        out["output"] = "".join(self.parts)
        return out


# -- the specs ---------------------------------------------------------------------

_MODULE = "google.genai.models"


def _spec(target: str, *, is_async: bool, stream: bool) -> PatchSpec:
    return PatchSpec(
        library=LIBRARY,
        distribution="google-genai",
        module=_MODULE,
        target=target,
        provider="google",
        operation="chat",
        min_version="1.0",
        is_async=is_async,
        stream="always" if stream else "never",
        extract_request=generate_request,
        extract_response=generate_response,
        extract_input=generate_input,
        extract_output=generate_output,
        prompt_hash=generate_prompt_hash,
        stream_state=GenerateStreamState if stream else None,
    )


#: Every Google GenAI call AgentPulse records. The sync stream is a generator function (the
#: request is made on the first iteration); the async one is ``async def`` returning an async
#: generator (``async for chunk in await ...``).
SPECS: List[PatchSpec] = [
    _spec("Models.generate_content", is_async=False, stream=False),
    _spec("Models.generate_content_stream", is_async=False, stream=True),
    _spec("AsyncModels.generate_content", is_async=True, stream=False),
    _spec("AsyncModels.generate_content_stream", is_async=True, stream=True),
]
