"""Cron monitoring: did the nightly job run, how long did it take, did it hang?

``cron(monitor, schedule=..., timezone=..., max_runtime=..., grace=...)`` is a
``with`` / ``async with`` block and a decorator. Every run:

* gets its own ``check_in_id`` (a decorated job run twice at once has two);
* is a ``cron`` span (the root of a new trace when nothing is open, its session
  named after the monitor), so every LLM call inside is counted to the run;
* sends a ``cron_checkin`` ``in_progress`` when it starts and ``ok`` or
  ``error`` (with ``duration_ms``) when it ends; the exception goes on unchanged;
* carries the schedule, timezone, ``max_runtime`` and ``grace`` in every
  check-in, so a collector (or ``agentpulse crons``) can tell a run was missed
  or overran;
* is watched: when it is still running ``max_runtime`` seconds after it
  started, a ``timeout`` check-in and an ``alert`` are sent at once, while it
  runs.

Schedules are cron expressions (``"0 3 * * *"``, ``"*/15 * * * *"``,
``"@daily"``) read by croniter; timezones are IANA names. A bad schedule or an
unknown timezone raises ``ValueError`` when ``cron(...)`` is called.

Example::

    import agentpulse as ap

    ap.init()

    @ap.cron("nightly-cleanup", schedule="0 3 * * *", timezone="Europe/Paris", max_runtime=600)
    def cleanup() -> None: ...

    with ap.cron("inbox-sweep", schedule="*/15 * * * *") as run:
        print(run.check_in_id)
"""

from __future__ import annotations

import datetime
import heapq
import inspect
import itertools
import os
import threading
import time
import uuid
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple, Type, TypeVar

from ._internal import capture_internal_errors
from .client import get_client
from .structure import ActiveSpan, _status_of, open_span, pop_run, wrap_callable

if TYPE_CHECKING:
    import contextvars

    from .client import AgentPulse
    from .context import Span

F = TypeVar("F", bound=Callable[..., Any])

__all__ = [
    "CronMonitor",
    "CronRun",
    "cron",
    "next_run",
    "previous_run",
    "resolve_timezone",
    "validate_schedule",
]

_UTC_NAMES = frozenset({"UTC", "Etc/UTC", "Etc/Universal", "Universal", "Zulu", "Etc/Zulu", "GMT", "Etc/GMT"})


# -- schedules and timezones ------------------------------------------------------


