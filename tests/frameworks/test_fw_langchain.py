"""LangChain / LangGraph: runs become spans, and every model call is recorded exactly once."""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Dict, List

import pytest

pytest.importorskip("langchain_core")

from fake_openai import FakeOpenAI, text
from fw_tree import Tree
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models import FakeListChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda, RunnableParallel
from langchain_core.tools import tool
from typing_extensions import TypedDict

import agentpulse
from agentpulse import frameworks

Capture = Callable[..., Any]


class State(TypedDict):
    question: str
    answer: str
    rounds: int


def tree_of(cap: Any) -> Tree:
    return Tree(cap.events())


def fake_chain(*answers: str) -> Any:
    model = FakeListChatModel(responses=list(answers) or ["fine"])
    return ChatPromptTemplate.from_messages([("user", "{q}")]) | model | StrOutputParser()


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


class Shelf(BaseRetriever):
    """Two documents, whatever the query."""

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> List[Document]:
        return [Document(page_content=f"{query} one"), Document(page_content=f"{query} two")]


def test_chain_with_fake_chat_model_is_a_tree(capture: Capture) -> None:
    cap = capture()
    assert "langchain" in frameworks.installed()
    with agentpulse.session("ask"):
        out = fake_chain("Paris").invoke({"q": "capital of France?"})
    assert out == "Paris"
    tree = tree_of(cap)
    assert str(tree) == "\n".join(
        [
            "session:ask",
            "  chain:RunnableSequence",
            "    chain:ChatPromptTemplate",
            "    llm_call:fakelistchatmodel",
            "    chain:StrOutputParser",
        ]
    )
    assert tree.all_ended()
    (call,) = tree.llm_calls()
    assert call.parent is tree.one("chain", "RunnableSequence")
    data = call.data
    assert data["provider"] == "fakelistchatmodel"
    assert data["framework"] == "langchain" and data["model_class"] == "FakeListChatModel"
    assert data["status"] == "success"
    # The fake model reports no usage: estimated, and flagged as such, never a silent 0.
    assert data["usage_estimated"] is True and data["input_tokens"] > 0 and data["output_tokens"] > 0
    assert data["input"] is None and data["output"] is None  # capture_messages is off
    assert agentpulse.current_span() is None


def test_usage_the_model_reports_is_used(capture: Capture) -> None:
    cap = capture()
    message = AIMessage(
        content="hi",
        usage_metadata={
            "input_tokens": 30,
            "output_tokens": 5,
            "total_tokens": 35,
            "input_token_details": {"cache_read": 10},
            "output_token_details": {"reasoning": 2},
        },
        response_metadata={"model_name": "gpt-4o-mini", "finish_reason": "stop"},
    )
    model = GenericFakeChatModel(messages=iter([message]))
    with agentpulse.session("s"):
        model.invoke("hello")
    (call,) = tree_of(cap).llm_calls()
    data = call.data
    assert (data["input_tokens"], data["output_tokens"]) == (30, 5)
    assert (data["cache_read_tokens"], data["reasoning_tokens"]) == (10, 2)
    assert data["usage_estimated"] is False
    assert data["response_model"] == "gpt-4o-mini" and data["finish_reason"] == "stop"
    assert data["cost_usd"] is not None and data["cost_source"] == "table"


def test_langgraph_two_nodes_and_a_conditional_edge(capture: Capture) -> None:
    graph_mod = pytest.importorskip("langgraph.graph")
    model = FakeListChatModel(responses=["draft", "final"])

    def draft(state: State) -> Dict[str, Any]:
        reply = model.invoke(state["question"])
        return {"answer": str(reply.content), "rounds": state["rounds"] + 1}

    def review(state: State) -> Dict[str, Any]:
        return {"answer": state["answer"] + " (reviewed)"}

    def route(state: State) -> str:
        return "review" if state["rounds"] < 2 else graph_mod.END

    builder = graph_mod.StateGraph(State)
    builder.add_node("draft", draft)
    builder.add_node("review", review)
    builder.add_edge(graph_mod.START, "draft")
    builder.add_conditional_edges("draft", route, ["review", graph_mod.END])
    builder.add_edge("review", graph_mod.END)
    app = builder.compile()

    cap = capture()
    with agentpulse.session("graph"):
        result = app.invoke({"question": "q", "answer": "", "rounds": 0})
    assert result["answer"] == "draft (reviewed)"
    tree = tree_of(cap)
    assert str(tree) == "\n".join(
        [
            "session:graph",
            "  graph:LangGraph",
            "    node:draft",
            "      llm_call:fakelistchatmodel",
            "      chain:route",
            "    node:review",
        ]
    )
    assert tree.all_ended()
    assert tree.one("node", "draft").data["metadata"] == {"step": 1}
    assert tree.one("node", "review").data["metadata"] == {"step": 2}
    assert agentpulse.current_span() is None


