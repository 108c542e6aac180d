"""The wire models: every kind validates, unknown kinds are refused, a Batch survives a round trip."""

from __future__ import annotations

import json
import time
from typing import Any, Dict

import pytest
from pydantic import TypeAdapter, ValidationError

from agentpulse.models import EVENT_KINDS, Batch, Event, LLMCallData

ADAPTER: TypeAdapter[Any] = TypeAdapter(Event)

DATA: Dict[str, Dict[str, Any]] = {
    "llm_call": {
        "provider": "openai",
        "operation": "chat",
        "model": "gpt-4o",
        "response_model": "gpt-4o-2024-08-06",
        "input_tokens": 150,
        "output_tokens": 89,
        "cache_read_tokens": 40,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "usage_estimated": False,
        "latency_ms": 1234.5,
        "time_to_first_token_ms": None,
        "cost_usd": 0.0012,
        "cost_source": "table",
        "status": "success",
        "streaming": False,
        "finish_reason": "stop",
        "error": None,
    },
    "span_start": {"name": "daily-email", "span_kind": "session", "metadata": {"user": "u1"}},
    "span_end": {
        "name": "daily-email",
        "status": "error",
        "duration_ms": 12.5,
        "error": {"type": "E", "message": "m"},
    },
    "event": {"name": "email_sent", "data": {"to": 3}},
    "metric": {"name": "inbox_size", "value": 42, "tags": {"box": "main"}},
    "alert": {"title": "quota low", "severity": "error", "details": {"left": 1}},
    "error": {"type": "RuntimeError", "message": "boom", "traceback": "Traceback ..."},
    "cron_checkin": {
        "monitor": "nightly",
        "check_in_id": "c1",
        "status": "ok",
        "schedule": "0 3 * * *",
        "timezone": "Europe/Paris",
        "duration_ms": 1000.0,
        "max_runtime": 600,
    },
    "memory_snapshot": {
        "files": [
            {
                "path": "MEMORY.md",
                "size": 10,
                "lines": 2,
                "mtime": 1.0,
                "sha256": "ab",
                "delta_bytes": 3,
                "exists": True,
            }
        ]
    },
    "process_start": {"fingerprint": {"pid": 1, "python": "3.11.7"}},
    "process_stop": {"uptime_s": 3.5, "counters": {"sent": 10}},
}


def envelope(kind: str, data: Dict[str, Any]) -> Dict[str, Any]:
    return {
        "id": "0190c0a1b2c37e5a8f0000000000abcd",
        "kind": kind,
        "ts": time.time(),
        "trace_id": "a" * 32,
        "span_id": "b" * 16,
        "parent_span_id": None,
        "session": "daily-email",
        "data": data,
    }


def test_every_kind_is_covered() -> None:
    assert set(DATA) == set(EVENT_KINDS)


@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_each_kind_validates_and_keeps_its_fields(kind: str) -> None:
    model = ADAPTER.validate_python(envelope(kind, DATA[kind]))
    assert model.kind == kind
    dumped = json.loads(ADAPTER.dump_json(model))
    for key, value in DATA[kind].items():
        assert dumped["data"][key] == value


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValidationError) as info:
        ADAPTER.validate_python(envelope("telemetry", {"x": 1}))
    assert info.value.errors()[0]["type"] == "union_tag_invalid"


def test_missing_kind_or_id_is_rejected() -> None:
    bad = envelope("event", DATA["event"])
    del bad["kind"]
    with pytest.raises(ValidationError):
        ADAPTER.validate_python(bad)
    bad = envelope("event", DATA["event"])
    del bad["id"]
    with pytest.raises(ValidationError):
        ADAPTER.validate_python(bad)


def test_data_is_open_but_the_envelope_is_not() -> None:
    ok = ADAPTER.validate_python(envelope("event", {**DATA["event"], "added_by_newer_sdk": 1}))
    assert json.loads(ADAPTER.dump_json(ok))["data"]["added_by_newer_sdk"] == 1
    with pytest.raises(ValidationError):
        ADAPTER.validate_python({**envelope("event", DATA["event"]), "surprise": 1})


def test_wrong_values_are_refused() -> None:
    with pytest.raises(ValidationError):
        ADAPTER.validate_python(envelope("alert", {"title": "t", "severity": "urgent"}))
    with pytest.raises(ValidationError):
        ADAPTER.validate_python(envelope("llm_call", {**DATA["llm_call"], "input_tokens": -1}))
    with pytest.raises(ValidationError):
        ADAPTER.validate_python(envelope("span_end", {"name": "s", "status": "fine", "duration_ms": 1}))


def test_unknown_token_counts_stay_null() -> None:
    data = LLMCallData(provider="openai")
    assert data.input_tokens is None and data.output_tokens is None and data.cost_usd is None


def test_batch_round_trip() -> None:
    body = {
        "agent": "marcus",
        "sdk_version": "0.1.0",
        "process": {
            "pid": 4242,
            "host": "h",
            "python": "3.11.7",
            "os": "Linux",
            "libraries": {"openai": "3.57"},
        },
        "events": [envelope(kind, DATA[kind]) for kind in EVENT_KINDS],
    }
    batch = Batch.model_validate(body)
    again = Batch.model_validate_json(batch.model_dump_json())
    assert again == batch
    assert [e.kind for e in again.events] == list(EVENT_KINDS)
    assert json.loads(again.model_dump_json())["process"]["libraries"] == {"openai": "3.57"}
