"""Turns one LLM call, as the extractors read it, into an ``llm_call`` event.

The patch engine makes one ``LLMCall`` per call: ``begin()`` reads the request
and runs the budget / loop guards on the caller's thread before the request
leaves; ``succeed()`` / ``fail()`` / ``finish()`` add the response fields,
latency, time to first token, status, error and cost, then queue the event.
Only plain dicts are built here: validation and serialisation happen on the
reporter's worker thread.

A call finishes exactly once; a second ``finish`` is a no-op. Nothing here
raises into the user's program except ``BudgetExceeded`` from ``begin()``.

Example::

    from agentpulse.recorder import begin

    call = begin(client, spec, None, args, kwargs, streaming=False)
    result = sdk_call(*args, **kwargs)
    call.succeed(result)
"""

from __future__ import annotations

import collections
import contextvars
import gc
import time
from typing import TYPE_CHECKING, Any, Callable, Deque, Dict, Optional, Tuple

from ._coerce import TRUNCATION_MARKER
from ._internal import internal_errors
from .context import Span, _current, new_span_id
from .guards import BudgetExceeded

if TYPE_CHECKING:
    from .client import AgentPulse
    from .patching.spec import PatchSpec, StreamState

__all__ = [
    "IN_CALL",
    "LLMCall",
    "Recorder",
    "begin",
    "drain_deferred",
    "error_info",
    "finish_from_finalizer",
    "recorder_for",
    "status_of",
]

#: True while an instrumented call is in progress in this context: a call it makes
#: through another instrumented library (LiteLLM -> openai) is not recorded twice.
IN_CALL: contextvars.ContextVar[bool] = contextvars.ContextVar("agentpulse_in_llm_call", default=False)

_perf = time.perf_counter
_now = time.time
_MAX_ERROR_MESSAGE = 2000
_MAX_DEPTH = 12
_UNSET: Any = object()


class Recorder:
    """Per-client settings the calls need, read once: capture, limits, price overrides.

    Example::

        rec = recorder_for(agentpulse.get_client())
        rec.captured({"role": "user", "content": "hi"})
    """

    __slots__ = ("_prices", "capture", "client", "guards", "max_len", "overrides", "redact")

    def __init__(self, client: AgentPulse) -> None:
        self.client = client
        cfg = client.config
        self.capture = bool(cfg.capture_messages)
        self.max_len = int(cfg.max_string_length)
        self.guards = client.guards
        self.redact = client.redact
        self.overrides: Dict[str, Any] = {}
        self._prices: Dict[Any, Any] = {}
        if cfg.cost_table_override is not None:
            try:
                from .costs import load_overrides

                self.overrides = dict(load_overrides(cfg.cost_table_override))
            except Exception as exc:
                internal_errors.note("recorder.overrides", exc)

    def captured(self, value: Any) -> Any:
        """A redacted, truncated snapshot of ``value`` for the event (only with capture_messages).

        Containers are copied, so the user changing their list later changes nothing here.
        """
        return self.redact(self._snapshot(value, 0))

    def _snapshot(self, value: Any, depth: int) -> Any:
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, str):
            limit = self.max_len
            if len(value) <= limit:
                return value
            marker = TRUNCATION_MARKER.format(n=len(value))
            return value[: max(0, limit - len(marker))] + marker
        if depth >= _MAX_DEPTH:
            return "<max depth>"
        if isinstance(value, dict):
            return {str(k): self._snapshot(v, depth + 1) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._snapshot(v, depth + 1) for v in value]
        dump = getattr(value, "model_dump", None)
        if callable(dump) and not isinstance(value, type):
            try:
                return self._snapshot(dump(mode="json", exclude_none=True), depth + 1)
            except Exception:
                pass
        return self._snapshot(repr(value), depth + 1)

    def cost(self, data: Dict[str, Any]) -> None:
        """Fill ``cost_usd`` / ``cost_source`` / ``cost_reason`` from the token fields, in place."""
        if data.get("cost_usd") is not None and data.get("cost_source"):
            return  # the library reported its own cost
        data.pop("cost_usd", None)
        inp = data.get("input_tokens")
        out = data.get("output_tokens")
        if inp is None and out is None:
            data["cost_reason"] = "no token counts"
            return
        model = data.get("response_model") or data.get("model")
        provider = data.get("provider")
        rates = self._rates(model, provider) if not self.overrides else None
        if rates is not None:
            # Price.cost's arithmetic on the table's rates, cached per model name.
            r_in, r_read, r_write, r_out, r_reason = rates
            inp = inp or 0
            out = out or 0
            read = data.get("cache_read_tokens") or 0
            write = data.get("cache_write_tokens") or 0
            reason = data.get("reasoning_tokens") or 0
            total = (
                max(0, inp - read - write) * r_in
                + read * r_read
                + write * r_write
                + max(0, out - reason) * r_out
                + reason * r_reason
            )
            data["cost_usd"] = round(total / 1_000_000.0, 12)
            data["cost_source"] = "table"
            return
        from .costs import compute_cost

        kw: Dict[str, Any] = {
            "provider": provider,
            "input_tokens": inp,
            "output_tokens": out,
            "cache_read_tokens": data.get("cache_read_tokens"),
            "cache_write_tokens": data.get("cache_write_tokens"),
            "reasoning_tokens": data.get("reasoning_tokens"),
            "overrides": self.overrides or None,
        }
        res = compute_cost(model, **kw)
        if res.cost_usd is None and model != data.get("model") and data.get("model"):
            # An Azure deployment or alias: the name the caller used may be the priced one.
            alt = compute_cost(data.get("model"), **kw)
            if alt.cost_usd is not None:
                res = alt
        if res.cost_usd is not None:
            data["cost_usd"] = res.cost_usd
            data["cost_source"] = res.source
        else:
            data["cost_reason"] = res.reason

    def _rates(self, model: Any, provider: Any) -> Optional[Tuple[float, float, float, float, float]]:
        """The table's rates for ``model`` (None when unknown), cached per name."""
        key = (model, provider)
        prices = self._prices
        if key in prices:
            return prices[key]  # type: ignore[no-any-return]
        rates = None
        if isinstance(model, str):
            from .costs import default_table

            price = default_table().lookup(model, provider if isinstance(provider, str) else None)
            if price is not None:
                rates = (
                    price.input,
                    price.cache_read_rate,
                    price.cache_write_rate,
                    price.output,
                    price.reasoning_rate,
                )
        if len(prices) >= 1024:
            prices.clear()
        prices[key] = rates
        return rates


