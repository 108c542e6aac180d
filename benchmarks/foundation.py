"""Benchmarks of the foundation: caller cost, delivery throughput, memory in an outage, startup.

Run::

    python benchmarks/foundation.py            # about 30-60 s, prints a table

Rows:

- ``event() on the caller's thread``: median cost of one ``agentpulse.event()``
  call, next to a plain function building the same dict in the same run. The
  worker is kept asleep while timing (large batch size and interval), so this
  is the cost the caller pays, not the worker's.
- ``local store`` / ``HTTP collector``: events per second end to end, from the
  first ``event()`` call until ``flush()`` returned with everything delivered.
  The collector is a tiny threaded ``http.server`` in another process, on
  127.0.0.1, that decompresses each body and counts its events.
- ``RSS with 10,000 events queued in an outage``: extra resident memory of a
  process whose collector is down, once the 10,000 events wait in the queue.
- ``import + init() over bare python``: median wall time of
  ``python -c "import agentpulse; agentpulse.init(...)"`` minus ``python -c pass``,
  with a warm bytecode cache (as after ``pip install``).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

Row = Tuple[str, str, str, str]


# -- helpers -------------------------------------------------------------------


def clean_env(**extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTPULSE_")}
    env.update(extra)
    return env


def run_python(code: str, *args: str, env: Optional[Dict[str, str]] = None, timeout: float = 120) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark subprocess failed:\n{proc.stderr}")
    return proc.stdout


def median_us(fn: Callable[[str, Dict[str, Any]], Any], rounds: int = 60, calls: int = 1000) -> float:
    timings: List[float] = []
    data = {"i": 1, "user": "u-42", "ok": True}
    perf = time.perf_counter
    for _ in range(rounds):
        t = perf()
        for _ in range(calls):
            fn("step", data)
        timings.append((perf() - t) / calls * 1e6)
    return statistics.median(timings)


# -- 1. caller cost ----------------------------------------------------------------


def bench_caller() -> List[Row]:
    code = """
        import json, time, statistics, sys
        sys.path.insert(0, sys.argv[1])
        sys.argv = sys.argv[:1]
        from benchmarks.foundation import median_us
        import agentpulse

        def baseline(name, data=None):
            # What any recording function does at least: build the event dict.
            payload = dict(data) if data else {}
            return {"kind": "event", "ts": time.time(), "data": {"name": name, "data": payload}}

        agentpulse.init(exporter="none", max_batch_size=10_000, flush_interval=3600, max_queue_size=1_000_000)
        agentpulse.event("warm-up")
        agentpulse.flush(30)  # the worker has loaded what it needs and sleeps while we time
        base = median_us(baseline)
        ours = median_us(agentpulse.event)
        with agentpulse.session("bench"):
            in_span = median_us(agentpulse.event)
        agentpulse.flush(30)
        stats = agentpulse.stats()
        print(json.dumps({"base": base, "ours": ours, "in_span": in_span, "dropped": stats["dropped"]}))
    """
    out = json.loads(run_python(code, str(ROOT)))
    return [
        (
            "event() on the caller's thread (median)",
            f"{out['ours']:.2f} us",
            "<= 2 us",
            f"baseline {out['base']:.2f} us",
        ),
        ("event() inside a session span (median)", f"{out['in_span']:.2f} us", "<= 2 us", ""),
    ]


# -- 2. throughput -----------------------------------------------------------------

COLLECTOR = """
    import gzip, json, sys, threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    count = 0
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            global count
            body = self.rfile.read(int(self.headers["Content-Length"]))
            n = len(json.loads(gzip.decompress(body))["events"])
            with lock:
                count += n
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self):
            payload = str(count).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.read()  # until the benchmark closes our stdin
    server.shutdown()
    server.server_close()
"""

THROUGHPUT = """
    import json, sys, time
    import agentpulse

    n = int(sys.argv[1])
    options = json.loads(sys.argv[2])
    agentpulse.init(**options)
    agentpulse.flush(30)
    t = time.perf_counter()
    for i in range(n):
        agentpulse.event("step", {"i": i, "user": "u-42", "ok": True})
    done = agentpulse.flush(120)
    elapsed = time.perf_counter() - t
    stats = agentpulse.stats()
    print(json.dumps({"elapsed": elapsed, "done": done, "sent": stats["sent"], "dropped": stats["dropped"]}))
    agentpulse.shutdown()
