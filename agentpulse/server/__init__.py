"""The self-hosted collector: ``agentpulse serve``.

One process accepts ``POST /v1/ingest`` from agents, stores events in SQLite
(the same file the SDK's local exporter writes) or PostgreSQL, answers the
JSON query API under ``/api/``, serves the dashboard and delivers alerts to a
webhook. Install it with the ``server`` extra.

Example::

    from agentpulse.server.app import create_app
    from agentpulse.server.settings import ServerSettings

    app = create_app(ServerSettings(store="/tmp/agentpulse.db", auth=False))
    # uvicorn.run(app, host="127.0.0.1", port=8484)
"""

from __future__ import annotations

__all__: list[str] = []
