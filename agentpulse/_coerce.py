"""Turn whatever the user handed us into JSON-safe data, never raising.

Unknown objects become their ``repr``, cycles are broken, strings longer than
the limit are truncated with a marker that keeps the original size, ``NaN``
and infinities become ``null``, and deep nesting is cut. Each change is
counted (``coerced``, ``truncated``) so ``agentpulse.stats()`` can show it.
Numbers are never truncated or dropped: token counts and costs survive.

Runs on the reporter's worker thread, never on the caller's.

Example::

    from agentpulse._coerce import Coercer

    c = Coercer(max_string_length=100)
    c({"when": datetime.date(2026, 1, 1), "blob": b"hi", "tags": {"b", "a"}})
    # {'when': '2026-01-01', 'blob': 'hi', 'tags': ['a', 'b']}
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import math
import numbers
import uuid
from collections import abc, deque
from decimal import Decimal
from pathlib import PurePath
from typing import Any, Dict, List, Set

__all__ = ["MAX_DEPTH", "MAX_ITEMS", "TRUNCATION_MARKER", "Coercer"]

#: Appended to a truncated string; ``{n}`` is the original length in characters.
TRUNCATION_MARKER = "…[truncated {n} chars]"
#: Containers nested deeper than this become ``"<max depth>"``.
MAX_DEPTH = 32
#: Items kept per list / dict; the rest is summarised in one last item.
MAX_ITEMS = 1000


class Coercer:
    """Stateful (for its counters) JSON coercion. One per reporter, used by its worker only.

    Example::

        c = Coercer()
        c({1: float("nan")})   # {'1': None}; c.coerced == 2
    """

    def __init__(self, max_string_length: int = 8192) -> None:
        self.max_string_length = max_string_length
        self.coerced = 0
        self.truncated = 0

    def __call__(self, value: Any) -> Any:
        try:
            return self._walk(value, set(), 0)
        except RecursionError:
            self.coerced += 1
            return "<max depth>"
        except Exception:
            self.coerced += 1
            return self._repr(value)

    def text(self, value: str) -> str:
        """Truncate one string to the limit, with the marker giving the original size."""
        if len(value) <= self.max_string_length:
            return value
        self.truncated += 1
        return value[: self.max_string_length] + TRUNCATION_MARKER.format(n=len(value))

    def _walk(self, value: Any, seen: Set[int], depth: int) -> Any:
        t = type(value)
        if t is str:
            return value if len(value) <= self.max_string_length else self.text(value)
        if value is None or t is int or t is bool:
            return value
        if t is float:
            if value - value == 0.0:  # finite: inf - inf and nan - nan are nan
                return value
            self.coerced += 1
            return None
        if depth >= MAX_DEPTH:
            self.coerced += 1
            return "<max depth>"
        if t is dict:
            return self._mapping(value, seen, depth)
        if t is list or t is tuple:
            return self._sequence(value, seen, depth, False)
        if isinstance(value, abc.Mapping):
            return self._mapping(value, seen, depth)
        if isinstance(value, (list, tuple, deque)):
            return self._sequence(value, seen, depth, False)
        if isinstance(value, (set, frozenset)):
            return self._sequence(value, seen, depth, True)
        return self._other(value, seen, depth)

    def _mapping(self, value: Any, seen: Set[int], depth: int) -> Any:
        key = id(value)
        if key in seen:
            self.coerced += 1
            return "<cycle>"
        if type(value) is not dict:
            self.coerced += 1
        try:
            # One atomic copy: the user may change the dict on another thread meanwhile.
            items = list(value.items())
        except Exception:
            return self._repr(value)
        seen.add(key)
        limit = self.max_string_length
        walk = self._walk
        out: Dict[str, Any] = {}
        if len(items) > MAX_ITEMS:
            self.truncated += 1
            extra = len(items) - MAX_ITEMS
            items = items[:MAX_ITEMS]
        else:
            extra = 0
        for k, v in items:
            if type(k) is not str:
                self.coerced += 1
                k = self.text(self._key(k))
            elif len(k) > limit:
                k = self.text(k)
            # Inline fast path for the usual leaves; everything else takes the long way.
            t = type(v)
            if t is str:
                out[k] = v if len(v) <= limit else self.text(v)
            elif t is int or t is bool or v is None or (t is float and v - v == 0.0):
                out[k] = v
            else:
                out[k] = walk(v, seen, depth + 1)
        if extra:
            out["…"] = f"{extra} more keys"
        seen.discard(key)
        return out

    def _sequence(self, value: Any, seen: Set[int], depth: int, unordered: bool) -> Any:
        key = id(value)
        if key in seen:
            self.coerced += 1
            return "<cycle>"
        try:
            items = list(value)
        except Exception:
            return self._repr(value)
        if unordered:
            self.coerced += 1
            try:
                items.sort(key=repr)
            except Exception:
                pass
        seen.add(key)
        if len(items) > MAX_ITEMS:
            self.truncated += 1
            extra = len(items) - MAX_ITEMS
            items = items[:MAX_ITEMS]
        else:
            extra = 0
        limit = self.max_string_length
        walk = self._walk
        out: List[Any] = []
        append = out.append
        for v in items:
            t = type(v)
            if t is str:
                append(v if len(v) <= limit else self.text(v))
            elif t is int or t is bool or v is None or (t is float and v - v == 0.0):
                append(v)
            else:
                append(walk(v, seen, depth + 1))
        if extra:
            append(f"… {extra} more items")
        seen.discard(key)
        return out

    def _key(self, k: Any) -> str:
        try:
            if isinstance(k, enum.Enum):
                return str(k.value)
            return str(k)
        except Exception:
            return f"<key {type(k).__name__}>"

    def _other(self, value: Any, seen: Set[int], depth: int) -> Any:
        self.coerced += 1
        try:
            if isinstance(value, bool):
                return bool(value)
            if isinstance(value, enum.Enum):
                return self._walk(value.value, seen, depth + 1)
            if isinstance(value, int):
                return int(value)
            if isinstance(value, float):
                return self._walk(float(value), seen, depth)
            if isinstance(value, str):
                return self.text(str(value))
            if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
                return value.isoformat()
            if isinstance(value, datetime.timedelta):
                return value.total_seconds()
            if isinstance(value, (bytes, bytearray, memoryview)):
                raw = bytes(value)
                try:
                    return self.text(raw.decode("utf-8"))
                except UnicodeDecodeError:
                    return f"<{len(raw)} bytes>"
            if isinstance(value, (uuid.UUID, PurePath)):
                return str(value)
            if isinstance(value, Decimal):
                f = float(value)
                return f if math.isfinite(f) else str(value)
            if isinstance(value, numbers.Integral):  # numpy integers and friends
                return int(value)
            if isinstance(value, numbers.Real):
                return self._walk(float(value), seen, depth)
            if not isinstance(value, type):
                dump = getattr(value, "model_dump", None)
                if callable(dump):  # a pydantic model
                    return self._guarded(value, lambda: dump(mode="json"), seen, depth)
                if dataclasses.is_dataclass(value):
                    fields = dataclasses.fields(value)
                    return self._guarded(
                        value, lambda: {f.name: getattr(value, f.name, None) for f in fields}, seen, depth
                    )
        except Exception:
            pass
        return self._repr(value)

    def _guarded(self, owner: Any, get: Any, seen: Set[int], depth: int) -> Any:
        key = id(owner)
        if key in seen:
            return "<cycle>"
        seen.add(key)
        try:
            return self._walk(get(), seen, depth + 1)
        finally:
            seen.discard(key)

    def _repr(self, value: Any) -> str:
        try:
            return self.text(repr(value))
        except Exception:
            return f"<unrepresentable {type(value).__name__}>"


def scrub_surrogates(value: Any) -> Any:
    """A copy of JSON-safe ``value`` whose strings have lone surrogates replaced (they cannot be UTF-8).

    Example::

        scrub_surrogates({"k": "a\\ud800"})   # {'k': 'a?'}
    """
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {scrub_surrogates(k): scrub_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_surrogates(v) for v in value]
    return value
