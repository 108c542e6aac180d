"""The one place that wraps: applies ``PatchSpec``s with ``wrapt`` and undoes them.

* ``apply_spec(spec)`` patches ``spec.module``'s ``spec.target`` now if the module
  is imported, else registers a ``wrapt`` post-import hook, so ``init()`` may run
  before ``import openai`` (the SDK imports its resource modules lazily; the
  hook fires when the first call imports them).
* Methods are patched on their class (``Completions.create``), so clients made
  before ``init()`` are covered too. A module-level function imported with
  ``from lib import f`` before ``init()`` keeps the unpatched ``f``.
* Idempotent: a target already wrapped by us is never wrapped again (a second
  ``init()``, two specs on one target). ``unpatch_all()`` restores the original
  objects exactly (``Cls.__dict__["create"] is original``) and switches off any
  bound wrapper an SDK kept (``with_raw_response`` binds ``create`` once).
* A library whose version is outside a spec's range is skipped with one debug line.
* A call made while another instrumented call runs in the same context (LiteLLM
  calling the openai SDK) is not recorded again.

The wrapper's work on the caller's thread: two ``ContextVar`` reads, the request
extractor and prompt hash, the clock, and queueing one small event; the rest of
the call (response, cost, guards) is settled on the reporter's worker (see
``agentpulse.recorder``). Streams, raw responses and stream managers are handed
to ``agentpulse.patching.streams``.

Example::

    from agentpulse.patching import engine
    from agentpulse.integrations.openai import SPECS

    for spec in SPECS:
        engine.apply_spec(spec)
    ...
    engine.unpatch_all()
"""

from __future__ import annotations

import sys
import threading
from importlib import metadata
from types import ModuleType
from typing import Any, Awaitable, Callable, Dict, List, Optional, Set

import wrapt

from .. import client as _client_mod
from .._internal import capture_internal_errors, internal_errors, log_once, logger
from ..recorder import IN_CALL, CallPlan, LLMCall
from .spec import PatchSpec, version_in_range
from .streams import RawResponseProxy, arm_manager, wrap_stream

__all__ = ["AgentPulseWrapper", "applied", "apply_spec", "is_patched", "unpatch_all"]

_MISSING: Any = object()


class AgentPulseWrapper(wrapt.FunctionWrapper):  # type: ignore[misc,type-arg]
    """The marker type of every function AgentPulse wrapped."""

    # wrapt looks this up on every attribute access of a FunctionWrapper subclass; without it
    # the lookup fails, and raising and clearing that AttributeError costs more than the rest.
    __bound_function_wrapper__ = wrapt.BoundFunctionWrapper


class _Patch:
    __slots__ = ("active", "attr", "had_own", "original", "owner", "spec", "wrapper")

    def __init__(self, spec: PatchSpec) -> None:
        self.spec = spec
        self.owner: Any = None
        self.attr = ""
        self.original: Any = None
        self.had_own = True
        self.wrapper: Any = None
        self.active = True


_lock = threading.RLock()
_wanted: Dict[str, PatchSpec] = {}
_applied: Dict[str, _Patch] = {}
_hooked: Set[str] = set()
_versions: Dict[str, Optional[str]] = {}


# -- applying -----------------------------------------------------------------------


def apply_spec(spec: PatchSpec) -> None:
    """Patch ``spec``'s target now, or as soon as its module is imported. Idempotent."""
    with _lock:
        key = spec.key
        known = _wanted.get(key)
        if known is not None:
            if known is not spec:
                log_once(f"dup.{key}", "agentpulse: %s already has a spec; keeping the first", key)
            return
        _wanted[key] = spec
        module = sys.modules.get(spec.module)
        if module is not None:
            _patch(spec, module)
            return
        if spec.module not in _hooked:
            _hooked.add(spec.module)
            # Called at once if the module was imported meanwhile; else when it is.
            wrapt.register_post_import_hook(_on_import, spec.module)


def _on_import(module: ModuleType) -> None:
    with capture_internal_errors("patching.on_import"):
        name = getattr(module, "__name__", "")
        with _lock:
            for spec in list(_wanted.values()):
                if spec.module == name and spec.key not in _applied:
                    _patch(spec, module)


def _dist_version(dist: str) -> Optional[str]:
    if dist not in _versions:
        try:
            _versions[dist] = metadata.version(dist)
        except Exception:
            _versions[dist] = None
    return _versions[dist]


def _version_ok(spec: PatchSpec) -> bool:
    if spec.min_version is None and spec.max_version is None:
        return True
    version = _dist_version(spec.dist_name)
    if version is None or version_in_range(version, spec.min_version, spec.max_version):
        return True
    log_once(
        f"version.{spec.key}",
        "agentpulse: not patching %s: %s %s is outside the supported range [%s, %s)",
        spec.key,
        spec.dist_name,
        version,
        spec.min_version or "any",
        spec.max_version or "any",
    )
    return False


