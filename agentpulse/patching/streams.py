"""Stream proxies: observe a streamed LLM call without changing what the caller sees.

``wrap_stream(stream, call, state)`` returns a ``wrapt.ObjectProxy`` around the
SDK's stream, so ``isinstance(s, openai.Stream)`` stays true and every attribute
passes through. The proxy takes each chunk to the integration's ``StreamState``
and reports the call exactly once, whichever comes first:

* the stream is exhausted (``success``);
* it raises mid-stream (``error``, or ``cancelled`` for ``CancelledError``);
* it is closed early: ``close()``, ``aclose()``, leaving ``with`` / ``async with``,
  or closing its ``.response`` as the SDK's stream helpers do (``cancelled``,
  or ``success`` when the provider's final chunk was already seen);
* it is garbage-collected unfinished (``cancelled``).

Per chunk the proxy hands the chunk to the integration's ``StreamState`` (a few
attribute reads) and passes it on; the state's ``result()`` (token estimates
included) runs when the call is settled, off the caller's thread.
``for chunk in stream`` runs on a generator (a ``for`` loop resumes it far more
cheaply than a method call per chunk), as in the SDKs, whose own ``__iter__``
is a generator too. Also here: the
arming of stream managers whose ``__enter__`` makes the request (Anthropic's
``messages.stream()``), and ``RawResponseProxy`` for ``with_raw_response`` /
``with_streaming_response`` results, read through ``.parse()`` only when the
caller parses.

Example::

    proxy = wrap_stream(sdk_stream, call, state)
    for chunk in proxy:      # the same chunks, the same objects
        ...
"""

from __future__ import annotations

import inspect
import time
from typing import Any, Awaitable, Callable, Dict, Generator, Iterator, Optional, Type

import wrapt

from .._internal import internal_errors, log_once
from ..recorder import IN_CALL, LLMCall, finish_from_finalizer
from .spec import StreamState

__all__ = [
    "AsyncStreamProxy",
    "DualStreamProxy",
    "RawResponseProxy",
    "StreamRun",
    "SyncStreamProxy",
    "arm_manager",
    "is_stream_like",
    "wrap_stream",
]

_perf = time.perf_counter


def _no_record(chunk: Any) -> bool:
    return False


class StreamRun:
    """One stream's bookkeeping, shared by its proxy and its response proxy (no cycle back)."""

    __slots__ = ("_pending", "call", "first_at", "record", "state")

    def __init__(self, call: LLMCall, state: Optional[StreamState]) -> None:
        self.call = call
        self.state = state if state is not None else StreamState()
        self.record: Callable[[Any], bool] = self.state.record
        self.first_at: Optional[float] = None
        # list.pop() is atomic: whichever path pops first reports, the others see it empty.
        self._pending = [call]

    def take(self, chunk: Any) -> None:
        """Record ``chunk``; the first one with output sets the time to first token."""
        try:
            if self.record(chunk) and self.first_at is None:
                self.first_at = _perf()
        except Exception as exc:
            self.broken(exc)

    def broken(self, exc: Exception) -> None:
        """The state failed on a chunk: stop feeding it, keep the stream going."""
        internal_errors.note(f"stream_state.{self.call.spec.provider}", exc)
        self.record = _no_record

    def finish(self, exc: Optional[BaseException] = None, ended: bool = False) -> None:
        """Report the stream once: on exhaustion (``ended``), an error, a close or GC."""
        if not self._pending:
            return
        try:
            call = self._pending.pop()
        except IndexError:
            return
        # Chunks read after this (a stream iterated on after close()) are not the call's.
        self.record = _no_record
        try:
            call.finish_stream(self.state, exc, ended, self.first_at)
        except Exception as e:
            internal_errors.note("stream.finish", e)


def _closing(inner: Callable[..., Any], finish: Callable[[], None]) -> Callable[..., Any]:
    """``inner`` (a close method, sync or async) followed by ``finish``."""

    def close(*args: Any, **kwargs: Any) -> Any:
        try:
            res = inner(*args, **kwargs)
        except BaseException:
            finish()
            raise
        if inspect.isawaitable(res):
            return _then(res, finish)
        finish()
        return res

    return close


