"""The generic engine: hooks, idempotence, unpatch, versions, nesting, signatures."""

from __future__ import annotations

import importlib
import inspect
import logging
import sys
from typing import Any

import openai
import pytest
import wrapt
from openai.resources.chat.completions.completions import AsyncCompletions, Completions
from pydantic import ValidationError
from sdk_fakes import ACME_SOURCE, llm_calls, one_call

import agentpulse
from agentpulse.patching import patch, unpatch
from agentpulse.patching.engine import AgentPulseWrapper, applied, apply_spec, is_patched, unpatch_all
from agentpulse.patching.spec import PatchSpec, parse_version, version_in_range

MESSAGES = [{"role": "user", "content": "hi"}]


def _acme(module: str, target: str = "AcmeClient.complete", **kw: Any) -> PatchSpec:
    def request(args: Any, kwargs: Any) -> Any:
        return {"model": kwargs.get("model", "acme-large")}

    kw.setdefault("extract_request", request)
    return PatchSpec(library="acme", module=module, target=target, provider="acme", **kw)


def test_module_imported_after_the_spec_is_patched_on_import(ap: Any, make_module: Any) -> None:
    name = make_module(ACME_SOURCE)
    assert name not in sys.modules
    apply_spec(_acme(name))
    mod = importlib.import_module(name)
    assert isinstance(vars(mod.AcmeClient)["complete"], AgentPulseWrapper)
    client = mod.AcmeClient()
    assert client.complete("hi").text == "echo: hi"
    assert client.calls == 1
    assert one_call(ap)["provider"] == "acme"


def test_client_made_before_patching_is_covered(ap: Any, make_module: Any) -> None:
    name = make_module(ACME_SOURCE)
    mod = importlib.import_module(name)
    early = mod.AcmeClient()
    apply_spec(_acme(name))
    early.complete("hi")
    assert len(llm_calls(ap)) == 1


def test_module_function_target(ap: Any, make_module: Any) -> None:
    name = make_module(ACME_SOURCE)
    apply_spec(_acme(name, "complete"))
    mod = importlib.import_module(name)
    assert mod.complete("x").text == "module echo: x"
    assert one_call(ap)["provider"] == "acme"


def test_apply_is_idempotent_and_two_specs_on_one_target_wrap_once(ap: Any, make_module: Any) -> None:
    name = make_module(ACME_SOURCE)
    spec = _acme(name)
    apply_spec(spec)
    apply_spec(spec)
    apply_spec(_acme(name, operation="completion"))
    mod = importlib.import_module(name)
    inner = vars(mod.AcmeClient)["complete"].__wrapped__
    assert not isinstance(inner, AgentPulseWrapper)
    mod.AcmeClient().complete("hi")
    assert one_call(ap)["operation"] == "chat"


def test_unpatch_restores_exactly_and_patch_reapplies(ap: Any, openai_client: Any) -> None:
    wrapped = Completions.__dict__["create"]
    assert isinstance(wrapped, AgentPulseWrapper)
    original = wrapped.__wrapped__
    restored = unpatch("openai")
    assert "openai.resources.chat.completions.completions:Completions.create" in restored
    assert Completions.__dict__["create"] is original
    assert not is_patched(Completions, "create")
    openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert llm_calls(ap) == []
    assert patch("openai") == ["openai"]
    assert is_patched(Completions, "create")
    openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert len(llm_calls(ap)) == 1


def test_bound_wrapper_kept_by_the_sdk_is_inert_after_unpatch(ap: Any, openai_client: Any) -> None:
    raw_api = openai_client.chat.completions.with_raw_response  # binds create now
    unpatch("openai")
    raw_api.create(model="gpt-4o", messages=MESSAGES).parse()
    assert llm_calls(ap) == []


