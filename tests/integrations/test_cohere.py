"""The Cohere integration, driving the real ``cohere`` SDK against a fake Cohere on 127.0.0.1."""

from __future__ import annotations

import gc
from typing import Any, Dict, Iterator, List

import cohere
import httpx
import pytest
from cohere.v2.types.v2chat_response import V2ChatResponse
from fake_servers import FakeProviders, serve

import agentpulse
from agentpulse.integrations import cohere as cohere_integration
from agentpulse.patching import unpatch

MODEL = "command-a-03-2025"
MESSAGES = [{"role": "user", "content": "Say hello"}]
NO_RETRY: Any = {"max_retries": 0}


@pytest.fixture
def server() -> Iterator[FakeProviders]:
    with serve() as s:
        yield s


def only_call(ap: Any) -> Dict[str, Any]:
    calls = ap.events("llm_call")
    assert len(calls) == 1, calls
    data: Dict[str, Any] = calls[0]["data"]
    return data


def test_chat_is_recorded_and_result_untouched(ap: Any, server: FakeProviders) -> None:
    with cohere.ClientV2(api_key="k", base_url=server.url) as co:
        result = co.chat(model=MODEL, messages=MESSAGES, temperature=0.3, max_tokens=50)
    assert type(result) is V2ChatResponse
    assert result.message.content[0].text == server.text
    data = only_call(ap)
    assert data["provider"] == "cohere"
    assert data["operation"] == "chat"
    assert data["model"] == MODEL
    assert data["status"] == "success"
    assert data["streaming"] is False
    # Billed units, not the larger count that includes Cohere's prompt template.
    assert (data["input_tokens"], data["output_tokens"]) == (12, 7)
    assert data["finish_reason"] == "COMPLETE"
    assert data["temperature"] == 0.3
    assert data["max_tokens"] == 50
    assert data["latency_ms"] >= 0
    assert data["cost_source"] == "table"
    assert data["cost_usd"] == pytest.approx((12 * 2.50 + 7 * 10.00) / 1e6)
    assert data["input"] is None and data["output"] is None
    # The request the SDK sent is exactly the caller's.
    assert server.requests[-1].body["messages"] == MESSAGES


def test_chat_matches_unpatched_result(ap: Any, server: FakeProviders) -> None:
    with cohere.ClientV2(api_key="k", base_url=server.url) as co:
        patched = co.chat(model=MODEL, messages=MESSAGES)
    agentpulse.shutdown()
    with cohere.ClientV2(api_key="k", base_url=server.url) as co:
        plain = co.chat(model=MODEL, messages=MESSAGES)
    assert type(patched) is type(plain)
    assert patched.model_dump() == plain.model_dump()


def test_cached_tokens_are_cache_reads(ap: Any, server: FakeProviders) -> None:
    server.cohere_usage = {
        "billed_units": {"input_tokens": 900, "output_tokens": 20},
        "tokens": {"input_tokens": 1100, "output_tokens": 20},
        "cached_tokens": 640,
    }
    with cohere.ClientV2(api_key="k", base_url=server.url) as co:
        co.chat(model=MODEL, messages=MESSAGES)
    data = only_call(ap)
    assert (data["input_tokens"], data["cache_read_tokens"], data["output_tokens"]) == (900, 640, 20)


def test_tool_calls_are_named(ap: Any, server: FakeProviders) -> None:
    server.tool_calls = [("get_weather", '{"city": "Paris"}')]
    tools = [
        {
            "type": "function",
            "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
        }
    ]
    with cohere.ClientV2(api_key="k", base_url=server.url) as co:
        co.chat(model=MODEL, messages=MESSAGES, tools=tools)
    data = only_call(ap)
    assert data["tool_calls"] == ["get_weather"]
    assert data["tools_count"] == 1
    assert data["finish_reason"] == "TOOL_CALL"


def test_chat_stream(ap: Any, server: FakeProviders) -> None:
    with cohere.ClientV2(api_key="k", base_url=server.url) as co:
        events = list(co.chat_stream(model=MODEL, messages=MESSAGES))
    assert events[0].type == "message-start"
    assert events[-1].type == "message-end"
    text = "".join(e.delta.message.content.text for e in events if e.type == "content-delta")
    assert text == server.text
    data = only_call(ap)
    assert data["streaming"] is True
    assert data["status"] == "success"
    assert (data["input_tokens"], data["output_tokens"]) == (12, 7)
    assert data["finish_reason"] == "COMPLETE"
    assert data["time_to_first_token_ms"] is not None
    assert data["usage_estimated"] is False


