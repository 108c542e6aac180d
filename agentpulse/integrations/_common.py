"""Small pure helpers shared by the integrations: safe reads, request fields, prompt hashes.

Everything here tolerates any input (a ``Mock``, a dict, ``None``, a sentinel
such as the SDKs' ``NOT_GIVEN``) and returns ``None`` for what it cannot read,
so an unknown shape never turns into a wrong number or an invalid event.

Example::

    from agentpulse.integrations._common import as_int, request_fields

    as_int(12)        # 12
    as_int("12")      # None
    request_fields({"model": "gpt-4o", "temperature": 0.2, "tools": [{}]}, ("max_tokens",))
    # {'model': 'gpt-4o', 'temperature': 0.2, 'tools_count': 1}
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

__all__ = [
    "as_float",
    "as_int",
    "as_str",
    "estimate_input",
    "estimate_output",
    "field",
    "prompt_fingerprint",
    "request_fields",
    "sum_tokens",
]

_HASH_HEAD = 2048


def as_int(value: Any) -> Optional[int]:
    """``value`` when it is a non-negative ``int`` (not a bool), else None."""
    return value if type(value) is int and value >= 0 else None


def as_float(value: Any) -> Optional[float]:
    """``value`` as a float when it is a real number (not a bool), else None."""
    t = type(value)
    if t is float or t is int:
        return float(value)
    return None


def as_str(value: Any) -> Optional[str]:
    """``value`` when it is a non-empty ``str``, else None."""
    return value if type(value) is str and value else None


def field(obj: Any, name: str) -> Any:
    """``obj[name]`` for a mapping, ``obj.name`` otherwise; None when missing."""
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def sum_tokens(*parts: Optional[int]) -> Optional[int]:
    """The sum of the known parts; None when none is known."""
    total: Optional[int] = None
    for p in parts:
        if p is not None:
            total = p if total is None else total + p
    return total


def request_fields(kwargs: Mapping[str, Any], max_token_keys: Sequence[str]) -> Dict[str, Any]:
    """``model``, ``temperature``, ``max_tokens`` (first of ``max_token_keys`` given) and
    ``tools_count`` from a call's keyword arguments."""
    # Runs on every call: plain type tests, no helper calls.
    out: Dict[str, Any] = {}
    model = kwargs.get("model")
    if type(model) is str:
        out["model"] = model
    t = kwargs.get("temperature")
    if t is not None and (type(t) is float or type(t) is int):
        out["temperature"] = float(t)
    for key in max_token_keys:
        mt = kwargs.get(key)
        if type(mt) is int and mt >= 0:
            out["max_tokens"] = mt
            break
    tools = kwargs.get("tools")
    if tools is not None and (type(tools) is list or isinstance(tools, (list, tuple))):
        out["tools_count"] = len(tools)
    return out


def prompt_fingerprint(messages: Any) -> Optional[str]:
    """A cheap fingerprint of the last message of a prompt, for the loop detector.

    The last message (a tool result, the user's turn) is what repeats when an
    agent loops, while the history before it grows; hashing only it keeps the
    cost flat however long the conversation. Long texts are hashed by their
    head, tail and length. The hash is per process (Python's ``hash``).
    """
    t = type(messages)
    if t is list or t is tuple:
        if not messages:
            return None
        last = messages[-1]
        if type(last) is dict or isinstance(last, Mapping):  # the exact-type test skips the ABC check
            role, content = last.get("role"), last.get("content")
        elif isinstance(last, str):
            role, content = None, last
        else:
            role, content = getattr(last, "role", None), getattr(last, "content", None)
        if type(role) is not str:
            role = None
    elif t is str:
        role, content = None, messages
    else:
        return None
    if type(content) is not str:
        try:
            content = repr(content)
        except Exception:
            return None
    if len(content) > 2 * _HASH_HEAD:
        content = f"{content[:_HASH_HEAD]}\x00{content[-_HASH_HEAD:]}\x00{len(content)}"
    return "%016x" % (hash((role, content)) & 0xFFFFFFFFFFFFFFFF)


def estimate_input(messages: Any, model: Optional[str] = None) -> Optional[int]:
    """Estimated prompt tokens of a message list or prompt string (see ``agentpulse.tokens``)."""
    if messages is None:
        return None
    from ..tokens import estimate_messages_tokens

    return estimate_messages_tokens(messages, model)


def estimate_output(parts: List[str], model: Optional[str] = None) -> int:
    """Estimated tokens of generated text given as its streamed pieces."""
    from ..tokens import estimate_tokens

    return estimate_tokens("".join(parts), model) if parts else 0
