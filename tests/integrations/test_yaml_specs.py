"""YAML patch specs: a user instruments a client class of their own with no Python."""

from __future__ import annotations

import importlib
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from sdk_fakes import ACME_SOURCE, llm_calls, one_call

import agentpulse
from agentpulse.config import ConfigError
from agentpulse.patching import PatchSpecError
from agentpulse.patching.engine import AgentPulseWrapper
from agentpulse.patching.yaml_specs import load_spec_file


def _write(tmp_path: Path, text: str, name: str = "specs.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _acme_yaml(module: str) -> str:
    return f"""
    specs:
      - module: {module}
        target: AcmeClient.complete
        provider: acme
        operation: chat
        model: self.model
        temperature: kwargs.temperature
        input: args.0
        response_model: result.model
        input_tokens: result.usage.prompt_tokens
        output_tokens: result.usage.completion_tokens
        finish_reason: result.choices.0.finish_reason
        output: result.text
      - module: {module}
        target: AcmeClient.stream
        provider: acme
        stream: always
        model: self.model
        output: chunk.text
        input_tokens: chunk.usage.prompt_tokens
        output_tokens: chunk.usage.completion_tokens
      - module: {module}
        target: complete
        provider: acme
        model: kwargs.model
        input_tokens: result.usage.prompt_tokens
        output_tokens: result.usage.completion_tokens
    """


def test_yaml_spec_instruments_a_client_of_our_own(capture: Any, make_module: Any, tmp_path: Path) -> None:
    module = make_module(ACME_SOURCE)
    path = _write(tmp_path, _acme_yaml(module))
    cap = capture(patch_specs=[str(path)], capture_messages=True)
    mod = importlib.import_module(module)
    assert isinstance(vars(mod.AcmeClient)["complete"], AgentPulseWrapper)
    reply = mod.AcmeClient().complete("hello", temperature=0.3)
    assert reply.text == "echo: hello"
    data = one_call(cap)
    assert data["provider"] == "acme" and data["operation"] == "chat"
    assert data["model"] == "acme-large"
    assert data["response_model"] == "acme-large-001"
    assert (data["input_tokens"], data["output_tokens"]) == (11, 7)
    assert data["temperature"] == 0.3
    assert data["finish_reason"] == "stop"
    assert data["input"] == "hello" and data["output"] == "echo: hello"
    assert data["cost_usd"] is None and "unknown model" in data["cost_reason"]


def test_yaml_stream_and_function_specs(capture: Any, make_module: Any, tmp_path: Path) -> None:
    module = make_module(ACME_SOURCE)
    cap = capture(patch_specs=[str(_write(tmp_path, _acme_yaml(module)))])
    mod = importlib.import_module(module)
    assert [c.text for c in mod.AcmeClient().stream("a b")] == ["a", "b", ""]
    mod.complete("x", model="acme-small")
    stream_call, fn_call = (c["data"] for c in llm_calls(cap))
    assert stream_call["streaming"] is True and stream_call["status"] == "success"
    assert (stream_call["input_tokens"], stream_call["output_tokens"]) == (3, 4)
    assert stream_call["time_to_first_token_ms"] is not None
    assert fn_call["model"] == "acme-small" and fn_call["input_tokens"] == 11


def test_env_var_and_json_file(monkeypatch: Any, make_module: Any, tmp_path: Path) -> None:
    module = make_module(ACME_SOURCE)
    spec = {"module": module, "target": "AcmeClient.complete", "provider": "acme", "model": "self.model"}
    path = tmp_path / "specs.json"
    path.write_text(json.dumps([spec]), encoding="utf-8")
    monkeypatch.setenv("AGENTPULSE_PATCH_SPECS", f"{path}")
    client = agentpulse.init(exporter="memory")
    assert client.config.patch_specs == [path]
    mod = importlib.import_module(module)
    mod.AcmeClient(model="acme-mini").complete("hi")
    client.flush()
    calls = [e["data"] for e in client.exporter.events if e["kind"] == "llm_call"]  # type: ignore[attr-defined]
    assert [c["model"] for c in calls] == ["acme-mini"]


@pytest.mark.parametrize(
    ("body", "entry", "field", "words"),
    [
        (
            "- module: acme\n  target: C.m\n  provider: acme\n  inptu_tokens: result.x\n",
            0,
            "inptu_tokens",
            "did you mean 'input_tokens'",
        ),
        (
            "- module: acme\n  target: C.m\n  provider: acme\n  input_tokens: response.usage\n",
            0,
            "input_tokens",
            "path starting with one of",
        ),
        (
            "- module: acme\n  target: C.m\n  provider: acme\n- module: acme\n  target: C.m\n",
            1,
            "provider",
            "required",
        ),
        ("- module: acme\n  target: C..m\n  provider: acme\n", 0, "target", "dotted"),
        ("- module: acme\n  target: C.m\n  provider: acme\n  output: chunk.text\n", 0, "output", "stream"),
        ("- module: acme\n  target: C.m\n  provider: acme\n  stream: maybe\n", 0, "stream", "never, kwarg"),
        (
            "- module: acme\n  target: C.m\n  provider: acme\n  model: args.model\n",
            0,
            "model",
            "args.<index>",
        ),
        (
            "- module: acme\n  target: C.m\n  provider: acme\n- module: acme\n  target: C.m\n  provider: b\n",
            1,
            "target",
            "same target",
        ),
        ("- just a string\n", 0, None, "mapping"),
    ],
)
def test_bad_file_fails_init_naming_file_entry_and_field(
    tmp_path: Path, body: str, entry: int, field: Any, words: str
) -> None:
    path = _write(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        agentpulse.init(exporter="memory", patch_specs=[str(path)])
    err = info.value
    assert isinstance(err, PatchSpecError)
    assert (err.file, err.entry, err.field) == (str(path), entry, field)
    text = str(err)
    assert str(path) in text and f"entry {entry}" in text and words in text
    if field is not None:
        assert repr(field) in text
    assert agentpulse.get_client() is None


@pytest.mark.parametrize(
    ("name", "body", "words"),
    [
        ("broken.yaml", "specs: [\n", "not valid YAML"),
        ("broken.json", "[{", "not valid JSON"),
        ("top.yaml", "specs: []\nextra: 1\n", "unknown top-level key 'extra'"),
        ("scalar.yaml", "42\n", "list of entries"),
    ],
)
def test_bad_file_shapes(tmp_path: Path, name: str, body: str, words: str) -> None:
    path = _write(tmp_path, body, name)
    with pytest.raises(PatchSpecError, match=words) as info:
        load_spec_file(path)
    assert info.value.file == str(path) and info.value.entry is None


def test_missing_file_fails_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        agentpulse.init(exporter="memory", patch_specs=[str(tmp_path / "nope.yaml")])


def test_empty_file_is_fine(tmp_path: Path) -> None:
    assert load_spec_file(_write(tmp_path, "specs:\n")) == []
    assert load_spec_file(_write(tmp_path, "", "empty.yaml")) == []


def test_paths_read_attributes_keys_and_indexes(capture: Any, make_module: Any, tmp_path: Path) -> None:
    module = make_module(
        """
        class Client:
            def run(self, payload, *, opts=None):
                return {"meta": {"model": "m-1"}, "counts": [5, 6], "cost": 0.25}
        """
    )
    path = _write(
        tmp_path,
        f"""
        - module: {module}
          target: Client.run
          provider: acme
          model: args.0.model
          max_tokens: kwargs.opts.limit
          response_model: result.meta.model
          input_tokens: result.counts.0
          output_tokens: result.counts.-1
          cost_usd: result.cost
        """,
    )
    with pytest.raises(ConfigError, match="bad segment '-1'"):
        capture(patch_specs=[str(path)])
    path.write_text(path.read_text().replace("result.counts.-1", "result.counts.1"), encoding="utf-8")
    cap = capture(patch_specs=[str(path)])
    mod = importlib.import_module(module)
    mod.Client().run({"model": "m"}, opts={"limit": 64})
    data = one_call(cap)
    assert (data["model"], data["max_tokens"], data["response_model"]) == ("m", 64, "m-1")
    assert (data["input_tokens"], data["output_tokens"]) == (5, 6)
    assert (data["cost_usd"], data["cost_source"]) == (0.25, "provider")
