from __future__ import annotations

import logging
import sys
import threading
import types
from typing import Any, Iterator, List, Optional

import pytest

from agentpulse import tokens
from agentpulse.tokens import estimate_messages_tokens, estimate_tokens, heuristic_tokens, preload_encoding


class FakeEncoding:
    """Counts whitespace-separated words, so tests can tell it from the heuristic."""

    def __init__(self, name: str) -> None:
        self.name = name

    def encode(self, text: str, disallowed_special: Any = "all") -> List[str]:
        assert disallowed_special == ()  # special-token text in prompts must not raise
        return text.split()


class FakeTiktoken(types.ModuleType):
    def __init__(self, fail: Optional[BaseException] = None, gate: Optional[threading.Event] = None) -> None:
        super().__init__("tiktoken")
        self.fail = fail
        self.gate = gate
        self.loads: List[str] = []

    def encoding_name_for_model(self, model: str) -> str:
        known = {"gpt-4o": "o200k_base", "gpt-4": "cl100k_base"}
        if model not in known:
            raise KeyError(model)
        return known[model]

    def get_encoding(self, name: str) -> FakeEncoding:
        self.loads.append(name)
        if self.gate is not None:
            self.gate.wait(5)
        if self.fail is not None:
            raise self.fail
        return FakeEncoding(name)


@pytest.fixture(autouse=True)
def offline_tiktoken(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The real tiktoken would try to download its files; tests install a fake or none at all.
    monkeypatch.setitem(sys.modules, "tiktoken", None)
    tokens._reset()
    yield
    tokens._reset()


def use_fake(monkeypatch: pytest.MonkeyPatch, fake: FakeTiktoken) -> FakeTiktoken:
    monkeypatch.setitem(sys.modules, "tiktoken", fake)
    tokens._reset()
    return fake


# --- the heuristic -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", 0), ("a", 1), ("abcd", 1), ("abcde", 2), ("hello world", 3), ("x" * 400, 100), ("é" * 8, 2)],
)
def test_heuristic(text: str, expected: int) -> None:
    assert heuristic_tokens(text) == expected
    assert estimate_tokens(text) == expected  # no tiktoken importable here
    assert estimate_tokens(text, model="gpt-4o") == expected


@pytest.mark.parametrize("odd", [None, 12, b"bytes", ["a"]])
def test_non_text_counts_zero(odd: Any) -> None:
    assert heuristic_tokens(odd) == 0
    assert estimate_tokens(odd) == 0


