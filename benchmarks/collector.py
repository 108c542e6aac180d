"""Benchmark of ``agentpulse serve``: many concurrent senders against the collector on SQLite.

Run::

    python benchmarks/collector.py                     # 100 senders, 200,000 events, ~20-40 s
    python benchmarks/collector.py --senders 20 --events 50000 --json
    python benchmarks/collector.py --db postgresql://agentpulse:agentpulse@127.0.0.1:55432/agentpulse_test

What happens:

- ``agentpulse serve`` starts in its own process on 127.0.0.1 (API key auth on,
  SQLite in a temporary directory unless ``--db`` says otherwise).
- This process prepares every request body first (gzip JSON batches of
  ``--batch-size`` events, a realistic mix: session and task spans, LLM calls,
  events, metrics, cron check-ins), so building them costs nothing while timed.
- ``--senders`` asyncio tasks, each on its own keep-alive connection, POST the
  batches as fast as the collector answers. A 503 is honoured (``Retry-After``)
  and the same batch is sent again, as the SDK does.
- At the end the store is counted: every event sent must be there exactly once.

Reported: events/s ingested (all events / wall time from the first request to
the last answer), the p50 / p99 / max latency of one ingest request, the 503
answers, and peak RSS (``VmHWM``) of the collector's process and, summed, of its
parse worker processes. Timing starts once the collector's parse workers are up
(a collector runs for days; their start-up, about a second, is not ingest).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agentpulse.reporter import new_event_id  # noqa: E402

MODELS = [("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4-20250514")]


def _hex(n: int) -> str:
    return f"{random.getrandbits(n * 4):0{n}x}"


def make_events(n: int, now: float) -> List[Dict[str, Any]]:
    """``n`` events shaped like a busy agent's: sessions with tasks, LLM calls and events inside."""
    out: List[Dict[str, Any]] = []
    while len(out) < n:
        trace, root, task = _hex(32), _hex(16), _hex(16)
        session = random.choice(["daily-email", "research", "triage", "support-chat"])
        base = {"trace_id": trace, "session": session}
        t = now - random.random() * 86400
        out.append(
            {
                "id": new_event_id(),
                "kind": "span_start",
                "ts": t,
                "span_id": root,
                **base,
                "data": {
                    "name": session,
                    "span_kind": "session",
                    "metadata": {"user_id": "u_42", "inbox": "main"},
                },
            }
        )
        out.append(
            {
                "id": new_event_id(),
                "kind": "span_start",
                "ts": t + 0.01,
                "span_id": task,
                "parent_span_id": root,
                **base,
                "data": {"name": "classify", "span_kind": "task", "metadata": {}},
            }
        )
        for i in range(6):
            provider, model = random.choice(MODELS)
            out.append(
                {
                    "id": new_event_id(),
                    "kind": "llm_call",
                    "ts": t + 0.02 + i,
                    "span_id": _hex(16),
                    "parent_span_id": task,
                    **base,
                    "data": {
                        "provider": provider,
                        "operation": "chat",
                        "model": model,
                        "response_model": model,
                        "input_tokens": random.randint(100, 4000),
                        "output_tokens": random.randint(10, 800),
                        "cache_read_tokens": 0,
                        "cache_write_tokens": 0,
                        "reasoning_tokens": 0,
                        "usage_estimated": False,
                        "latency_ms": random.uniform(200, 4000),
                        "time_to_first_token_ms": None,
                        "cost_usd": random.uniform(0.0001, 0.05),
                        "cost_source": "table",
                        "status": random.choice(["success"] * 19 + ["error"]),
                        "streaming": False,
                        "finish_reason": "stop",
                        "error": None,
                    },
                }
            )
        out.append(
            {
                "id": new_event_id(),
                "kind": "event",
                "ts": t + 6.5,
                "span_id": task,
                "parent_span_id": root,
                **base,
                "data": {"name": "labelled", "data": {"urgent": 2, "later": 5, "spam": 1}},
            }
        )
        out.append(
            {
                "id": new_event_id(),
                "kind": "metric",
                "ts": t + 6.6,
                "span_id": task,
                "parent_span_id": root,
                **base,
                "data": {"name": "inbox_size", "value": 8, "tags": {"folder": "inbox"}},
            }
        )
        out.append(
            {
                "id": new_event_id(),
                "kind": "span_end",
                "ts": t + 7,
                "span_id": task,
                "parent_span_id": root,
                **base,
                "data": {
                    "name": "classify",
                    "span_kind": "task",
                    "status": "success",
                    "duration_ms": 6990.0,
                    "error": None,
                    "metadata": {},
                },
            }
        )
        out.append(
            {
                "id": new_event_id(),
                "kind": "span_end",
                "ts": t + 7.2,
                "span_id": root,
                **base,
                "data": {
                    "name": session,
                    "span_kind": "session",
                    "status": "success",
                    "duration_ms": 7200.0,
                    "error": None,
                    "metadata": {},
                },
            }
        )
    return out[:n]


