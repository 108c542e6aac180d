"""How the framework adapters are switched on and off: at init(), on a later import, by option."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

import agentpulse
from agentpulse import frameworks

Capture = Callable[..., Any]

# Run in a fresh interpreter, so the framework is imported only after init().
IMPORTED_LATER = r"""
import json, sys
import agentpulse
from agentpulse import frameworks
client = agentpulse.init(exporter="memory", flush_interval=0.05)
assert "langchain_core" not in sys.modules
before = frameworks.installed()
from langchain_core.language_models import FakeListChatModel
from langchain_core.prompts import ChatPromptTemplate
after = frameworks.installed()
chain = ChatPromptTemplate.from_messages([("user", "{q}")]) | FakeListChatModel(responses=["ok"])
with agentpulse.session("late"):
    chain.invoke({"q": "?"})
client.flush(5)
events = [(e["kind"], e["data"].get("name") or e["data"].get("provider")) for e in client.exporter.events]
print(json.dumps({"before": before, "after": after, "events": events}))
"""


def _python(code: str, **env: str) -> Any:
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=dict(os.environ, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_framework_imported_after_init_is_covered(tmp_path: Path) -> None:
    pytest.importorskip("langchain_core")
    got = _python(IMPORTED_LATER, AGENTPULSE_LOCAL_PATH=str(tmp_path / "ap.db"))
    assert got["before"] == [] and got["after"] == ["langchain"]
    kinds = [k for k, _ in got["events"]]
    assert ("span_start", "RunnableSequence") in [tuple(e) for e in got["events"]]
    assert kinds.count("llm_call") == 1


def test_a_package_that_only_shares_the_name_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "__init__.py").write_text("WHAT = 'my own agents package'\n")
    code = (
        "import json, agentpulse\n"
        "from agentpulse import frameworks\n"
        "from agentpulse._internal import internal_errors\n"
        "agentpulse.init(exporter='memory')\n"
        "import agents\n"
        "print(json.dumps({'installed': frameworks.installed(), 'errors': internal_errors.count}))\n"
    )
    got = _python(code, PYTHONPATH=str(tmp_path), AGENTPULSE_LOCAL_PATH=str(tmp_path / "ap.db"))
    assert got == {"installed": [], "errors": 0}


def test_auto_patch_false_switches_every_adapter_off(capture: Capture) -> None:
    capture(auto_patch=False)
    assert frameworks.installed() == []


def test_install_is_idempotent_and_uninstall_clears(capture: Capture) -> None:
    pytest.importorskip("langchain_core")
    cap = capture()
    first = frameworks.installed()
    assert "langchain" in first
    frameworks.install_frameworks(cap.client)
    assert frameworks.installed() == first
    agentpulse.shutdown()
    assert frameworks.installed() == []
    frameworks.uninstall_frameworks()  # twice: nothing to do
    assert frameworks.installed() == []


def test_framework_errors_carry_the_framework_type_name() -> None:
    err = frameworks.framework_error("TaskFailed", "no answer")
    assert type(err).__name__ == "TaskFailed" and str(err) == "no answer"
    assert isinstance(err, frameworks.FrameworkError)
    assert type(frameworks.framework_error("not an identifier!", "x")) is frameworks.FrameworkError


LATE_ADAPTER = """
import json, agentpulse
from agentpulse import frameworks
agentpulse.init(exporter='memory')
before = frameworks.installed()
import {module}
print(json.dumps({{"before": before, "after": frameworks.installed()}}))
agentpulse.shutdown()
"""


@pytest.mark.parametrize(("module", "adapter"), [("agents", "openai_agents"), ("crewai", "crewai")])
def test_agents_sdk_and_crewai_imported_after_init_are_covered(
    tmp_path: Path, module: str, adapter: str
) -> None:
    pytest.importorskip(module)
    got = _python(LATE_ADAPTER.format(module=module), AGENTPULSE_LOCAL_PATH=str(tmp_path / "ap.db"))
    assert adapter not in got["before"]
    assert adapter in got["after"]