def test_switch_forces_heuristic(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = use_fake(monkeypatch, FakeTiktoken())
    monkeypatch.setattr(tokens, "USE_TIKTOKEN", False)
    assert estimate_tokens("one two three four five six seven eight", model="gpt-4o") == 10
    assert preload_encoding("gpt-4o") is False
    assert fake.loads == []


# --- tiktoken ----------------------------------------------------------------------------------------


def test_tiktoken_used_once_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = use_fake(monkeypatch, FakeTiktoken())
    assert preload_encoding("gpt-4o", timeout=5) is True
    assert estimate_tokens("one two three", model="gpt-4o") == 3
    assert estimate_tokens("one two three four", model="openai/gpt-4o-2024-08-06") == 4
    assert fake.loads == ["o200k_base"]  # cached: loaded once


def test_model_to_encoding(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = use_fake(monkeypatch, FakeTiktoken())
    assert preload_encoding("gpt-4-0613", timeout=5) is True  # normalised to gpt-4
    assert preload_encoding("claude-sonnet-4", timeout=5) is True  # unknown to tiktoken: o200k_base
    assert preload_encoding(None, timeout=5) is True
    assert sorted(fake.loads) == ["cl100k_base", "o200k_base"]


def test_first_estimate_does_not_wait_for_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    gate = threading.Event()
    fake = use_fake(monkeypatch, FakeTiktoken(gate=gate))
    text = "one two three four five six seven eight"
    try:
        assert estimate_tokens(text, model="gpt-4o") == heuristic_tokens(text)
        assert estimate_tokens(text, model="gpt-4o") == heuristic_tokens(text)
    finally:
        gate.set()
    assert preload_encoding("gpt-4o", timeout=5) is True
    assert estimate_tokens(text, model="gpt-4o") == 8
    assert fake.loads == ["o200k_base"]


def test_load_failure_falls_back_and_is_not_retried(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(logging.getLogger("agentpulse"), "propagate", True)
    caplog.set_level(logging.DEBUG, logger="agentpulse")
    fake = use_fake(monkeypatch, FakeTiktoken(fail=OSError("Name or service not known")))
    text = "one two three four five six seven eight"
    assert preload_encoding("gpt-4o", timeout=5) is False
    for _ in range(5):
        assert estimate_tokens(text, model="gpt-4o") == heuristic_tokens(text)
    assert preload_encoding("gpt-4o", timeout=5) is False
    assert fake.loads == ["o200k_base"]
    assert sum("o200k_base" in r.getMessage() for r in caplog.records) == 1


def test_tiktoken_not_installed() -> None:
    assert preload_encoding("gpt-4o") is False
    assert estimate_tokens("abcdefgh", model="gpt-4o") == 2


def test_encode_error_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken(FakeEncoding):
        def encode(self, text: str, disallowed_special: Any = "all") -> List[str]:
            raise ValueError("boom")

    fake = use_fake(monkeypatch, FakeTiktoken())
    monkeypatch.setattr(fake, "get_encoding", lambda name: Broken(name))
    assert preload_encoding("gpt-4o", timeout=5) is True
    assert estimate_tokens("abcdefgh", model="gpt-4o") == 2


def test_thread_start_failure_is_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = use_fake(monkeypatch, FakeTiktoken())

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't create new thread at interpreter shutdown")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    assert estimate_tokens("abcdefgh", model="gpt-4o") == 2
    assert preload_encoding("gpt-4o") is False
    assert fake.loads == []


# --- messages ----------------------------------------------------------------------------------------


def test_openai_string_messages() -> None:
    messages = [
        {"role": "system", "content": "You are terse."},  # 14 chars -> 4
        {"role": "user", "content": "hello world"},  # 11 chars -> 3
    ]
    assert estimate_messages_tokens(messages) == (4 + 4) + (4 + 3)


def test_content_parts_and_tool_calls() -> None:
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "abcd"},
                {"type": "image_url", "image_url": {"url": "https://example.invalid/a.png"}},
                {"type": "text", "text": "efgh"},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "name": "f", "content": "ok"},
    ]
    # "abcd\nefgh" -> 3; "f\n{}" -> 1; "ok\nf" -> 1
    assert estimate_messages_tokens(messages) == (4 + 3) + (4 + 1) + (4 + 1)


def test_anthropic_blocks() -> None:
    messages = [
        {"role": "user", "content": "abcdefgh"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "abcd", "signature": "sig"},
                {"type": "tool_use", "id": "t1", "name": "search", "input": {"q": "x"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "abcd"}]}
            ],
        },
    ]
    # "abcd\n{"q":"x"}" is 14 chars -> 4
    assert estimate_messages_tokens(messages) == (4 + 2) + (4 + 4) + (4 + 1)


def test_message_objects() -> None:
    part = types.SimpleNamespace(type="text", text="abcdefgh")
    messages = [
        types.SimpleNamespace(role="user", content=[part]),
        types.SimpleNamespace(role="user", content="ab"),
    ]
    assert estimate_messages_tokens(messages) == (4 + 2) + (4 + 1)


def test_messages_with_tiktoken(monkeypatch: pytest.MonkeyPatch) -> None:
    use_fake(monkeypatch, FakeTiktoken())
    assert preload_encoding("gpt-4o", timeout=5)
    assert estimate_messages_tokens([{"role": "user", "content": "one two three"}], model="gpt-4o") == 4 + 3


@pytest.mark.parametrize(
    "odd", [None, 42, {"role": "user", "content": "hi"}, iter([{"content": "hi"}]), b"hi"]
)
def test_unknown_shapes_count_zero(odd: Any) -> None:
    assert estimate_messages_tokens(odd) == 0


def test_plain_string_prompt() -> None:
    assert estimate_messages_tokens("abcdefgh") == 2


def test_junk_items_are_skipped() -> None:
    assert estimate_messages_tokens([None, 3, "loose text", {"role": "user", "content": "abcd"}]) == 4 + 1


def test_messages_never_raise() -> None:
    class Hostile:
        @property
        def content(self) -> str:
            raise RuntimeError("no")

    assert estimate_messages_tokens([Hostile()]) == 0
    deep: Any = "abcd"
    for _ in range(50):
        deep = [{"content": deep}]
    assert estimate_messages_tokens([{"role": "user", "content": deep}]) == 4
