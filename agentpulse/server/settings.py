"""Settings of ``agentpulse serve``: where to store, how to listen, limits and alert rules.

Example::

    from agentpulse.server.settings import AlertRules, ServerSettings

    settings = ServerSettings(
        store="/srv/agentpulse.db",
        retention_days=30,
        webhook_url="https://chat.example.com/hooks/T000/B000/XXX",
        rules=AlertRules(cost_per_day=25.0, error_rate=0.2),
    )
"""

from __future__ import annotations

import ipaddress
import os
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DEFAULT_PORT", "AlertRules", "ServerSettings", "is_loopback"]

#: The port ``agentpulse serve`` listens on by default (4318 is left to OpenTelemetry collectors).
DEFAULT_PORT = 8484


def is_loopback(host: str) -> bool:
    """True when ``host`` only accepts connections from this machine."""
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class AlertRules(BaseModel):
    """When the collector raises an alert on its own (each one is also delivered to the webhook)."""

    model_config = ConfigDict(extra="forbid")

    cost_per_hour: Optional[float] = Field(
        default=None, gt=0, description="Alert when LLM spend in one clock hour passes this."
    )
    cost_per_day: Optional[float] = Field(
        default=None, gt=0, description="Alert when LLM spend in one day passes this."
    )
    error_rate: Optional[float] = Field(
        default=None,
        gt=0,
        le=1,
        description="Alert when this share of LLM calls fails within `error_rate_window`.",
    )
    error_rate_window: float = Field(
        default=900.0, gt=0, description="Seconds over which the error rate is measured."
    )
    error_rate_min_calls: int = Field(
        default=10, ge=1, description="Calls needed in the window before the rate counts."
    )
    crons: bool = Field(default=True, description="Alert when a cron monitor is missed, failing or overran.")
    sdk_alerts: bool = Field(
        default=True, description="Deliver alerts raised by the SDKs (budgets, loops, cron timeouts)."
    )


class ServerSettings(BaseModel):
    """Everything ``agentpulse serve`` can be told; the CLI flags map onto these fields."""

    model_config = ConfigDict(extra="forbid")

    store: str = Field(description="A SQLite file path or a `postgresql://` DSN.")
    host: str = Field(default="127.0.0.1", description="Interface to listen on.")
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    auth: bool = Field(
        default=True, description="Require an API key on `POST /v1/ingest` (False: `--no-auth`)."
    )
    read_auth: Optional[bool] = Field(
        default=None,
        description="Require an API key on `/api/*` too. Default: only when listening beyond loopback.",
    )
    retention_days: Optional[float] = Field(
        default=None, gt=0, description="Delete events older than this many days."
    )
    max_body_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1024, description="Largest request body accepted (413 above)."
    )
    max_decompressed_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024,
        description="Largest body once un-gzipped (413 above: a gzip bomb costs nothing).",
    )
    max_queue_events: int = Field(
        default=100_000,
        ge=1,
        description="Events accepted but not yet committed; above it ingest answers 503.",
    )
    max_inflight_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1024 * 1024,
        description="Request bytes held in memory at once; above it 503.",
    )
    parse_workers: Optional[int] = Field(
        default=None,
        ge=0,
        description="Processes validating large batches (0: in-process). Default: one per CPU, at most 4.",
    )
    parse_threshold_bytes: int = Field(
        default=32 * 1024, ge=0, description="Bodies at least this large (inflated) go to a parse worker."
    )
    commit_max_events: int = Field(
        default=20_000, ge=1, description="Events written per transaction at most."
    )
    webhook_url: Optional[str] = Field(
        default=None, description="Where alerts are POSTed (Slack/Discord-compatible JSON)."
    )
    public_url: Optional[str] = Field(
        default=None, description="The dashboard's address as others reach it, for links in alerts."
    )
    webhook_timeout: float = Field(default=10.0, gt=0)
    webhook_max_attempts: int = Field(default=6, ge=1, le=50)
    webhook_backoff: float = Field(
        default=1.0, gt=0, description="First retry delay in seconds; doubles each attempt."
    )
    alert_interval: float = Field(
        default=60.0, gt=0, description="Seconds between two evaluations of the alert rules."
    )
    maintenance_interval: float = Field(
        default=5.0, gt=0, description="Seconds between key refreshes and retention runs."
    )
    rules: AlertRules = Field(default_factory=lambda: AlertRules())

    def effective_parse_workers(self) -> int:
        """How many parse worker processes to use (0 on a single CPU)."""
        if self.parse_workers is not None:
            return self.parse_workers
        cpus = os.cpu_count() or 1
        return 0 if cpus < 2 else min(cpus, 4)

    def reads_need_key(self) -> bool:
        """Whether ``/api/*`` requests must carry a key."""
        if not self.auth:
            return False
        if self.read_auth is not None:
            return self.read_auth
        return not is_loopback(self.host)
