"""CrewAI: crew, task, agent and tool spans from its event bus; each model call once."""

from __future__ import annotations

import os
from typing import Any, Callable, List, Optional

import pytest

# CrewAI sends telemetry of its own unless told not to; nothing in these tests leaves 127.0.0.1.
os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")
pytest.importorskip("crewai")

from crewai import LLM, Agent, Crew, Process, Task
from crewai.llms.base_llm import BaseLLM
from crewai.tools import tool
from fake_openai import FakeOpenAI, text, tool_call
from fw_tree import Tree

import agentpulse
from agentpulse import frameworks

Capture = Callable[..., Any]

# CrewAI warns about its own deprecated fields when a crew is built; those warnings are not ours.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:crewai")


@tool("lookup")
def lookup(city: str) -> str:
    """Facts about a city."""
    return f"{city} has 2 million people"


def two_agent_crew(llm: Any) -> Crew:
    researcher = Agent(role="Researcher", goal="Find facts", backstory="Careful.", llm=llm, tools=[lookup])
    writer = Agent(role="Writer", goal="Write short texts", backstory="Brief.", llm=llm)
    research = Task(description="Research Paris", expected_output="Facts", agent=researcher)
    write = Task(description="Write one line about Paris", expected_output="A line", agent=writer)
    return Crew(agents=[researcher, writer], tasks=[research, write], process=Process.sequential)


def test_two_agents_on_the_fake_provider(capture: Capture, fake_openai: FakeOpenAI) -> None:
    fake_openai.script(
        tool_call("lookup", city="Paris"),
        text("Thought: I have it\nFinal Answer: Paris has 2 million people"),
        text("Thought: done\nFinal Answer: Paris, two million strong."),
    )
    cap = capture()
    assert frameworks.installed() == ["crewai"]
    llm = LLM(model="gpt-4o-mini", base_url=fake_openai.url, api_key="k")
    with agentpulse.session("crew-run") as s:
        out = two_agent_crew(llm).kickoff()
        assert agentpulse.current_span() is s.span
    assert "two million" in str(out)
    assert len(fake_openai.requests) == 3
    tree = Tree(cap.events())
    assert str(tree) == "\n".join(
        [
            "session:crew-run",
            "  crew:crew",
            "    task:Research Paris",
            "      agent:Researcher",
            "        llm_call:gpt-4o-mini",
            "        tool:lookup",
            "        llm_call:gpt-4o-mini",
            "    task:Write one line about Paris",
            "      agent:Writer",
            "        llm_call:gpt-4o-mini",
        ]
    )
    assert tree.all_ended()
    calls = tree.llm_calls()
    assert len(calls) == 3  # one per request: recorded by the openai patch, not again from CrewAI's events
    assert {c.data["provider"] for c in calls} == {"openai"}
    assert tree.one("crew").data["metadata"] == {"agents": 2, "tasks": 2, "process": "sequential"}
    assert tree.one("task", "Research Paris").data["metadata"] == {"agent": "Researcher"}
    researcher = tree.one("agent", "Researcher")
    assert researcher.data["agent"] == "Researcher"
    assert researcher.data["metadata"]["tools"] == ["lookup"]


class Canned(BaseLLM):
    """A model with no SDK beneath that reports its calls on CrewAI's event bus."""

    answers: List[str] = []
    fail: bool = False

    def call(
        self,
        messages: Any,
        tools: Optional[List[Any]] = None,
        callbacks: Optional[List[Any]] = None,
        available_functions: Optional[Any] = None,
        from_task: Any = None,
        from_agent: Any = None,
        **kwargs: Any,
    ) -> str:
        self._emit_call_started_event(messages=messages, from_task=from_task, from_agent=from_agent)
        if self.fail:
            self._emit_call_failed_event(error="quota exceeded", from_task=from_task, from_agent=from_agent)
            raise RuntimeError("quota exceeded")
        answer = self.answers.pop(0)
        from crewai.events.types.llm_events import LLMCallType

        self._emit_call_completed_event(
            response=answer,
            call_type=LLMCallType.LLM_CALL,
            from_task=from_task,
            from_agent=from_agent,
            messages=messages,
            usage={"prompt_tokens": 120, "completion_tokens": 12, "total_tokens": 132},
        )
        return answer

    def supports_function_calling(self) -> bool:
        return False


def test_a_model_no_patch_sees_is_recorded_from_crewai_events(capture: Capture) -> None:
    llm = Canned(
        model="canned-1", answers=["Thought: ok\nFinal Answer: first", "Thought: ok\nFinal Answer: second"]
    )
    cap = capture()
    a = Agent(role="One", goal="g", backstory="b", llm=llm)
    b = Agent(role="Two", goal="g", backstory="b", llm=llm)
    crew = Crew(
        agents=[a, b],
        tasks=[
            Task(description="First", expected_output="x", agent=a),
            Task(description="Second", expected_output="x", agent=b),
        ],
    )
    with agentpulse.session("canned"):
        assert str(crew.kickoff()) == "second"
    tree = Tree(cap.events())
    calls = tree.llm_calls()
    assert [c.parent.name for c in calls if c.parent] == ["One", "Two"]
    data = calls[0].data
    assert data["provider"] == "crewai" and data["model"] == "canned-1" and data["framework"] == "crewai"
    assert (data["input_tokens"], data["output_tokens"], data["usage_estimated"]) == (120, 12, False)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_failing_model_fails_its_agent_and_task(capture: Capture) -> None:
    llm = Canned(model="canned-1", fail=True)
    cap = capture()
    agent = Agent(role="Unlucky", goal="g", backstory="b", llm=llm, max_retry_limit=0)
    crew = Crew(agents=[agent], tasks=[Task(description="Try", expected_output="x", agent=agent)])
    with pytest.raises(Exception), agentpulse.session("failing"):  # noqa: B017 (CrewAI wraps the error)
        crew.kickoff()
    tree = Tree(cap.events())
    assert tree.all_ended()
    (call,) = tree.llm_calls()
    assert call.status == "error" and call.data["error"]["message"] == "quota exceeded"
    assert tree.one("agent", "Unlucky").status == "error"
    assert tree.one("task", "Try").status == "error"
    assert tree.one("crew").status == "error"


def test_switched_off_restores_the_bus(capture: Capture) -> None:
    from crewai.events.event_bus import CrewAIEventsBus

    original = CrewAIEventsBus.__dict__["emit"]
    capture()
    patched = CrewAIEventsBus.__dict__["emit"]
    assert patched is not original or frameworks.installed() == []
    agentpulse.shutdown()
    assert getattr(CrewAIEventsBus.__dict__["emit"], "__agentpulse__", False) is False
    capture(patch_crewai=False)
    assert frameworks.installed() == []
    assert getattr(CrewAIEventsBus.__dict__["emit"], "__agentpulse__", False) is False
