"""The collector's ASGI app (Starlette): ingest, the JSON query API, the dashboard.

Routes:

* ``POST /v1/ingest``: a batch from an SDK (see ``ingest.py`` for the rules);
* ``GET /api/...``: overview, traces, one trace, costs, crons, alerts, memory,
  facets, stats, and ``/api/openapi.json`` describing them all;
* ``GET /``: the dashboard (plain HTML, CSS and JS from ``static/``; no CDN);
* ``GET /healthz``.

Example::

    import uvicorn
    from agentpulse.server.app import create_app
    from agentpulse.server.settings import ServerSettings

    app = create_app(ServerSettings(store="/tmp/agentpulse.db", auth=False))
    uvicorn.run(app, host="127.0.0.1", port=8484)
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Dict, List, Optional

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._internal import internal_errors, logger
from .._version import __version__
from .auth import bearer_token
from .ingest import BodyReader, IngestError, overloaded, too_large
from .openapi import openapi_spec
from .query import COST_DIMENSIONS, TRACE_STATUSES
from .service import Collector
from .settings import ServerSettings
from .storage.base import Storage, StorageError

__all__ = ["STATIC_DIR", "create_app"]

STATIC_DIR = Path(__file__).resolve().parent / "static"

_SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


class _SecurityHeaders:
    """Pure ASGI middleware: the dashboard may load nothing but its own files."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + _SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BadParam(Exception):
    """A query parameter the API cannot use (400)."""


def _error(
    status: int, error: str, message: str, headers: Optional[Dict[str, str]] = None, **extra: Any
) -> JSONResponse:
    return JSONResponse({"error": error, "message": message, **extra}, status_code=status, headers=headers)


def _float(request: Request, name: str) -> Optional[float]:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise BadParam(f"query parameter '{name}' must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise BadParam(f"query parameter '{name}' must be a finite number")
    return value


def _int(request: Request, name: str, default: int) -> int:
    value = _float(request, name)
    return default if value is None else int(value)


def _str(request: Request, name: str) -> Optional[str]:
    raw = request.query_params.get(name)
    return raw if raw else None


def _collector(request: Request) -> Collector:
    collector: Collector = request.app.state.collector
    return collector


Handler = Callable[[Request], Awaitable[Response]]


def _read_api(fn: Callable[[Request, Collector], Awaitable[Any]]) -> Handler:
    """Wrap a query endpoint: read auth, 400 on bad parameters, 503 when the store fails, JSON out."""

    async def endpoint(request: Request) -> Response:
        c = _collector(request)
        if c.settings.reads_need_key() and not await _authorised(request, c):
            return _unauthorised()
        try:
            result = await fn(request, c)
        except BadParam as exc:
            return _error(400, "bad_request", str(exc))
        except StorageError as exc:
            return _error(503, "store_unavailable", str(exc), headers={"Retry-After": "5"})
        if isinstance(result, Response):
            return result
        return JSONResponse(result)

    endpoint.__name__ = fn.__name__
    return endpoint


async def _authorised(request: Request, c: Collector) -> bool:
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        return False
    if c.keys.verify(token) is not None:
        return True
    # Maybe created a moment ago by `agentpulse keys create` in another process.
    try:
        return await run_in_threadpool(c.keys.lookup, token) is not None
    except StorageError:
        return False


def _unauthorised() -> JSONResponse:
    return _error(
        401,
        "unauthorized",
        "missing or invalid API key: send 'Authorization: Bearer <key>'"
        " (create one with `agentpulse keys create`)",
        headers={"WWW-Authenticate": 'Bearer realm="agentpulse"'},
    )


# -- ingest -----------------------------------------------------------------------------


async def ingest(request: Request) -> Response:
    c = _collector(request)
    s = c.settings
    if s.auth and not await _authorised(request, c):
        return _unauthorised()
    reader: Optional[BodyReader] = None
    try:
        if c.writer.full():
            raise overloaded("ingest queue is full; retry shortly")
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > s.max_body_bytes:
            raise too_large(f"body larger than {s.max_body_bytes} bytes")
        encoding = (request.headers.get("content-encoding") or "identity").strip().lower()
        if encoding not in ("gzip", "x-gzip", "identity", ""):
            raise IngestError(
                415, "unsupported_encoding", f"Content-Encoding {encoding!r}: send gzip or plain JSON"
            )
        reader = BodyReader(
            c.budget,
            max_body=s.max_body_bytes,
            max_decompressed=s.max_decompressed_bytes,
            gzip=encoding in ("gzip", "x-gzip"),
        )
        body = await reader.read(request.stream())
        n, rows = await c.parser.parse(body)
        del body
        future = c.writer.submit(rows, asyncio.get_running_loop())
        if future is None:
            raise overloaded("ingest queue is full; retry shortly")
        try:
            stored = await future
        except StorageError as exc:
            raise overloaded(f"the store is busy: {exc}") from None
        return JSONResponse({"accepted": n, "stored": stored, "duplicates": n - stored})
    except IngestError as exc:
        if exc.status >= 500:
            logger.debug("agentpulse serve: ingest answered %d: %s", exc.status, exc)
        return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)
    finally:
        if reader is not None:
            reader.release()


# -- query API ---------------------------------------------------------------------------


@_read_api
async def api_overview(request: Request, c: Collector) -> Any:
    tz = _float(request, "tz_offset") or 0.0
    return await run_in_threadpool(lambda: c.query.overview(tz_offset=tz))


