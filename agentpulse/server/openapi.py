"""The OpenAPI 3.1 description of the collector's API, served at ``/api/openapi.json``.

The ingest body's schema is generated from the wire models, so it cannot
drift from what ``POST /v1/ingest`` validates against.

Example::

    from agentpulse.server.openapi import openapi_spec
    spec = openapi_spec()
    assert "/api/traces" in spec["paths"]
"""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional

from .._version import __version__

__all__ = ["openapi_spec"]


def _p(
    name: str, desc: str, typ: str = "string", *, where: str = "query", required: bool = False, **extra: Any
) -> Dict[str, Any]:
    schema: Dict[str, Any] = {"type": typ, **extra}
    return {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "description": desc,
        "schema": schema,
    }


def _ref(name: str) -> Dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _ok(desc: str, schema: Dict[str, Any]) -> Dict[str, Any]:
    return {"description": desc, "content": {"application/json": {"schema": schema}}}


_ERR = _ok("An error", _ref("Error"))
_READ_ERRORS = {"400": _ERR, "401": _ERR, "503": _ERR}

_TIME = [
    _p("since", "Only what started at or after this Unix time (seconds).", "number"),
    _p("until", "Only what started before this Unix time (seconds).", "number"),
]
_TZ = _p("tz_offset", "The caller's UTC offset in minutes east of UTC; decides where days start.", "number")

_NUM = {"type": ["number", "null"]}
_INT = {"type": ["integer", "null"]}
_STR = {"type": ["string", "null"]}


def _obj(props: Dict[str, Any], required: Optional[List[str]] = None) -> Dict[str, Any]:
    out: Dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    return out


