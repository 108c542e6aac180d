"""docs/any-language.md: its example body is valid, and its curl and Node senders really deliver it."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from agentpulse.models import Batch

DOC = Path(__file__).resolve().parents[2] / "docs" / "any-language.md"
KEY = "ap_test_key"


def block(lang: str, containing: str = "") -> str:
    """The first fenced ``lang`` block of the page that contains ``containing``."""
    text = DOC.read_text(encoding="utf-8")
    fence = f"```{lang}\n"
    start = 0
    while True:
        start = text.index(fence, start) + len(fence)
        body = text[start : text.index("```", start)]
        if containing in body:
            return body


class Collector:
    """A stand-in collector on 127.0.0.1: checks the key, inflates gzip, validates with the models."""

    def __init__(self) -> None:
        self.batches: List[Batch] = []
        self.headers: List[Dict[str, str]] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                collector.headers.append({k.lower(): v for k, v in self.headers.items()})
                status, answer = 200, {"accepted": 0}
                if self.path != "/v1/ingest" or self.headers.get("Authorization") != f"Bearer {KEY}":
                    status, answer = 401, {"error": "unauthorized"}
                else:
                    if self.headers.get("Content-Encoding") == "gzip":
                        raw = gzip.decompress(raw)
                    batch = Batch.model_validate_json(raw)
                    collector.batches.append(batch)
                    answer = {"accepted": len(batch.events), "stored": len(batch.events), "duplicates": 0}
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    c.thread.start()
    try:
        yield c
    finally:
        c.server.shutdown()
        c.server.server_close()
        c.thread.join(timeout=5)


def test_the_documented_body_is_a_valid_batch() -> None:
    batch = Batch.model_validate(json.loads(block("json")))
    kinds = [e.kind for e in batch.events]
    assert kinds == ["span_start", "llm_call", "span_end"]
    session, call, _ = batch.events
    assert call.parent_span_id == session.span_id and call.trace_id == session.trace_id


def test_curl_posts_the_documented_body(collector: Collector, tmp_path: Path) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    (tmp_path / "batch.json").write_text(block("json"))
    command = block("bash", containing="curl")
    env = dict(os.environ, AGENTPULSE_ENDPOINT=collector.url, AGENTPULSE_API_KEY=KEY)
    out = subprocess.run(
        ["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"accepted": 3, "stored": 3, "duplicates": 0}
    assert len(collector.batches) == 1


def test_the_node_sender_delivers_a_valid_gzipped_batch(collector: Collector, tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    script = tmp_path / "agentpulse-sender.js"
    script.write_text(block("js"))
    env = dict(os.environ, AGENTPULSE_ENDPOINT=collector.url, AGENTPULSE_API_KEY=KEY)
    out = subprocess.run([node, str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    (batch,) = collector.batches
    assert collector.headers[0]["content-encoding"] == "gzip"
    assert batch.agent == "report-bot"
    start, call, end = batch.events
    assert (start.kind, call.kind, end.kind) == ("span_start", "llm_call", "span_end")
    assert call.parent_span_id == start.span_id and call.trace_id == start.trace_id
    assert end.span_id == start.span_id and end.data.status == "success"  # type: ignore[union-attr]
    assert call.data.input_tokens == 1200  # type: ignore[union-attr]
    assert len({e.id for e in batch.events}) == 3
