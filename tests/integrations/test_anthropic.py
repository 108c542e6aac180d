"""The Anthropic integration against the real ``anthropic`` package and a fake provider."""

from __future__ import annotations

import gc
import json
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic.lib.streaming import AsyncMessageStreamManager, MessageStreamManager
from anthropic.resources.messages.messages import Messages
from anthropic.types import Message
from sdk_fakes import ANTHROPIC_MODEL, llm_calls, message_obj, one_call

import agentpulse
from agentpulse.patching import patch, unpatch
from agentpulse.patching.engine import AgentPulseWrapper

MESSAGES = [{"role": "user", "content": "Say hello"}]
MODEL = ANTHROPIC_MODEL


def _assert_usage(data: dict) -> None:
    # Anthropic's input_tokens (41) exclude the cache: all billed input is 41 + 13 + 7.
    assert data["input_tokens"] == 61
    assert data["cache_write_tokens"] == 13
    assert data["cache_read_tokens"] == 7
    assert data["output_tokens"] == 25
    assert data["usage_estimated"] is False


def test_create_records_normalised_usage_and_cost(ap: Any, anthropic_client: Any) -> None:
    result = anthropic_client.messages.create(model=MODEL, max_tokens=256, messages=MESSAGES)
    assert type(result) is Message
    assert result.usage.input_tokens == 41
    data = one_call(ap)
    assert data["provider"] == "anthropic" and data["operation"] == "chat"
    assert data["model"] == MODEL and data["response_model"] == MODEL
    _assert_usage(data)
    assert data["max_tokens"] == 256
    assert data["finish_reason"] == "end_turn"
    # claude-sonnet-4: 41 x 3.00 + 13 x 3.75 (cache write) + 7 x 0.30 (cache read) + 25 x 15.00 per million.
    assert data["cost_usd"] == pytest.approx((41 * 3.0 + 13 * 3.75 + 7 * 0.3 + 25 * 15.0) / 1e6)
    assert data["cost_source"] == "table"


def test_tool_use_and_thinking_tokens(ap: Any, anthropic_client: Any, anthropic_fake: Any) -> None:
    body = message_obj(tool=True)
    body["usage"]["output_tokens_details"] = {"thinking_tokens": 11}
    anthropic_fake.fail = lambda request: httpx2.Response(200, json=body)
    tools = [{"name": "get_weather", "description": "w", "input_schema": {"type": "object"}}]
    anthropic_client.messages.create(model=MODEL, max_tokens=256, messages=MESSAGES, tools=tools)
    data = one_call(ap)
    assert data["tool_calls"] == ["get_weather"]
    assert data["tools_count"] == 1
    assert data["finish_reason"] == "tool_use"
    assert data["reasoning_tokens"] == 11
    assert data["output_tokens"] == 25  # thinking is part of the output count, never added again


def test_stream_true_uses_cumulative_delta_usage(ap: Any, anthropic_client: Any) -> None:
    stream = anthropic_client.messages.create(model=MODEL, max_tokens=256, messages=MESSAGES, stream=True)
    assert isinstance(stream, anthropic.Stream)
    types = [ev.type for ev in stream]
    assert types[0] == "message_start" and types[-1] == "message_stop"
    data = one_call(ap)
    _assert_usage(data)  # 25, not 25 + message_start's 1
    assert data["streaming"] is True and data["status"] == "success"
    assert data["finish_reason"] == "end_turn"
    assert data["time_to_first_token_ms"] is not None


def test_messages_stream_helper(ap: Any, anthropic_client: Any) -> None:
    manager = anthropic_client.messages.stream(model=MODEL, max_tokens=256, messages=MESSAGES)
    assert type(manager) is MessageStreamManager
    with manager as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello world"
    assert final.usage.output_tokens == 25
    data = one_call(ap)
    _assert_usage(data)
    assert data["status"] == "success"
    assert data["time_to_first_token_ms"] is not None


def test_messages_stream_get_final_text_and_until_done(ap: Any, anthropic_client: Any) -> None:
    with anthropic_client.messages.stream(model=MODEL, max_tokens=256, messages=MESSAGES) as stream:
        stream.until_done()
        assert stream.get_final_text() == "Hello world"
    assert one_call(ap)["status"] == "success"


def test_messages_stream_early_break_is_cancelled(ap: Any, anthropic_client: Any) -> None:
    with anthropic_client.messages.stream(model=MODEL, max_tokens=256, messages=MESSAGES) as stream:
        for event in stream:
            if event.type == "text":
                break
    data = one_call(ap)
    assert data["status"] == "cancelled"
    assert data["usage_estimated"] is True and data["output_tokens"] > 0


def test_unentered_manager_records_nothing(ap: Any, anthropic_client: Any, anthropic_fake: Any) -> None:
    manager = anthropic_client.messages.stream(model=MODEL, max_tokens=256, messages=MESSAGES)
    del manager
    gc.collect()
    assert anthropic_fake.requests == []
    assert llm_calls(ap) == []


def test_abandoned_stream_is_reported_once(ap: Any, anthropic_client: Any) -> None:
    stream = anthropic_client.messages.create(model=MODEL, max_tokens=256, messages=MESSAGES, stream=True)
    next(iter(stream))
    del stream
    gc.collect()
    assert one_call(ap)["status"] == "cancelled"


