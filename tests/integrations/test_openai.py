"""The OpenAI integration against the real ``openai`` package and a fake provider."""

from __future__ import annotations

import copy
import gc
import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import httpx2
import openai
import pytest
from openai.resources.chat.completions.completions import Completions
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion
from openai.types.responses import Response
from sdk_fakes import OPENAI_MODEL, chat_completion, llm_calls, one_call, response_obj

import agentpulse
from agentpulse.patching import patch, unpatch
from agentpulse.patching.engine import AgentPulseWrapper

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]


def test_chat_non_stream_records_normalised_usage_and_cost(ap: Any, openai_client: Any) -> None:
    with agentpulse.session("daily-email"):
        result = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, temperature=0.2)
    assert type(result) is ChatCompletion
    assert result.choices[0].message.content == "Hello there"
    data = one_call(ap)
    assert data["provider"] == "openai"
    assert data["operation"] == "chat"
    assert data["model"] == "gpt-4o"
    assert data["response_model"] == OPENAI_MODEL
    # prompt_tokens already include the cached tokens: input is 120, of which 100 cached.
    assert data["input_tokens"] == 120
    assert data["cache_read_tokens"] == 100
    assert data["output_tokens"] == 30
    assert data["reasoning_tokens"] == 12
    assert data["usage_estimated"] is False
    assert data["cost_source"] == "table"
    # gpt-4o: 20 uncached x 2.50 + 100 cached x 1.25 + 30 output x 10.00 per million.
    assert data["cost_usd"] == pytest.approx((20 * 2.5 + 100 * 1.25 + 30 * 10.0) / 1e6)
    assert data["status"] == "success"
    assert data["streaming"] is False
    assert data["finish_reason"] == "stop"
    assert data["temperature"] == 0.2
    assert data["latency_ms"] >= 0
    assert data["time_to_first_token_ms"] is None
    assert data["input"] is None and data["output"] is None


def test_event_nests_under_the_current_span(ap: Any, openai_client: Any) -> None:
    with agentpulse.session("inbox") as s:
        openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    ev = ap.events("llm_call")[0]
    assert ev["session"] == "inbox"
    assert ev["trace_id"] == s.trace_id
    assert ev["parent_span_id"] == s.span_id
    assert ev["span_id"] not in (None, s.span_id)


def test_arguments_are_never_changed(ap: Any, openai_client: Any, openai_fake: Any) -> None:
    kwargs: dict[str, Any] = {"model": "gpt-4o", "messages": MESSAGES, "stream": True}
    before = copy.deepcopy(kwargs)
    for _ in openai_client.chat.completions.create(**kwargs):
        pass
    assert kwargs == before
    sent = openai_fake.requests[-1]["body"]
    assert "stream_options" not in sent  # never injected


def test_tool_calls_and_request_parameters(ap: Any, openai_client: Any) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    openai_client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, tools=tools, max_completion_tokens=50
    )
    data = one_call(ap)
    assert data["tools_count"] == 1
    assert data["tool_calls"] == ["get_weather"]
    assert data["max_tokens"] == 50
    assert data["finish_reason"] == "tool_calls"


def test_stream_without_usage_is_estimated_never_zero(ap: Any, openai_client: Any) -> None:
    stream = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    assert isinstance(stream, openai.Stream)
    texts = [c.choices[0].delta.content for c in stream]
    assert texts == ["", "Hel", "lo", " world", None]
    data = one_call(ap)
    assert data["streaming"] is True
    assert data["usage_estimated"] is True
    assert data["input_tokens"] > 0 and data["output_tokens"] > 0
    assert data["cost_usd"] > 0
    assert data["status"] == "success"
    assert data["finish_reason"] == "stop"
    assert data["time_to_first_token_ms"] is not None
    assert data["time_to_first_token_ms"] <= data["latency_ms"]


def test_stream_with_include_usage_uses_reported_usage(ap: Any, openai_client: Any) -> None:
    stream = openai_client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 66
    data = one_call(ap)
    assert (data["input_tokens"], data["output_tokens"], data["usage_estimated"]) == (57, 9, False)


def test_stream_context_manager_and_next(ap: Any, openai_client: Any) -> None:
    with openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True) as stream:
        first = next(stream)
        assert first.choices[0].delta.role == "assistant"
        assert stream.response.status_code == 200
    data = one_call(ap)
    assert data["status"] == "cancelled"


def test_stream_break_then_close_is_cancelled_once(ap: Any, openai_client: Any) -> None:
    stream = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    for chunk in stream:
        if chunk.choices[0].delta.content == "Hel":
            break
    stream.close()
    stream.close()
    data = one_call(ap)
    assert data["status"] == "cancelled"
    assert data["time_to_first_token_ms"] is not None