def test_tools_retrievers_and_parallel_branches(capture: Capture) -> None:
    cap = capture()
    both = RunnableParallel(total=RunnableLambda(lambda d: add.invoke({"a": d["a"], "b": 2})), docs=Shelf())
    with agentpulse.session("work"):
        out = both.invoke({"a": 1})
    assert out["total"] == 3 and len(out["docs"]) == 2
    tree = tree_of(cap)
    parallel = tree.one("chain", "RunnableParallel<total,docs>")
    assert parallel.parent is tree.one("session", "work")
    assert tree.one("tool", "add").parent is tree.one("chain", "RunnableLambda")
    assert tree.one("chain", "RunnableLambda").parent is parallel
    shelf = tree.one("retriever", "Shelf")
    assert shelf.parent is parallel
    assert shelf.end is not None and shelf.end["data"]["metadata"] == {"documents": 2}


def test_errors_keep_the_exception_and_mark_the_span(capture: Capture) -> None:
    cap = capture()
    boom = ValueError("no such city")

    def fail(_: Any) -> Any:
        raise boom

    chain = fake_chain("x") | RunnableLambda(fail)
    with pytest.raises(ValueError) as info, agentpulse.session("err"):
        chain.invoke({"q": "?"})
    assert info.value is boom
    tree = tree_of(cap)
    lam = tree.one("chain", "fail")
    assert lam.status == "error"
    assert lam.end is not None and lam.end["data"]["error"] == {
        "type": "ValueError",
        "message": "no such city",
    }
    assert tree.one("chain", "RunnableSequence").status == "error"
    assert tree.llm_calls()[0].status == "success"


def test_async_invoke_and_stream_have_the_same_shape(capture: Capture) -> None:
    cap = capture()
    chain = fake_chain("a", "b")

    async def main() -> List[str]:
        async with agentpulse.session("async") as s:
            first = await chain.ainvoke({"q": "1"})
            parts = [p async for p in chain.astream({"q": "2"})]
            outer = s.span
        assert agentpulse.current_span() is None
        return [first, "".join(parts), outer.name if outer else ""]

    assert asyncio.run(main()) == ["a", "b", "async"]
    tree = tree_of(cap)
    session = tree.one("session", "async")
    seqs = tree.find("chain", "RunnableSequence")
    assert [s.parent for s in seqs] == [session, session]
    calls = tree.llm_calls()
    assert len(calls) == 2
    assert sorted(c.parent.span_id for c in calls if c.parent) == sorted(s.span_id for s in seqs)
    assert calls[1].data["streaming"] is True and calls[1].data["time_to_first_token_ms"] is not None


def test_threads_of_a_batch_nest_under_their_own_run(capture: Capture) -> None:
    cap = capture()
    chain = fake_chain("x")
    with agentpulse.session("batch"):
        assert chain.batch([{"q": str(i)} for i in range(4)], config={"max_concurrency": 4}) == ["x"] * 4
    tree = tree_of(cap)
    seqs = tree.find("chain", "RunnableSequence")
    assert len(seqs) == 4
    for seq in seqs:
        assert [c.kind for c in seq.children].count("llm_call") == 1


def test_capture_messages_records_prompts_and_answers(capture: Capture) -> None:
    cap = capture(capture_messages=True)
    with agentpulse.session("s"):
        fake_chain("Paris").invoke({"q": "capital?"})
    tree = tree_of(cap)
    (call,) = tree.llm_calls()
    assert call.data["input"] == [{"role": "human", "content": "capital?"}]
    assert call.data["output"] == "Paris"
    seq = tree.one("chain", "RunnableSequence")
    assert seq.data["metadata"]["input"] == {"q": "capital?"}
    assert seq.end is not None and seq.end["data"]["result"] == "Paris"