@_read_api
async def api_traces(request: Request, c: Collector) -> Any:
    status = _str(request, "status")
    if status is not None and status not in TRACE_STATUSES:
        raise BadParam(f"query parameter 'status' must be one of {', '.join(TRACE_STATUSES)}")
    kwargs: Dict[str, Any] = {
        "agent": _str(request, "agent"),
        "session": _str(request, "session"),
        "status": status,
        "since": _float(request, "since"),
        "until": _float(request, "until"),
        "min_cost": _float(request, "min_cost"),
        "max_cost": _float(request, "max_cost"),
        "limit": _int(request, "limit", 50),
        "offset": _int(request, "offset", 0),
    }
    return await run_in_threadpool(lambda: c.query.traces(**kwargs))


@_read_api
async def api_trace(request: Request, c: Collector) -> Any:
    trace_id = str(request.path_params["trace_id"])
    tree = await run_in_threadpool(c.query.trace, trace_id)
    if tree is None:
        return _error(404, "not_found", f"no trace {trace_id!r}")
    return tree


@_read_api
async def api_costs(request: Request, c: Collector) -> Any:
    raw = _str(request, "group_by") or "day,model"
    dims = [d.strip() for d in raw.split(",") if d.strip()]
    bad = [d for d in dims if d not in COST_DIMENSIONS]
    if bad or not dims:
        raise BadParam(f"query parameter 'group_by' takes {', '.join(COST_DIMENSIONS)}; got {raw!r}")
    since, until, agent = _float(request, "since"), _float(request, "until"), _str(request, "agent")
    tz = _float(request, "tz_offset") or 0.0
    return await run_in_threadpool(
        lambda: c.query.costs(dims, since=since, until=until, agent=agent, tz_offset=tz)
    )


@_read_api
async def api_crons(request: Request, c: Collector) -> Any:
    monitors = await run_in_threadpool(lambda: c.query.crons(with_history=False))
    return {"monitors": monitors}


@_read_api
async def api_cron(request: Request, c: Collector) -> Any:
    name = str(request.path_params["monitor"])
    monitor = await run_in_threadpool(c.query.cron, name)
    if monitor is None:
        return _error(404, "not_found", f"no cron monitor {name!r}")
    return monitor


@_read_api
async def api_alerts(request: Request, c: Collector) -> Any:
    since, limit = _float(request, "since"), _int(request, "limit", 100)
    return await run_in_threadpool(lambda: c.query.alerts(since=since, limit=limit))


@_read_api
async def api_memory(request: Request, c: Collector) -> Any:
    agent, limit = _str(request, "agent"), _int(request, "limit", 200)
    return await run_in_threadpool(lambda: c.query.memory(agent=agent, limit=limit))


@_read_api
async def api_facets(request: Request, c: Collector) -> Any:
    return await run_in_threadpool(c.query.facets)


@_read_api
async def api_stats(request: Request, c: Collector) -> Any:
    return c.stats()


async def api_openapi(request: Request) -> Response:
    return JSONResponse(openapi_spec(str(request.base_url).rstrip("/")))


async def healthz(request: Request) -> Response:
    c = _collector(request)
    try:
        await run_in_threadpool(c.storage.fetch, "SELECT 1 AS ok")
    except StorageError as exc:
        return _error(503, "store_unavailable", str(exc))
    body: Dict[str, Any] = {"ok": True, "version": __version__}
    if not c.settings.reads_need_key():  # where the data lives is for those who may read it
        body["store"] = c.storage.describe()
    return JSONResponse(body)


async def dashboard(request: Request) -> Response:
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def api_not_found(request: Request) -> Response:
    return _error(404, "not_found", f"no API route {request.url.path}")


# -- the app ----------------------------------------------------------------------------


def create_app(settings: ServerSettings, *, storage: Optional[Storage] = None) -> Starlette:
    """The collector as an ASGI app. Its lifespan starts and stops the collector's threads.

    ``storage`` is for tests and embedding: when given, the app uses it and leaves it open.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        collector = Collector(settings, storage)
        await run_in_threadpool(collector.start)
        app.state.collector = collector
        try:
            yield
        finally:
            await run_in_threadpool(collector.stop)

    routes: List[Any] = [
        Route("/", dashboard, methods=["GET", "HEAD"]),
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/v1/ingest", ingest, methods=["POST"]),
        Route("/api/openapi.json", api_openapi, methods=["GET"]),
        Route("/api/overview", api_overview, methods=["GET"]),
        Route("/api/traces", api_traces, methods=["GET"]),
        Route("/api/traces/{trace_id}", api_trace, methods=["GET"]),
        Route("/api/costs", api_costs, methods=["GET"]),
        Route("/api/crons", api_crons, methods=["GET"]),
        Route("/api/crons/{monitor:path}", api_cron, methods=["GET"]),
        Route("/api/alerts", api_alerts, methods=["GET"]),
        Route("/api/memory", api_memory, methods=["GET"]),
        Route("/api/facets", api_facets, methods=["GET"]),
        Route("/api/stats", api_stats, methods=["GET"]),
        Route("/api/{rest:path}", api_not_found, methods=["GET", "POST"]),
        Mount("/static", app=StaticFiles(directory=str(STATIC_DIR)), name="static"),
    ]

    async def on_error(request: Request, exc: Exception) -> Response:
        internal_errors.note(f"server.{request.url.path}", exc)
        return _error(500, "internal_error", f"{type(exc).__name__}: the collector failed; see its log")

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={Exception: on_error})
    app.add_middleware(_SecurityHeaders)
    return app