# -- finishing from __del__ ------------------------------------------------------------
#
# A stream dropped unfinished is reported from its proxy's __del__. When that runs inside
# the cyclic garbage collector, it may run at any allocation of any thread, including
# one made while a non-reentrant lock is held (the reporter's queue lock, the guards'
# lock): reporting from there could deadlock. Such finishes wait in a lock-free deque
# and run at the next safe point: the next instrumented call, ``flush()`` or ``shutdown()``.

_deferred: Deque[Callable[[], None]] = collections.deque()
_in_gc = False


def _gc_phase(phase: str, info: Dict[str, Any]) -> None:
    global _in_gc
    _in_gc = phase == "start"


gc.callbacks.append(_gc_phase)


def finish_from_finalizer(finish: Callable[[], None]) -> None:
    """Run ``finish`` now, or at the next safe point when called during garbage collection."""
    if _in_gc:
        _deferred.append(finish)
    else:
        finish()


def drain_deferred() -> None:
    """Run the finishes that garbage collection deferred. Cheap when there are none; never raises."""
    while _deferred:
        try:
            fn = _deferred.popleft()
        except IndexError:
            return
        try:
            fn()
        except Exception as exc:
            internal_errors.note("recorder.deferred", exc)


_recorder: Optional[Recorder] = None


def recorder_for(client: AgentPulse) -> Recorder:
    """The ``Recorder`` of ``client``, made on first use and kept while that client lives."""
    global _recorder
    rec = _recorder
    if rec is None or rec.client is not client:
        rec = _recorder = Recorder(client)
    return rec


def error_info(exc: BaseException) -> Dict[str, Any]:
    """``{"type", "message"}`` (plus ``status_code`` when the exception has one) for the wire."""
    try:
        message = str(exc)
    except Exception:
        message = f"<unprintable {type(exc).__name__}>"
    if len(message) > _MAX_ERROR_MESSAGE:
        message = message[:_MAX_ERROR_MESSAGE] + "…"
    info: Dict[str, Any] = {"type": type(exc).__name__, "message": message}
    code = getattr(exc, "status_code", None)
    if type(code) is int:
        info["status_code"] = code
    return info


def status_of(exc: BaseException) -> str:
    """``error`` for an exception, ``cancelled`` for cancellation, interrupts and exits."""
    return "error" if isinstance(exc, Exception) else "cancelled"