def test_abandoned_stream_is_reported_on_gc(ap: Any, openai_client: Any) -> None:
    stream = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    next(stream)
    del stream
    gc.collect()
    data = one_call(ap)
    assert data["status"] == "cancelled"


def test_stream_collected_in_a_cycle_is_reported_at_a_safe_point(ap: Any, openai_client: Any) -> None:
    from agentpulse import recorder

    gc.collect()
    gc.disable()  # collect exactly when the test says so
    try:
        stream = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        next(stream)
        holder: list[Any] = [stream]
        holder.append(holder)  # only the cyclic collector can free it
        del stream, holder
        gc.collect()
    finally:
        gc.enable()
    # Reported from __del__ during collection: deferred (no lock may be taken there) ...
    assert len(recorder._deferred) == 1
    # ... and run at the next safe point (here flush()).
    assert one_call(ap)["status"] == "cancelled"
    assert not recorder._deferred


def test_abandoned_stream_helper_is_reported_once(ap: Any, openai_client: Any) -> None:
    manager = openai_client.chat.completions.stream(model="gpt-4o", messages=MESSAGES)
    stream = manager.__enter__()
    next(iter(stream))
    del manager, stream
    gc.collect()
    assert one_call(ap)["status"] == "cancelled"


def test_error_mid_stream_is_status_error(ap: Any, openai_client: Any, openai_fake: Any) -> None:
    body = (
        b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":'
        b'[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}\n\n'
        b'data: {"error": {"message": "the server broke", "type": "server_error"}}\n\n'
    )
    openai_fake.fail = lambda request: httpx2.Response(
        200, content=body, headers={"content-type": "text/event-stream"}
    )
    stream = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIError, match="the server broke"):
        for _ in stream:
            pass
    data = one_call(ap)
    assert data["status"] == "error"
    assert data["error"]["type"] == "APIError"
    assert "the server broke" in data["error"]["message"]


async def test_async_chat_and_async_stream(ap: Any, async_openai_client: Any) -> None:
    result = await async_openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert type(result) is ChatCompletion
    stream = await async_openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    assert isinstance(stream, openai.AsyncStream)
    async with stream as s:
        assert s is stream
        texts = [c.choices[0].delta.content async for c in s]
    assert texts[1:4] == ["Hel", "lo", " world"]
    calls = [c["data"] for c in llm_calls(ap)]
    assert [(c["streaming"], c["status"]) for c in calls] == [(False, "success"), (True, "success")]
    assert calls[1]["time_to_first_token_ms"] is not None


async def test_async_stream_early_close(ap: Any, async_openai_client: Any) -> None:
    stream = await async_openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    await stream.__anext__()
    await stream.close()
    assert one_call(ap)["status"] == "cancelled"


def test_stream_helper_records_once(ap: Any, openai_client: Any) -> None:
    with openai_client.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "Hello world"
    data = one_call(ap)
    assert data["status"] == "success" and data["streaming"] is True
    assert data["output_tokens"] > 0


def test_stream_helper_early_exit_is_reported_at_exit(ap: Any, openai_client: Any) -> None:
    with openai_client.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream:
        for event in stream:
            if event.type == "content.delta":
                break
        kept = stream  # still referenced: the report must not wait for garbage collection
    assert one_call(ap)["status"] == "cancelled"
    assert kept is stream


async def test_async_stream_helper(ap: Any, async_openai_client: Any) -> None:
    async with async_openai_client.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream:
        final = await stream.get_final_completion()
    assert final.choices[0].message.content == "Hello world"
    assert one_call(ap)["status"] == "success"


def test_chat_parse(ap: Any, openai_client: Any) -> None:
    parsed = openai_client.chat.completions.parse(model="gpt-4o", messages=MESSAGES)
    assert parsed.choices[0].message.content == "Hello there"
    data = one_call(ap)
    assert data["input_tokens"] == 120 and data["operation"] == "chat"


def test_responses_api(ap: Any, openai_client: Any) -> None:
    result = openai_client.responses.create(model="gpt-4.1", input="Say hi", max_output_tokens=100)
    assert type(result) is Response
    data = one_call(ap)
    assert data["operation"] == "responses"
    assert data["response_model"] == "gpt-4.1-2025-04-14"
    assert (data["input_tokens"], data["cache_read_tokens"], data["output_tokens"]) == (200, 150, 40)
    assert data["reasoning_tokens"] == 16
    assert data["max_tokens"] == 100
    assert data["finish_reason"] == "completed"
    assert data["cost_usd"] > 0


