"""Fake model providers on 127.0.0.1 for the LiteLLM, Cohere and Google GenAI tests.

One small threaded ``http.server`` answers, with bodies shaped as each provider
sends them (usage included):

* OpenAI-compatible chat completions and embeddings (``/v1/chat/completions``,
  ``/v1/embeddings``): what LiteLLM's ``openai/`` provider calls. JSON, or SSE
  ``data:`` lines ending in ``[DONE]``; the usage chunk only when the request
  asked for it with ``stream_options.include_usage``, as OpenAI does.
* Cohere v2 chat (``/v2/chat``): JSON, or SSE events ``message-start`` ...
  ``message-end`` (usage on ``message-end``); Cohere v1 chat (``/v1/chat``):
  JSON, or JSON lines ending in ``stream-end``.
* Gemini ``models/{model}:generateContent`` and ``:streamGenerateContent?alt=sse``
  (``v1`` and ``v1beta``): usage in ``usageMetadata`` on every streamed chunk, as
  running totals.

Every response carries ``Connection: close``, so no client keeps a socket to a
stopped server. Tests script the next answers: ``fail_next(503)`` for an error
status with the provider's error body, ``cut_stream_after = 2`` to drop the
connection in the middle of a stream, and the ``*_usage`` attributes for the
token counts (in the provider's own field names).

Example::

    with serve() as server:
        client = cohere.ClientV2(api_key="k", base_url=server.url)
        client.chat(model="command-a-03-2025", messages=[{"role": "user", "content": "hi"}])
        assert server.requests[-1].path == "/v2/chat"
"""

from __future__ import annotations

import base64
import copy
import json
import re
import struct
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, List, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "COHERE_USAGE",
    "COHERE_V1_META",
    "GEMINI_USAGE",
    "OPENAI_EMBEDDING_USAGE",
    "OPENAI_USAGE",
    "FakeProviders",
    "RecordedRequest",
    "serve",
]

#: Usage of a chat completion, as OpenAI sends it (``prompt_tokens`` include cached tokens).
OPENAI_USAGE: Dict[str, Any] = {
    "prompt_tokens": 21,
    "completion_tokens": 9,
    "total_tokens": 30,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}
#: Usage of an embeddings call.
OPENAI_EMBEDDING_USAGE: Dict[str, Any] = {"prompt_tokens": 8, "total_tokens": 8}
#: Usage of a Cohere v2 chat: ``billed_units`` is what is billed, ``tokens`` includes the prompt template.
COHERE_USAGE: Dict[str, Any] = {
    "billed_units": {"input_tokens": 12, "output_tokens": 7},
    "tokens": {"input_tokens": 203, "output_tokens": 7},
}
#: ``meta`` of a Cohere v1 chat.
COHERE_V1_META: Dict[str, Any] = {
    "api_version": {"version": "1"},
    "billed_units": {"input_tokens": 12, "output_tokens": 7},
    "tokens": {"input_tokens": 203, "output_tokens": 7},
}
#: Gemini ``usageMetadata``: thinking apart from candidates; cached content is part of the prompt.
GEMINI_USAGE: Dict[str, Any] = {
    "promptTokenCount": 11,
    "candidatesTokenCount": 6,
    "totalTokenCount": 17,
    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 11}],
}

_GEMINI_PATH = re.compile(
    r"^/(?:v1|v1beta|v1alpha)/models/(?P<model>[^:/]+):(?P<method>generateContent|streamGenerateContent)$"
)


@dataclass
class RecordedRequest:
    """One request the fake server received."""

    method: str
    path: str
    query: Dict[str, List[str]]
    headers: Dict[str, str]
    body: Any


@dataclass
class _Failure:
    status: int
    body: Optional[Any]
    headers: Dict[str, str]