async def _then(awaitable: Awaitable[Any], finish: Callable[[], None]) -> Any:
    try:
        return await awaitable
    finally:
        finish()


class _ClosingResponse(wrapt.ObjectProxy):  # type: ignore[misc,type-arg]
    """The stream's HTTP response: closing it (as the SDK stream helpers do) ends the stream."""

    def __init__(self, wrapped: Any, run: StreamRun) -> None:
        super().__init__(wrapped)
        self._self_run = run

    @property
    def close(self) -> Callable[..., Any]:
        return _closing(self.__wrapped__.close, self._self_run.finish)

    @property
    def aclose(self) -> Callable[..., Any]:
        return _closing(self.__wrapped__.aclose, self._self_run.finish)


class _StreamProxyBase(wrapt.ObjectProxy):  # type: ignore[misc,type-arg]
    # Looked up only when used: most streams are iterated with ``for`` and never asked
    # for their response or for ``next()``.
    _self_response: Any = None
    _self_next: Any = None
    _self_anext: Any = None

    _self_run: StreamRun

    @property
    def close(self) -> Callable[..., Any]:
        return _closing(self.__wrapped__.close, self._self_run.finish)

    @property
    def aclose(self) -> Callable[..., Any]:
        return _closing(self.__wrapped__.aclose, self._self_run.finish)

    @property
    def response(self) -> Any:
        resp = self.__wrapped__.response
        cached = self._self_response
        if cached is not None and cached.__wrapped__ is resp:
            return cached
        if resp is None:
            return resp
        try:
            cached = _ClosingResponse(resp, self._self_run)
        except Exception as exc:
            internal_errors.note("stream.response", exc)
            return resp
        self._self_response = cached
        return cached

    def __del__(self) -> None:
        try:
            run = self._self_run
            if run._pending:  # not reported yet: abandoned unfinished
                finish_from_finalizer(run.finish)
        except Exception:
            pass

    def __repr__(self) -> str:
        return repr(self.__wrapped__)


class SyncStreamProxy(_StreamProxyBase):
    """A synchronous stream, observed. ``iter()``, ``next()``, ``with`` and ``close()`` as the SDK's."""

    def __iter__(self) -> Iterator[Any]:
        return self._self_chunks()

    def _self_chunks(self) -> Iterator[Any]:
        # ``for chunk in stream``: the SDK's own iteration, observed. Leaving the loop early
        # (break, an exception in the loop body) closes this generator without ending the
        # stream, as with the SDK: iterating the stream again continues where it stopped.
        run = self._self_run
        try:
            it = iter(self.__wrapped__)
            if run.first_at is None:
                for chunk in it:
                    try:
                        if run.record(chunk):
                            run.first_at = _perf()
                    except Exception as exc:
                        run.broken(exc)
                    yield chunk
                    if run.first_at is not None:
                        break
                else:
                    run.finish(None, True)
                    return
            for chunk in it:  # the time to first token is known: only the state is fed
                try:
                    run.record(chunk)
                except Exception as exc:
                    run.broken(exc)
                yield chunk
        except GeneratorExit:
            raise
        except BaseException as exc:
            run.finish(exc)
            raise
        run.finish(None, True)

    def __next__(self) -> Any:
        run = self._self_run
        nxt = self._self_next
        if nxt is None:
            wrapped = self.__wrapped__
            nxt = getattr(wrapped, "__next__", None)
            self._self_next = nxt = nxt if nxt is not None else iter(wrapped).__next__
        try:
            chunk = nxt()
        except StopIteration:
            run.finish(None, True)
            raise
        except BaseException as exc:
            run.finish(exc)
            raise
        run.take(chunk)
        return chunk

    def __enter__(self) -> SyncStreamProxy:
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            self._self_run.finish()