def test_failed_response_is_status_error(ap: Any, openai_client: Any, openai_fake: Any) -> None:
    body = response_obj(status="failed")
    body["error"] = {"code": "server_error", "message": "the model failed"}
    openai_fake.fail = lambda request: httpx2.Response(200, json=body)
    result = openai_client.responses.create(model="gpt-4.1", input="Say hi")
    assert result.status == "failed"
    data = one_call(ap)
    assert data["status"] == "error"
    assert data["error"] == {"type": "server_error", "message": "the model failed"}


def test_responses_stream_and_helper(ap: Any, openai_client: Any) -> None:
    events = list(openai_client.responses.create(model="gpt-4.1", input="Say hi", stream=True))
    assert events[-1].type == "response.completed"
    with openai_client.responses.stream(model="gpt-4.1", input="Say hi") as stream:
        final = stream.get_final_response()
    assert final.output_text == "Hello world"
    calls = [c["data"] for c in llm_calls(ap)]
    assert len(calls) == 2
    for data in calls:
        assert data["streaming"] is True and data["status"] == "success"
        assert (data["input_tokens"], data["output_tokens"], data["usage_estimated"]) == (200, 40, False)
        assert data["time_to_first_token_ms"] is not None


def test_legacy_completions(ap: Any, openai_client: Any) -> None:
    result = openai_client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Hello")
    assert result.choices[0].text == " world"
    texts = [
        c.choices[0].text
        for c in openai_client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Hi", stream=True)
    ]
    assert texts == ["Hel", "lo", " world", ""]
    first, second = (c["data"] for c in llm_calls(ap))
    assert first["operation"] == "completion"
    assert (first["input_tokens"], first["output_tokens"], first["finish_reason"]) == (5, 7, "length")
    assert second["usage_estimated"] is True and second["output_tokens"] > 0


def test_embeddings(ap: Any, openai_client: Any) -> None:
    result = openai_client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert type(result) is CreateEmbeddingResponse
    data = one_call(ap)
    assert data["operation"] == "embedding"
    assert (data["input_tokens"], data["output_tokens"]) == (8, 0)
    assert data["cost_usd"] > 0


def test_with_raw_response_keeps_its_type_and_is_recorded(ap: Any, openai_client: Any) -> None:
    raw = openai_client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    assert isinstance(raw, openai._legacy_response.LegacyAPIResponse)
    assert raw.headers["content-type"] == "application/json"
    completion = raw.parse()
    assert type(completion) is ChatCompletion
    assert raw.parse() is completion
    data = one_call(ap)
    assert (data["input_tokens"], data["output_tokens"]) == (120, 30)


def test_with_raw_response_stream(ap: Any, openai_client: Any) -> None:
    raw = openai_client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=MESSAGES, stream=True
    )
    stream = raw.parse()
    assert isinstance(stream, openai.Stream)
    assert len(list(stream)) == 5
    data = one_call(ap)
    assert data["streaming"] is True and data["status"] == "success"


def test_with_streaming_response_parsed(ap: Any, openai_client: Any) -> None:
    with openai_client.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=MESSAGES
    ) as resp:
        assert isinstance(resp, openai._response.APIResponse)
        assert resp.parse().usage.total_tokens == 150
    assert one_call(ap)["input_tokens"] == 120


def test_with_streaming_response_unread_body_is_not_read(ap: Any, openai_client: Any) -> None:
    with openai_client.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=MESSAGES
    ) as resp:
        lines = list(resp.iter_lines())
    assert json.loads("".join(lines))["id"] == "chatcmpl-1"
    assert resp._parsed_by_type == {}  # nothing parsed behind the caller's back
    data = one_call(ap)
    assert data["status"] == "success"
    assert data["input_tokens"] is None and data["cost_usd"] is None
    assert data["cost_reason"] == "no token counts"


def _unpatched_then_patched(fn: Any) -> tuple[Any, Any]:
    unpatch("openai")
    try:
        plain = fn()
    except Exception as exc:
        plain = exc
    patch("openai")
    try:
        observed = fn()
    except Exception as exc:
        observed = exc
    return plain, observed


@pytest.mark.parametrize(
    ("status", "exc_type"),
    [(400, openai.BadRequestError), (429, openai.RateLimitError), (500, openai.InternalServerError)],
)
def test_http_errors_come_back_unchanged(
    ap: Any, openai_client: Any, openai_fake: Any, status: int, exc_type: type
) -> None:
    openai_fake.fail = lambda request: httpx2.Response(
        status, json={"error": {"message": f"failure {status}", "type": "invalid_request_error", "code": "x"}}
    )
    plain, observed = _unpatched_then_patched(
        lambda: openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    )
    assert type(plain) is type(observed) is exc_type
    assert str(plain) == str(observed)
    assert observed.status_code == plain.status_code == status
    assert observed.body == plain.body
    data = one_call(ap)
    assert data["status"] == "error"
    assert data["error"]["type"] == exc_type.__name__
    assert data["error"]["status_code"] == status
    assert data["cost_usd"] is None


