"""Bounded queue -> daemon worker -> batches -> exporter.

The caller's thread only appends a plain dict to a ``deque`` under a lock
held for a few hundred nanoseconds: O(1), no I/O, never waits for the worker.
When the queue is full the oldest event is dropped and counted.

The worker wakes every ``flush_interval`` seconds, or as soon as
``max_batch_size`` events wait. It gives each event its id, coerces its data
to JSON-safe values, validates it against the wire models, serialises it once
and hands batches to the exporter. A batch the exporter cannot deliver yet
stays at the head of a buffer bounded in bytes (``max_queue_bytes``) and in
events (``max_queue_size``); past a bound the oldest batch is dropped and
counted. While an exporter waits between retries it lets the worker keep
moving the queue into that compact buffer, so a long outage is bounded in
bytes too.

The worker starts lazily, is restarted if it ever dies, and is rebuilt in a
forked child (``os.register_at_fork``, and a pid check on enqueue as a second
line of defence): the child sends its own events and never the parent's.

Example::

    from agentpulse.exporters.memory import MemoryExporter
    from agentpulse.reporter import Reporter

    rep = Reporter(MemoryExporter(), agent_name="demo")
    rep.enqueue({"kind": "event", "ts": time.time(), "data": {"name": "hi", "data": {}}})
    rep.flush(timeout=2)
    rep.stats()["sent"]   # 1
    rep.shutdown()
"""

from __future__ import annotations

import collections
import contextvars
import os
import platform
import socket
import sys
import threading
import time
import weakref
from typing import Any, Deque, Dict, List, Optional, Set, Tuple

from ._coerce import Coercer, scrub_surrogates
from ._internal import capture_internal_errors, internal_errors, logger
from ._version import __version__
from .exporters.base import EncodedBatch, Exporter, ExportError

__all__ = ["TRACKED_LIBRARIES", "Reporter", "new_event_id", "process_info"]

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

#: Kinds whose data comes straight from the user: a bad value there is the user's, not a bug of ours.
USER_KINDS = frozenset(("event", "metric", "alert"))
_OPTIONAL_TEXT_FIELDS = frozenset(("trace_id", "span_id", "parent_span_id", "session"))

_getpid = os.getpid


# -- process fingerprint -------------------------------------------------

_library_cache: Optional[Dict[str, str]] = None


def _norm(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def library_versions() -> Dict[str, str]:
    """Versions of the ``TRACKED_LIBRARIES`` installed, read once per process.

    One directory listing per ``sys.path`` entry (the ``*.dist-info`` names
    carry name and version) instead of a metadata query per library, which
    would cost tens of milliseconds in a large environment.

    Example::

        library_versions()   # {'openai': '3.57.0', 'anthropic': '2.14.0'}
    """
    global _library_cache
    if _library_cache is not None:
        return dict(_library_cache)
    wanted = {_norm(d): d for d in TRACKED_LIBRARIES}
    found: Dict[str, str] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except (OSError, TypeError):
            continue
        for name in names:
            if not name.endswith(".dist-info"):
                continue
            dist, _, version = name[: -len(".dist-info")].partition("-")
            key = wanted.get(_norm(dist))
            if key is not None and version and key not in found:
                found[key] = version
    for dist in TRACKED_LIBRARIES:
        # An installed package without dist-info (vendored, frozen): take the module's own version.
        if dist not in found:
            module = sys.modules.get(_norm(dist))
            own: Any = getattr(module, "__version__", None) if module is not None else None
            if isinstance(own, str):
                found[dist] = own
    _library_cache = found
    return dict(found)


def process_info() -> Dict[str, Any]:
    """The fingerprint of this process: pid, host, Python, OS and LLM library versions.

    Example::

        process_info()["python"]   # '3.11.7'
    """
    try:
        host = socket.gethostname()
    except Exception:
        host = "unknown"
    return {
        "pid": os.getpid(),
        "host": host,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}".strip(),
        "libraries": library_versions(),
    }


# -- event ids ------------------------------------------------------------

