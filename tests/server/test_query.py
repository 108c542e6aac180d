"""The query API over both backends: traces and their filters, a trace tree, costs, crons, alerts, memory."""

from __future__ import annotations

import datetime
import time
from typing import Any, Dict, List

import pytest
from collector_helpers import checkin, cron_run, ev, insert, llm, session_trace

from agentpulse.server import crons as cronlib
from agentpulse.server.query import Query, day_bounds
from agentpulse.server.storage.base import Storage

HOUR = 3600.0


@pytest.fixture
def q(storage: Storage) -> Query:
    return Query(storage)


def _seed_traces(storage: Storage, now: float) -> Dict[str, List[Dict[str, Any]]]:
    runs = {
        "cheap": session_trace("daily-email", ts=now - 3 * HOUR, calls=1, cost=0.001),
        "pricey": session_trace("daily-email", ts=now - 2 * HOUR, calls=3, cost=0.5, model="claude-sonnet-4"),
        "failed": session_trace("research", ts=now - 1 * HOUR, calls=2, cost=0.01, status="error"),
    }
    insert(storage, runs["cheap"] + runs["pricey"], agent="marcus")
    insert(storage, runs["failed"], agent="scout")
    return runs


def test_traces_newest_first_with_totals(storage: Storage, q: Query) -> None:
    now = time.time()
    runs = _seed_traces(storage, now)
    page = q.traces()
    assert [t["trace_id"] for t in page["traces"]] == [
        runs[k][0]["trace_id"] for k in ("failed", "pricey", "cheap")
    ]
    pricey = page["traces"][1]
    assert pricey["name"] == "daily-email" and pricey["root_kind"] == "session"
    assert pricey["llm_calls"] == 3
    assert pricey["cost_usd"] == pytest.approx(1.5)
    assert pricey["input_tokens"] == 300 and pricey["output_tokens"] == 60
    assert pricey["status"] == "success" and pricey["duration_ms"] == 1500.0
    assert page["traces"][0]["errors"] == 1 and page["traces"][0]["status"] == "error"


def test_trace_filters(storage: Storage, q: Query) -> None:
    now = time.time()
    runs = _seed_traces(storage, now)

    def ids(**kw: Any) -> List[str]:
        return [t["trace_id"] for t in q.traces(**kw)["traces"]]

    tid = {k: v[0]["trace_id"] for k, v in runs.items()}
    assert ids(agent="scout") == [tid["failed"]]
    assert ids(session="daily-email") == [tid["pricey"], tid["cheap"]]
    assert ids(status="error") == [tid["failed"]]
    assert ids(status="success", agent="marcus") == [tid["pricey"], tid["cheap"]]
    assert ids(since=now - 2.5 * HOUR) == [tid["failed"], tid["pricey"]]
    assert ids(until=now - 2.5 * HOUR) == [tid["cheap"]]
    assert ids(min_cost=0.1) == [tid["pricey"]]
    assert ids(max_cost=0.005) == [tid["cheap"]]
    first = q.traces(limit=2)
    assert first["has_more"] and len(first["traces"]) == 2
    assert [t["trace_id"] for t in q.traces(limit=2, offset=2)["traces"]] == [tid["cheap"]]


def test_running_trace(storage: Storage, q: Query) -> None:
    events = session_trace("long-job")[:-1]  # no span_end yet
    insert(storage, events)
    page = q.traces(status="running")
    assert page["traces"][0]["status"] == "running"
    assert page["traces"][0]["duration_ms"] is not None


def test_trace_tree(storage: Storage, q: Query) -> None:
    events = session_trace("daily-email", calls=2)
    insert(storage, events)
    tree = q.trace(events[0]["trace_id"])
    assert tree is not None
    assert tree["name"] == "daily-email" and tree["status"] == "success"
    assert tree["llm_calls"] == 2 and tree["cost_usd"] == pytest.approx(0.02)
    (root,) = tree["spans"]
    assert root["span_kind"] == "session" and root["metadata"] == {"user_id": "u1"}
    (task,) = root["children"]
    assert task["name"] == "classify"
    calls = [c for c in task["children"] if c["type"] == "llm_call"]
    assert len(calls) == 2
    assert calls[0]["llm"]["model"] == "gpt-4o" and calls[0]["duration_ms"] == 250.0
    assert calls[0]["start"] < calls[1]["start"]
    assert [e["name"] for e in task["events"]] == ["labelled"]
    assert q.trace("f" * 32) is None


