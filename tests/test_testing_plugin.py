"""agentpulse.testing: the pytest fixture users get, and the Capture helpers."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import agentpulse
from agentpulse.testing import Capture, capture

pytest_plugins = ["pytester"]


USER_TESTS = """
import agentpulse
import pytest


@agentpulse.task
def rank(items):
    agentpulse.set_metadata(n=len(items))
    return sorted(items)


def test_tree(agentpulse_capture):
    with agentpulse.session("triage"):
        rank([3, 1, 2])
        agentpulse.event("done")
    assert agentpulse_capture.tree() == "session:triage\\n  task:rank"
    assert agentpulse_capture.span("rank").metadata == {"n": 3}
    assert agentpulse_capture.names("event") == ["done"]


@pytest.mark.agentpulse(budget_usd_per_session=0.01, agent_name="marker-agent")
def test_marker_options(agentpulse_capture):
    assert agentpulse_capture.client.config.agent_name == "marker-agent"
    with agentpulse.session("s"):
        agentpulse_capture.client.guards.after_call({"cost_usd": 1.0}, agentpulse.current_span())
    assert [a["details"]["budget"] for a in agentpulse_capture.alerts()] == ["session"]


def test_each_test_starts_empty(agentpulse_capture):
    assert agentpulse_capture.spans() == []


def test_without_the_fixture_nothing_runs():
    assert agentpulse.get_client() is None
"""


@pytest.fixture
def user_project(pytester: pytest.Pytester) -> pytest.Pytester:
    # The plugin comes from the installed entry point, as in a user's project.
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    return pytester


def test_plugin_fixture_in_a_users_test_suite(user_project: pytest.Pytester) -> None:
    pytester = user_project
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_inprocess("-W", "error", "-q")
    result.assert_outcomes(passed=4)
    assert agentpulse.get_client() is None  # the fixture shut its client down


def test_plugin_registers_its_marker(user_project: pytest.Pytester) -> None:
    result = user_project.runpytest_inprocess("--markers")
    result.stdout.fnmatch_lines(["*agentpulse(**options)*"])


def test_capture_replaces_a_running_client(ap: Any) -> None:
    with capture(agent_name="captured") as cap:
        assert cap.client is not ap.client and cap.client.config.exporter == "memory"
        with agentpulse.session("s"):
            pass
        assert cap.tree() == "session:s"
    assert agentpulse.get_client() is None


def test_capture_helpers(ap: Any) -> None:
    cap = Capture(ap.client)
    with pytest.raises(ZeroDivisionError), agentpulse.session("outer"):
        with agentpulse.task("ok-step"):
            agentpulse.metric("m", 1)
        with agentpulse.trace("bad-step"):
            agentpulse.alert("careful", "warning")
            _ = 1 / 0
    assert cap.tree() == "session:outer (error)\n  task:ok-step\n  trace:bad-step (error)"
    bad = cap.span("bad-step")
    assert bad.error == {"type": "ZeroDivisionError", "message": "division by zero"}
    assert [e["kind"] for e in bad.events] == ["alert"]
    assert [e["kind"] for e in cap.span("ok-step").events] == ["metric"]
    assert cap.names("alert") == ["careful"]
    assert bad.parent is not None and bad.parent.name == "outer"
    assert [s.name for s in cap.span("outer").walk()] == ["outer", "ok-step", "bad-step"]
    assert cap.span("outer").duration_ms is not None
    with pytest.raises(AssertionError, match="expected one span 'missing'"):
        cap.span("missing")
    cap.clear()
    assert cap.events() == []


def test_open_spans_show_as_open(ap: Any) -> None:
    cap = Capture(ap.client)
    with agentpulse.session("still-running"):
        assert cap.tree() == "session:still-running (open)"
        assert cap.span("still-running").status is None


def test_wait_for_events_from_other_threads(ap: Any) -> None:
    cap = Capture(ap.client)
    t = threading.Thread(target=agentpulse.event, args=("from-thread",))
    t.start()
    evs = cap.wait_for(lambda evs: any(e["kind"] == "event" for e in evs))
    t.join()
    assert any(e["kind"] == "event" for e in evs)
    with pytest.raises(AssertionError, match="condition not met"):
        cap.wait_for(lambda evs: False, timeout=0.05)