def make_bodies(total: int, batch_size: int) -> List[Tuple[bytes, int]]:
    """(gzip body, event count) per request."""
    header = {
        "agent": "bench-agent",
        "sdk_version": "0.1.0",
        "process": {
            "pid": 4242,
            "host": "bench",
            "python": "3.11",
            "os": "Linux",
            "libraries": {"openai": "3.57.0"},
        },
    }
    now = time.time()
    bodies = []
    done = 0
    while done < total:
        n = min(batch_size, total - done)
        body = json.dumps({**header, "events": make_events(n, now)}, separators=(",", ":")).encode()
        bodies.append((gzip.compress(body, compresslevel=6), n))
        done += n
    return bodies


class Sender:
    """One keep-alive HTTP/1.1 connection speaking just enough of the protocol."""

    def __init__(self, host: str, port: int, key: str) -> None:
        self.host, self.port, self.key = host, port, key
        self.reader: Optional[asyncio.StreamReader] = None
        self.writer: Optional[asyncio.StreamWriter] = None

    async def post(self, body: bytes) -> Tuple[int, Dict[str, str], bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (
            f"POST /v1/ingest HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            "Content-Type: application/json\r\nContent-Encoding: gzip\r\n"
            f"Authorization: Bearer {self.key}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("connection closed")
        status = int(status_line.split()[1])
        headers: Dict[str, str] = {}
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            k, _, v = line.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        payload = await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, headers, payload

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
        self.reader = self.writer = None


async def blast(
    port: int, key: str, bodies: List[Tuple[bytes, int]], senders: int
) -> Tuple[float, List[float], int, int]:
    queue: asyncio.Queue[Tuple[bytes, int]] = asyncio.Queue()
    for item in bodies:
        queue.put_nowait(item)
    latencies: List[float] = []
    refused = 0
    stored = 0

    async def worker() -> None:
        nonlocal refused, stored
        conn = Sender("127.0.0.1", port, key)
        try:
            while True:
                try:
                    body, _ = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                while True:
                    t0 = time.perf_counter()
                    try:
                        status, headers, payload = await conn.post(body)
                    except (ConnectionError, OSError, asyncio.IncompleteReadError):
                        await conn.close()
                        await asyncio.sleep(0.05)
                        continue
                    latencies.append(time.perf_counter() - t0)
                    if status == 200:
                        stored += json.loads(payload)["stored"]
                        break
                    if status in (429, 503):
                        refused += 1
                        await asyncio.sleep(float(headers.get("retry-after", "1")))
                        continue
                    raise RuntimeError(f"ingest answered {status}: {payload[:300]!r}")
        finally:
            await conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(senders)))
    return time.perf_counter() - start, latencies, refused, stored


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peak_rss_mb(pid: int) -> Optional[float]:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def children(pid: int) -> List[int]:
    """Processes whose parent is ``pid`` (the parse workers and multiprocessing's tracker)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces; the fields after its closing parenthesis do not.
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid:
            out.append(int(entry.name))
    return out


def percentile(values: List[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100.0 * (len(ordered) - 1)))]


def run(args: argparse.Namespace) -> Dict[str, Any]:
    import requests

    tmp = tempfile.mkdtemp(prefix="agentpulse-bench-")
    db = args.db or str(Path(tmp) / "collector.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTPULSE_")}
    cli = [sys.executable, "-m", "agentpulse"]
    created = subprocess.run(
        [*cli, "keys", "create", "--name", "bench", "--db", db, "--json"],
        capture_output=True,
        text=True,
        env=env,
    )
    if created.returncode != 0:
        raise SystemExit(created.stderr)
    key = json.loads(created.stdout)["key"]
    prepared = time.perf_counter()
    bodies = make_bodies(args.events, args.batch_size)
    prepare_s = time.perf_counter() - prepared
    port = free_port()
    log_path = Path(tmp) / "serve.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [*cli, "serve", "--db", db, "--port", str(port), "--log-level", "warning"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    if requests.get(url + "/healthz", timeout=1).status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("collector did not start:\n" + log_path.read_text())
                time.sleep(0.05)
            # Measure the steady state: wait until the parse workers the collector starts are up.
            auth = {"Authorization": f"Bearer {key}"}
            while True:
                stats = requests.get(url + "/api/stats", headers=auth, timeout=5).json()
                if stats["parse_workers_ready"] or not stats["parse_workers"] or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            idle_rss = peak_rss_mb(server.pid)
            wall, latencies, refused, stored = asyncio.run(blast(port, key, bodies, args.senders))
            rss = peak_rss_mb(server.pid)
            stats = requests.get(url + "/api/stats", headers=auth, timeout=10).json()
            workers_rss = sum(peak_rss_mb(child) or 0.0 for child in children(server.pid))
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(60)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    count = _count(db)
    total = sum(n for _, n in bodies)
    return {
        "store": "postgresql" if db.startswith("postgres") else "sqlite",
        "senders": args.senders,
        "batch_size": args.batch_size,
        "events": total,
        "requests": len(bodies),
        "body_kib_gzip": round(sum(len(b) for b, _ in bodies) / len(bodies) / 1024, 1),
        "prepare_s": round(prepare_s, 2),
        "wall_s": round(wall, 2),
        "events_per_s": round(total / wall),
        "latency_ms_p50": round(percentile(latencies, 50) * 1000, 1),
        "latency_ms_p99": round(percentile(latencies, 99) * 1000, 1),
        "latency_ms_max": round(max(latencies) * 1000, 1),
        "refused_503": refused,
        "stored_reported": stored,
        "stored_in_db": count,
        "lost": total - count,
        "collector_commits": stats.get("ingest", {}).get("commits"),
        "parse_workers": stats.get("parse_workers"),
        "collector_rss_idle_mb": round(idle_rss or 0, 1),
        "collector_rss_peak_mb": round(rss or 0, 1),
        "parse_workers_rss_peak_mb": round(workers_rss, 1),
        "cpus": os.cpu_count(),
    }


def _count(db: str) -> int:
    from agentpulse.server.storage import open_storage

    store = open_storage(db)
    try:
        return int(store.fetch("SELECT COUNT(*) AS n FROM events WHERE agent = 'bench-agent'")[0]["n"])
    finally:
        store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--senders", type=int, default=100)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=100, help="events per request (the SDK's default)")
    parser.add_argument(
        "--db", default=None, help="SQLite path or postgresql:// DSN (default: a fresh SQLite file)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        width = max(len(k) for k in result)
        for k, v in result.items():
            print(f"{k:<{width}}  {v}")
    return 0 if result["lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
