"""A small instrumented agent that runs offline: what ``agentpulse demo`` records.

The agent triages an inbox inside ``agentpulse.session("demo-inbox-triage")``:
it fetches messages, asks a model to classify them, streams a reply draft,
fails to read an encrypted attachment (a handled error) and records events
and metrics on the way. When ``openai`` and ``httpx2`` are installed the model
calls are real ``openai`` client calls answered by an in-process fake server
(nothing leaves the machine), so the OpenAI integration records them as it
would in production. Without them, or if no integration recorded the calls,
the demo records them itself, marked ``simulated``.

Example::

    from agentpulse.demo import run_demo
    trace_id = run_demo(Path("/tmp/demo.db"))
    # then: agentpulse show <trace_id> --db /tmp/demo.db
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar, cast

import agentpulse

from .client import get_client
from .context import Span, current_span, new_span_id

__all__ = ["DEMO_SESSION", "run_demo"]

F = TypeVar("F", bound=Callable[..., Any])

#: Name of the session the demo records.
DEMO_SESSION = "demo-inbox-triage"
_CLASSIFY_MODEL = "gpt-4o-mini"
_DRAFT_MODEL = "gpt-4o"
# The snapshot the fake server says answered, and list prices (USD per million tokens in, out) for
# the calls the demo has to record itself.
_SNAPSHOTS = {"gpt-4o-mini": "gpt-4o-mini-2024-07-18", "gpt-4o": "gpt-4o-2024-08-06"}
_PRICES = {"gpt-4o-mini": (0.15, 0.60), "gpt-4o": (2.50, 10.0)}
_LATENCY_S = 0.04  # what the fake server takes to answer

_INBOX: List[Dict[str, Any]] = [
    {
        "id": "m1",
        "sender": "billing",
        "subject": "Invoice #1042 is overdue",
        "body": "Hello, our records show that invoice #1042 (EUR 1,280.00, due on the 12th) is still open. "
        "Please arrange payment within five business days or tell us if something is wrong with it. "
        "The invoice is attached again for convenience.",
        "attachment": "invoice-1042.pdf",
    },
    {
        "id": "m2",
        "sender": "ci",
        "subject": "Nightly build failed on main",
        "body": "Build #5531 failed at step 'integration tests': 3 of 412 tests failed "
        "(test_checkout_flow, test_refund_partial, test_webhook_retry). First failing commit: 9c1e2f7.",
        "attachment": None,
    },
    {
        "id": "m3",
        "sender": "sam",
        "subject": "Lunch on Friday?",
        "body": "Hey! A few of us are going to the new ramen place on Friday around 12:30. Want to join?",
        "attachment": None,
    },
]
_LABELS = {"m1": "urgent", "m2": "urgent", "m3": "later"}
_REPLY = (
    "Hi, thanks for the reminder about invoice #1042. The payment was approved this morning "
    "and should reach your account within two business days. Best regards"
)


class _Call:
    """What the demo asked a model, kept to record the call itself if no integration did."""

    def __init__(
        self, span: Optional[Span], model: str, started: float, streaming: bool, prompt: str, answer: str
    ) -> None:
        self.span = span
        self.model = model
        self.started = started
        self.ended = time.time()
        self.streaming = streaming
        self.input_tokens = _count_tokens(prompt) + 12
        self.output_tokens = _count_tokens(answer)


def _count_tokens(text: str) -> int:
    return max(1, len(text) // 4)


# -- the fake OpenAI server -----------------------------------------------------------


def _completion_body(answer: str, prompt: str, model: str, *, stream: bool) -> Tuple[bytes, str]:
    """A realistic chat.completions answer: JSON, or SSE chunks ending with a usage chunk."""
    created = int(time.time())
    usage = {
        "prompt_tokens": _count_tokens(prompt) + 12,
        "completion_tokens": _count_tokens(answer),
        "total_tokens": _count_tokens(prompt) + 12 + _count_tokens(answer),
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    base = {"created": created, "model": _SNAPSHOTS.get(model, model), "system_fingerprint": "fp_demo0001"}
    if not stream:
        body = {
            "id": "chatcmpl-demo-classify",
            "object": "chat.completion",
            **base,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer, "refusal": None, "annotations": []},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
            "service_tier": "default",
        }
        return json.dumps(body).encode(), "application/json"
    chunk = {"id": "chatcmpl-demo-draft", "object": "chat.completion.chunk", **base}
    events = [
        {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}], "usage": None}
    ]
    words = answer.split(" ")
    for i, word in enumerate(words):
        piece = word if i == 0 else " " + word
        events.append({**chunk, "choices": [{"index": 0, "delta": {"content": piece}}], "usage": None})
    events.append({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": None})
    events.append({**chunk, "choices": [], "usage": usage})
    text = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    return text.encode(), "text/event-stream"


def _fake_openai(request: Any) -> Any:
    import httpx2

    body = json.loads(request.content or b"{}")
    prompt = json.dumps(body.get("messages", []))
    if body.get("stream"):
        answer = _REPLY
    else:
        answer = json.dumps(_LABELS)
    time.sleep(_LATENCY_S)
    model = str(body.get("model", _CLASSIFY_MODEL))
    content, ctype = _completion_body(answer, prompt, model, stream=bool(body.get("stream")))
    headers = {
        "content-type": ctype,
        "x-request-id": "req_demo",
        "openai-processing-ms": str(int(_LATENCY_S * 1000)),
    }
    return httpx2.Response(200, headers=headers, content=content)


def _openai_client() -> Any:
    """An ``openai.OpenAI`` answered in-process, or ``None`` when openai / httpx2 are not installed."""
    try:
        import httpx2
        import openai
    except ImportError:
        return None
    http = httpx2.Client(transport=httpx2.MockTransport(_fake_openai))
    return openai.OpenAI(api_key="demo", base_url="http://demo.invalid/v1", http_client=http, max_retries=0)


# -- the agent ---------------------------------------------------------------------------


def _span(kind: str, name: str) -> Callable[[F], F]:
    """``@agentpulse.<kind>(name=...)`` when this version has that decorator, else ``@agentpulse.trace``."""
    decorator = getattr(agentpulse, kind, None) or agentpulse.trace
    return cast("Callable[[F], F]", decorator(name=name))


@_span("task", "fetch-inbox")
def _fetch_inbox() -> List[Dict[str, Any]]:
    time.sleep(0.01)
    agentpulse.event("inbox_fetched", {"messages": len(_INBOX), "with_attachments": 1})
    agentpulse.metric("inbox_size", len(_INBOX), tags={"folder": "inbox"})
    return list(_INBOX)


@_span("task", "classify")
def _classify(llm: Any, emails: List[Dict[str, Any]], calls: List[_Call]) -> Dict[str, str]:
    messages = [
        {"role": "system", "content": "Label each message urgent, later or spam. Answer with JSON."},
        {
            "role": "user",
            "content": json.dumps([{k: e[k] for k in ("id", "sender", "subject", "body")} for e in emails]),
        },
    ]
    started = time.time()
    if llm is not None:
        response = llm.chat.completions.create(model=_CLASSIFY_MODEL, messages=messages, temperature=0)
        answer = response.choices[0].message.content
    else:
        time.sleep(_LATENCY_S)
        answer = json.dumps(_LABELS)
    calls.append(_Call(current_span(), _CLASSIFY_MODEL, started, False, json.dumps(messages), answer or ""))
    labels: Dict[str, str] = json.loads(answer or "{}")
    counts = {label: list(labels.values()).count(label) for label in ("urgent", "later", "spam")}
    agentpulse.event("classified", counts)
    return labels


@_span("task", "draft-reply")
def _draft_reply(llm: Any, email: Dict[str, Any], calls: List[_Call]) -> str:
    messages = [
        {"role": "system", "content": "Write a short, polite reply."},
        {"role": "user", "content": f"Reply to this message from {email['sender']}:\n{email['body']}"},
    ]
    started = time.time()
    if llm is not None:
        parts: List[str] = []
        with llm.chat.completions.create(
            model=_DRAFT_MODEL, messages=messages, stream=True, stream_options={"include_usage": True}
        ) as stream:
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    parts.append(chunk.choices[0].delta.content)
        reply = "".join(parts)
    else:
        time.sleep(_LATENCY_S)
        reply = _REPLY
    calls.append(_Call(current_span(), _DRAFT_MODEL, started, True, json.dumps(messages), reply))
    agentpulse.event("reply_drafted", {"message": email["id"], "chars": len(reply)})
    return reply


@_span("task", "read-attachment")
def _read_attachment(name: str) -> bytes:
    time.sleep(0.005)
    raise ValueError(f"{name} is encrypted")


@_span("agent", "triage-agent")
def _triage(llm: Any, calls: List[_Call]) -> None:
    emails = _fetch_inbox()
    labels = _classify(llm, emails, calls)
    urgent = [e for e in emails if labels.get(e["id"]) == "urgent"]
    _draft_reply(llm, urgent[0], calls)
    for email in urgent:
        if email["attachment"]:
            try:
                _read_attachment(email["attachment"])
            except ValueError as exc:
                agentpulse.event("attachment_skipped", {"message": email["id"], "reason": str(exc)})
    agentpulse.metric("emails_triaged", len(emails))


def _record_missing_calls(path: Path, trace_id: str, calls: List[_Call]) -> None:
    """Record the model calls ourselves when no integration did (openai missing or not instrumented)."""
    from .store import Store

    agentpulse.flush()
    with Store(path) as store:
        tree = store.trace_tree(trace_id)
        if tree is not None and any(n.kind == "llm_call" for n in tree.nodes()):
            return
    client = get_client()
    if client is None:
        return
    for call in calls:
        price_in, price_out = _PRICES[call.model]
        cost = (call.input_tokens * price_in + call.output_tokens * price_out) / 1e6
        data = {
            "provider": "openai",
            "operation": "chat",
            "model": call.model,
            "response_model": _SNAPSHOTS[call.model],
            "input_tokens": call.input_tokens,
            "output_tokens": call.output_tokens,
            "latency_ms": (call.ended - call.started) * 1000.0,
            "cost_usd": cost,
            "cost_source": "table",
            "status": "success",
            "streaming": call.streaming,
            "finish_reason": "stop",
            "simulated": True,
        }
        client.emit("llm_call", data, call.span, own_span_id=new_span_id(), ts=call.started)


def run_demo(db_path: Optional[Path] = None) -> str:
    """Run the demo agent, store its trace, shut AgentPulse down and return the trace id.

    Events go to the local store: ``db_path``, or the configured ``local_path``
    (``~/.agentpulse/agentpulse.db`` by default). Raises ``RuntimeError`` when
    AgentPulse is already running in this process (the demo starts and stops
    its own client).

    Example::

        trace_id = run_demo()
        print(f"agentpulse show {trace_id[:8]}")
    """
    if get_client() is not None:
        raise RuntimeError("run_demo() starts and stops AgentPulse itself; call it before agentpulse.init()")
    options: Dict[str, Any] = {"exporter": "local", "enabled": True, "agent_name": "agentpulse-demo"}
    if db_path is not None:
        options["local_path"] = db_path
    client = agentpulse.init(**options)
    path = client.config.local_path
    calls: List[_Call] = []
    llm = _openai_client()
    try:
        with agentpulse.session(DEMO_SESSION, metadata={"demo": True, "inbox": "main"}) as scope:
            span = scope.span
            if span is None:
                raise RuntimeError("AgentPulse did not start a session")
            trace_id = span.trace_id
            _triage(llm, calls)
        _record_missing_calls(path, trace_id, calls)
    finally:
        if llm is not None:
            llm.close()
        agentpulse.shutdown()
    return trace_id
