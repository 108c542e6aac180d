"""Where a call's work happens: read on the caller's thread, settled off it, nothing held.

The caller's thread reads the request, the response and each chunk; the rest
(stream results and token estimates, cost, the guards) is settled later, on the
reporter's worker, or at once where a setting needs it. These tests pin the
consequences a user can see: totals and alerts are still complete when read,
the SDK's objects are not kept alive, and a stream iterated in pieces is still
one call.
"""

from __future__ import annotations

import gc
import importlib
import threading
import time
import weakref
from typing import Any, Dict, List

import pytest
from sdk_fakes import ACME_SOURCE, llm_calls, one_call

import agentpulse
from agentpulse.patching.engine import apply_spec
from agentpulse.patching.spec import PatchSpec, StreamState
from agentpulse.testing import Capture

MESSAGES = [{"role": "user", "content": "hi"}]


class _ThreadState(StreamState):
    """Notes the thread its ``result()`` runs on."""

    threads: List[str] = []

    def __init__(self, args: Any, kwargs: Any) -> None:
        self.words: List[str] = []

    def record(self, chunk: Any) -> bool:
        if chunk.text:
            self.words.append(chunk.text)
            return True
        return False

    def result(self) -> Dict[str, Any]:
        _ThreadState.threads.append(threading.current_thread().name)
        return {"output_tokens": len(self.words), "usage_estimated": True}


def _acme_stream(make_module: Any) -> Any:
    name = make_module(ACME_SOURCE)
    apply_spec(
        PatchSpec(
            library="acme",
            module=name,
            target="AcmeClient.stream",
            provider="acme",
            stream="always",
            stream_state=_ThreadState,
        )
    )
    return importlib.import_module(name)


def test_a_stream_result_is_settled_off_the_callers_thread(ap: Any, make_module: Any) -> None:
    _ThreadState.threads = []
    mod = _acme_stream(make_module)
    assert [c.text for c in mod.AcmeClient().stream("a b c")] == ["a", "b", "c", ""]
    deadline = time.monotonic() + 5
    while not _ThreadState.threads and time.monotonic() < deadline:
        time.sleep(0.01)  # the reporter's worker settles the call on its next cycle
    assert _ThreadState.threads == ["agentpulse-reporter"]
    data = one_call(ap)
    assert data["output_tokens"] == 3 and data["status"] == "success"


def test_capture_messages_settles_on_the_callers_thread(capture: Any, make_module: Any) -> None:
    ap = capture(capture_messages=True)
    _ThreadState.threads = []
    mod = _acme_stream(make_module)
    list(mod.AcmeClient().stream("a b"))
    assert _ThreadState.threads == [threading.current_thread().name]
    assert one_call(ap)["output_tokens"] == 2


def test_session_totals_include_a_call_the_worker_has_not_settled(capture: Any, openai_client: Any) -> None:
    ap = capture(flush_interval=60)  # the worker would not reach the call before the session ends
    with agentpulse.session("night-run"):
        openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    end = Capture(ap.client).span("night-run").data
    (call,) = [c["data"] for c in llm_calls(ap)]
    assert call["cost_usd"] is not None and call["cost_usd"] > 0
    assert end["llm_calls"] == 1
    assert end["cost_usd"] == pytest.approx(call["cost_usd"])


def test_the_loop_detector_still_sees_every_call(capture: Any, openai_client: Any) -> None:
    ap = capture(loop_threshold=3)
    with agentpulse.session("looping"):
        for _ in range(3):
            openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    loops = [a for a in Capture(ap.client).alerts() if a["details"].get("guard") == "loop"]
    assert len(loops) == 1 and loops[0]["details"]["session"] == "looping"


def test_no_sdk_object_outlives_the_call(capture: Any, openai_client: Any) -> None:
    ap = capture(flush_interval=60)  # events wait in the queue while we look
    result = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    response_ref = weakref.ref(result)
    chunk_refs = []
    for chunk in openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True):
        chunk_refs.append(weakref.ref(chunk))
    del result, chunk
    gc.collect()
    assert response_ref() is None
    assert chunk_refs and all(ref() is None for ref in chunk_refs)
    assert len(llm_calls(ap)) == 2


def test_a_stream_iterated_in_pieces_is_one_call(ap: Any, openai_client: Any) -> None:
    stream = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    first = next(stream)
    rest = []
    for chunk in stream:  # continues where next() stopped
        rest.append(chunk)
        break
    for chunk in stream:  # and again, after leaving a loop early
        rest.append(chunk)
    assert first.choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in rest if c.choices) == "Hello world"
    data = one_call(ap)
    assert data["status"] == "success" and data["streaming"] is True
    assert data["usage_estimated"] is True and data["output_tokens"] > 0
    assert data["time_to_first_token_ms"] is not None


def test_leaving_a_for_loop_early_does_not_end_the_stream(ap: Any, openai_client: Any) -> None:
    stream = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    for _ in stream:
        break
    assert ap.client.flush(5)
    assert llm_calls(ap) == []  # still open: the caller may go on reading it
    stream.close()
    assert one_call(ap)["status"] == "cancelled"
