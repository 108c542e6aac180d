"""Claude Code CLI: read the usage and cost ``claude -p`` reports into an ``llm_call``.

``agentpulse run -- claude -p "..." --output-format json`` (or ``stream-json``)
records the run as a session; the CLI's own report of what it used becomes one
``llm_call`` event under it: tokens over every model the CLI called (input
counted the AgentPulse way, cache reads and writes included), the
``total_cost_usd`` the CLI reported as a provider cost, the model that cost the
most, the number of turns, the duration and whether it ended in an error.

Everything here is pure: it reads text and returns dicts. ``ClaudeOutput`` reads
the output as it comes (``feed`` bytes, ``finish`` for the event data), keeping
only what the event needs, so a long ``stream-json`` run costs no memory.

Example::

    from agentpulse.integrations.claude_code import llm_call_from_output, output_format

    argv = ["claude", "-p", "fix the tests", "--output-format", "json"]
    assert output_format(argv) == "json"
    data = llm_call_from_output(stdout_text)
    # {'provider': 'anthropic', 'operation': 'agent', 'model': 'claude-sonnet-4-5',
    #  'input_tokens': 61, 'cost_usd': 0.0123, 'cost_source': 'provider', ...}
"""

from __future__ import annotations

import json
import os
import re
import threading
from typing import IO, TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence

if TYPE_CHECKING:
    from ..context import Span

__all__ = [
    "FORMATS",
    "ClaudeOutput",
    "OutputTee",
    "llm_call_from_output",
    "llm_call_from_result",
    "output_format",
    "record",
    "tee",
]

#: ``--output-format`` values whose output carries usage and cost.
FORMATS = ("json", "stream-json")
_EXECUTABLES = frozenset({"claude", "claude.exe", "claude.cmd"})
_VARIANT = re.compile(r"\[[^\]]*\]$")  # "claude-opus-4-6[1m]": the context-window variant
#: ``json`` output is held whole until it is parsed; beyond this it is not parsed.
MAX_JSON_BYTES = 64 * 1024 * 1024
_MAX_LINE = 16 * 1024 * 1024
_MAX_MESSAGE = 2000


def output_format(argv: Sequence[str]) -> Optional[str]:
    """``json`` / ``stream-json`` when ``argv`` runs Claude Code in print mode with that output, else None.

    Example::

        output_format(["claude", "-p", "hi", "--output-format=stream-json", "--verbose"])  # 'stream-json'
        output_format(["claude", "-p", "hi"])                                                # None
    """
    if not argv or os.path.basename(str(argv[0])) not in _EXECUTABLES:
        return None
    args = [str(a) for a in argv[1:]]
    printing = False
    fmt: Optional[str] = None
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            break
        if a in ("-p", "--print"):
            printing = True
        elif a == "--output-format" and i + 1 < len(args):
            fmt = args[i + 1]
            i += 1
        elif a.startswith("--output-format="):
            fmt = a.split("=", 1)[1]
        i += 1
    return fmt if printing and fmt in FORMATS else None


def _int(value: Any) -> Optional[int]:
    return value if type(value) is int and value >= 0 else None


