"""OpenAI Agents SDK: agents, tools, handoffs and guardrails as spans; each model call once."""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, Iterator, List

import pytest

pytest.importorskip("agents")
pytest.importorskip("httpx2")

import agents
import httpx2
from agents import (
    Agent,
    GuardrailFunctionOutput,
    InputGuardrailTripwireTriggered,
    OpenAIResponsesModel,
    Runner,
    function_tool,
    input_guardrail,
)
from fake_openai import Turn, _responses_body, text, tool_call
from fw_tree import Tree
from openai import AsyncOpenAI

import agentpulse
from agentpulse import frameworks

Capture = Callable[..., Any]


class Provider:
    """The OpenAI Responses API at the HTTP layer (httpx2's MockTransport), answering from a script."""

    def __init__(self, *turns: Turn) -> None:
        self.turns = list(turns)
        self.requests: List[Dict[str, Any]] = []

    def __call__(self, request: Any) -> Any:
        body = json.loads(request.content or b"{}")
        self.requests.append(body)
        turn = self.turns[min(len(self.requests), len(self.turns)) - 1]
        return httpx2.Response(200, json=_responses_body(turn, str(body.get("model"))))

    def model(self) -> Any:
        self.client = AsyncOpenAI(
            api_key="k",
            base_url="http://provider.test/v1",
            http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(self)),
        )
        return OpenAIResponsesModel(model="gpt-4o-mini", openai_client=self.client)

    async def close(self) -> None:
        await self.client.close()


@pytest.fixture(autouse=True)
def _only_our_processor() -> Iterator[None]:
    # The SDK's own processor exports to OpenAI's dashboard; these tests have no network.
    agents.set_trace_processors([])
    yield


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def build(provider: Provider) -> Agent[Any]:
    model = provider.model()
    spanish = Agent(name="Spanish", instructions="Answer in Spanish.", model=model)
    return Agent(
        name="Triage",
        instructions="Route the user.",
        tools=[get_weather],
        handoffs=[spanish],
        model=model,
    )


async def test_run_with_a_tool_call_and_a_handoff(capture: Capture) -> None:
    provider = Provider(
        tool_call("get_weather", city="Madrid"), tool_call("transfer_to_spanish"), text("Hace sol en Madrid")
    )
    cap = capture()
    assert "openai_agents" in frameworks.installed()
    with agentpulse.session("support") as s:
        result = await Runner.run(build(provider), "What's the weather in Madrid?")
        assert agentpulse.current_span() is s.span
    await provider.close()
    assert result.final_output == "Hace sol en Madrid"
    assert len(provider.requests) == 3
    tree = Tree(cap.events())
    assert str(tree) == "\n".join(
        [
            "session:support",
            "  workflow:Agent workflow",
            "    agent:Triage",
            "      llm_call:gpt-4o-mini",
            "      tool:get_weather",
            "      llm_call:gpt-4o-mini",
            "      handoff:Triage -> Spanish",
            "    agent:Spanish",
            "      llm_call:gpt-4o-mini",
        ]
    )
    assert tree.all_ended()
    calls = tree.llm_calls()
    assert len(calls) == 3  # one per request: recorded by the openai patch only
    assert {c.data["provider"] for c in calls} == {"openai"}
    assert calls[0].data["tool_calls"] == ["get_weather"]
    triage = tree.one("agent", "Triage")
    assert triage.end is not None
    assert triage.end["data"]["metadata"] == {"tools": ["get_weather"], "handoffs": ["Spanish"]}
    assert triage.data["agent"] == "Triage"
    handoff = tree.one("handoff")
    assert handoff.data["metadata"] == {"from_agent": "Triage", "to_agent": "Spanish"}


async def test_a_model_no_patch_sees_is_recorded_from_the_sdk(capture: Capture) -> None:
    provider = Provider(text("hello"))
    cap = capture(patch_openai=False)
    with agentpulse.session("s"):
        result = await Runner.run(Agent(name="Greeter", instructions="Greet.", model=provider.model()), "hi")
    await provider.close()
    assert result.final_output == "hello"
    tree = Tree(cap.events())
    assert str(tree) == "\n".join(
        [
            "session:s",
            "  workflow:Agent workflow",
            "    agent:Greeter",
            "      llm_call:gpt-4o-mini-2024-07-18",
        ]
    )
    data = tree.llm_calls()[0].data
    assert data["provider"] == "openai_agents" and data["operation"] == "responses"
    assert data["response_model"] == "gpt-4o-mini-2024-07-18"
    assert (data["input_tokens"], data["output_tokens"], data["cache_read_tokens"]) == (42, 7, 2)
    assert data["cost_usd"] is not None


async def test_a_tripped_guardrail(capture: Capture) -> None:
    @input_guardrail
    async def no_homework(ctx: Any, agent: Any, message: Any) -> GuardrailFunctionOutput:
        return GuardrailFunctionOutput(output_info={"homework": True}, tripwire_triggered=True)

    provider = Provider(text("never sent back"))
    cap = capture()
    agent = Agent(name="Tutor", instructions="Help.", model=provider.model(), input_guardrails=[no_homework])
    with pytest.raises(InputGuardrailTripwireTriggered), agentpulse.session("guarded"):
        await Runner.run(agent, "do my homework")
    await provider.close()
    tree = Tree(cap.events())
    guard = tree.one("guardrail", "no_homework")
    assert guard.parent is tree.one("agent", "Tutor")
    assert guard.end is not None and guard.end["data"]["metadata"] == {"triggered": True}
    assert tree.one("session", "guarded").status == "error"
    assert tree.all_ended()
    assert len(tree.llm_calls()) == len(provider.requests)


async def test_switched_off(capture: Capture) -> None:
    provider = Provider(text("hi"))
    cap = capture(patch_openai_agents=False)
    assert "openai_agents" not in frameworks.installed()
    with agentpulse.session("off"):
        await Runner.run(Agent(name="A", instructions="x", model=provider.model()), "hi")
    await provider.close()
    assert str(Tree(cap.events())) == "session:off\n  llm_call:gpt-4o-mini"
