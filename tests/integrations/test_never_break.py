"""Whatever goes wrong inside AgentPulse, the caller gets exactly what the SDK gave.

Tests that break our own extractors on purpose are marked
``internal_errors_expected``; every other test fails if AgentPulse swallowed an
error.
"""

from __future__ import annotations

import asyncio
import importlib
from typing import Any, Dict

import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletion
from sdk_fakes import ACME_SOURCE, chat_completion, llm_calls, one_call

from agentpulse._internal import internal_errors
from agentpulse.patching.engine import apply_spec
from agentpulse.patching.spec import PatchSpec, StreamState

MESSAGES = [{"role": "user", "content": "hi"}]


def _boom(*args: Any) -> Dict[str, Any]:
    raise RuntimeError("extractor bug")


def _acme_spec(module: str, target: str = "AcmeClient.complete", **kw: Any) -> PatchSpec:
    return PatchSpec(library="acme", module=module, target=target, provider="acme", **kw)


@pytest.mark.internal_errors_expected
def test_extractors_that_raise_change_nothing(ap: Any, make_module: Any) -> None:
    name = make_module(ACME_SOURCE)
    apply_spec(_acme_spec(name, extract_request=_boom, extract_response=_boom, prompt_hash=_boom))
    mod = importlib.import_module(name)
    result = mod.AcmeClient().complete("same")
    assert result is mod.SAME
    data = one_call(ap)
    assert data["provider"] == "acme" and data["status"] == "success"
    assert {where for where, _ in internal_errors.recorded} == {
        "extract_request.acme",
        "extract_response.acme",
    }


def test_user_exception_is_the_same_object_unchained(ap: Any, make_module: Any) -> None:
    name = make_module(ACME_SOURCE)
    apply_spec(_acme_spec(name))
    mod = importlib.import_module(name)
    with pytest.raises(mod.Boom) as info:
        mod.AcmeClient().complete("explode")
    assert info.value is mod.ERROR
    assert info.value.code == 503
    assert info.value.__cause__ is None and info.value.__context__ is None
    data = one_call(ap)
    assert data["status"] == "error"
    assert data["error"] == {"type": "Boom", "message": "acme is down"}


class _BrokenState(StreamState):
    def __init__(self, args: Any, kwargs: Any) -> None:
        pass

    def record(self, chunk: Any) -> bool:
        raise RuntimeError("state bug")

    def result(self) -> Dict[str, Any]:
        raise RuntimeError("state bug")


@pytest.mark.internal_errors_expected
def test_stream_state_that_raises_changes_nothing(ap: Any, make_module: Any) -> None:
    name = make_module(ACME_SOURCE)
    mod = importlib.import_module(name)
    plain = [(type(c).__name__, c.text) for c in mod.AcmeClient().stream("a b c")]
    apply_spec(_acme_spec(name, "AcmeClient.stream", stream="always", stream_state=_BrokenState))
    observed = [(type(c).__name__, c.text) for c in mod.AcmeClient().stream("a b c")]
    assert observed == plain
    data = one_call(ap)
    assert data["streaming"] is True and data["status"] == "success"


@pytest.mark.internal_errors_expected
def test_stream_state_factory_that_raises(ap: Any, make_module: Any) -> None:
    name = make_module(ACME_SOURCE)
    apply_spec(_acme_spec(name, "AcmeClient.stream", stream="always", stream_state=_boom))
    mod = importlib.import_module(name)
    assert [c.text for c in mod.AcmeClient().stream("x y")] == ["x", "y", ""]
    assert one_call(ap)["status"] == "success"


def test_unknown_response_shape(ap: Any, openai_client: Any, openai_fake: Any) -> None:
    openai_fake.fail = lambda request: httpx2.Response(200, json={"object": "surprise", "payload": [1, 2]})
    result = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert isinstance(result, ChatCompletion)
    assert result.to_dict() == {"object": "surprise", "payload": [1, 2]}
    data = one_call(ap)
    assert data["status"] == "success"
    assert data["input_tokens"] is None and data["output_tokens"] is None
    assert data["cost_usd"] is None and data["cost_reason"] == "no token counts"


def test_missing_usage_is_null_never_zero(ap: Any, openai_client: Any, openai_fake: Any) -> None:
    body = chat_completion()
    del body["usage"]
    openai_fake.fail = lambda request: httpx2.Response(200, json=body)
    result = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert result.usage is None
    data = one_call(ap)
    assert data["input_tokens"] is None and data["output_tokens"] is None
    assert data["usage_estimated"] is False
    assert data["cost_usd"] is None


@pytest.mark.internal_errors_expected
def test_a_failing_guard_or_emit_never_reaches_the_caller(
    ap: Any, openai_client: Any, monkeypatch: Any
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("guard bug")

    monkeypatch.setattr(ap.client.guards, "before_call", broken)
    monkeypatch.setattr(ap.client.guards, "after_call", broken)
    result = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert result.choices[0].message.content == "Hello there"
    assert len(llm_calls(ap)) == 1
    monkeypatch.setattr(ap.client, "emit", broken)
    assert openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES).id == "chatcmpl-1"


async def test_async_cancellation_propagates_untouched(ap: Any, openai_fake: Any) -> None:
    started = asyncio.Event()

    async def hang(request: httpx2.Request) -> httpx2.Response:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    client = openai.AsyncOpenAI(
        api_key="k", http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(hang)), max_retries=0
    )
    try:
        task = asyncio.ensure_future(client.chat.completions.create(model="gpt-4o", messages=MESSAGES))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        await client.close()
    data = one_call(ap)
    assert data["status"] == "cancelled"
    assert data["error"]["type"] == "CancelledError"


async def test_async_user_method(ap: Any, make_module: Any) -> None:
    name = make_module(ACME_SOURCE)
    apply_spec(_acme_spec(name, "AcmeClient.acomplete", is_async=True))
    mod = importlib.import_module(name)
    reply = await mod.AcmeClient().acomplete("hi")
    assert reply.text == "async echo: hi"
    assert one_call(ap)["status"] == "success"