def test_stream_tool_call(ap: Any, server: FakeProviders) -> None:
    server.tool_calls = [("lookup", '{"q": "x"}')]
    with cohere.ClientV2(api_key="k", base_url=server.url) as co:
        for _ in co.chat_stream(model=MODEL, messages=MESSAGES):
            pass
    data = only_call(ap)
    assert data["tool_calls"] == ["lookup"]
    assert data["finish_reason"] == "TOOL_CALL"


def test_capture_messages_records_prompt_and_answer(capture: Any, server: FakeProviders) -> None:
    ap = capture(capture_messages=True)
    with cohere.ClientV2(api_key="k", base_url=server.url) as co:
        co.chat(model=MODEL, messages=MESSAGES)
        for _ in co.chat_stream(model=MODEL, messages=MESSAGES):
            pass
    calls = [e["data"] for e in ap.events("llm_call")]
    assert len(calls) == 2
    for data in calls:
        assert data["input"] == MESSAGES
        assert data["output"] == server.text


async def test_async_chat(ap: Any, server: FakeProviders) -> None:
    async with httpx.AsyncClient() as http:
        co = cohere.AsyncClientV2(api_key="k", base_url=server.url, httpx_client=http)
        result = await co.chat(model=MODEL, messages=MESSAGES)
    assert type(result) is V2ChatResponse
    data = only_call(ap)
    assert data["status"] == "success"
    assert (data["input_tokens"], data["output_tokens"]) == (12, 7)


async def test_async_chat_stream(ap: Any, server: FakeProviders) -> None:
    async with httpx.AsyncClient() as http:
        co = cohere.AsyncClientV2(api_key="k", base_url=server.url, httpx_client=http)
        kinds: List[str] = [e.type async for e in co.chat_stream(model=MODEL, messages=MESSAGES)]
    assert kinds[-1] == "message-end"
    data = only_call(ap)
    assert data["streaming"] is True
    assert data["status"] == "success"
    assert data["output_tokens"] == 7
    assert data["time_to_first_token_ms"] is not None


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, cohere.BadRequestError), (429, cohere.TooManyRequestsError), (500, cohere.InternalServerError)],
)
def test_http_errors_come_back_untouched(
    ap: Any, server: FakeProviders, status: int, error: type[BaseException]
) -> None:
    server.fail_next(status)
    with cohere.ClientV2(api_key="k", base_url=server.url) as co, pytest.raises(error) as info:
        co.chat(model=MODEL, messages=MESSAGES, request_options=NO_RETRY)
    assert type(info.value) is error
    assert info.value.status_code == status
    data = only_call(ap)
    assert data["status"] == "error"
    assert data["error"]["type"] == error.__name__
    assert data["error"]["status_code"] == status


def test_stream_error_on_first_iteration(ap: Any, server: FakeProviders) -> None:
    server.fail_next(503)
    with cohere.ClientV2(api_key="k", base_url=server.url) as co:
        stream = co.chat_stream(model=MODEL, messages=MESSAGES, request_options=NO_RETRY)
        with pytest.raises(cohere.ServiceUnavailableError):
            next(iter(stream))
    data = only_call(ap)
    assert data["status"] == "error"
    assert data["streaming"] is True
    assert data["error"]["type"] == "ServiceUnavailableError"


def test_stream_cut_mid_way_is_an_error(ap: Any, server: FakeProviders) -> None:
    server.cut_stream_after = 3
    seen = []
    with cohere.ClientV2(api_key="k", base_url=server.url) as co, pytest.raises(httpx.RemoteProtocolError):
        for event in co.chat_stream(model=MODEL, messages=MESSAGES, request_options=NO_RETRY):
            seen.append(event)
    assert len(seen) == 3
    data = only_call(ap)
    assert data["status"] == "error"
    assert data["error"]["type"] == "RemoteProtocolError"