def resolve_timezone(name: str) -> datetime.tzinfo:
    """The ``tzinfo`` of an IANA timezone name; ``ValueError`` naming it when unknown.

    ``"UTC"`` works even on systems without a time zone database; other names
    need the system's database or the ``tzdata`` package.

    Example::

        resolve_timezone("Europe/Paris")
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(
            f"agentpulse.cron: timezone must be an IANA name such as 'Europe/Paris', got {name!r}"
        )
    if name in _UTC_NAMES:
        return datetime.timezone.utc
    import zoneinfo

    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        pass
    hint = "use an IANA name such as 'Europe/Paris' or 'America/New_York'"
    try:
        if not zoneinfo.available_timezones():
            hint = "this system has no time zone database; install it with: pip install tzdata"
    except Exception:
        pass
    raise ValueError(f"agentpulse.cron: unknown timezone {name!r}: {hint}") from None


def validate_schedule(schedule: str) -> str:
    """Check a cron expression; returns it stripped, or raises ``ValueError`` saying what is expected.

    Example::

        validate_schedule("0 3 * * *")
    """
    if not isinstance(schedule, str) or not schedule.strip():
        raise ValueError(f"agentpulse.cron: schedule must be a cron expression, got {schedule!r}")
    text = " ".join(schedule.split())
    from croniter import croniter

    ok = False
    try:
        ok = bool(croniter.is_valid(text))
    except Exception:
        ok = False
    if not ok:
        raise ValueError(
            f"agentpulse.cron: invalid schedule {schedule!r}: expected a cron expression such as "
            "'0 3 * * *' (minute hour day-of-month month day-of-week) or '@daily'"
        )
    return text


def _croniter(schedule: str, tz: str, ts: float) -> Any:
    from croniter import croniter

    base = datetime.datetime.fromtimestamp(ts, resolve_timezone(tz))
    return croniter(schedule, base)


def next_run(schedule: str, timezone: str, after: float) -> float:
    """Unix time of the first run of ``schedule`` strictly after ``after``, read in ``timezone``.

    Example::

        next_run("0 3 * * *", "UTC", time.time())
    """
    nxt = _croniter(schedule, timezone, after).get_next(datetime.datetime)
    return float(nxt.timestamp())


def previous_run(schedule: str, timezone: str, before: float) -> float:
    """Unix time of the last run of ``schedule`` strictly before ``before``, read in ``timezone``."""
    prev = _croniter(schedule, timezone, before).get_prev(datetime.datetime)
    return float(prev.timestamp())


def _seconds(option: str, value: Optional[float], *, allow_zero: bool) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"agentpulse.cron: {option} must be a number of seconds, got {value!r}")
    v = float(value)
    if v != v or v < 0 or (v == 0 and not allow_zero) or v == float("inf"):
        raise ValueError(f"agentpulse.cron: {option} must be a positive number of seconds, got {value!r}")
    return v


# -- the watchdog -----------------------------------------------------------------


class _Entry:
    __slots__ = ("active", "callback")

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback
        self.active = True


class _Watchdog:
    """One daemon thread firing callbacks at deadlines; it exits when nothing is watched."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._cond = threading.Condition(threading.Lock())
        self._heap: List[Tuple[float, int, _Entry]] = []
        self._seq = itertools.count()
        self._thread: Optional[threading.Thread] = None

    def watch(self, delay: float, callback: Callable[[], None]) -> _Entry:
        """Call ``callback`` on the watchdog thread in ``delay`` seconds unless cancelled first."""
        if self._pid != os.getpid():
            self._reset()  # a forked child: the parent's thread does not exist here
        entry = _Entry(callback)
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), entry))
            if self._thread is None:
                t = threading.Thread(target=self._run, name="agentpulse-cron-watchdog", daemon=True)
                self._thread = t
                t.start()
            self._cond.notify()
        return entry

    def cancel(self, entry: _Entry) -> bool:
        """Stop ``entry`` from firing; ``False`` when it already fired."""
        with self._cond:
            was = entry.active
            entry.active = False
            self._cond.notify()
        return was

    def pending(self) -> int:
        """Entries waiting to fire."""
        with self._cond:
            return sum(1 for _, _, e in self._heap if e.active)

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    heap = self._heap
                    while heap and not heap[0][2].active:
                        heapq.heappop(heap)
                    if not heap:
                        self._thread = None
                        return
                    delay = heap[0][0] - time.monotonic()
                    if delay <= 0:
                        entry = heapq.heappop(heap)[2]
                        entry.active = False
                        break
                    self._cond.wait(delay)
            with capture_internal_errors("cron.watchdog"):
                entry.callback()


_watchdog = _Watchdog()


# -- runs -------------------------------------------------------------------------


class CronRun(ActiveSpan):
    """One run of a cron job: what ``with ap.cron(...) as run`` gives you.

    ``check_in_id`` is unique to this run. ``log``, ``set_result`` and
    ``set_metadata`` work as on a session.

    Example::

        with ap.cron("sync", schedule="*/5 * * * *") as run:
            run.log("synced", rows=120)
    """

    __slots__ = ("_watch", "check_in_id", "monitor")

    def __init__(
        self,
        span: Optional[Span] = None,
        client: Optional[AgentPulse] = None,
        token: Optional[contextvars.Token[Optional[Span]]] = None,
    ) -> None:
        super().__init__(span, client, token)
        self.monitor: Optional[CronMonitor] = None
        self.check_in_id: Optional[str] = None
        self._watch: Optional[_Entry] = None

    def _checkin(self, status: str, duration_ms: Optional[float]) -> None:
        monitor, client, span = self.monitor, self._client, self.span
        if monitor is None or client is None or self.check_in_id is None:
            return
        client.emit(
            "cron_checkin",
            {
                "monitor": monitor.monitor,
                "check_in_id": self.check_in_id,
                "status": status,
                "schedule": monitor.schedule,
                "timezone": monitor.timezone,
                "duration_ms": duration_ms,
                "max_runtime": monitor.max_runtime,
                "grace": monitor.grace,
            },
            span,
        )

    def _on_timeout(self) -> None:
        span, monitor, client = self.span, self.monitor, self._client
        if span is None or monitor is None or client is None or span.ended:
            return
        elapsed = span.elapsed_ms()
        self._checkin("timeout", elapsed)
        client.emit(
            "alert",
            {
                "title": (
                    f"Cron job {monitor.monitor!r} still running after {monitor.max_runtime:g}s (max_runtime)"
                ),
                "severity": "error",
                "details": {
                    "monitor": monitor.monitor,
                    "check_in_id": self.check_in_id,
                    "max_runtime": monitor.max_runtime,
                    "elapsed_s": round(elapsed / 1000.0, 3),
                    "schedule": monitor.schedule,
                    "timezone": monitor.timezone,
                },
            },
            span,
        )

    def _finish(self, exc: Optional[BaseException]) -> None:
        try:
            span = self.span
            if span is not None and not span.ended:
                with capture_internal_errors("cron.end"):
                    if self._watch is not None:
                        _watchdog.cancel(self._watch)
                        self._watch = None
                    status = "ok" if _status_of(exc) == "success" else "error"
                    self._checkin(status, span.elapsed_ms())
        finally:
            super()._finish(exc)


