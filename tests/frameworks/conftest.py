"""Helpers for the framework tests: the captured span tree, and the scripted OpenAI server."""

from __future__ import annotations

from typing import Iterator

import pytest
from fake_openai import FakeOpenAI
from fw_tree import Node, Tree  # noqa: F401  (re-exported for the tests)


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A scripted OpenAI-compatible server on 127.0.0.1, stopped after the test."""
    with FakeOpenAI() as server:
        yield server
