"""The client: owns the config, the reporter and the applied patches.

``agentpulse.init()`` builds one ``AgentPulse`` per process and returns it; a
second ``init()`` returns the same client. Everything else in the SDK reaches
it through ``get_client()``, which is ``None`` before ``init()`` — every public
call is then a cheap no-op.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from typing import Any, Callable, Dict, Mapping, Optional

from ._internal import capture_internal_errors, internal_errors, logger, set_debug
from .config import Config
from .context import Span, _current
from .exporters.base import Exporter
from .reporter import Reporter

__all__ = ["AgentPulse", "get_client", "init", "shutdown"]

_MISSING: Any = object()


def _build_exporter(config: Config) -> Exporter:
    if config.exporter == "memory":
        from .exporters.memory import MemoryExporter

        return MemoryExporter()
    if config.exporter == "none":
        return _NullExporter()
    if config.exporter == "otlp" or (config.exporter == "auto" and config.otlp_endpoint is not None):
        try:
            from .exporters.otlp import OtlpExporter
        except ImportError:
            from .config import ConfigError

            needs = "the otlp extra installed: pip install 'agentpulse[otlp]'"
            raise ConfigError("exporter", "otlp", needs) from None
        return OtlpExporter(
            config.otlp_endpoint,
            use_global_provider=config.otlp_use_global_provider,
            timeout=config.request_timeout,
        )
    if config.uses_http():
        from .exporters.http import HttpExporter

        if config.endpoint is None:
            from .config import ConfigError

            raise ConfigError("endpoint", None, "a collector URL when exporter='http' or api_key is set")
        key = config.api_key.get_secret_value() if config.api_key is not None else None
        return HttpExporter(
            config.endpoint, key, timeout=config.request_timeout, max_retries=config.max_retries
        )
    from .exporters.local import LocalExporter

    return LocalExporter(config.local_path)


def _copy(data: Any) -> Any:
    # A shallow copy, so the caller reusing its dict for the next call changes nothing queued.
    # Anything that is not a dict is kept as it is and made JSON-safe on the worker.
    if type(data) is dict:
        return data.copy()
    if data is None:
        return {}
    if isinstance(data, Mapping):
        try:
            return dict(data)
        except Exception:
            pass
    return {"value": data}


class _NullExporter(Exporter):
    name = "none"

    def export(self, batch: Any) -> None:
        return None


class AgentPulse:
    """One per process. Use the module-level API (``agentpulse.event`` ...) rather than this directly.

    Example::

        import agentpulse
        client = agentpulse.init(agent_name="marcus", exporter="memory")
        client.event("started", {"ok": True})
        client.flush()
    """

    def __init__(self, config: Config, exporter: Optional[Exporter] = None) -> None:
        self.config = config
        self.enabled = config.enabled
        self.pid = os.getpid()
        self.started_at = time.time()
        self._started_perf = time.perf_counter()
        self._before_send: Optional[Callable[[Dict[str, Any]], Optional[Dict[str, Any]]]] = config.before_send
        self.dropped_by_before_send = 0
        if exporter is None:
            # Disabled: build nothing that touches the disk or the network.
            exporter = _build_exporter(config) if config.enabled else _NullExporter()
        self.exporter: Exporter = exporter
        self.reporter = Reporter(
            self.exporter,
            agent_name=config.agent_name,
            max_queue_size=config.max_queue_size,
            max_queue_bytes=config.max_queue_bytes,
            max_batch_size=config.max_batch_size,
            flush_interval=config.flush_interval,
            max_string_length=config.max_string_length,
        )
        self._shut = False
        from .guards import Guards
        from .privacy import Redactor

        self.guards = Guards(self)
        self.redact = Redactor(config)

    # -- events -----------------------------------------------------------

    def emit(
        self,
        kind: str,
        data: Dict[str, Any],
        span: Optional[Span] = _MISSING,
        *,
        own_span_id: Optional[str] = None,
        ts: Optional[float] = None,
    ) -> None:
        """Queue one event of ``kind`` with ``data``, placed in the span tree.

        ``span`` defaults to the current span. With ``own_span_id`` the event is
        a span of its own (an LLM call) whose parent is ``span``; without it the
        event belongs to ``span``. Never raises.
        """
        if not self.enabled:
            return
        if span is _MISSING:
            span = _current.get()
        ev: Dict[str, Any] = {"kind": kind, "ts": time.time() if ts is None else ts, "data": data}
        if span is not None:
            ev["trace_id"] = span.trace_id
            ev["session"] = span.session
            if own_span_id is not None:
                ev["span_id"] = own_span_id
                ev["parent_span_id"] = span.span_id
            else:
                ev["span_id"] = span.span_id
                ev["parent_span_id"] = span.parent.span_id if span.parent is not None else None
        elif own_span_id is not None:
            ev["span_id"] = own_span_id
        if self._before_send is not None:
            try:
                out = self._before_send(ev)
            except Exception as exc:
                internal_errors.note("before_send", exc)
                out = ev
            if out is None:
                self.dropped_by_before_send += 1
                return
            ev = out
        self.reporter.enqueue(ev)

    def event(self, name: str, data: Optional[Dict[str, Any]] = None) -> None:
        """Record a named event with a dict of data (coerced to JSON on the worker)."""
        if self.enabled:
            self.emit("event", {"name": name, "data": data.copy() if type(data) is dict else _copy(data)})

    def metric(self, name: str, value: float, tags: Optional[Dict[str, Any]] = None) -> None:
        """Record a number."""
        if self.enabled:
            self.emit("metric", {"name": name, "value": value, "tags": _copy(tags)})

    def alert(self, title: str, severity: str = "warning", details: Optional[Dict[str, Any]] = None) -> None:
        """Record something that needs a human."""
        if self.enabled:
            self.emit("alert", {"title": title, "severity": severity, "details": _copy(details)})

    # -- lifecycle --------------------------------------------------------

    def start(self) -> None:
        """Apply patches, hooks and the process_start event. Called once by ``init()``."""
        if not self.enabled:
            return
        set_debug(self.config.debug)
        with capture_internal_errors("client.start.process_start"):
            # The fingerprint is filled in on the worker: reading library versions costs milliseconds.
            self.emit("process_start", {}, span=None)
        if self.config.propagate_context:
            from .context import install_thread_propagation

            install_thread_propagation()
        from . import hooks

        hooks.install(self)
        with capture_internal_errors("client.start.patch"):
            from .patching import apply_integrations

            apply_integrations(self)
        with capture_internal_errors("client.start.frameworks"):
            from .frameworks import install_frameworks

            install_frameworks(self)
        logger.debug("agentpulse: started, events go to %s", self.exporter.describe())

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait for queued events to be exported, at most ``timeout`` (default ``shutdown_timeout``)."""
        if not self.enabled:
            return True
        from .recorder import drain_deferred

        drain_deferred()  # LLM calls whose streams were garbage-collected
        return self.reporter.flush(self.config.shutdown_timeout if timeout is None else timeout)

    def shutdown(self, timeout: Optional[float] = None) -> bool:
        """Send ``process_stop``, flush within the timeout and stop. Idempotent."""
        if self._shut or not self.enabled:
            self._shut = True
            return True
        self._shut = True
        from .recorder import drain_deferred

        drain_deferred()  # LLM calls whose streams were garbage-collected
        with capture_internal_errors("client.shutdown.process_stop"):
            counters = self.reporter.stats()
            uptime = max(0.0, time.perf_counter() - self._started_perf)
            self.emit(
                "process_stop",
                {"uptime_s": uptime, "counters": {k: int(v) for k, v in counters.items()}},
                span=None,
            )
        return self.reporter.shutdown(self.config.shutdown_timeout if timeout is None else timeout)

    def stats(self) -> Dict[str, int]:
        """Reporter counters: queued, enqueued, sent, dropped, failed, retried, coerced, ..."""
        if not self.enabled:
            return {}
        out = self.reporter.stats()
        out["dropped_by_before_send"] = self.dropped_by_before_send
        return out

    def __repr__(self) -> str:
        if not self.enabled:
            return "<AgentPulse disabled>"
        s = self.reporter.stats()
        return (
            f"<AgentPulse agent={self.config.agent_name!r} exporter={self.exporter.describe()!r} "
            f"queued={s['queued']} sent={s['sent']} dropped={s['dropped']}>"
        )


