"""End to end: a real program, a real collector on 127.0.0.1, no shutdown() call.

Each test starts an ``http.server`` collector in a thread and stops it before
returning; the instrumented program runs in a subprocess and exits on its own,
so what arrives was sent by the exit flush.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Dict, List, Optional, Type

from agentpulse.models import Batch


class Collector:
    """A tiny ingest endpoint: decompresses, keeps headers and bodies, answers 200."""

    def __init__(self) -> None:
        self.requests: List[Dict[str, Any]] = []
        self._lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with collector._lock:
                    collector.requests.append(
                        {
                            "path": self.path,
                            "headers": dict(self.headers),
                            "body": json.loads(gzip.decompress(body)),
                        }
                    )
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})

    def __enter__(self) -> Collector:
        self._thread.start()
        return self

    def __exit__(
        self, et: Optional[Type[BaseException]], ev: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    @property
    def events(self) -> List[Dict[str, Any]]:
        with self._lock:
            return [e for r in self.requests for e in r["body"]["events"]]


def run_program(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTPULSE_")}
    env["PYTHONWARNINGS"] = "default"  # show any warning we might cause (unclosed sockets, ...)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_every_event_arrives_at_exit_without_shutdown() -> None:
    program = """
        import sys
        import agentpulse

        agentpulse.init(endpoint=sys.argv[1], api_key="k-123", agent_name="e2e", flush_interval=60)
        with agentpulse.session("job"):
            for i in range(250):
                agentpulse.event("step", {"i": i})
            agentpulse.metric("items", 250)
        print("done")
    """
    with Collector() as collector:
        proc = run_program(program, collector.url)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == "done\n" and proc.stderr == ""
        requests = list(collector.requests)
    assert requests
    for req in requests:
        assert req["path"] == "/v1/ingest"
        headers = {k.lower(): v for k, v in req["headers"].items()}
        assert headers["authorization"] == "Bearer k-123"
        assert headers["content-encoding"] == "gzip"
        assert headers["content-type"] == "application/json"
        Batch.model_validate(req["body"])
        assert req["body"]["agent"] == "e2e"
    events = [e for r in requests for e in r["body"]["events"]]
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "process_start" and kinds[-1] == "process_stop"
    assert kinds.count("span_start") == 1 and kinds.count("span_end") == 1 and kinds.count("metric") == 1
    steps = [e["data"]["data"]["i"] for e in events if e["kind"] == "event"]
    assert steps == list(range(250))
    assert len({e["id"] for e in events}) == len(events)
    pid = requests[0]["body"]["process"]["pid"]
    assert events[0]["data"]["fingerprint"]["pid"] == pid
    stop = events[-1]["data"]
    assert stop["uptime_s"] >= 0 and stop["counters"]["dropped"] == 0


def test_unhandled_exception_arrives_with_its_span() -> None:
    program = """
        import sys
        import agentpulse

        agentpulse.init(endpoint=sys.argv[1], flush_interval=60)
        with agentpulse.session("failing-job"):
            raise RuntimeError("boom")
    """
    with Collector() as collector:
        proc = run_program(program, collector.url)
        events = collector.events
    assert proc.returncode == 1
    assert "RuntimeError: boom" in proc.stderr  # the previous hook still printed it
    (start,) = [e for e in events if e["kind"] == "span_start"]
    (error,) = [e for e in events if e["kind"] == "error"]
    assert error["data"]["type"] == "RuntimeError" and error["data"]["message"] == "boom"
    assert error["data"]["traceback"].endswith("RuntimeError: boom\n")
    assert error["trace_id"] == start["trace_id"] and error["span_id"] == start["span_id"]
    assert error["session"] == "failing-job"


def test_dead_collector_never_holds_up_exit() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    program = """
        import sys
        import agentpulse

        agentpulse.init(endpoint=sys.argv[1], shutdown_timeout=1)
        for i in range(100):
            agentpulse.event("step", {"i": i})
        print("done")
    """
    t = time.monotonic()
    proc = run_program(program, f"http://127.0.0.1:{port}")
    assert time.monotonic() - t < 15  # generous: interpreter start + a 1 s exit flush
    assert proc.returncode == 0 and proc.stdout == "done\n" and proc.stderr == ""


def test_silent_collector_never_holds_up_exit() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)  # accepts (the kernel completes the handshake) but never answers
    try:
        program = """
            import sys
            import agentpulse

            agentpulse.init(endpoint=sys.argv[1], shutdown_timeout=1, flush_interval=0.05)
            for i in range(100):
                agentpulse.event("step", {"i": i})
            print("done")
        """
        t = time.monotonic()
        proc = run_program(program, f"http://127.0.0.1:{server.getsockname()[1]}")
        assert time.monotonic() - t < 15
        assert proc.returncode == 0 and proc.stdout == "done\n" and proc.stderr == ""
    finally:
        server.close()
