"""Assert on your own agent's traces: an in-memory capture and a pytest fixture.

Installing AgentPulse registers a pytest plugin (entry point ``agentpulse``)
with one fixture, ``agentpulse_capture``: AgentPulse started with the memory
exporter for the test, stopped after it. Tests that do not ask for the fixture
are not touched. Options for ``init()`` go in a marker.

Example::

    import agentpulse
    import pytest

    def test_triage_shape(agentpulse_capture):
        with agentpulse.session("triage"):
            rank_inbox()                      # an @agentpulse.task
        assert agentpulse_capture.tree() == "session:triage\\n  task:rank_inbox"
        assert agentpulse_capture.span("rank_inbox").status == "success"

    @pytest.mark.agentpulse(capture_messages=True, budget_usd_per_session=0.01)
    def test_budget(agentpulse_capture):
        ...
        assert agentpulse_capture.alerts()

Outside pytest, ``with agentpulse.testing.capture() as cap:`` does the same.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional

if TYPE_CHECKING:
    from .client import AgentPulse

__all__ = ["Capture", "CapturedSpan", "agentpulse_capture", "capture"]


class CapturedSpan:
    """One node of a captured trace tree: a span, or an LLM call (``kind == "llm_call"``).

    ``start`` / ``end`` are the raw ``span_start`` / ``span_end`` events (an
    LLM call has only ``end``); ``events`` are the events recorded inside this
    span (``event``, ``metric``, ``alert``, ``cron_checkin``, ...);
    ``children`` are the spans and LLM calls opened directly inside it.
    """

    def __init__(self, span_id: str, kind: str, name: str) -> None:
        self.span_id = span_id
        self.kind = kind
        self.name = name
        self.trace_id: Optional[str] = None
        self.parent_span_id: Optional[str] = None
        self.session: Optional[str] = None
        self.start: Optional[Dict[str, Any]] = None
        self.end: Optional[Dict[str, Any]] = None
        self.children: List[CapturedSpan] = []
        self.events: List[Dict[str, Any]] = []
        self.parent: Optional[CapturedSpan] = None

    @property
    def data(self) -> Dict[str, Any]:
        """``span_end`` data (or ``llm_call`` data), else ``span_start`` data."""
        ev = self.end or self.start or {}
        return dict(ev.get("data") or {})

    @property
    def status(self) -> Optional[str]:
        """``success`` / ``error`` / ``cancelled``; ``None`` while the span is open."""
        return self.end["data"].get("status") if self.end is not None else None

    @property
    def error(self) -> Optional[Dict[str, Any]]:
        """``{"type", "message"}`` of the exception that ended the span, if any."""
        return self.end["data"].get("error") if self.end is not None else None

    @property
    def metadata(self) -> Dict[str, Any]:
        """The span's final metadata (from ``span_end``, else ``span_start``)."""
        for ev in (self.end, self.start):
            if ev is not None and ev["data"].get("metadata"):
                return dict(ev["data"]["metadata"])
        return {}

    @property
    def agent(self) -> Optional[str]:
        """The agent named by this span (or an enclosing one)."""
        if self.start is not None:
            found: Optional[str] = self.start["data"].get("agent")
            return found
        return self.parent.agent if self.parent is not None else None

    @property
    def duration_ms(self) -> Optional[float]:
        """How long the span took (latency for an LLM call)."""
        if self.end is None:
            return None
        d = self.end["data"]
        value: Optional[float] = d.get("duration_ms", d.get("latency_ms"))
        return value

    def walk(self) -> Iterator[CapturedSpan]:
        """This node and every node below it, depth first."""
        yield self
        for child in self.children:
            yield from child.walk()

    def __repr__(self) -> str:
        return f"<CapturedSpan {self.kind}:{self.name!r} status={self.status} children={len(self.children)}>"


