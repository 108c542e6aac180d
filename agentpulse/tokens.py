"""Token estimates for calls whose provider reported no usage.

A stream that ends without a usage block still gets token counts, flagged
``usage_estimated: true``. With ``tiktoken`` installed and its encoding loaded,
text is counted with the model's encoding (``o200k_base`` for models tiktoken
does not know, Claude and Gemini included, so those counts are approximate).
Otherwise, and until the encoding is ready, the estimate is one token per four
characters: ``max(1, ceil(len(text) / 4))`` for non-empty text, 0 for empty text.

tiktoken downloads its encoding files on first use, with no timeout. That
download never runs on the caller's thread: the first estimate starts it on a
background thread and uses the heuristic; a failed load is remembered and not
retried, so an offline process simply keeps the heuristic.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import threading
from typing import Any, Dict, List, Mapping, Optional, Set

__all__ = ["estimate_messages_tokens", "estimate_tokens", "heuristic_tokens", "preload_encoding"]

logger = logging.getLogger("agentpulse")

#: Set to False to always use the 4-characters-per-token rule (no tiktoken).
USE_TIKTOKEN = True

_FALLBACK_ENCODING = "o200k_base"
_CHARS_PER_TOKEN = 4
_MESSAGE_OVERHEAD = 4
_MAX_DEPTH = 4

_lock = threading.Lock()
_encodings: Dict[str, Any] = {}
_failed: Set[str] = set()
_loading: Dict[str, threading.Thread] = {}


def heuristic_tokens(text: str) -> int:
    """One token per four characters, rounded up; 0 for empty or non-text input.

    >>> heuristic_tokens("hello world")
    3
    """
    if not isinstance(text, str) or not text:
        return 0
    return max(1, math.ceil(len(text) / _CHARS_PER_TOKEN))


def estimate_tokens(text: str, model: Optional[str] = None) -> int:
    """Estimated token count of ``text`` for ``model``; never raises.

    Uses tiktoken when its encoding is loaded, else :func:`heuristic_tokens`
    (30 characters count 8 tokens that way)::

        >>> estimate_tokens("")
        0
        >>> estimate_tokens("four score and seven years ago", model="gpt-4o") > 0
        True
    """
    if not isinstance(text, str) or not text:
        return 0
    try:
        encoding = _ready_encoding(model)
        if encoding is not None:
            return len(encoding.encode(text, disallowed_special=()))
    except Exception as exc:
        logger.debug("agentpulse: tiktoken count failed, using the heuristic: %r", exc)
    return heuristic_tokens(text)


def estimate_messages_tokens(messages: Any, model: Optional[str] = None) -> int:
    """Estimated prompt tokens of an OpenAI- or Anthropic-style message list.

    Counts string content, content parts carrying ``text`` (or ``thinking``,
    nested tool-result ``content``, tool-use ``input``), a message's ``name`` and
    OpenAI ``tool_calls``, plus about 4 tokens of overhead per message. A plain
    string counts as one text. Unknown shapes count 0; never raises::

        >>> estimate_messages_tokens([{"role": "user", "content": [{"type": "text", "text": "hi"}]}])
        5
    """
    try:
        if isinstance(messages, str):
            return estimate_tokens(messages, model)
        if not isinstance(messages, (list, tuple)):
            return 0
        total = 0
        for message in messages:
            texts = _message_texts(message)
            if texts is not None:
                total += _MESSAGE_OVERHEAD + estimate_tokens("\n".join(texts), model)
        return total
    except Exception as exc:
        logger.debug("agentpulse: message token estimate failed: %r", exc)
        return 0


def preload_encoding(model: Optional[str] = None, timeout: Optional[float] = 5.0) -> bool:
    """Start loading the tiktoken encoding for ``model`` and wait up to ``timeout`` seconds.

    Returns True when the encoding is ready. Call it at start-up (or from a
    thread) to have exact counts from the first estimate on; it is never needed.
    """
    try:
        name = _encoding_name(model)
        if name is None or not USE_TIKTOKEN:
            return False
        thread = _start_loading(name)
        if thread is not None:
            thread.join(timeout)
        return name in _encodings
    except Exception:
        return False


def _get_tiktoken() -> Any:
    try:
        import tiktoken
    except Exception:
        return None
    return tiktoken


@functools.lru_cache(maxsize=256)
def _encoding_name(model: Optional[str]) -> Optional[str]:
    tiktoken = _get_tiktoken()
    if tiktoken is None:
        return None
    if model:
        from .costs import normalize_model

        for name in (model, normalize_model(model)):
            try:
                return str(tiktoken.encoding_name_for_model(name))
            except Exception:
                continue
    return _FALLBACK_ENCODING


def _ready_encoding(model: Optional[str]) -> Any:
    if not USE_TIKTOKEN:
        return None
    name = _encoding_name(model)
    if name is None:
        return None
    encoding = _encodings.get(name)
    if encoding is None and name not in _failed:
        _start_loading(name)
    return encoding


def _start_loading(name: str) -> Optional[threading.Thread]:
    with _lock:
        if name in _encodings or name in _failed:
            return None
        thread = _loading.get(name)
        if thread is not None:
            return thread
        thread = threading.Thread(target=_load, args=(name,), name="agentpulse-tiktoken", daemon=True)
        try:
            # Started under the lock, so no other caller can join a thread not yet started.
            thread.start()
        except Exception as exc:  # e.g. no new threads during interpreter shutdown
            _failed.add(name)
            failure: Optional[BaseException] = exc
        else:
            _loading[name] = thread
            return thread
    _log_failure(name, failure)
    return None


def _load(name: str) -> None:
    try:
        tiktoken = _get_tiktoken()
        if tiktoken is None:
            raise ImportError("tiktoken is not importable")
        encoding = tiktoken.get_encoding(name)
    except Exception as exc:
        _loaded(name, None, exc)
    else:
        _loaded(name, encoding, None)


def _loaded(name: str, encoding: Any, exc: Optional[BaseException]) -> None:
    with _lock:
        _loading.pop(name, None)
        if encoding is not None:
            _encodings[name] = encoding
        else:
            _failed.add(name)
    if exc is not None:
        _log_failure(name, exc)


def _log_failure(name: str, exc: Optional[BaseException]) -> None:
    logger.debug(
        "agentpulse: tiktoken encoding %r unavailable (%r); token estimates use 4 characters per token",
        name,
        exc,
    )


def _field(obj: Any, key: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)


def _message_texts(message: Any) -> Optional[List[str]]:
    """The text of one message, or None when it is not a message at all."""
    if isinstance(message, (str, bytes)) or not (
        isinstance(message, Mapping) or hasattr(message, "content") or hasattr(message, "role")
    ):
        return None
    texts: List[str] = []
    _collect(_field(message, "content"), texts, 0)
    name = _field(message, "name")
    if isinstance(name, str):
        texts.append(name)
    tool_calls = _field(message, "tool_calls")
    if isinstance(tool_calls, (list, tuple)):
        for call in tool_calls:
            function = _field(call, "function")
            for key in ("name", "arguments"):
                value = _field(function, key) if function is not None else None
                if isinstance(value, str):
                    texts.append(value)
    return texts


def _collect(content: Any, texts: List[str], depth: int) -> None:
    if depth > _MAX_DEPTH or content is None:
        return
    if isinstance(content, str):
        texts.append(content)
        return
    if isinstance(content, (list, tuple)):
        for part in content:
            _collect(part, texts, depth + 1)
        return
    if isinstance(content, (bytes, int, float)):
        return
    for key in ("text", "thinking"):
        value = _field(content, key)
        if isinstance(value, str):
            texts.append(value)
    _collect(_field(content, "content"), texts, depth + 1)
    tool_input = _field(content, "input")
    if isinstance(tool_input, Mapping):
        texts.append(json.dumps(tool_input, default=str, separators=(",", ":")))


def _reset() -> None:
    """Forget loaded encodings and failures (tests, and a forked child's fresh start)."""
    global _lock
    _lock = threading.Lock()
    _encodings.clear()
    _failed.clear()
    _loading.clear()
    _encoding_name.cache_clear()


def _after_fork_in_child() -> None:
    # A loader thread does not survive fork; its entry would block loading forever.
    global _lock
    _lock = threading.Lock()
    _loading.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