def _components() -> Dict[str, Any]:
    from ..models import Batch

    batch = Batch.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = batch.pop("$defs", {})
    schemas: Dict[str, Any] = {**copy.deepcopy(defs), "Batch": batch}
    schemas.update(
        {
            "Error": _obj(
                {
                    "error": {
                        "type": "string",
                        "description": "A short code: unauthorized, invalid_batch, ...",
                    },
                    "message": {"type": "string"},
                    "field": {
                        "type": "string",
                        "description": "422 only: the first bad field, e.g. events[3].data.input_tokens",
                    },
                    "errors": {
                        "type": "array",
                        "items": _obj(
                            {
                                "field": {"type": "string"},
                                "message": {"type": "string"},
                                "type": {"type": "string"},
                            }
                        ),
                    },
                },
                ["error", "message"],
            ),
            "IngestResult": _obj(
                {
                    "accepted": {"type": "integer", "description": "Events in the batch."},
                    "stored": {"type": "integer", "description": "Events new to the store."},
                    "duplicates": {
                        "type": "integer",
                        "description": "Events already stored (a retried batch).",
                    },
                },
                ["accepted", "stored", "duplicates"],
            ),
            "TraceSummary": _obj(
                {
                    "trace_id": {"type": "string"},
                    "root_kind": {
                        "type": "string",
                        "description": "session, cron, agent, task, trace, llm_call, ...",
                    },
                    "name": _STR,
                    "session": _STR,
                    "agent": _STR,
                    "host": _STR,
                    "start": {"type": "number"},
                    "duration_ms": _NUM,
                    "status": {"type": "string", "enum": ["success", "error", "cancelled", "running"]},
                    "llm_calls": {"type": "integer"},
                    "cost_usd": _NUM,
                    "input_tokens": _INT,
                    "output_tokens": _INT,
                    "errors": {"type": "integer"},
                }
            ),
            "TracePage": _obj(
                {
                    "traces": {"type": "array", "items": _ref("TraceSummary")},
                    "limit": {"type": "integer"},
                    "offset": {"type": "integer"},
                    "has_more": {"type": "boolean"},
                }
            ),
            "SpanNode": _obj(
                {
                    "span_id": {"type": "string"},
                    "parent_span_id": _STR,
                    "type": {"type": "string", "enum": ["span", "llm_call"]},
                    "span_kind": _STR,
                    "name": _STR,
                    "start": {"type": "number"},
                    "end": _NUM,
                    "duration_ms": _NUM,
                    "status": {"type": "string"},
                    "error": {"type": ["object", "null"]},
                    "metadata": {"type": "object"},
                    "llm": {
                        "type": "object",
                        "description": "llm_call nodes: the call's data (model, tokens, cost, ...).",
                    },
                    "events": {"type": "array", "items": {"type": "object"}},
                    "children": {"type": "array", "items": _ref("SpanNode")},
                }
            ),
            "TraceTree": _obj(
                {
                    "trace_id": {"type": "string"},
                    "name": _STR,
                    "status": _STR,
                    "session": _STR,
                    "agent": _STR,
                    "start": {"type": "number"},
                    "end": {"type": "number"},
                    "duration_ms": {"type": "number"},
                    "llm_calls": {"type": "integer"},
                    "cost_usd": _NUM,
                    "input_tokens": {"type": "integer"},
                    "output_tokens": {"type": "integer"},
                    "errors": {"type": "integer"},
                    "truncated": {"type": "boolean"},
                    "spans": {"type": "array", "items": _ref("SpanNode")},
                    "events": {
                        "type": "array",
                        "items": {"type": "object"},
                        "description": "Events outside any known span.",
                    },
                }
            ),
            "CostReport": _obj(
                {
                    "group_by": {"type": "array", "items": {"type": "string"}},
                    "rows": {
                        "type": "array",
                        "items": _obj(
                            {
                                "day": {"type": "string", "format": "date"},
                                "model": {"type": "string"},
                                "agent": {"type": "string"},
                                "provider": {"type": "string"},
                                "session": {"type": "string"},
                                "calls": {"type": "integer"},
                                "cost_usd": {"type": "number"},
                                "input_tokens": _INT,
                                "output_tokens": _INT,
                                "unpriced": {
                                    "type": "integer",
                                    "description": "Calls whose cost is unknown.",
                                },
                                "errors": {"type": "integer"},
                            }
                        ),
                    },
                    "total": {"type": "object"},
                }
            ),
            "CronRun": _obj(
                {
                    "type": {"type": "string", "enum": ["run", "missed"]},
                    "check_in_id": _STR,
                    "start": _NUM,
                    "end": _NUM,
                    "expected": _NUM,
                    "status": {"type": "string", "enum": ["in_progress", "ok", "error", "missed"]},
                    "duration_ms": _NUM,
                    "overran": {"type": "boolean"},
                    "trace_id": _STR,
                }
            ),
            "CronMonitor": _obj(
                {
                    "monitor": {"type": "string"},
                    "status": {"type": "string", "enum": ["ok", "missed", "overran", "failing"]},
                    "running": {"type": "boolean"},
                    "schedule": _STR,
                    "timezone": _STR,
                    "max_runtime": _NUM,
                    "grace": {"type": "number"},
                    "last_run": {"anyOf": [_ref("CronRun"), {"type": "null"}]},
                    "next_expected": _NUM,
                    "runs": {"type": "integer"},
                    "missed": {"type": "integer"},
                    "failures": {"type": "integer"},
                    "history": {"type": "array", "items": _ref("CronRun")},
                }
            ),
            "Alert": _obj(
                {
                    "id": {"type": "string"},
                    "source": {"type": "string", "enum": ["rule", "sdk"]},
                    "rule": {
                        "type": "string",
                        "description": (
                            "cost_per_hour, cost_per_day, error_rate, cron_missed, cron_failing,"
                            " cron_overran, sdk"
                        ),
                    },
                    "ts": {"type": "number"},
                    "title": {"type": "string"},
                    "severity": {"type": "string"},
                    "agent": _STR,
                    "details": {"type": "object"},
                    "delivery": {"type": "string", "enum": ["none", "pending", "sent", "failed"]},
                    "attempts": {"type": "integer"},
                    "last_error": _STR,
                    "delivered_at": _NUM,
                }
            ),
        }
    )
    return schemas


