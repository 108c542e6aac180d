"""Cron runs: check-ins, per-run ids, the watchdog, schedules, and the crons / run commands."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest
from frozen_clock import frozen

import agentpulse
from agentpulse import crons
from agentpulse.commands import crons as crons_command
from agentpulse.commands import run as run_command
from agentpulse.cron_store import cron_statuses, monitor_statuses
from agentpulse.testing import Capture


@pytest.fixture
def cap(ap: Any) -> Capture:
    return Capture(ap.client)


def _ts(text: str) -> float:
    return datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.timezone.utc).timestamp()


# -- check-ins -------------------------------------------------------------------


def test_with_block_checks_in_progress_then_ok(cap: Capture) -> None:
    with agentpulse.cron(
        "nightly-cleanup", schedule="0 3 * * *", timezone="Europe/Paris", max_runtime=600, grace=300
    ) as run:
        agentpulse.event("cleaning")
        assert run.check_in_id is not None
    first, last = cap.checkins()
    assert first["status"] == "in_progress" and first["duration_ms"] is None
    assert last["status"] == "ok" and last["duration_ms"] >= 0
    for c in (first, last):
        assert c["check_in_id"] == run.check_in_id and c["monitor"] == "nightly-cleanup"
        assert (c["schedule"], c["timezone"], c["max_runtime"], c["grace"]) == (
            "0 3 * * *",
            "Europe/Paris",
            600.0,
            300.0,
        )
    span = cap.span("nightly-cleanup", "cron")
    assert span.status == "success" and span.parent_span_id is None
    assert span.session == "nightly-cleanup"
    assert cap.events("event")[0]["session"] == "nightly-cleanup"
    assert {e["span_id"] for e in cap.events("cron_checkin")} == {span.span_id}


def test_error_checkin_and_the_same_exception(cap: Capture) -> None:
    err = OSError("disk full")
    with pytest.raises(OSError) as info, agentpulse.cron("backup"):
        raise err
    assert info.value is err
    assert [c["status"] for c in cap.checkins()] == ["in_progress", "error"]
    assert cap.span("backup").error == {"type": "OSError", "message": "disk full"}


def test_decorator_on_every_function_kind(cap: Capture) -> None:
    job = agentpulse.cron("job", schedule="*/5 * * * *")

    @job
    def sync_job(x: int) -> int:
        return x

    @job
    async def async_job() -> str:
        return "a"

    @job
    def gen_job() -> Iterator[int]:
        yield 1
        yield 2

    assert sync_job(4) == 4
    assert asyncio.run(async_job()) == "a"
    assert list(gen_job()) == [1, 2]
    checkins = cap.checkins("job")
    assert [c["status"] for c in checkins] == ["in_progress", "ok"] * 3
    assert len({c["check_in_id"] for c in checkins}) == 3
    assert sync_job.__name__ == "sync_job" and asyncio.iscoroutinefunction(async_job)


def test_concurrent_runs_of_one_decorated_job_never_share_a_check_in_id(cap: Capture) -> None:
    gate = threading.Barrier(4)

    @agentpulse.cron("parallel")
    def job(i: int) -> int:
        gate.wait(timeout=5)
        agentpulse.event(f"run{i}")
        return i

    threads = [threading.Thread(target=job, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    runs: Dict[str, List[str]] = {}
    for c in cap.checkins("parallel"):
        runs.setdefault(c["check_in_id"], []).append(c["status"])
    assert len(runs) == 4 and all(v == ["in_progress", "ok"] for v in runs.values())
    spans = cap.spans("cron", "parallel")
    assert len({s.trace_id for s in spans}) == 4


async def test_async_with_and_concurrent_async_runs(cap: Capture) -> None:
    monitor = agentpulse.cron("async-job")

    async def one(i: int) -> None:
        async with monitor as run:
            await asyncio.sleep(0.001 * (3 - i))
            run.log("done", i=i)

    await asyncio.gather(*(one(i) for i in range(3)))
    ids = {c["check_in_id"] for c in cap.checkins()}
    assert len(ids) == 3
    spans = cap.spans("cron")
    logs = {e["data"]["data"]["i"]: e["span_id"] for e in cap.events("event")}
    assert set(logs.values()) == {s.span_id for s in spans}


def test_cron_inside_a_session_is_a_child_span(cap: Capture) -> None:
    with agentpulse.session("outer"), agentpulse.cron("inner-job"):
        agentpulse.event("x")
    job = cap.span("inner-job")
    assert job.parent_span_id == cap.span("outer").span_id
    assert cap.events("event")[0]["session"] == "outer"


def test_before_init_cron_still_validates_and_runs() -> None:
    with agentpulse.cron("j", schedule="@hourly") as run:
        assert run.check_in_id is None

    @agentpulse.cron("j2")
    def job() -> int:
        return 2

    assert job() == 2
    with pytest.raises(ValueError):
        agentpulse.cron("j", schedule="not a schedule")


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"schedule": "61 * * * *"}, "invalid schedule"),
        ({"schedule": "every day"}, "invalid schedule"),
        ({"schedule": ""}, "schedule must be"),
        ({"timezone": "Mars/Olympus"}, "unknown timezone 'Mars/Olympus'"),
        ({"timezone": ""}, "IANA name"),
        ({"max_runtime": 0}, "max_runtime"),
        ({"max_runtime": -5}, "max_runtime"),
        ({"grace": "10"}, "grace"),
    ],
)
def test_bad_arguments_are_clear_value_errors(kwargs: Dict[str, Any], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        agentpulse.cron("job", **kwargs)


def test_bad_monitor_name() -> None:
    with pytest.raises(ValueError, match="monitor"):
        agentpulse.cron("  ")


def test_utc_needs_no_time_zone_database() -> None:
    assert crons.resolve_timezone("UTC") is datetime.timezone.utc
    assert crons.resolve_timezone("Europe/Paris").utcoffset(
        datetime.datetime(2026, 7, 1)
    ) == datetime.timedelta(hours=2)


# -- the watchdog ----------------------------------------------------------------


def test_watchdog_reports_a_run_still_running_past_max_runtime(cap: Capture) -> None:
    with agentpulse.cron("slow", max_runtime=0.05) as run:
        # The run goes on until the watchdog has reported it.
        cap.wait_for(
            lambda evs: any(e["kind"] == "cron_checkin" and e["data"]["status"] == "timeout" for e in evs)
        )
    statuses = [c["status"] for c in cap.checkins("slow")]
    assert statuses == ["in_progress", "timeout", "ok"]
    timeout = cap.checkins("slow")[1]
    assert timeout["check_in_id"] == run.check_in_id and timeout["duration_ms"] >= 50
    (alert,) = cap.alerts()
    assert alert["severity"] == "error" and "slow" in alert["title"]
    assert alert["details"]["check_in_id"] == run.check_in_id and alert["details"]["max_runtime"] == 0.05


def test_watchdog_is_cancelled_when_the_run_ends_in_time(cap: Capture) -> None:
    for _ in range(3):
        with agentpulse.cron("quick", max_runtime=60):
            pass
    assert crons._watchdog.pending() == 0
    assert [c["status"] for c in cap.checkins()] == ["in_progress", "ok"] * 3
    assert cap.alerts() == []


def test_watchdog_thread_exits_when_idle(cap: Capture) -> None:
    with agentpulse.cron("quick", max_runtime=60):
        pass
    cap.wait_for(lambda _: crons._watchdog._thread is None)


# -- schedules ---------------------------------------------------------------------


def test_next_and_previous_run_in_a_timezone() -> None:
    after = _ts("2026-11-26T01:00:00")
    assert crons.next_run("0 3 * * *", "UTC", after) == _ts("2026-11-26T03:00:00")
    # 03:00 in Paris is 02:00 UTC in winter.
    assert crons.next_run("0 3 * * *", "Europe/Paris", after) == _ts("2026-11-26T02:00:00")
    assert crons.previous_run("0 3 * * *", "UTC", after) == _ts("2026-11-25T03:00:00")


def test_next_run_across_a_daylight_saving_change() -> None:
    # Paris leaves summer time on 2026-10-25: 03:00 local is 01:00 UTC before, 02:00 UTC after.
    before = crons.next_run("0 3 * * *", "Europe/Paris", _ts("2026-10-24T12:00:00"))
    after = crons.next_run("0 3 * * *", "Europe/Paris", before + 1)
    assert before == _ts("2026-10-25T02:00:00")
    assert after - before == 24 * 3600


# -- monitor status: missed / overran --------------------------------------------


def _checkin(ts: str, status: str, cid: str, duration_ms: Optional[float] = None, **extra: Any) -> Any:
    data = {"monitor": "nightly", "check_in_id": cid, "status": status, "duration_ms": duration_ms}
    data.update({"schedule": "0 3 * * *", "timezone": "UTC", "max_runtime": 600, "grace": 300})
    data.update(extra)
    return (_ts(ts), data, "trace-" + cid)


def _one(checkins: List[Any], now: str) -> Any:
    (status,) = monitor_statuses({"nightly": checkins}, now=_ts(now))
    return status


RUN_OK = [
    _checkin("2026-11-26T03:00:01", "in_progress", "a"),
    _checkin("2026-11-26T03:02:01", "ok", "a", 120000),
]


def test_status_ok_and_next_expected() -> None:
    st = _one(RUN_OK, "2026-11-26T12:00:00")
    assert st.last_status == "ok" and st.flags == [] and st.healthy
    assert st.next_expected == _ts("2026-11-27T03:00:00")
    assert st.last_run.duration_ms == 120000 and st.runs == 1


def test_status_missed_after_the_grace() -> None:
    assert _one(RUN_OK, "2026-11-27T03:04:59").flags == []  # within the 300 s grace
    st = _one(RUN_OK, "2026-11-27T03:05:01")
    assert st.flags == ["MISSED"] and st.missed_runs == 1 and not st.healthy
    assert _one(RUN_OK, "2026-11-29T04:00:00").missed_runs == 3


def test_status_missed_uses_default_grace() -> None:
    runs = [
        _checkin(t, s, "a", d, grace=None) for (t, s, d) in [("2026-11-26T03:00:00", "in_progress", None)]
    ]
    runs.append(_checkin("2026-11-26T03:00:10", "ok", "a", 10000, grace=None))
    assert _one(runs, "2026-11-27T03:00:59").flags == []
    assert _one(runs, "2026-11-27T03:01:01").flags == ["MISSED"]


def test_status_overran_finished_running_and_timeout() -> None:
    long_run = [
        _checkin("2026-11-26T03:00:00", "in_progress", "b"),
        _checkin("2026-11-26T03:20:00", "ok", "b", 1.2e6),
    ]
    assert _one(long_run, "2026-11-26T12:00:00").flags == ["OVERRAN"]
    running = [_checkin("2026-11-26T03:00:00", "in_progress", "c")]
    st = _one(running, "2026-11-26T03:05:00")
    assert st.last_status == "running" and st.flags == []
    st = _one(running, "2026-11-26T03:10:01")
    assert st.last_status == "running" and st.flags == ["OVERRAN"]
    timed_out = [*running, _checkin("2026-11-26T03:10:00", "timeout", "c", 600000)]
    assert _one(timed_out, "2026-11-26T03:10:05").flags == ["OVERRAN"]
    # Running past the next slot is OVERRAN, not MISSED.
    assert _one(running, "2026-11-27T04:00:00").flags == ["OVERRAN"]


def test_status_error_and_the_latest_run_wins() -> None:
    failed = [
        *RUN_OK,
        _checkin("2026-11-27T03:00:00", "in_progress", "d"),
        _checkin("2026-11-27T03:00:05", "error", "d", 5000),
    ]
    st = _one(failed, "2026-11-27T04:00:00")
    assert st.last_status == "error" and st.last_run.check_in_id == "d" and not st.healthy and st.runs == 2


def test_status_without_schedule_is_never_missed() -> None:
    runs = [_checkin("2026-11-26T03:00:00", "ok", "e", 1000, schedule=None)]
    st = _one(runs, "2027-01-01T00:00:00")
    assert st.flags == [] and st.next_expected is None and st.last_run.start == _ts("2026-11-26T02:59:59")


def test_status_with_a_schedule_that_no_longer_parses() -> None:
    runs = [_checkin("2026-11-26T03:00:00", "ok", "f", 1000, schedule="bogus")]
    st = _one(runs, "2026-11-27T00:00:00")
    assert st.schedule_error and st.next_expected is None


# -- end to end: the local store, freezegun windows, and the commands ----------------


def _local(capture: Callable[..., Any], tmp_path: Path) -> Any:
    return capture(exporter="local", local_path=str(tmp_path / "store.db"))


def test_crons_from_the_local_store_with_frozen_time(capture: Callable[..., Any], tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    with frozen("2026-11-26 03:00:00") as clock:
        ap = _local(capture, tmp_path)
        with agentpulse.cron("nightly", schedule="0 3 * * *", max_runtime=600, grace=300):
            clock.tick(125)
        clock.move_to("2026-11-26 04:00:00")
        with pytest.raises(RuntimeError), agentpulse.cron("hourly", schedule="0 * * * *", max_runtime=60):
            clock.tick(90)
            raise RuntimeError("upstream down")
        clock.move_to("2026-11-26 05:00:00")
        hung = agentpulse.cron("hung", schedule="*/10 * * * *", max_runtime=120)
        hung.__enter__()
        assert ap.client.flush(5)
        by_name = {m.monitor: m for m in cron_statuses(db, now=_ts("2026-11-26T05:03:00"))}
        hung.__exit__(None, None, None)
    assert by_name["nightly"].last_status == "ok" and by_name["nightly"].flags == []
    assert by_name["nightly"].last_run.duration_ms == pytest.approx(125000)
    assert by_name["nightly"].next_expected == _ts("2026-11-27T03:00:00")
    assert by_name["hourly"].last_status == "error"
    assert by_name["hourly"].flags == ["MISSED", "OVERRAN"]  # 05:00 run missing; last run took 90 s of 60
    assert by_name["hung"].last_status == "running" and by_name["hung"].flags == ["OVERRAN"]
    agentpulse.shutdown()
    later = {m.monitor: m for m in cron_statuses(db, now=_ts("2026-11-28T03:00:00"))}
    assert later["nightly"].flags == ["MISSED"] and later["nightly"].missed_runs == 1


def _parse(argv: List[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="agentpulse")
    sub = parser.add_subparsers()
    crons_command.register(sub)
    run_command.register(sub)
    return parser.parse_args(argv)


def test_crons_command_table_json_and_check(
    capture: Callable[..., Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "store.db"
    _local(capture, tmp_path)
    with agentpulse.cron("fresh-job", schedule="* * * * *"):
        pass
    with pytest.raises(KeyError), agentpulse.cron("broken-job"):
        raise KeyError("x")
    agentpulse.shutdown()
    args = _parse(["crons", "--db", str(db)])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0].split() == [
        "MONITOR",
        "SCHEDULE",
        "LAST",
        "RUN",
        "STATUS",
        "DURATION",
        "NEXT",
        "RUN",
        "ALERT",
    ]
    assert any(line.startswith("broken-job") and " error " in line for line in lines)
    assert any(line.startswith("fresh-job") and "* * * * * UTC" in line for line in lines)
    args = _parse(["crons", "--db", str(db), "--json", "--check"])
    assert args.func(args) == 1  # broken-job failed its last run
    data = json.loads(capsys.readouterr().out)
    assert [m["monitor"] for m in data] == ["broken-job", "fresh-job"]
    assert data[0]["healthy"] is False and data[1]["last_status"] == "ok"


def test_crons_command_without_a_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _parse(["crons", "--db", str(tmp_path / "none.db")])
    assert args.func(args) == 0
    assert "No events yet" in capsys.readouterr().out


def _python(code: str) -> List[str]:
    return [sys.executable, "-c", code]


def test_run_command_records_a_cron_run_and_passes_the_exit_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "agentpulse.db"  # the conftest points AGENTPULSE_LOCAL_PATH here
    ok = _parse(["run", "--cron", "wrapped", "--schedule", "*/5 * * * *", "--", *_python("print('hi')")])
    assert ok.func(ok) == 0
    failing = _parse(
        [
            "run",
            "--cron",
            "wrapped",
            "--",
            *_python("import sys; sys.stderr.write('boom: sk-abcdefghijklmnopqrstuv\\n'); sys.exit(3)"),
        ]
    )
    assert failing.func(failing) == 3
    err = capsys.readouterr().err
    assert "boom" in err  # stderr passed through as it came
    (status,) = cron_statuses(db)
    assert status.monitor == "wrapped" and status.runs == 2 and status.last_status == "error"
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT data FROM events WHERE kind = 'event'").fetchall()
        ends = conn.execute("SELECT data FROM events WHERE kind = 'span_end'").fetchall()
    finally:
        conn.close()
    (failure,) = [json.loads(r[0]) for r in rows]
    assert failure["name"] == "command failed"
    assert failure["data"]["exit_code"] == 3
    assert failure["data"]["stderr_tail"] == "boom: [REDACTED:api_key]"
    meta = [json.loads(r[0])["metadata"] for r in ends]
    assert [m["exit_code"] for m in meta] == [0, 3]


def test_run_command_as_a_session_and_missing_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _parse(["run", "--session", "weekly", "--", *_python("pass")])
    assert args.func(args) == 0
    missing = _parse(["run", "--", str(tmp_path / "no-such-command")])
    assert missing.func(missing) == 127
    assert "cannot run" in capsys.readouterr().err
    from agentpulse.store import Store

    with Store(tmp_path / "agentpulse.db") as store:
        names = sorted(t.name for t in store.recent_traces())
    assert names == ["no-such-command", "weekly"]


@pytest.mark.parametrize(
    "argv",
    [
        ["run"],
        ["run", "--"],
        ["run", "--schedule", "* * * * *", "--", "true"],
        ["run", "--cron", "x", "--schedule", "nope", "--", "true"],
        ["run", "--cron", "x", "--timezone", "Nowhere/Never", "--", "true"],
    ],
)
def test_run_command_usage_errors(argv: List[str], capsys: pytest.CaptureFixture[str]) -> None:
    args = _parse(argv)
    assert args.func(args) == 2
    assert capsys.readouterr().err.startswith("agentpulse run:")


def test_run_command_reads_claude_code_usage(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("agentpulse.integrations.claude_code")
    result = {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "duration_ms": 1500,
        "num_turns": 2,
        "result": "done",
        "total_cost_usd": 0.0123,
        "usage": {"input_tokens": 10, "output_tokens": 20},
    }
    claude = tmp_path / "claude"  # a stand-in CLI printing what `claude -p --output-format json` prints
    claude.write_text(f"#!{sys.executable}\nimport json\nprint(json.dumps({result!r}))\n", encoding="utf-8")
    claude.chmod(0o755)
    args = _parse(["run", "--", str(claude), "-p", "fix the tests", "--output-format", "json"])
    assert args.func(args) == 0
    assert '"total_cost_usd": 0.0123' in capfd.readouterr().out  # stdout still reaches the terminal
    from agentpulse.store import Store

    with Store(tmp_path / "agentpulse.db") as store:
        (trace,) = store.recent_traces()
    assert trace.name == "claude" and trace.llm_calls == 1 and trace.cost_usd == pytest.approx(0.0123)
