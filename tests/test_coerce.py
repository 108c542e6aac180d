"""Coercion: whatever users hand us becomes JSON, never raises, and what changed is counted."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import math
import threading
import uuid
from collections import OrderedDict, deque
from pathlib import Path
from typing import Any, Dict, List

import pydantic

import agentpulse
from agentpulse._coerce import MAX_DEPTH, MAX_ITEMS, TRUNCATION_MARKER, Coercer, scrub_surrogates


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    y: float
    tags: List[str] = dataclasses.field(default_factory=list)


class Model(pydantic.BaseModel):
    name: str
    when: datetime.date


class Unrepresentable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


class Exploding:
    def model_dump(self, **kw: Any) -> Any:
        raise RuntimeError("boom")

    def __repr__(self) -> str:
        return "<Exploding>"


def roundtrip(value: Any) -> Any:
    return json.loads(json.dumps(value, allow_nan=False))


def test_plain_json_is_unchanged_and_uncounted() -> None:
    c = Coercer()
    value = {"a": 1, "b": [1.5, "x", None, True], "c": {"d": False}}
    assert c(value) == value
    assert (c.coerced, c.truncated) == (0, 0)


def test_huge_string_truncated_with_marker_keeping_original_size() -> None:
    c = Coercer(max_string_length=100)
    out = c({"s": "x" * 100_000})
    assert out["s"] == "x" * 100 + TRUNCATION_MARKER.format(n=100_000)
    assert "100000" in out["s"] and c.truncated == 1


def test_cycles_are_broken() -> None:
    c = Coercer()
    d: Dict[str, Any] = {"name": "loop"}
    d["self"] = d
    lst: List[Any] = [1]
    lst.append(lst)
    out = c({"d": d, "l": lst})
    assert out["d"]["self"] == "<cycle>" and out["l"][1] == "<cycle>"
    assert roundtrip(out) == out and c.coerced == 2
    # The same object twice (not a cycle) is kept twice.
    shared = {"k": 1}
    assert c([shared, shared]) == [{"k": 1}, {"k": 1}]


def test_nan_and_infinities_become_null() -> None:
    c = Coercer()
    out = c({"nan": math.nan, "inf": math.inf, "ninf": -math.inf, "ok": 1.25})
    assert out == {"nan": None, "inf": None, "ninf": None, "ok": 1.25} and c.coerced == 3


def test_bytes() -> None:
    c = Coercer(max_string_length=64)
    assert c(b"hello") == "hello"
    assert c(bytearray(b"abc")) == "abc"
    assert c(b"\xff\xfe\x00binary") == "<9 bytes>"
    assert c(b"y" * 1000).endswith(TRUNCATION_MARKER.format(n=1000))


def test_pydantic_models_dataclasses_sets_and_friends() -> None:
    c = Coercer()
    out = c(
        {
            "model": Model(name="m", when=datetime.date(2026, 1, 2)),
            "point": Point(1, 2.5, ["a"]),
            "set": {3, 1, 2},
            "frozen": frozenset({"b", "a"}),
            "tuple": (1, 2),
            "deque": deque([1, 2]),
            "ordered": OrderedDict(a=1),
            "when": datetime.datetime(2026, 1, 2, 3, 4, 5),
            "delta": datetime.timedelta(seconds=90),
            "uuid": uuid.UUID(int=1),
            "path": Path("/tmp/x"),
            "decimal": decimal.Decimal("1.25"),
            "enum": Color.RED,
            1: "int key",
            Color.RED: "enum key",
        }
    )
    assert out["model"] == {"name": "m", "when": "2026-01-02"}
    assert out["point"] == {"x": 1, "y": 2.5, "tags": ["a"]}
    assert out["set"] == [1, 2, 3] and out["frozen"] == ["a", "b"]
    assert out["tuple"] == [1, 2] and out["deque"] == [1, 2] and out["ordered"] == {"a": 1}
    assert out["when"] == "2026-01-02T03:04:05" and out["delta"] == 90.0
    assert out["uuid"] == str(uuid.UUID(int=1)) and out["path"] == "/tmp/x"
    assert out["decimal"] == 1.25 and out["enum"] == "red"
    assert out["1"] == "int key" and out["red"] == "enum key"
    assert roundtrip(out) == out and c.coerced > 10


def test_unknown_and_hostile_objects_never_raise() -> None:
    c = Coercer()
    lock = threading.Lock()
    out = c({"lock": lock, "bad": Unrepresentable(), "exploding": Exploding(), "type": int, "fn": print})
    assert out["lock"].startswith("<unlocked _thread.lock")
    assert out["bad"] == "<unrepresentable Unrepresentable>"
    assert out["exploding"] == "<Exploding>"
    assert out["type"] == "<class 'int'>" and "print" in out["fn"]
    assert roundtrip(out) == out


def test_deep_nesting_is_cut() -> None:
    c = Coercer()
    value: Any = "bottom"
    for _ in range(MAX_DEPTH * 3):
        value = {"down": value}
    out = c(value)
    depth = 0
    while isinstance(out, dict):
        out = out["down"]
        depth += 1
    assert depth == MAX_DEPTH and out == "<max depth>" and c.coerced == 1


def test_very_long_containers_are_cut() -> None:
    c = Coercer()
    out = c({"list": list(range(MAX_ITEMS + 50)), "dict": {str(i): i for i in range(MAX_ITEMS + 7)}})
    assert len(out["list"]) == MAX_ITEMS + 1 and out["list"][-1] == "… 50 more items"
    assert len(out["dict"]) == MAX_ITEMS + 1 and out["dict"]["…"] == "7 more keys"
    assert c.truncated == 2


def test_numbers_are_never_truncated() -> None:
    c = Coercer(max_string_length=64)
    big = 10**30
    assert c({"input_tokens": 123456789, "cost_usd": 0.000012, "big": big}) == {
        "input_tokens": 123456789,
        "cost_usd": 0.000012,
        "big": big,
    }


def test_surrogates_are_scrubbed() -> None:
    assert scrub_surrogates({"k\ud800": ["a\udfff", 1]}) == {"k?": ["a?", 1]}


def test_a_dict_changed_on_another_thread_does_not_break_capture() -> None:
    class Shifty(dict):  # type: ignore[type-arg]
        def items(self) -> Any:
            raise RuntimeError("dictionary changed size during iteration")

    c = Coercer()
    out = c({"x": Shifty(a=1)})
    assert isinstance(out["x"], str)


def test_counted_in_stats_end_to_end(capture: Any) -> None:
    ap = capture(max_string_length=64)
    agentpulse.event("odd", {"blob": "z" * 500, "when": datetime.date(2026, 5, 1), "n": math.nan, "s": {1}})
    (event,) = ap.events("event")
    data = event["data"]["data"]
    assert data["blob"].endswith(TRUNCATION_MARKER.format(n=500)) and data["when"] == "2026-05-01"
    assert data["n"] is None and data["s"] == [1]
    stats = agentpulse.stats()
    assert stats["truncated"] == 1 and stats["coerced"] == 3
