"""Sessions, agents, tasks and traces: span trees, statuses, and functions kept what they were."""

from __future__ import annotations

import asyncio
import gc
import inspect
import re
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator, List

import pytest

import agentpulse
from agentpulse.testing import Capture

DECORATORS = [agentpulse.agent, agentpulse.task, agentpulse.trace]
KINDS = {agentpulse.agent: "agent", agentpulse.task: "task", agentpulse.trace: "trace"}


@pytest.fixture
def cap(ap: Any) -> Capture:
    return Capture(ap.client)


# -- sessions ------------------------------------------------------------------


def test_session_is_a_root_span_every_event_inside_carries(cap: Capture) -> None:
    with agentpulse.session("daily-email", metadata={"box": "main"}) as s:
        agentpulse.event("fetched", {"n": 3})
        s.log("drafted", words=120)
    start, ev, log, end = cap.events()[1:]
    assert start["kind"] == "span_start" and start["parent_span_id"] is None
    assert start["data"] == {"name": "daily-email", "span_kind": "session", "metadata": {"box": "main"}}
    assert {e["session"] for e in (start, ev, log, end)} == {"daily-email"}
    assert {e["trace_id"] for e in (start, ev, log, end)} == {start["trace_id"]}
    assert log["data"]["name"] == "drafted" and log["data"]["data"] == {"words": 120}
    assert end["data"]["status"] == "success" and end["data"]["duration_ms"] >= 0
    assert end["data"]["error"] is None


def test_session_error_is_recorded_and_the_same_exception_propagates(cap: Capture) -> None:
    boom = ValueError("bad inbox")
    with pytest.raises(ValueError) as info, agentpulse.session("s"):
        raise boom
    assert info.value is boom
    end = cap.events("span_end")[0]["data"]
    assert end["status"] == "error"
    assert end["error"] == {"type": "ValueError", "message": "bad inbox"}


async def test_async_with_session(cap: Capture) -> None:
    async with agentpulse.session("async-run") as s:
        await asyncio.sleep(0)
        s.set_metadata(step=2)
        agentpulse.event("inside")
    ev = cap.events("event")[0]
    assert ev["session"] == "async-run"
    assert cap.span("async-run").metadata == {"step": 2}


def test_session_result_metadata_user_and_session_id(cap: Capture) -> None:
    with agentpulse.session("chat", user_id="u_1", session_id="conv-9") as s:
        s.set_result({"reply": "sent to ada@example.com"})
        agentpulse.set_metadata(turns=4)
    end = cap.events("span_end")[0]["data"]
    assert end["metadata"] == {"user_id": "u_1", "session_id": "conv-9", "turns": 4}
    assert end["result"] == {"reply": "sent to [REDACTED:email]"}


def test_set_user_targets_the_enclosing_session(cap: Capture) -> None:
    with agentpulse.session("chat"), agentpulse.task("reply"):
        agentpulse.set_user("u_7")
    assert cap.span("chat").metadata == {"user_id": "u_7"}
    assert cap.span("reply").metadata == {}


def test_session_as_decorator_bare_and_named(cap: Capture) -> None:
    @agentpulse.session
    def nightly() -> int:
        return 1

    @agentpulse.session("weekly", metadata={"k": 1})
    def other() -> int:
        return 2

    assert nightly() == 1 and other() == 2
    assert [s.name for s in cap.spans("session")] == ["nightly", "weekly"]
    assert cap.span("weekly").metadata == {"k": 1}


def test_session_inside_a_span_is_a_child_in_the_same_trace(cap: Capture) -> None:
    with agentpulse.session("outer"):
        with agentpulse.task("step"), agentpulse.session("inner"):
            agentpulse.event("deep")
        agentpulse.event("back")
    outer, inner = cap.span("outer"), cap.span("inner")
    assert inner.trace_id == outer.trace_id
    assert inner.parent_span_id == cap.span("step").span_id
    assert inner.start is not None and inner.start["data"]["parent_session"] == "outer"
    sessions = {e["data"]["name"]: e["session"] for e in cap.events("event")}
    assert sessions == {"deep": "inner", "back": "outer"}


