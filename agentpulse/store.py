"""The read side of the local store: what the ``agentpulse`` command shows.

``Store`` opens the SQLite file written by ``LocalExporter`` read-only and
answers the questions the CLI asks: how much is in there, which traces ran
lately, what one trace looked like as a tree, what arrived since a given row.
A file that does not exist yet is an empty store, not an error.

Example::

    from agentpulse.store import Store

    with Store() as store:                      # ~/.agentpulse/agentpulse.db by default
        for t in store.recent_traces(limit=5):
            print(t.trace_id[:8], t.name, t.llm_calls, t.cost_usd)
        tree = store.trace_tree("3f2a9c")       # a unique prefix is enough
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union

__all__ = [
    "AmbiguousIdError",
    "Store",
    "StoreError",
    "StoreStatus",
    "StoredEvent",
    "TraceNode",
    "TraceSummary",
    "TraceTree",
    "default_store_path",
]

_COLUMNS = (
    "rowid, id, kind, ts, trace_id, span_id, parent_span_id, session, agent, pid, host,"
    " name, status, duration_ms, provider, model, input_tokens, output_tokens, cost_usd, data"
)
# The outermost event of each trace: a root span, or an LLM call made outside any span. Written
# exactly as the partial index `events_roots`, which SQLite is told to use (`_FROM_ROOTS`): left to
# itself it scans every span_start and llm_call through `events_kind_ts` instead, 100x slower.
_ROOTS = "parent_span_id IS NULL AND kind IN ('span_start', 'llm_call')"
_FROM_ROOTS = "FROM events INDEXED BY events_roots"
_MAX_ID = "\U0010ffff"  # sorts after every id: the upper bound of a prefix range


class StoreError(Exception):
    """The store file exists but cannot be read (corrupt, not a database, no permission)."""


class AmbiguousIdError(LookupError):
    """An id prefix matches more than one trace. ``candidates`` holds some of them."""

    def __init__(self, prefix: str, candidates: Sequence[str]) -> None:
        self.prefix = prefix
        self.candidates = list(candidates)
        shown = ", ".join(c[:12] for c in self.candidates)
        super().__init__(f"id prefix {prefix!r} matches several traces: {shown}; give more characters")


def default_store_path() -> Path:
    """The store file the SDK writes by default: option ``local_path`` or ``AGENTPULSE_LOCAL_PATH``.

    Example::

        print(default_store_path())   # ~/.agentpulse/agentpulse.db
    """
    from .config import Config, ConfigError

    try:
        return Config.resolve({}).local_path
    except ConfigError:
        # Another option in the environment is bad; the path alone is all a reader needs.
        raw = os.environ.get("AGENTPULSE_LOCAL_PATH", "")
        if raw:
            return Path(os.path.expanduser(raw))
        return Path(os.path.expanduser("~")) / ".agentpulse" / "agentpulse.db"


# -- result types ---------------------------------------------------------


@dataclass
class StoredEvent:
    """One row of the ``events`` table, with ``data`` decoded."""

    rowid: int
    id: str
    kind: str
    ts: float
    trace_id: Optional[str]
    span_id: Optional[str]
    parent_span_id: Optional[str]
    session: Optional[str]
    agent: Optional[str]
    pid: Optional[int]
    host: Optional[str]
    name: Optional[str]
    status: Optional[str]
    duration_ms: Optional[float]
    provider: Optional[str]
    model: Optional[str]
    input_tokens: Optional[int]
    output_tokens: Optional[int]
    cost_usd: Optional[float]
    data: Dict[str, Any]

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict of every column."""
        return asdict(self)


@dataclass
class StoreStatus:
    """What ``Store.status_counts()`` found."""

    path: str
    exists: bool
    size_bytes: int = 0
    schema_version: int = 0
    events: int = 0
    traces: int = 0
    llm_calls: int = 0
    input_tokens: Optional[int] = None
    output_tokens: Optional[int] = None
    cost_usd: Optional[float] = None
    calls_without_cost: int = 0
    errors: int = 0
    processes: int = 0
    agents: List[str] = field(default_factory=list)
    first_ts: Optional[float] = None
    last_ts: Optional[float] = None

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass
class TraceSummary:
    """One line of ``agentpulse sessions``: a trace and its totals.

    ``cost_usd`` is the sum of the known costs, ``None`` when no LLM call had
    one; ``cost_complete`` is False when some call's cost is unknown.
    ``status`` is the root span's (``success``, ``error``, ``cancelled``), or
    ``running`` while it has not ended.
    """

    trace_id: str
    name: str
    kind: str
    start: float
    duration_ms: Optional[float]
    status: str
    llm_calls: int = 0
    input_tokens: Optional[int] = None
    output_tokens: Optional[int] = None
    cost_usd: Optional[float] = None
    cost_complete: bool = True
    errors: int = 0
    events: int = 0
    session: Optional[str] = None
    agent: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass
