"""Memory reports: what an agent's memory files look like now, and how they changed.

Agents that keep their memory in files (``MEMORY.md``, ``notes/*.md``) can
record them with ``memory_report(*paths)``: for each file its size, line count,
modification time and SHA-256, plus the change since the previous report of
that file (``delta_bytes``, ``delta_lines``, ``changed``), as one
``memory_snapshot`` event placed in the current span.

The files are read on a background thread, never on the caller's thread; the
returned ``Future`` gives the list of files once done. The previous report of
each file is remembered in ``memory-state.json`` next to the local store
(``local_path``), so the change is known across runs of a cron job too.

Example::

    import agentpulse

    agentpulse.init()
    with agentpulse.session("nightly-reflection"):
        ...  # the agent rewrites MEMORY.md
        agentpulse.memory_report("MEMORY.md", "notes/")
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Set, Union

from ._internal import capture_internal_errors, log_once
from .client import get_client
from .context import _current

if TYPE_CHECKING:
    from .client import AgentPulse
    from .context import Span

__all__ = ["STATE_FILE", "memory_report", "scan", "wait_for_reports"]

#: Where the previous report of each file is kept, in the directory of ``local_path``.
STATE_FILE = "memory-state.json"

_MAX_FILES = 200  # per directory given
_CHUNK = 1 << 20

PathLike = Union[str, "os.PathLike[str]"]


def _expand(paths: List[str]) -> List[str]:
    out: List[str] = []
    for p in paths:
        if os.path.isdir(p):
            found: List[str] = []
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found.extend(os.path.join(root, f) for f in sorted(files) if not f.startswith("."))
                if len(found) >= _MAX_FILES:
                    break
            out.extend(found[:_MAX_FILES])
        elif not os.path.exists(p) and glob.has_magic(p):
            out.extend(sorted(glob.glob(p))[:_MAX_FILES])
        else:
            out.append(p)
    return out


def _read(path: str) -> Dict[str, Any]:
    entry: Dict[str, Any] = {"path": path}
    try:
        st = os.stat(path)
        digest = hashlib.sha256()
        lines = 0
        last = b""
        with open(path, "rb") as fh:
            while True:
                chunk = fh.read(_CHUNK)
                if not chunk:
                    break
                digest.update(chunk)
                lines += chunk.count(b"\n")
                last = chunk[-1:]
        if last and last != b"\n":
            lines += 1
        entry.update(size=st.st_size, lines=lines, mtime=st.st_mtime, sha256=digest.hexdigest(), exists=True)
    except FileNotFoundError:
        entry.update(size=None, lines=None, mtime=None, sha256=None, exists=False)
    except OSError as exc:
        # Unreadable (permissions, a directory vanished): say so instead of failing the report.
        entry.update(size=None, lines=None, mtime=None, sha256=None, exists=os.path.exists(path))
        entry["error"] = f"{type(exc).__name__}: {exc.strerror or exc}"
    return entry


def scan(*paths: PathLike, previous: Optional[Dict[str, Dict[str, Any]]] = None) -> List[Dict[str, Any]]:
    """Read ``paths`` now (directories and glob patterns expanded) and compare with ``previous``.

    ``previous`` maps absolute paths to their last entry and is updated in
    place. Used by ``memory_report`` on its background thread; call it directly
    when you want the numbers without an event.

    Example::

        files = scan("MEMORY.md")
        print(files[0]["size"], files[0]["sha256"])
    """
    prev = previous if previous is not None else {}
    out: List[Dict[str, Any]] = []
    for p in _expand([os.fspath(x) for x in paths]):
        entry = _read(p)
        key = os.path.abspath(p)
        before = prev.get(key)
        if before is not None:
            old_size = before.get("size") or 0
            old_lines = before.get("lines") or 0
            entry["delta_bytes"] = (entry["size"] or 0) - old_size
            entry["delta_lines"] = (entry["lines"] or 0) - old_lines
            entry["changed"] = before.get("sha256") != entry["sha256"]
            entry["previous_mtime"] = before.get("mtime")
        else:
            entry["delta_bytes"] = None
            entry["changed"] = None
        prev[key] = {k: entry.get(k) for k in ("size", "lines", "mtime", "sha256")}
        out.append(entry)
    return out


# -- the state file ---------------------------------------------------------------

_state_lock = threading.Lock()
_memory_state: Dict[str, Dict[str, Dict[str, Any]]] = {}  # state file -> path -> entry (when not writable)


def _state_path(client: AgentPulse) -> Path:
    return Path(client.config.local_path).parent / STATE_FILE


def _load_state(path: Path, agent: str) -> Dict[str, Dict[str, Any]]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        section = raw.get(agent, {}) if isinstance(raw, dict) else {}
        return dict(section) if isinstance(section, dict) else {}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log_once("memory.state.read", "agentpulse: cannot read %s (%s); deltas start afresh", path, exc)
        return {}


def _save_state(path: Path, agent: str, state: Dict[str, Dict[str, Any]]) -> None:
    try:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(raw, dict):
                raw = {}
        except (OSError, ValueError):
            raw = {}
        raw[agent] = state
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(raw, separators=(",", ":")), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        log_once("memory.state.write", "agentpulse: cannot write %s (%s); deltas kept in memory", path, exc)


def _report(client: AgentPulse, span: Optional[Span], ts: float, paths: List[str]) -> List[Dict[str, Any]]:
    state_path = _state_path(client)
    agent = client.config.agent_name
    key = f"{state_path}\0{agent}"
    with _state_lock:
        state = _memory_state.get(key)
        if state is None:
            state = _load_state(state_path, agent)
        files = scan(*paths, previous=state)
        _memory_state[key] = state
        _save_state(state_path, agent, state)
    with capture_internal_errors("memory.emit"):
        client.emit("memory_snapshot", {"files": [dict(f) for f in files]}, span, ts=ts)
    return files


# -- the background worker ----------------------------------------------------------

_executor: Optional[ThreadPoolExecutor] = None
_executor_pid = 0
_pending: Set[Future[List[Dict[str, Any]]]] = set()
_exec_lock = threading.Lock()


def _get_executor() -> ThreadPoolExecutor:
    global _executor, _executor_pid
    with _exec_lock:
        if _executor is None or _executor_pid != os.getpid():
            # One worker: reports of the same file are compared in the order they were asked for.
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agentpulse-memory")
            _executor_pid = os.getpid()
            _pending.clear()
        return _executor


def memory_report(*paths: PathLike) -> Optional[Future[List[Dict[str, Any]]]]:
    """Record size, lines, mtime and SHA-256 of each file, and the change since its last report.

    Directories are reported file by file (hidden files skipped, at most 200),
    glob patterns are expanded, a missing file is reported with
    ``exists: false``. The event is a ``memory_snapshot`` in the current span,
    stamped with the time of this call. The files are read on a background
    thread; the returned ``Future`` resolves to the list of file entries.
    Before ``init()`` this does nothing and returns ``None``.

    Example::

        fut = agentpulse.memory_report("MEMORY.md")
        if fut is not None:
            print(fut.result(timeout=5)[0]["delta_bytes"])
    """
    client = get_client()
    if client is None or not client.enabled or not paths:
        return None
    span = _current.get()
    ts = time.time()
    names = [os.fspath(p) for p in paths]
    try:
        future = _get_executor().submit(_report, client, span, ts, names)
    except RuntimeError:
        # The interpreter is shutting down (memory_report from an atexit handler): no new threads
        # can start, so report right here rather than lose it.
        future = Future()
        with capture_internal_errors("memory.report.sync"):
            future.set_result(_report(client, span, ts, names))
        if not future.done():
            future.set_result([])
        return future
    with _exec_lock:
        _pending.add(future)
    future.add_done_callback(_forget)
    return future


def _forget(future: Future[List[Dict[str, Any]]]) -> None:
    with _exec_lock:
        _pending.discard(future)
    exc = None if future.cancelled() else future.exception()
    if exc is not None:
        from ._internal import internal_errors

        internal_errors.note("memory.report", exc)


def wait_for_reports(timeout: Optional[float] = None) -> bool:
    """Wait until every ``memory_report`` asked for so far has been recorded; ``True`` if in time.

    ``agentpulse.flush()`` and ``agentpulse.shutdown()`` call this first.
    """
    with _exec_lock:
        pending = list(_pending)
    if not pending:
        return True
    _, not_done = wait(pending, timeout=timeout)
    return not not_done
