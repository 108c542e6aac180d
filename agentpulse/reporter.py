"""Bounded queue -> daemon worker -> batches -> exporter.

The caller's thread only appends a plain dict to a ``deque``: O(1), no lock,
never blocks. When the queue is full the oldest event is dropped and counted.
The worker wakes every ``flush_interval`` seconds, or as soon as
``max_batch_size`` events wait, validates the events against the wire models,
serialises them once and hands batches to the exporter. A batch the exporter
could not deliver stays at the head of a retry buffer bounded in bytes.

The worker starts lazily, is keyed on ``os.getpid()`` (a forked child starts its
own and never resends the parent's events) and is restarted if it ever dies.
"""

from __future__ import annotations

import collections
import os
import platform
import socket
import threading
import time
import uuid
import weakref
from typing import Any, Deque, Dict, List, Optional

from ._coerce import Coercer
from ._internal import capture_internal_errors, internal_errors, log_once, logger
from ._version import __version__
from .exporters.base import EncodedBatch, Exporter, ExportError

__all__ = ["Reporter", "process_info", "TRACKED_LIBRARIES"]

#: Distributions whose versions go into the process fingerprint.
TRACKED_LIBRARIES = (
    "openai",
    "anthropic",
    "litellm",
    "cohere",
    "google-genai",
    "langchain-core",
    "langgraph",
    "crewai",
    "openai-agents",
    "httpx2",
)


def process_info() -> Dict[str, Any]:
    """The fingerprint of this process: pid, host, Python, OS and LLM library versions."""
    from importlib import metadata

    libraries: Dict[str, str] = {}
    for dist in TRACKED_LIBRARIES:
        try:
            libraries[dist] = metadata.version(dist)
        except Exception:
            continue
    try:
        host = socket.gethostname()
    except Exception:
        host = "unknown"
    return {
        "pid": os.getpid(),
        "host": host,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}".strip(),
        "libraries": libraries,
    }


