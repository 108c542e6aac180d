"""Redaction of secrets in captured text, and before_send editing or dropping events."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Callable, Dict, Optional

import pytest

import agentpulse
from agentpulse.config import Config
from agentpulse.privacy import Redactor, redact_text
from agentpulse.testing import Capture

SECRETS = [
    ("openai", "key sk-abcdefghijklmnopqrstuvwxyz123456 end", "key [REDACTED:api_key] end"),
    ("openai-project", "sk-proj-AbCdEf0123456789_abcdefXYZ-1234", "[REDACTED:api_key]"),
    ("anthropic", "use sk-ant-api03-AAAAbbbbCCCCdddd1234-_xyz now", "use [REDACTED:api_key] now"),
    ("aws", "AKIAIOSFODNN7EXAMPLE is the id", "[REDACTED:aws_key] is the id"),
    ("github", "token ghp_abcdefghijklmnopqrstuvwxyz0123456789", "token [REDACTED:token]"),
    ("github-pat", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstu", "[REDACTED:token]"),
    ("slack", "xoxb-1234567890-abcdefghij", "[REDACTED:token]"),
    ("google", "AIzaSyA-1234567890abcdefghijklmnopqrstu", "[REDACTED:api_key]"),
    ("stripe", "sk_live_abcdefghijklmnop1234", "[REDACTED:api_key]"),
    ("bearer", "Authorization: Bearer abc.def-ghi_jkl~mno+pq/rs==", "Authorization: Bearer [REDACTED:token]"),
    ("bearer-lower", "header bearer 0123456789abcdef", "header bearer [REDACTED:token]"),
    ("email", "write to ada.lovelace+ai@example.co.uk today", "write to [REDACTED:email] today"),
    (
        "url-creds",
        "postgres://admin:hunter2@db.internal:5432/app",
        "postgres://[REDACTED]@db.internal:5432/app",
    ),
    ("assignment", "api_key=abcdef123456&x=1", "api_key=[REDACTED]&x=1"),
    ("json-assignment", '{"password": "correct horse"}', '{"password": "[REDACTED]"}'),
    ("env-assignment", "export OPENAI_API_KEY='abc def'", "export OPENAI_API_KEY='[REDACTED]'"),
    (
        "jwt",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "[REDACTED:token]",
    ),
    (
        "private-key",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nabc\n-----END RSA PRIVATE KEY-----",
        "[REDACTED:private_key]",
    ),
]

HARMLESS = [
    "The task-management system has 12 tokens left; max_tokens=100",
    "commit 3f2a9c1d4e5b6a7980123456789abcdef0123456 fixed it",
    "sk-learn is a typo for scikit-learn",
    "ratio 3:2 and key: value",
    "user@localhost",
    "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
]


@pytest.mark.parametrize(("name", "text", "expected"), SECRETS, ids=[s[0] for s in SECRETS])
def test_builtin_patterns(name: str, text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize("text", HARMLESS)
def test_harmless_text_is_left_alone(text: str) -> None:
    assert redact_text(text) == text


def test_nested_values_are_redacted_in_a_copy() -> None:
    redact = Redactor(Config())
    messages = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": [{"type": "text", "text": "my key is sk-abcdefghijklmnopqrstuv"}]},
        {"role": "tool", "content": ("mail bob@example.com", 3, None, True)},
    ]
    before = copy.deepcopy(messages)
    out = redact(messages)
    assert messages == before  # never mutated
    assert out[1]["content"][0]["text"] == "my key is [REDACTED:api_key]"
    assert out[2]["content"] == ("mail [REDACTED:email]", 3, None, True)
    assert out[0] == messages[0]


def test_secret_named_keys_are_redacted_whatever_their_value() -> None:
    redact = Redactor(Config())
    headers = {"Authorization": "Basic dXNlcjpwYXNz", "X-Api-Key": "short", "api_key": 12345, "n": 1}
    assert redact(headers) == {
        "Authorization": "[REDACTED]",
        "X-Api-Key": "[REDACTED]",
        "api_key": "[REDACTED]",
        "n": 1,
    }


def test_models_dataclasses_and_unknown_objects() -> None:
    from pydantic import BaseModel

    class Msg(BaseModel):
        content: str

    @dataclasses.dataclass
    class Note:
        text: str

    class Opaque:
        def __repr__(self) -> str:
            return "Opaque(owner=eve@example.org)"

    redact = Redactor(Config())
    assert redact(Msg(content="to ada@example.com")) == {"content": "to [REDACTED:email]"}
    assert redact(Note(text="sk-abcdefghijklmnopqrstuv")) == {"text": "[REDACTED:api_key]"}
    assert redact(Opaque()) == "Opaque(owner=[REDACTED:email])"
    assert redact(b"ada@example.com") == "[REDACTED:email]"


def test_cycles_are_cut() -> None:
    loop: Dict[str, Any] = {"a": "ada@example.com"}
    loop["self"] = loop
    out = Redactor(Config())(loop)
    assert out == {"a": "[REDACTED:email]", "self": "<cycle>"}


def test_user_patterns_apply_even_with_builtins_off() -> None:
    on = Redactor(Config(redact_patterns=[r"ACME-\d{6}"]))
    assert on("ticket ACME-123456 from ada@example.com") == "ticket [REDACTED] from [REDACTED:email]"
    off = Redactor(Config(redact=False, redact_patterns=[r"ACME-\d{6}"]))
    assert off("ticket ACME-123456 from ada@example.com") == "ticket [REDACTED] from ada@example.com"
    assert off.text("ACME-000001") == "[REDACTED]"


def test_nothing_to_redact_returns_the_same_object() -> None:
    redact = Redactor(Config(redact=False))
    value = [{"content": "sk-abcdefghijklmnopqrstuv"}]
    assert redact(value) is value


def test_capture_messages_is_off_by_default() -> None:
    assert Config().capture_messages is False and Config().redact is True


def test_session_logs_results_and_errors_are_redacted(ap: Any) -> None:
    cap = Capture(ap.client)
    with pytest.raises(PermissionError), agentpulse.session("s") as s:
        s.log("sent to ada@example.com", key="sk-abcdefghijklmnopqrstuv")
        s.set_result("Bearer abcdefghijklmnop")
        raise PermissionError("bad key sk-abcdefghijklmnopqrstuv")
    log = cap.events("event")[0]["data"]
    assert log["name"] == "sent to [REDACTED:email]" and log["data"] == {"key": "[REDACTED:api_key]"}
    end = cap.span("s").data
    assert end["result"] == "Bearer [REDACTED:token]"
    assert end["error"]["message"] == "bad key [REDACTED:api_key]"


def test_before_send_drops_and_edits_events(capture: Callable[..., Any]) -> None:
    def before_send(event: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        if event["kind"] == "event" and event["data"]["name"] == "drop-me":
            return None
        if event["kind"] == "event":
            event["data"]["data"]["seen"] = True
        return event

    ap = capture(before_send=before_send)
    cap = Capture(ap.client)
    with agentpulse.session("s"):
        agentpulse.event("drop-me", {"x": 1})
        agentpulse.event("keep-me", {"x": 2})
    events = cap.events("event")
    assert [e["data"]["name"] for e in events] == ["keep-me"]
    assert events[0]["data"]["data"] == {"x": 2, "seen": True}
    assert ap.client.stats()["dropped_by_before_send"] == 1


def test_before_send_sees_redacted_data(capture: Callable[..., Any]) -> None:
    seen = []

    def before_send(event: Dict[str, Any]) -> Dict[str, Any]:
        seen.append(event)
        return event

    ap = capture(before_send=before_send)
    with agentpulse.session("s") as s:
        s.log("mail ada@example.com")
    assert any(e["kind"] == "event" and e["data"]["name"] == "mail [REDACTED:email]" for e in seen)
    Capture(ap.client).events()


def test_redaction_is_fast_enough_for_large_prompts() -> None:
    # Not a timing assertion: a large prompt with nothing to redact comes back equal, in one pass.
    text = "lorem ipsum dolor sit amet, " * 20000
    assert redact_text(text) == text