def _num(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    v = float(value)
    return v if v >= 0 and v == v and v != float("inf") else None


def _model_name(key: str, entry: Mapping[str, Any]) -> str:
    canonical = entry.get("canonicalModel")
    if isinstance(canonical, str) and canonical:
        return canonical
    return _VARIANT.sub("", key)


def _add(total: Optional[int], part: Optional[int]) -> Optional[int]:
    if part is None:
        return total
    return part if total is None else total + part


def llm_call_from_result(
    result: Mapping[str, Any], init: Optional[Mapping[str, Any]] = None
) -> Dict[str, Any]:
    """``llm_call`` data from the CLI's final ``{"type": "result", ...}`` object.

    ``init`` is the ``{"type": "system", "subtype": "init"}`` event of a
    ``stream-json`` run, for the model name when the result does not give one.

    Example::

        llm_call_from_result({"type": "result", "subtype": "success", "total_cost_usd": 0.01,
                              "usage": {"input_tokens": 5, "output_tokens": 9}})["cost_usd"]   # 0.01
    """
    data: Dict[str, Any] = {"provider": "anthropic", "operation": "agent", "framework": "claude_code"}
    models: List[Dict[str, Any]] = []
    usage_by_model = result.get("modelUsage")
    if isinstance(usage_by_model, Mapping):
        for key, entry in usage_by_model.items():
            if not isinstance(key, str) or not isinstance(entry, Mapping):
                continue
            uncached = _int(entry.get("inputTokens"))
            read = _int(entry.get("cacheReadInputTokens"))
            write = _int(entry.get("cacheCreationInputTokens"))
            known = [t for t in (uncached, read, write) if t is not None]
            models.append(
                {
                    "model": _model_name(key, entry),
                    "input_tokens": sum(known) if known else None,
                    "output_tokens": _int(entry.get("outputTokens")),
                    "cache_read_tokens": read,
                    "cache_write_tokens": write,
                    "reasoning_tokens": _int(entry.get("thinkingTokens")),
                    "cost_usd": _num(entry.get("costUSD")),
                }
            )
    totals: Dict[str, Optional[int]] = {}
    fields = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")
    if any(m["input_tokens"] is not None or m["output_tokens"] is not None for m in models):
        for name in fields:
            total: Optional[int] = None
            for m in models:
                total = _add(total, m[name])
            totals[name] = total
    else:
        usage = result.get("usage")
        if isinstance(usage, Mapping):
            uncached = _int(usage.get("input_tokens"))
            read = _int(usage.get("cache_read_input_tokens"))
            write = _int(usage.get("cache_creation_input_tokens"))
            known = [t for t in (uncached, read, write) if t is not None]
            totals["input_tokens"] = sum(known) if known else None
            totals["output_tokens"] = _int(usage.get("output_tokens"))
            totals["cache_read_tokens"] = read
            totals["cache_write_tokens"] = write
            details = usage.get("output_tokens_details")
            if isinstance(details, Mapping):
                totals["reasoning_tokens"] = _int(details.get("thinking_tokens"))
    data.update({k: v for k, v in totals.items() if v is not None})
    model: Optional[str] = None
    if models:
        priced = sorted(models, key=lambda m: (-(m["cost_usd"] or 0.0), m["model"]))
        model = priced[0]["model"]
        if len(models) > 1:
            data["models"] = [{k: v for k, v in m.items() if v is not None} for m in models]
    if model is None and init is not None and isinstance(init.get("model"), str):
        model = _VARIANT.sub("", init["model"])
    if model:
        data["model"] = model
    cost = _num(result.get("total_cost_usd"))
    if cost is None:
        cost = _num(result.get("cost_usd"))  # older CLI versions
    if cost is not None:
        data["cost_usd"] = cost
        data["cost_source"] = "provider"
    duration = _num(result.get("duration_ms"))
    if duration is not None:
        data["latency_ms"] = duration
    for src, dst in (("num_turns", "num_turns"), ("duration_api_ms", "api_duration_ms")):
        value = result.get(src)
        if _num(value) is not None:
            data[dst] = value
    session = result.get("session_id")
    if isinstance(session, str):
        data["claude_session_id"] = session
    subtype = result.get("subtype")
    if isinstance(subtype, str):
        data["finish_reason"] = subtype
    failed = result.get("is_error") is True or (isinstance(subtype, str) and subtype.startswith("error"))
    data["status"] = "error" if failed else "success"
    text = result.get("result")
    if failed:
        message = text if isinstance(text, str) and text else str(subtype or "error")
        data["error"] = {"type": str(subtype or "error"), "message": message[:_MAX_MESSAGE]}
    if isinstance(text, str):
        data["output"] = text
    return data


class ClaudeOutput:
    """Reads Claude Code's stdout as it comes; ``finish()`` returns the ``llm_call`` data or None.

    Example::

        out = ClaudeOutput("stream-json")
        for chunk in chunks:
            out.feed(chunk)
        data = out.finish()
    """

    def __init__(self, fmt: str) -> None:
        self.format = fmt
        self._buf = bytearray()
        self._too_big = False
        self._init: Optional[Mapping[str, Any]] = None
        self._result: Optional[Mapping[str, Any]] = None
        self._model: Optional[str] = None

    def feed(self, data: bytes) -> None:
        """Take the next bytes of stdout."""
        if self._too_big:
            return
        self._buf += data
        if self.format == "stream-json":
            while True:
                end = self._buf.find(b"\n")
                if end < 0:
                    break
                line = bytes(self._buf[:end])
                del self._buf[: end + 1]
                self._line(line)
            if len(self._buf) > _MAX_LINE:
                self._buf.clear()  # a line this long is no event of the CLI's
        elif len(self._buf) > MAX_JSON_BYTES:
            self._too_big = True
            self._buf.clear()

    def _line(self, raw: bytes) -> None:
        raw = raw.strip()
        if not raw.startswith(b"{"):
            return
        try:
            event = json.loads(raw)
        except ValueError:
            return
        self._event(event)

    def _event(self, event: Any) -> None:
        if not isinstance(event, dict):
            return
        kind = event.get("type")
        if kind == "result":
            self._result = event
        elif kind == "system" and event.get("subtype") == "init":
            self._init = event
        elif kind == "assistant":
            message = event.get("message")
            model = message.get("model") if isinstance(message, dict) else None
            if isinstance(model, str) and event.get("parent_tool_use_id") is None:
                self._model = model

    def finish(self) -> Optional[Dict[str, Any]]:
        """The ``llm_call`` data of the run, or None when the output held no result."""
        if self.format == "stream-json":
            if self._buf:
                self._line(bytes(self._buf))
                self._buf.clear()
        elif self._buf:
            try:
                value = json.loads(bytes(self._buf))
            except ValueError:
                value = None
            self._buf.clear()
            # ``--verbose`` prints the whole conversation as a list; its last element is the result.
            for item in value if isinstance(value, list) else [value]:
                self._event(item)
        if self._result is None:
            return None
        init = self._init
        if init is None and self._model is not None:
            init = {"model": self._model}
        return llm_call_from_result(self._result, init)


def llm_call_from_output(text: str, fmt: Optional[str] = None) -> Optional[Dict[str, Any]]:
    """The ``llm_call`` data of a whole captured output (``json`` or ``stream-json``; guessed when None).

    Example::

        llm_call_from_output('{"type": "result", "total_cost_usd": 0.02}')["cost_usd"]  # 0.02
    """
    if fmt is None:
        stripped = text.lstrip()
        fmt = "json" if stripped.startswith("[") or "\n{" not in stripped.rstrip() else "stream-json"
    out = ClaudeOutput(fmt)
    out.feed(text.encode("utf-8"))
    return out.finish()


def tee(source: IO[bytes], sink: Optional[IO[bytes]], fmt: str) -> OutputTee:
    """Copy ``source`` (the command's stdout pipe) to ``sink`` on a thread while reading it.

    ``result()`` waits for the end of the output and returns the ``llm_call``
    data, or None.

    Example::

        proc = subprocess.Popen(argv, stdout=subprocess.PIPE)
        reader = tee(proc.stdout, sys.stdout.buffer, "json")
        proc.wait()
        data = reader.result()
    """
    t = OutputTee(source, sink, ClaudeOutput(fmt))
    t.start()
    return t


class OutputTee(threading.Thread):
    """The thread ``tee()`` starts: forwards the command's stdout and reads it."""

    def __init__(self, source: IO[bytes], sink: Optional[IO[bytes]], reader: ClaudeOutput) -> None:
        super().__init__(name="agentpulse-claude-output", daemon=True)
        self.source = source
        self.sink = sink
        self.reader = reader

    def run(self) -> None:
        fd = self.source.fileno()
        try:
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                if self.sink is not None:
                    try:
                        self.sink.write(chunk)
                        self.sink.flush()
                    except (OSError, ValueError):
                        self.sink = None  # the terminal went away: keep reading so the command never blocks
                self.reader.feed(chunk)
        finally:
            self.source.close()

    def result(self, timeout: Optional[float] = 10.0) -> Optional[Dict[str, Any]]:
        """Wait (at most ``timeout`` seconds) for the output to end; the ``llm_call`` data or None."""
        self.join(timeout)
        if self.is_alive():
            return None
        return self.reader.finish()


def record(data: Optional[Dict[str, Any]], span: Optional[Span]) -> None:
    """Record ``data`` (from ``OutputTee.result``, ``ClaudeOutput.finish``) as an ``llm_call`` under ``span``.

    Does nothing when ``data`` is None or AgentPulse is not running.

    Example::

        record(reader.result(), run.span)   # in ``agentpulse run``, after the command exited
    """
    from ..client import get_client
    from ..frameworks import record_llm_call

    client = get_client()
    if data is None or client is None or not client.enabled:
        return
    record_llm_call(client, span, data)
