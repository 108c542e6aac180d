"""OTLP export: a receiver on 127.0.0.1 decodes what the exporter sent; the attributes are checked."""

from __future__ import annotations

import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, List, Optional

import pytest

pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
pytest.importorskip("opentelemetry.proto")
httpx2 = pytest.importorskip("httpx2")
openai = pytest.importorskip("openai")

from opentelemetry import trace  # noqa: E402
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (  # noqa: E402
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

import agentpulse  # noqa: E402
from agentpulse.config import Config  # noqa: E402
from agentpulse.exporters.otlp import OtlpExporter, traces_url  # noqa: E402


def _value(v: Any) -> Any:
    which = v.WhichOneof("value")
    if which == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, which) if which else None


def _attrs(items: Any) -> Dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in items}


class OtlpReceiver:
    """An OTLP/HTTP traces endpoint: decodes each protobuf request; answers from a script, then 200."""

    def __init__(self, script: Optional[List[int]] = None) -> None:
        self.script = list(script or [])
        self.requests: List[ExportTraceServiceRequest] = []
        self.statuses: List[int] = []
        self.paths: List[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                status = receiver.script.pop(0) if receiver.script else 200
                receiver.paths.append(self.path)
                receiver.statuses.append(status)
                if status == 200:
                    receiver.requests.append(ExportTraceServiceRequest.FromString(body))
                payload = ExportTraceServiceResponse().SerializeToString() if status == 200 else b"bad"
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def spans(self) -> List[Dict[str, Any]]:
        out = []
        for req in self.requests:
            for rs in req.resource_spans:
                resource = _attrs(rs.resource.attributes)
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        out.append(
                            {
                                "name": s.name,
                                "trace_id": s.trace_id.hex(),
                                "span_id": s.span_id.hex(),
                                "parent_span_id": s.parent_span_id.hex() or None,
                                "kind": s.kind,
                                "attributes": _attrs(s.attributes),
                                "events": [(e.name, _attrs(e.attributes)) for e in s.events],
                                "status": s.status.code,
                                "status_message": s.status.message,
                                "start": s.start_time_unix_nano,
                                "end": s.end_time_unix_nano,
                                "resource": resource,
                                "scope": ss.scope.name,
                            }
                        )
        return out

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Any]:
    made: List[OtlpReceiver] = []

    def make(script: Optional[List[int]] = None) -> OtlpReceiver:
        r = OtlpReceiver(script)
        made.append(r)
        return r

    yield make
    for r in made:
        r.stop()


def _answer(request: Any) -> Any:
    body = json.loads(request.content)
    return httpx2.Response(
        200,
        json={
            "id": "chatcmpl-otlp",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": body["model"] + "-2024-08-06",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
            ],
            "usage": {
                "prompt_tokens": 120,
                "completion_tokens": 30,
                "total_tokens": 150,
                "prompt_tokens_details": {"cached_tokens": 100},
                "completion_tokens_details": {"reasoning_tokens": 12},
            },
        },
    )


def _llm() -> Any:
    http = httpx2.Client(transport=httpx2.MockTransport(_answer))
    return openai.OpenAI(api_key="sk-test", base_url="http://llm.invalid/v1", http_client=http, max_retries=0)


def _run_agent() -> Dict[str, str]:
    llm = _llm()
    ids: Dict[str, str] = {}
    try:
        with agentpulse.session("otlp-session", metadata={"user_id": "u_42"}) as s:
            assert s.span is not None
            ids["trace"], ids["session"] = s.span.trace_id, s.span.span_id
            with agentpulse.agent("researcher") as a:
                assert a.span is not None
                ids["agent"] = a.span.span_id
                llm.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": "hello"}], temperature=0.2
                )
                agentpulse.event("found", {"papers": 3})
                agentpulse.metric("score", 0.9, tags={"k": "v"})
        with pytest.raises(ValueError), agentpulse.task("doomed"):
            raise ValueError("boom")
    finally:
        llm.close()
    return ids


def test_spans_and_llm_calls_follow_the_genai_conventions(receiver: Any) -> None:
    r = receiver()
    agentpulse.init(exporter="otlp", otlp_endpoint=r.url, agent_name="otlp-agent", flush_interval=0.05)
    ids = _run_agent()
    assert agentpulse.shutdown(timeout=10)
    assert set(r.paths) == {"/v1/traces"}
    spans = {s["name"]: s for s in r.spans()}
    assert set(spans) == {"otlp-session", "researcher", "chat gpt-4o", "doomed"}

    session, agent, call, doomed = (spans[n] for n in ("otlp-session", "researcher", "chat gpt-4o", "doomed"))
    # AgentPulse's ids are the OpenTelemetry ids: the same tree on both sides.
    assert session["trace_id"] == ids["trace"] and session["span_id"] == ids["session"]
    assert session["parent_span_id"] is None
    assert agent["span_id"] == ids["agent"] and agent["parent_span_id"] == ids["session"]
    assert call["parent_span_id"] == ids["agent"] and call["trace_id"] == ids["trace"]
    assert session["resource"]["service.name"] == "otlp-agent"
    assert session["scope"] == "agentpulse"

    a = call["attributes"]
    assert call["kind"] == 3  # SPAN_KIND_CLIENT
    assert a["gen_ai.system"] == "openai" and a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.request.model"] == "gpt-4o"
    assert a["gen_ai.response.model"] == "gpt-4o-2024-08-06"
    assert a["gen_ai.usage.input_tokens"] == 120
    assert a["gen_ai.usage.output_tokens"] == 30
    assert a["gen_ai.usage.cache_read.input_tokens"] == 100
    assert a["gen_ai.usage.reasoning.output_tokens"] == 12
    assert a["gen_ai.request.temperature"] == pytest.approx(0.2)
    assert a["gen_ai.response.finish_reasons"] == ["stop"]
    assert a["gen_ai.request.stream"] is False
    assert a["agentpulse.cost_usd"] > 0
    assert "gen_ai.input.messages" not in a  # capture_messages is off
    assert call["end"] > call["start"]

    assert agent["attributes"]["gen_ai.operation.name"] == "invoke_agent"
    assert agent["attributes"]["gen_ai.agent.name"] == "researcher"
    events = dict(agent["events"])
    assert events["found"] == {"agentpulse.data.papers": 3}
    assert events["metric score"]["agentpulse.metric.value"] == pytest.approx(0.9)
    assert session["attributes"]["user.id"] == "u_42"
    assert session["attributes"]["agentpulse.span_kind"] == "session"

    assert doomed["status"] == 2  # STATUS_CODE_ERROR
    assert doomed["attributes"]["error.type"] == "ValueError"
    assert ("exception", {"exception.type": "ValueError", "exception.message": "boom"}) in doomed["events"]