_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def new_event_ids(n: int) -> List[str]:
    """``n`` unique event ids: UUIDv7 (48-bit millisecond clock, then random bits) as 32 hex digits.

    Time-ordered, so a store keyed on the id appends to its index instead of
    rewriting pages all over it. The random bits come from ``os.urandom`` in
    one call per batch (not ``random``: users seed it).

    Example::

        new_event_ids(2)   # ['019ac0a1b2c37e5a8f...', '019ac0a1b2c37b41a2...']
    """
    prefix = f"{int(time.time() * 1000) & 0xFFFFFFFFFFFF:012x}7"
    h = os.urandom(10 * n).hex()
    v = _VARIANT
    return [prefix + h[i : i + 3] + v[h[i + 3]] + h[i + 4 : i + 19] for i in range(0, 20 * n, 20)]


def new_event_id() -> str:
    """One unique event id (see ``new_event_ids``)."""
    return new_event_ids(1)[0]


# -- fork ---------------------------------------------------------------

_live: weakref.WeakSet[Reporter] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for reporter in list(_live):
        reporter._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Reporter:
    """Owns the queue, the worker thread and the exporter. Thread-safe; never raises.

    Example::

        rep = Reporter(exporter, agent_name="marcus", max_batch_size=50, flush_interval=0.5)
        rep.enqueue(raw_event)      # from any thread
        rep.flush(2.0)              # True when everything queued so far was handled
        rep.shutdown(5.0)
    """

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
        self.max_queue_size = max(1, max_queue_size)
        self.max_queue_bytes = max_queue_bytes
        self.max_batch_size = max(1, max_batch_size)
        self.flush_interval = flush_interval
        self.max_string_length = max_string_length
        self._closed = False
        self._adapter: Any = None
        self._validation_error: Any = Exception
        self._logged: Set[str] = set()
        self._reset_state()
        exporter.on_idle = self._on_idle
        _live.add(self)

    # -- state ------------------------------------------------------------

    def _reset_state(self) -> None:
        self._pid = _getpid()
        self._lock = threading.Lock()
        self._q: Deque[Dict[str, Any]] = collections.deque(maxlen=self.max_queue_size)
        # caller side, under _lock
        self._enqueued = 0
        self._dropped_q = 0
        self._dropped_closed = 0
        self._taken = 0
        # worker side
        self._pending: Deque[EncodedBatch] = collections.deque()
        self._pending_bytes = 0
        self._pending_events = 0
        self._inflight: Optional[EncodedBatch] = None
        self._last_mark = 0
        self._done = 0
        self._sent = 0
        self._failed = 0
        self._invalid = 0
        self._repaired = 0
        self._batches = 0
        self._export_errors = 0
        self._dropped_pending = 0
        self._restarts = 0
        self._starts = 0
        self.coercer = Coercer(self.max_string_length)
        self._header_json: Optional[str] = None
        # signalling
        self._wake = threading.Event()
        self._woken = False
        self._cond = threading.Condition(threading.Lock())
        self._start_lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._running = False
        self._next_start = 0.0
        self._stopping = False
        self._exporter_closed = False

    def _after_fork(self) -> None:
        # The child keeps none of the parent's queue: those events are the parent's to send.
        try:
            self._reset_state()
        except Exception as exc:
            internal_errors.note("reporter.after_fork", exc)
        with capture_internal_errors("exporter.after_fork"):
            self.exporter.after_fork()

    # -- caller side (hot path) ------------------------------------------

    def enqueue(self, event: Dict[str, Any]) -> None:
        """Queue one raw event dict. O(1), never blocks on the worker; drops the oldest when full.

        A ``finalize`` key holds a callable the worker runs with the event before validating
        it, to complete the event in place.
        """
        try:
            if self._pid != _getpid():
                self._after_fork()
            with self._lock:
                if self._closed:
                    self._dropped_closed += 1
                    return
                q = self._q
                if len(q) == self.max_queue_size:
                    self._dropped_q += 1
                q.append(event)
                self._enqueued += 1
                n = len(q)
            if not self._running:
                self._start()
            elif n >= self.max_batch_size and not self._woken:
                self._woken = True
                self._wake.set()
        except Exception as exc:
            internal_errors.note("reporter.enqueue", exc)

    def _start(self) -> None:
        with self._start_lock:
            if self._running or self._closed:
                return
            now = time.monotonic()
            if now < self._next_start:
                return
            t = threading.Thread(target=self._run, name="agentpulse-reporter", daemon=True)
            self._thread = t
            self._running = True
            try:
                # An empty context: the worker is not user work, no span follows it in.
                contextvars.Context().run(t.start)
            except Exception as exc:  # e.g. "can't create new thread at interpreter shutdown"
                self._thread = None
                self._running = False
                self._next_start = now + 1.0
                self._log_once("start", "agentpulse: cannot start the reporter thread: %s", exc)
                return
            if self._starts:
                self._restarts += 1
                self._log_once("restart", "agentpulse: the reporter thread had stopped; restarted it")
            self._starts += 1

    # -- worker side ------------------------------------------------------

    def _run(self) -> None:
        me = threading.current_thread()
        try:
            while True:
                if len(self._q) < self.max_batch_size:
                    self._wake.wait(self.flush_interval)
                self._wake.clear()
                self._woken = False
                try:
                    self._cycle()
                except Exception as exc:  # keep the worker alive whatever happens
                    internal_errors.note("reporter.cycle", exc)
                self._notify()
                if self._stopping and not self._q and not self._pending:
                    return
        except BaseException as exc:
            # Something raised SystemExit or the like inside an exporter: stop quietly; the next
            # enqueue or flush starts a new worker.
            self._log_once("died", "agentpulse: the reporter thread stopped on %r", exc)
        finally:
            with self._start_lock:
                if self._thread is me:
                    self._running = False
            self._notify()
            if self._closed:
                self._close_exporter()

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _cycle(self) -> None:
        while True:
            self._drain()
            if not self._send_pending() or not self._q:
                return

    def _on_idle(self) -> None:
        # Called by the exporter between retries, on this same worker thread.
        if self._pid == _getpid() and threading.current_thread() is self._thread:
            try:
                self._drain()
            except Exception as exc:
                internal_errors.note("reporter.drain", exc)

    def _drain(self) -> None:
        """Move everything queued into encoded batches (bounded), in order."""
        n = self.max_batch_size
        while True:
            with self._lock:
                q = self._q
                chunk = [q.popleft() for _ in range(min(n, len(q)))]
                self._taken += len(chunk)
                mark = self._taken + self._dropped_q
            self._last_mark = mark
            if not chunk:
                break
            batch = self.encode(chunk)
            if batch is not None:
                batch.mark = mark
                self._pending.append(batch)
                self._pending_bytes += batch.nbytes
                self._pending_events += len(batch)
                self._bound_pending()
        if not self._pending and self._done < mark:
            self._done = mark
            self._notify()

    def _bound_pending(self) -> None:
        pending = self._pending
        while self._pending_bytes > self.max_queue_bytes or self._pending_events > self.max_queue_size:
            i = 1 if pending and pending[0] is self._inflight else 0
            if i >= len(pending) - 1:
                return  # keep the newest batch (and the one being sent) whatever it weighs
            old = pending[i]
            del pending[i]
            self._pending_bytes -= old.nbytes
            self._pending_events -= len(old)
            self._dropped_pending += len(old)
            self._log_once(
                "bound",
                "agentpulse: delivery is behind; dropping the oldest queued events (max_queue_bytes/size)",
            )
            if i == 0 and old.mark > self._done:
                self._done = old.mark

    def _send_pending(self) -> bool:
        """Export waiting batches in order. False when the exporter asks to try later."""
        pending = self._pending
        while pending:
            batch = pending[0]
            self._inflight = batch
            try:
                self.exporter.export(batch)
            except ExportError as exc:
                self._export_errors += 1
                if exc.retryable and not self._stopping:
                    self._inflight = None
                    self._log_once("retry", "agentpulse: export failed, will retry: %s", exc)
                    return False
                self._settle(batch, sent=False)
                self._log_once("failed", "agentpulse: export failed, batch dropped: %s", exc)
                continue
            except Exception as exc:
                internal_errors.note(f"exporter.{self.exporter.name}", exc)
                self._settle(batch, sent=False)
                continue
            except BaseException:
                self._settle(batch, sent=False)
                raise
            self._settle(batch, sent=True)
        return True

    def _settle(self, batch: EncodedBatch, *, sent: bool) -> None:
        pending = self._pending
        if pending and pending[0] is batch:
            pending.popleft()
            self._pending_bytes -= batch.nbytes
            self._pending_events -= len(batch)
        self._inflight = None
        if sent:
            self._sent += len(batch)
            self._batches += 1
        else:
            self._failed += len(batch)
        done = batch.mark if pending else self._last_mark
        if done > self._done:
            self._done = done
        self._notify()

    # -- encoding (worker) ----------------------------------------------------

    def encode(self, raw: List[Dict[str, Any]]) -> Optional[EncodedBatch]:
        """Give raw events ids, coerce and validate them against the wire models, serialise each once."""
        adapter = self._event_adapter()
        keep = self.exporter.wants_models
        models: Optional[List[Any]] = [] if keep else None
        texts: List[str] = []
        for ev, event_id in zip(raw, new_event_ids(len(raw))):
            try:
                model = self._validate(ev, event_id, adapter)
                if model is None:
                    continue
                try:
                    # The model's own serializer: 3x quicker than going through the union's.
                    text = type(model).__pydantic_serializer__.to_json(model)
                except Exception:  # lone surrogates in a string cannot be UTF-8
                    model = adapter.validate_python(scrub_surrogates(ev))
                    text = type(model).__pydantic_serializer__.to_json(model)
                texts.append(text.decode("utf-8"))
                if models is not None:
                    models.append(model)
            except Exception as exc:
                self._invalid += 1
                internal_errors.note(f"reporter.encode.{ev.get('kind')}", exc)
        if not texts:
            return None
        return EncodedBatch(self._header(), models, texts)

    def _validate(self, ev: Dict[str, Any], event_id: str, adapter: Any) -> Any:
        ev["id"] = event_id
        finalize = ev.pop("finalize", None)
        if finalize is not None:
            finalize(ev)  # an event its producer completes here, off the caller's thread (an LLM call)
        data = ev.get("data")
        if data is not None:
            ev["data"] = data = self.coercer(data)
        kind = ev.get("kind")
        if kind == "process_start" and isinstance(data, dict) and not data.get("fingerprint"):
            # Read here, not at init(): the library scan costs milliseconds the caller shouldn't pay.
            data["fingerprint"] = process_info()
        try:
            return adapter.validator.validate_python(ev)
        except self._validation_error as exc:
            first = exc
        fixed = self._repair(ev, first)
        model = None
        if fixed:
            try:
                model = adapter.validate_python(ev)
            except self._validation_error as exc:
                first = exc
        if kind in USER_KINDS:
            if model is None:
                self._invalid += 1
            self._log_once(f"invalid.{kind}", "agentpulse: a %s event had invalid fields: %s", kind, first)
        else:
            if model is None:
                self._invalid += 1
            internal_errors.note(f"reporter.validate.{kind}", first)
        if model is not None:
            self._repaired += 1
        return model

    def _repair(self, ev: Dict[str, Any], exc: Any) -> bool:
        """Move the data fields the validator refused into ``data._invalid``; True if anything changed."""
        data = ev.get("data")
        moved: Dict[str, Any] = {}
        changed = False
        for err in exc.errors(include_url=False, include_context=False):
            loc: Tuple[Any, ...] = tuple(err.get("loc") or ())
            # A discriminated union puts the tag first: ("metric", "data", "value").
            if len(loc) >= 3 and loc[1] == "data" and isinstance(data, dict):
                key = loc[2]
                if key in moved:
                    continue
                if key not in data:
                    return False  # a required field is missing: nothing to move
                moved[str(key)] = data.pop(key)
            elif len(loc) == 2 and loc[1] in _OPTIONAL_TEXT_FIELDS and ev.get(str(loc[1])) is not None:
                ev[str(loc[1])] = self.coercer.text(str(ev[str(loc[1])]))
            else:
                return False
            changed = True
        if moved and isinstance(data, dict):
            data["_invalid"] = {k: self.coercer._repr(v) for k, v in moved.items()}
        return changed

    def _event_adapter(self) -> Any:
        if self._adapter is None:
            # Imported here, on the worker: building the models costs the caller nothing at init().
            from pydantic import TypeAdapter, ValidationError

            from .models import Event

            self._validation_error = ValidationError
            self._adapter = TypeAdapter(Event)
        return self._adapter

    def _header(self) -> str:
        if self._header_json is None:
            import json

            from .models import ProcessInfo

            proc = ProcessInfo.model_validate(process_info())
            self._header_json = json.dumps(
                {
                    "agent": self.agent_name,
                    "sdk_version": __version__,
                    "process": proc.model_dump(mode="json"),
                },
                separators=(",", ":"),
            )
        return self._header_json

    def _log_once(self, key: str, msg: str, *args: Any) -> None:
        if key not in self._logged:
            self._logged.add(key)
            logger.debug(msg, *args)

    # -- control ----------------------------------------------------------

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every event queued before this call was handled, at most ``timeout`` seconds.

        Handled means delivered, or given up on and counted. Returns True when
        that happened in time. Never raises.
        """
        try:
            deadline = time.monotonic() + max(0.0, timeout)
            if self._pid != _getpid():
                self._after_fork()
            with self._lock:
                target = self._enqueued
            if self._closed or threading.current_thread() is self._thread:
                return self._done >= target  # nothing more will happen / don't wait on ourselves
            while self._done < target:
                if not self._running:
                    self._start()
                    if not self._running:
                        # No thread can start (the interpreter is exiting): do the work here.
                        self._work_inline(deadline)
                        return self._done >= target
                self._wake.set()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                with self._cond:
                    if self._done < target:
                        self._cond.wait(min(remaining, 0.1))
            return True
        except Exception as exc:
            internal_errors.note("reporter.flush", exc)
            return False

    def _work_inline(self, deadline: float) -> None:
        with self._start_lock:
            if self._running:
                return
            self._running = True
            self._thread = threading.current_thread()
        previous = self.exporter.deadline
        try:
            if previous is None or previous > deadline:
                self.exporter.deadline = deadline
            self._cycle()
        finally:
            self.exporter.deadline = previous
            with self._start_lock:
                self._running = False
                self._thread = None
            self._notify()

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Flush within ``timeout`` seconds, stop the worker and close the exporter.

        Returns whether everything was delivered in time. Events still queued
        at the deadline are counted as failed; a worker stuck in a request is
        left behind (it is a daemon thread) rather than waited for.
        """
        if self._closed:
            return True
        try:
            deadline = time.monotonic() + max(0.0, timeout)
            self.exporter.deadline = deadline
            drained = self.flush(timeout)
            self._stopping = True
            with capture_internal_errors("exporter.stop"):
                self.exporter.stop()
            with self._lock:
                self._closed = True
            self._wake.set()
            t = self._thread
            if t is not None and t.is_alive() and t is not threading.current_thread():
                t.join(max(0.0, deadline - time.monotonic()))
            if t is None or not t.is_alive():
                self._close_exporter()
            else:
                logger.debug(
                    "agentpulse: reporter still busy at the shutdown deadline; %d events left", self.queued()
                )
            return drained
        except Exception as exc:
            internal_errors.note("reporter.shutdown", exc)
            return False

    def _close_exporter(self) -> None:
        with self._start_lock:
            if self._exporter_closed:
                return
            self._exporter_closed = True
        with capture_internal_errors("exporter.close"):
            self.exporter.close()

    @property
    def closed(self) -> bool:
        """True after ``shutdown()``: new events are dropped."""
        return self._closed

    def queued(self) -> int:
        """Events waiting: in the queue plus encoded and waiting for delivery."""
        return len(self._q) + self._pending_events

    def stats(self) -> Dict[str, int]:
        """The counters: enqueued, queued, sent, dropped, failed, retried, coerced, truncated, ...

        ``dropped`` counts events thrown away to stay within the queue bounds
        (or enqueued after shutdown); ``failed`` events the exporter gave up on;
        ``invalid`` events that could not be made valid; ``repaired`` events
        whose bad fields were moved to ``data._invalid``.
        """
        with self._lock:
            enqueued = self._enqueued
            dropped = self._dropped_q + self._dropped_closed
            raw = len(self._q)
        return {
            "enqueued": enqueued,
            "queued": raw + self._pending_events,
            "sent": self._sent,
            "dropped": dropped + self._dropped_pending,
            "failed": self._failed,
            "invalid": self._invalid,
            "repaired": self._repaired,
            "retried": int(getattr(self.exporter, "retries", 0) or 0),
            "batches": self._batches,
            "export_errors": self._export_errors,
            "pending_bytes": self._pending_bytes,
            "coerced": self.coercer.coerced,
            "truncated": self.coercer.truncated,
            "worker_restarts": self._restarts,
            "internal_errors": internal_errors.count,
        }

    def __repr__(self) -> str:
        return (
            f"<Reporter exporter={self.exporter.describe()!r} queued={self.queued()} "
            f"sent={self._sent} dropped={self._dropped_q + self._dropped_pending} pid={self._pid}>"
        )