def test_sequential_sessions_are_separate_traces(cap: Capture) -> None:
    for name in ("a", "b"):
        with agentpulse.session(name):
            pass
    a, b = cap.roots()
    assert a.trace_id != b.trace_id


def test_capture_metadata_off_records_none(capture: Callable[..., Any]) -> None:
    cap = Capture(capture(capture_metadata=False).client)
    with agentpulse.session("s", metadata={"secret": 1}) as s:
        s.set_metadata(more=2)
        agentpulse.set_metadata(x=3)
    assert cap.span("s").metadata == {}


def test_span_status_for_interrupts_and_exits(cap: Capture) -> None:
    with pytest.raises(KeyboardInterrupt), agentpulse.session("interrupted"):
        raise KeyboardInterrupt
    with pytest.raises(SystemExit), agentpulse.session("clean-exit"):
        raise SystemExit(0)
    with pytest.raises(SystemExit), agentpulse.session("bad-exit"):
        raise SystemExit(3)
    assert cap.span("interrupted").status == "cancelled"
    assert cap.span("clean-exit").status == "success"
    assert cap.span("bad-exit").status == "error"


async def test_cancelled_task_ends_its_span_cancelled(cap: Capture) -> None:
    started = asyncio.Event()

    @agentpulse.task
    async def forever() -> None:
        started.set()
        await asyncio.sleep(3600)

    t = asyncio.ensure_future(forever())
    await started.wait()
    t.cancel()
    with pytest.raises(asyncio.CancelledError):
        await t
    assert cap.span("forever").status == "cancelled"


def test_one_scope_object_shared_by_nested_and_repeated_blocks(cap: Capture) -> None:
    step = agentpulse.task("step")
    with step, step:
        pass
    with step:
        pass
    spans = cap.spans("task", "step")
    assert len(spans) == 3
    assert spans[1].parent_span_id == spans[0].span_id
    assert all(s.status == "success" for s in spans)


async def test_one_scope_object_shared_by_concurrent_tasks(cap: Capture) -> None:
    step = agentpulse.task("step")
    gate = asyncio.Event()

    async def worker(i: int) -> None:
        async with step as run:
            run.set_metadata(i=i)
            if i == 0:
                await gate.wait()
            else:
                gate.set()
            agentpulse.event(f"e{i}")

    with agentpulse.session("s"):
        await asyncio.gather(worker(0), worker(1))
    spans = {s.metadata["i"]: s for s in cap.spans("task")}
    assert {e["data"]["name"]: e["span_id"] for e in cap.events("event")} == {
        "e0": spans[0].span_id,
        "e1": spans[1].span_id,
    }
    assert all(s.status == "success" for s in spans.values())


# -- decorators keep what the function was ---------------------------------------


@pytest.mark.parametrize("deco", DECORATORS, ids=lambda d: d.__name__)
def test_decorators_keep_kind_signature_name_doc(deco: Callable[..., Any]) -> None:
    def f(a: int, b: str = "x", *, c: float = 1.0) -> int:
        """Doc of f."""
        return a

    async def af(a: int) -> int:
        return a

    def g(n: int) -> Iterator[int]:
        yield n

    async def ag(n: int) -> AsyncIterator[int]:
        yield n

    for fn in (f, af, g, ag):
        for wrapped in (deco(fn), deco(name="named")(fn), deco(metadata={"v": 1})(fn), deco("pos")(fn)):
            assert wrapped.__wrapped__ is fn
            assert wrapped.__name__ == fn.__name__ and wrapped.__doc__ == fn.__doc__
            assert inspect.signature(wrapped) == inspect.signature(fn)
            assert inspect.iscoroutinefunction(wrapped) == inspect.iscoroutinefunction(fn)
            assert inspect.isgeneratorfunction(wrapped) == inspect.isgeneratorfunction(fn)
            assert inspect.isasyncgenfunction(wrapped) == inspect.isasyncgenfunction(fn)


