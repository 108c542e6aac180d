"""Budgets per hour and per session, the raise mode, and the loop detector."""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, List

import pytest
from frozen_clock import frozen

import agentpulse
from agentpulse.guards import BudgetExceeded, Guards
from agentpulse.testing import Capture


def _call(guards: Guards, cost: Any, model: str = "gpt-4o", phash: str = "h") -> None:
    span = agentpulse.current_span()
    guards.before_call("openai", model, phash, span)
    guards.after_call({"provider": "openai", "model": model, "cost_usd": cost}, span)


def _alerts(cap: Capture, guard: str) -> List[Dict[str, Any]]:
    return [a for a in cap.alerts() if a["details"].get("guard") == guard]


def test_budget_exceeded_is_a_runtime_error_with_details() -> None:
    exc = BudgetExceeded("x", budget="session", limit_usd=1.0, spent_usd=1.5, session="s")
    assert isinstance(exc, RuntimeError) and agentpulse.BudgetExceeded is BudgetExceeded
    assert (exc.budget, exc.limit_usd, exc.spent_usd, exc.session) == ("session", 1.0, 1.5, "s")
    assert isinstance(BudgetExceeded(), RuntimeError)


def test_no_budget_no_alert(capture: Callable[..., Any]) -> None:
    ap = capture()
    cap = Capture(ap.client)
    for i in range(20):
        _call(ap.client.guards, 10.0, phash=f"p{i}")
    assert cap.alerts() == []


def test_hourly_budget_alerts_once_per_window(capture: Callable[..., Any]) -> None:
    with frozen("2026-11-26 02:00:00") as clock:
        ap = capture(budget_usd_per_hour=1.0)
        guards = ap.client.guards
        cap = Capture(ap.client)
        _call(guards, 0.6, phash="a")
        assert _alerts(cap, "budget") == []
        _call(guards, 0.5, phash="b")  # crosses $1.00
        _call(guards, 0.5, phash="c")  # still over: no second alert in this window
        alerts = _alerts(cap, "budget")
        assert len(alerts) == 1
        assert alerts[0]["severity"] == "error"
        assert alerts[0]["details"]["budget"] == "hour"
        assert alerts[0]["details"]["spent_usd"] == pytest.approx(1.1)
        assert guards.hour_spent() == pytest.approx(1.6)
        clock.tick(3601)  # the old spend leaves the window
        assert guards.hour_spent() == 0.0
        _call(guards, 0.9, phash="d")
        assert len(_alerts(cap, "budget")) == 1
        _call(guards, 0.2, phash="e")  # crosses again, an hour after the first alert
        assert len(_alerts(cap, "budget")) == 2


def test_hourly_budget_is_a_rolling_window(capture: Callable[..., Any]) -> None:
    with frozen("2026-11-26 02:00:00") as clock:
        ap = capture(budget_usd_per_hour=1.0)
        guards = ap.client.guards
        _call(guards, 0.5, phash="a")
        clock.tick(1800)
        _call(guards, 0.4, phash="b")
        assert guards.hour_spent() == pytest.approx(0.9)
        clock.tick(1801)  # the first call is now older than an hour
        assert guards.hour_spent() == pytest.approx(0.4)


def test_raise_mode_blocks_the_next_call_before_it_is_sent(capture: Callable[..., Any]) -> None:
    with frozen("2026-11-26 02:00:00") as clock:
        ap = capture(budget_usd_per_hour=1.0, on_budget_exceeded="raise")
        guards = ap.client.guards
        cap = Capture(ap.client)
        _call(guards, 1.25, phash="a")
        with pytest.raises(BudgetExceeded) as info:
            guards.before_call("openai", "gpt-4o", "b", None)
        assert info.value.budget == "hour"
        assert info.value.limit_usd == 1.0 and info.value.spent_usd == pytest.approx(1.25)
        assert "per hour" in str(info.value)
        assert len(_alerts(cap, "budget")) == 1  # the crossing alerted; blocking does not re-alert
        clock.tick(3601)
        guards.before_call("openai", "gpt-4o", "c", None)  # the window moved on: allowed again


def test_session_budget_alerts_once_per_session_and_raises(capture: Callable[..., Any]) -> None:
    ap = capture(budget_usd_per_session=0.5, on_budget_exceeded="raise")
    guards = ap.client.guards
    cap = Capture(ap.client)
    with agentpulse.session("night-run"), agentpulse.task("step"):
        _call(guards, 0.3, phash="a")
        _call(guards, 0.3, phash="b")  # crosses in a child span: counted to the session
        with pytest.raises(BudgetExceeded) as info:
            _call(guards, 0.01, phash="c")
    assert info.value.budget == "session" and info.value.session == "night-run"
    alerts = _alerts(cap, "budget")
    assert len(alerts) == 1 and alerts[0]["details"]["session"] == "night-run"
    assert alerts[0]["details"]["spent_usd"] == pytest.approx(0.6)
    end = cap.span("night-run").data
    assert end["cost_usd"] == pytest.approx(0.6) and end["llm_calls"] == 2
    # A new session starts with a fresh budget.
    with agentpulse.session("next-run"):
        _call(guards, 0.2, phash="d")
    assert len(_alerts(cap, "budget")) == 1


