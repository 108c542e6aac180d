"""Keeps batches in memory: for tests and for ``agentpulse.testing``."""

from __future__ import annotations

import json
import threading
from typing import Any, Dict, List

from .base import EncodedBatch, Exporter

__all__ = ["MemoryExporter"]


class MemoryExporter(Exporter):
    """Stores every exported event as the JSON dict a collector would receive.

    After ``fork()`` the child starts empty: what the parent exported is the
    parent's.

    Example::

        exp = MemoryExporter()
        agentpulse.init(_exporter=exp)      # init(exporter="memory") makes one too
        agentpulse.event("hello")
        agentpulse.flush()
        names = [e["data"]["name"] for e in exp.events if e["kind"] == "event"]
    """

    name = "memory"
    wants_models = False

    def __init__(self) -> None:
        self.batches: List[EncodedBatch] = []
        self._lock = threading.Lock()

    def export(self, batch: EncodedBatch) -> None:
        with self._lock:
            self.batches.append(batch)

    @property
    def events(self) -> List[Dict[str, Any]]:
        """Every event exported so far, decoded from its wire JSON, oldest first."""
        with self._lock:
            batches = list(self.batches)
        return [json.loads(text) for b in batches for text in b.events_json]

    def clear(self) -> None:
        """Forget everything exported so far."""
        with self._lock:
            self.batches.clear()

    def after_fork(self) -> None:
        self._lock = threading.Lock()
        self.batches = []

    def describe(self) -> str:
        return "memory"
