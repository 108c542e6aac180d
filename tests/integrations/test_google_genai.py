"""The Google GenAI integration, driving the real ``google-genai`` SDK against a fake Gemini on 127.0.0.1."""

from __future__ import annotations

import gc
from typing import Any, Dict, Iterator, List

import httpx2
import pytest
from fake_servers import FakeProviders, serve
from google import genai
from google.genai import errors, types

from agentpulse.integrations import google_genai as genai_integration
from agentpulse.patching import unpatch

MODEL = "gemini-2.5-flash"
# google-genai subclasses aiohttp.ClientSession for its async path; aiohttp warns about that
# itself, with or without AgentPulse.
AIOHTTP_SUBCLASS = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"
)

THINKING_AND_CACHE = {
    "promptTokenCount": 1200,
    "cachedContentTokenCount": 1000,
    "candidatesTokenCount": 40,
    "thoughtsTokenCount": 300,
    "totalTokenCount": 1540,
    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 1200}],
    "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 1000}],
}


@pytest.fixture
def server() -> Iterator[FakeProviders]:
    with serve() as s:
        yield s


@pytest.fixture
def client(server: FakeProviders) -> Iterator[genai.Client]:
    c = genai.Client(api_key="k", http_options={"base_url": server.url})
    yield c
    c.close()


def only_call(ap: Any) -> Dict[str, Any]:
    calls = ap.events("llm_call")
    assert len(calls) == 1, calls
    data: Dict[str, Any] = calls[0]["data"]
    return data


def test_generate_content(ap: Any, client: genai.Client, server: FakeProviders) -> None:
    config = types.GenerateContentConfig(temperature=0.2, max_output_tokens=128)
    result = client.models.generate_content(model=MODEL, contents="Say hello", config=config)
    assert type(result) is types.GenerateContentResponse
    assert result.text == server.text
    data = only_call(ap)
    assert data["provider"] == "google"
    assert data["model"] == MODEL
    assert data["response_model"] == MODEL
    assert (data["input_tokens"], data["output_tokens"], data["reasoning_tokens"]) == (11, 6, 0)
    assert data["finish_reason"] == "STOP"
    assert data["temperature"] == 0.2
    assert data["max_tokens"] == 128
    assert data["streaming"] is False
    assert data["status"] == "success"


def test_thinking_counts_as_output_and_cache_as_input(
    ap: Any, client: genai.Client, server: FakeProviders
) -> None:
    server.gemini_usage = dict(THINKING_AND_CACHE)
    client.models.generate_content(model=MODEL, contents="Think first", config={"temperature": 0.5})
    data = only_call(ap)
    # prompt_token_count already includes the cached content; thinking is reported apart.
    assert data["input_tokens"] == 1200
    assert data["cache_read_tokens"] == 1000
    assert data["output_tokens"] == 340
    assert data["reasoning_tokens"] == 300
    assert data["temperature"] == 0.5
    # Each part at its own rate: 200 uncached and 1000 cached input, 340 output (thinking included).
    assert data["cost_source"] == "table"
    assert data["cost_usd"] == pytest.approx((200 * 0.30 + 1000 * 0.03 + 340 * 2.50) / 1e6)


def test_tool_use_prompt_is_billed_input(ap: Any, client: genai.Client, server: FakeProviders) -> None:
    server.gemini_usage = {
        "promptTokenCount": 50,
        "toolUsePromptTokenCount": 25,
        "candidatesTokenCount": 5,
        "totalTokenCount": 80,
    }
    client.models.generate_content(model=MODEL, contents="Search")
    data = only_call(ap)
    assert (data["input_tokens"], data["output_tokens"], data["cache_read_tokens"]) == (75, 5, 0)


def test_function_calls_are_named(ap: Any, client: genai.Client, server: FakeProviders) -> None:
    server.tool_calls = [("get_weather", '{"city": "Paris"}')]
    tool = types.Tool(
        function_declarations=[types.FunctionDeclaration(name="get_weather", description="Weather in a city")]
    )
    config = types.GenerateContentConfig(
        tools=[tool], automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True)
    )
    result = client.models.generate_content(model=MODEL, contents="Weather?", config=config)
    assert result.function_calls is not None
    data = only_call(ap)
    assert data["tool_calls"] == ["get_weather"]
    assert data["tools_count"] == 1


def test_generate_content_stream(ap: Any, client: genai.Client, server: FakeProviders) -> None:
    server.gemini_usage = dict(THINKING_AND_CACHE)
    chunks = list(client.models.generate_content_stream(model=MODEL, contents="Say hello"))
    assert all(type(c) is types.GenerateContentResponse for c in chunks)
    assert "".join(c.text or "" for c in chunks) == server.text
    data = only_call(ap)
    assert data["streaming"] is True
    assert data["status"] == "success"
    # The last chunk's running totals, not a sum over chunks.
    assert (data["input_tokens"], data["cache_read_tokens"], data["output_tokens"]) == (1200, 1000, 340)
    assert data["reasoning_tokens"] == 300
    assert data["finish_reason"] == "STOP"
    assert data["time_to_first_token_ms"] is not None
    assert server.requests[-1].query == {"alt": ["sse"]}


def test_chat_session_is_recorded_once_per_message(ap: Any, client: genai.Client) -> None:
    chat = client.chats.create(model=MODEL)
    chat.send_message("Hello")
    for _ in chat.send_message_stream("Again"):
        pass
    calls = [e["data"] for e in ap.events("llm_call")]
    assert [c["streaming"] for c in calls] == [False, True]