class TraceNode:
    """A span of a trace (``kind`` is its span kind) or an LLM call (``kind == "llm_call"``).

    ``events`` are the point events (``event``, ``metric``, ``alert``, ``error``
    ...) recorded inside the span; ``children`` are the spans and LLM calls it
    contains. Both are in time order.
    """

    span_id: str
    parent_span_id: Optional[str]
    kind: str
    name: str
    start: float
    duration_ms: Optional[float] = None
    status: Optional[str] = None
    error: Optional[Dict[str, Any]] = None
    metadata: Dict[str, Any] = field(default_factory=dict)
    llm: Optional[Dict[str, Any]] = None
    events: List[StoredEvent] = field(default_factory=list)
    children: List[TraceNode] = field(default_factory=list)

    def walk(self) -> Iterable[TraceNode]:
        """This node and every node below it, depth first."""
        yield self
        for child in self.children:
            yield from child.walk()

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready nested dict."""
        return {
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id,
            "kind": self.kind,
            "name": self.name,
            "start": self.start,
            "duration_ms": self.duration_ms,
            "status": self.status,
            "error": self.error,
            "metadata": self.metadata,
            "llm": self.llm,
            "events": [_event_brief(e) for e in self.events],
            "children": [c.to_dict() for c in self.children],
        }


@dataclass
class TraceTree:
    """A whole trace: its summary, its root nodes and events whose span was not found."""

    summary: TraceSummary
    roots: List[TraceNode]
    loose: List[StoredEvent] = field(default_factory=list)

    @property
    def trace_id(self) -> str:
        return self.summary.trace_id

    def nodes(self) -> Iterable[TraceNode]:
        """Every node, depth first."""
        for root in self.roots:
            yield from root.walk()

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready nested dict."""
        return {
            "trace_id": self.summary.trace_id,
            "summary": self.summary.to_dict(),
            "roots": [r.to_dict() for r in self.roots],
            "loose_events": [_event_brief(e) for e in self.loose],
        }


def _event_brief(e: StoredEvent) -> Dict[str, Any]:
    return {"id": e.id, "kind": e.kind, "ts": e.ts, "name": e.name, "status": e.status, "data": e.data}


# -- the store --------------------------------------------------------------


