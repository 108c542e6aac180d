"""Real OpenAI / Anthropic SDK clients wired to fake providers (``httpx2.MockTransport``)."""

from __future__ import annotations

import importlib
import sys
import textwrap
import uuid
from typing import Any, Callable, Iterator, List

import httpx2
import pytest
from sdk_fakes import FakeProvider, anthropic_routes, openai_routes

# -- fixtures ------------------------------------------------------------------------


@pytest.fixture
def openai_fake() -> FakeProvider:
    fake = FakeProvider()
    openai_routes(fake)
    return fake


@pytest.fixture
def anthropic_fake() -> FakeProvider:
    fake = FakeProvider()
    anthropic_routes(fake)
    return fake


@pytest.fixture
def openai_client(openai_fake: FakeProvider) -> Iterator[Any]:
    import openai

    http = httpx2.Client(transport=httpx2.MockTransport(openai_fake))
    client = openai.OpenAI(
        api_key="sk-test", base_url="https://api.openai.test/v1", http_client=http, max_retries=0
    )
    yield client
    client.close()


@pytest.fixture
async def async_openai_client(openai_fake: FakeProvider) -> Any:
    import openai

    http = httpx2.AsyncClient(transport=httpx2.MockTransport(openai_fake))
    client = openai.AsyncOpenAI(
        api_key="sk-test", base_url="https://api.openai.test/v1", http_client=http, max_retries=0
    )
    yield client
    await client.close()


@pytest.fixture
def anthropic_client(anthropic_fake: FakeProvider) -> Iterator[Any]:
    import anthropic

    http = httpx2.Client(transport=httpx2.MockTransport(anthropic_fake))
    client = anthropic.Anthropic(
        api_key="sk-ant-test", base_url="https://api.anthropic.test", http_client=http, max_retries=0
    )
    yield client
    client.close()


@pytest.fixture
async def async_anthropic_client(anthropic_fake: FakeProvider) -> Any:
    import anthropic

    http = httpx2.AsyncClient(transport=httpx2.MockTransport(anthropic_fake))
    client = anthropic.AsyncAnthropic(
        api_key="sk-ant-test", base_url="https://api.anthropic.test", http_client=http, max_retries=0
    )
    yield client
    await client.close()


@pytest.fixture
def make_module(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], str]]:
    """``make_module(source)`` writes an importable module of the test's own; returns its name."""
    monkeypatch.syspath_prepend(str(tmp_path))
    names: List[str] = []

    def make(source: str) -> str:
        name = f"apuser_{uuid.uuid4().hex[:10]}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        importlib.invalidate_caches()
        names.append(name)
        return name

    yield make
    for name in names:
        sys.modules.pop(name, None)
