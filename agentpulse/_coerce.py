"""Turn whatever the user handed us into JSON-safe data, never raising.

Unknown objects become their ``repr``, cycles are broken, strings longer than
the limit are truncated with a marker that keeps the original size, and deep
nesting is cut. Each change is counted so ``ap.stats()`` can show it.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import math
import uuid
from decimal import Decimal
from pathlib import PurePath
from typing import Any, Dict, List, Set

__all__ = ["Coercer", "TRUNCATION_MARKER"]

TRUNCATION_MARKER = "…[truncated {n} chars]"
_MAX_DEPTH = 32
_MAX_ITEMS = 1000


class Coercer:
    """Stateful (for its counters) JSON coercion. One per reporter worker."""

    def __init__(self, max_string_length: int = 8192) -> None:
        self.max_string_length = max_string_length
        self.coerced = 0
        self.truncated = 0

    def __call__(self, value: Any) -> Any:
        return self._walk(value, set(), 0)

    def text(self, value: str) -> str:
        """Truncate one string to the limit, with the marker."""
        if len(value) <= self.max_string_length:
            return value
        self.truncated += 1
        return value[: self.max_string_length] + TRUNCATION_MARKER.format(n=len(value))

    def _walk(self, value: Any, seen: Set[int], depth: int) -> Any:
        if value is None or value is True or value is False:
            return value
        t = type(value)
        if t is str:
            return self.text(value)
        if t is int:
            return value
        if t is float:
            if math.isfinite(value):
                return value
            self.coerced += 1
            return str(value)
        if depth >= _MAX_DEPTH:
            self.coerced += 1
            return "<max depth>"
        if isinstance(value, dict):
            if id(value) in seen:
                self.coerced += 1
                return "<cycle>"
            seen.add(id(value))
            out: Dict[str, Any] = {}
            for i, (k, v) in enumerate(value.items()):
                if i >= _MAX_ITEMS:
                    self.truncated += 1
                    out["…"] = f"{len(value) - _MAX_ITEMS} more keys"
                    break
                if not isinstance(k, str):
                    self.coerced += 1
                    k = self._key(k)
                out[self.text(k)] = self._walk(v, seen, depth + 1)
            seen.discard(id(value))
            return out
        if isinstance(value, (list, tuple, set, frozenset)):
            if id(value) in seen:
                self.coerced += 1
                return "<cycle>"
            seen.add(id(value))
            if isinstance(value, (set, frozenset)):
                self.coerced += 1
                try:
                    value = sorted(value, key=repr)
                except Exception:
                    value = list(value)
            items: List[Any] = []
            for i, v in enumerate(value):
                if i >= _MAX_ITEMS:
                    self.truncated += 1
                    items.append(f"… {len(value) - _MAX_ITEMS} more items")
                    break
                items.append(self._walk(v, seen, depth + 1))
            seen.discard(id(value))
            return items
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            return self._walk(float(value), seen, depth)
        if isinstance(value, str):
            return self.text(str(value))
        return self._other(value, seen, depth)

    def _key(self, k: Any) -> str:
        try:
            return k if isinstance(k, str) else str(k)
        except Exception:
            return f"<key {type(k).__name__}>"

    def _other(self, value: Any, seen: Set[int], depth: int) -> Any:
        self.coerced += 1
        try:
            if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
                return value.isoformat()
            if isinstance(value, datetime.timedelta):
                return value.total_seconds()
            if isinstance(value, (uuid.UUID, PurePath, Decimal)):
                return str(value)
            if isinstance(value, enum.Enum):
                return self._walk(value.value, seen, depth + 1)
            if isinstance(value, (bytes, bytearray, memoryview)):
                raw = bytes(value)
                return self.text(raw.decode("utf-8", errors="replace"))
            dump = getattr(value, "model_dump", None)
            if callable(dump) and not isinstance(value, type):
                return self._walk(dump(mode="json"), seen, depth + 1)
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                if id(value) in seen:
                    return "<cycle>"
                seen.add(id(value))
                try:
                    fields = {f.name: getattr(value, f.name, None) for f in dataclasses.fields(value)}
                    return self._walk(fields, seen, depth + 1)
                finally:
                    seen.discard(id(value))
        except Exception:
            pass
        try:
            return self.text(repr(value))
        except Exception:
            return f"<unrepresentable {type(value).__name__}>"
