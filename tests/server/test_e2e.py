"""End to end: `agentpulse serve` and an instrumented agent in subprocesses, then the query API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, Tuple

import pytest
import requests
from collector_helpers import free_port

HERE = Path(__file__).resolve().parent

pytest.importorskip("openai")
pytest.importorskip("httpx2")


def _env(**extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTPULSE_")}
    env.update(extra)
    return env


def _cli(*args: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "agentpulse", *args], capture_output=True, text=True, timeout=60, env=_env()
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Tuple[str, Path]]:
    """`agentpulse serve` on 127.0.0.1 in a subprocess; interrupted (Ctrl-C) at the end."""
    db = tmp_path / "collector.db"
    port = free_port()
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115 - closed below, after the process
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agentpulse",
            "serve",
            "--db",
            str(db),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=_env(),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("the collector did not start: " + (tmp_path / "serve.log").read_text())
            time.sleep(0.05)
        yield url, db
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
            code = -1
        log.close()
    text = (tmp_path / "serve.log").read_text()
    assert code == 0, text
    assert "Traceback" not in text and "AgentPulse collector stopped." in text


def test_agent_to_collector_to_query_api(collector: Tuple[str, Path]) -> None:
    url, db = collector
    key = _cli("keys", "create", "--name", "e2e", "--db", str(db), "--json")["key"]
    ran = subprocess.run(
        [sys.executable, str(HERE / "e2e_agent.py")],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(AGENTPULSE_ENDPOINT=url, AGENTPULSE_API_KEY=key),
    )
    assert ran.returncode == 0, ran.stderr
    ids = json.loads(ran.stdout.strip().splitlines()[-1])
    assert ids["flushed"] is True

    def get(path: str, **params: Any) -> Any:
        r = requests.get(url + path, params=params, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()

    (trace,) = get("/api/traces", session="e2e-inbox")["traces"]
    assert trace["trace_id"] == ids["session"]
    assert trace["agent"] == "e2e-agent" and trace["status"] == "success"
    assert trace["llm_calls"] == 2 and trace["input_tokens"] == 240 and trace["output_tokens"] == 60
    assert trace["cost_usd"] and trace["cost_usd"] > 0

    tree = get(f"/api/traces/{ids['session']}")
    (root,) = tree["spans"]
    assert root["name"] == "e2e-inbox" and root["metadata"]["inbox"] == "main"
    task = next(c for c in root["children"] if c["name"] == "classify")
    calls = [c for c in task["children"] if c["type"] == "llm_call"]
    assert len(calls) == 2
    assert (
        calls[0]["llm"]["provider"] == "openai" and calls[0]["llm"]["response_model"] == "gpt-4o-2024-08-06"
    )
    assert "label this" in json.dumps(calls[0]["llm"]["input"])  # capture_messages=True
    assert [e["name"] for e in root["events"] if e["kind"] == "event"] == ["classified"]

    failed = get("/api/traces", status="error")["traces"]
    assert [t["trace_id"] for t in failed] == [ids["cron"]]
    (nightly,) = get("/api/crons")["monitors"]
    assert nightly["monitor"] == "e2e-nightly" and nightly["status"] == "failing"
    assert nightly["last_run"]["trace_id"] == ids["cron"]

    files = get("/api/memory")["files"]
    assert files[0]["path"].endswith("MEMORY.md") and files[0]["lines"] == 1
    models = {r["model"] for r in get("/api/costs", group_by="model")["rows"]}
    assert models == {"gpt-4o", "gpt-4o-mini"}  # the model asked for, as in the local store

    # The key is listed, never shown again.
    (listed,) = _cli("keys", "list", "--db", str(db), "--json")
    assert listed["name"] == "e2e" and "key" not in listed
