"""A scripted OpenAI-compatible server on 127.0.0.1 for the framework tests.

Each test says what the model answers, turn by turn: ``server.script(text("hi"),
tool_call("get_weather", city="Paris"))``. ``/v1/chat/completions`` (JSON or SSE
with the usage chunk when ``stream_options.include_usage`` is asked for) and
``/v1/responses`` (JSON) answer from that script in order; once it is used up
the last answer repeats. Every request is kept in ``server.requests``.

Example::

    with FakeOpenAI() as server:
        server.script(text("Paris"))
        client = openai.OpenAI(api_key="k", base_url=server.url)
        client.chat.completions.create(model="gpt-4o-mini", messages=[...])
        assert server.requests[0]["path"] == "/v1/chat/completions"
"""

from __future__ import annotations

import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional

__all__ = ["FakeOpenAI", "Turn", "text", "tool_call"]

USAGE = {"input": 42, "output": 7, "cached": 2}


class Turn:
    """One answer of the model: some text, or tool calls."""

    def __init__(self, content: Optional[str] = None, calls: Optional[List[Dict[str, Any]]] = None) -> None:
        self.content = content
        self.calls = calls or []


def text(content: str) -> Turn:
    """The model answers with ``content``."""
    return Turn(content=content)


def tool_call(name: str, **arguments: Any) -> Turn:
    """The model asks to call the tool ``name`` with ``arguments``."""
    return Turn(calls=[{"name": name, "arguments": json.dumps(arguments)}])


_ids = itertools.count(1)


def _usage_chat() -> Dict[str, Any]:
    return {
        "prompt_tokens": USAGE["input"],
        "completion_tokens": USAGE["output"],
        "total_tokens": USAGE["input"] + USAGE["output"],
        "prompt_tokens_details": {"cached_tokens": USAGE["cached"]},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def _chat_body(turn: Turn, model: str) -> Dict[str, Any]:
    message: Dict[str, Any] = {"role": "assistant", "content": turn.content}
    finish = "stop"
    if turn.calls:
        message["tool_calls"] = [
            {"id": f"call_{next(_ids)}", "type": "function", "function": dict(c)} for c in turn.calls
        ]
        finish = "tool_calls"
    return {
        "id": f"chatcmpl-{next(_ids)}",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model + "-2024-07-18",
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": _usage_chat(),
    }


def _responses_body(turn: Turn, model: str) -> Dict[str, Any]:
    output: List[Dict[str, Any]] = []
    for c in turn.calls:
        output.append(
            {
                "type": "function_call",
                "id": f"fc_{next(_ids)}",
                "call_id": f"call_{next(_ids)}",
                "name": c["name"],
                "arguments": c["arguments"],
                "status": "completed",
            }
        )
    if turn.content is not None:
        output.append(
            {
                "type": "message",
                "id": f"msg_{next(_ids)}",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": turn.content, "annotations": []}],
            }
        )
    return {
        "id": f"resp_{next(_ids)}",
        "object": "response",
        "created_at": 1700000000,
        "model": model + "-2024-07-18",
        "status": "completed",
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": USAGE["input"],
            "output_tokens": USAGE["output"],
            "total_tokens": USAGE["input"] + USAGE["output"],
            "input_tokens_details": {"cached_tokens": USAGE["cached"]},
            "output_tokens_details": {"reasoning_tokens": 0},
        },
    }


class FakeOpenAI:
    """The server; ``with FakeOpenAI() as s`` starts it and stops it."""

    def __init__(self) -> None:
        self.requests: List[Dict[str, Any]] = []
        self._turns: List[Turn] = []
        self._served = 0
        self._lock = threading.Lock()
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        """Base URL for an OpenAI client (``.../v1``)."""
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def script(self, *turns: Turn) -> None:
        """Replace the answers still to come."""
        with self._lock:
            self._turns = list(turns)
            self._served = 0

    def next_turn(self) -> Turn:
        with self._lock:
            if not self._turns:
                return text("ok")
            turn = self._turns[min(self._served, len(self._turns) - 1)]
            self._served += 1
            return turn

    def start(self) -> FakeOpenAI:
        fake = self

        class Handler(_Handler):
            server_fake = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    server_fake: FakeOpenAI
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        path = self.path.split("?", 1)[0]
        fake = self.server_fake
        with fake._lock:
            fake.requests.append({"path": path, "body": body})
        model = str(body.get("model") or "gpt-4o-mini")
        turn = fake.next_turn()
        if path.endswith("/chat/completions"):
            if body.get("stream"):
                self._stream_chat(turn, model, bool((body.get("stream_options") or {}).get("include_usage")))
            else:
                self._json(_chat_body(turn, model))
        elif path.endswith("/responses"):
            self._json(_responses_body(turn, model))
        else:
            self._json({"error": {"message": f"no route {path}"}}, status=404)

    def _json(self, payload: Any, status: int = 200) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    def _stream_chat(self, turn: Turn, model: str, include_usage: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        cid = f"chatcmpl-{next(_ids)}"
        resolved = model + "-2024-07-18"

        def chunk(delta: Dict[str, Any], finish: Optional[str] = None) -> Dict[str, Any]:
            out: Dict[str, Any] = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": 1700000000,
                "model": resolved,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            if include_usage:
                out["usage"] = None
            return out

        events: List[Dict[str, Any]] = [chunk({"role": "assistant", "content": ""})]
        for word in (turn.content or "").split(" "):
            events.append(chunk({"content": word + " "}))
        events.append(chunk({}, "stop"))
        if include_usage:
            events.append(
                {
                    "id": cid,
                    "object": "chat.completion.chunk",
                    "created": 1700000000,
                    "model": resolved,
                    "choices": [],
                    "usage": _usage_chat(),
                }
            )
        for ev in events:
            self.wfile.write(b"data: " + json.dumps(ev).encode() + b"\n\n")
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True
