"""Time AgentPulse adds to an LLM call, against the same SDK unpatched, in one run.

Run: ``python benchmarks/overhead.py`` (about a minute; ``--pairs`` for more or fewer calls).

Each scenario calls the real ``openai`` / ``anthropic`` SDK against an in-process
``httpx2.MockTransport`` returning a prebuilt body, alternating between the
patches removed (``agentpulse.unpatch()``) and applied (``agentpulse.patch()``)
in short blocks (ABBA order), so both sides see the same machine state. After
each switch a few calls run untimed: re-patching changes the SDK's classes, and
the calls right after it run measurably slower while the interpreter re-learns
them (about 25 us on the first patched call, 10 us on the second, nothing from
the fourth), a cost a program pays once at ``init()``, not per call.
``--toggle-every-call`` times the first call after every switch instead, as
earlier versions of this benchmark did.

Every call is timed on its own; the table shows median and p90 per call, the
median over blocks of the difference between the patched and unpatched
medians (the time added), and the ratio of the medians. The per-chunk cost is
the slope between a 20-chunk and a 200-chunk stream, so the per-call work is
not counted in it.

A last section times the engine alone: the OpenAI chat spec applied to a stub
method that returns prebuilt SDK objects, with no HTTP and no parsing. That is
what AgentPulse does on the caller's thread, free of the SDK's own run-to-run
noise (on a busy machine the SDK rows above can swing by more than the whole
overhead; the engine-alone rows stay put).

Events go to ``exporter="none"``: the reporter's worker still settles (cost,
guards, token estimates), validates and serialises every event, on its own
thread, as in production.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any, Callable, Dict, List, Tuple

import anthropic
import httpx2
import openai

import agentpulse
from agentpulse.patching import patch, unpatch

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]

CHAT = json.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}
        ],
        "usage": {
            "prompt_tokens": 120,
            "completion_tokens": 30,
            "total_tokens": 150,
            "prompt_tokens_details": {"cached_tokens": 100},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }
).encode()

MESSAGE = json.dumps(
    {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-20250514",
        "content": [{"type": "text", "text": "Hello!"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 41,
            "cache_creation_input_tokens": 13,
            "cache_read_input_tokens": 7,
            "output_tokens": 25,
        },
    }
).encode()


def chat_stream(chunks: int) -> bytes:
    def chunk(delta: Dict[str, Any], finish: Any = None) -> str:
        body = {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": "gpt-4o-2024-08-06",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(body)}\n\n"

    parts = [chunk({"role": "assistant", "content": ""})]
    parts += [chunk({"content": f"w{i} "}) for i in range(chunks - 2)]
    parts.append(chunk({}, "stop"))
    parts.append("data: [DONE]\n\n")
    return "".join(parts).encode()


def transport(body: bytes, content_type: str = "application/json") -> httpx2.MockTransport:
    headers = {"content-type": content_type}
    return httpx2.MockTransport(lambda request: httpx2.Response(200, content=body, headers=headers))


def _once(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e6


def measure(
    fn: Callable[[], Any], pairs: int, *, block: int = 8, warm: int = 3, every_call: bool = False
) -> Tuple[List[float], List[float], List[float]]:
    """Per-call microseconds unpatched and patched, and the per-block differences of medians.

    Blocks of ``block`` timed calls alternate (in ABBA order) between the SDK
    unpatched (``agentpulse.unpatch()``) and patched (``agentpulse.patch()``),
    each after ``warm`` untimed calls, so noise from the machine (other processes,
    the reporter's worker) falls on both sides alike. ``every_call`` switches
    before every timed call and times the first call after the switch.
    """
    if every_call:
        block, warm = 1, 0
    for _ in range(20):
        fn()
    plain: List[float] = []
    patched: List[float] = []
    diffs: List[float] = []
    for i in range(max(2, pairs // block)):
        medians: Dict[bool, float] = {}
        for on in (False, True) if i % 2 else (True, False):
            if on:
                patch()
            else:
                unpatch()
            for _ in range(warm):
                fn()
            times = [_once(fn) for _ in range(block)]
            (patched if on else plain).extend(times)
            medians[on] = statistics.median(times)
        diffs.append(medians[True] - medians[False])
    patch()
    agentpulse.flush(5)
    return plain, patched, diffs


def p90(values: List[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


class _StubCompletions:
    """Stands in for ``Completions``: returns prebuilt SDK objects, no HTTP, no parsing."""

    completion: Any = None
    chunks: List[Any] = []

    def create(self, **kwargs: Any) -> Any:
        if kwargs.get("stream"):
            return iter(self.chunks)
        return self.completion


def engine_alone(pairs: int) -> None:
    """The engine's own cost, free of SDK and machine noise: the OpenAI chat spec on a stub."""
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

    from agentpulse.integrations.openai import SPECS
    from agentpulse.patching.engine import apply_spec, unpatch_all

    stub = _StubCompletions()
    _StubCompletions.completion = ChatCompletion.model_validate_json(CHAT)
    all_chunks = [
        ChatCompletionChunk.model_validate_json(line[len("data: ") :])
        for line in chat_stream(200).decode().split("\n\n")
        if line.startswith("data: {")
    ]

    def call() -> Any:
        return stub.create(model="gpt-4o", messages=MESSAGES)

    def stream(n: int) -> Callable[[], None]:
        def run() -> None:
            _StubCompletions.chunks = all_chunks[:n]
            for _ in stub.create(model="gpt-4o", messages=MESSAGES, stream=True):
                pass

        return run

    spec = SPECS[0].model_copy(
        update={"module": __name__, "target": "_StubCompletions.create", "library": "stub"}
    )
    cases = [("call", call), ("stream of 20", stream(20)), ("stream of 200", stream(200))]
    plain = {name: statistics.median(_once(fn) for _ in range(pairs)) for name, fn in cases}
    apply_spec(spec)
    patched = {name: statistics.median(_once(fn) for _ in range(pairs)) for name, fn in cases}
    unpatch_all("stub")
    per_chunk = (
        (patched["stream of 200"] - plain["stream of 200"])
        - (patched["stream of 20"] - plain["stream of 20"])
    ) / 180
    print("\nengine alone (the OpenAI chat spec on a stub method returning prebuilt SDK objects):")
    print(f"  added per non-streaming call: {patched['call'] - plain['call']:.1f} us")
    print(f"  added per 20-chunk stream:    {patched['stream of 20'] - plain['stream of 20']:.1f} us")
    print(f"  added per stream chunk:       {per_chunk:.3f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=400, help="unpatched / patched call pairs per scenario")
    parser.add_argument(
        "--toggle-every-call",
        action="store_true",
        help="switch patches before every timed call (times the first call after re-patching)",
    )
    opts = parser.parse_args()

    agentpulse.init(exporter="none", propagate_context=False, capture_exceptions=False)

    oai = openai.OpenAI(api_key="k", http_client=httpx2.Client(transport=transport(CHAT)), max_retries=0)
    oai_s20 = openai.OpenAI(
        api_key="k", http_client=httpx2.Client(transport=transport(chat_stream(20), "text/event-stream"))
    )
    oai_s200 = openai.OpenAI(
        api_key="k", http_client=httpx2.Client(transport=transport(chat_stream(200), "text/event-stream"))
    )
    ant = anthropic.Anthropic(
        api_key="k", http_client=httpx2.Client(transport=transport(MESSAGE)), max_retries=0
    )

    def chat() -> Any:
        return oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    def stream(client: Any) -> Callable[[], Any]:
        def run() -> None:
            for _ in client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True):
                pass

        return run

    def message() -> Any:
        return ant.messages.create(model="claude-sonnet-4-20250514", max_tokens=256, messages=MESSAGES)

    scenarios = [
        ("openai chat", chat, opts.pairs),
        ("openai chat stream, 20 chunks", stream(oai_s20), opts.pairs // 2),
        ("openai chat stream, 200 chunks", stream(oai_s200), max(80, opts.pairs // 2)),
        ("anthropic messages", message, opts.pairs),
    ]
    added: Dict[str, float] = {}
    head = f"{'scenario':32} {'unpatched med/p90 us':>21} {'patched med/p90 us':>20}"
    print(f"{head} {'added us':>9} {'ratio':>6}")
    for name, fn, pairs in scenarios:
        plain, patched, diffs = measure(fn, pairs, every_call=opts.toggle_every_call)
        pm, qm = statistics.median(plain), statistics.median(patched)
        added[name] = statistics.median(diffs)
        print(
            f"{name:32} {pm:10.1f} / {p90(plain):8.1f} {qm:10.1f} / {p90(patched):7.1f} "
            f"{added[name]:9.1f} {qm / pm:6.3f}"
        )
    a20 = added["openai chat stream, 20 chunks"]
    a200 = added["openai chat stream, 200 chunks"]
    print(f"\nadded per stream chunk (slope 20 -> 200 chunks): {(a200 - a20) / 180:.3f} us")
    print(f"added per 20-chunk stream, all in: {a20:.1f} us ({a20 / 20:.2f} us per chunk)")
    engine_alone(max(200, opts.pairs))
    stats = agentpulse.stats()
    print(
        f"events enqueued {stats.get('enqueued')}, sent {stats.get('sent')}, dropped {stats.get('dropped')}"
    )
    for c in (oai, oai_s20, oai_s200, ant):
        c.close()
    agentpulse.shutdown()


if __name__ == "__main__":
    main()
