"""OTLP export: AgentPulse spans and LLM calls as OpenTelemetry spans (GenAI semantic conventions).

``agentpulse.init(exporter="otlp", otlp_endpoint="http://collector:4318")`` (or
``AGENTPULSE_OTLP_ENDPOINT``) sends every span and LLM call to any
OpenTelemetry backend through the official OTLP/HTTP exporter (extra ``otlp``).

* Sessions, agents, tasks, traces and cron runs become spans with their
  AgentPulse ids (trace and span ids have the OpenTelemetry shape already), so
  the tree is the same on both sides. An LLM call is a ``CLIENT`` span named
  ``"{operation} {model}"`` with ``gen_ai.provider.name`` (and the older
  ``gen_ai.system``), ``gen_ai.operation.name``, ``gen_ai.request.model``,
  ``gen_ai.response.model``, ``gen_ai.usage.input_tokens`` /
  ``output_tokens`` / ``cache_read.input_tokens`` /
  ``cache_creation.input_tokens`` / ``reasoning.output_tokens``,
  ``gen_ai.response.finish_reasons``, ``gen_ai.request.temperature`` /
  ``max_tokens`` / ``stream``, ``error.type``, and the cost as
  ``agentpulse.cost_usd``. Prompts and answers (``capture_messages=True``
  only) go in ``gen_ai.input.messages`` / ``gen_ai.output.messages``.
* Events, metrics, alerts, errors, cron check-ins and memory snapshots are span
  events on the span they happened in.
* The exporter has its OWN ``TracerProvider``: the application's global
  OpenTelemetry setup is never replaced nor touched. With
  ``otlp_use_global_provider=True`` the spans go through the application's
  global provider instead (its processors and exporters; ``otlp_endpoint`` is
  then unused).

It runs on the reporter's worker thread; spans are exported once per batch.

Example::

    import agentpulse
    agentpulse.init(exporter="otlp", otlp_endpoint="http://127.0.0.1:4318")
"""

from __future__ import annotations

import collections
import json
import os
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

from .._internal import log_once
from .._version import __version__
from .base import EncodedBatch, Exporter, ExportError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import Span as OtelSpan

__all__ = ["OtlpExporter", "traces_url"]

_OPERATIONS = {"completion": "text_completion", "embedding": "embeddings", "responses": "chat"}
_AGENT_OPERATIONS = {"agent": "invoke_agent", "tool": "execute_tool"}
_MAX_ATTR = 4096


