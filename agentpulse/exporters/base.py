"""What every exporter receives and must provide.

An exporter is a small class with ``export(batch)`` and ``close()``. It runs on
the reporter's worker thread only, never on the caller's thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, List, Sequence

if TYPE_CHECKING:
    from ..models import Event

__all__ = ["EncodedBatch", "Exporter", "ExportError"]


class ExportError(Exception):
    """An exporter gave up on a batch. ``retryable`` says whether it may be tried later."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class EncodedBatch:
    """A batch ready to leave the process: validated events and their JSON text.

    ``header_json`` is the envelope (``agent``, ``sdk_version``, ``process``)
    serialised as a JSON object; ``body()`` splices the events into it, so the
    events are serialised once however often the batch is retried.
    """

    __slots__ = ("header_json", "events", "events_json", "nbytes")

    def __init__(self, header_json: str, events: Sequence[Event], events_json: List[str]) -> None:
        self.header_json = header_json
        self.events = list(events)
        self.events_json = events_json
        self.nbytes = sum(len(s) for s in events_json) + len(header_json)

    def __len__(self) -> int:
        return len(self.events)

    def __repr__(self) -> str:
        return f"EncodedBatch(events={len(self.events)}, nbytes={self.nbytes})"

    def body(self) -> bytes:
        """The ``POST /v1/ingest`` body as UTF-8 JSON bytes."""
        head = self.header_json.rstrip()
        assert head.endswith("}")
        sep = "," if head[:-1].rstrip() != "{" else ""
        text = head[:-1] + sep + '"events":[' + ",".join(self.events_json) + "]}"
        return text.encode("utf-8")


class Exporter:
    """Base class of exporters. Subclasses override ``export``; the rest is optional."""

    name = "base"

    def export(self, batch: EncodedBatch) -> None:
        """Deliver ``batch`` or raise ``ExportError``. Called on the worker thread only."""
        raise NotImplementedError

    def after_fork(self) -> None:
        """Drop anything inherited from the parent process (sockets, connections)."""

    def close(self) -> None:
        """Release resources. Called once, at shutdown."""

    def describe(self) -> str:
        """Where events go, for ``agentpulse status`` and the client's repr."""
        return self.name