@pytest.mark.parametrize(
    ("raised", "exc_type"),
    [(httpx2.ReadTimeout, openai.APITimeoutError), (httpx2.ConnectError, openai.APIConnectionError)],
)
def test_transport_errors_come_back_unchanged(
    ap: Any, openai_client: Any, openai_fake: Any, raised: type, exc_type: type
) -> None:
    def fail(request: httpx2.Request) -> httpx2.Response:
        raise raised("network trouble", request=request)

    openai_fake.fail = fail
    plain, observed = _unpatched_then_patched(
        lambda: openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    )
    assert type(plain) is type(observed) is exc_type
    assert str(plain) == str(observed)
    data = one_call(ap)
    assert data["status"] == "error" and data["error"]["type"] == exc_type.__name__


def test_azure_client_is_recorded_as_azure(ap: Any, openai_fake: Any) -> None:
    http = httpx2.Client(transport=httpx2.MockTransport(openai_fake))
    client = openai.AzureOpenAI(
        api_key="k", api_version="2024-10-21", azure_endpoint="https://x.openai.azure.test", http_client=http
    )
    try:
        client.chat.completions.create(model="my-gpt4o-deployment", messages=MESSAGES)
    finally:
        client.close()
    data = one_call(ap)
    assert data["provider"] == "azure"
    assert data["model"] == "my-gpt4o-deployment"
    assert data["cost_usd"] > 0  # priced by the model the provider says answered


def test_capture_messages_snapshots_redacts_and_truncates(capture: Any, openai_client: Any) -> None:
    cap = capture(capture_messages=True, max_string_length=64)
    messages = [{"role": "user", "content": "x" * 500}]
    openai_client.chat.completions.create(model="gpt-4o", messages=messages)
    messages.append({"role": "user", "content": "added later"})
    data = one_call(cap)
    assert len(data["input"]) == 1
    assert len(data["input"][0]["content"]) <= 64
    assert "truncated" in data["input"][0]["content"]
    assert data["output"] == "Hello there"


def test_double_init_records_once(capture: Any, openai_client: Any) -> None:
    cap = capture()
    agentpulse.init()
    patch()
    openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert len(llm_calls(cap)) == 1


def test_unpatch_restores_originals_exactly() -> None:
    original = Completions.__dict__["create"]
    assert not isinstance(original, AgentPulseWrapper)
    agentpulse.init(exporter="memory")
    assert isinstance(Completions.__dict__["create"], AgentPulseWrapper)
    unpatch()
    assert Completions.__dict__["create"] is original
    patch()
    assert isinstance(Completions.__dict__["create"], AgentPulseWrapper)
    agentpulse.shutdown()
    assert Completions.__dict__["create"] is original


def test_patch_openai_false_is_honoured(capture: Any, openai_client: Any) -> None:
    cap = capture(patch_openai=False)
    assert not isinstance(Completions.__dict__["create"], AgentPulseWrapper)
    openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert llm_calls(cap) == []


def test_init_before_import_patches_on_import(tmp_path: Any) -> None:
    script = textwrap.dedent(
        f"""
        import json, sys
        import agentpulse
        client = agentpulse.init(exporter="memory", flush_interval=0.05)
        assert "openai" not in sys.modules
        import httpx2, openai
        body = {json.dumps(chat_completion())!r}
        headers = {{"content-type": "application/json"}}
        reply = lambda r: httpx2.Response(200, content=body.encode(), headers=headers)
        http = httpx2.Client(transport=httpx2.MockTransport(reply))
        oc = openai.OpenAI(api_key="k", http_client=http, max_retries=0)
        oc.chat.completions.create(model="gpt-4o", messages=[{{"role": "user", "content": "hi"}}])
        oc.close()
        client.flush()
        calls = [e["data"] for e in client.exporter.events if e["kind"] == "llm_call"]
        print(json.dumps(calls))
        agentpulse.shutdown()
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTPULSE_")}
    env["AGENTPULSE_LOCAL_PATH"] = str(tmp_path / "ap.db")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    calls = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(calls) == 1 and calls[0]["input_tokens"] == 120


def test_budget_guard_stops_the_call_before_it_is_sent(
    capture: Any, openai_client: Any, openai_fake: Any
) -> None:
    capture(budget_usd_per_hour=0.0001, on_budget_exceeded="raise")
    openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    sent = len(openai_fake.requests)
    with pytest.raises(agentpulse.guards.BudgetExceeded):
        openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert len(openai_fake.requests) == sent