def test_switched_off_and_after_shutdown_nothing_is_recorded(capture: Capture) -> None:
    from langchain_core.tracers.context import _configure_hooks

    cap = capture(patch_langchain=False)
    assert "langchain" not in frameworks.installed()
    with agentpulse.session("off"):
        fake_chain().invoke({"q": "?"})
    assert str(tree_of(cap)) == "session:off"
    agentpulse.shutdown()
    cap = capture()
    hooks = len(_configure_hooks)
    agentpulse.init()  # the same client: nothing registered twice
    assert len(_configure_hooks) == hooks
    agentpulse.shutdown()
    assert len(_configure_hooks) == hooks - 1
    fake_chain().invoke({"q": "?"})  # no client: the handler is not even called


def test_chat_openai_is_recorded_once_by_the_openai_patch(capture: Capture, fake_openai: FakeOpenAI) -> None:
    pytest.importorskip("langchain_openai")
    from langchain_openai import ChatOpenAI

    cap = capture()
    fake_openai.script(text("Paris is the capital"))
    model = ChatOpenAI(model="gpt-4o-mini", base_url=fake_openai.url, api_key="k", max_retries=0)
    chain = ChatPromptTemplate.from_messages([("user", "{q}")]) | model | StrOutputParser()
    with agentpulse.session("openai"):
        assert chain.invoke({"q": "capital?"}) == "Paris is the capital"
        streamed = "".join(str(chunk.content) for chunk in model.stream("again"))
        assert asyncio.run(chain.ainvoke({"q": "async"})) == "Paris is the capital"
    assert streamed.strip() == "Paris is the capital"
    assert len(fake_openai.requests) == 3
    tree = tree_of(cap)
    calls = tree.llm_calls()
    assert len(calls) == 3, str(tree)  # one per request: the callback did not record them again
    assert {c.data["provider"] for c in calls} == {"openai"}
    seqs = tree.find("chain", "RunnableSequence")
    session = tree.one("session", "openai")
    assert [c.parent for c in calls] == [seqs[0], session, seqs[1]]
    first = calls[0].data
    assert (first["input_tokens"], first["output_tokens"], first["cache_read_tokens"]) == (42, 7, 2)
    assert first["response_model"] == "gpt-4o-mini-2024-07-18"
    assert calls[1].data["streaming"] is True


def test_a_model_run_outside_any_span_gets_a_span_of_its_own(
    capture: Capture, fake_openai: FakeOpenAI
) -> None:
    pytest.importorskip("langchain_openai")
    from langchain_openai import ChatOpenAI

    cap = capture()
    fake_openai.script(text("hi"))
    ChatOpenAI(model="gpt-4o-mini", base_url=fake_openai.url, api_key="k").invoke("hello")
    FakeListChatModel(responses=["yo"]).invoke("hello")
    tree = tree_of(cap)
    assert (
        str(tree)
        == "llm:ChatOpenAI\n  llm_call:gpt-4o-mini\nllm:FakeListChatModel\n  llm_call:fakelistchatmodel"
    )
    assert tree.all_ended()


def test_async_runs_leave_nothing_current_behind(capture: Capture) -> None:
    # LangChain ends async runs in a copy of the caller's context: what the run made current must
    # not outlive it in the caller's context.
    cap = capture()

    async def main() -> None:
        with agentpulse.session("outer"):
            await fake_chain("a").ainvoke({"q": "1"})
            await RunnableLambda(lambda x: x).ainvoke(1)
            with agentpulse.task("after"):
                pass
            agentpulse.event("noted")

    asyncio.run(main())
    tree = tree_of(cap)
    session = tree.one("session", "outer")
    assert tree.one("task", "after").parent is session
    (noted,) = [e for e in cap.events("event") if e["data"]["name"] == "noted"]
    assert noted["span_id"] == session.span_id


def test_chat_openai_with_the_openai_patch_off_is_recorded_from_the_callback(
    capture: Capture, fake_openai: FakeOpenAI
) -> None:
    pytest.importorskip("langchain_openai")
    from langchain_openai import ChatOpenAI

    cap = capture(patch_openai=False)
    fake_openai.script(text("Paris"))
    with agentpulse.session("s"):
        ChatOpenAI(model="gpt-4o-mini", base_url=fake_openai.url, api_key="k").invoke("capital?")
    tree = tree_of(cap)
    (call,) = tree.llm_calls()
    assert call.parent is tree.one("session", "s")
    data = call.data
    assert data["provider"] == "openai" and data["framework"] == "langchain"
    assert (data["model"], data["response_model"]) == ("gpt-4o-mini", "gpt-4o-mini-2024-07-18")
    assert (data["input_tokens"], data["output_tokens"], data["cache_read_tokens"]) == (42, 7, 2)
    assert data["usage_estimated"] is False and data["cost_source"] == "table"