@pytest.mark.parametrize("deco", DECORATORS, ids=lambda d: d.__name__)
async def test_decorators_on_every_function_kind(cap: Capture, deco: Callable[..., Any]) -> None:
    kind = KINDS[deco]

    @deco
    def f(x: int) -> int:
        agentpulse.event("in-f")
        return x * 2

    @deco(name="af-named", metadata={"v": 1})
    async def af(x: int) -> int:
        await asyncio.sleep(0)
        agentpulse.event("in-af")
        return x + 1

    @deco
    def g(n: int) -> Iterator[int]:
        for i in range(n):
            agentpulse.event(f"g{i}")
            yield i
        return "g-done"  # type: ignore[misc]

    @deco
    async def ag(n: int) -> AsyncIterator[int]:
        for i in range(n):
            await asyncio.sleep(0)
            agentpulse.event(f"ag{i}")
            yield i

    def consume() -> Any:
        return (yield from g(2))

    with agentpulse.session("s"):
        assert f(2) == 4
        assert await af(2) == 3
        gen = consume()
        assert list(gen) == [0, 1]
        items = [i async for i in ag(2)]
        assert items == [0, 1]
    assert _gen_return(g(0)) == "g-done"

    spans = cap.spans(kind)
    assert [s.name for s in spans] == ["f", "af-named", "g", "ag", "g"]
    by_name = {s.name: s for s in spans[:4]}
    assert by_name["af-named"].metadata == {"v": 1}
    for s in by_name.values():
        assert s.status == "success"
        assert s.parent is not None and s.parent.name == "s"
    owners = {e["data"]["name"]: e["span_id"] for e in cap.events("event")}
    assert owners["in-f"] == by_name["f"].span_id
    assert owners["in-af"] == by_name["af-named"].span_id
    assert owners["g0"] == owners["g1"] == by_name["g"].span_id
    assert owners["ag0"] == owners["ag1"] == by_name["ag"].span_id


def _gen_return(gen: Iterator[Any]) -> Any:
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        return stop.value


@pytest.mark.parametrize("deco", DECORATORS, ids=lambda d: d.__name__)
async def test_exceptions_recorded_and_reraised_unchanged(cap: Capture, deco: Callable[..., Any]) -> None:
    err = RuntimeError("nope")
    err.extra = 42  # type: ignore[attr-defined]

    @deco
    def f() -> None:
        raise err

    @deco
    async def af() -> None:
        raise err

    @deco
    def g() -> Iterator[int]:
        yield 1
        raise err

    @deco
    async def ag() -> AsyncIterator[int]:
        yield 1
        raise err

    for call in (f, lambda: list(g())):
        with pytest.raises(RuntimeError) as info:
            call()
        assert info.value is err
    with pytest.raises(RuntimeError) as info:
        await af()
    assert info.value is err
    with pytest.raises(RuntimeError) as info:
        _ = [x async for x in ag()]
    assert info.value is err and info.value.extra == 42  # type: ignore[attr-defined]
    spans = cap.spans(KINDS[deco])
    assert len(spans) == 4
    for s in spans:
        assert s.status == "error" and s.error == {"type": "RuntimeError", "message": "nope"}


def test_return_values_are_the_same_objects(cap: Capture) -> None:
    obj = object()

    @agentpulse.task
    def f() -> object:
        return obj

    assert f() is obj


def test_decorators_before_init_are_noops() -> None:
    assert agentpulse.get_client() is None

    @agentpulse.task
    def f(x: int) -> int:
        return x

    @agentpulse.trace
    def g() -> Iterator[int]:
        yield 1
        return 5  # type: ignore[misc]

    @agentpulse.agent
    class A:
        def run(self) -> str:
            return "ran"

    assert f(3) == 3
    assert _gen_return(g()) == 5
    assert A().run() == "ran"
    with agentpulse.session("x") as s:
        s.log("ignored")
        s.set_result(1)
        agentpulse.set_metadata(a=1)
        assert s.span is None and s.trace_id is None
    assert agentpulse.current_span() is None


async def test_async_decorators_before_init_are_noops() -> None:
    @agentpulse.task
    async def af() -> int:
        return 1

    @agentpulse.task
    async def ag() -> AsyncIterator[int]:
        yield 1
        yield 2

    assert await af() == 1
    assert [x async for x in ag()] == [1, 2]


def test_decorated_before_init_records_after_init(capture: Callable[..., Any]) -> None:
    @agentpulse.task
    def early() -> int:
        return 1

    cap = Capture(capture().client)
    early()
    assert [s.name for s in cap.spans()] == ["early"]


