"""memory_report: size, lines, mtime, hash and the change since the previous report."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List

import agentpulse
from agentpulse import memory
from agentpulse.testing import Capture


def _files(cap: Capture) -> List[List[Dict[str, Any]]]:
    return [e["data"]["files"] for e in cap.events("memory_snapshot")]


def test_report_records_size_lines_mtime_and_hash(ap: Any, tmp_path: Path) -> None:
    cap = Capture(ap.client)
    mem = tmp_path / "MEMORY.md"
    mem.write_text("# Memory\n- likes tea\n- no meetings before 10", encoding="utf-8")
    with agentpulse.session("reflect"):
        fut = agentpulse.memory_report(mem)
        assert fut is not None
        (entry,) = fut.result(timeout=5)
    assert entry["size"] == mem.stat().st_size and entry["lines"] == 3
    assert entry["sha256"] == hashlib.sha256(mem.read_bytes()).hexdigest()
    assert entry["mtime"] == mem.stat().st_mtime and entry["exists"] is True
    assert entry["delta_bytes"] is None and entry["changed"] is None  # first report
    (event,) = cap.events("memory_snapshot")
    assert event["session"] == "reflect" and event["span_id"] == cap.span("reflect").span_id
    assert event["data"]["files"][0]["path"] == str(mem)


def test_delta_since_the_previous_report(ap: Any, tmp_path: Path) -> None:
    cap = Capture(ap.client)
    mem = tmp_path / "MEMORY.md"
    mem.write_text("a\nb\n", encoding="utf-8")

    def report(path: Any) -> None:
        # Files are read on a background thread: wait before changing them again.
        agentpulse.memory_report(path).result(timeout=5)  # type: ignore[union-attr]

    report(mem)
    report(mem)
    mem.write_text("a\nb\nc\nd\n", encoding="utf-8")
    report(str(mem))
    mem.unlink()
    report(mem)
    reports = [files[0] for files in _files(cap)]
    assert [r["delta_bytes"] for r in reports] == [None, 0, 4, -8]
    assert [r["changed"] for r in reports] == [None, False, True, True]
    assert reports[2]["delta_lines"] == 2
    assert reports[3]["exists"] is False and reports[3]["size"] is None


def test_the_previous_report_survives_a_restart(capture: Callable[..., Any], tmp_path: Path) -> None:
    mem = tmp_path / "notes.md"
    mem.write_text("one\n", encoding="utf-8")
    ap = capture(local_path=str(tmp_path / "store" / "agentpulse.db"))
    agentpulse.memory_report(mem).result(timeout=5)  # type: ignore[union-attr]
    agentpulse.shutdown()
    memory._memory_state.clear()  # a new process knows nothing but the state file
    state = json.loads((tmp_path / "store" / memory.STATE_FILE).read_text(encoding="utf-8"))
    assert str(mem.resolve()) in state[ap.client.config.agent_name]
    mem.write_text("one\ntwo\n", encoding="utf-8")
    cap = Capture(capture(local_path=str(tmp_path / "store" / "agentpulse.db")).client)
    (entry,) = agentpulse.memory_report(mem).result(timeout=5)  # type: ignore[union-attr]
    assert entry["delta_bytes"] == 4 and entry["changed"] is True
    assert _files(cap)[0][0]["delta_lines"] == 1


def test_directories_and_globs_expand(ap: Any, tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.md").write_text("a", encoding="utf-8")
    (tmp_path / "notes" / "sub").mkdir()
    (tmp_path / "notes" / "sub" / "b.md").write_text("bb\n", encoding="utf-8")
    (tmp_path / "notes" / ".hidden").write_text("x", encoding="utf-8")
    files = agentpulse.memory_report(tmp_path / "notes", str(tmp_path / "notes" / "*.md")).result(timeout=5)  # type: ignore[union-attr]
    names = [os.path.relpath(f["path"], tmp_path) for f in files]
    assert names == ["notes/a.md", "notes/sub/b.md", "notes/a.md"]
    assert [f["lines"] for f in files] == [1, 1, 1]


def test_empty_and_binary_files(ap: Any, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    blob = tmp_path / "blob"
    blob.write_bytes(bytes(range(256)) * 10)
    e, b = agentpulse.memory_report(empty, blob).result(timeout=5)  # type: ignore[union-attr]
    assert (e["size"], e["lines"]) == (0, 0)
    assert b["size"] == 2560 and b["sha256"] == hashlib.sha256(blob.read_bytes()).hexdigest()


def test_files_are_read_off_the_callers_thread(ap: Any, tmp_path: Path, monkeypatch: Any) -> None:
    readers: List[str] = []
    real_read = memory._read

    def spy(path: str) -> Dict[str, Any]:
        readers.append(threading.current_thread().name)
        return real_read(path)

    monkeypatch.setattr(memory, "_read", spy)
    mem = tmp_path / "m.md"
    mem.write_text("x", encoding="utf-8")
    agentpulse.memory_report(mem).result(timeout=5)  # type: ignore[union-attr]
    assert readers and all(name.startswith("agentpulse-memory") for name in readers)


def test_report_is_stamped_with_the_call_time_and_flushed_before_shutdown(ap: Any, tmp_path: Path) -> None:
    cap = Capture(ap.client)
    mem = tmp_path / "m.md"
    mem.write_text("x", encoding="utf-8")
    with agentpulse.session("s"):
        agentpulse.memory_report(mem)
        agentpulse.event("after")
    assert agentpulse.flush()
    (snapshot,) = cap.events("memory_snapshot")
    (event,) = cap.events("event")
    assert snapshot["ts"] <= event["ts"]  # stamped when asked for, though recorded after
    assert snapshot["session"] == "s"


def test_before_init_it_does_nothing(tmp_path: Path) -> None:
    assert agentpulse.memory_report(tmp_path / "x") is None


def test_unwritable_state_keeps_deltas_in_memory(capture: Callable[..., Any], tmp_path: Path) -> None:
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("", encoding="utf-8")
    capture(local_path=str(blocker / "agentpulse.db"), exporter="memory")
    mem = tmp_path / "m.md"
    mem.write_text("x", encoding="utf-8")
    agentpulse.memory_report(mem).result(timeout=5)  # type: ignore[union-attr]
    mem.write_text("xy", encoding="utf-8")
    (entry,) = agentpulse.memory_report(mem).result(timeout=5)  # type: ignore[union-attr]
    assert entry["delta_bytes"] == 1


def test_scan_without_an_event(tmp_path: Path) -> None:
    mem = tmp_path / "m.md"
    mem.write_text("l1\nl2\n", encoding="utf-8")
    state: Dict[str, Dict[str, Any]] = {}
    (first,) = memory.scan(mem, previous=state)
    mem.write_text("l1\n", encoding="utf-8")
    (second,) = memory.scan(mem, previous=state)
    assert first["lines"] == 2 and second["delta_lines"] == -1 and second["delta_bytes"] == -3


def test_report_from_an_atexit_handler(tmp_path: Path) -> None:
    import subprocess
    import sys

    mem = tmp_path / "m.md"
    mem.write_text("x\n", encoding="utf-8")
    script = f"""
import atexit, agentpulse
agentpulse.init(exporter="memory", auto_patch=False, local_path={str(tmp_path / "ap.db")!r})

def at_exit():
    files = agentpulse.memory_report({str(mem)!r}).result(timeout=5)
    print("size", files[0]["size"])

atexit.register(at_exit)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "size 2" in out.stdout and "Traceback" not in out.stderr