def _label(node: CapturedSpan) -> str:
    text = f"{node.kind}:{node.name}"
    status = node.status
    if status is None:
        text += " (open)"
    elif status != "success":
        text += f" ({status})"
    return text


class Capture:
    """Events recorded by a client with the memory exporter, and helpers to assert on them.

    Every reader flushes first, so what the code under test recorded is there.

    Example::

        with capture() as cap:
            with agentpulse.session("s"):
                agentpulse.event("hello")
        assert cap.names("event") == ["hello"]
    """

    def __init__(self, client: AgentPulse) -> None:
        self.client = client

    # -- raw events --------------------------------------------------------------

    def events(self, kind: Optional[str] = None, *, timeout: float = 5.0) -> List[Dict[str, Any]]:
        """Every exported event (optionally of one ``kind``), oldest first, as wire dicts."""
        if not self.client.flush(timeout):
            raise AssertionError(f"agentpulse: events were not flushed within {timeout}s")
        evs: List[Dict[str, Any]] = self.client.exporter.events  # type: ignore[attr-defined]
        return [e for e in evs if kind is None or e["kind"] == kind]

    def names(self, kind: str = "event") -> List[str]:
        """The ``data.name`` (``title`` for alerts, ``monitor`` for check-ins) of events of ``kind``."""
        key = {"alert": "title", "cron_checkin": "monitor", "llm_call": "model"}.get(kind, "name")
        return [e["data"].get(key) for e in self.events(kind)]

    def llm_calls(self) -> List[Dict[str, Any]]:
        """The ``data`` of every ``llm_call`` event."""
        return [e["data"] for e in self.events("llm_call")]

    def alerts(self) -> List[Dict[str, Any]]:
        """The ``data`` of every ``alert`` event."""
        return [e["data"] for e in self.events("alert")]

    def checkins(self, monitor: Optional[str] = None) -> List[Dict[str, Any]]:
        """The ``data`` of every ``cron_checkin`` event (of one ``monitor``)."""
        evs = self.events("cron_checkin")
        return [e["data"] for e in evs if monitor is None or e["data"]["monitor"] == monitor]

    def errors(self) -> List[Dict[str, Any]]:
        """The ``data`` of every ``error`` event (unhandled exceptions)."""
        return [e["data"] for e in self.events("error")]

    def clear(self) -> None:
        """Forget everything captured so far."""
        self.client.flush()
        self.client.exporter.clear()  # type: ignore[attr-defined]

    def wait_for(
        self, predicate: Callable[[List[Dict[str, Any]]], bool], timeout: float = 5.0
    ) -> List[Dict[str, Any]]:
        """Poll the events until ``predicate(events)`` is true (for work on other threads); returns them.

        Raises ``AssertionError`` when it is still false after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            evs = self.events()
            if predicate(evs):
                return evs
            if time.monotonic() > deadline:
                raise AssertionError(f"agentpulse: condition not met within {timeout}s; {len(evs)} events")
            time.sleep(0.01)

    # -- the tree --------------------------------------------------------------

    def roots(self) -> List[CapturedSpan]:
        """The outermost spans (and LLM calls made outside any span), in the order they started."""
        nodes: Dict[str, CapturedSpan] = {}
        order: List[CapturedSpan] = []
        loose: List[Dict[str, Any]] = []
        for ev in self.events():
            kind, sid, data = ev["kind"], ev.get("span_id"), ev.get("data") or {}
            if kind == "span_start" and sid:
                node = nodes.get(sid)
                if node is None:
                    node = nodes[sid] = CapturedSpan(sid, data.get("span_kind", "span"), data.get("name", ""))
                    order.append(node)
                node.start = ev
                node.trace_id, node.parent_span_id, node.session = (
                    ev.get("trace_id"),
                    ev.get("parent_span_id"),
                    ev.get("session"),
                )
            elif kind == "span_end" and sid:
                node = nodes.get(sid)
                if node is None:
                    node = nodes[sid] = CapturedSpan(
                        sid, data.get("span_kind") or "span", data.get("name", "")
                    )
                    node.trace_id = ev.get("trace_id")
                    node.parent_span_id = ev.get("parent_span_id")
                    order.append(node)
                node.end = ev
            elif kind == "llm_call" and sid:
                label = str(data.get("model") or data.get("provider"))
                node = nodes[sid] = CapturedSpan(sid, "llm_call", label)
                node.end = ev
                node.trace_id = ev.get("trace_id")
                node.parent_span_id = ev.get("parent_span_id")
                node.session = ev.get("session")
                order.append(node)
            else:
                loose.append(ev)
        for ev in loose:
            owner = nodes.get(ev.get("span_id") or "")
            if owner is not None:
                owner.events.append(ev)
        roots: List[CapturedSpan] = []
        for node in order:
            parent = nodes.get(node.parent_span_id or "")
            if parent is not None and parent is not node:
                node.parent = parent
                parent.children.append(node)
            else:
                roots.append(node)
        return roots

    def spans(self, kind: Optional[str] = None, name: Optional[str] = None) -> List[CapturedSpan]:
        """Every span and LLM call (optionally of one ``kind`` / ``name``), in the order they started."""
        out: List[CapturedSpan] = []
        for root in self.roots():
            out.extend(root.walk())
        return [s for s in out if (kind is None or s.kind == kind) and (name is None or s.name == name)]

    def span(self, name: str, kind: Optional[str] = None) -> CapturedSpan:
        """The one span called ``name``; ``AssertionError`` listing what exists when not exactly one."""
        found = self.spans(kind, name)
        if len(found) != 1:
            have = sorted({f"{s.kind}:{s.name}" for s in self.spans()})
            raise AssertionError(f"expected one span {name!r}, found {len(found)}; spans: {have}")
        return found[0]

    def tree(self) -> str:
        """The captured trees as an indented outline, one ``kind:name`` per line.

        A status other than ``success`` is shown in brackets, e.g.
        ``task:fetch (error)``.

        Example::

            session:daily
              agent:Marcus.run
                llm_call:gpt-4o-mini
        """
        lines: List[str] = []

        def walk(node: CapturedSpan, depth: int) -> None:
            lines.append("  " * depth + _label(node))
            for child in node.children:
                walk(child, depth + 1)

        for root in self.roots():
            walk(root, 0)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Capture client={self.client!r}>"


@contextlib.contextmanager
def capture(**options: Any) -> Iterator[Capture]:
    """Run AgentPulse with the memory exporter inside the block; yields a ``Capture``.

    A client already running is shut down first (``init()`` keeps the first
    client of a process), and the capturing client is shut down at the end.
    ``options`` go to ``agentpulse.init()``.

    Example::

        with capture(capture_messages=True) as cap:
            run_agent()
        print(cap.tree())
    """
    import agentpulse

    options.setdefault("exporter", "memory")
    options.setdefault("flush_interval", 0.05)
    if agentpulse.get_client() is not None:
        agentpulse.shutdown(timeout=2)
    client = agentpulse.init(**options)
    try:
        yield Capture(client)
    finally:
        agentpulse.shutdown(timeout=2)


try:
    import pytest
except ImportError:  # agentpulse.testing imported outside a test run without pytest installed
    pass
else:

    @pytest.fixture
    def agentpulse_capture(request: pytest.FixtureRequest) -> Iterator[Capture]:
        """AgentPulse on the memory exporter for this test; ``@pytest.mark.agentpulse(**init_options)``."""
        options: Dict[str, Any] = {}
        for marker in reversed(list(request.node.iter_markers("agentpulse"))):
            options.update(marker.kwargs)
        with capture(**options) as cap:
            yield cap

    def pytest_configure(config: pytest.Config) -> None:
        config.addinivalue_line(
            "markers", "agentpulse(**options): agentpulse.init() options for the agentpulse_capture fixture"
        )
