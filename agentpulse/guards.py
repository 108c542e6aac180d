"""Budget and loop guards: stop a runaway agent before it burns the night's money.

Every LLM call passes through ``Guards.before_call`` and ``Guards.after_call``
(with the finished ``llm_call`` data, cost included). With a budget and
``on_budget_exceeded="raise"`` they run on the caller's thread, before the
request leaves and as it returns; otherwise both run when the recorder settles
the call, usually on the reporter's worker (``totals()`` settles first).

* ``budget_usd_per_hour``: spend of the last 60 minutes (a rolling window).
* ``budget_usd_per_session``: spend of one session (the nearest enclosing
  ``session`` span, or the outermost span when there is none).
* Crossing a budget emits one ``alert``: once per hour for the hourly budget,
  once per session for the session budget. With
  ``on_budget_exceeded="raise"`` every later LLM call raises
  ``BudgetExceeded`` before any request is sent (until the hour's spend falls
  back under the budget; for the session, until it ends).
* Loop detector: the same provider, model and prompt hash ``loop_threshold``
  times within ``loop_window`` seconds in one session emits an ``alert``
  (once per window for that prompt).

The checks are O(1) amortised, hold one lock briefly and do no I/O.

Example::

    import agentpulse
    agentpulse.init(budget_usd_per_hour=5.0, on_budget_exceeded="raise")
    try:
        client.chat.completions.create(...)
    except agentpulse.BudgetExceeded as exc:
        print("stopped:", exc.spent_usd, "of", exc.limit_usd)
"""

from __future__ import annotations

import collections
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Deque, Dict, List, Optional, Tuple

from ._internal import capture_internal_errors

if TYPE_CHECKING:
    from .client import AgentPulse
    from .context import Span

__all__ = ["HOUR", "BudgetExceeded", "Guards"]

#: The length of the hourly budget's rolling window, in seconds.
HOUR = 3600.0

# Distinct prompts tracked per scope by the loop detector before stale ones are pruned.
_MAX_LOOP_KEYS = 1024

LoopKey = Tuple[str, Optional[str], str]