def test_alert_mode_never_raises(capture: Callable[..., Any]) -> None:
    ap = capture(budget_usd_per_session=0.1, budget_usd_per_hour=0.1)
    with agentpulse.session("s"):
        for i in range(5):
            _call(ap.client.guards, 1.0, phash=f"p{i}")
    cap = Capture(ap.client)
    assert sorted(a["details"]["budget"] for a in _alerts(cap, "budget")) == ["hour", "session"]


def test_unknown_costs_are_ignored(capture: Callable[..., Any]) -> None:
    ap = capture(budget_usd_per_hour=0.5)
    for cost in (None, "1.0", True, float("nan"), -3.0):
        _call(ap.client.guards, cost, phash=str(cost))
    assert ap.client.guards.hour_spent() == 0.0
    assert Capture(ap.client).alerts() == []


def test_loop_detector_same_prompt_n_times_in_window(capture: Callable[..., Any]) -> None:
    with frozen("2026-11-26 03:00:00") as clock:
        ap = capture(loop_threshold=3, loop_window=60)
        guards = ap.client.guards
        cap = Capture(ap.client)
        with agentpulse.session("s"):
            for _ in range(2):
                _call(guards, 0.01, phash="same")
                clock.tick(10)
            assert _alerts(cap, "loop") == []
            _call(guards, 0.01, phash="same")
            _call(guards, 0.01, phash="same")  # still looping: one alert per window
            _call(guards, 0.01, phash="other")
            loops = _alerts(cap, "loop")
            assert len(loops) == 1
            details = loops[0]["details"]
            assert details["prompt_hash"] == "same" and details["model"] == "gpt-4o"
            assert details["count"] == 3 and details["session"] == "s"
            assert loops[0]["severity"] == "warning"
            clock.tick(61)
            _call(guards, 0.01, phash="same")  # one call after a quiet window: no loop
            assert len(_alerts(cap, "loop")) == 1
            for _ in range(2):
                _call(guards, 0.01, phash="same")
            assert len(_alerts(cap, "loop")) == 2


def test_loop_detector_counts_per_session_and_per_model(capture: Callable[..., Any]) -> None:
    ap = capture(loop_threshold=3)
    guards = ap.client.guards
    for name in ("a", "b", "c"):
        with agentpulse.session(name):
            _call(guards, None, phash="p")
            _call(guards, None, phash="p", model="other-model")
    with agentpulse.session("d"):
        _call(guards, None, phash=None)  # type: ignore[arg-type]
    assert _alerts(Capture(ap.client), "loop") == []


def test_loop_alert_outside_any_session(capture: Callable[..., Any]) -> None:
    ap = capture(loop_threshold=2)
    _call(ap.client.guards, None, phash="x")
    _call(ap.client.guards, None, phash="x")
    loops = _alerts(Capture(ap.client), "loop")
    assert len(loops) == 1 and loops[0]["details"]["session"] is None


def test_guards_are_thread_safe(capture: Callable[..., Any]) -> None:
    ap = capture(budget_usd_per_hour=1000.0)
    guards = ap.client.guards

    def worker(i: int) -> None:
        for j in range(200):
            _call(guards, 0.01, phash=f"{i}-{j}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert guards.hour_spent() == pytest.approx(8.0)


def test_many_distinct_prompts_stay_bounded(capture: Callable[..., Any]) -> None:
    ap = capture()
    guards = ap.client.guards
    with agentpulse.session("s"):
        for i in range(3000):
            guards.before_call("openai", "m", f"p{i}", agentpulse.current_span())
        scope = guards._scopes[agentpulse.current_span()]  # type: ignore[index]
        assert len(scope.loops) <= 1024


# -- end to end through the real openai SDK ------------------------------------------------


def _openai_client(requests: List[Any]) -> Any:
    import httpx2
    import openai

    def provider(request: Any) -> Any:
        requests.append(request)
        body = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "gpt-4o-2024-08-06",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 100_000, "completion_tokens": 10_000, "total_tokens": 110_000},
        }
        return httpx2.Response(200, json=body)

    http = httpx2.Client(transport=httpx2.MockTransport(provider))
    return openai.OpenAI(
        api_key="sk-test", base_url="https://api.openai.test/v1", http_client=http, max_retries=0
    )


def test_budget_raise_stops_the_openai_request_before_it_is_sent(capture: Callable[..., Any]) -> None:
    pytest.importorskip("agentpulse.integrations.openai")
    ap = capture(budget_usd_per_session=0.10, on_budget_exceeded="raise", loop_threshold=2)
    cap = Capture(ap.client)
    requests: List[Any] = []
    client = _openai_client(requests)
    messages = [{"role": "user", "content": "same question"}]
    try:
        with agentpulse.session("costly"):
            client.chat.completions.create(model="gpt-4o", messages=messages)  # ~$0.35: crosses $0.10
            with pytest.raises(BudgetExceeded) as info:
                client.chat.completions.create(model="gpt-4o", messages=messages)
    finally:
        client.close()
    assert len(requests) == 1  # the second call never left the process
    assert info.value.budget == "session" and info.value.session == "costly"
    (call,) = [c for c in cap.llm_calls() if c["status"] == "success"]
    assert call["cost_usd"] > 0.10
    kinds = sorted(a["details"]["guard"] for a in cap.alerts())
    assert kinds == ["budget", "loop"]  # the same prompt twice also tripped the loop detector
    assert cap.span("costly").data["cost_usd"] == pytest.approx(call["cost_usd"])