"""


def bench_http(n: int) -> List[Row]:
    collector = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(COLLECTOR)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert collector.stdout is not None
        port = int(collector.stdout.readline())
        rows = []
        for batch in (100, 1000):
            options = {
                "endpoint": f"http://127.0.0.1:{port}",
                "api_key": "bench",
                "max_queue_size": n + 10,
                "max_batch_size": batch,
            }
            out = json.loads(run_python(THROUGHPUT, str(n), json.dumps(options)))
            rate = (out["sent"] - 1) / out["elapsed"]
            label = "default batch 100" if batch == 100 else "max_batch_size=1000"
            rows.append(
                (
                    f"events/s to a local HTTP collector ({label})",
                    f"{rate:,.0f}/s",
                    ">= 50,000/s",
                    f"{n:,} events, dropped {out['dropped']}",
                )
            )
        return rows
    finally:
        assert collector.stdin is not None
        collector.stdin.close()
        collector.wait(10)
        if collector.stdout is not None:
            collector.stdout.close()


def bench_local(n: int) -> List[Row]:
    try:
        import agentpulse.exporters.local  # noqa: F401
    except ImportError:
        return [("events/s to the local SQLite store", "skipped", "", "exporters/local.py not present")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for batch in (100, 1000):
            options = {
                "local_path": str(Path(tmp) / f"bench-{batch}.db"),
                "max_queue_size": n + 10,
                "max_batch_size": batch,
            }
            out = json.loads(run_python(THROUGHPUT, str(n), json.dumps(options)))
            rate = (out["sent"] - 1) / out["elapsed"]
            label = "default batch 100" if batch == 100 else "max_batch_size=1000"
            rows.append(
                (
                    f"events/s to the local SQLite store ({label})",
                    f"{rate:,.0f}/s",
                    "",
                    f"{n:,} events, dropped {out['dropped']}",
                )
            )
    return rows


# -- 3. memory in an outage --------------------------------------------------------

OUTAGE = """
    import gc, json, socket, sys, time
    import agentpulse

    def rss_mb():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
        return float("nan")

    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    client = agentpulse.init(endpoint=f"http://127.0.0.1:{port}", shutdown_timeout=0.5)
    def llm_call(i):
        return {"provider": "openai", "operation": "chat", "model": "gpt-4o-mini",
                "response_model": "gpt-4o-mini-2024-07-18", "input_tokens": 1200 + i % 50,
                "output_tokens": 150, "cache_read_tokens": 0, "cache_write_tokens": 0,
                "reasoning_tokens": 0, "usage_estimated": False, "latency_ms": 812.5,
                "time_to_first_token_ms": None, "cost_usd": 0.00027, "cost_source": "table",
                "status": "success", "streaming": False, "finish_reason": "stop", "error": None}
    # Warm up: every module and model the worker needs is loaded before the baseline.
    for i in range(50):
        client.emit("llm_call", llm_call(i))
    time.sleep(1.0)
    gc.collect()
    before = rss_mb()
    for i in range(10_000):
        client.emit("llm_call", llm_call(i))
    raw = rss_mb()
    deadline = time.monotonic() + 20
    while len(client.reporter._q) and time.monotonic() < deadline:
        time.sleep(0.1)   # the worker encodes the backlog while it waits between retries
    gc.collect()
    after = rss_mb()
    stats = agentpulse.stats()
    print(json.dumps({"before": before, "raw": raw, "after": after, "queued": stats["queued"],
                      "dropped": stats["dropped"], "pending_bytes": stats["pending_bytes"]}))
    agentpulse.shutdown(0.5)
"""


def bench_outage() -> List[Row]:
    if not Path("/proc/self/status").exists():
        return [("extra RSS, 10,000 events queued in an outage", "skipped", "", "needs /proc")]
    out = json.loads(run_python(OUTAGE))
    return [
        (
            "extra RSS, 10,000 events queued in an outage",
            f"{out['after'] - out['before']:.1f} MB",
            "<= 30 MB",
            f"{out['raw'] - out['before']:.1f} MB before encoding; {out['queued']:,} queued, "
            f"{out['pending_bytes'] / 1e6:.1f} MB of JSON",
        )
    ]


# -- 4. startup --------------------------------------------------------------------


def bench_startup(runs: int = 11) -> List[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        env = clean_env(
            PYTHONPYCACHEPREFIX=str(Path(tmp) / "pycache"), AGENTPULSE_LOCAL_PATH=str(Path(tmp) / "s.db")
        )
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        cases = {
            "pass": "pass",
            "none": "import agentpulse; agentpulse.init(exporter='none')",
            "local": "import agentpulse; agentpulse.init()",
        }

        def once(code: str) -> float:
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
            return time.perf_counter() - t

        for code in cases.values():  # warm the bytecode cache and the OS file cache
            once(code)
        times: Dict[str, List[float]] = {k: [] for k in cases}
        for _ in range(runs):
            for key, code in cases.items():
                times[key].append(once(code))
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    return [
        (
            "import + init(exporter='none') over bare python",
            f"{med['none'] - med['pass']:.0f} ms",
            "<= 150 ms",
            f"median of {runs}; bare python {med['pass']:.0f} ms",
        ),
        (
            "import + init() (local store) over bare python",
            f"{med['local'] - med['pass']:.0f} ms",
            "<= 150 ms",
            "includes the exit flush to SQLite",
        ),
    ]


# -- main --------------------------------------------------------------------------


def main() -> None:
    started = time.perf_counter()
    n = 50_000
    rows: List[Row] = []
    for bench in (bench_caller, lambda: bench_local(n), lambda: bench_http(n), bench_outage, bench_startup):
        rows.extend(bench())
    headers = ("measure", "result", "target", "notes")
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(4)]
    line = "  ".join("-" * w for w in widths)
    print(f"AgentPulse foundation benchmark  (python {sys.version.split()[0]}, {os.cpu_count()} cores)")
    print(line)
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    print(line)
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
    print(line)
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