class BudgetExceeded(RuntimeError):
    """Raised before an LLM call is sent when a budget is spent and ``on_budget_exceeded='raise'``.

    ``budget`` is ``"hour"`` or ``"session"``; ``limit_usd`` and ``spent_usd``
    say by how much; ``session`` names the session for a session budget.

    Example::

        try:
            agent.run()
        except agentpulse.BudgetExceeded as exc:
            log.warning("budget %s spent: $%.2f", exc.budget, exc.spent_usd)
    """

    def __init__(
        self,
        message: str = "LLM budget exceeded",
        *,
        budget: str = "hour",
        limit_usd: Optional[float] = None,
        spent_usd: Optional[float] = None,
        session: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.budget = budget
        self.limit_usd = limit_usd
        self.spent_usd = spent_usd
        self.session = session


class _Scope:
    """Spend and loop counters of one session (or one trace without a session)."""

    __slots__ = ("__weakref__", "alerted", "calls", "cost", "loop_alerts", "loops", "name")

    def __init__(self, name: Optional[str]) -> None:
        self.name = name
        self.cost = 0.0
        self.calls = 0
        self.alerted = False
        self.loops: Dict[LoopKey, Deque[float]] = {}
        self.loop_alerts: Dict[LoopKey, float] = {}


def _scope_span(span: Optional[Span]) -> Optional[Span]:
    """The span a session budget counts against: nearest session, else the outermost span."""
    s = span
    while s is not None:
        if s.kind == "session":
            return s
        if s.parent is None:
            return s
        s = s.parent
    return None


def _settle_llm_calls() -> None:
    # Finished LLM calls reach after_call when the reporter's worker settles them; a reader
    # of the totals settles the waiting ones first, so none is missing.
    from .recorder import settle

    settle()


def _money(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    v = float(value)
    return v if v > 0 and v == v and v != float("inf") else None


class Guards:
    """The budget and loop checks run around every LLM call; thread-safe and cheap.

    Example::

        client = agentpulse.init(budget_usd_per_session=0.50)
        client.guards.after_call({"cost_usd": 0.6}, agentpulse.current_span())  # emits an alert
    """

    def __init__(self, client: AgentPulse) -> None:
        self.client = client
        cfg = client.config
        self.per_hour: Optional[float] = cfg.budget_usd_per_hour
        self.per_session: Optional[float] = cfg.budget_usd_per_session
        self.raise_on_exceeded = cfg.on_budget_exceeded == "raise"
        self.loop_threshold = int(cfg.loop_threshold)
        self.loop_window = float(cfg.loop_window)
        self._lock = threading.Lock()
        self._hour: Deque[Tuple[float, float]] = collections.deque()
        self._hour_total = 0.0
        self._hour_alerted_at: Optional[float] = None
        self._scopes: weakref.WeakKeyDictionary[Span, _Scope] = weakref.WeakKeyDictionary()
        self._process = _Scope(None)  # calls made outside any span
        self.alerts_sent = 0
        self.calls_blocked = 0

    # -- the two hooks -----------------------------------------------------------

    def before_call(
        self, provider: str, model: Optional[str], prompt_hash: Optional[str], span: Optional[Span]
    ) -> None:
        """Called on the caller's thread before the request is sent. May raise ``BudgetExceeded``."""
        now = time.time()
        blocked: Optional[BudgetExceeded] = None
        alert: Optional[Tuple[str, str, Dict[str, Any], Optional[Span]]] = None
        owner = _scope_span(span)
        with self._lock:
            scope = self._scope(owner)
            if self.raise_on_exceeded:
                blocked = self._check_blocked(now, scope)
                if blocked is not None:
                    self.calls_blocked += 1
            if prompt_hash is not None:
                alert = self._count_loop(now, scope, (provider, model, prompt_hash), span)
        if alert is not None:
            self._alert(*alert)
        if blocked is not None:
            raise blocked

    def after_call(self, data: Dict[str, Any], span: Optional[Span]) -> None:
        """Called with the finished ``llm_call`` data (cost included); emits budget alerts."""
        cost = _money(data.get("cost_usd"))
        now = time.time()
        owner = _scope_span(span)
        alerts: List[Tuple[str, str, Dict[str, Any], Optional[Span]]] = []
        with self._lock:
            scope = self._scope(owner)
            scope.calls += 1
            if cost is not None:
                scope.cost += cost
                self._hour.append((now, cost))
                self._hour_total += cost
            spent = self._hour_spent(now)
            limit = self.per_hour
            if (
                limit is not None
                and spent >= limit
                and (self._hour_alerted_at is None or now - self._hour_alerted_at >= HOUR)
            ):
                self._hour_alerted_at = now
                alerts.append(
                    (
                        f"LLM budget exceeded: ${spent:.2f} spent in the last hour (budget ${limit:.2f})",
                        "error",
                        self._details("hour", limit, spent, scope.name),
                        span,
                    )
                )
            limit = self.per_session
            if limit is not None and owner is not None and scope.cost >= limit and not scope.alerted:
                scope.alerted = True
                alerts.append(
                    (
                        f"LLM budget exceeded: ${scope.cost:.2f} spent in session"
                        f" {scope.name or owner.name!r} (budget ${limit:.2f})",
                        "error",
                        self._details("session", limit, scope.cost, scope.name),
                        span,
                    )
                )
        for alert in alerts:
            self._alert(*alert)

    # -- reading -----------------------------------------------------------------

    def totals(self, span: Span) -> Optional[Tuple[float, int]]:
        """``(cost_usd, llm_calls)`` counted against ``span`` when it owns a budget scope, else ``None``."""
        _settle_llm_calls()
        with self._lock:
            scope = self._scopes.get(span)
            if scope is None:
                return None
            return round(scope.cost, 10), scope.calls

    def hour_spent(self) -> float:
        """LLM spend of the last hour, in USD."""
        _settle_llm_calls()
        with self._lock:
            return self._hour_spent(time.time())

    # -- internals (lock held) ---------------------------------------------------

    def _scope(self, owner: Optional[Span]) -> _Scope:
        if owner is None:
            return self._process
        scope = self._scopes.get(owner)
        if scope is None:
            scope = _Scope(owner.session or owner.name)
            self._scopes[owner] = scope
        return scope

    def _hour_spent(self, now: float) -> float:
        q = self._hour
        cutoff = now - HOUR
        while q and q[0][0] <= cutoff:
            self._hour_total -= q.popleft()[1]
        if not q:
            self._hour_total = 0.0
        return max(0.0, self._hour_total)

    def _check_blocked(self, now: float, scope: _Scope) -> Optional[BudgetExceeded]:
        limit = self.per_hour
        if limit is not None:
            spent = self._hour_spent(now)
            if spent >= limit:
                return BudgetExceeded(
                    f"agentpulse: LLM budget of ${limit:.2f} per hour is spent (${spent:.2f}); call not sent",
                    budget="hour",
                    limit_usd=limit,
                    spent_usd=spent,
                    session=scope.name,
                )
        limit = self.per_session
        if limit is not None and scope is not self._process and scope.cost >= limit:
            return BudgetExceeded(
                f"agentpulse: LLM budget of ${limit:.2f} for session {scope.name!r} is spent"
                f" (${scope.cost:.2f}); call not sent",
                budget="session",
                limit_usd=limit,
                spent_usd=scope.cost,
                session=scope.name,
            )
        return None

    def _count_loop(
        self, now: float, scope: _Scope, key: LoopKey, span: Optional[Span]
    ) -> Optional[Tuple[str, str, Dict[str, Any], Optional[Span]]]:
        window = self.loop_window
        cutoff = now - window
        q = scope.loops.get(key)
        if q is None:
            if len(scope.loops) >= _MAX_LOOP_KEYS:
                self._prune_loops(scope, cutoff)
            q = scope.loops[key] = collections.deque()
        q.append(now)
        while q and q[0] <= cutoff:
            q.popleft()
        count = len(q)
        if count < self.loop_threshold:
            return None
        last = scope.loop_alerts.get(key)
        if last is not None and now - last < window:
            return None
        scope.loop_alerts[key] = now
        provider, model, prompt_hash = key
        title = f"Possible loop: the same prompt sent to {model or provider} {count} times in {window:g}s"
        details = {
            "guard": "loop",
            "provider": provider,
            "model": model,
            "prompt_hash": prompt_hash,
            "count": count,
            "window_s": window,
            "threshold": self.loop_threshold,
            "session": scope.name,
        }
        return title, "warning", details, span

    @staticmethod
    def _prune_loops(scope: _Scope, cutoff: float) -> None:
        for k in [k for k, q in scope.loops.items() if not q or q[-1] <= cutoff]:
            del scope.loops[k]
            scope.loop_alerts.pop(k, None)
        if len(scope.loops) >= _MAX_LOOP_KEYS:
            scope.loops.clear()
            scope.loop_alerts.clear()

    @staticmethod
    def _details(budget: str, limit: float, spent: float, session: Optional[str]) -> Dict[str, Any]:
        out: Dict[str, Any] = {
            "guard": "budget",
            "budget": budget,
            "limit_usd": limit,
            "spent_usd": round(spent, 6),
        }
        if budget == "hour":
            out["window_s"] = HOUR
        if session is not None:
            out["session"] = session
        return out

    def _alert(self, title: str, severity: str, details: Dict[str, Any], span: Optional[Span]) -> None:
        with capture_internal_errors("guards.alert"):
            self.alerts_sent += 1
            self.client.emit("alert", {"title": title, "severity": severity, "details": details}, span)
