"""Claude Code CLI output: usage and the CLI's own cost become one ``llm_call``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest

from agentpulse.integrations.claude_code import (
    ClaudeOutput,
    llm_call_from_output,
    llm_call_from_result,
    output_format,
    record,
    tee,
)
from agentpulse.models import LLMCallData

Capture = Callable[..., Any]

# The shape `claude -p --output-format json` prints (a run that also used Haiku for a sub-task).
RESULT: Dict[str, Any] = {
    "type": "result",
    "subtype": "success",
    "is_error": False,
    "duration_ms": 12850,
    "duration_api_ms": 11020,
    "num_turns": 4,
    "result": "All 12 tests pass now.",
    "session_id": "707c48df-3786-4b9f-ac05-a93054f0a542",
    "total_cost_usd": 0.2628845,
    "usage": {
        "input_tokens": 5,
        "cache_creation_input_tokens": 30316,
        "cache_read_input_tokens": 59073,
        "output_tokens": 1587,
        "server_tool_use": {"web_search_requests": 0},
        "service_tier": "standard",
    },
    "modelUsage": {
        "claude-haiku-4-5-20251001": {
            "inputTokens": 2823,
            "outputTokens": 270,
            "cacheReadInputTokens": 0,
            "cacheCreationInputTokens": 0,
            "webSearchRequests": 0,
            "costUSD": 0.004173,
            "contextWindow": 200000,
        },
        "claude-opus-4-5-20251101[1m]": {
            "inputTokens": 5,
            "outputTokens": 1587,
            "cacheReadInputTokens": 59073,
            "cacheCreationInputTokens": 30316,
            "webSearchRequests": 0,
            "costUSD": 0.2587115,
            "contextWindow": 1000000,
        },
    },
    "permission_denials": [],
    "uuid": "8c3330c7-fd46-4c5a-a871-f61865d7c398",
}

STREAM: List[Dict[str, Any]] = [
    {
        "type": "system",
        "subtype": "init",
        "session_id": "s1",
        "model": "claude-sonnet-4-5-20250929",
        "tools": [],
    },
    {
        "type": "assistant",
        "parent_tool_use_id": None,
        "message": {"model": "claude-sonnet-4-5-20250929", "role": "assistant", "content": []},
    },
    {"type": "user", "message": {"role": "user", "content": []}},
    {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "duration_ms": 900,
        "num_turns": 2,
        "result": "done",
        "total_cost_usd": 0.0123,
        "usage": {
            "input_tokens": 10,
            "cache_creation_input_tokens": 20,
            "cache_read_input_tokens": 30,
            "output_tokens": 40,
        },
    },
]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["claude", "-p", "fix it", "--output-format", "json"], "json"),
        (["/usr/local/bin/claude", "--print", "--output-format=stream-json", "--verbose"], "stream-json"),
        (["claude", "-p", "hi"], None),  # text output carries no usage
        (["claude", "--output-format", "json"], None),  # interactive, not print mode
        (["claude", "-p", "x", "--output-format", "yaml"], None),
        (["node", "claude", "-p", "--output-format", "json"], None),
        (["claude", "-p", "--", "--output-format", "json"], None),  # after --: the prompt's words
        ([], None),
    ],
)
def test_output_format(argv: List[str], expected: Any) -> None:
    assert output_format(argv) == expected


def test_json_result_sums_every_model_and_keeps_the_cli_cost() -> None:
    data = llm_call_from_result(RESULT)
    LLMCallData.model_validate(data)
    assert data["provider"] == "anthropic" and data["operation"] == "agent"
    assert data["model"] == "claude-opus-4-5-20251101"  # the model that cost the most, variant suffix dropped
    # Input counts cache reads and writes, over both models.
    assert data["input_tokens"] == 5 + 59073 + 30316 + 2823
    assert data["output_tokens"] == 1587 + 270
    assert (data["cache_read_tokens"], data["cache_write_tokens"]) == (59073, 30316)
    assert data["cost_usd"] == 0.2628845 and data["cost_source"] == "provider"
    assert data["latency_ms"] == 12850 and data["num_turns"] == 4 and data["api_duration_ms"] == 11020
    assert data["status"] == "success" and data["finish_reason"] == "success"
    assert data["claude_session_id"] == RESULT["session_id"]
    assert [m["model"] for m in data["models"]] == ["claude-haiku-4-5-20251001", "claude-opus-4-5-20251101"]
    assert data["output"] == "All 12 tests pass now."


def test_result_without_model_usage_uses_the_usage_block() -> None:
    result = {k: v for k, v in RESULT.items() if k != "modelUsage"}
    data = llm_call_from_result(result, {"model": "claude-sonnet-4-5[1m]"})
    assert data["input_tokens"] == 5 + 30316 + 59073 and data["output_tokens"] == 1587
    assert data["model"] == "claude-sonnet-4-5"


def test_an_error_result() -> None:
    data = llm_call_from_result(
        {
            "type": "result",
            "subtype": "error_max_turns",
            "is_error": True,
            "total_cost_usd": 0.42,
            "num_turns": 9,
        }
    )
    LLMCallData.model_validate(data)
    assert data["status"] == "error"
    assert data["error"] == {"type": "error_max_turns", "message": "error_max_turns"}
    assert data["cost_usd"] == 0.42
    assert "input_tokens" not in data  # unknown stays unknown, never 0


def test_stream_json_read_in_pieces() -> None:
    text = "".join(json.dumps(e) + "\n" for e in STREAM).encode()
    out = ClaudeOutput("stream-json")
    for i in range(0, len(text), 7):  # lines split across reads
        out.feed(text[i : i + 7])
    data = out.finish()
    assert data is not None
    assert data["model"] == "claude-sonnet-4-5-20250929"
    assert (data["input_tokens"], data["output_tokens"], data["cost_usd"]) == (60, 40, 0.0123)
    assert llm_call_from_output(text.decode()) == data


def test_verbose_json_is_a_list_and_junk_is_nothing() -> None:
    data = llm_call_from_output(json.dumps(STREAM), "json")
    assert data is not None and data["cost_usd"] == 0.0123
    assert llm_call_from_output("not json at all", "json") is None
    assert llm_call_from_output("", "stream-json") is None
    assert llm_call_from_output('{"type": "assistant"}\n{"oops', "stream-json") is None


def test_tee_forwards_the_output_and_reads_it(tmp_path: Path) -> None:
    # A stand-in for the claude executable: prints the stream-json lines a real run prints.
    output = tmp_path / "run.jsonl"
    output.write_text("".join(json.dumps(e) + "\n" for e in STREAM))
    script = tmp_path / "claude"
    script.write_text(f"import pathlib, sys\nsys.stdout.write(pathlib.Path({str(output)!r}).read_text())\n")
    sink = tmp_path / "terminal"
    with open(sink, "wb") as terminal:
        proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE)
        assert proc.stdout is not None
        reader = tee(proc.stdout, terminal, "stream-json")
        assert proc.wait(timeout=30) == 0
        data = reader.result(timeout=10)
    assert data is not None and data["cost_usd"] == 0.0123
    assert sink.read_text().count("\n") == len(STREAM)


def test_recorded_as_an_llm_call_in_a_session(capture: Capture) -> None:
    import agentpulse

    record(llm_call_from_result(RESULT), None)  # before init(): nothing, no error
    cap = capture()
    with agentpulse.session("claude") as s:
        record(llm_call_from_result(RESULT), s.span)
        record(None, s.span)  # no result in the output: nothing
    (event,) = cap.events("llm_call")
    assert event["parent_span_id"] == s.span_id and event["session"] == "claude"
    got = event["data"]
    assert got["cost_usd"] == 0.2628845 and got["cost_source"] == "provider"
    assert got["output"] is None  # the answer's text only with capture_messages=True