def begin(
    client: AgentPulse,
    spec: PatchSpec,
    instance: Any,
    args: Any,
    kwargs: Dict[str, Any],
    streaming: bool,
) -> LLMCall:
    """Read the request, run the guards and start the clock; the call is finished later.

    Raises ``BudgetExceeded`` when a guard stops the call; nothing else.
    """
    if _deferred:
        drain_deferred()
    rec = _recorder
    if rec is None or rec.client is not client:
        rec = recorder_for(client)
    span = _current.get()
    data: Dict[str, Any] = {"provider": spec.provider, "operation": spec.operation}
    phash: Optional[str] = None
    state: Optional[StreamState] = None
    try:
        if spec.extract_instance is not None and instance is not None:
            data.update(spec.extract_instance(instance))
        data.update(spec.extract_request(args, kwargs))
        if rec.capture and spec.extract_input is not None:
            data["input"] = rec.captured(spec.extract_input(args, kwargs))
        if spec.prompt_hash is not None:
            phash = spec.prompt_hash(args, kwargs)
    except Exception as exc:
        internal_errors.note(f"extract_request.{spec.provider}", exc)
    if streaming:
        data["streaming"] = True
        if spec.stream_state is not None:
            try:
                state = spec.stream_state(args, kwargs)
            except Exception as exc:
                internal_errors.note(f"stream_state.{spec.provider}", exc)
    try:
        rec.guards.before_call(data["provider"], data.get("model"), phash, span)
    except BudgetExceeded:
        raise
    except Exception as exc:
        internal_errors.note("guards.before_call", exc)
    if span is not None:
        span.llm_calls += 1  # how a framework's model marker learns a provider patch recorded the call
    return LLMCall(rec, spec, data, span, streaming, state)


class LLMCall:
    """The state of one call, from request to event. Finishes exactly once."""

    __slots__ = ("data", "end", "open", "rec", "span", "span_id", "spec", "state", "streaming", "t0", "ts")

    def __init__(
        self,
        rec: Recorder,
        spec: PatchSpec,
        data: Dict[str, Any],
        span: Optional[Span],
        streaming: bool = False,
        state: Optional[StreamState] = None,
    ) -> None:
        self.rec = rec
        self.spec = spec
        self.data = data
        self.span = span
        self.streaming = streaming
        self.state = state
        self.span_id = new_span_id()
        self.open = True
        self.ts = _now()
        self.t0 = _perf()
        self.end: Optional[float] = None

    def mark_end(self) -> None:
        """The response arrived now, though the call is reported later (a raw response)."""
        self.end = _perf()

    def restart_clock(self) -> None:
        """The request leaves now (a stream manager entered): latency counts from here."""
        self.ts = _now()
        self.t0 = _perf()

    def succeed(self, result: Any) -> None:
        """Finish with the fields read from a non-streamed ``result``."""
        if not self.open:
            return
        spec = self.spec
        fields: Optional[Dict[str, Any]] = None
        output: Any = _UNSET
        try:
            fields = spec.extract_response(result)
            if self.rec.capture and spec.extract_output is not None:
                output = spec.extract_output(result)
        except Exception as exc:
            internal_errors.note(f"extract_response.{spec.provider}", exc)
        self.finish("success", fields, output=output)

    def fail(self, exc: BaseException) -> None:
        """Finish with the SDK's exception (status ``error``, or ``cancelled``)."""
        self.finish(status_of(exc), None, exc=exc)

    def finish(
        self,
        status: str,
        fields: Optional[Dict[str, Any]],
        *,
        exc: Optional[BaseException] = None,
        first_at: Optional[float] = None,
        output: Any = _UNSET,
    ) -> None:
        """Complete the event and queue it. Idempotent; never raises."""
        if not self.open:
            return
        self.open = False
        end = self.end if self.end is not None else _perf()
        try:
            data = self.data
            if fields:
                if status == "success" and fields.get("status") == "error":
                    status = "error"  # answered, but as a failure (a Responses API "failed" response)
                data.update(fields)
            data["latency_ms"] = (end - self.t0) * 1000.0
            if first_at is not None:
                data["time_to_first_token_ms"] = max(0.0, (first_at - self.t0) * 1000.0)
            data["status"] = status
            if exc is not None:
                data["error"] = error_info(exc)
            rec = self.rec
            if rec.capture:
                if output is not _UNSET:
                    data["output"] = rec.captured(output)
                elif "output" in data:
                    data["output"] = rec.captured(data["output"])
            else:
                data.pop("output", None)
                data.pop("input", None)
            rec.cost(data)
            cost = data.get("cost_usd")
            if cost is not None and self.span is not None:
                self.span.cost_usd += cost
        except Exception as e:
            internal_errors.note("recorder.finish", e)
            data = self.data
        rec = self.rec
        try:
            rec.guards.after_call(data, self.span)
        except Exception as e:
            internal_errors.note("guards.after_call", e)
        try:
            rec.client.emit("llm_call", data, span=self.span, own_span_id=self.span_id, ts=self.ts)
        except Exception as e:
            internal_errors.note("recorder.emit", e)