def test_disabled_client_records_nothing(capture: Callable[..., Any]) -> None:
    capture(enabled=False)

    @agentpulse.task
    def f() -> int:
        return 1

    with agentpulse.session("s") as s:
        assert f() == 1
        assert s.span is None


# -- generators ------------------------------------------------------------------------


def test_generator_span_ends_on_exhaustion_close_and_gc(cap: Capture) -> None:
    @agentpulse.task(name="gen")
    def gen(tag: str) -> Iterator[int]:
        yield from range(10)

    assert list(gen("full")) == list(range(10))
    closed = gen("closed")
    assert next(closed) == 0
    closed.close()
    collected = gen("collected")
    next(collected)
    del collected
    gc.collect()
    never_started = gen("never")
    del never_started
    statuses = [s.status for s in cap.spans("task", "gen")]
    assert statuses == ["success", "cancelled", "cancelled"]


def test_generator_send_throw_and_return_value_pass_through(cap: Capture) -> None:
    @agentpulse.trace
    def echo() -> Iterator[Any]:
        received = []
        while True:
            try:
                value = yield len(received)
            except KeyError:
                value = "caught"
            if value is None:
                return received
            received.append(value)

    g = echo()
    assert next(g) == 0
    assert g.send("a") == 1
    assert g.throw(KeyError("k")) == 2
    with pytest.raises(StopIteration) as stop:
        g.send(None)
    assert stop.value.value == ["a", "caught"]
    assert cap.span("echo").status == "success"


def test_generator_span_is_not_current_while_the_consumer_runs(cap: Capture) -> None:
    @agentpulse.task
    def producer() -> Iterator[int]:
        yield 1
        yield 2

    with agentpulse.session("s"):
        outer = agentpulse.current_span()
        for _ in producer():
            assert agentpulse.current_span() is outer
            agentpulse.event("consumer")
    consumer = cap.events("event")
    assert {e["span_id"] for e in consumer} == {cap.span("s").span_id}


async def test_async_generator_aclose_and_exhaustion(cap: Capture) -> None:
    @agentpulse.task(name="agen")
    async def agen(tag: str) -> AsyncIterator[int]:
        for i in range(5):
            yield i

    assert [i async for i in agen("full")] == list(range(5))
    closing = agen("closed")
    assert await closing.__anext__() == 0
    await closing.aclose()
    statuses = [s.status for s in cap.spans("task", "agen")]
    assert statuses == ["success", "cancelled"]


def test_async_generator_garbage_collected_in_a_loop(cap: Capture) -> None:
    cleaned: List[str] = []

    @agentpulse.task(name="agen")
    async def agen() -> AsyncIterator[int]:
        try:
            yield 1
            yield 2
        finally:
            cleaned.append("inner finally")

    async def main() -> None:
        it = agen()
        assert await it.__anext__() == 1
        del it
        gc.collect()
        await asyncio.sleep(0.01)

    asyncio.run(main())
    assert cleaned == ["inner finally"]
    assert cap.span("agen").status == "cancelled"


async def test_async_generator_asend_and_athrow(cap: Capture) -> None:
    @agentpulse.trace
    async def acc() -> AsyncIterator[int]:
        total = 0
        while True:
            try:
                got = yield total
            except ValueError:
                got = 100
            total += got or 0

    it = acc()
    assert await it.__anext__() == 0
    assert await it.asend(5) == 5
    assert await it.athrow(ValueError("x")) == 105
    await it.aclose()
    assert cap.span("acc").status == "cancelled"


# -- methods and classes ---------------------------------------------------------------


def test_methods_static_and_class_methods(cap: Capture) -> None:
    class Box:
        factor = 3

        @agentpulse.task
        def scale(self, x: int) -> int:
            return x * self.factor

        @agentpulse.trace
        @staticmethod
        def plain(x: int) -> int:
            return x

        @classmethod
        @agentpulse.trace
        def cls_factor(cls) -> int:
            return cls.factor

    b = Box()
    assert b.scale(2) == 6 and Box.plain(4) == 4 and Box.cls_factor() == 3
    assert [s.name for s in cap.spans()] == ["Box.scale", "Box.plain", "Box.cls_factor"]


