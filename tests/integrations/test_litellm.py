"""The LiteLLM integration: the real ``litellm`` against a fake OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import gc
import os
from typing import Any, Dict, Iterator, List

import pytest
from fake_servers import FakeProviders, serve

# LiteLLM reads this at import: use the bundled price map, never fetch one.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

import litellm
import openai

from agentpulse.integrations import litellm as litellm_integration
from agentpulse.patching import unpatch

# LiteLLM silences these warnings of its own dependencies at import; pytest's filterwarnings=error
# would turn them back on.
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*`ReadOnly` qualifier"),
    pytest.mark.filterwarnings("ignore:.*conflict with protected namespace"),
    pytest.mark.filterwarnings("ignore:.*Accessing the.*attribute on the instance is deprecated"),
    pytest.mark.filterwarnings("ignore:Pydantic serializer warnings"),
]

MODEL = "openai/gpt-4o-mini"
SERVED = "gpt-4o-mini-2024-07-18"
MESSAGES = [{"role": "user", "content": "Say hello"}]


@pytest.fixture(autouse=True)
def _quiet_litellm(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("callbacks", "success_callback", "failure_callback", "_async_success_callback"):
        if isinstance(getattr(litellm, name, None), list):
            monkeypatch.setattr(litellm, name, [])
    monkeypatch.setattr(litellm, "num_retries", None, raising=False)


@pytest.fixture
def loop() -> Iterator[None]:
    """LiteLLM's sync path calls ``asyncio.get_event_loop()``, which would create a loop nobody closes."""
    new = asyncio.new_event_loop()
    asyncio.set_event_loop(new)
    yield
    asyncio.set_event_loop(None)
    new.close()


@pytest.fixture
def server() -> Iterator[FakeProviders]:
    with serve(openai_response_model=SERVED) as s:
        yield s


def options(server: FakeProviders) -> Dict[str, Any]:
    return {"api_base": server.url + "/v1", "api_key": "sk-test"}


def only_call(ap: Any) -> Dict[str, Any]:
    calls = ap.events("llm_call")
    assert len(calls) == 1, calls
    data: Dict[str, Any] = calls[0]["data"]
    return data


def test_completion(ap: Any, server: FakeProviders, loop: None) -> None:
    result = litellm.completion(
        model=MODEL, messages=MESSAGES, temperature=0.1, max_tokens=64, **options(server)
    )
    assert type(result) is litellm.ModelResponse
    assert result.choices[0].message.content == server.text
    data = only_call(ap)
    assert data["provider"] == "litellm"
    assert data["model"] == MODEL
    assert data["response_model"] == SERVED
    assert (data["input_tokens"], data["output_tokens"]) == (21, 9)
    assert (data["cache_read_tokens"], data["reasoning_tokens"]) == (0, 0)
    assert data["finish_reason"] == "stop"
    assert data["temperature"] == 0.1
    assert data["max_tokens"] == 64
    assert data["status"] == "success"
    assert data["streaming"] is False
    # The caller's arguments reach the provider untouched: nothing injected.
    assert "stream_options" not in server.requests[-1].body


def test_provider_cost_is_recorded(ap: Any, server: FakeProviders, loop: None) -> None:
    result = litellm.completion(model=MODEL, messages=MESSAGES, **options(server))
    cost = result._hidden_params["response_cost"]
    assert cost > 0
    data = only_call(ap)
    assert data["cost_usd"] == pytest.approx(cost)
    assert data["cost_source"] == "provider"


def test_cached_and_reasoning_tokens(ap: Any, server: FakeProviders, loop: None) -> None:
    server.openai_usage = {
        "prompt_tokens": 2000,
        "completion_tokens": 300,
        "total_tokens": 2300,
        "prompt_tokens_details": {"cached_tokens": 1536, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 256, "audio_tokens": 0},
    }
    litellm.completion(model=MODEL, messages=MESSAGES, **options(server))
    data = only_call(ap)
    assert (data["input_tokens"], data["cache_read_tokens"]) == (2000, 1536)
    assert (data["output_tokens"], data["reasoning_tokens"]) == (300, 256)


