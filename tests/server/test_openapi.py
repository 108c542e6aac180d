"""The OpenAPI document describes every route, and its ingest schema is the wire models'."""

from __future__ import annotations

import re
from typing import Any

from agentpulse.models import Batch
from agentpulse.server.openapi import openapi_spec


def test_every_route_is_documented(make_client: Any) -> None:
    client = make_client(auth=False)
    spec = client.get("/api/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    documented = set(spec["paths"])
    for route in client.app.routes:
        path = getattr(route, "path", "")
        if path in ("", "/", "/static", "/api/{rest:path}"):
            continue
        assert re.sub(r":\w+}", "}", path) in documented, path
    assert spec["servers"][0]["url"] == "http://testserver"


def test_ingest_body_is_the_batch_model() -> None:
    spec = openapi_spec()
    schemas = spec["components"]["schemas"]
    body = spec["paths"]["/v1/ingest"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/Batch"}
    assert set(schemas["Batch"]["properties"]) == set(Batch.model_fields)
    # Every reference resolves inside the document.
    text = str(spec)
    for name in re.findall(r"#/components/schemas/(\w+)", text):
        assert name in schemas, name