class AsyncStreamProxy(_StreamProxyBase):
    """An asynchronous stream, observed. ``async for``, ``async with``, ``close()`` / ``aclose()``."""

    def __aiter__(self) -> AsyncStreamProxy:
        return self

    async def __anext__(self) -> Any:
        run = self._self_run
        anext = self._self_anext
        if anext is None:
            wrapped = self.__wrapped__
            anext = getattr(wrapped, "__anext__", None)
            self._self_anext = anext = anext if anext is not None else wrapped.__aiter__().__anext__
        try:
            chunk = await anext()
        except StopAsyncIteration:
            run.finish(None, True)
            raise
        except BaseException as exc:
            run.finish(exc)
            raise
        run.take(chunk)
        return chunk

    async def __aenter__(self) -> AsyncStreamProxy:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            self._self_run.finish()


def is_stream_like(obj: Any) -> bool:
    """An iterator / async iterator that is not a plain container or a response model."""
    if obj is None or isinstance(obj, (str, bytes, bytearray, dict, list, tuple, set)):
        return False
    cls = type(obj)
    if hasattr(cls, "model_dump"):
        return False
    return (
        hasattr(cls, "__next__")
        or hasattr(cls, "__anext__")
        or hasattr(cls, "__iter__")
        or hasattr(cls, "__aiter__")
    )


class DualStreamProxy(SyncStreamProxy, AsyncStreamProxy):
    """A stream that iterates both ways (LiteLLM's ``CustomStreamWrapper``), observed both ways."""


# The proxy class for each stream type (None: not a stream), decided once per type.
_proxy_types: Dict[type, Optional[Type[_StreamProxyBase]]] = {}


def _proxy_type(cls: type) -> Optional[Type[_StreamProxyBase]]:
    kind = _proxy_types.get(cls, _proxy_types)
    if kind is not _proxy_types:
        return kind  # type: ignore[return-value]
    proxy: Optional[Type[_StreamProxyBase]] = None
    if cls not in (str, bytes, bytearray, dict, list, tuple, set) and not hasattr(cls, "model_dump"):
        sync = hasattr(cls, "__next__") or hasattr(cls, "__iter__")
        asyn = hasattr(cls, "__anext__") or hasattr(cls, "__aiter__")
        if sync and asyn:
            proxy = DualStreamProxy
        elif asyn:
            proxy = AsyncStreamProxy
        elif sync:
            proxy = SyncStreamProxy
    if len(_proxy_types) >= 256:
        _proxy_types.clear()
    _proxy_types[cls] = proxy
    return proxy


def wrap_stream(obj: Any, call: LLMCall, state: Optional[StreamState]) -> Any:
    """The proxy that reports ``call`` when ``obj`` ends; ``obj`` itself when it is no stream.

    The proxy has the iteration protocols ``obj`` has: sync, async, or both. Never
    raises: on an internal error the call is reported at once and ``obj`` comes back
    untouched.
    """
    try:
        proxy = _proxy_type(type(obj)) if obj is not None else None
        if proxy is None or isinstance(obj, (str, bytes, bytearray, dict, list, tuple, set)):
            call.succeed(obj)
            return obj
        wrapper = proxy(obj)
        wrapper._self_run = StreamRun(call, state)  # set here: an __init__ of ours would cost a frame
        return wrapper
    except Exception as exc:
        internal_errors.note("stream.wrap", exc)
        call.finish("success", None)
        return obj


# -- stream managers: the request happens at __enter__ / __aenter__ ---------------


class _ArmedRequest:
    """Stands in for a manager's request callable: times it and wraps the stream it returns."""

    __slots__ = ("call", "inner", "state")

    def __init__(self, inner: Callable[..., Any], call: LLMCall, state: Optional[StreamState]) -> None:
        self.inner = inner
        self.call = call
        self.state = state

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        call = self.call
        call.restart_clock()
        token = IN_CALL.set(True)
        try:
            stream = self.inner(*args, **kwargs)
        except BaseException as exc:
            call.fail(exc)
            raise
        finally:
            IN_CALL.reset(token)
        return wrap_stream(stream, call, self.state)


