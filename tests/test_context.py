"""The current span follows work into asyncio tasks, thread pools and plain threads."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, Optional

import pytest

import agentpulse
from agentpulse.testing import Capture


@pytest.fixture
def cap(ap: Any) -> Capture:
    return Capture(ap.client)


def _owners(cap: Capture) -> Dict[str, Optional[str]]:
    return {e["data"]["name"]: e.get("span_id") for e in cap.events("event")}


async def test_gather_children_nest_under_the_enclosing_span(cap: Capture) -> None:
    @agentpulse.task
    async def step(i: int) -> int:
        await asyncio.sleep(0.001 * (3 - i))
        agentpulse.event(f"step{i}")
        return i

    async with agentpulse.session("s"):
        with agentpulse.task("fan-out"):
            assert await asyncio.gather(*(step(i) for i in range(3))) == [0, 1, 2]
    fan = cap.span("fan-out")
    steps = cap.spans("task", "step")
    assert len(steps) == 3 and all(s.parent_span_id == fan.span_id for s in steps)
    assert {s.session for s in steps} == {"s"}
    owners = _owners(cap)
    assert {owners[f"step{i}"] for i in range(3)} == {s.span_id for s in steps}


async def test_create_task_inherits_the_span_at_creation(cap: Capture) -> None:
    async def child() -> None:
        agentpulse.event("in-task")

    async with agentpulse.session("s"):
        with agentpulse.task("spawner"):
            t = asyncio.create_task(child())
        await t
        agentpulse.event("after")
    owners = _owners(cap)
    assert owners["in-task"] == cap.span("spawner").span_id
    assert owners["after"] == cap.span("s").span_id


def test_thread_pool_work_nests_under_the_submitting_span(cap: Capture) -> None:
    def work(i: int) -> int:
        agentpulse.event(f"w{i}")
        with agentpulse.task(f"t{i}"):
            pass
        return i

    with agentpulse.session("s"), ThreadPoolExecutor(max_workers=2) as pool:
        assert list(pool.map(work, range(4))) == [0, 1, 2, 3]
    sid = cap.span("s").span_id
    assert all(v == sid for v in _owners(cap).values())
    assert all(cap.span(f"t{i}").parent_span_id == sid for i in range(4))
    assert {s.trace_id for s in cap.spans()} == {cap.span("s").trace_id}


def test_plain_threads_and_thread_subclasses(cap: Capture) -> None:
    seen: Dict[str, Any] = {}

    class Worker(threading.Thread):
        def run(self) -> None:
            seen["subclass"] = agentpulse.current_span()
            agentpulse.event("from-subclass")

    def target() -> None:
        seen["target"] = agentpulse.current_span()
        agentpulse.event("from-thread")

    with agentpulse.session("s"):
        outer = agentpulse.current_span()
        threads = [threading.Thread(target=target), Worker()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert seen["target"] is outer and seen["subclass"] is outer
    sid = cap.span("s").span_id
    assert _owners(cap) == {"from-thread": sid, "from-subclass": sid}


def test_thread_started_outside_any_span_has_none(cap: Capture) -> None:
    seen: Dict[str, Any] = {}

    def target() -> None:
        seen["span"] = agentpulse.current_span()

    t = threading.Thread(target=target)
    t.start()
    t.join()
    assert seen["span"] is None


async def test_run_in_executor_and_to_thread(cap: Capture) -> None:
    def blocking(tag: str) -> str:
        agentpulse.event(tag)
        return tag

    loop = asyncio.get_running_loop()
    async with agentpulse.session("s"):
        with ThreadPoolExecutor(max_workers=1) as pool:
            assert await loop.run_in_executor(pool, blocking, "executor") == "executor"
        assert await loop.run_in_executor(None, blocking, "default-executor") == "default-executor"
        assert await asyncio.to_thread(blocking, "to-thread") == "to-thread"
    sid = cap.span("s").span_id
    assert _owners(cap) == {"executor": sid, "default-executor": sid, "to-thread": sid}


def test_span_does_not_leak_after_the_block(cap: Capture) -> None:
    assert agentpulse.current_span() is None
    with agentpulse.session("s"):
        with agentpulse.task("t"):
            assert agentpulse.current_span() is not None
        assert agentpulse.current_span() is not None and agentpulse.current_span().name == "s"  # type: ignore[union-attr]
    assert agentpulse.current_span() is None
    with pytest.raises(KeyError), agentpulse.session("raising"):
        raise KeyError("x")
    assert agentpulse.current_span() is None


def test_spans_opened_in_threads_form_one_tree(cap: Capture) -> None:
    barrier = threading.Barrier(3)

    @agentpulse.task
    def leaf(i: int) -> None:
        barrier.wait(timeout=5)
        agentpulse.event(f"leaf{i}")

    with agentpulse.session("root"):
        threads = [threading.Thread(target=leaf, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert cap.tree() == "\n".join(["session:root", "  task:leaf", "  task:leaf", "  task:leaf"])


async def test_nested_gather_inside_thread_pool_inside_task(cap: Capture) -> None:
    def in_thread() -> None:
        async def inner() -> None:
            with agentpulse.trace("deep"):
                agentpulse.event("deepest")

        asyncio.run(inner())

    run: Callable[[], None] = in_thread
    async with agentpulse.session("s"):
        with agentpulse.task("outer"):
            await asyncio.gather(asyncio.to_thread(run), asyncio.to_thread(run))
    deep = cap.spans("trace", "deep")
    assert len(deep) == 2 and all(d.parent_span_id == cap.span("outer").span_id for d in deep)