def test_costs_by_model_day_agent(storage: Storage, q: Query) -> None:
    now = time.time()
    _seed_traces(storage, now)
    by_model = {r["model"]: r for r in q.costs(["model"])["rows"]}
    assert by_model["claude-sonnet-4"]["cost_usd"] == pytest.approx(1.5)
    assert by_model["claude-sonnet-4"]["calls"] == 3
    assert by_model["gpt-4o"]["cost_usd"] == pytest.approx(0.021)
    by_agent = {r["agent"]: r["cost_usd"] for r in q.costs(["agent"])["rows"]}
    assert by_agent == {"marcus": pytest.approx(1.501), "scout": pytest.approx(0.02)}
    days = q.costs(["day", "model"], since=now - 86400)
    assert {r["day"] for r in days["rows"]} <= {
        datetime.datetime.fromtimestamp(now - d, datetime.timezone.utc).date().isoformat()
        for d in (0, 3 * HOUR)
    }
    assert days["total"]["calls"] == 6
    with pytest.raises(ValueError):
        q.costs(["colour"])


def test_costs_count_calls_without_a_price(storage: Storage, q: Query) -> None:
    insert(storage, [ev("llm_call", llm("mystery-model", None), span_id="c" * 16)])
    (row,) = q.costs(["model"])["rows"]
    assert row["unpriced"] == 1 and row["cost_usd"] == 0


def test_costs_day_follows_the_callers_offset(storage: Storage, q: Query) -> None:
    ts = datetime.datetime(2026, 1, 1, 23, 30, tzinfo=datetime.timezone.utc).timestamp()
    insert(storage, [ev("llm_call", llm(), ts=ts, span_id="d" * 16)])
    assert q.costs(["day"])["rows"][0]["day"] == "2026-01-01"
    assert q.costs(["day"], tz_offset=60)["rows"][0]["day"] == "2026-01-02"


def test_day_bounds() -> None:
    # Wednesday 2026-11-25 10:00 UTC
    now = datetime.datetime(2026, 11, 25, 10, 0, tzinfo=datetime.timezone.utc).timestamp()
    today, week = day_bounds(now, 0)
    assert (
        datetime.datetime.fromtimestamp(today, datetime.timezone.utc).isoformat()
        == "2026-11-25T00:00:00+00:00"
    )
    assert (
        datetime.datetime.fromtimestamp(week, datetime.timezone.utc).isoformat()
        == "2026-11-23T00:00:00+00:00"
    )
    today_east, _ = day_bounds(now, 120)
    assert today_east == today - 7200


def test_overview(storage: Storage, q: Query) -> None:
    now = time.time()
    today, _ = day_bounds(now, 0)
    t = max(today + 1, now - 60)
    insert(storage, session_trace("a", ts=t, calls=3, cost=0.1))
    insert(storage, [ev("llm_call", llm(status="error", cost=None), ts=t + 1, span_id="e" * 16)])
    insert(storage, session_trace("b", ts=t, calls=1, cost=0.1, status="error"))
    o = q.overview(now=now + 10)
    assert o["spend_today"] == pytest.approx(0.4)
    assert o["spend_week"] >= o["spend_today"]
    assert o["calls_today"] == 5 and o["errors_today"] == 1
    assert o["error_rate_today"] == pytest.approx(0.2)
    assert o["traces_today"] == 3 and o["failed_traces_today"] == 1
    assert o["crons"] == {"ok": 0, "missed": 0, "overran": 0, "failing": 0}


# -- crons ------------------------------------------------------------------------------------