class Store:
    """Read-only queries over the local store file.

    Opening is lazy; a missing file reads as empty (``exists`` is False). Use
    it as a context manager, or call ``close()``.

    Example::

        with Store(Path("/tmp/agent.db")) as store:
            print(store.status_counts().events)
    """

    def __init__(self, path: Optional[Union[str, Path]] = None) -> None:
        self.path = Path(os.path.expanduser(str(path))) if path is not None else default_store_path()
        self._conn: Optional[sqlite3.Connection] = None

    # -- plumbing ---------------------------------------------------------

    @property
    def exists(self) -> bool:
        """Whether the store file is there."""
        return self.path.is_file()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection, if one was opened."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def __repr__(self) -> str:
        return f"Store(path={str(self.path)!r})"

    def _connection(self) -> Optional[sqlite3.Connection]:
        if self._conn is not None:
            return self._conn
        if not self.exists:
            return None
        try:
            conn = sqlite3.connect(self.path.resolve().as_uri() + "?mode=ro", uri=True, timeout=10.0)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {self.path}: {exc}") from None
        try:
            conn.execute("PRAGMA busy_timeout = 10000")
            has_table = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'"
            ).fetchone()
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"cannot read {self.path}: {exc}") from None
        if not has_table:
            # A file with no events table yet (being created right now): read as empty, look again later.
            conn.close()
            return None
        self._conn = conn
        return conn

    def _query(self, sql: str, params: Sequence[Any] = ()) -> List[Tuple[Any, ...]]:
        conn = self._connection()
        if conn is None:
            return []
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read {self.path}: {exc}") from None

    # -- queries ----------------------------------------------------------

    def status_counts(self) -> StoreStatus:
        """Totals over the whole store: events, traces, LLM calls, tokens, cost, errors."""
        st = StoreStatus(path=str(self.path), exists=self.exists)
        if not st.exists:
            return st
        try:
            st.size_bytes = sum(
                os.path.getsize(p)
                for p in (str(self.path), f"{self.path}-wal")
                if os.path.exists(p)  # the WAL holds the latest writes until it is checkpointed
            )
        except OSError:
            pass
        if self._connection() is None:
            return st
        st.schema_version = int(self._query("PRAGMA user_version")[0][0])
        st.events = int(self._query("SELECT COUNT(*) FROM events")[0][0])
        # The first and last rows stored: found by rowid, where MIN(ts) / MAX(ts) would read every row.
        st.first_ts, st.last_ts = self._query(
            "SELECT (SELECT ts FROM events ORDER BY rowid LIMIT 1),"
            " (SELECT ts FROM events ORDER BY rowid DESC LIMIT 1)"
        )[0]
        st.traces = int(self._query(f"SELECT COUNT(*) {_FROM_ROOTS} WHERE {_ROOTS}")[0][0])
        calls, tin, tout, cost, unknown = self._query(
            "SELECT COUNT(*), SUM(input_tokens), SUM(output_tokens), SUM(cost_usd), SUM(cost_usd IS NULL)"
            " FROM events WHERE kind = 'llm_call'"
        )[0]
        st.llm_calls = int(calls)
        st.input_tokens, st.output_tokens, st.cost_usd = tin, tout, cost
        st.calls_without_cost = int(unknown or 0)
        st.errors = int(
            self._query(
                "SELECT COUNT(*) FROM events WHERE kind = 'error'"
                " OR (kind IN ('llm_call', 'span_end') AND status = 'error')"
            )[0][0]
        )
        st.processes = int(self._query("SELECT COUNT(*) FROM events WHERE kind = 'process_start'")[0][0])
        st.agents = [
            r[0]
            for r in self._query("SELECT DISTINCT agent FROM events WHERE kind = 'process_start' ORDER BY 1")
        ]
        st.agents = [a for a in st.agents if a is not None]
        return st

    def recent_traces(self, limit: int = 20, since: Optional[float] = None) -> List[TraceSummary]:
        """The newest traces first (at most ``limit``), started at or after ``since`` (Unix time)."""
        where = _ROOTS + ("" if since is None else " AND ts >= ?")
        params: List[Any] = [] if since is None else [since]
        roots = [
            self._event(r)
            for r in self._query(
                f"SELECT {_COLUMNS} {_FROM_ROOTS} WHERE {where} ORDER BY ts DESC LIMIT ?",
                [*params, max(0, limit)],
            )
        ]
        return self._summaries(roots)

    def resolve(self, prefix: str) -> Optional[str]:
        """The full trace id that ``prefix`` starts (like git's short ids), or ``None``.

        An LLM call made outside any span is a trace of its own, known by its
        span id. Raises ``AmbiguousIdError`` when several traces match.
        """
        p = prefix.strip().lower()
        if not p:
            return None
        found = [
            r[0]
            for r in self._query(
                "SELECT DISTINCT trace_id FROM events WHERE trace_id >= ? AND trace_id < ? LIMIT 5",
                [p, p + _MAX_ID],
            )
        ]
        found += [
            r[0]
            for r in self._query(
                f"SELECT DISTINCT span_id {_FROM_ROOTS} WHERE {_ROOTS} AND trace_id IS NULL"
                " AND span_id >= ? AND span_id < ? LIMIT 5",
                [p, p + _MAX_ID],
            )
        ]
        if p in found:
            return p
        if len(found) > 1:
            raise AmbiguousIdError(prefix, found)
        return found[0] if found else None

    def trace_tree(self, trace_id_or_prefix: str) -> Optional[TraceTree]:
        """The span tree of one trace, or ``None`` when no trace has that id (or prefix).

        Spans come from ``span_start`` / ``span_end`` events; an LLM call is a
        node of its own under the span it was made in; point events hang on
        their span. Raises ``AmbiguousIdError`` for a prefix of several traces.
        """
        tid = self.resolve(trace_id_or_prefix)
        if tid is None:
            return None
        rows = [
            self._event(r)
            for r in self._query(
                f"SELECT {_COLUMNS} FROM events WHERE trace_id = ? ORDER BY ts, rowid", [tid]
            )
        ]
        if not rows:
            rows = [
                self._event(r)
                for r in self._query(
                    f"SELECT {_COLUMNS} {_FROM_ROOTS} WHERE {_ROOTS} AND trace_id IS NULL AND span_id = ?",
                    [tid],
                )
            ]
        if not rows:
            return None
        roots, loose = _build_tree(rows)
        root_events = [e for e in rows if e.parent_span_id is None and e.kind in ("span_start", "llm_call")]
        summary = self._summaries(root_events[:1] or rows[:1])[0]
        return TraceTree(summary=summary, roots=roots, loose=loose)

    def last_rowid(self) -> int:
        """The row number of the newest event (0 for an empty store): where ``tail`` starts."""
        rows = self._query("SELECT MAX(rowid) FROM events")
        return int(rows[0][0] or 0) if rows else 0

    def tail(
        self, after_rowid: int = 0, limit: int = 1000, kinds: Optional[Sequence[str]] = None
    ) -> List[StoredEvent]:
        """Events stored after row ``after_rowid``, oldest first, at most ``limit``."""
        where, params = _kind_filter(kinds)
        rows = self._query(
            f"SELECT {_COLUMNS} FROM events WHERE rowid > ?{where} ORDER BY rowid LIMIT ?",
            [after_rowid, *params, max(0, limit)],
        )
        return [self._event(r) for r in rows]

    def last_events(self, n: int = 20, kinds: Optional[Sequence[str]] = None) -> List[StoredEvent]:
        """The newest ``n`` events, oldest first."""
        where, params = _kind_filter(kinds)
        where = where.replace(" AND ", " WHERE ", 1)
        rows = self._query(
            f"SELECT {_COLUMNS} FROM events{where} ORDER BY rowid DESC LIMIT ?", [*params, max(0, n)]
        )
        return [self._event(r) for r in reversed(rows)]

    # -- helpers ----------------------------------------------------------

    @staticmethod
    def _event(row: Tuple[Any, ...]) -> StoredEvent:
        try:
            data = json.loads(row[19]) if row[19] else {}
        except ValueError:
            data = {"_raw": row[19]}
        if not isinstance(data, dict):
            data = {"_value": data}
        return StoredEvent(
            rowid=row[0],
            id=row[1],
            kind=row[2],
            ts=row[3],
            trace_id=row[4],
            span_id=row[5],
            parent_span_id=row[6],
            session=row[7],
            agent=row[8],
            pid=row[9],
            host=row[10],
            name=row[11],
            status=row[12],
            duration_ms=row[13],
            provider=row[14],
            model=row[15],
            input_tokens=row[16],
            output_tokens=row[17],
            cost_usd=row[18],
            data=data,
        )

    def _summaries(self, roots: List[StoredEvent]) -> List[TraceSummary]:
        out: List[TraceSummary] = []
        traced = [r.trace_id for r in roots if r.trace_id]
        aggs: Dict[str, Tuple[Any, ...]] = {}
        ends: Dict[str, StoredEvent] = {}
        if traced:
            marks = ",".join("?" * len(traced))
            for row in self._query(
                "SELECT trace_id, MAX(ts), SUM(kind = 'llm_call'),"
                " SUM(CASE WHEN kind = 'llm_call' THEN input_tokens END),"
                " SUM(CASE WHEN kind = 'llm_call' THEN output_tokens END),"
                " SUM(CASE WHEN kind = 'llm_call' THEN cost_usd END),"
                " SUM(kind = 'llm_call' AND cost_usd IS NULL),"
                " SUM(kind = 'error' OR (kind IN ('llm_call', 'span_end') AND status = 'error')),"
                " SUM(kind IN ('event', 'metric', 'alert', 'error'))"
                f" FROM events WHERE trace_id IN ({marks}) GROUP BY trace_id",
                traced,
            ):
                aggs[row[0]] = row[1:]
            for row in self._query(
                f"SELECT {_COLUMNS} FROM events WHERE trace_id IN ({marks})"
                " AND +kind = 'span_end' AND parent_span_id IS NULL",  # `+`: look up by trace, not kind
                traced,
            ):
                ev = self._event(row)
                ends[str(ev.trace_id)] = ev
        for root in roots:
            if root.kind == "llm_call":
                out.append(_call_summary(root))
                continue
            tid = root.trace_id or root.span_id or root.id
            name = root.name or root.session or "?"
            s = TraceSummary(
                trace_id=tid,
                name=name,
                kind=str(root.data.get("span_kind") or root.kind),
                start=root.ts,
                duration_ms=None,
                status="running",
                session=root.session,
                agent=root.agent,
            )
            agg = aggs.get(tid)
            if agg is not None:
                last_ts, calls, tin, tout, cost, unknown, errors, events = agg
                s.llm_calls = int(calls or 0)
                s.input_tokens, s.output_tokens, s.cost_usd = tin, tout, cost
                s.cost_complete = not unknown
                s.errors = int(errors or 0)
                s.events = int(events or 0)
                s.duration_ms = max(0.0, (last_ts - root.ts) * 1000.0)
            end = ends.get(tid)
            if end is not None:
                s.status = end.status or "success"
                if end.duration_ms is not None:
                    s.duration_ms = end.duration_ms
            out.append(s)
        return out