def test_messages_travel_only_when_captured(receiver: Any) -> None:
    r = receiver()
    agentpulse.init(exporter="otlp", otlp_endpoint=r.url, capture_messages=True, flush_interval=0.05)
    llm = _llm()
    try:
        with agentpulse.session("m"):
            llm.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "secret plan"}]
            )
    finally:
        llm.close()
    assert agentpulse.shutdown(timeout=10)
    (call,) = [s for s in r.spans() if s["name"].startswith("chat")]
    assert "secret plan" in call["attributes"]["gen_ai.input.messages"]


def test_global_provider_is_never_touched(receiver: Any) -> None:
    r = receiver()
    before = trace.get_tracer_provider()
    agentpulse.init(exporter="otlp", otlp_endpoint=r.url, flush_interval=0.05)
    with agentpulse.session("own-provider"):
        agentpulse.event("x")
    assert agentpulse.shutdown(timeout=10)
    assert trace.get_tracer_provider() is before
    assert [s["name"] for s in r.spans()] == ["own-provider"]


@pytest.fixture
def global_provider() -> Iterator[Any]:
    """An application's global SDK provider with an in-memory exporter; the globals are restored after."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.util._once import Once

    saved = (trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE)
    trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE = None, Once()
    memory = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    trace.set_tracer_provider(provider)
    try:
        yield memory
    finally:
        provider.shutdown()
        trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE = saved


def test_opt_in_shares_the_applications_provider(receiver: Any, global_provider: Any) -> None:
    r = receiver()
    app_tracer = trace.get_tracer("the-app")
    agentpulse.init(exporter="otlp", otlp_use_global_provider=True, otlp_endpoint=r.url, flush_interval=0.05)
    with app_tracer.start_as_current_span("app-request"), agentpulse.session("shared"):
        agentpulse.event("inside")
    assert agentpulse.shutdown(timeout=10)
    names = sorted(s.name for s in global_provider.get_finished_spans())
    assert names == ["app-request", "shared"]
    shared = next(s for s in global_provider.get_finished_spans() if s.name == "shared")
    assert shared.instrumentation_scope.name == "agentpulse"
    assert r.requests == []  # the application's pipeline carried them, not ours


def test_own_provider_keeps_our_spans_out_of_the_applications(receiver: Any, global_provider: Any) -> None:
    r = receiver()
    app_tracer = trace.get_tracer("the-app")
    agentpulse.init(exporter="otlp", otlp_endpoint=r.url, flush_interval=0.05)
    with app_tracer.start_as_current_span("app-request"), agentpulse.session("separate"):
        agentpulse.event("inside")
    assert agentpulse.shutdown(timeout=10)
    assert [s.name for s in global_provider.get_finished_spans()] == ["app-request"]
    (ours,) = r.spans()
    assert ours["name"] == "separate" and ours["parent_span_id"] is None


def test_a_refused_send_is_retried_without_duplicates(receiver: Any) -> None:
    r = receiver(script=[400])
    agentpulse.init(exporter="otlp", otlp_endpoint=r.url, flush_interval=0.05)
    with agentpulse.session("retried"):
        agentpulse.event("once")
    assert agentpulse.shutdown(timeout=10)
    assert r.statuses == [400, 200]
    assert [s["name"] for s in r.spans()] == ["retried"]


def test_spans_open_at_shutdown_are_sent_marked_incomplete(receiver: Any) -> None:
    r = receiver()
    agentpulse.init(exporter="otlp", otlp_endpoint=r.url, flush_interval=0.05)
    scope = agentpulse.session("never-ends")
    scope.__enter__()
    agentpulse.event("started")
    assert agentpulse.shutdown(timeout=10)
    (span,) = r.spans()
    assert span["name"] == "never-ends" and span["attributes"]["agentpulse.incomplete"] is True
    scope.__exit__(None, None, None)


def test_config_selects_the_otlp_exporter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTPULSE_OTLP_ENDPOINT", "http://127.0.0.1:4318/")
    cfg = Config.resolve({})
    assert cfg.otlp_endpoint == "http://127.0.0.1:4318" and not cfg.uses_http()
    client = agentpulse.init(flush_interval=0.05)
    assert isinstance(client.exporter, OtlpExporter)
    assert client.exporter.describe() == "OTLP http://127.0.0.1:4318/v1/traces"
    agentpulse.shutdown(timeout=1)
    assert traces_url("http://x:4318/v1/traces") == "http://x:4318/v1/traces"
    with pytest.raises(agentpulse.ConfigError):
        Config.resolve({"otlp_endpoint": "not a url"})
