"""After ``os.fork()`` the child sends its own events, and the parent's are never sent twice."""

from __future__ import annotations

import json
import os
import time
import warnings
from typing import Any, Dict, List

import pytest

import agentpulse
from agentpulse.exporters.memory import MemoryExporter
from agentpulse.reporter import Reporter

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def fork() -> int:
    # Python 3.12+ warns about fork() in a process with threads (ours, pytest's); the
    # child here only uses what the at-fork handlers rebuilt.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return os.fork()


def run_child(body: Any) -> Dict[str, Any]:
    """Fork; the child runs ``body()`` and sends back its JSON result through a pipe."""
    r, w = os.pipe()
    pid = fork()
    if pid == 0:  # child
        code = 0
        try:
            os.close(r)
            payload = json.dumps(body()).encode()
            with os.fdopen(w, "wb") as out:
                out.write(payload)
        except BaseException as exc:  # report anything to the parent, never run its teardown here
            try:
                os.write(w, json.dumps({"error": repr(exc)}).encode())
            except OSError:
                pass
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as inp:
        data = inp.read()
    _, status = os.waitpid(pid, 0)
    result: Dict[str, Any] = json.loads(data or b"{}")
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, result
    return result


def names(events: List[Dict[str, Any]]) -> List[str]:
    return [e["data"]["name"] for e in events if e["kind"] == "event"]


def test_child_sends_its_own_events_and_parent_events_are_not_sent_twice() -> None:
    client = agentpulse.init(exporter="memory", flush_interval=60, max_batch_size=1000)
    exp = client.exporter
    assert isinstance(exp, MemoryExporter)
    agentpulse.event("parent-sent")
    assert agentpulse.flush(5)
    # Queued in the parent at the moment of fork(), not yet sent:
    for i in range(5):
        agentpulse.event(f"parent-queued-{i}")

    def child() -> Dict[str, Any]:
        assert agentpulse.stats()["queued"] == 0  # a fresh queue
        for i in range(3):
            agentpulse.event(f"child-{i}")
        ok = agentpulse.flush(5)
        return {"ok": ok, "names": names(exp.events), "pid": os.getpid(), "stats": agentpulse.stats()}

    result = run_child(child)
    assert result["ok"] and result["pid"] != os.getpid()
    assert result["names"] == ["child-0", "child-1", "child-2"]
    assert result["stats"]["sent"] == 3 and result["stats"]["dropped"] == 0

    assert agentpulse.flush(5)
    parent = names(exp.events)
    assert parent == ["parent-sent"] + [f"parent-queued-{i}" for i in range(5)]


def test_child_reports_its_own_pid_in_the_envelope() -> None:
    exp = MemoryExporter()
    rep = Reporter(exp, agent_name="forky", flush_interval=60)
    rep.enqueue({"kind": "event", "ts": time.time(), "data": {"name": "p", "data": {}}})
    assert rep.flush(5)
    parent_pid = json.loads(exp.batches[0].header_json)["process"]["pid"]

    def child() -> Dict[str, Any]:
        rep.enqueue({"kind": "event", "ts": time.time(), "data": {"name": "c", "data": {}}})
        assert rep.flush(5)
        return {"pid": json.loads(exp.batches[0].header_json)["process"]["pid"], "n": len(exp.batches)}

    result = run_child(child)
    assert result["pid"] != parent_pid and result["n"] == 1
    rep.shutdown(2)


def test_pid_check_catches_a_fork_the_handlers_missed() -> None:
    # A fork done behind Python's back (C code calling fork()) runs no at-fork handler;
    # enqueue notices the pid changed and starts afresh instead of sending the old queue.
    exp = MemoryExporter()
    rep = Reporter(exp, agent_name="t", flush_interval=60, max_batch_size=1000)
    rep._next_start = time.monotonic() + 3600  # a child inherits the queue, not the worker thread
    rep.enqueue({"kind": "event", "ts": time.time(), "data": {"name": "inherited", "data": {}}})
    assert rep._thread is None and rep.queued() == 1
    rep._pid = -1  # as if this process were a child the handlers never saw
    rep.enqueue({"kind": "event", "ts": time.time(), "data": {"name": "mine", "data": {}}})
    assert rep.flush(5)
    assert [e["data"]["name"] for e in exp.events] == ["mine"]
    rep.shutdown(2)
