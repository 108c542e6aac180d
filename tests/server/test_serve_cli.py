"""`agentpulse keys` and `agentpulse serve` as the command line sees them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List

import pytest

from agentpulse.cli import build_parser, main
from agentpulse.commands.serve import build_settings


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_keys_create_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "c.db")
    code, out, _ = _run(capsys, "keys", "create", "--name", "laptop", "--db", db)
    assert code == 0
    key = next(line.strip() for line in out.splitlines() if line.strip().startswith("ap_"))
    assert "shown only this once" in out and f"AGENTPULSE_API_KEY={key}" in out
    code, out, _ = _run(capsys, "keys", "list", "--db", db)
    assert code == 0 and "laptop" in out and "active" in out and key not in out
    code, out, _ = _run(capsys, "keys", "list", "--db", db, "--json")
    (listed,) = json.loads(out)
    assert listed["name"] == "laptop" and key.startswith(listed["prefix"])
    code, out, _ = _run(capsys, "keys", "revoke", "laptop", "--db", db)
    assert code == 0 and "Revoked" in out
    code, out, err = _run(capsys, "keys", "revoke", "laptop", "--db", db)
    assert code == 1 and "no active key" in err
    code, out, _ = _run(capsys, "keys", "list", "--db", db)
    assert "No API keys" in out
    code, out, _ = _run(capsys, "keys", "list", "--db", db, "--all")
    assert "revoked" in out


def test_keys_default_to_the_sdk_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The suite points AGENTPULSE_LOCAL_PATH at tmp_path/agentpulse.db.
    code, _, _ = _run(capsys, "keys", "create")
    assert code == 0
    assert (tmp_path / "agentpulse.db").exists()


def test_keys_without_action_prints_usage(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "keys")
    assert code == 2 and "create" in out


def test_keys_report_an_unreachable_store(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("psycopg")
    from collector_helpers import free_port

    code, _, err = _run(
        capsys, "keys", "list", "--db", f"postgresql://x@127.0.0.1:{free_port()}/x?connect_timeout=1"
    )
    assert code == 1 and "agentpulse keys:" in err


def _serve_args(*argv: str) -> Any:
    return build_parser().parse_args(["serve", *argv])


def test_serve_flags_become_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTPULSE_SERVE_WEBHOOK_URL", "http://127.0.0.1:9/hook")
    argv = ["--db", str(tmp_path / "x.db"), "--no-auth", "--retention-days", "30", "--max-body-mb", "1"]
    argv += ["--alert-cost-per-day", "20", "--alert-error-rate", "0.25", "--no-sdk-alerts"]
    s = build_settings(_serve_args(*argv))
    assert s.store == str(tmp_path / "x.db") and not s.auth and s.retention_days == 30
    assert s.webhook_url == "http://127.0.0.1:9/hook"
    assert s.rules.cost_per_day == 20 and s.rules.error_rate == 0.25 and not s.rules.sdk_alerts
    assert s.max_body_bytes == 1024 * 1024
    assert not s.reads_need_key()
    guarded = build_settings(_serve_args("--host", "0.0.0.0"))
    assert guarded.auth and guarded.reads_need_key()
    assert build_settings(_serve_args("--read-auth")).reads_need_key()
    assert not build_settings(_serve_args()).reads_need_key()  # loopback: reads open


@pytest.mark.parametrize("argv", [["--alert-error-rate", "3"], ["--retention-days", "-1"]])
def test_serve_refuses_bad_flags(argv: List[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "serve", *argv)
    assert code == 2 and "agentpulse serve:" in err
