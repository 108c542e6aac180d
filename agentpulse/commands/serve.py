"""``agentpulse serve``: the collector, query API and dashboard in one process.

Example::

    $ agentpulse serve                                  # dashboard on http://127.0.0.1:8484
    $ agentpulse serve --no-auth                        # local single-user: no API key asked
    $ agentpulse serve --host 0.0.0.0 --db postgresql://agentpulse@db/agentpulse \\
          --retention-days 30 --webhook-url https://chat.example.com/hooks/XXX --alert-cost-per-day 20
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Optional

from . import out
from .keys import add_db_option, resolve_db

__all__ = ["WEBHOOK_ENV", "build_settings", "register", "run"]

#: Environment variable with the webhook URL (kept off the command line, where `ps` shows it).
WEBHOOK_ENV = "AGENTPULSE_SERVE_WEBHOOK_URL"


def register(subparsers: Any) -> None:
    """Add the ``serve`` command."""
    from ..server.settings import DEFAULT_PORT

    p = subparsers.add_parser(
        "serve",
        help="run the collector: ingest API, query API, dashboard and alerts",
        description=(
            "Accept POST /v1/ingest from agents, store events (SQLite or PostgreSQL), serve the dashboard "
            "and the JSON query API, and deliver alerts to a webhook. Needs the `server` extra."
        ),
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    add_db_option(p)
    p.add_argument(
        "--no-auth",
        action="store_true",
        help="accept ingest without an API key (local single-user use only)",
    )
    p.add_argument(
        "--read-auth",
        action="store_true",
        help="require an API key for /api/* even on 127.0.0.1 (always required on other interfaces)",
    )
    p.add_argument("--retention-days", type=float, default=None, help="delete events older than this")
    p.add_argument("--webhook-url", default=None, help=f"POST alerts here (default: ${WEBHOOK_ENV})")
    p.add_argument("--public-url", default=None, help="the dashboard's address, for links in alerts")
    p.add_argument("--alert-cost-per-hour", type=float, default=None, metavar="USD")
    p.add_argument("--alert-cost-per-day", type=float, default=None, metavar="USD")
    p.add_argument(
        "--alert-error-rate",
        type=float,
        default=None,
        metavar="SHARE",
        help="e.g. 0.2: 20%% of LLM calls failed",
    )
    p.add_argument("--alert-error-window", type=float, default=900.0, metavar="SECONDS")
    p.add_argument("--no-cron-alerts", action="store_true", help="do not alert on missed or failing crons")
    p.add_argument("--no-sdk-alerts", action="store_true", help="do not forward alerts raised by the SDKs")
    p.add_argument("--alert-interval", type=float, default=60.0, metavar="SECONDS")
    p.add_argument("--max-body-mb", type=float, default=10.0, help="largest request body (default 10)")
    p.add_argument("--max-decompressed-mb", type=float, default=64.0, help="largest body once un-gzipped")
    p.add_argument("--max-queue-events", type=int, default=100_000, help="events waiting for disk before 503")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=run)


def build_settings(args: argparse.Namespace) -> Any:
    """The ``ServerSettings`` the flags describe."""
    from ..server.settings import AlertRules, ServerSettings

    return ServerSettings(
        store=resolve_db(args),
        host=args.host,
        port=args.port,
        auth=not args.no_auth,
        read_auth=True if args.read_auth else None,
        retention_days=args.retention_days,
        webhook_url=args.webhook_url or os.environ.get(WEBHOOK_ENV) or None,
        public_url=args.public_url,
        alert_interval=args.alert_interval,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        max_decompressed_bytes=int(args.max_decompressed_mb * 1024 * 1024),
        max_queue_events=args.max_queue_events,
        rules=AlertRules(
            cost_per_hour=args.alert_cost_per_hour,
            cost_per_day=args.alert_cost_per_day,
            error_rate=args.alert_error_rate,
            error_rate_window=args.alert_error_window,
            crons=not args.no_cron_alerts,
            sdk_alerts=not args.no_sdk_alerts,
        ),
    )


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; exit code 2 when the extra is missing or a flag is invalid."""
    try:
        import uvicorn

        from ..server.app import create_app
    except ImportError as exc:
        _err(f"agentpulse serve needs the server extra ({exc.name} is missing):")
        _err("  pip install 'agentpulse[server]'")
        return 2
    from pydantic import ValidationError

    from ..server.settings import is_loopback
    from ..server.storage.base import StorageError

    try:
        settings = build_settings(args)
    except ValidationError as exc:
        err = exc.errors()[0]
        _err(f"agentpulse serve: {'.'.join(str(p) for p in err['loc'])}: {err['msg']}")
        return 2
    keys = _count_keys(settings.store)
    if isinstance(keys, StorageError):
        _err(f"agentpulse serve: cannot open the store: {keys}")
        return 1
    url = f"http://{settings.host if ':' not in settings.host else '[' + settings.host + ']'}:{settings.port}"
    out(f"AgentPulse collector: {url}  (dashboard at /, ingest at /v1/ingest)")
    shown = _safe_dsn(settings.store) if settings.store.startswith("postgres") else settings.store
    out(f"  store: {shown}")
    if not settings.auth:
        out("  auth: OFF (--no-auth): anyone who can reach this port can send and read events")
        if not is_loopback(settings.host):
            _err("agentpulse serve: WARNING: --no-auth on a non-loopback interface exposes your data")
    else:
        reads = "ingest and /api/*" if settings.reads_need_key() else "ingest (reads open on loopback)"
        out(f"  auth: API key required for {reads}; {keys} active key(s)")
        if keys == 0:
            out("  no API key yet: create one with `agentpulse keys create`, or restart with --no-auth")
    if settings.webhook_url:
        out("  alerts: delivered to the configured webhook")
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=args.log_level,
        access_log=args.log_level == "debug",
        limit_concurrency=2048,
        timeout_keep_alive=30,
        server_header=False,
        ws="none",
        lifespan="on",
    )
    try:
        uvicorn.Server(config).run()
    except KeyboardInterrupt:
        # uvicorn re-raises Ctrl-C once it has shut down gracefully: that is a normal stop.
        pass
    out("AgentPulse collector stopped.")
    return 0


def _count_keys(store: str) -> Any:
    from ..server.auth import KeyStore
    from ..server.storage import open_storage
    from ..server.storage.base import StorageError

    try:
        storage = open_storage(store, read_pool_size=1)
    except StorageError as exc:
        return exc
    try:
        storage.migrate()
        return len(KeyStore(storage).list(include_revoked=False))
    except StorageError as exc:
        return exc
    finally:
        storage.close()


def _safe_dsn(dsn: str) -> Optional[str]:
    from ..server.storage import open_storage

    try:
        storage = open_storage(dsn)
    except Exception:
        return "postgresql"
    try:
        return storage.describe()
    finally:
        storage.close()
