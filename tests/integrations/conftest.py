"""Real OpenAI / Anthropic SDK clients wired to fake providers (``httpx2.MockTransport``)."""

from __future__ import annotations

from typing import Any, Iterator

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