def traces_url(endpoint: str) -> str:
    """``{endpoint}/v1/traces`` unless the endpoint already names the traces path."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"


def _ns(ts: float) -> int:
    return int(ts * 1e9)


def _hex(value: Optional[str], digits: int) -> Optional[int]:
    if not value or len(value) != digits:
        return None
    try:
        n = int(value, 16)
    except ValueError:
        return None
    return n or None


def _attr(value: Any) -> Any:
    """A value OpenTelemetry accepts as an attribute: primitives, lists of one primitive type, else JSON."""
    if isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return value if len(value) <= _MAX_ATTR else value[: _MAX_ATTR - 3] + "..."
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return [str(v) for v in value]
    text = json.dumps(value, default=str, separators=(",", ":"))
    return text if len(text) <= _MAX_ATTR else text[: _MAX_ATTR - 3] + "..."


def _put(attrs: Dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        attrs[key] = _attr(value)


class _PresetIds(RandomIdGenerator):
    """Hands the SDK the ids AgentPulse already chose (random too); fresh random ones when none is set."""

    def __init__(self) -> None:
        self.trace_id: Optional[int] = None
        self.span_id: Optional[int] = None

    def generate_span_id(self) -> int:
        value, self.span_id = self.span_id, None
        return value or super().generate_span_id()

    def generate_trace_id(self) -> int:
        value, self.trace_id = self.trace_id, None
        return value or super().generate_trace_id()


class OtlpExporter(Exporter):
    """Sends AgentPulse events as OpenTelemetry spans over OTLP/HTTP (protobuf, gzip).

    ``endpoint`` is the OTLP base URL (``/v1/traces`` is added) or ``None`` for
    the OpenTelemetry environment variables (``OTEL_EXPORTER_OTLP_ENDPOINT``,
    ``OTEL_EXPORTER_OTLP_HEADERS``...). ``use_global_provider`` sends through
    the application's global tracer provider instead of our own.

    Example::

        from agentpulse.exporters.otlp import OtlpExporter
        agentpulse.init(_exporter=OtlpExporter("http://127.0.0.1:4318"))
    """

    name = "otlp"
    wants_models = True

    def __init__(
        self,
        endpoint: Optional[str] = None,
        *,
        use_global_provider: bool = False,
        headers: Optional[Dict[str, str]] = None,
        timeout: float = 10.0,
        max_open_spans: int = 10_000,
        max_outbox: int = 20_000,
        max_attempts: int = 3,
    ) -> None:
        self.endpoint = endpoint
        self.use_global_provider = use_global_provider
        self.headers = headers
        self.timeout = timeout
        self.max_open_spans = max_open_spans
        self.max_outbox = max_outbox
        self.max_attempts = max_attempts
        self.exported = 0
        self.dropped = 0
        self._pid = os.getpid()
        self._reset()

    def _reset(self) -> None:
        self._tracer: Any = None
        self._provider: Any = None
        self._exporter: Any = None
        self._ids: Optional[_PresetIds] = None
        self._finished: List[ReadableSpan] = []
        self._outbox: List[ReadableSpan] = []
        self._open: collections.OrderedDict[str, OtelSpan] = collections.OrderedDict()
        self._mapped: Optional[EncodedBatch] = None
        self._failures = 0

    # -- setup --------------------------------------------------------------

    def _setup(self, header_json: str) -> None:
        from opentelemetry import trace

        if self.use_global_provider:
            self._tracer = trace.get_tracer("agentpulse", __version__)
            return
        from opentelemetry.exporter.otlp.proto.http import Compression
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON

        finished = self._finished

        class _Collect(SpanProcessor):
            # Ended spans wait here until the end of the batch: one OTLP request per batch.
            def on_end(self, span: ReadableSpan) -> None:
                finished.append(span)

        try:
            head = json.loads(header_json)
        except ValueError:
            head = {}
        proc = head.get("process") or {}
        attributes = {
            "service.name": head.get("agent") or "agentpulse",
            "telemetry.sdk.name": "agentpulse",
            "telemetry.sdk.language": "python",
            "telemetry.sdk.version": head.get("sdk_version") or __version__,
            "host.name": proc.get("host"),
            "process.pid": proc.get("pid"),
            "process.runtime.name": "cpython",
            "process.runtime.version": proc.get("python"),
            "os.description": proc.get("os"),
        }
        self._ids = _PresetIds()
        self._provider = TracerProvider(
            resource=Resource.create({k: v for k, v in attributes.items() if v is not None}),
            sampler=ALWAYS_ON,
            id_generator=self._ids,
            shutdown_on_exit=False,
        )
        self._provider.add_span_processor(_Collect())
        self._exporter = OTLPSpanExporter(
            endpoint=traces_url(self.endpoint) if self.endpoint else None,
            headers=self.headers,
            timeout=self.timeout,
            compression=Compression.Gzip,
        )
        self._tracer = self._provider.get_tracer("agentpulse", __version__)

    # -- Exporter -------------------------------------------------------------

    def export(self, batch: EncodedBatch) -> None:
        """Turn the batch into spans and send them (with any left over from a failed send)."""
        if self._pid != os.getpid():
            self.after_fork()
        if self._tracer is None:
            self._setup(batch.header_json)
        if self._mapped is not batch:  # a retried batch is not mapped twice
            head_agent = _agent_of(batch.header_json)
            for event in batch.events:
                self._map(event, head_agent)
            self._mapped = batch
        self._send()
        self._mapped = None

    def _send(self) -> None:
        if self._exporter is None:
            self._finished.clear()
            return
        self._outbox.extend(self._finished)
        self._finished.clear()
        if len(self._outbox) > self.max_outbox:
            drop = len(self._outbox) - self.max_outbox
            del self._outbox[:drop]
            self.dropped += drop
            log_once("otlp.outbox", "agentpulse: OTLP backend unreachable; dropping the oldest spans")
        if not self._outbox:
            return
        from opentelemetry.sdk.trace.export import SpanExportResult

        spans = self._outbox
        result = self._exporter.export(spans)
        if result is not SpanExportResult.SUCCESS:
            # The OTLP exporter already retried what it deems transient. Try again later a few times
            # (a backend down for a while), then give up on these spans so one bad batch blocks nothing.
            self._failures += 1
            if self._failures >= self.max_attempts:
                self.dropped += len(spans)
                self._outbox = []
                self._failures = 0
                raise ExportError(f"OTLP export of {len(spans)} spans failed; dropped", retryable=False)
            raise ExportError(f"OTLP export of {len(spans)} spans failed", retryable=True)
        self.exported += len(spans)
        self._outbox = []
        self._failures = 0

    def after_fork(self) -> None:
        # The parent's provider, session and open spans are the parent's.
        self._pid = os.getpid()
        self._reset()

    def close(self) -> None:
        """End spans still open (marked incomplete), send what is left, shut our provider down."""
        if self._pid != os.getpid() or self._tracer is None:
            return
        for span in list(self._open.values()):
            span.set_attribute("agentpulse.incomplete", True)
            span.end()
        self._open.clear()
        try:
            self._send()
        except ExportError as exc:
            log_once("otlp.close", "agentpulse: %s at shutdown", exc)
        if self._provider is not None:
            self._provider.shutdown()
        self._tracer = None

    def describe(self) -> str:
        if self.use_global_provider:
            return "OpenTelemetry (the application's global tracer provider)"
        return f"OTLP {traces_url(self.endpoint) if self.endpoint else '(OTEL_EXPORTER_OTLP_* settings)'}"

    def __repr__(self) -> str:
        return f"OtlpExporter({self.describe()!r}, exported={self.exported})"

    # -- mapping ----------------------------------------------------------------

    def _context(self, trace_id: Optional[str], parent_span_id: Optional[str]) -> Any:
        from opentelemetry import trace
        from opentelemetry.context import Context

        # A root gets an empty context, never the worker thread's current one: whatever OpenTelemetry
        # span the application had open when our thread started is not our parent.
        if not parent_span_id:
            return Context()
        parent = self._open.get(parent_span_id)
        if parent is not None:
            return trace.set_span_in_context(parent, Context())
        tid, sid = _hex(trace_id, 32), _hex(parent_span_id, 16)
        if tid is None or sid is None:
            return Context()
        flags = trace.TraceFlags(trace.TraceFlags.SAMPLED)
        ctx = trace.SpanContext(tid, sid, is_remote=True, trace_flags=flags)
        return trace.set_span_in_context(trace.NonRecordingSpan(ctx), Context())

    def _start(
        self,
        name: str,
        event: Any,
        parent_span_id: Optional[str],
        *,
        kind: Any,
        attributes: Dict[str, Any],
        start: float,
    ) -> OtelSpan:
        if self._ids is not None:
            self._ids.trace_id = _hex(event.trace_id, 32)
            self._ids.span_id = _hex(event.span_id, 16)
        context = self._context(event.trace_id, parent_span_id)
        span: OtelSpan = self._tracer.start_span(
            name, context=context, kind=kind, attributes=attributes, start_time=_ns(start)
        )
        return span

    def _map(self, event: Any, agent: Optional[str]) -> None:
        from opentelemetry.trace import SpanKind

        kind = event.kind
        data = event.data
        if kind == "span_start":
            attrs = self._span_attributes(event, agent, data.span_kind, data.name, data.metadata)
            span = self._start(
                data.name,
                event,
                event.parent_span_id,
                kind=SpanKind.INTERNAL,
                attributes=attrs,
                start=event.ts,
            )
            if event.span_id:
                self._open[event.span_id] = span
                if len(self._open) > self.max_open_spans:
                    _, oldest = self._open.popitem(last=False)
                    oldest.set_attribute("agentpulse.incomplete", True)
                    oldest.end()
            return
        if kind == "span_end":
            ended = self._open.pop(event.span_id, None) if event.span_id else None
            if ended is not None:
                span = ended
            else:  # started before this process sent anything, or evicted
                attrs = self._span_attributes(event, agent, data.span_kind or "span", data.name, {})
                span = self._start(
                    data.name,
                    event,
                    event.parent_span_id,
                    kind=SpanKind.INTERNAL,
                    attributes=attrs,
                    start=event.ts - data.duration_ms / 1000.0,
                )
            for key, value in (data.metadata or {}).items():
                _set(span, f"agentpulse.metadata.{key}", value)
            self._finish(span, data.status, data.error, end=event.ts)
            return
        if kind == "llm_call":
            self._llm(event, agent)
            return
        if kind in ("process_start", "process_stop"):
            return
        self._point(event, agent)

    def _span_attributes(
        self, event: Any, agent: Optional[str], span_kind: str, name: str, metadata: Dict[str, Any]
    ) -> Dict[str, Any]:
        attrs: Dict[str, Any] = {"agentpulse.span_kind": span_kind}
        _put(attrs, "agentpulse.agent", agent)
        _put(attrs, "agentpulse.session", event.session)
        operation = _AGENT_OPERATIONS.get(span_kind)
        if operation is not None:
            attrs["gen_ai.operation.name"] = operation
            attrs["gen_ai.agent.name" if span_kind == "agent" else "gen_ai.tool.name"] = name
        for key, value in (metadata or {}).items():
            _put(attrs, f"agentpulse.metadata.{key}", value)
        _put(attrs, "user.id", (metadata or {}).get("user_id"))
        _put(attrs, "session.id", (metadata or {}).get("session_id"))
        return attrs

    @staticmethod
    def _finish(span: OtelSpan, status: str, error: Any, *, end: float) -> None:
        from opentelemetry.trace import Status, StatusCode

        span.set_attribute("agentpulse.status", status)
        if status == "error":
            etype = getattr(error, "type", None) or "error"
            message = getattr(error, "message", None) or ""
            span.set_attribute("error.type", etype)
            span.add_event(
                "exception", {"exception.type": etype, "exception.message": message}, timestamp=_ns(end)
            )
            span.set_status(Status(StatusCode.ERROR, f"{etype}: {message}"[:1024]))
        span.end(end_time=_ns(end))

    def _llm(self, event: Any, agent: Optional[str]) -> None:
        from opentelemetry.trace import SpanKind

        d = event.data
        operation = _OPERATIONS.get(d.operation, d.operation)
        attrs: Dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": d.provider,
            "gen_ai.system": d.provider,
        }
        for key, value in (
            ("gen_ai.request.model", d.model),
            ("gen_ai.response.model", d.response_model),
            ("gen_ai.usage.input_tokens", d.input_tokens),
            ("gen_ai.usage.output_tokens", d.output_tokens),
            ("gen_ai.usage.cache_read.input_tokens", d.cache_read_tokens),
            ("gen_ai.usage.cache_creation.input_tokens", d.cache_write_tokens),
            ("gen_ai.usage.reasoning.output_tokens", d.reasoning_tokens),
            ("gen_ai.request.temperature", d.temperature),
            ("gen_ai.request.max_tokens", d.max_tokens),
            ("gen_ai.response.finish_reasons", [d.finish_reason] if d.finish_reason else None),
            ("gen_ai.input.messages", d.input),
            ("gen_ai.output.messages", d.output),
            ("agentpulse.cost_usd", d.cost_usd),
            ("agentpulse.cost_source", d.cost_source),
            ("agentpulse.cost_reason", d.cost_reason),
            ("agentpulse.usage_estimated", d.usage_estimated or None),
            ("agentpulse.time_to_first_token_ms", d.time_to_first_token_ms),
            ("agentpulse.tool_calls", d.tool_calls or None),
            ("agentpulse.agent", agent),
            ("agentpulse.session", event.session),
        ):
            _put(attrs, key, value)
        attrs["gen_ai.request.stream"] = bool(d.streaming)
        name = f"{operation} {d.model}" if d.model else operation
        span = self._start(
            name, event, event.parent_span_id, kind=SpanKind.CLIENT, attributes=attrs, start=event.ts
        )
        end = event.ts + (d.latency_ms or 0.0) / 1000.0
        self._finish(span, d.status, d.error, end=end)

    def _point(self, event: Any, agent: Optional[str]) -> None:
        name, attrs = _point_event(event)
        span = self._open.get(event.span_id) if event.span_id else None
        if span is not None:
            span.add_event(name, attrs, timestamp=_ns(event.ts))
            return
        if event.kind not in ("error", "alert"):
            return  # an event outside any open span has nothing to hang on
        # Unhandled errors and alerts matter on their own: a zero-length span carries them.
        from opentelemetry.trace import SpanKind

        lone = self._start(
            f"agentpulse.{event.kind}", event, event.parent_span_id, kind=SpanKind.INTERNAL,
            attributes={"agentpulse.agent": agent or ""}, start=event.ts,
        )  # fmt: skip
        lone.add_event(name, attrs, timestamp=_ns(event.ts))
        lone.end(end_time=_ns(event.ts))


def _set(span: OtelSpan, key: str, value: Any) -> None:
    if value is not None:
        span.set_attribute(key, _attr(value))


def _agent_of(header_json: str) -> Optional[str]:
    try:
        agent = json.loads(header_json).get("agent")
    except (ValueError, AttributeError):
        return None
    return str(agent) if agent else None


def _point_event(event: Any) -> Tuple[str, Dict[str, Any]]:
    d = event.data
    attrs: Dict[str, Any] = {}
    kind = event.kind
    if kind == "event":
        for key, value in (d.data or {}).items():
            _put(attrs, f"agentpulse.data.{key}", value)
        return d.name, attrs
    if kind == "metric":
        attrs["agentpulse.metric.value"] = float(d.value)
        for key, value in (d.tags or {}).items():
            _put(attrs, f"agentpulse.metric.tag.{key}", value)
        return f"metric {d.name}", attrs
    if kind == "alert":
        attrs.update({"agentpulse.alert.title": d.title, "agentpulse.alert.severity": d.severity})
        _put(attrs, "agentpulse.alert.details", d.details or None)
        return "agentpulse.alert", attrs
    if kind == "error":
        attrs.update({"exception.type": d.type, "exception.message": d.message})
        _put(attrs, "exception.stacktrace", d.traceback)
        _put(attrs, "thread.name", d.thread)
        return "exception", attrs
    if kind == "cron_checkin":
        attrs.update({"agentpulse.cron.monitor": d.monitor, "agentpulse.cron.status": d.status})
        _put(attrs, "agentpulse.cron.check_in_id", d.check_in_id)
        _put(attrs, "agentpulse.cron.schedule", d.schedule)
        _put(attrs, "agentpulse.cron.duration_ms", d.duration_ms)
        return "agentpulse.cron_checkin", attrs
    if kind == "memory_snapshot":
        files = list(d.files or [])
        attrs["agentpulse.memory.files"] = len(files)
        attrs["agentpulse.memory.bytes"] = sum(int(f.size or 0) for f in files)
        _put(attrs, "agentpulse.memory.paths", [str(f.path) for f in files][:50] or None)
        return "agentpulse.memory_snapshot", attrs
    return f"agentpulse.{kind}", attrs