def test_stream_break_early_is_cancelled(ap: Any, server: FakeProviders) -> None:
    with cohere.ClientV2(api_key="k", base_url=server.url) as co:
        stream = co.chat_stream(model=MODEL, messages=MESSAGES)
        for event in stream:
            if event.type == "content-delta":
                break
        stream.close()
    data = only_call(ap)
    assert data["status"] == "cancelled"
    assert data["time_to_first_token_ms"] is not None


def test_abandoned_stream_is_reported_once(ap: Any, server: FakeProviders) -> None:
    with cohere.ClientV2(api_key="k", base_url=server.url) as co:
        stream = co.chat_stream(model=MODEL, messages=MESSAGES)
        next(iter(stream))
        del stream
        gc.collect()
    data = only_call(ap)
    assert data["status"] == "cancelled"


def test_v1_chat_and_stream(ap: Any, server: FakeProviders) -> None:
    with cohere.Client(api_key="k", base_url=server.url) as co:
        reply = co.chat(model="command-r-08-2024", message="Say hello")
        events = list(co.chat_stream(model="command-r-08-2024", message="Say hello"))
    assert reply.text == server.text
    assert events[-1].event_type == "stream-end"
    plain, streamed = (e["data"] for e in ap.events("llm_call"))
    for data in (plain, streamed):
        assert data["model"] == "command-r-08-2024"
        assert (data["input_tokens"], data["output_tokens"]) == (12, 7)
        assert data["finish_reason"] == "COMPLETE"
        assert data["status"] == "success"
    assert streamed["streaming"] is True


def test_v2_through_v1_client(ap: Any, server: FakeProviders) -> None:
    with cohere.Client(api_key="k", base_url=server.url) as co:
        co.v2.chat(model=MODEL, messages=MESSAGES)
    assert only_call(ap)["input_tokens"] == 12


def test_client_built_before_init_is_recorded_once(capture: Any, server: FakeProviders) -> None:
    with cohere.ClientV2(api_key="k", base_url=server.url) as co:
        ap = capture()
        co.chat(model=MODEL, messages=MESSAGES)
        raw = co.with_raw_response.chat(model=MODEL, messages=MESSAGES)
    assert type(raw.data) is V2ChatResponse
    calls = [e["data"] for e in ap.events("llm_call")]
    assert len(calls) == 2
    assert all(c["input_tokens"] == 12 for c in calls)


def test_init_twice_records_once(capture: Any, server: FakeProviders) -> None:
    ap = capture()
    agentpulse.init()
    with cohere.ClientV2(api_key="k", base_url=server.url) as co:
        co.chat(model=MODEL, messages=MESSAGES)
    assert len(ap.events("llm_call")) == 1


def test_unpatch_stops_recording(ap: Any, server: FakeProviders) -> None:
    unpatch()
    with cohere.ClientV2(api_key="k", base_url=server.url) as co:
        co.chat(model=MODEL, messages=MESSAGES)
    assert ap.events("llm_call") == []


@pytest.mark.internal_errors_expected
def test_extractor_that_raises_never_breaks_the_call(
    ap: Any, server: FakeProviders, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(usage: Any) -> Any:
        raise RuntimeError("extractor bug")

    monkeypatch.setattr(cohere_integration, "usage_fields", boom)
    with cohere.ClientV2(api_key="k", base_url=server.url) as co:
        result = co.chat(model=MODEL, messages=MESSAGES)
        events = list(co.chat_stream(model=MODEL, messages=MESSAGES))
    assert type(result) is V2ChatResponse
    assert result.message.content[0].text == server.text
    assert events[-1].type == "message-end"
    calls = [e["data"] for e in ap.events("llm_call")]
    assert len(calls) == 2
    assert all(c["provider"] == "cohere" for c in calls)


@pytest.mark.internal_errors_expected
def test_unknown_response_shape(ap: Any, server: FakeProviders) -> None:
    server.cohere_usage = {"billed_units": "lots", "tokens": [1, 2], "cached_tokens": "some"}
    with cohere.ClientV2(api_key="k", base_url=server.url) as co:
        result = co.chat(model=MODEL, messages=MESSAGES)
    assert result.message.content[0].text == server.text
    data = only_call(ap)
    assert data["status"] == "success"
    assert data["input_tokens"] is None
