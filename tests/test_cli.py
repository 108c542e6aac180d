"""The ``agentpulse`` command, run in-process on a store written by a real client."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

import agentpulse
from agentpulse import cli
from agentpulse.cli import main
from agentpulse.commands import clip, fmt_duration, fmt_money, fmt_tokens, parse_since, text_width
from agentpulse.context import new_span_id
from agentpulse.demo import DEMO_SESSION, run_demo

Run = Tuple[int, str, str]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Any:
    """``run(*argv)`` -> (exit code, stdout, stderr); also checks every line fits 80 columns.

    File paths are the one thing never cut, so the test's long temporary directory counts as 5 columns.
    """

    def call(*argv: str) -> Run:
        code = main(list(argv))
        captured = capsys.readouterr()
        lines = captured.out.replace(str(tmp_path), "/tmp1").splitlines()
        too_wide = [line for line in lines if text_width(line) > 80]
        if "--json" not in argv:
            assert not too_wide, f"lines wider than 80 columns: {too_wide}"
        return code, captured.out, captured.err

    return call


@pytest.fixture
def store(tmp_path: Path) -> Dict[str, Any]:
    """A store with one session of nested spans, a hand-made LLM call, events and a handled error."""
    db = tmp_path / "cli.db"
    client = agentpulse.init(local_path=db, auto_patch=False, agent_name="cli-test", flush_interval=0.05)

    @agentpulse.trace(name="fetch-messages-from-a-mailbox-with-a-rather-long-name-that-needs-truncating")
    def fetch() -> None:
        agentpulse.event("fetched", {"count": 3, "folder": "inbox"})

    @agentpulse.trace(name="summarize")
    def summarize() -> None:
        client.emit(
            "llm_call",
            {
                "provider": "openai",
                "model": "gpt-4o",
                "response_model": "gpt-4o-2024-08-06",
                "input_tokens": 1520,
                "output_tokens": 89,
                "cost_usd": 0.0012,
                "latency_ms": 812.0,
                "streaming": True,
            },
            own_span_id=new_span_id(),
        )
        agentpulse.metric("summary_chars", 420)

    @agentpulse.trace(name="send")
    def send() -> None:
        raise ConnectionError("smtp down")

    with agentpulse.session("nightly-report") as scope:
        assert scope.span is not None
        trace_id = scope.span.trace_id
        fetch()
        summarize()
        try:
            send()
        except ConnectionError:
            agentpulse.alert("mail not sent", "error")
    agentpulse.shutdown()
    return {"db": str(db), "trace_id": trace_id}


# -- status -------------------------------------------------------------------------


def test_status_text(run: Any, store: Dict[str, Any]) -> None:
    code, out, _ = run("status", "--db", store["db"])
    assert code == 0
    assert "Events go to:  local store" in out
    assert "traces       1" in out
    assert "LLM calls    1  (1.5k in / 89 out tokens)" in out
    assert "total cost   $0.0012" in out
    assert "agents: cli-test" in out
    assert "api_key" in out


def test_status_json_masks_the_key(run: Any, store: Dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTPULSE_API_KEY", "sk-secret-123456")
    monkeypatch.setenv("AGENTPULSE_ENDPOINT", "http://127.0.0.1:9/")
    code, out, _ = run("status", "--db", store["db"], "--json")
    assert code == 0
    assert "sk-secret-123456" not in out
    doc = json.loads(out)
    assert doc["config"]["api_key"] == "sk-s…"
    assert doc["destination"] == "http://127.0.0.1:9/v1/ingest"
    assert doc["store"]["traces"] == 1 and doc["store"]["llm_calls"] == 1
    assert doc["store"]["cost_usd"] == pytest.approx(0.0012)


def test_status_with_a_bad_environment_still_reads_the_store(
    run: Any, store: Dict[str, Any], monkeypatch: Any
) -> None:
    monkeypatch.setenv("AGENTPULSE_FLUSH_INTERVAL", "soon")
    code, out, _ = run("status", "--db", store["db"])
    assert code == 2
    assert "Configuration error" in out and "FLUSH_INTERVAL" in out
    assert "traces       1" in out


def test_status_without_a_store(run: Any, tmp_path: Path) -> None:
    code, out, _ = run("status")  # the default path (conftest: tmp_path/agentpulse.db) does not exist yet
    assert code == 0
    assert "No events yet" in out and "agentpulse demo" in out
    assert str(tmp_path / "agentpulse.db") in out


# -- sessions -------------------------------------------------------------------------


def test_sessions_text(run: Any, store: Dict[str, Any]) -> None:
    code, out, _ = run("sessions", "--db", store["db"])
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "NAME", "STARTED", "DURATION", "LLM", "TOKENS", "COST", "STATUS"]
    row = lines[1]
    assert row.startswith(store["trace_id"][:8])
    assert "nightly-report" in row and "1.5k/89" in row and "$0.0012" in row and row.endswith("ok")
    assert "agentpulse show <ID>" in out


def test_sessions_json_and_since(run: Any, store: Dict[str, Any]) -> None:
    code, out, _ = run("sessions", "--db", store["db"], "--json")
    assert code == 0
    (doc,) = json.loads(out)
    assert doc["trace_id"] == store["trace_id"]
    assert (doc["name"], doc["status"], doc["llm_calls"]) == ("nightly-report", "success", 1)
    assert (doc["input_tokens"], doc["output_tokens"], doc["errors"]) == (1520, 89, 1)
    assert json.loads(run("sessions", "--db", store["db"], "--json", "--since", "1h")[1]) != []
    assert json.loads(run("sessions", "--db", store["db"], "--json", "--since", "2999-01-01")[1]) == []
    code, _, err = run("sessions", "--db", store["db"], "--since", "yesterday-ish")
    assert code == 2 and "--since" in err


def test_sessions_without_a_store(run: Any, tmp_path: Path) -> None:
    code, out, _ = run("sessions", "--db", str(tmp_path / "missing.db"))
    assert code == 0 and "No events yet" in out
    assert json.loads(run("sessions", "--db", str(tmp_path / "missing.db"), "--json")[1]) == []


# -- show -------------------------------------------------------------------------------


def test_show_prints_the_tree(run: Any, store: Dict[str, Any]) -> None:
    code, out, _ = run("show", store["trace_id"][:7], "--db", store["db"])
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"Trace {store['trace_id']}"
    assert "1 LLM call" in lines[2] and "1.5k in / 89 out tokens" in lines[2] and "$0.0012" in lines[2]
    tree = lines[4:]
    assert tree[0].startswith("session nightly-report") and tree[0].endswith("ok")
    assert tree[1].startswith("├─ trace fetch-messages-from-a-mailbox") and "…" in tree[1]
    assert tree[2].startswith('│  └─ event fetched {"count": 3, "folder": "inbox"}')
    assert tree[3].startswith("├─ trace summarize")
    assert tree[4].startswith("│  ├─ llm openai/gpt-4o stream")
    assert "1.5k→89 tok" in tree[4] and "$0.0012" in tree[4] and "812ms" in tree[4]
    assert tree[5].startswith("│  └─ metric summary_chars = 420")
    assert tree[6].startswith("├─ trace send") and "error" in tree[6]
    assert tree[7] == "│  └─ raised ConnectionError: smtp down"
    assert tree[8] == "└─ alert [error] mail not sent"


def test_show_json(run: Any, store: Dict[str, Any]) -> None:
    code, out, _ = run("show", store["trace_id"], "--db", store["db"], "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["trace_id"] == store["trace_id"]
    (root,) = doc["roots"]
    assert [c["name"] for c in root["children"]][1:] == ["summarize", "send"]
    call = root["children"][1]["children"][0]
    assert call["kind"] == "llm_call" and call["llm"]["cost_usd"] == 0.0012
    assert root["events"][0]["kind"] == "alert"


def test_show_unknown_and_missing(run: Any, store: Dict[str, Any], tmp_path: Path) -> None:
    code, out, err = run("show", "ffffffffffff", "--db", store["db"])
    assert code == 1 and out == "" and "no trace" in err
    code, _, err = run("show", "abc", "--db", str(tmp_path / "missing.db"))
    assert code == 1 and "No events yet" in err


def test_an_unreadable_store_is_reported_not_raised(run: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not a database at all " * 100)
    for command in ("status", "sessions", "tail"):
        code, _, err = (
            run(command, "--once", "--db", str(bad)) if command == "tail" else run(command, "--db", str(bad))
        )
        assert code == 1, command
        assert "cannot" in err and "bad.db" in err


def test_demo_with_a_bad_environment_says_which_option(run: Any, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("AGENTPULSE_MAX_QUEUE_SIZE", "lots")
    code, _, err = run("demo", "--db", str(tmp_path / "demo.db"))
    assert code == 2 and "AGENTPULSE_MAX_QUEUE_SIZE" in err


def test_show_ambiguous_prefix(run: Any, tmp_path: Path) -> None:
    db = tmp_path / "many.db"
    agentpulse.init(local_path=db, auto_patch=False)
    ids = []
    for i in range(17):  # two of 17 hex ids must share their first digit
        with agentpulse.session(f"s{i}") as scope:
            assert scope.span is not None
            ids.append(scope.span.trace_id)
    agentpulse.shutdown()
    first = [t[0] for t in ids]
    shared = next(c for c in first if first.count(c) > 1)
    code, _, err = run("show", shared, "--db", str(db))
    assert code == 1 and "matches several traces" in err


# -- tail ---------------------------------------------------------------------------------


def test_tail_once(run: Any, store: Dict[str, Any]) -> None:
    code, out, _ = run("tail", "--once", "--db", store["db"])
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 14  # every event of the fixture (fewer than the default 20)
    assert "started (cli-test on" in lines[0] and lines[-1].endswith("stopped")
    assert "nightly-report  start session nightly-report" in lines[1]
    assert any("llm openai/gpt-4o 1.5k→89 tok $0.0012 812ms" in line for line in lines)
    assert len(run("tail", "--once", "-n", "3", "--db", store["db"])[1].splitlines()) == 3


def test_tail_json_kinds_and_after(run: Any, store: Dict[str, Any]) -> None:
    code, out, _ = run(
        "tail", "--once", "--json", "--kind", "llm_call", "--kind", "alert", "--db", store["db"]
    )
    assert code == 0
    docs = [json.loads(line) for line in out.splitlines()]
    assert [d["kind"] for d in docs] == ["llm_call", "alert"]
    after = docs[0]["rowid"]
    docs = [
        json.loads(line)
        for line in run("tail", "--once", "--json", "--after", str(after), "--db", store["db"])[
            1
        ].splitlines()
    ]
    assert docs[0]["rowid"] == after + 1 and docs[-1]["kind"] == "process_stop"


def test_tail_once_without_a_store(run: Any, tmp_path: Path) -> None:
    code, out, _ = run("tail", "--once", "--db", str(tmp_path / "missing.db"))
    assert code == 0 and "No events yet" in out


# -- demo -----------------------------------------------------------------------------------


def test_demo_runs_offline_and_show_prints_its_tree(run: Any, tmp_path: Path) -> None:
    db = str(tmp_path / "demo.db")
    code, out, _ = run("demo", "--db", db)
    assert code == 0
    assert f"session {DEMO_SESSION}" in out
    assert "2 LLM calls" in out
    assert "llm openai/gpt-4o-mini" in out and "llm openai/gpt-4o" in out
    assert "raised ValueError: invoice-1042.pdf is encrypted" in out
    assert "event attachment_skipped" in out and "metric emails_triaged = 3" in out
    assert f"agentpulse sessions --db {db}" in out
    show_line = next(line for line in out.splitlines() if line.strip().startswith("agentpulse show"))
    prefix = show_line.split()[2]
    code, shown, _ = run("show", prefix, "--db", db)
    assert code == 0
    assert f"session {DEMO_SESSION}" in shown
    assert re.search(r"(task|trace) classify", shown) and re.search(r"(task|trace) draft-reply", shown)
    (summary,) = json.loads(run("sessions", "--db", db, "--json")[1])
    assert summary["name"] == DEMO_SESSION and summary["llm_calls"] == 2 and summary["errors"] == 1
    assert summary["cost_usd"] is not None and summary["cost_usd"] > 0


def test_demo_records_the_calls_itself_when_no_integration_does(
    run: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTPULSE_PATCH_OPENAI", "false")
    db = str(tmp_path / "demo.db")
    code, out, _ = run("demo", "--db", db)
    assert code == 0
    assert "llm openai/gpt-4o-mini*" in out and "llm openai/gpt-4o* stream" in out
    assert "* recorded by the demo itself" in out
    (summary,) = json.loads(run("sessions", "--db", db, "--json")[1])
    assert summary["llm_calls"] == 2 and summary["cost_usd"] > 0


def test_demo_json(run: Any, tmp_path: Path) -> None:
    code, out, _ = run("demo", "--db", str(tmp_path / "demo.db"), "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["summary"]["name"] == DEMO_SESSION


def test_run_demo_refuses_to_take_over_a_running_client(tmp_path: Path) -> None:
    agentpulse.init(exporter="memory", auto_patch=False)
    with pytest.raises(RuntimeError):
        run_demo(tmp_path / "demo.db")


# -- the command itself -----------------------------------------------------------------------


def test_no_command_prints_help(run: Any) -> None:
    code, out, _ = run()
    assert code == 2 and "sessions" in out and "status" in out


def test_command_modules_that_are_not_installed_are_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "COMMANDS", ("status", "no_such_command"))
    parser = cli.build_parser()
    assert "status" in parser.format_help()
    assert "no_such_command" not in parser.format_help()


def test_python_dash_m_agentpulse(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "agentpulse", "sessions", "--db", str(tmp_path / "none.db"), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


# -- formatting -----------------------------------------------------------------------------------


def test_formatting_helpers() -> None:
    assert fmt_money(0.00123) == "$0.0012"
    assert fmt_money(None) == "—"
    assert fmt_money(0.000042) == "$0.000042"
    assert fmt_money(12.5) == "$12.50"
    assert fmt_money(0.5, complete=False) == "$0.5000+"
    assert fmt_tokens(None) == "?" and fmt_tokens(845) == "845" and fmt_tokens(12_345) == "12.3k"
    assert fmt_duration(812) == "812ms" and fmt_duration(1240) == "1.24s" and fmt_duration(185_000) == "3m05s"
    assert clip("abcdefghij", 5) == "abcd…"
    assert clip("日本語のセッション名", 7) == "日本語…" and text_width(clip("日本語のセッション名", 7)) == 7
    assert parse_since("2h", now=10_000.0) == 10_000.0 - 7200
    with pytest.raises(ValueError):
        parse_since("later")


def _lines(out: str) -> List[str]:
    return out.splitlines()
