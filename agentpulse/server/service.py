"""The collector's moving parts, started and stopped together by the web app's lifespan.

``Collector`` owns the storage, the API keys, the ingest writer thread, the
alert engine and one maintenance thread (key refresh, ``last_used_at``,
retention pruning, alert rules). The HTTP layer (``app.py``) only talks to it.

Example::

    collector = Collector(ServerSettings(store="/tmp/agentpulse.db", auth=False))
    collector.start()
    print(collector.query.overview())
    collector.stop()
"""

from __future__ import annotations

import threading
import time
from typing import Any, Dict, Optional

from .._internal import capture_internal_errors, logger
from .alerts import AlertEngine
from .auth import KeyStore
from .ingest import IngestWriter, MemoryBudget, ParsePool
from .query import Query
from .settings import ServerSettings
from .storage import open_storage
from .storage.base import Storage, StorageError

__all__ = ["Collector"]

_PRUNE_EVERY = 3600.0
_OPTIMIZE_EVERY = 600.0


class Collector:
    """Everything behind the HTTP API. ``start()`` once, ``stop()`` once."""

    def __init__(self, settings: ServerSettings, storage: Optional[Storage] = None) -> None:
        self.settings = settings
        self._owns_storage = storage is None
        self.storage: Storage = storage if storage is not None else open_storage(settings.store)
        self.keys = KeyStore(self.storage)
        self.query = Query(self.storage)
        self.writer = IngestWriter(
            self.storage,
            max_queue_events=settings.max_queue_events,
            commit_max_events=settings.commit_max_events,
        )
        self.budget = MemoryBudget(settings.max_inflight_bytes)
        self.parser = ParsePool(settings.effective_parse_workers(), settings.parse_threshold_bytes)
        self.alerts = AlertEngine(self.storage, settings)
        self.started_at = time.time()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._last_alerts = 0.0
        self._last_prune = 0.0
        self._last_optimize = 0.0
        self.pruned = 0

    def start(self) -> None:
        """Migrate the store, load the keys and start the writer, delivery and maintenance threads."""
        version = self.storage.migrate()
        self.keys.refresh()
        self.writer.start()
        self.parser.start()
        self.alerts.start()
        self._thread = threading.Thread(target=self._maintain, name="agentpulse-maintenance", daemon=True)
        self._thread.start()
        logger.info("agentpulse serve: store %s (collector schema v%d)", self.storage.describe(), version)

    def stop(self, timeout: float = 10.0) -> None:
        """Commit what was accepted, stop every thread and close the store (when this collector opened it)."""
        self._stop.set()
        self.parser.close()
        self.writer.stop(timeout)
        self.alerts.stop(min(timeout, 5.0))
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        with capture_internal_errors("server.keys.flush"):
            try:
                self.keys.flush_usage()
            except StorageError:
                pass
        if self._owns_storage:
            self.storage.close()

    # -- maintenance ------------------------------------------------------

    def _maintain(self) -> None:
        while not self._stop.is_set():
            self.maintain_once()
            self._stop.wait(self.settings.maintenance_interval)

    def maintain_once(self, now: Optional[float] = None) -> None:
        """One round: keys, key usage, retention (hourly), planner statistics, alert rules."""
        now = time.time() if now is None else now
        for name, step in (
            ("keys", self._keys),
            ("retention", self._retention),
            ("statistics", self._optimize),
            ("alerts", self._alert_rules),
        ):
            with capture_internal_errors(f"server.maintenance.{name}"):
                try:
                    step(now)
                except StorageError as exc:
                    logger.warning("agentpulse serve: %s skipped: %s", name, exc)

    def _keys(self, now: float) -> None:
        self.keys.refresh()
        self.keys.flush_usage()

    def _retention(self, now: float) -> None:
        days = self.settings.retention_days
        if days is None or now - self._last_prune < _PRUNE_EVERY:
            return
        self._last_prune = now
        n = self.storage.prune(now - days * 86400.0)
        self.pruned += n
        if n:
            logger.info("agentpulse serve: retention removed %d rows older than %g days", n, days)

    def _optimize(self, now: float) -> None:
        if now - self._last_optimize < _OPTIMIZE_EVERY:
            return
        self._last_optimize = now
        self.storage.optimize()

    def _alert_rules(self, now: float) -> None:
        if now - self._last_alerts < self.settings.alert_interval:
            return
        self._last_alerts = now
        self.alerts.evaluate(now)

    def stats(self) -> Dict[str, Any]:
        """Counters for ``/api/stats`` and the benchmark."""
        delivered, failed = self.alerts.stats()
        return {
            "store": self.storage.describe(),
            "uptime_s": time.time() - self.started_at,
            "queued_events": self.writer.queued_events,
            "inflight_bytes": self.budget.used,
            "parse_workers": self.parser.workers,
            "parse_workers_ready": self.parser.ready,
            "ingest": dict(self.writer.counters),
            "alerts_delivered": delivered,
            "alerts_failed": failed,
            "pruned": self.pruned,
        }