def test_someone_else_wrapping_on_top_is_left_alone(ap: Any, openai_client: Any) -> None:
    ours = Completions.__dict__["create"]
    seen = []

    def theirs(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        seen.append(1)
        return wrapped(*args, **kwargs)

    wrapt.wrap_function_wrapper(Completions, "create", theirs)
    try:
        unpatch("openai")
        assert Completions.__dict__["create"].__wrapped__ is ours
        openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert seen == [1]
        assert llm_calls(ap) == []  # ours is inactive
    finally:
        Completions.create = ours.__wrapped__  # type: ignore[method-assign]


def test_version_outside_range_is_skipped_with_one_debug_line(
    ap: Any, caplog: pytest.LogCaptureFixture
) -> None:
    spec = PatchSpec(
        library="openai",
        module="openai.resources.moderations",
        target="Moderations.create",
        provider="openai",
        operation="moderation",
        max_version="1.0",
    )
    with caplog.at_level(logging.DEBUG, logger="agentpulse"):
        apply_spec(spec)
        apply_spec(spec)
        from openai.resources.moderations import Moderations  # the hook fires on this import

    assert not isinstance(Moderations.__dict__["create"], AgentPulseWrapper)
    lines = [r for r in caplog.records if "outside the supported range" in r.getMessage()]
    assert len(lines) == 1
    assert "openai.resources.moderations:Moderations.create" in lines[0].getMessage()


def test_missing_target_is_skipped_with_a_debug_line(ap: Any, caplog: pytest.LogCaptureFixture) -> None:
    importlib.import_module("openai.resources.embeddings")
    spec = PatchSpec(
        library="openai", module="openai.resources.embeddings", target="Embeddings.nope", provider="x"
    )
    with caplog.at_level(logging.DEBUG, logger="agentpulse"):
        apply_spec(spec)
    assert any("not found" in r.getMessage() for r in caplog.records)
    assert spec not in applied()


def test_framework_plus_provider_records_once(ap: Any, make_module: Any, openai_client: Any) -> None:
    source = """
    class Agent:
        def __init__(self, client):
            self.client = client

        def ask(self, question):
            return self.client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": question}])
    """
    name = make_module(source)
    apply_spec(PatchSpec(library="framework", module=name, target="Agent.ask", provider="framework"))
    mod = importlib.import_module(name)
    result = mod.Agent(openai_client).ask("hi")
    assert result.choices[0].message.content == "Hello there"
    assert one_call(ap)["provider"] == "framework"
    openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # outside: recorded
    assert [c["data"]["provider"] for c in llm_calls(ap)] == ["framework", "openai"]


def test_wrapping_keeps_signature_name_and_coroutine_flag(ap: Any, make_module: Any) -> None:
    original_sync = Completions.__dict__["create"].__wrapped__
    original_async = AsyncCompletions.__dict__["create"].__wrapped__
    assert inspect.signature(Completions.create) == inspect.signature(original_sync)
    assert Completions.create.__name__ == "create"
    assert Completions.create.__doc__ == original_sync.__doc__
    assert inspect.signature(AsyncCompletions.create) == inspect.signature(original_async)
    assert inspect.iscoroutinefunction(AsyncCompletions.create) == inspect.iscoroutinefunction(original_async)
    name = make_module(ACME_SOURCE)
    apply_spec(_acme(name, "AcmeClient.acomplete", is_async=True))
    mod = importlib.import_module(name)
    assert inspect.iscoroutinefunction(mod.AcmeClient().acomplete)
    assert inspect.iscoroutinefunction(mod.AcmeClient.acomplete)


def test_patch_unknown_library_raises(ap: Any) -> None:
    with pytest.raises(ValueError, match="no integration for 'nope'"):
        patch("nope")


def test_patch_without_a_client_passes_through(openai_client: Any) -> None:
    patch("openai")
    try:
        result = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert result.id == "chatcmpl-1"
    finally:
        unpatch_all()


def test_disabled_sdk_patches_nothing(openai_client: Any) -> None:
    agentpulse.init(enabled=False)
    assert not isinstance(Completions.__dict__["create"], AgentPulseWrapper)
    assert openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES).id == "chatcmpl-1"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"module": "not a module"}, "module"),
        ({"target": "Class..method"}, "target"),
        ({"stream": "manager"}, "manager_request_attr"),
        ({"min_version": "banana"}, "min_version"),
        ({"min_version": "2.0", "max_version": "1.0"}, "min_version"),
        ({"stream": "sometimes"}, "stream"),
        ({"unknown_option": 1}, "unknown_option"),
    ],
)
def test_spec_is_validated(kwargs: Any, field: str) -> None:
    base: Any = {"library": "x", "module": "x.y", "target": "C.m", "provider": "x"}
    base.update(kwargs)
    with pytest.raises(ValidationError) as info:
        PatchSpec(**base)
    assert field in str(info.value)


def test_spec_is_frozen_and_has_a_key() -> None:
    spec = PatchSpec(library="x", module="x.y", target="C.m", provider="x")
    assert spec.key == "x.y:C.m"
    assert spec.dist_name == "x"
    with pytest.raises(ValidationError):
        spec.provider = "other"  # type: ignore[misc]


def test_versions() -> None:
    assert parse_version("3.57.0rc1") == (3, 57, 0)
    assert parse_version("v2") == (2,)
    assert parse_version("dev") is None
    assert version_in_range("3.57.0", "1.0", None)
    assert version_in_range("1.0", "1.0", "2")
    assert not version_in_range("2.0.0", "1.0", "2")
    assert not version_in_range("0.9.9", "1.0", None)
    assert version_in_range("garbage", "1.0", "2.0")


def test_openai_module_client_is_covered(ap: Any, openai_fake: Any, monkeypatch: Any) -> None:
    import httpx2

    http = httpx2.Client(transport=httpx2.MockTransport(openai_fake))
    monkeypatch.setattr(openai, "api_key", "k")
    monkeypatch.setattr(openai, "http_client", http)
    monkeypatch.setattr(openai, "max_retries", 0)
    monkeypatch.setattr(openai, "_client", None)
    try:
        openai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    finally:
        http.close()
    assert one_call(ap)["input_tokens"] == 120
