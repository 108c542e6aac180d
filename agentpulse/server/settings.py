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

    cost_per_hour: Optional[float] = Field(None, gt=0, description="Alert when LLM spend in one clock hour passes this.")
    cost_per_day: Optional[float] = Field(None, gt=0, description="Alert when LLM spend in one day passes this.")
    error_rate: Optional[float] = Field(
        None, gt=0, le=1, description="Alert when this share of LLM calls fails within `error_rate_window`."
    )
    error_rate_window: float = Field(900.0, gt=0, description="Seconds over which the error rate is measured.")
    error_rate_min_calls: int = Field(10, ge=1, description="Calls needed in the window before the rate counts.")
    crons: bool = Field(True, description="Alert when a cron monitor is missed, failing or overran.")
    sdk_alerts: bool = Field(True, description="Deliver alerts raised by the SDKs (budgets, loops, cron timeouts).")


class ServerSettings(BaseModel):
    """Everything ``agentpulse serve`` can be told; the CLI flags map onto these fields."""

    model_config = ConfigDict(extra="forbid")

    store: str = Field(description="A SQLite file path or a `postgresql://` DSN.")
    host: str = Field("127.0.0.1", description="Interface to listen on.")
    port: int = Field(DEFAULT_PORT, ge=0, le=65535)
    auth: bool = Field(True, description="Require an API key on `POST /v1/ingest` (False: `--no-auth`).")
    read_auth: Optional[bool] = Field(
        None,
        description="Require an API key on `/api/*` too. Default: only when listening beyond loopback.",
    )
    retention_days: Optional[float] = Field(None, gt=0, description="Delete events older than this many days.")
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="Largest request body accepted (413 above).")
    max_decompressed_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="Largest body once un-gzipped (413 above: a gzip bomb costs nothing)."
    )
    max_queue_events: int = Field(
        100_000, ge=1, description="Events accepted but not yet committed; above it ingest answers 503."
    )
    max_inflight_bytes: int = Field(
        256 * 1024 * 1024, ge=1024 * 1024, description="Request bytes held in memory at once; above it 503."
    )
    commit_max_events: int = Field(20_000, ge=1, description="Events written per transaction at most.")
    webhook_url: Optional[str] = Field(None, description="Where alerts are POSTed (Slack/Discord-compatible JSON).")
    public_url: Optional[str] = Field(None, description="The dashboard's address as others reach it, for links in alerts.")
    webhook_timeout: float = Field(10.0, gt=0)
    webhook_max_attempts: int = Field(6, ge=1, le=50)
    webhook_backoff: float = Field(1.0, gt=0, description="First retry delay in seconds; doubles each attempt.")
    alert_interval: float = Field(60.0, gt=0, description="Seconds between two evaluations of the alert rules.")
    maintenance_interval: float = Field(5.0, gt=0, description="Seconds between key refreshes and retention runs.")
    rules: AlertRules = Field(default_factory=AlertRules)

    def reads_need_key(self) -> bool:
        """Whether ``/api/*`` requests must carry a key."""
        if not self.auth:
            return False
        if self.read_auth is not None:
            return self.read_auth
        return not is_loopback(self.host)