@dataclass
class FakeProviders:
    """The scripted state of one fake server; ``url`` is its base, ``requests`` what it saw."""

    text: str = "Hello from the fake provider, nice to meet you."
    openai_usage: Dict[str, Any] = field(default_factory=lambda: copy.deepcopy(OPENAI_USAGE))
    openai_embedding_usage: Dict[str, Any] = field(
        default_factory=lambda: copy.deepcopy(OPENAI_EMBEDDING_USAGE)
    )
    #: Model the OpenAI-compatible server says answered; ``None`` echoes the request.
    openai_response_model: Optional[str] = None
    cohere_usage: Dict[str, Any] = field(default_factory=lambda: copy.deepcopy(COHERE_USAGE))
    cohere_v1_meta: Dict[str, Any] = field(default_factory=lambda: copy.deepcopy(COHERE_V1_META))
    gemini_usage: Dict[str, Any] = field(default_factory=lambda: copy.deepcopy(GEMINI_USAGE))
    #: ``modelVersion`` Gemini reports; ``None`` echoes the requested model.
    gemini_model_version: Optional[str] = None
    #: Tool calls the model asks for: ``[(name, json_arguments), ...]``.
    tool_calls: List[Tuple[str, str]] = field(default_factory=list)
    #: Drop the connection after this many streamed events (``None``: stream to the end).
    cut_stream_after: Optional[int] = None
    requests: List[RecordedRequest] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        self._failures: List[_Failure] = []
        self._lock = threading.Lock()
        self._httpd: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    # -- scripting --------------------------------------------------------

    def fail_next(
        self,
        status: int,
        body: Optional[Any] = None,
        *,
        times: int = 1,
        headers: Optional[Dict[str, str]] = None,
    ) -> None:
        """Answer the next ``times`` requests with ``status`` and the provider's error body (or ``body``)."""
        with self._lock:
            for _ in range(times):
                self._failures.append(_Failure(status, body, dict(headers or {})))

    def _take_failure(self) -> Optional[_Failure]:
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    def _record(self, req: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(req)

    def pieces(self) -> List[str]:
        """The answer split the way it is streamed: word by word."""
        words = self.text.split(" ")
        return [w if i == 0 else " " + w for i, w in enumerate(words)]

    # -- lifecycle --------------------------------------------------------

    def start(self) -> FakeProviders:
        """Listen on 127.0.0.1 (a free port) and serve from a background thread."""
        httpd = _Server(("127.0.0.1", 0), _Handler)
        httpd.fake = self
        self._httpd = httpd
        host, port = httpd.server_address[:2]
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the socket and wait for the handler threads."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> FakeProviders:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


@contextmanager
def serve(**options: Any) -> Iterator[FakeProviders]:
    """A started fake server, stopped on exit; ``options`` set its scripted state."""
    server = FakeProviders(**options)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True
    fake: FakeProviders

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that stops reading early (a test breaking out of a stream) is expected.
        return None


class _StreamCut(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return None

    # -- plumbing ---------------------------------------------------------

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        fake = self.server.fake
        fake._record(
            RecordedRequest(
                "POST",
                parts.path,
                parse_qs(parts.query),
                {k.lower(): v for k, v in self.headers.items()},
                body,
            )
        )
        route = self._route(parts.path)
        if route is None:
            self._json(404, {"error": {"message": f"no route {parts.path}", "code": 404}})
            return
        failure = fake._take_failure()
        if failure is not None:
            err = failure.body if failure.body is not None else _error_body(route[0], failure.status)
            self._json(failure.status, err, failure.headers)
            return
        name, params = route
        req = body if isinstance(body, dict) else {}
        try:
            getattr(self, "_" + name)(fake, req, params, parse_qs(parts.query))
        except _StreamCut:
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _route(self, path: str) -> Optional[Tuple[str, Dict[str, str]]]:
        if path.endswith("/chat/completions"):
            return "openai_chat", {}
        if path.endswith("/embeddings"):
            return "openai_embeddings", {}
        if path == "/v2/chat":
            return "cohere_chat", {}
        if path == "/v1/chat":
            return "cohere_v1_chat", {}
        m = _GEMINI_PATH.match(path)
        if m is not None:
            return "gemini", {"model": m.group("model"), "method": m.group("method")}
        return None

    def _json(self, status: int, payload: Any, headers: Optional[Dict[str, str]] = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _start_stream(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self._sent = 0

    def _chunk(self, data: bytes) -> None:
        cut = self.server.fake.cut_stream_after
        if cut is not None and self._sent >= cut:
            self.wfile.flush()
            raise _StreamCut()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()
        self._sent += 1

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _sse(self, payload: Any, event: Optional[str] = None) -> None:
        text = payload if isinstance(payload, str) else json.dumps(payload)
        head = f"event: {event}\n" if event else ""
        self._chunk(f"{head}data: {text}\n\n".encode())

    # -- OpenAI-compatible ----------------------------------------------------

    def _openai_chat(self, fake: FakeProviders, req: Dict[str, Any], params: Any, query: Any) -> None:
        model = fake.openai_response_model or str(req.get("model", "gpt-4o-mini"))
        cid = f"chatcmpl-fake{int(time.time() * 1000)}"
        created = int(time.time())
        finish = "tool_calls" if fake.tool_calls else "stop"
        tool_calls = [
            {"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": arguments}}
            for i, (name, arguments) in enumerate(fake.tool_calls)
        ]
        if not req.get("stream"):
            message: Dict[str, Any] = {
                "role": "assistant",
                "content": None if tool_calls else fake.text,
                "refusal": None,
                "annotations": [],
            }
            if tool_calls:
                message["tool_calls"] = tool_calls
            self._json(
                200,
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                    "usage": fake.openai_usage,
                    "service_tier": "default",
                    "system_fingerprint": "fp_fake0001",
                },
            )
            return
        include_usage = bool((req.get("stream_options") or {}).get("include_usage"))
        self._start_stream("text/event-stream; charset=utf-8")

        def chunk(delta: Dict[str, Any], finish_reason: Optional[str] = None) -> Dict[str, Any]:
            out: Dict[str, Any] = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": "fp_fake0001",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
            }
            if include_usage:
                out["usage"] = None
            return out

        self._sse(chunk({"role": "assistant", "content": "", "refusal": None}))
        if tool_calls:
            for i, call in enumerate(tool_calls):
                fn = call["function"]
                self._sse(
                    chunk(
                        {
                            "tool_calls": [
                                {
                                    "index": i,
                                    "id": call["id"],
                                    "type": "function",
                                    "function": {"name": fn["name"], "arguments": ""},
                                }
                            ]
                        }
                    )
                )
                self._sse(chunk({"tool_calls": [{"index": i, "function": {"arguments": fn["arguments"]}}]}))
        else:
            for piece in fake.pieces():
                self._sse(chunk({"content": piece}))
        self._sse(chunk({}, finish))
        if include_usage:
            self._sse(
                {
                    "id": cid,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "service_tier": "default",
                    "system_fingerprint": "fp_fake0001",
                    "choices": [],
                    "usage": fake.openai_usage,
                }
            )
        self._sse("[DONE]")
        self._end_stream()

    def _openai_embeddings(self, fake: FakeProviders, req: Dict[str, Any], params: Any, query: Any) -> None:
        inputs = req.get("input")
        items = inputs if isinstance(inputs, list) else [inputs]
        vector = [0.0123, -0.0456, 0.0789, 0.1011]
        b64 = req.get("encoding_format") == "base64"
        data = []
        for i, _ in enumerate(items):
            emb: Any = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() if b64 else vector
            data.append({"object": "embedding", "index": i, "embedding": emb})
        self._json(
            200,
            {
                "object": "list",
                "data": data,
                "model": fake.openai_response_model or str(req.get("model", "text-embedding-3-small")),
                "usage": fake.openai_embedding_usage,
            },
        )

    # -- Cohere -------------------------------------------------------------------

    def _cohere_chat(self, fake: FakeProviders, req: Dict[str, Any], params: Any, query: Any) -> None:
        rid = "c14c80c3-18eb-4519-9460-6c92edd8cfb4"
        tool_calls = [
            {"id": f"get_{i}_fake", "type": "function", "function": {"name": name, "arguments": arguments}}
            for i, (name, arguments) in enumerate(fake.tool_calls)
        ]
        finish = "TOOL_CALL" if tool_calls else "COMPLETE"
        if not req.get("stream"):
            message: Dict[str, Any] = {"role": "assistant"}
            if tool_calls:
                message["tool_plan"] = "I will call the tool."
                message["tool_calls"] = tool_calls
            else:
                message["content"] = [{"type": "text", "text": fake.text}]
            self._json(
                200, {"id": rid, "message": message, "finish_reason": finish, "usage": fake.cohere_usage}
            )
            return
        self._start_stream("text/event-stream")
        self._sse(
            {
                "id": rid,
                "type": "message-start",
                "delta": {
                    "message": {
                        "role": "assistant",
                        "content": [],
                        "tool_plan": "",
                        "tool_calls": [],
                        "citations": [],
                    }
                },
            },
            "message-start",
        )
        if tool_calls:
            self._sse(
                {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "I will call the tool."}}},
                "tool-plan-delta",
            )
            for i, call in enumerate(tool_calls):
                fn = call["function"]
                self._sse(
                    {
                        "type": "tool-call-start",
                        "index": i,
                        "delta": {
                            "message": {
                                "tool_calls": {
                                    "id": call["id"],
                                    "type": "function",
                                    "function": {"name": fn["name"], "arguments": ""},
                                }
                            }
                        },
                    },
                    "tool-call-start",
                )
                self._sse(
                    {
                        "type": "tool-call-delta",
                        "index": i,
                        "delta": {"message": {"tool_calls": {"function": {"arguments": fn["arguments"]}}}},
                    },
                    "tool-call-delta",
                )
                self._sse({"type": "tool-call-end", "index": i}, "tool-call-end")
        else:
            self._sse(
                {
                    "type": "content-start",
                    "index": 0,
                    "delta": {"message": {"content": {"type": "text", "text": ""}}},
                },
                "content-start",
            )
            for piece in fake.pieces():
                self._sse(
                    {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": piece}}}},
                    "content-delta",
                )
            self._sse({"type": "content-end", "index": 0}, "content-end")
        self._sse(
            {
                "id": rid,
                "type": "message-end",
                "delta": {"finish_reason": finish, "usage": fake.cohere_usage},
            },
            "message-end",
        )
        self._end_stream()

    def _cohere_v1_chat(self, fake: FakeProviders, req: Dict[str, Any], params: Any, query: Any) -> None:
        gid = "b7b2ab61-4e0e-45e4-9d3c-1e8e1a0b6f43"
        user = str(req.get("message", ""))
        response = {
            "response_id": "5a4b0f8e-1c2d-4e5f-8a9b-0c1d2e3f4a5b",
            "text": fake.text,
            "generation_id": gid,
            "chat_history": [{"role": "USER", "message": user}, {"role": "CHATBOT", "message": fake.text}],
            "finish_reason": "COMPLETE",
            "meta": fake.cohere_v1_meta,
        }
        if not req.get("stream"):
            self._json(200, response)
            return
        self._start_stream("application/stream+json")
        self._chunk(
            json.dumps({"is_finished": False, "event_type": "stream-start", "generation_id": gid}).encode()
            + b"\n"
        )
        for piece in fake.pieces():
            self._chunk(
                json.dumps({"is_finished": False, "event_type": "text-generation", "text": piece}).encode()
                + b"\n"
            )
        self._chunk(
            json.dumps(
                {
                    "is_finished": True,
                    "event_type": "stream-end",
                    "finish_reason": "COMPLETE",
                    "response": response,
                }
            ).encode()
            + b"\n"
        )
        self._end_stream()

    # -- Gemini -------------------------------------------------------------------

    def _gemini(self, fake: FakeProviders, req: Dict[str, Any], params: Dict[str, str], query: Any) -> None:
        model_version = fake.gemini_model_version or params["model"]
        response_id = "kNvUaP2aL7DVz7IP4fGJ0AQ"
        calls = [
            {"functionCall": {"name": name, "args": json.loads(arguments)}}
            for name, arguments in fake.tool_calls
        ]
        if params["method"] == "generateContent":
            parts: List[Dict[str, Any]] = calls or [{"text": fake.text}]
            self._json(
                200,
                {
                    "candidates": [
                        {"content": {"parts": parts, "role": "model"}, "finishReason": "STOP", "index": 0}
                    ],
                    "usageMetadata": fake.gemini_usage,
                    "modelVersion": model_version,
                    "responseId": response_id,
                },
            )
            return
        sse = (query.get("alt") or [""])[0] == "sse"
        self._start_stream("text/event-stream" if sse else "application/json")
        usage = fake.gemini_usage
        # Before the last chunk Gemini reports the prompt and the running total only.
        partial = {k: usage[k] for k in ("promptTokenCount", "promptTokensDetails") if k in usage}
        partial["totalTokenCount"] = usage.get("promptTokenCount", 0)
        pieces: List[Dict[str, Any]] = calls or [{"text": p} for p in fake.pieces()]
        for i, part in enumerate(pieces):
            last = i == len(pieces) - 1
            candidate: Dict[str, Any] = {"content": {"parts": [part], "role": "model"}, "index": 0}
            if last:
                candidate["finishReason"] = "STOP"
            payload = {
                "candidates": [candidate],
                "usageMetadata": usage if last else partial,
                "modelVersion": model_version,
                "responseId": response_id,
            }
            if sse:
                self._chunk(b"data: " + json.dumps(payload).encode() + b"\r\n\r\n")
            else:
                self._chunk(
                    (b"[" if i == 0 else b",") + json.dumps(payload).encode() + (b"]" if last else b"")
                )
        self._end_stream()


def _error_body(route: str, status: int) -> Any:
    messages = {
        400: "invalid request",
        401: "invalid api key",
        404: "model not found",
        429: "rate limit exceeded",
        500: "internal server error",
        503: "the model is overloaded",
    }
    message = messages.get(status, "error")
    if route.startswith("openai"):
        kind = "invalid_request_error" if status < 500 else "server_error"
        return {"error": {"message": message, "type": kind, "param": None, "code": None}}
    if route.startswith("cohere"):
        return {"message": message}
    statuses = {
        400: "INVALID_ARGUMENT",
        401: "UNAUTHENTICATED",
        404: "NOT_FOUND",
        429: "RESOURCE_EXHAUSTED",
        500: "INTERNAL",
        503: "UNAVAILABLE",
    }
    return {"error": {"code": status, "message": message, "status": statuses.get(status, "UNKNOWN")}}