class Reporter:
    """Owns the queue, the worker thread and the exporter. Thread-safe; never raises."""

    def __init__(
        self,
        exporter: Exporter,
        *,
        agent_name: str,
        max_queue_size: int = 10_000,
        max_queue_bytes: int = 16 * 1024 * 1024,
        max_batch_size: int = 100,
        flush_interval: float = 1.0,
        max_string_length: int = 8192,
    ) -> None:
        self.exporter = exporter
        self.agent_name = agent_name
        self.max_queue_size = max_queue_size
        self.max_queue_bytes = max_queue_bytes
        self.max_batch_size = max_batch_size
        self.flush_interval = flush_interval
        self.coercer = Coercer(max_string_length)
        self.counters: Dict[str, int] = {}
        self._header_json: Optional[str] = None
        self._closed = False
        self._adapter: Any = None
        self._reset_state()
        weak = weakref.WeakMethod(self._after_fork)

        def _child() -> None:
            method = weak()
            if method is not None:
                method()

        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_child)

    # -- state ------------------------------------------------------------

    def _reset_state(self) -> None:
        self._pid = os.getpid()
        self._q: Deque[Dict[str, Any]] = collections.deque(maxlen=self.max_queue_size)
        self._pending: Deque[EncodedBatch] = collections.deque()
        self._pending_bytes = 0
        self._wake = threading.Event()
        self._idle = threading.Condition(threading.Lock())
        self._start_lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._running = False
        self._busy = False
        self._stopping = False
        self._header_json = None
        for name in ("enqueued", "sent", "dropped", "failed", "invalid", "batches", "export_errors"):
            self.counters[name] = 0

    def _after_fork(self) -> None:
        # The child keeps none of the parent's queue: those events are the parent's to send.
        self._reset_state()
        with capture_internal_errors("reporter.after_fork"):
            self.exporter.after_fork()

    # -- caller side (hot path) ------------------------------------------

    def enqueue(self, event: Dict[str, Any]) -> None:
        """Queue one raw event dict. O(1); drops the oldest event when full."""
        if self._pid != os.getpid():
            self._after_fork()
        if self._closed:
            self.counters["dropped"] += 1
            return
        q = self._q
        if len(q) >= self.max_queue_size:
            self.counters["dropped"] += 1
        q.append(event)
        self.counters["enqueued"] += 1
        if not self._running:
            self._start()
        if len(q) >= self.max_batch_size and not self._wake.is_set():
            self._wake.set()

    def _start(self) -> None:
        with self._start_lock:
            if self._running or self._closed:
                return
            self._running = True
            t = threading.Thread(target=self._run, name="agentpulse-reporter", daemon=True)
            # Not a user thread: keep it out of context propagation's bookkeeping.
            self._thread = t
            t.start()

    # -- worker side ------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                self._wake.wait(self.flush_interval)
                self._wake.clear()
                try:
                    self._cycle()
                except Exception as exc:  # keep the worker alive whatever happens
                    internal_errors.note("reporter.cycle", exc)
                with self._idle:
                    self._idle.notify_all()
                if self._stopping and not self._q and not self._pending:
                    return
        finally:
            self._running = False
            with self._idle:
                self._idle.notify_all()

    def _cycle(self) -> None:
        self._busy = True
        try:
            while self._q:
                self._encode_some()
                if not self._send_pending():
                    return
            self._send_pending()
        finally:
            self._busy = False

    def _encode_some(self) -> None:
        q = self._q
        raw: List[Dict[str, Any]] = []
        n = self.max_batch_size
        try:
            while len(raw) < n:
                raw.append(q.popleft())
        except IndexError:
            pass
        if not raw:
            return
        batch = self.encode(raw)
        if batch is None:
            return
        self._pending.append(batch)
        self._pending_bytes += batch.nbytes
        while self._pending_bytes > self.max_queue_bytes and len(self._pending) > 1:
            old = self._pending.popleft()
            self._pending_bytes -= old.nbytes
            self.counters["dropped"] += len(old)
            log_once("reporter.bytes", "agentpulse: retry buffer over max_queue_bytes; dropping oldest events")

    def _send_pending(self) -> bool:
        """Export waiting batches in order. False when the exporter is failing."""
        while self._pending:
            batch = self._pending[0]
            try:
                self.exporter.export(batch)
            except ExportError as exc:
                self.counters["export_errors"] += 1
                if exc.retryable and not self._stopping:
                    log_once("reporter.retry", "agentpulse: export failed, will retry: %s", exc)
                    return False
                self._pending.popleft()
                self._pending_bytes -= batch.nbytes
                self.counters["failed"] += len(batch)
                log_once("reporter.failed", "agentpulse: export failed, batch dropped: %s", exc)
                if exc.retryable:
                    return False
                continue
            except Exception as exc:
                internal_errors.note(f"exporter.{self.exporter.name}", exc)
                self._pending.popleft()
                self._pending_bytes -= batch.nbytes
                self.counters["failed"] += len(batch)
                continue
            self._pending.popleft()
            self._pending_bytes -= batch.nbytes
            self.counters["sent"] += len(batch)
            self.counters["batches"] += 1
        return True

    def encode(self, raw: List[Dict[str, Any]]) -> Optional[EncodedBatch]:
        """Validate raw events against the wire models and serialise each once."""
        adapter = self._event_adapter()
        events = []
        texts = []
        coerce = self.coercer
        for ev in raw:
            try:
                ev["id"] = uuid.uuid4().hex
                data = ev.get("data")
                if data is not None:
                    ev["data"] = coerce(data)
                model = adapter.validate_python(ev)
                texts.append(adapter.dump_json(model, exclude_none=False).decode("utf-8"))
                events.append(model)
            except Exception as exc:
                self.counters["invalid"] += 1
                internal_errors.note(f"reporter.encode.{ev.get('kind')}", exc)
        if not events:
            return None
        return EncodedBatch(self._header(), events, texts)

    def _event_adapter(self) -> Any:
        if self._adapter is None:
            from pydantic import TypeAdapter

            from .models import Event

            self._adapter = TypeAdapter(Event)
        return self._adapter

    def _header(self) -> str:
        if self._header_json is None:
            import json

            from .models import ProcessInfo

            proc = ProcessInfo.model_validate(process_info())
            self._header_json = json.dumps(
                {"agent": self.agent_name, "sdk_version": __version__, "process": proc.model_dump(mode="json")},
                separators=(",", ":"),
            )
        return self._header_json

    # -- control ----------------------------------------------------------

    def _is_idle(self) -> bool:
        return not self._q and not self._pending and not self._busy

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far was handed to the exporter, at most ``timeout`` s.

        Returns True when the queue drained in time. Never raises.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        if self._pid != os.getpid():
            self._after_fork()
        if self._is_idle():
            return True
        if not self._running:
            self._start()
        while True:
            self._wake.set()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return self._is_idle()
            with self._idle:
                if self._is_idle():
                    return True
                if not self._running and not self._closed:
                    self._start()
                self._idle.wait(min(remaining, 0.05))
            if self._is_idle():
                return True

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Flush within ``timeout`` seconds, stop the worker and close the exporter."""
        if self._closed:
            return True
        deadline = time.monotonic() + max(0.0, timeout)
        drained = self.flush(timeout)
        self._stopping = True
        stop = getattr(self.exporter, "stop", None)
        if callable(stop):
            with capture_internal_errors("exporter.stop"):
                stop()
        self._wake.set()
        t = self._thread
        if t is not None and t.is_alive() and t is not threading.current_thread():
            t.join(max(0.0, deadline - time.monotonic()))
        self._closed = True
        if t is None or not t.is_alive():
            with capture_internal_errors("exporter.close"):
                self.exporter.close()
        else:
            logger.debug("agentpulse: worker still busy at shutdown deadline; %d events left", self.queued())
        return drained

    def queued(self) -> int:
        """Events waiting: in the queue plus in the retry buffer."""
        return len(self._q) + sum(len(b) for b in list(self._pending))

    def stats(self) -> Dict[str, int]:
        """A copy of the counters plus the current queue depth."""
        out = dict(self.counters)
        out["queued"] = self.queued()
        out["pending_bytes"] = self._pending_bytes
        out["coerced"] = self.coercer.coerced
        out["truncated"] = self.coercer.truncated
        out["retried"] = int(getattr(self.exporter, "retries", 0))
        out["internal_errors"] = internal_errors.count
        return out

    def __repr__(self) -> str:
        return (
            f"<Reporter exporter={self.exporter.describe()!r} queued={self.queued()} "
            f"sent={self.counters['sent']} dropped={self.counters['dropped']} pid={self._pid}>"
        )