def _kind_filter(kinds: Optional[Sequence[str]]) -> Tuple[str, List[Any]]:
    if not kinds:
        return "", []
    return f" AND kind IN ({','.join('?' * len(kinds))})", list(kinds)


def _call_summary(ev: StoredEvent) -> TraceSummary:
    label = "/".join(x for x in (ev.provider, ev.model) if x) or "llm call"
    return TraceSummary(
        trace_id=ev.trace_id or ev.span_id or ev.id,
        name=label,
        kind="llm_call",
        start=ev.ts,
        duration_ms=ev.duration_ms,
        status=ev.status or "success",
        llm_calls=1,
        input_tokens=ev.input_tokens,
        output_tokens=ev.output_tokens,
        cost_usd=ev.cost_usd,
        cost_complete=ev.cost_usd is not None,
        errors=int(ev.status == "error"),
        session=ev.session,
        agent=ev.agent,
    )


def _build_tree(rows: List[StoredEvent]) -> Tuple[List[TraceNode], List[StoredEvent]]:
    nodes: Dict[str, TraceNode] = {}
    started: Set[str] = set()
    order: List[TraceNode] = []
    points: List[StoredEvent] = []
    for ev in rows:
        if ev.kind in ("span_start", "span_end", "llm_call") and ev.span_id:
            node = nodes.get(ev.span_id)
            if node is None:
                node = TraceNode(
                    span_id=ev.span_id,
                    parent_span_id=ev.parent_span_id,
                    kind=str(ev.data.get("span_kind") or ev.kind),
                    name=ev.name or "?",
                    start=ev.ts,
                )
                nodes[ev.span_id] = node
                order.append(node)
            if ev.kind == "span_start":
                started.add(ev.span_id)
                node.start = ev.ts
                node.metadata = dict(ev.data.get("metadata") or {})
            elif ev.kind == "span_end":
                node.status = ev.status
                node.duration_ms = ev.duration_ms
                node.error = ev.data.get("error")
                if node.name == "?" and ev.name:
                    node.name = ev.name
                if ev.span_id not in started and ev.duration_ms:
                    node.start = ev.ts - ev.duration_ms / 1000.0  # the start event is missing
            else:
                node.kind = "llm_call"
                node.name = "/".join(x for x in (ev.provider, ev.model) if x) or "llm call"
                node.status = ev.status
                node.duration_ms = ev.duration_ms
                node.error = ev.data.get("error")
                node.llm = ev.data
        else:
            points.append(ev)
    roots: List[TraceNode] = []
    for node in order:
        parent = nodes.get(node.parent_span_id) if node.parent_span_id else None
        if parent is not None and parent is not node:
            parent.children.append(node)
        else:
            roots.append(node)
    loose: List[StoredEvent] = []
    for ev in points:
        owner = nodes.get(ev.span_id) if ev.span_id else None
        if owner is not None:
            owner.events.append(ev)
        else:
            loose.append(ev)
    for node in order:
        node.children.sort(key=lambda n: n.start)
    roots.sort(key=lambda n: n.start)
    return roots, loose