def test_tool_calls(ap: Any, server: FakeProviders, loop: None) -> None:
    server.tool_calls = [("get_weather", '{"city": "Paris"}')]
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    litellm.completion(model=MODEL, messages=MESSAGES, tools=tools, **options(server))
    data = only_call(ap)
    assert data["tool_calls"] == ["get_weather"]
    assert data["tools_count"] == 1
    assert data["finish_reason"] == "tool_calls"


def test_stream_with_usage(ap: Any, server: FakeProviders, loop: None) -> None:
    stream = litellm.completion(
        model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}, **options(server)
    )
    assert isinstance(stream, litellm.CustomStreamWrapper)
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == server.text
    data = only_call(ap)
    assert data["streaming"] is True
    assert data["status"] == "success"
    assert (data["input_tokens"], data["output_tokens"]) == (21, 9)
    assert data["usage_estimated"] is False
    assert data["cost_source"] == "provider"
    assert data["finish_reason"] == "stop"
    assert data["time_to_first_token_ms"] is not None


def test_stream_without_usage_is_estimated(ap: Any, server: FakeProviders, loop: None) -> None:
    stream = litellm.completion(model=MODEL, messages=MESSAGES, stream=True, **options(server))
    for _ in stream:
        pass
    # Never asked the provider for usage on the caller's behalf.
    assert "stream_options" not in server.requests[-1].body
    data = only_call(ap)
    assert data["status"] == "success"
    assert data["usage_estimated"] is True
    assert data["output_tokens"] > 0
    assert data["input_tokens"] > 0


def test_stream_break_early_is_cancelled(ap: Any, server: FakeProviders, loop: None) -> None:
    stream = litellm.completion(model=MODEL, messages=MESSAGES, stream=True, **options(server))
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    stream.close()
    data = only_call(ap)
    assert data["status"] == "cancelled"
    assert data["time_to_first_token_ms"] is not None


def test_abandoned_stream_is_reported_once(ap: Any, server: FakeProviders, loop: None) -> None:
    stream = litellm.completion(model=MODEL, messages=MESSAGES, stream=True, **options(server))
    next(stream)
    del stream
    gc.collect()
    assert only_call(ap)["status"] == "cancelled"


def test_embedding(ap: Any, server: FakeProviders, loop: None) -> None:
    result = litellm.embedding(model="openai/text-embedding-3-small", input=["a", "b"], **options(server))
    assert type(result) is litellm.EmbeddingResponse
    data = only_call(ap)
    assert data["operation"] == "embedding"
    assert data["input_tokens"] == 8
    assert data["output_tokens"] == 0
    assert data["status"] == "success"


def test_recorded_once_through_the_openai_sdk(ap: Any, server: FakeProviders, loop: None) -> None:
    # With encoding_format LiteLLM calls openai's Embeddings.create, which the OpenAI integration
    # patches too; chat goes through the same openai client.
    litellm.embedding(
        model="openai/text-embedding-3-small", input=["a"], encoding_format="float", **options(server)
    )
    litellm.completion(model=MODEL, messages=MESSAGES, **options(server))
    calls = [e["data"] for e in ap.events("llm_call")]
    assert [(c["provider"], c["operation"]) for c in calls] == [("litellm", "embedding"), ("litellm", "chat")]
    # The OpenAI integration is on: a direct openai call is recorded as openai.
    with openai.OpenAI(base_url=server.url + "/v1", api_key="sk-test") as client:
        client.embeddings.create(model="text-embedding-3-small", input=["a"])
    calls = [e["data"] for e in ap.events("llm_call")]
    assert [c["provider"] for c in calls] == ["litellm", "litellm", "openai"]


def test_embedding_goes_through_the_openai_sdk(capture: Any, server: FakeProviders, loop: None) -> None:
    # Proof that the test above exercises a nested call: with LiteLLM's patch off, the openai
    # integration sees the call LiteLLM makes.
    ap = capture(patch_litellm=False)
    litellm.embedding(
        model="openai/text-embedding-3-small", input=["a"], encoding_format="float", **options(server)
    )
    assert [c["data"]["provider"] for c in ap.events("llm_call")] == ["openai"]


