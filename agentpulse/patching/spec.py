"""``PatchSpec``: what to wrap, and how to read a call, as data.

An integration module (``agentpulse/integrations/<library>.py``) is a list of
``PatchSpec`` objects plus small pure functions that read the SDK's arguments,
results and stream chunks. It never imports ``wrapt`` and never imports the SDK
it describes: the engine (``agentpulse.patching.engine``) does all wrapping,
applies a spec when its module is imported, and calls the extractors.

Extractor contract (every function may raise; the engine logs the error once
and records the call anyway, the user's object is never touched):

* ``extract_request(args, kwargs) -> dict``: fields known before the call:
  ``model``, ``temperature``, ``max_tokens``, ``tools_count``. ``args`` excludes
  ``self``. Read the arguments, never change them.
* ``extract_instance(instance) -> dict``: fields read from ``self`` (a client's
  default model); request fields win over them. Rarely needed.
* ``extract_response(result) -> dict``: ``response_model``, the normalised token
  fields (``input_tokens`` = all billed input, cache reads and writes included;
  ``cache_read_tokens`` / ``cache_write_tokens`` its parts; ``output_tokens``
  including ``reasoning_tokens``), ``finish_reason``, ``tool_calls``. A
  library that reports its own cost adds ``cost_usd`` and ``cost_source="provider"``.
* ``extract_input(args, kwargs)`` / ``extract_output(result)``: the prompt and
  the answer, called only with ``capture_messages=True``.
* ``prompt_hash(args, kwargs) -> str | None``: a cheap fingerprint of the prompt
  for the loop detector.
* ``stream_state(args, kwargs) -> StreamState``: one accumulator per stream.

Where they run: every extractor and ``StreamState.record`` on the caller's
thread, as the call happens (the caller may change their arguments once the
call returns, and nothing holds the SDK's objects longer than the call does);
``StreamState.result()`` when the call is settled, usually on the reporter's
worker thread (see ``agentpulse.recorder``).

Example::

    from agentpulse.patching.spec import PatchSpec, StreamState

    def request(args, kwargs):
        return {"model": kwargs.get("model")}

    def response(result):
        return {"input_tokens": result.usage.prompt_tokens, "output_tokens": result.usage.completion_tokens}

    SPECS = [
        PatchSpec(library="acme", module="acme.client", target="Client.complete",
                  provider="acme", operation="chat",
                  extract_request=request, extract_response=response),
    ]
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, Literal, Optional, Tuple

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "PatchSpec",
    "StreamState",
    "parse_version",
    "version_in_range",
]

Fields = Dict[str, Any]
Args = Tuple[Any, ...]
Kwargs = Dict[str, Any]

_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_VERSION = re.compile(r"^\s*v?(\d+(?:\.\d+)*)")


def _no_fields(*_: Any) -> Fields:
    return {}


class StreamState:
    """Accumulates one stream's chunks; subclass it per API.

    The engine calls ``record(chunk)`` once per chunk on the consumer's thread,
    so keep it to a few attribute reads, and keep plain values (strings,
    numbers), not the chunk objects: holding the SDK's objects past the chunk
    keeps its memory from being reused and slows the caller's program down more
    than reading them does. It returns True when the chunk carried generated
    output (text, a tool call): the first such chunk sets the time to first
    token. ``result()`` is called once after the stream ended, when the call is
    settled (usually on the reporter's worker thread: token estimates cost the
    caller nothing), and returns the same fields as ``extract_response`` plus,
    when known, ``output`` (the text, kept only with ``capture_messages=True``)
    and ``usage_estimated``. Set ``done`` once the provider's final chunk was
    seen: a stream closed after it counts as a success, not a cancellation.

    Example::

        class TextState(StreamState):
            def __init__(self, args, kwargs):
                self.parts = []

            def record(self, chunk):
                if chunk.text:
                    self.parts.append(chunk.text)
                    return True
                return False

            def result(self):
                return {"output": "".join(self.parts)}
    """

    done: bool = False

    def record(self, chunk: Any) -> bool:
        """Take one chunk; True when it carried generated output."""
        return False

    def result(self) -> Fields:
        """The fields this stream produced, once it has ended."""
        return {}


class PatchSpec(BaseModel):
    """One method or function to instrument, and how to read its calls.

    ``module`` is the import name of the module that *defines* the target (the
    engine patches it when that module is imported, so ``init()`` may run before
    the library is imported); ``target`` is the dotted path inside it
    (``Completions.create``), a class attribute for methods so every instance is
    covered. ``library`` names the ``patch_<library>`` switch of the config.

    ``stream`` says how a streaming call is recognised:
    ``"never"``; ``"kwarg"`` (``stream_kwarg=True`` among the keyword arguments);
    ``"always"`` (the target always returns an iterator); ``"manager"`` (the
    target returns a context manager whose ``__enter__`` / ``__aenter__`` makes
    the request: the engine arms the manager's request attribute named by
    ``manager_request_attr``; a ``__name`` is resolved with Python's name mangling).

    ``raw_response_header``: the header in ``extra_headers`` by which the SDK
    marks ``with_raw_response`` (value ``"true"``) and ``with_streaming_response``
    (``"stream"``) calls; their results are response wrappers, read through
    ``.parse()`` without touching a body the caller has not read.

    ``distribution`` (defaults to ``library``) with ``min_version`` /
    ``max_version`` (inclusive / exclusive) bound the versions the spec was
    written for; outside them it is skipped with one debug line.

    Example::

        PatchSpec(library="openai", module="openai.resources.embeddings",
                  target="Embeddings.create", provider="openai", operation="embedding",
                  extract_request=request_fields, extract_response=embedding_fields)
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    library: str = Field(min_length=1, description="Integration name; `patch_<library>` switches it.")
    module: str = Field(description="Import name of the module defining the target.")
    target: str = Field(description="Dotted attribute path inside the module: `Class.method` or `function`.")
    provider: str = Field(min_length=1, description="Provider recorded on the event: openai, anthropic, ...")
    operation: str = Field(
        default="chat", min_length=1, description="chat, completion, responses, embedding, ..."
    )
    kind: Literal["llm_call"] = Field(
        default="llm_call", description="Event kind produced (embeddings included)."
    )
    is_async: bool = Field(default=False, description="The target is `async def`.")
    stream: Literal["never", "kwarg", "always", "manager"] = "never"
    stream_kwarg: str = "stream"
    manager_request_attr: Optional[str] = None
    raw_response_header: Optional[str] = None
    distribution: Optional[str] = Field(default=None, description="Distribution whose version is checked.")
    min_version: Optional[str] = None
    max_version: Optional[str] = None
    extract_request: Callable[[Args, Kwargs], Fields] = _no_fields
    extract_instance: Optional[Callable[[Any], Fields]] = None
    extract_response: Callable[[Any], Fields] = _no_fields
    extract_input: Optional[Callable[[Args, Kwargs], Any]] = None
    extract_output: Optional[Callable[[Any], Any]] = None
    prompt_hash: Optional[Callable[[Args, Kwargs], Optional[str]]] = None
    stream_state: Optional[Callable[[Args, Kwargs], StreamState]] = None

    @field_validator("module", "target")
    @classmethod
    def _dotted(cls, v: str) -> str:
        if not _DOTTED.match(v):
            raise ValueError("a dotted Python name such as `pkg.module` or `Class.method`")
        return v

    @field_validator("min_version", "max_version")
    @classmethod
    def _version(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and parse_version(v) is None:
            raise ValueError("a version such as `1.40` or `2.0.1`")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> PatchSpec:
        if self.stream == "manager" and not self.manager_request_attr:
            raise ValueError("stream='manager' needs manager_request_attr")
        if self.min_version and self.max_version:
            lo, hi = parse_version(self.min_version), parse_version(self.max_version)
            if lo is not None and hi is not None and lo >= hi:
                raise ValueError("min_version must be below max_version")
        return self

    @property
    def key(self) -> str:
        """``module:target``, unique per patched attribute."""
        return f"{self.module}:{self.target}"

    @property
    def dist_name(self) -> str:
        """The distribution whose installed version is checked."""
        return self.distribution or self.library

    def __repr__(self) -> str:
        return f"PatchSpec({self.key} provider={self.provider} operation={self.operation})"


def parse_version(text: str) -> Optional[Tuple[int, ...]]:
    """The leading numeric part of a version string as a tuple: ``"3.57.0rc1"`` -> ``(3, 57, 0)``."""
    m = _VERSION.match(text or "")
    if m is None:
        return None
    return tuple(int(p) for p in m.group(1).split("."))


def version_in_range(version: str, min_version: Optional[str], max_version: Optional[str]) -> bool:
    """``min_version <= version < max_version``; an unparsable version counts as in range."""
    v = parse_version(version)
    if v is None:
        return True
    if min_version is not None:
        lo = parse_version(min_version)
        if lo is not None and _pad(v, lo) < _pad(lo, v):
            return False
    if max_version is not None:
        hi = parse_version(max_version)
        if hi is not None and _pad(v, hi) >= _pad(hi, v):
            return False
    return True


def _pad(a: Tuple[int, ...], b: Tuple[int, ...]) -> Tuple[int, ...]:
    return a + (0,) * max(0, len(b) - len(a))
