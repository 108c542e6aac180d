"""What every exporter receives and must provide.

An exporter is a small class with ``export(batch)`` and ``close()``. It runs on
the reporter's worker thread only, never on the caller's thread.

Example::

    from agentpulse.exporters.base import EncodedBatch, Exporter, ExportError

    class StdoutExporter(Exporter):
        name = "stdout"

        def export(self, batch: EncodedBatch) -> None:
            for text in batch.events_json:
                print(text)

    agentpulse.init(_exporter=StdoutExporter())
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Sequence

if TYPE_CHECKING:
    from ..models import Event

__all__ = ["EncodedBatch", "ExportError", "Exporter"]


class ExportError(Exception):
    """An exporter gave up on a batch. ``retryable`` says whether it may be tried later.

    Example::

        raise ExportError("collector answered 503", retryable=True)
    """

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


_event_adapter: Any = None


def _adapter() -> Any:
    global _event_adapter
    if _event_adapter is None:
        from pydantic import TypeAdapter

        from ..models import Event

        _event_adapter = TypeAdapter(Event)
    return _event_adapter


class EncodedBatch:
    """A batch ready to leave the process: its events as wire JSON (and, if kept, as models).

    ``header_json`` is the envelope (``agent``, ``sdk_version``, ``process``)
    serialised as a JSON object; ``body()`` splices the events into it, so the
    events are serialised once however often the batch is retried.
    ``events`` are the validated models: kept from validation when the
    exporter wants them (``Exporter.wants_models``), else parsed back from the
    JSON on first access.

    Example::

        batch = EncodedBatch('{"agent":"a"}', None, ['{"id":"1","kind":"event"}'])
        batch.body()   # b'{"agent":"a","events":[{"id":"1","kind":"event"}]}'
    """

    __slots__ = ("_events", "events_json", "header_json", "mark", "nbytes")

    def __init__(self, header_json: str, events: Optional[Sequence[Event]], events_json: List[str]) -> None:
        self.header_json = header_json
        self._events: Optional[List[Event]] = list(events) if events is not None else None
        self.events_json = events_json
        self.nbytes = sum(map(len, events_json)) + len(header_json)
        #: Reporter bookkeeping: every event enqueued before this sequence number is settled
        #: once this batch is.
        self.mark = 0

    @property
    def events(self) -> List[Event]:
        """The validated wire models of the events, oldest first."""
        if self._events is None:
            adapter = _adapter()
            self._events = [adapter.validate_json(text) for text in self.events_json]
        return self._events

    def __len__(self) -> int:
        return len(self.events_json)

    def __repr__(self) -> str:
        return f"EncodedBatch(events={len(self)}, nbytes={self.nbytes})"

    def body(self) -> bytes:
        """The ``POST /v1/ingest`` body as UTF-8 JSON bytes."""
        head = self.header_json.rstrip()
        if not head.endswith("}"):
            raise ValueError("header_json must be a JSON object")
        inner = head[:-1].rstrip()
        sep = "" if inner.endswith("{") else ","
        return "".join((inner, sep, '"events":[', ",".join(self.events_json), "]}")).encode("utf-8")


class Exporter:
    """Base class of exporters. Subclasses override ``export``; the rest is optional.

    The reporter sets two attributes an exporter may use while it waits
    between retries: ``deadline`` (a ``time.monotonic()`` value, or ``None``)
    after which no new attempt should start, and ``on_idle`` to call now and
    then while sleeping so the reporter can keep its queue within bounds.

    Example::

        class Null(Exporter):
            name = "null"

            def export(self, batch: EncodedBatch) -> None:
                pass
    """

    name = "base"
    #: Whether ``export`` reads ``batch.events`` (the models). When False the reporter keeps
    #: only the JSON text of queued events, which holds a backlog in far less memory.
    wants_models = True

    deadline: Optional[float] = None
    on_idle: Optional[Callable[[], None]] = None

    def export(self, batch: EncodedBatch) -> None:
        """Deliver ``batch`` or raise ``ExportError``. Called on the worker thread only."""
        raise NotImplementedError

    def after_fork(self) -> None:
        """Drop anything inherited from the parent process (sockets, connections)."""

    def stop(self) -> None:
        """Shutdown is near: stop retrying and sleeping. Called from another thread."""

    def close(self) -> None:
        """Release resources. Called once, at shutdown."""

    def describe(self) -> str:
        """Where events go, for ``agentpulse status`` and the client's repr."""
        return self.name

    def time_left(self) -> Optional[float]:
        """Seconds until ``deadline`` (never negative), or ``None`` without a deadline."""
        deadline = self.deadline
        return None if deadline is None else max(0.0, deadline - time.monotonic())