def test_capture_messages(capture: Any, client: genai.Client, server: FakeProviders) -> None:
    ap = capture(capture_messages=True)
    client.models.generate_content(model=MODEL, contents="Say hello")
    data = only_call(ap)
    assert data["input"] == "Say hello"
    assert data["output"] == server.text


@AIOHTTP_SUBCLASS
async def test_async_generate_content(ap: Any, client: genai.Client, server: FakeProviders) -> None:
    server.gemini_usage = dict(THINKING_AND_CACHE)
    try:
        result = await client.aio.models.generate_content(model=MODEL, contents="Say hello")
    finally:
        await client.aio.aclose()
    assert type(result) is types.GenerateContentResponse
    data = only_call(ap)
    assert (data["input_tokens"], data["output_tokens"], data["reasoning_tokens"]) == (1200, 340, 300)


@AIOHTTP_SUBCLASS
async def test_async_generate_content_stream(ap: Any, client: genai.Client, server: FakeProviders) -> None:
    texts: List[str] = []
    try:
        stream = await client.aio.models.generate_content_stream(model=MODEL, contents="Say hello")
        async for chunk in stream:
            texts.append(chunk.text or "")
    finally:
        await client.aio.aclose()
    assert "".join(texts) == server.text
    data = only_call(ap)
    assert data["streaming"] is True
    assert data["status"] == "success"
    assert (data["input_tokens"], data["output_tokens"]) == (11, 6)
    assert data["time_to_first_token_ms"] is not None


async def test_async_over_httpx2(ap: Any, server: FakeProviders) -> None:
    async with httpx2.AsyncClient() as http:
        client = genai.Client(api_key="k", http_options={"base_url": server.url, "httpx_async_client": http})
        result = await client.aio.models.generate_content(model=MODEL, contents="Say hello")
        stream = await client.aio.models.generate_content_stream(model=MODEL, contents="Say hello")
        async for _ in stream:
            pass
        client.close()
    assert result.text == server.text
    assert [c["data"]["status"] for c in ap.events("llm_call")] == ["success", "success"]


@pytest.mark.parametrize(("status", "error"), [(400, errors.ClientError), (503, errors.ServerError)])
def test_http_errors_come_back_untouched(
    ap: Any, client: genai.Client, server: FakeProviders, status: int, error: type[BaseException]
) -> None:
    server.fail_next(status)
    with pytest.raises(error) as info:
        client.models.generate_content(model=MODEL, contents="Say hello")
    assert type(info.value) is error
    assert info.value.code == status  # type: ignore[attr-defined]
    data = only_call(ap)
    assert data["status"] == "error"
    assert data["error"]["type"] == error.__name__


@AIOHTTP_SUBCLASS
async def test_async_error(ap: Any, client: genai.Client, server: FakeProviders) -> None:
    server.fail_next(429)
    try:
        with pytest.raises(errors.ClientError):
            await client.aio.models.generate_content(model=MODEL, contents="Say hello")
    finally:
        await client.aio.aclose()
    assert only_call(ap)["status"] == "error"


def test_stream_error_on_first_iteration(ap: Any, client: genai.Client, server: FakeProviders) -> None:
    server.fail_next(500)
    stream = client.models.generate_content_stream(model=MODEL, contents="Say hello")
    with pytest.raises(errors.ServerError):
        next(iter(stream))
    data = only_call(ap)
    assert data["status"] == "error"
    assert data["streaming"] is True


def test_stream_break_early_is_cancelled(ap: Any, client: genai.Client) -> None:
    stream = client.models.generate_content_stream(model=MODEL, contents="Say hello")
    for _ in stream:
        break
    stream.close()
    data = only_call(ap)
    assert data["status"] == "cancelled"
    assert data["time_to_first_token_ms"] is not None


def test_abandoned_stream_is_reported_once(ap: Any, client: genai.Client) -> None:
    stream = client.models.generate_content_stream(model=MODEL, contents="Say hello")
    next(iter(stream))
    del stream
    gc.collect()
    assert only_call(ap)["status"] == "cancelled"


def test_unpatch_stops_recording(ap: Any, client: genai.Client) -> None:
    unpatch()
    client.models.generate_content(model=MODEL, contents="Say hello")
    assert ap.events("llm_call") == []


@pytest.mark.internal_errors_expected
def test_extractor_that_raises_never_breaks_the_call(
    ap: Any, client: genai.Client, server: FakeProviders, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(usage: Any) -> Any:
        raise RuntimeError("extractor bug")

    monkeypatch.setattr(genai_integration, "usage_fields", boom)
    result = client.models.generate_content(model=MODEL, contents="Say hello")
    chunks = list(client.models.generate_content_stream(model=MODEL, contents="Say hello"))
    assert result.text == server.text
    assert "".join(c.text or "" for c in chunks) == server.text
    calls = [e["data"] for e in ap.events("llm_call")]
    assert len(calls) == 2
    assert all(c["provider"] == "google" for c in calls)


@pytest.mark.internal_errors_expected
def test_unknown_response_shape(ap: Any, client: genai.Client, server: FakeProviders) -> None:
    server.gemini_usage = {}
    server.gemini_model_version = None
    result = client.models.generate_content(model=MODEL, contents="Say hello")
    assert result.text == server.text
    data = only_call(ap)
    assert data["status"] == "success"
    assert data["output_tokens"] is None
