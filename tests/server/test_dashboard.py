"""The dashboard in a real browser: Debian's chromium driven by Playwright, against a live collector."""

from __future__ import annotations

import json
import os
import time
from typing import Any, Dict, Iterator, List

import pytest
import requests
from collector_helpers import batch, cron_run, ev, session_trace

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HOUR = 3600.0

if not os.path.exists(CHROMIUM):
    pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def _post(url: str, events: List[Dict[str, Any]], **kw: Any) -> None:
    r = requests.post(url + "/v1/ingest", data=json.dumps(batch(events, **kw)), timeout=10)
    assert r.status_code == 200, r.text


def _seed(url: str) -> Dict[str, Any]:
    now = time.time()
    good = session_trace("daily-email", ts=now - 20, calls=2, cost=0.01)
    bad = session_trace("research", ts=now - 10, calls=1, cost=0.25, status="error", model="claude-sonnet-4")
    _post(url, good)
    _post(url, bad, agent="scout")
    slot = (now // HOUR) * HOUR
    if now - slot < 120:  # keep the last slot's grace window closed
        slot -= HOUR
    crons = cron_run("nightly-report", slot - 3 * HOUR + 5) + cron_run("nightly-report", slot - 2 * HOUR + 5)
    crons += cron_run("sync-inbox", slot - HOUR + 5) + cron_run("sync-inbox", slot + 5)
    _post(url, crons)
    _post(url, [ev("alert", {"title": "Budget of $5/hour passed", "severity": "error"}, ts=now - 30)])
    return {"good": good[0]["trace_id"], "bad": bad[0]["trace_id"]}


def test_overview_to_replay_to_crons(browser: Any, live_server: Any) -> None:
    server = live_server(auth=False)
    ids = _seed(server.url)
    page = browser.new_page()
    errors: List[str] = []
    outside: List[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on(
        "request", lambda r: outside.append(r.url) if not r.url.startswith((server.url, "data:")) else None
    )

    # Overview: spend, calls, error rate, cron health, recent sessions.
    page.goto(server.url + "/#/")
    page.wait_for_selector("body[data-view=overview]")
    assert page.inner_text("[data-metric=spend_today] .value") == "$0.27"
    assert page.inner_text("[data-metric=calls_today] .value") == "3"
    assert page.inner_text("[data-metric=error_rate] .sub") == "1 of 2 sessions failed"
    assert "1 missed" in page.inner_text("[data-metric=cron_health] .sub")
    assert page.locator(".cost-chart rect").count() >= 2  # a bar per model today
    assert page.locator("#recent-table tbody tr").count() == 2

    # A session's replay: the waterfall with its LLM calls, tokens and cost.
    page.click(f"#recent-table tr[data-trace='{ids['good']}'] a")
    page.wait_for_selector("#waterfall")
    assert page.url.endswith("#/trace/" + ids["good"])
    assert "daily-email" in page.inner_text("h1")
    rows = page.locator("#waterfall .wf-row[data-span]")
    assert rows.count() == 4  # session, task, two LLM calls
    llm_rows = page.locator("#waterfall .wf-row[data-kind=llm_call]")
    assert llm_rows.count() == 2
    assert "gpt-4o" in llm_rows.first.inner_text()
    assert "100 → 20 tok" in llm_rows.first.inner_text()
    assert page.inner_text("[data-fact=Cost] .v") == "$0.02"
    llm_rows.first.click()
    detail = page.inner_text(".wf-detail")
    assert "Input tokens" in detail and "250 ms" in detail

    # The failed session shows its error.
    page.goto(server.url + "/#/sessions?status=error")
    page.wait_for_selector(f"#sessions-table tr[data-trace='{ids['bad']}']")
    assert page.locator("#sessions-table tbody tr").count() == 1
    page.click(f"#sessions-table tr[data-trace='{ids['bad']}'] a")
    page.wait_for_selector("#waterfall .wf-row.error")

    # Crons: status per monitor, and a monitor's history with its missed runs marked.
    page.click("nav a[data-nav=crons]")
    page.wait_for_selector("#crons-table")
    assert page.inner_text("#crons-table tr[data-monitor=nightly-report] .badge") == "missed"
    assert page.inner_text("#crons-table tr[data-monitor=sync-inbox] .badge") == "ok"
    page.click("#crons-table tr[data-monitor=nightly-report] a")
    page.wait_for_selector("#cron-history")
    states = page.eval_on_selector_all("#cron-history tr.run", "rows => rows.map(r => r.dataset.state)")
    assert states[:2] == ["missed", "missed"] and states[2:] == ["ok", "ok"]
    assert page.locator("#cron-strip i.missed").count() == 2

    # Costs and alerts.
    page.click("nav a[data-nav=costs]")
    page.wait_for_selector("#cost-by-model")
    assert page.locator("#cost-by-model tbody tr").count() == 2
    page.click("nav a[data-nav=alerts]")
    page.wait_for_selector("#alerts-table")
    assert "Budget of $5/hour passed" in page.inner_text("#alerts-table")

    assert errors == []
    assert outside == []  # nothing fetched from anywhere but the collector


def test_dashboard_asks_for_a_key_when_reads_need_one(browser: Any, live_server: Any) -> None:
    server = live_server(read_auth=True)
    _, key = server.server.config.app.state.collector.keys.create("browser")
    page = browser.new_page()
    page.goto(server.url + "/#/crons")
    page.wait_for_selector("#keydlg[open]")
    page.fill("#keyinput", key)
    page.click("#keyform button[type=submit]")
    page.wait_for_selector("body[data-view=crons]")
    assert "No cron monitors yet" in page.inner_text("main")