class CronMonitor:
    """A cron job: ``with`` / ``async with`` block or decorator; each run is a new ``CronRun``.

    Made by ``cron(...)``, which checks the schedule and timezone.

    Example::

        nightly = ap.cron("nightly", schedule="0 3 * * *", max_runtime=900)

        @nightly
        def main() -> None: ...
    """

    def __init__(
        self,
        monitor: str,
        schedule: Optional[str],
        timezone: str,
        max_runtime: Optional[float],
        grace: Optional[float],
        metadata: Optional[Dict[str, Any]],
    ) -> None:
        self.monitor = monitor
        self.schedule = schedule
        self.timezone = timezone
        self.max_runtime = max_runtime
        self.grace = grace
        self.metadata: Dict[str, Any] = dict(metadata) if metadata else {}
        self._runs: List[CronRun] = []
        self._lock = threading.Lock()

    def _open(self, activate: bool) -> Optional[CronRun]:
        client = get_client()
        if client is None or not client.enabled:
            return None
        check_in_id = uuid.uuid4().hex
        extra: Dict[str, Any] = {"monitor": self.monitor, "check_in_id": check_in_id}
        run = open_span(
            self.monitor,
            "cron",
            self.metadata,
            activate=activate,
            extra=extra,
            root_session=self.monitor,
            handle=CronRun,
        )
        if not isinstance(run, CronRun):
            return None
        with capture_internal_errors("cron.start"):
            run.monitor = self
            run.check_in_id = check_in_id
            run._checkin("in_progress", None)
            if self.max_runtime is not None:
                run._watch = _watchdog.watch(self.max_runtime, run._on_timeout)
        return run

    # -- with / async with ----------------------------------------------------------

    def __enter__(self) -> CronRun:
        run = self._open(True) or CronRun()
        with self._lock:
            self._runs.append(run)
        return run

    def __exit__(
        self, et: Optional[Type[BaseException]], ev: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        run = pop_run(self._runs, self._lock)
        if run is not None:
            run._finish(ev)

    async def __aenter__(self) -> CronRun:
        return self.__enter__()

    async def __aexit__(
        self, et: Optional[Type[BaseException]], ev: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self.__exit__(et, ev, tb)

    # -- decorator --------------------------------------------------------------------

    def __call__(self, fn: F) -> F:
        """Decorate a function (sync, async, generator): every call is one run."""
        if inspect.isclass(fn):
            raise TypeError("agentpulse.cron decorates functions, not classes")
        return wrap_callable(fn, self._open)

    def __repr__(self) -> str:
        return f"<CronMonitor {self.monitor!r} schedule={self.schedule!r} tz={self.timezone!r}>"


def cron(
    monitor: str,
    schedule: Optional[str] = None,
    *,
    timezone: str = "UTC",
    max_runtime: Optional[float] = None,
    grace: Optional[float] = None,
    metadata: Optional[Dict[str, Any]] = None,
) -> CronMonitor:
    """Monitor a scheduled job: ``with ap.cron(...)`` or ``@ap.cron(...)``.

    ``schedule`` is a cron expression read in ``timezone`` (an IANA name);
    ``max_runtime`` is how many seconds a run may take before the watchdog
    reports it; ``grace`` how many seconds a run may start late before it
    counts as missed (``agentpulse crons`` assumes 60 when not given).
    Raises ``ValueError`` on a bad schedule, timezone or number.

    Example::

        with agentpulse.cron("nightly-cleanup", schedule="0 3 * * *", timezone="UTC",
                             max_runtime=600, grace=300):
            cleanup()
    """
    if not isinstance(monitor, str) or not monitor.strip():
        raise ValueError(f"agentpulse.cron: monitor must be a non-empty name, got {monitor!r}")
    sched = validate_schedule(schedule) if schedule is not None else None
    resolve_timezone(timezone)
    return CronMonitor(
        monitor.strip(),
        sched,
        timezone,
        _seconds("max_runtime", max_runtime, allow_zero=False),
        _seconds("grace", grace, allow_zero=True),
        metadata,
    )