def test_agent_class_names_the_agent_for_spans_its_methods_open(cap: Capture) -> None:
    @agentpulse.agent
    class Marcus:
        """The email agent."""

        def run(self, box: str) -> List[str]:
            mails = self.fetch(box)
            with agentpulse.task("rank"):
                return sorted(mails)

        @agentpulse.task
        def fetch(self, box: str) -> List[str]:
            return [box + "2", box + "1"]

        def _helper(self) -> int:
            return 1

        @staticmethod
        def version() -> str:
            return "1"

    m = Marcus()
    with agentpulse.session("daily"):
        assert m.run("in") == ["in1", "in2"]
    assert Marcus.version() == "1" and m._helper() == 1
    assert Marcus.__doc__ == "The email agent."
    assert cap.tree() == "\n".join(
        [
            "session:daily",
            "  agent:Marcus.run",
            "    task:Marcus.fetch",
            "    task:rank",
            "agent:Marcus.version",
        ]
    )
    for name in ("Marcus.run", "Marcus.fetch", "rank"):
        assert cap.span(name).agent == "Marcus"
    assert cap.span("daily").agent is None


def test_agent_class_with_a_name_and_agent_functions(cap: Capture) -> None:
    @agentpulse.agent(name="researcher", metadata={"tier": "cheap"})
    class R:
        def go(self) -> int:
            return self.inner()

        @agentpulse.trace
        def inner(self) -> int:
            return 7

    @agentpulse.agent
    def writer() -> None:
        with agentpulse.task("draft"):
            pass

    assert R().go() == 7
    writer()
    assert cap.span("researcher.go").agent == "researcher"
    assert cap.span("researcher.go").metadata == {"tier": "cheap"}
    assert cap.span("R.inner").agent == "researcher"
    assert cap.span("draft").agent == "writer"


async def test_agent_class_async_methods(cap: Capture) -> None:
    @agentpulse.agent
    class Bot:
        async def answer(self, q: str) -> str:
            await asyncio.sleep(0)
            return q.upper()

        async def stream(self) -> AsyncIterator[str]:
            yield "a"

    assert inspect.iscoroutinefunction(Bot.answer) and inspect.isasyncgenfunction(Bot.stream)
    assert await Bot().answer("hi") == "HI"
    assert [x async for x in Bot().stream()] == ["a"]
    assert [s.name for s in cap.spans("agent")] == ["Bot.answer", "Bot.stream"]


async def test_concurrent_calls_of_one_decorated_function_have_their_own_spans(cap: Capture) -> None:
    @agentpulse.task
    async def job(i: int) -> int:
        await asyncio.sleep(0.001 * (3 - i))
        agentpulse.event(f"job{i}")
        return i

    with agentpulse.session("s"):
        assert await asyncio.gather(*(job(i) for i in range(3))) == [0, 1, 2]
    spans = cap.spans("task", "job")
    assert len({s.span_id for s in spans}) == 3
    owners = {e["data"]["name"]: e["span_id"] for e in cap.events("event")}
    assert len(set(owners.values())) == 3
    assert {s.span_id for s in spans} == set(owners.values())


def test_with_block_names_default_to_the_kind(cap: Capture) -> None:
    with agentpulse.trace():
        pass
    with agentpulse.task(name="named-task"):
        pass
    assert [s.name for s in cap.spans()] == ["trace", "named-task"]


# -- the docs' examples run -------------------------------------------------------------

DOCS = Path(__file__).resolve().parent.parent / "docs"
DOC_PAGES = [
    "sessions.md",
    "decorators.md",
    "crons.md",
    "memory.md",
    "privacy.md",
    "budgets.md",
    "testing.md",
]


def _python_blocks() -> List[Any]:
    out = []
    for page in DOC_PAGES:
        text = (DOCS / page).read_text(encoding="utf-8")
        for i, block in enumerate(re.findall(r"```python\n(.*?)```", text, re.S)):
            out.append(pytest.param(block, id=f"{page}#{i}"))
    return out


@pytest.mark.parametrize("source", _python_blocks())
def test_docs_examples_run(source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    try:
        exec(compile(source, "<docs>", "exec"), {"__name__": "docs_example"})
    finally:
        agentpulse.shutdown(timeout=2)
