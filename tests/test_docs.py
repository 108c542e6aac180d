"""Generated docs must match the code; docs examples must stay honest."""

from __future__ import annotations

import json

from agentpulse import _docgen
from agentpulse.models import Batch


def test_ingest_schema_is_fresh():
    committed = _docgen.SCHEMA_PATH.read_text(encoding="utf-8")
    assert committed == _docgen.ingest_schema(), "run: python -m agentpulse._docgen"


def test_configuration_reference_is_fresh():
    committed = _docgen.CONFIG_PATH.read_text(encoding="utf-8")
    assert committed == _docgen.config_reference(), "run: python -m agentpulse._docgen"


def test_wire_contract_example_validates():
    """The example body in docs/wire-contract.md is valid against the models."""
    text = (_docgen.ROOT / "docs" / "wire-contract.md").read_text(encoding="utf-8")
    start = text.index("```json\n") + len("```json\n")
    body = json.loads(text[start : text.index("```", start)])
    batch = Batch.model_validate(body)
    assert batch.events[0].kind == "llm_call"