class _ArmedAwaitable:
    """Stands in for a manager's pending request coroutine (not a coroutine itself, so an
    unentered manager warns about the SDK's coroutine only, exactly as without us)."""

    __slots__ = ("call", "inner", "state")

    def __init__(self, inner: Awaitable[Any], call: LLMCall, state: Optional[StreamState]) -> None:
        self.inner = inner
        self.call = call
        self.state = state

    def __await__(self) -> Generator[Any, None, Any]:
        call = self.call
        call.restart_clock()
        token = IN_CALL.set(True)
        try:
            stream = yield from self.inner.__await__()
        except BaseException as exc:
            call.fail(exc)
            raise
        finally:
            try:
                IN_CALL.reset(token)
            except ValueError:
                IN_CALL.set(False)
        return wrap_stream(stream, call, self.state)


def _mangled(obj: Any, attr: str) -> Optional[str]:
    if not attr.startswith("__"):
        return attr if attr in vars(obj) else None
    own = vars(obj)
    for klass in type(obj).__mro__:
        name = f"_{klass.__name__.lstrip('_')}{attr}"
        if name in own:
            return name
    return None


def arm_manager(manager: Any, call: LLMCall, state: Optional[StreamState]) -> Any:
    """Arm ``manager`` so its request, when entered, is timed and its stream observed.

    The manager comes back as the same object; only its private request
    attribute (``spec.manager_request_attr``) is replaced. A manager of an
    unknown shape is returned untouched, with one debug line.
    """
    attr = call.spec.manager_request_attr or ""
    try:
        name = _mangled(manager, attr)
        if name is None:
            log_once(
                f"manager.{call.spec.key}",
                "agentpulse: %s returned %s without %r; its streams are not recorded",
                call.spec.key,
                type(manager).__name__,
                attr,
            )
            return manager
        request = getattr(manager, name)
        if inspect.isawaitable(request):
            setattr(manager, name, _ArmedAwaitable(request, call, state))
        elif callable(request):
            setattr(manager, name, _ArmedRequest(request, call, state))
    except Exception as exc:
        internal_errors.note("stream.arm_manager", exc)
    return manager


# -- with_raw_response / with_streaming_response ------------------------------------


class _RawRun:
    __slots__ = ("call", "handed", "state")

    def __init__(self, call: LLMCall, state: Optional[StreamState]) -> None:
        self.call = call
        self.state = state
        self.handed = False  # a stream proxy took over the call

    def finish_unread(self) -> None:
        if not self.handed:
            self.call.finish("success", None)


class RawResponseProxy(wrapt.ObjectProxy):  # type: ignore[misc,type-arg]
    """An SDK raw response (``.parse()``, ``.headers``, ``.http_response``) whose call is
    recorded when the caller parses it, closes it, or drops it. We never read a body the
    caller did not read."""

    def __init__(self, wrapped: Any, call: LLMCall, state: Optional[StreamState]) -> None:
        super().__init__(wrapped)
        if state is None:
            call.mark_end()  # latency is the request's, not the time until the caller parses
        self._self_raw = _RawRun(call, state)
        self._self_stream: Any = None

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        res = self.__wrapped__.parse(*args, **kwargs)
        if inspect.isawaitable(res):
            return self._self_aparse(res)
        return self._self_take(res)

    async def _self_aparse(self, awaitable: Awaitable[Any]) -> Any:
        return self._self_take(await awaitable)

    def _self_take(self, parsed: Any) -> Any:
        try:
            raw = self._self_raw
            if self._self_stream is not None and self._self_stream.__wrapped__ is parsed:
                return self._self_stream
            if not raw.call.open:
                return parsed
            if raw.state is not None and is_stream_like(parsed):
                raw.handed = True
                proxy = wrap_stream(parsed, raw.call, raw.state)
                if proxy is not parsed:
                    self._self_stream = proxy
                return proxy
            raw.call.succeed(parsed)
        except Exception as exc:
            internal_errors.note("raw_response.parse", exc)
        return parsed

    @property
    def close(self) -> Callable[..., Any]:
        return _closing(self.__wrapped__.close, self._self_raw.finish_unread)

    def __del__(self) -> None:
        try:
            finish_from_finalizer(self._self_raw.finish_unread)
        except Exception:
            pass

    def __repr__(self) -> str:
        return repr(self.__wrapped__)