def _patch(spec: PatchSpec, module: ModuleType) -> None:
    """Wrap one target. Lock held. A missing target is logged once, never raised."""
    key = spec.key
    if key in _applied or not _version_ok(spec):
        return
    with capture_internal_errors(f"patching.patch.{spec.library}"):
        owner: Any = module
        parts = spec.target.split(".")
        try:
            for part in parts[:-1]:
                owner = getattr(owner, part)
            attr = parts[-1]
            own = vars(owner).get(attr, _MISSING)
            original = own if own is not _MISSING else getattr(owner, attr)
        except AttributeError:
            log_once(f"missing.{key}", "agentpulse: %s not found; not patched", key)
            return
        if isinstance(original, AgentPulseWrapper):
            return  # wrapped by us already (a reloaded engine or a second spec)
        patch = _Patch(spec)
        patch.owner = owner
        patch.attr = attr
        patch.original = original
        patch.had_own = own is not _MISSING
        handler = _async_handler(spec, patch) if spec.is_async else _sync_handler(spec, patch)
        patch.wrapper = AgentPulseWrapper(original, handler)
        setattr(owner, attr, patch.wrapper)
        _applied[key] = patch
        logger.debug("agentpulse: patched %s", key)


# -- undoing ------------------------------------------------------------------------


def unpatch_all(library: Optional[str] = None) -> List[str]:
    """Restore every original (or those of ``library``); returns the keys restored."""
    restored: List[str] = []
    with _lock:
        for key, patch in list(_applied.items()):
            if library is not None and patch.spec.library != library:
                continue
            patch.active = False  # bound wrappers an SDK kept now pass straight through
            current = vars(patch.owner).get(patch.attr, _MISSING)
            if current is patch.wrapper:
                if patch.had_own:
                    setattr(patch.owner, patch.attr, patch.original)
                else:
                    delattr(patch.owner, patch.attr)
            else:
                log_once(
                    f"unpatch.{key}",
                    "agentpulse: %s was re-wrapped by someone else; our wrapper is left in place, inactive",
                    key,
                )
            del _applied[key]
            restored.append(key)
        for key, spec in list(_wanted.items()):
            if library is None or spec.library == library:
                del _wanted[key]
    return restored


def applied() -> List[PatchSpec]:
    """The specs whose targets are wrapped right now."""
    with _lock:
        return [p.spec for p in _applied.values()]


def is_patched(owner: Any, attr: str) -> bool:
    """True when ``owner.attr`` is an active AgentPulse wrapper."""
    return isinstance(vars(owner).get(attr), AgentPulseWrapper) and any(
        p.owner is owner and p.attr == attr for p in list(_applied.values())
    )


# -- the wrappers -------------------------------------------------------------------


def _raw_mode(header: Optional[str], kwargs: Dict[str, Any]) -> Optional[str]:
    if header is None:
        return None
    headers = kwargs.get("extra_headers")
    if not headers:
        return None
    try:
        value = headers.get(header)
    except Exception:
        return None
    return value if isinstance(value, str) else None


def _complete(call: LLMCall, raw: Optional[str], manager: bool, result: Any) -> Any:
    """Hand ``result`` to the proxy that will record it; returns the proxy or ``result``. Never raises."""
    try:
        if raw is not None and hasattr(result, "parse") and hasattr(result, "http_response"):
            return RawResponseProxy(result, call, call.state)
        if manager:
            return arm_manager(result, call, call.state)
        if call.streaming:
            return wrap_stream(result, call, call.state)
        call.succeed(result)
    except Exception as exc:
        internal_errors.note("patching.complete", exc)
        call.finish("success", None)
    return result


def _sync_handler(spec: PatchSpec, patch: _Patch) -> Callable[..., Any]:
    # Decided once per target, not per call; names bound here are closure reads in the handler.
    never = spec.stream == "never"
    always = spec.stream in ("always", "manager")
    manager = spec.stream == "manager"
    kwarg = spec.stream_kwarg
    header = spec.raw_response_header
    clients = _client_mod
    plan = CallPlan(spec)
    in_call, enter, leave = IN_CALL.get, IN_CALL.set, IN_CALL.reset

    def handler(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Dict[str, Any]) -> Any:
        client = clients._client
        if client is None or not patch.active or not client.enabled or in_call():
            return wrapped(*args, **kwargs)
        streaming = False if never else (always or kwargs.get(kwarg) is True)
        call = LLMCall(client, plan, instance, args, kwargs, streaming)
        raw = _raw_mode(header, kwargs) if header is not None and "extra_headers" in kwargs else None
        token = enter(True)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            leave(token)
            call.fail(exc)
            raise
        leave(token)
        if raw is None:
            if not streaming:
                call.succeed(result)
                return result
            if not manager:
                return wrap_stream(result, call, call.state)
        return _complete(call, raw, manager, result)

    return handler


def _async_handler(spec: PatchSpec, patch: _Patch) -> Callable[..., Awaitable[Any]]:
    never = spec.stream == "never"
    always = spec.stream in ("always", "manager")
    manager = spec.stream == "manager"
    kwarg = spec.stream_kwarg
    header = spec.raw_response_header
    clients = _client_mod
    plan = CallPlan(spec)
    in_call, enter, leave = IN_CALL.get, IN_CALL.set, IN_CALL.reset

    async def handler(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Dict[str, Any]) -> Any:
        client = clients._client
        if client is None or not patch.active or not client.enabled or in_call():
            return await wrapped(*args, **kwargs)
        streaming = False if never else (always or kwargs.get(kwarg) is True)
        call = LLMCall(client, plan, instance, args, kwargs, streaming)
        raw = _raw_mode(header, kwargs) if header is not None and "extra_headers" in kwargs else None
        token = enter(True)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            leave(token)
            call.fail(exc)
            raise
        leave(token)
        if raw is None:
            if not streaming:
                call.succeed(result)
                return result
            if not manager:
                return wrap_stream(result, call, call.state)
        return _complete(call, raw, manager, result)

    return handler
