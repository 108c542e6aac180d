"""Shared fixtures: every test gets a clean AgentPulse and fails on swallowed SDK errors."""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest

# LiteLLM fetches its price map over the network at import unless told not to; tests are offline.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import agentpulse
from agentpulse._internal import internal_errors
from agentpulse.client import AgentPulse


@pytest.fixture(autouse=True)
def _agentpulse_clean(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> Iterator[None]:
    """Isolate each test: no AGENTPULSE_* env leaking in, local store in tmp, errors recorded."""

    for key in list(os.environ):
        if key.startswith("AGENTPULSE_"):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AGENTPULSE_LOCAL_PATH", str(tmp_path / "agentpulse.db"))
    internal_errors.reset()
    internal_errors.record = True
    yield
    agentpulse.shutdown(timeout=2)
    recorded = list(internal_errors.recorded)
    internal_errors.record = False
    internal_errors.reset()
    if recorded and request.node.get_closest_marker("internal_errors_expected") is None:
        where, exc = recorded[0]
        raise AssertionError(f"AgentPulse swallowed an internal error in {where}: {exc!r}") from exc


class Captured:
    """Helper around a client with the memory exporter."""

    def __init__(self, client: AgentPulse) -> None:
        self.client = client

    def events(self, kind: Optional[str] = None, timeout: float = 5.0) -> List[Dict[str, Any]]:
        """Flush and return exported events (optionally of one kind)."""
        assert self.client.flush(timeout), "flush timed out"
        evs = self.client.exporter.events  # type: ignore[attr-defined]
        return [e for e in evs if kind is None or e["kind"] == kind]

    def wait_for(
        self, pred: Callable[[List[Dict[str, Any]]], bool], timeout: float = 5.0
    ) -> List[Dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            evs = self.events()
            if pred(evs) or time.monotonic() > deadline:
                return evs
            time.sleep(0.01)


@pytest.fixture
def capture() -> Callable[..., Captured]:
    """``capture(**options)`` -> a started client with the memory exporter."""

    def start(**options: Any) -> Captured:
        options.setdefault("exporter", "memory")
        options.setdefault("flush_interval", 0.05)
        return Captured(agentpulse.init(**options))

    return start


@pytest.fixture
def ap(capture: Callable[..., Captured]) -> Captured:
    """A started client with default options and the memory exporter."""
    return capture()
