"""Fake OpenAI and Anthropic providers for ``httpx2.MockTransport``.

Bodies are shaped exactly as the providers send them: JSON, and Server-Sent
Events for streams (OpenAI's ``data:`` lines ending in ``[DONE]``, its usage
chunk only when the request asked for ``stream_options.include_usage``;
Anthropic's named events with cumulative ``message_delta`` usage).
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, List, Optional

import httpx2

OPENAI_MODEL = "gpt-4o-2024-08-06"
ANTHROPIC_MODEL = "claude-sonnet-4-20250514"


def sse(events: List[Dict[str, Any]], *, named: bool = False, done: bool = False) -> bytes:
    """Server-Sent Events as providers send them (Anthropic names each event)."""
    out = []
    for ev in events:
        head = f"event: {ev['type']}\n" if named else ""
        out.append(f"{head}data: {json.dumps(ev)}\n\n")
    if done:
        out.append("data: [DONE]\n\n")
    return "".join(out).encode()


# -- OpenAI bodies -------------------------------------------------------------------


def chat_completion(
    content: str = "Hello there", *, usage: Optional[Dict[str, Any]] = None
) -> Dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": OPENAI_MODEL,
        "system_fingerprint": "fp_1",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": usage
        or {
            "prompt_tokens": 120,
            "completion_tokens": 30,
            "total_tokens": 150,
            "prompt_tokens_details": {"cached_tokens": 100, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 12,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
    }


def chat_tool_call_completion() -> Dict[str, Any]:
    body = chat_completion()
    body["choices"][0]["message"] = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
            }
        ],
    }
    body["choices"][0]["finish_reason"] = "tool_calls"
    return body


def chat_chunks(pieces: List[str], *, include_usage: bool) -> List[Dict[str, Any]]:
    def chunk(delta: Dict[str, Any], finish: Optional[str] = None) -> Dict[str, Any]:
        c: Dict[str, Any] = {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": OPENAI_MODEL,
            "system_fingerprint": "fp_1",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            c["usage"] = None
        return c

    out = [chunk({"role": "assistant", "content": "", "refusal": None})]
    out += [chunk({"content": p}) for p in pieces]
    out.append(chunk({}, "stop"))
    if include_usage:
        out.append(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "created": 1_700_000_000,
                "model": OPENAI_MODEL,
                "system_fingerprint": "fp_1",
                "choices": [],
                "usage": {
                    "prompt_tokens": 57,
                    "completion_tokens": 9,
                    "total_tokens": 66,
                    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
                },
            }
        )
    return out


def response_obj(text: str = "Hi from responses", status: str = "completed") -> Dict[str, Any]:
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 1_700_000_000,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "model": "gpt-4.1-2025-04-14",
        "output": [
            {
                "type": "message",
                "id": "msg_1",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": {
            "input_tokens": 200,
            "input_tokens_details": {"cached_tokens": 150, "cache_write_tokens": 0},
            "output_tokens": 40,
            "output_tokens_details": {"reasoning_tokens": 16},
            "total_tokens": 240,
        },
        "user": None,
        "metadata": {},
    }


def response_events(pieces: List[str]) -> List[Dict[str, Any]]:
    """The event sequence of a streamed text response, as the Responses API sends it."""
    created = response_obj("", status="in_progress")
    created["output"] = []
    created["usage"] = None
    text = "".join(pieces)
    item: Dict[str, Any] = {
        "type": "message",
        "id": "msg_1",
        "status": "in_progress",
        "role": "assistant",
        "content": [],
    }
    part: Dict[str, Any] = {"type": "output_text", "text": "", "annotations": []}
    evs: List[Dict[str, Any]] = [
        {"type": "response.created", "response": created},
        {"type": "response.in_progress", "response": created},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        {
            "type": "response.content_part.added",
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "part": part,
        },
    ]
    for p in pieces:
        evs.append(
            {
                "type": "response.output_text.delta",
                "item_id": "msg_1",
                "output_index": 0,
                "content_index": 0,
                "delta": p,
                "logprobs": [],
            }
        )
    done_part = {"type": "output_text", "text": text, "annotations": []}
    done_item = dict(item, status="completed", content=[done_part])
    evs += [
        {
            "type": "response.output_text.done",
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "text": text,
            "logprobs": [],
        },
        {
            "type": "response.content_part.done",
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "part": done_part,
        },
        {"type": "response.output_item.done", "output_index": 0, "item": done_item},
        {"type": "response.completed", "response": response_obj(text)},
    ]
    for i, ev in enumerate(evs):
        ev["sequence_number"] = i
    return evs


def completion_obj() -> Dict[str, Any]:
    return {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1_700_000_000,
        "model": "gpt-3.5-turbo-instruct",
        "choices": [{"text": " world", "index": 0, "logprobs": None, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
    }


def embedding_obj() -> Dict[str, Any]:
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 8, "total_tokens": 8},
    }


class FakeProvider:
    """Routes requests by path; records what it received; can fail on demand."""

    def __init__(self) -> None:
        self.requests: List[Dict[str, Any]] = []
        self.fail: Optional[Callable[[httpx2.Request], httpx2.Response]] = None
        self.stream_pieces = ["Hel", "lo", " world"]
        self.routes: Dict[str, Callable[[Dict[str, Any]], httpx2.Response]] = {}

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content) if request.content else {}
        self.requests.append({"path": request.url.path, "body": body, "headers": dict(request.headers)})
        if self.fail is not None:
            return self.fail(request)
        for suffix, route in self.routes.items():
            if request.url.path.endswith(suffix):
                return route(body)
        return httpx2.Response(404, json={"error": {"message": "no route", "type": "invalid_request_error"}})


def _event_stream(data: bytes) -> httpx2.Response:
    return httpx2.Response(200, content=data, headers={"content-type": "text/event-stream"})


def openai_routes(fake: FakeProvider) -> None:
    def chat(body: Dict[str, Any]) -> httpx2.Response:
        if body.get("stream"):
            inc = bool((body.get("stream_options") or {}).get("include_usage"))
            return _event_stream(sse(chat_chunks(fake.stream_pieces, include_usage=inc), done=True))
        if body.get("tools"):
            return httpx2.Response(200, json=chat_tool_call_completion())
        return httpx2.Response(200, json=chat_completion())

    def responses(body: Dict[str, Any]) -> httpx2.Response:
        if body.get("stream"):
            return _event_stream(sse(response_events(fake.stream_pieces), named=True))
        return httpx2.Response(200, json=response_obj())

    def completions(body: Dict[str, Any]) -> httpx2.Response:
        if body.get("stream"):
            chunks = []
            for p in fake.stream_pieces:
                c = completion_obj()
                c["choices"] = [{"text": p, "index": 0, "logprobs": None, "finish_reason": None}]
                del c["usage"]
                chunks.append(c)
            last = completion_obj()
            last["choices"] = [{"text": "", "index": 0, "logprobs": None, "finish_reason": "stop"}]
            del last["usage"]
            chunks.append(last)
            return _event_stream(sse(chunks, done=True))
        return httpx2.Response(200, json=completion_obj())

    fake.routes.update(
        {
            "/chat/completions": chat,
            "/responses": responses,
            "/completions": completions,
            "/embeddings": lambda body: httpx2.Response(200, json=embedding_obj()),
        }
    )


# -- Anthropic bodies ----------------------------------------------------------------

ANTHROPIC_USAGE = {
    "input_tokens": 41,
    "cache_creation_input_tokens": 13,
    "cache_read_input_tokens": 7,
    "output_tokens": 25,
    "service_tier": "standard",
}


def message_obj(text: str = "Hello from Claude", *, tool: bool = False) -> Dict[str, Any]:
    content: List[Dict[str, Any]] = [{"type": "text", "text": text}]
    if tool:
        content.append(
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}
        )
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": ANTHROPIC_MODEL,
        "content": content,
        "stop_reason": "tool_use" if tool else "end_turn",
        "stop_sequence": None,
        "usage": dict(ANTHROPIC_USAGE),
    }


def message_events(pieces: List[str]) -> List[Dict[str, Any]]:
    start = message_obj("")
    start["content"] = []
    start["stop_reason"] = None
    start["usage"] = {
        "input_tokens": 41,
        "cache_creation_input_tokens": 13,
        "cache_read_input_tokens": 7,
        "output_tokens": 1,
        "service_tier": "standard",
    }
    evs: List[Dict[str, Any]] = [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
    ]
    for p in pieces:
        evs.append({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}})
    evs += [
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 25},
        },
        {"type": "message_stop"},
    ]
    return evs


def anthropic_routes(fake: FakeProvider) -> None:
    def messages(body: Dict[str, Any]) -> httpx2.Response:
        if body.get("stream"):
            return _event_stream(sse(message_events(fake.stream_pieces), named=True))
        return httpx2.Response(200, json=message_obj(tool=bool(body.get("tools"))))

    fake.routes["/v1/messages"] = messages


def llm_calls(cap: Any) -> List[Dict[str, Any]]:
    """The ``llm_call`` events exported so far."""
    return cap.events("llm_call")  # type: ignore[no-any-return]


def one_call(cap: Any) -> Dict[str, Any]:
    """The data of the single ``llm_call`` event exported so far (fails on 0 or several)."""
    calls = llm_calls(cap)
    assert len(calls) == 1, [c["data"] for c in calls]
    return calls[0]["data"]  # type: ignore[no-any-return]


# -- a small client of our own, for user specs ----------------------------------------

ACME_SOURCE = """
class Usage:
    def __init__(self, prompt_tokens, completion_tokens):
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens


class Reply:
    def __init__(self, text):
        self.text = text
        self.model = "acme-large-001"
        self.usage = Usage(11, 7)
        self.choices = [{"finish_reason": "stop"}]


class Chunk:
    def __init__(self, text, usage=None):
        self.text = text
        self.usage = usage


class Boom(Exception):
    def __init__(self, message, code):
        super().__init__(message)
        self.code = code


SAME = Reply("always the same object")
ERROR = Boom("acme is down", 503)


class AcmeClient:
    def __init__(self, model="acme-large"):
        self.model = model
        self.calls = 0

    def complete(self, prompt, temperature=0.0, **kwargs):
        self.calls += 1
        if prompt == "explode":
            raise ERROR
        if prompt == "same":
            return SAME
        return Reply("echo: " + prompt)

    async def acomplete(self, prompt, **kwargs):
        return Reply("async echo: " + prompt)

    def stream(self, prompt, **kwargs):
        for word in prompt.split():
            yield Chunk(word)
        yield Chunk("", usage=Usage(3, 4))


def complete(prompt, model="acme-small"):
    return Reply("module echo: " + prompt)
"""