def test_http_error_comes_back_untouched(ap: Any, server: FakeProviders, loop: None) -> None:
    server.fail_next(500, times=5)
    with pytest.raises(litellm.InternalServerError) as info:
        litellm.completion(model=MODEL, messages=MESSAGES, max_retries=0, **options(server))
    assert type(info.value) is litellm.InternalServerError
    data = only_call(ap)
    assert data["status"] == "error"
    assert data["error"]["type"] == "InternalServerError"
    assert data["error"]["status_code"] == 500


def test_client_error(ap: Any, server: FakeProviders, loop: None) -> None:
    server.fail_next(400)
    with pytest.raises(litellm.BadRequestError):
        litellm.completion(model=MODEL, messages=MESSAGES, max_retries=0, **options(server))
    assert only_call(ap)["error"]["status_code"] == 400


async def test_acompletion(ap: Any, server: FakeProviders) -> None:
    result = await litellm.acompletion(model=MODEL, messages=MESSAGES, **options(server))
    assert type(result) is litellm.ModelResponse
    data = only_call(ap)
    assert (data["input_tokens"], data["output_tokens"]) == (21, 9)
    assert data["cost_source"] == "provider"
    assert data["status"] == "success"


async def test_acompletion_stream(ap: Any, server: FakeProviders) -> None:
    stream = await litellm.acompletion(
        model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}, **options(server)
    )
    texts: List[str] = []
    async for chunk in stream:
        if chunk.choices:
            texts.append(chunk.choices[0].delta.content or "")
    assert "".join(texts) == server.text
    data = only_call(ap)
    assert data["streaming"] is True
    assert data["status"] == "success"
    assert (data["input_tokens"], data["output_tokens"]) == (21, 9)
    assert data["time_to_first_token_ms"] is not None


async def test_acompletion_error(ap: Any, server: FakeProviders) -> None:
    server.fail_next(429, times=5)
    with pytest.raises(litellm.RateLimitError):
        await litellm.acompletion(model=MODEL, messages=MESSAGES, max_retries=0, **options(server))
    assert only_call(ap)["status"] == "error"


async def test_aembedding(ap: Any, server: FakeProviders) -> None:
    result = await litellm.aembedding(model="openai/text-embedding-3-small", input="a", **options(server))
    assert type(result) is litellm.EmbeddingResponse
    assert only_call(ap)["input_tokens"] == 8


def test_unpatch_stops_recording(ap: Any, server: FakeProviders, loop: None) -> None:
    unpatch()
    litellm.completion(model=MODEL, messages=MESSAGES, **options(server))
    assert ap.events("llm_call") == []


@pytest.mark.internal_errors_expected
def test_extractor_that_raises_never_breaks_the_call(
    ap: Any, server: FakeProviders, loop: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(usage: Any) -> Any:
        raise RuntimeError("extractor bug")

    monkeypatch.setattr(litellm_integration, "usage_fields", boom)
    result = litellm.completion(model=MODEL, messages=MESSAGES, **options(server))
    chunks = list(
        litellm.completion(
            model=MODEL,
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
            **options(server),
        )
    )
    assert result.choices[0].message.content == server.text
    assert chunks
    calls = [e["data"] for e in ap.events("llm_call")]
    assert len(calls) == 2
    assert all(c["provider"] == "litellm" for c in calls)


@pytest.mark.internal_errors_expected
def test_unknown_response_shape(ap: Any, server: FakeProviders, loop: None) -> None:
    server.openai_usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7, "weird": {"x": [1]}}
    result = litellm.completion(model=MODEL, messages=MESSAGES, **options(server))
    assert result.choices[0].message.content == server.text
    data = only_call(ap)
    assert data["status"] == "success"
    assert (data["input_tokens"], data["output_tokens"]) == (5, 2)