def _hour(now: float, back: int) -> float:
    return (now // HOUR) * HOUR - back * HOUR


def test_cron_status_ok_missed_failing_overran(storage: Storage, q: Query) -> None:
    now = (time.time() // HOUR) * HOUR + 20 * 60  # 20 min past an hour: the last slot closed
    events: List[Dict[str, Any]] = []
    for back in (3, 2, 1, 0):
        events += cron_run("healthy", _hour(now, back) + 5)
    for back in (3, 2):  # then nothing for the last two slots
        events += cron_run("skipped", _hour(now, back) + 5)
    for back in (2, 1):
        events += cron_run("broken", _hour(now, back) + 5, ok=back != 0)
    events += cron_run("broken", _hour(now, 0) + 5, ok=False)
    events += cron_run("slow", _hour(now, 1) + 5, max_runtime=60)
    events += cron_run("slow", _hour(now, 0) + 5, duration=300, max_runtime=60)
    insert(storage, events)
    status = {m["monitor"]: m for m in q.crons(now=now)}
    assert status["healthy"]["status"] == "ok"
    assert status["skipped"]["status"] == "missed"
    assert status["skipped"]["missed"] == 2
    assert status["broken"]["status"] == "failing"
    assert status["slow"]["status"] == "overran"
    assert status["healthy"]["next_expected"] == _hour(now, -1)
    detail = q.cron("skipped", now=now)
    assert detail is not None
    assert [h["type"] for h in detail["history"]] == ["missed", "missed", "run", "run"]
    assert detail["history"][0]["expected"] == _hour(now, 0)
    assert q.cron("nobody", now=now) is None


def test_cron_run_in_progress_and_watchdog_timeout() -> None:
    now = 1_800_000_000.0
    start = (now // HOUR) * HOUR + 10
    running = [checkin("sync", "r1", "in_progress", start, max_runtime=600)]
    assert cronlib.evaluate("sync", running, now=start + 60)["status"] == "ok"
    assert cronlib.evaluate("sync", running, now=start + 60)["running"] is True
    assert cronlib.evaluate("sync", running, now=start + 700)["status"] == "overran"
    timed_out = [*running, checkin("sync", "r1", "timeout", start + 600, max_runtime=600)]
    result = cronlib.evaluate("sync", timed_out, now=start + 650)
    assert result["status"] == "overran" and result["last_run"]["timed_out"]


def test_cron_grace_and_early_start() -> None:
    slot = 1_800_000_000.0 - (1_800_000_000.0 % HOUR)
    late = cron_run("late", slot + 200, grace=300)  # within its grace
    assert cronlib.evaluate("late", late, now=slot + 1000)["status"] == "ok"
    too_late = cron_run("late", slot - HOUR + 5, grace=300) + cron_run("late", slot + 400, grace=300)
    result = cronlib.evaluate("late", too_late, now=slot + 1000)
    assert result["missed"] == 1  # the slot's window closed before the run started...
    assert result["status"] == "ok"  # ...but a run did come after it
    early = cron_run("early", slot - 30)  # clocks drift: 30 s early still counts for the slot
    assert cronlib.evaluate("early", early, now=slot + 600)["missed"] == 0


def test_cron_timezone_and_bad_schedule() -> None:
    # 03:00 in Paris is 02:00 UTC in winter.
    paris_3am = datetime.datetime(2026, 1, 15, 2, 0, tzinfo=datetime.timezone.utc).timestamp()
    runs = cron_run("nightly", paris_3am + 10, schedule="0 3 * * *", timezone="Europe/Paris")
    result = cronlib.evaluate("nightly", runs, now=paris_3am + 3600)
    assert result["status"] == "ok" and result["missed"] == 0
    assert result["next_expected"] == paris_3am + 86400
    bad = cron_run("odd", paris_3am, schedule="not a schedule")
    result = cronlib.evaluate("odd", bad, now=paris_3am + 3600)
    assert result["status"] == "ok" and result["schedule_error"]


def test_cron_without_schedule_is_judged_by_its_runs() -> None:
    runs = cron_run("adhoc", 1000.0, schedule=None, ok=False)
    result = cronlib.evaluate("adhoc", runs, now=10_000.0)
    assert result["status"] == "failing" and result["next_expected"] is None


# -- alerts and memory ------------------------------------------------------------------------


def test_alerts_lists_sdk_alerts(storage: Storage, q: Query) -> None:
    insert(
        storage,
        [
            ev(
                "alert",
                {"title": "Budget passed", "severity": "error", "details": {"spend": 5}},
                session="s",
                trace_id="t" * 32,
            ),
            ev("alert", {"title": "Loop?", "severity": "warning"}, ts=time.time() - 10),
        ],
    )
    alerts = q.alerts()["alerts"]
    assert [a["title"] for a in alerts] == ["Budget passed", "Loop?"]
    page = q.alerts(limit=1)
    assert len(page["alerts"]) == 1 and page["total"] == 2
    assert alerts[0]["source"] == "sdk" and alerts[0]["delivery"] == "none"
    assert alerts[0]["details"]["trace_id"] == "t" * 32


def test_memory_snapshots(storage: Storage, q: Query) -> None:
    now = time.time()
    for i, size in enumerate((100, 150, 120)):
        insert(
            storage,
            [
                ev(
                    "memory_snapshot",
                    {"files": [{"path": "MEMORY.md", "size": size, "lines": size // 10, "delta_bytes": 10}]},
                    ts=now - 100 + i,
                )
            ],
        )
    mem = q.memory()
    assert len(mem["snapshots"]) == 3
    (f,) = mem["files"]
    assert f["path"] == "MEMORY.md" and f["size"] == 120 and f["agent"] == "marcus"
    assert [h["size"] for h in f["history"]] == [100, 150, 120]
    assert q.memory(agent="nobody")["files"] == []


def test_facets(storage: Storage, q: Query) -> None:
    _seed_traces(storage, time.time())
    f = q.facets()
    assert [a["agent"] for a in f["agents"]] == ["marcus", "scout"]
    assert {s["session"]: s["runs"] for s in f["sessions"]} == {"daily-email": 2, "research": 1}


# -- HTTP -----------------------------------------------------------------------------------


def test_api_endpoints_answer_json(make_client: Any) -> None:
    client = make_client(auth=False)
    events = session_trace("daily-email")
    events += cron_run("nightly", time.time() - 600)
    assert client.post("/v1/ingest", json=_body(events)).status_code == 200
    tid = events[0]["trace_id"]
    assert client.get("/api/traces", params={"session": "daily-email"}).json()["traces"][0]["trace_id"] == tid
    assert client.get(f"/api/traces/{tid}").json()["name"] == "daily-email"
    assert client.get("/api/costs", params={"group_by": "model"}).json()["rows"][0]["model"] == "gpt-4o"
    assert client.get("/api/crons").json()["monitors"][0]["monitor"] == "nightly"
    assert client.get("/api/crons/nightly").json()["history"]
    assert client.get("/api/overview", params={"tz_offset": "60"}).json()["calls_today"] >= 0
    assert client.get("/api/alerts").json() == {"alerts": [], "total": 0}
    assert client.get("/api/memory").json() == {"snapshots": [], "files": []}
    assert client.get("/api/facets").json()["agents"][0]["agent"] == "marcus"
    assert client.get("/api/stats").json()["ingest"]["stored"] == len(events)
    assert client.get("/healthz").json()["ok"] is True


def test_api_errors(make_client: Any) -> None:
    client = make_client(auth=False)
    assert client.get("/api/traces", params={"since": "yesterday"}).status_code == 400
    assert "since" in client.get("/api/traces", params={"since": "yesterday"}).json()["message"]
    assert client.get("/api/traces", params={"status": "meh"}).status_code == 400
    assert client.get("/api/traces", params={"min_cost": "nan"}).status_code == 400
    assert client.get("/api/costs", params={"group_by": "colour"}).status_code == 400
    assert client.get("/api/traces/nope").status_code == 404
    assert client.get("/api/crons/nope").status_code == 404
    assert client.get("/api/nothing-here").status_code == 404
    assert client.get("/v1/ingest").status_code == 405


def test_dashboard_is_served_without_any_outside_resource(make_client: Any) -> None:
    client = make_client(auth=False)
    page = client.get("/")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/static/app.js", "/static/app.css"):
        r = client.get(asset)
        assert r.status_code == 200
        text = r.text.replace("http://www.w3.org/2000/svg", "")  # the SVG namespace name, never fetched
        assert "http://" not in text and "https://" not in text
    assert "https://" not in page.text and "http://" not in page.text


def _body(events: List[Dict[str, Any]]) -> Dict[str, Any]:
    from collector_helpers import batch

    return batch(events)


def test_ingest_and_query_on_each_backend(make_client: Any, store_target: str) -> None:
    client = make_client(auth=False, store=store_target)
    events = session_trace("backend-check", calls=2, cost=0.05) + cron_run("nightly", time.time() - 600)
    body = _body(events)
    assert client.post("/v1/ingest", json=body).json()["stored"] == len(events)
    assert client.post("/v1/ingest", json=body).json()["duplicates"] == len(events)
    (trace,) = client.get("/api/traces", params={"session": "backend-check"}).json()["traces"]
    assert trace["llm_calls"] == 2 and trace["cost_usd"] == pytest.approx(0.1)
    tree = client.get(f"/api/traces/{trace['trace_id']}").json()
    assert tree["spans"][0]["children"][0]["name"] == "classify"
    (row,) = client.get("/api/costs", params={"group_by": "day,model", "tz_offset": "-300"}).json()["rows"]
    assert row["model"] == "gpt-4o" and row["calls"] == 2
    assert client.get("/api/crons/nightly").json()["runs"] == 1
    assert client.get("/api/overview").json()["calls_today"] in (0, 2)  # 0 only right after midnight