async def test_async_create_stream_and_helper(ap: Any, async_anthropic_client: Any) -> None:
    result = await async_anthropic_client.messages.create(model=MODEL, max_tokens=256, messages=MESSAGES)
    assert type(result) is Message
    stream = await async_anthropic_client.messages.create(
        model=MODEL, max_tokens=256, messages=MESSAGES, stream=True
    )
    assert isinstance(stream, anthropic.AsyncStream)
    async with stream:
        types = [ev.type async for ev in stream]
    assert types[-1] == "message_stop"
    manager = async_anthropic_client.messages.stream(model=MODEL, max_tokens=256, messages=MESSAGES)
    assert type(manager) is AsyncMessageStreamManager
    async with manager as s:
        text = "".join([t async for t in s.text_stream])
        final = await s.get_final_message()
    assert text == "Hello world" and final.stop_reason == "end_turn"
    calls = [c["data"] for c in llm_calls(ap)]
    assert len(calls) == 3
    for data in calls:
        _assert_usage(data)
        assert data["status"] == "success"


def test_parse_and_beta_messages(ap: Any, anthropic_client: Any) -> None:
    parsed = anthropic_client.messages.parse(model=MODEL, max_tokens=256, messages=MESSAGES)
    assert parsed.content[0].text == "Hello from Claude"
    beta = anthropic_client.beta.messages.create(model=MODEL, max_tokens=256, messages=MESSAGES)
    assert beta.usage.cache_read_input_tokens == 7
    with anthropic_client.beta.messages.stream(model=MODEL, max_tokens=256, messages=MESSAGES) as stream:
        stream.until_done()
    calls = [c["data"] for c in llm_calls(ap)]
    assert len(calls) == 3
    for data in calls:
        _assert_usage(data)


def test_with_raw_and_streaming_response(ap: Any, anthropic_client: Any) -> None:
    raw = anthropic_client.messages.with_raw_response.create(model=MODEL, max_tokens=256, messages=MESSAGES)
    assert isinstance(raw, anthropic._response.APIResponse)
    assert raw.headers["content-type"] == "application/json"
    assert type(raw.parse()) is Message
    with anthropic_client.messages.with_streaming_response.create(
        model=MODEL, max_tokens=256, messages=MESSAGES
    ) as resp:
        assert resp.parse().usage.output_tokens == 25
    calls = [c["data"] for c in llm_calls(ap)]
    assert len(calls) == 2
    for data in calls:
        _assert_usage(data)


@pytest.mark.parametrize(
    ("status", "exc_type"),
    [(400, anthropic.BadRequestError), (429, anthropic.RateLimitError), (529, anthropic.InternalServerError)],
)
def test_http_errors_come_back_unchanged(
    ap: Any, anthropic_client: Any, anthropic_fake: Any, status: int, exc_type: type
) -> None:
    body = {"type": "error", "error": {"type": "overloaded_error", "message": f"failure {status}"}}
    anthropic_fake.fail = lambda request: httpx2.Response(status, json=body)

    def call() -> Any:
        return anthropic_client.messages.create(model=MODEL, max_tokens=256, messages=MESSAGES)

    unpatch("anthropic")
    with pytest.raises(exc_type) as plain:
        call()
    patch("anthropic")
    with pytest.raises(exc_type) as observed:
        call()
    assert type(observed.value) is type(plain.value)
    assert str(observed.value) == str(plain.value)
    assert observed.value.status_code == plain.value.status_code == status
    assert observed.value.body == plain.value.body
    data = one_call(ap)
    assert data["status"] == "error"
    assert data["error"] == {
        "type": type(observed.value).__name__,
        "message": str(observed.value),
        "status_code": status,
    }


def test_connection_error_in_stream_manager(ap: Any, anthropic_client: Any, anthropic_fake: Any) -> None:
    def fail(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("refused", request=request)

    anthropic_fake.fail = fail
    manager = anthropic_client.messages.stream(model=MODEL, max_tokens=256, messages=MESSAGES)
    with pytest.raises(anthropic.APIConnectionError), manager as stream:
        stream.until_done()
    data = one_call(ap)
    assert data["status"] == "error" and data["error"]["type"] == "APIConnectionError"


def test_unpatch_restores_originals_exactly() -> None:
    create, stream = Messages.__dict__["create"], Messages.__dict__["stream"]
    agentpulse.init(exporter="memory")
    assert isinstance(Messages.__dict__["stream"], AgentPulseWrapper)
    agentpulse.shutdown()
    assert Messages.__dict__["create"] is create
    assert Messages.__dict__["stream"] is stream


def test_captured_text_is_redacted_before_it_is_queued(capture: Any, anthropic_client: Any) -> None:
    cap = capture(capture_messages=True)
    secret = "sk-" + "a1b2c3d4" * 4
    anthropic_client.messages.create(
        model=MODEL,
        max_tokens=64,
        system="You are terse.",
        messages=[{"role": "user", "content": f"my key is {secret}"}],
    )
    data = one_call(cap)
    assert secret not in json.dumps(data["input"])
    assert data["input"]["system"] == "You are terse."
    assert data["output"] == "Hello from Claude"


async def test_async_raw_and_streaming_response(ap: Any, async_anthropic_client: Any) -> None:
    raw = await async_anthropic_client.messages.with_raw_response.create(
        model=MODEL, max_tokens=256, messages=MESSAGES
    )
    assert isinstance(raw, anthropic._response.AsyncAPIResponse)
    message = await raw.parse()
    assert type(message) is Message
    async with async_anthropic_client.messages.with_streaming_response.create(
        model=MODEL, max_tokens=256, messages=MESSAGES
    ) as resp:
        assert resp.status_code == 200  # never parsed: recorded at close, without usage
    first, second = (c["data"] for c in llm_calls(ap))
    _assert_usage(first)
    assert second["status"] == "success" and second["input_tokens"] is None