# -- the process-wide client --------------------------------------------

_client: Optional[AgentPulse] = None
_lock = threading.RLock()
_atexit_registered = False


def get_client() -> Optional[AgentPulse]:
    """The client ``init()`` made, or ``None``."""
    return _client


def init(_exporter: Optional[Exporter] = None, **options: Any) -> AgentPulse:
    """Start AgentPulse. See ``agentpulse.init`` for the options."""
    global _client, _atexit_registered
    config = Config.resolve(options)
    if config.patch_specs:
        from .patching import load_user_specs

        load_user_specs(config)  # a bad spec file fails init() here, naming the file, entry and field
    with _lock:
        if _client is not None and not _client._shut:
            if options and _client.config.model_dump(exclude={"before_send"}) != config.model_dump(
                exclude={"before_send"}
            ):
                logger.warning("agentpulse.init() called again with other options; keeping the first client")
            return _client
        client = AgentPulse(config, _exporter)
        _client = client
        client.start()
        if not _atexit_registered and client.enabled:
            atexit.register(_atexit)
            _atexit_registered = True
        return client


def shutdown(timeout: Optional[float] = None) -> bool:
    """Flush and stop the client; undo patches and hooks. Safe to call more than once."""
    global _client
    with _lock:
        client = _client
        if client is None:
            return True
        _client = None
    ok = True
    with capture_internal_errors("client.shutdown"):
        ok = client.shutdown(timeout)
    with capture_internal_errors("client.shutdown.unpatch"):
        from .patching import unpatch_all

        unpatch_all()
    with capture_internal_errors("client.shutdown.frameworks"):
        from .frameworks import uninstall_frameworks

        uninstall_frameworks()
    with capture_internal_errors("client.shutdown.hooks"):
        from . import hooks
        from .context import uninstall_thread_propagation

        hooks.uninstall()
        uninstall_thread_propagation()
    set_debug(False)
    return ok


def _atexit() -> None:
    client = _client
    if client is not None and client.pid == os.getpid():
        with capture_internal_errors("client.atexit"):
            client.shutdown()