def openapi_spec(server_url: Optional[str] = None) -> Dict[str, Any]:
    """The OpenAPI document of the collector."""
    spec: Dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "AgentPulse collector",
            "version": __version__,
            "description": (
                "Ingest batches from AgentPulse SDKs and query what agents did. Every `/api/*` call may need "
                "`Authorization: Bearer <api key>` (keys: `agentpulse keys create`)."
            ),
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "components": {
            "schemas": _components(),
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "An AgentPulse API key."}
            },
        },
        "security": [{"apiKey": []}],
        "paths": {
            "/v1/ingest": {
                "post": {
                    "summary": "Store a batch of events",
                    "description": (
                        "Gzip (`Content-Encoding: gzip`) or plain JSON. Idempotent on event `id`. "
                        "413 past the body or decompressed size limit; 503 with `Retry-After` under overload."
                    ),
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("Batch")}},
                    },
                    "responses": {
                        "200": _ok("Stored", _ref("IngestResult")),
                        "400": _ERR,
                        "401": _ERR,
                        "413": _ERR,
                        "415": _ERR,
                        "422": _ok(
                            "The batch does not match the wire contract; `field` names the first bad field",
                            _ref("Error"),
                        ),
                        "503": _ERR,
                    },
                }
            },
            "/api/overview": {
                "get": {
                    "summary": "Spend today and this week, calls, error rate, cron health, recent alerts",
                    "parameters": [_TZ],
                    "responses": {"200": _ok("Overview", {"type": "object"}), **_READ_ERRORS},
                }
            },
            "/api/traces": {
                "get": {
                    "summary": "Traces (sessions, cron runs, ...) newest first",
                    "parameters": [
                        _p("agent", "Agent name."),
                        _p("session", "Session name."),
                        _p("status", "Root status.", enum=["success", "error", "cancelled", "running"]),
                        *_TIME,
                        _p("min_cost", "Only traces that cost at least this (USD).", "number"),
                        _p("max_cost", "Only traces that cost at most this (USD).", "number"),
                        _p("limit", "Page size (1-500, default 50).", "integer"),
                        _p("offset", "Traces to skip.", "integer"),
                    ],
                    "responses": {"200": _ok("A page of traces", _ref("TracePage")), **_READ_ERRORS},
                }
            },
            "/api/traces/{trace_id}": {
                "get": {
                    "summary": "One trace as a tree of spans and LLM calls",
                    "parameters": [
                        _p("trace_id", "The trace id (or the span id of a lone LLM call).", where="path")
                    ],
                    "responses": {"200": _ok("The tree", _ref("TraceTree")), "404": _ERR, **_READ_ERRORS},
                }
            },
            "/api/costs": {
                "get": {
                    "summary": "LLM spend, calls and tokens by day, model, agent, provider or session",
                    "parameters": [
                        _p(
                            "group_by",
                            "Comma-separated: day, model, agent, provider, session (default day,model).",
                        ),
                        *_TIME,
                        _p("agent", "Only this agent."),
                        _TZ,
                    ],
                    "responses": {"200": _ok("Costs", _ref("CostReport")), **_READ_ERRORS},
                }
            },
            "/api/crons": {
                "get": {
                    "summary": "Cron monitors with their computed status",
                    "responses": {
                        "200": _ok(
                            "Monitors", _obj({"monitors": {"type": "array", "items": _ref("CronMonitor")}})
                        ),
                        **_READ_ERRORS,
                    },
                }
            },
            "/api/crons/{monitor}": {
                "get": {
                    "summary": "One monitor with its run history; missed runs are marked",
                    "parameters": [_p("monitor", "The monitor's name.", where="path")],
                    "responses": {
                        "200": _ok("The monitor", _ref("CronMonitor")),
                        "404": _ERR,
                        **_READ_ERRORS,
                    },
                }
            },
            "/api/alerts": {
                "get": {
                    "summary": "Alerts newest first, with their webhook delivery state",
                    "parameters": [_TIME[0], _p("limit", "At most this many (default 100).", "integer")],
                    "responses": {
                        "200": _ok(
                            "Alerts",
                            _obj(
                                {
                                    "alerts": {"type": "array", "items": _ref("Alert")},
                                    "total": {"type": "integer"},
                                }
                            ),
                        ),
                        **_READ_ERRORS,
                    },
                }
            },
            "/api/memory": {
                "get": {
                    "summary": "Memory snapshots, and per file its latest state and size history",
                    "parameters": [
                        _p("agent", "Only this agent."),
                        _p("limit", "Snapshots (default 200).", "integer"),
                    ],
                    "responses": {"200": _ok("Snapshots", {"type": "object"}), **_READ_ERRORS},
                }
            },
            "/api/facets": {
                "get": {
                    "summary": "Agents and session names seen lately, for filters",
                    "responses": {"200": _ok("Facets", {"type": "object"}), **_READ_ERRORS},
                }
            },
            "/api/stats": {
                "get": {
                    "summary": "The collector's own counters: queue depth, stored, duplicates, rejected",
                    "responses": {"200": _ok("Counters", {"type": "object"}), **_READ_ERRORS},
                }
            },
            "/api/openapi.json": {
                "get": {
                    "summary": "This document",
                    "security": [],
                    "responses": {"200": _ok("OpenAPI 3.1", {"type": "object"})},
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness: the process answers and the store is reachable",
                    "security": [],
                    "responses": {"200": _ok("Healthy", {"type": "object"}), "503": _ERR},
                }
            },
        },
    }
    if server_url:
        spec["servers"] = [{"url": server_url}]
    return spec
