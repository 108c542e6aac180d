"""sys.excepthook and threading.excepthook: record, then chain to the previous hooks in order."""

from __future__ import annotations

import sys
import threading
from typing import Any, Callable, List, Tuple

import pytest

import agentpulse
from agentpulse import hooks
from agentpulse.hooks import MAX_TRACEBACK, error_data

Captured = Any


def raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as e:
        return e


def test_excepthook_records_the_error_in_its_span_and_chains(
    capture: Callable[..., Captured], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: List[Tuple[Any, ...]] = []
    monkeypatch.setattr(sys, "excepthook", lambda *a: calls.append(a))
    ap = capture()
    with pytest.raises(RuntimeError) as info, agentpulse.session("nightly"):
        raise RuntimeError("boom")
    exc = info.value
    # What the interpreter does with an exception nobody caught:
    sys.excepthook(type(exc), exc, exc.__traceback__)
    assert calls == [(RuntimeError, exc, exc.__traceback__)]  # the previous hook still ran
    (start,) = ap.events("span_start")
    (error,) = ap.events("error")
    assert error["data"]["type"] == "RuntimeError" and error["data"]["message"] == "boom"
    assert "raise RuntimeError" in error["data"]["traceback"]
    assert (error["trace_id"], error["span_id"], error["session"]) == (
        start["trace_id"],
        start["span_id"],
        "nightly",
    )


def test_the_innermost_span_claims_the_error(
    capture: Callable[..., Captured], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "excepthook", lambda *a: None)
    ap = capture()
    with pytest.raises(KeyError) as info, agentpulse.session("outer"), agentpulse.session("inner"):
        raise KeyError("k")
    sys.excepthook(KeyError, info.value, info.value.__traceback__)
    starts = {e["data"]["name"]: e for e in ap.events("span_start")}
    (error,) = ap.events("error")
    assert error["span_id"] == starts["inner"]["span_id"]
    assert error["parent_span_id"] == starts["outer"]["span_id"]


def test_error_raised_from_a_span_error_is_placed_too(
    capture: Callable[..., Captured], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "excepthook", lambda *a: None)
    ap = capture()
    try:
        with agentpulse.session("job"):
            raise ValueError("low level")
    except ValueError as low:
        final = raised(RuntimeError("high level"))
        final.__cause__ = low
    sys.excepthook(RuntimeError, final, final.__traceback__)
    (start,) = ap.events("span_start")
    (error,) = ap.events("error")
    assert error["data"]["message"] == "high level" and error["span_id"] == start["span_id"]


def test_hooks_chain_in_order_and_uninstall_restores(
    capture: Callable[..., Captured], monkeypatch: pytest.MonkeyPatch
) -> None:
    order: List[str] = []
    first = lambda *a: order.append("first")  # noqa: E731
    monkeypatch.setattr(sys, "excepthook", first)
    ap = capture()
    ours = sys.excepthook
    assert ours is not first

    def second(*a: Any) -> None:  # installed after us, wrapping us, as another tool would
        order.append("second")
        ours(*a)

    sys.excepthook = second
    exc = raised(ValueError("x"))
    sys.excepthook(ValueError, exc, exc.__traceback__)
    assert order == ["second", "first"] and len(ap.events("error")) == 1
    agentpulse.shutdown()
    # Someone wrapped ours, so ours stays in their chain, passing through, recording nothing.
    assert sys.excepthook is second
    order.clear()
    sys.excepthook(ValueError, exc, exc.__traceback__)
    assert order == ["second", "first"]
    # A later init() does not wrap twice: one record per error.
    sys.excepthook = first
    ap = capture()
    assert sys.excepthook is not first
    sys.excepthook(ValueError, exc, exc.__traceback__)
    assert len(ap.events("error")) == 1
    agentpulse.shutdown()
    assert sys.excepthook is first


def test_thread_exception_is_recorded_under_the_starting_span(
    capture: Callable[..., Captured], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: List[Any] = []
    monkeypatch.setattr(threading, "excepthook", seen.append)
    ap = capture()

    def work() -> None:
        raise ValueError("in a thread")

    with agentpulse.session("pool-job"):
        t = threading.Thread(target=work, name="worker-7")
        t.start()
        t.join()
    assert len(seen) == 1 and isinstance(seen[0].exc_value, ValueError)  # chained to the previous hook
    (start,) = ap.events("span_start")
    (error,) = ap.events("error")
    assert error["data"]["type"] == "ValueError" and error["data"]["thread"] == "worker-7"
    assert error["span_id"] == start["span_id"] and error["trace_id"] == start["trace_id"]
    agentpulse.shutdown()
    assert threading.excepthook == seen.append


def test_thread_exception_outside_any_span(
    capture: Callable[..., Captured], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(threading, "excepthook", lambda args: None)
    ap = capture()
    t = threading.Thread(target=lambda: 1 / 0)
    t.start()
    t.join()
    (error,) = ap.events("error")
    assert error["data"]["type"] == "ZeroDivisionError" and error.get("span_id") is None


def test_keyboard_interrupt_is_not_recorded_but_chained(
    capture: Callable[..., Captured], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: List[Any] = []
    monkeypatch.setattr(sys, "excepthook", lambda *a: calls.append(a))
    ap = capture()
    exc = raised(KeyboardInterrupt())
    sys.excepthook(KeyboardInterrupt, exc, exc.__traceback__)
    assert len(calls) == 1 and ap.events("error") == []


def test_capture_exceptions_false_leaves_hooks_alone(
    capture: Callable[..., Captured], monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = lambda *a: None  # noqa: E731
    monkeypatch.setattr(sys, "excepthook", mine)
    capture(capture_exceptions=False)
    assert sys.excepthook is mine and not hooks.installed()


def test_error_data_keeps_both_ends_of_a_huge_traceback() -> None:
    exc = raised(ValueError("start-" + "m" * 40_000 + "-end"))
    tb = error_data(exc)["traceback"]
    assert len(tb) <= MAX_TRACEBACK + 200
    assert tb.startswith("Traceback") and tb.endswith("-end\n")
    assert "chars of traceback left out" in tb


def test_error_data_survives_an_unprintable_exception() -> None:
    class Weird(Exception):
        def __str__(self) -> str:
            raise TypeError("no")

    data = error_data(raised(Weird()))
    assert data["type"] == "Weird" and data["message"] == "<unprintable Weird>"
