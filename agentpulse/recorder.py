"""Turns one LLM call, as the extractors read it, into an ``llm_call`` event.

The patch engine makes one ``LLMCall`` per call. On the caller's thread it reads
what can change or go away once the call returns — the request
(``extract_request``, the prompt hash for the loop detector), the response
(``extract_response``), each stream chunk (``StreamState.record``) — times the
call, and queues a three-key event that points back at the call. The SDK's
objects are never held past the call: keeping them alive costs the caller's
program more (its allocator can no longer reuse that memory while it is still
in the CPU caches) than reading them does.

The rest waits until the call is *settled*: the stream's ``result()`` (token
estimates), cost, the guards' bookkeeping (loop detector, budgets) and the
event's span fields. That happens on the reporter's worker
thread, just before the event is validated (``Reporter`` runs the event's
``finalize``).

Some settings need the whole event on the caller's thread, and get it there:
a budget with ``on_budget_exceeded="raise"`` (the guards must see the cost
before the next call may leave), ``capture_messages=True`` (captured text is
snapshotted and redacted before anything is queued) and ``before_send`` (the
hook sees complete events).

``settle()`` completes every call still waiting, on the thread that asks: the
guards call it before reading their totals (a session's cost at its end), and
``flush()`` / ``shutdown()`` through ``drain_deferred()``.

A call finishes exactly once and settles exactly once; a second ``finish`` is a
no-op. Nothing here raises into the user's program except ``BudgetExceeded``
from ``begin()``.

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
import os
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Deque, Dict, Optional, Tuple

from ._coerce import TRUNCATION_MARKER
from ._internal import internal_errors
from .context import _current, new_span_id
from .guards import BudgetExceeded

if TYPE_CHECKING:
    from .client import AgentPulse
    from .patching.spec import PatchSpec, StreamState

__all__ = [
    "IN_CALL",
    "CallPlan",
    "LLMCall",
    "Recorder",
    "begin",
    "drain_deferred",
    "error_info",
    "finish_from_finalizer",
    "recorder_for",
    "settle",
    "status_of",
]

#: True while an instrumented call is in progress in this context: a call it makes
#: through another instrumented library (LiteLLM -> openai) is not recorded twice.
IN_CALL: contextvars.ContextVar[bool] = contextvars.ContextVar("agentpulse_in_llm_call", default=False)

_perf = time.perf_counter
_now = time.time
_MAX_ERROR_MESSAGE = 2000
_MAX_DEPTH = 12
# Calls waiting to be settled before the caller settles the oldest itself (a stalled worker
# must not hold an unbounded number of responses alive).
_MAX_UNSETTLED = 10_000
_UNSET: Any = object()


class Recorder:
    """Per-client settings the calls need, read once: capture, limits, price overrides.

    ``sync`` is True when every call must be completed on the caller's thread
    (see the module docstring); otherwise calls are settled on the worker.

    Example::

        rec = recorder_for(agentpulse.get_client())
        rec.captured({"role": "user", "content": "hi"})
    """

    __slots__ = (
        "_prices",
        "capture",
        "client",
        "enqueue",
        "guards",
        "max_len",
        "overrides",
        "redact",
        "sync",
    )

    def __init__(self, client: AgentPulse) -> None:
        self.client = client
        cfg = client.config
        self.capture = bool(cfg.capture_messages)
        self.max_len = int(cfg.max_string_length)
        self.guards = client.guards
        self.redact = client.redact
        self.enqueue = client.reporter.enqueue
        raising_budget = cfg.on_budget_exceeded == "raise" and (
            cfg.budget_usd_per_hour is not None or cfg.budget_usd_per_session is not None
        )
        self.sync = self.capture or cfg.before_send is not None or raising_budget
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
    """Run the finishes garbage collection deferred, then settle every finished call.

    ``flush()`` and ``shutdown()`` call it: what they wait for is then complete.
    Cheap when nothing waits; never raises.
    """
    _run_deferred()
    settle()


def _run_deferred() -> None:
    while _deferred:
        try:
            fn = _deferred.popleft()
        except IndexError:
            return
        try:
            fn()
        except Exception as exc:
            internal_errors.note("recorder.deferred", exc)


# -- settling: the part of a call that waits for the worker ------------------------------
#
# Finished calls wait here, in the order they finished, until the worker reaches their
# event or a reader of the guards' totals asks. Only a holder of the lock takes calls out,
# so a call is settled once, and a thread that finds its call gone waits on the lock until
# whoever took it has finished it.

_unsettled: Deque[LLMCall] = collections.deque()
_settle_lock = threading.RLock()


def settle() -> None:
    """Complete every finished LLM call still waiting for the reporter's worker, here and now.

    Cheap when none waits; never raises. The guards call it before reading their
    totals, so a session's cost includes its last call.

    Example::

        settle()
        client.guards.totals(span)   # every call finished so far is counted
    """
    if _unsettled:
        with _settle_lock:
            _settle_waiting()


def _settle_waiting() -> None:
    # Lock held.
    while _unsettled:
        try:
            call = _unsettled.popleft()
        except IndexError:
            return
        call._settle()


def _settle_oldest() -> None:
    with _settle_lock:
        if _unsettled:
            _unsettled.popleft()._settle()


def _after_fork_in_child() -> None:
    # The parent's calls are the parent's to report; the lock may have been held at fork().
    global _settle_lock
    _settle_lock = threading.RLock()
    _unsettled.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


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


class CallPlan:
    """The fields of a ``PatchSpec`` a call reads, copied once per patched target.

    A ``PatchSpec`` is a pydantic model: reading its attributes costs several
    times a slot read, and a call reads a dozen of them.

    Example::

        plan = CallPlan(spec)
        call = LLMCall(client, plan, instance, args, kwargs, streaming=False)
    """

    __slots__ = (
        "extract_input",
        "extract_instance",
        "extract_output",
        "extract_request",
        "extract_response",
        "operation",
        "prompt_hash",
        "provider",
        "spec",
        "stream_state",
    )

    def __init__(self, spec: PatchSpec) -> None:
        self.spec = spec
        self.provider = spec.provider
        self.operation = spec.operation
        self.extract_request = spec.extract_request
        self.prompt_hash = spec.prompt_hash
        self.extract_input = spec.extract_input
        self.extract_instance = spec.extract_instance
        self.extract_response = spec.extract_response
        self.extract_output = spec.extract_output
        self.stream_state = spec.stream_state


def begin(
    client: AgentPulse,
    spec: PatchSpec,
    instance: Any,
    args: Any,
    kwargs: Dict[str, Any],
    streaming: bool,
) -> LLMCall:
    """Read the request, run the guards that must run first, and start the clock.

    The same as ``LLMCall(client, CallPlan(spec), ...)``. Raises ``BudgetExceeded`` when a
    guard stops the call; nothing else.
    """
    return LLMCall(client, CallPlan(spec), instance, args, kwargs, streaming)


class LLMCall:
    """The state of one call, from request to event. Finishes exactly once, settles exactly once.

    Made on the caller's thread before the request leaves; ``succeed`` /
    ``fail`` / ``finish`` / ``finish_stream`` end it there, and the event is
    completed when it is settled (see the module docstring). Attributes not
    set for a call keep the class defaults below.

    Example::

        call = LLMCall(client, CallPlan(spec), instance, args, kwargs, streaming=False)
        call.succeed(result)
    """

    # Defaults shared by every call; a call stores only what differs.
    streaming = False
    state: Optional[StreamState] = None
    ended_state: Optional[StreamState] = None  # set by finish_stream: its result() is read when settled
    phash: Optional[str] = None
    end: Optional[float] = None
    status: Optional[str] = None
    error: Optional[Dict[str, Any]] = None
    fields: Optional[Dict[str, Any]] = None
    output: Any = _UNSET
    first_at: Optional[float] = None
    ended = False
    open = True
    settled = False
    data: Dict[str, Any]

    def __init__(
        self,
        client: AgentPulse,
        plan: CallPlan,
        instance: Any,
        args: Any,
        kwargs: Dict[str, Any],
        streaming: bool,
    ) -> None:
        if _deferred:
            _run_deferred()
        rec = _recorder
        if rec is None or rec.client is not client:
            rec = recorder_for(client)
        self.rec = rec
        self.plan = plan
        self.span = span = _current.get()
        # What the caller may change once the call returns is read now: the request's
        # values and the last message (its list grows with the answer).
        try:
            request = plan.extract_request(args, kwargs)
            prompt_hash = plan.prompt_hash
            if prompt_hash is not None:
                self.phash = prompt_hash(args, kwargs)
            if rec.capture and plan.extract_input is not None:
                request = dict(request)
                request["input"] = rec.captured(plan.extract_input(args, kwargs))
        except Exception as exc:
            internal_errors.note(f"extract_request.{plan.provider}", exc)
            request = {}
        if streaming:
            self.streaming = True
            if plan.stream_state is not None:
                try:
                    self.state = plan.stream_state(args, kwargs)
                except Exception as exc:
                    internal_errors.note(f"stream_state.{plan.provider}", exc)
        if instance is not None and plan.extract_instance is not None:
            try:
                own = plan.extract_instance(instance)
                if own:
                    request = {**own, **request}  # the request's fields win
            except Exception as exc:
                internal_errors.note(f"extract_request.{plan.provider}", exc)
        self.request = request
        if rec.sync:
            try:
                rec.guards.before_call(
                    request.get("provider", plan.provider), request.get("model"), self.phash, span
                )
            except BudgetExceeded:
                raise
            except Exception as exc:
                internal_errors.note("guards.before_call", exc)
        if span is not None:
            span.llm_calls += 1  # how a framework's model marker learns a provider patch recorded the call
        self.ts = _now()
        self.t0 = _perf()

    @property
    def spec(self) -> PatchSpec:
        """The ``PatchSpec`` this call was made for."""
        return self.plan.spec

    # -- on the caller's thread ---------------------------------------------------------

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
        if self.end is None:
            self.end = _perf()
        plan = self.plan
        rec = self.rec
        try:
            self.fields = plan.extract_response(result)
            if rec.capture and plan.extract_output is not None:
                self.output = plan.extract_output(result)
        except Exception as exc:
            internal_errors.note(f"extract_response.{plan.provider}", exc)
        self.status = "success"
        # _close(), inlined: this is the path of nearly every call.
        self.open = False
        if rec.sync or len(_unsettled) >= _MAX_UNSETTLED:
            self._close()
            return
        _unsettled.append(self)
        rec.enqueue({"kind": "llm_call", "ts": self.ts, "finalize": self})

    def fail(self, exc: BaseException) -> None:
        """Finish with the SDK's exception (status ``error``, or ``cancelled``)."""
        if not self.open:
            return
        if self.end is None:
            self.end = _perf()
        self.status = status_of(exc)
        self.error = error_info(exc)
        self._close()

    def finish(
        self,
        status: str,
        fields: Optional[Dict[str, Any]],
        *,
        exc: Optional[BaseException] = None,
        first_at: Optional[float] = None,
        output: Any = _UNSET,
    ) -> None:
        """Finish with fields already read. Idempotent; never raises."""
        if not self.open:
            return
        if self.end is None:
            self.end = _perf()
        self.status = status
        self.fields = fields
        if exc is not None:
            self.error = error_info(exc)
        self.first_at = first_at
        self.output = output
        self._close()

    def finish_stream(
        self,
        state: StreamState,
        exc: Optional[BaseException],
        ended: bool,
        first_at: Optional[float],
    ) -> None:
        """Finish a stream whose chunks ``state`` has recorded. ``state.result()`` runs when the
        call is settled; the status comes from ``exc``, ``ended`` (exhausted) and ``state.done``
        then. Idempotent; never raises."""
        if not self.open:
            return
        self.end = _perf()
        self.ended_state = state
        if exc is not None:
            self.status = status_of(exc)
            self.error = error_info(exc)
        self.ended = ended
        self.first_at = first_at
        self._close()

    def _close(self) -> None:
        self.open = False
        rec = self.rec
        if rec.sync:
            self._settle()
            try:
                rec.client.emit("llm_call", self.data, span=self.span, own_span_id=new_span_id(), ts=self.ts)
            except Exception as e:
                internal_errors.note("recorder.emit", e)
            return
        if len(_unsettled) >= _MAX_UNSETTLED:
            _settle_oldest()
        _unsettled.append(self)
        rec.enqueue({"kind": "llm_call", "ts": self.ts, "finalize": self})

    # -- when settled (the worker, a reader of the totals, or the caller when sync) ------

    def __call__(self, ev: Dict[str, Any]) -> None:
        """Complete ``ev``, this call's queued event, in place (the reporter's ``finalize``)."""
        if not self.settled:
            with _settle_lock:
                _settle_waiting()  # this call and every one that finished before it
        ev["data"] = self.data
        ev["span_id"] = new_span_id()
        span = self.span
        if span is not None:
            ev["trace_id"] = span.trace_id
            ev["session"] = span.session
            ev["parent_span_id"] = span.span_id

    def _settle(self) -> None:
        """Build the event data, price it and run the guards' bookkeeping. Never raises."""
        rec = self.rec
        spec = self.plan
        span = self.span
        data: Dict[str, Any] = {"provider": spec.provider, "operation": spec.operation}
        self.data = data
        try:
            data.update(self.request)
            if self.streaming:
                data["streaming"] = True
            state = self.ended_state
            if state is not None:
                self._stream_result(state)
            status = self.status
            if status is None:  # a stream that ended without an error
                status = "success" if self.ended or getattr(state, "done", False) else "cancelled"
            fields = self.fields
            if fields:
                if status == "success" and fields.get("status") == "error":
                    status = "error"  # answered, but as a failure (a Responses API "failed" response)
                data.update(fields)
            t0 = self.t0
            end = self.end if self.end is not None else _perf()
            data["latency_ms"] = (end - t0) * 1000.0
            first_at = self.first_at
            if first_at is not None:
                data["time_to_first_token_ms"] = max(0.0, (first_at - t0) * 1000.0)
            data["status"] = status
            if self.error is not None:
                data["error"] = self.error
            if rec.capture:
                output = self.output
                if output is not _UNSET:
                    data["output"] = rec.captured(output)
                elif "output" in data:
                    data["output"] = rec.captured(data["output"])
            else:
                data.pop("output", None)
                data.pop("input", None)
            rec.cost(data)
            cost = data.get("cost_usd")
            if cost is not None and span is not None:
                span.cost_usd += cost
        except Exception as e:
            internal_errors.note("recorder.finish", e)
        guards = rec.guards
        if not rec.sync:
            try:
                guards.before_call(data["provider"], data.get("model"), self.phash, span)
            except Exception as e:
                internal_errors.note("guards.before_call", e)
        try:
            guards.after_call(data, span)
        except Exception as e:
            internal_errors.note("guards.after_call", e)
        self.settled = True

    def _stream_result(self, state: StreamState) -> None:
        self.ended_state = self.state = None
        try:
            self.fields = state.result()
        except Exception as e:
            internal_errors.note(f"stream_state.result.{self.plan.provider}", e)
