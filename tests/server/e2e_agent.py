"""An instrumented agent run as a subprocess by the end-to-end tests.

It sends to the collector named by AGENTPULSE_ENDPOINT / AGENTPULSE_API_KEY: a
session with a task and two OpenAI calls (answered in-process through httpx2's
MockTransport, so the real ``openai`` client and integration run), an event, a
memory report, and a cron run that fails. Prints the trace ids as JSON.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx2
import openai

import agentpulse


def _answer(request: Any) -> Any:
    body = json.loads(request.content)
    return httpx2.Response(
        200,
        json={
            "id": "chatcmpl-e2e",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": body["model"] + "-2024-08-06",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "urgent"}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150},
        },
    )


def main() -> int:
    agentpulse.init(agent_name="e2e-agent", flush_interval=0.1, capture_messages=True)
    http = httpx2.Client(transport=httpx2.MockTransport(_answer))
    llm = openai.OpenAI(api_key="sk-test", base_url="http://llm.invalid/v1", http_client=http, max_retries=0)
    out = {}
    try:
        with agentpulse.session("e2e-inbox", metadata={"inbox": "main"}) as run:
            out["session"] = run.span.trace_id if run.span is not None else None
            with agentpulse.task("classify"):
                llm.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": "label this"}]
                )
                llm.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": "and this"}]
                )
            agentpulse.event("classified", {"messages": 2})
            notes = Path(tempfile.mkdtemp()) / "MEMORY.md"
            notes.write_text("remember: invoices first\n")
            pending = agentpulse.memory_report(str(notes))
            if pending is not None:
                pending.result(10)
        try:
            with agentpulse.cron("e2e-nightly", schedule="0 3 * * *", timezone="UTC") as job:
                out["cron"] = job.span.trace_id if job.span is not None else None
                llm.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "sum up"}]
                )
                raise RuntimeError("mailbox locked")
        except RuntimeError:
            pass
    finally:
        llm.close()
        ok = agentpulse.shutdown(timeout=15)
    print(json.dumps({**out, "flushed": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
