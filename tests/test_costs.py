from __future__ import annotations

import datetime
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

from agentpulse import costs
from agentpulse.costs import (
    CostResult,
    Price,
    PriceTable,
    compute_cost,
    default_table,
    load_overrides,
    normalize_model,
    provider_cost,
)

PRICING = Path(costs.__file__).resolve().parent / "data" / "pricing.json"


def raw_table() -> Dict[str, Any]:
    data: Dict[str, Any] = json.loads(PRICING.read_text(encoding="utf-8"))
    return data


def usd(value: float) -> float:
    return pytest.approx(value, rel=1e-9, abs=1e-15)  # type: ignore[no-any-return]


# --- name matching -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("gpt-4o", "gpt-4o"),
        ("GPT-4o", "gpt-4o"),
        ("  gpt-4o  ", "gpt-4o"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("o3-mini-2025-01-31", "o3-mini"),
        ("gpt-4-0613", "gpt-4"),
        ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("claude-3-5-sonnet@20240620", "claude-3-5-sonnet"),
        ("vertex_ai/claude-sonnet-4@20250514", "claude-sonnet-4"),
        ("openai/gpt-4o", "gpt-4o"),
        ("anthropic/claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("gemini/gemini-2.5-pro", "gemini-2.5-pro"),
        ("models/gemini-2.5-flash", "gemini-2.5-flash"),
        ("vertex_ai/gemini-2.0-flash-001", "gemini-2.0-flash-001"),
        ("bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0", "claude-3-5-sonnet"),
        ("us.anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4"),
        ("groq/llama-3.3-70b-versatile", "llama-3.3-70b-versatile"),
        ("groq/openai/gpt-oss-120b", "gpt-oss-120b"),
        ("together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo", "meta-llama/llama-3.3-70b-instruct-turbo"),
        ("mistral/mistral-large-latest", "mistral-large-latest"),
        ("deepseek/deepseek-chat", "deepseek-chat"),
        ("cohere/command-r-plus", "command-r-plus"),
        # not a snapshot of anything: kept as is
        ("mistral-large-2411", "mistral-large-2411"),
        ("grok-4-0709", "grok-4-0709"),
        ("claude-3-5-sonnet-latest", "claude-3-5-sonnet-latest"),
        ("ft:gpt-4o-mini-2024-07-18:acme::abc123", "ft:gpt-4o-mini-2024-07-18:acme::abc123"),
        ("", ""),
    ],
)
def test_normalize_model(raw: str, expected: str) -> None:
    assert normalize_model(raw) == expected


def test_normalize_model_odd_input() -> None:
    assert normalize_model(None) == ""  # type: ignore[arg-type]
    assert normalize_model(42) == ""  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("openai/gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),  # listed on its own, with its own price
        ("chatgpt-4o-latest", "chatgpt-4o-latest"),
        ("o1-preview-2024-09-12", "o1"),
        ("gpt-4-1106-preview", "gpt-4-turbo"),
        ("claude-3-5-sonnet-latest", "claude-3-5-sonnet"),
        ("vertex_ai/claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet"),
        ("claude-4-sonnet-20250514", "claude-sonnet-4"),
        ("models/gemini-2.5-flash", "gemini-2.5-flash"),
        ("gemini-2.0-flash-001", "gemini-2.0-flash"),
        ("command-r-plus-08-2024", "command-r-plus"),
        ("mistral-large-latest", "mistral-large-2512"),
        ("mistral-large-2411", "mistral-large-2411"),
        ("xai/grok-4-0709", "grok-4"),
        ("groq/llama-3.1-8b-instant", "llama-3.1-8b-instant"),
        (
            "together_ai/meta-llama/Meta-Llama-3.1-405B-Instruct-Turbo",
            "meta-llama/Meta-Llama-3.1-405B-Instruct-Turbo",
        ),
        ("text-embedding-3-small", "text-embedding-3-small"),
    ],
)
def test_lookup_exact_and_alias(raw: str, canonical: str) -> None:
    price = default_table().lookup(raw)
    assert price is not None
    assert price.model == canonical


@pytest.mark.parametrize(
    "raw",
    [
        "gpt-4o-mini-foo",
        "gpt-4o-foo",
        "gpt-4o2",
        "gpt-4.1-mega",
        "claude-3-5",
        "claude-sonnet",
        "claude-sonnet-4-5-turbo",
        "gemini-2.5",
        "gemini-2.5-flash-ultra",
        "llama-3.3-70b",
        "mistral-large",
        "mistral-small-latest",  # not listed: -latest is never stripped
        "ft:gpt-4o-mini-2024-07-18:acme::abc123",
        "",
    ],
)
def test_no_loose_prefix_match(raw: str) -> None:
    assert default_table().lookup(raw) is None
    assert raw not in default_table()


def test_lookup_every_listed_name_resolves_to_its_entry() -> None:
    table = default_table()
    for entry in raw_table()["models"]:
        for name in [entry["model"], *entry["aliases"]]:
            price = table.lookup(name)
            assert price is not None, name
            assert price.model == entry["model"], name
            assert table.lookup(name.upper()) is price


def test_lookup_provider_breaks_ties_between_providers() -> None:
    table = PriceTable(
        [
            Price(input=1.0, output=2.0, model="llama-x", provider="groq"),
            Price(input=3.0, output=4.0, model="llama-x", provider="together_ai"),
        ]
    )
    assert table.lookup("llama-x").input == 1.0  # type: ignore[union-attr]
    assert table.lookup("llama-x", provider="together").input == 3.0  # type: ignore[union-attr]
    assert table.lookup("llama-x", provider="groq").input == 1.0  # type: ignore[union-attr]
    assert table.lookup("llama-x", provider="unrelated").input == 1.0  # type: ignore[union-attr]
    assert table.lookup(123) is None  # type: ignore[arg-type]


def test_duplicate_name_for_one_provider_is_rejected() -> None:
    with pytest.raises(ValueError, match="twice"):
        PriceTable(
            [
                Price(1.0, 2.0, model="a", provider="p"),
                Price(1.0, 2.0, model="b", aliases=("A",), provider="p"),
            ]
        )


# --- the shipped table ------------------------------------------------------------------------------


def test_table_size_and_providers() -> None:
    data = raw_table()
    assert len(data["models"]) >= 45
    providers = {entry["provider"] for entry in data["models"]}
    assert len(providers) >= 7
    assert {"openai", "anthropic", "google", "cohere", "mistral", "deepseek"} <= providers
    table = default_table()
    assert len(table) == len(data["models"])
    assert table.providers == providers


def test_table_checked_date() -> None:
    checked = raw_table()["checked"]
    assert datetime.date.fromisoformat(checked) == datetime.date(2026, 11, 26)
    assert default_table().checked == checked


def test_table_rates_are_sane() -> None:
    for entry in raw_table()["models"]:
        name = entry["model"]
        assert entry["provider"] and isinstance(entry["provider"], str), name
        assert isinstance(entry["aliases"], list), name
        assert entry["input"] > 0, name
        if entry.get("kind") == "embedding":
            assert entry["output"] == 0, name  # embeddings bill input only
        else:
            assert entry["output"] > 0, name
        for field in ("cached_input", "cache_write", "reasoning"):
            if field in entry:
                assert math.isfinite(entry[field]) and entry[field] > 0, (name, field)
        if "cached_input" in entry:
            assert entry["cached_input"] < entry["input"], name


def test_every_name_and_alias_is_unique() -> None:
    names: List[str] = []
    for entry in raw_table()["models"]:
        names.extend(n.lower() for n in [entry["model"], *entry["aliases"]])
    duplicates = sorted({n for n in names if names.count(n) > 1})
    assert duplicates == []


def test_table_entries_only_use_known_fields() -> None:
    allowed = {"provider", "model", "aliases", "input", "cached_input", "cache_write", "output", "reasoning"}
    allowed |= {"kind", "notes"}
    for entry in raw_table()["models"]:
        assert set(entry) <= allowed, entry["model"]


def test_anthropic_cache_prices_follow_the_published_multipliers() -> None:
    for entry in raw_table()["models"]:
        if entry["provider"] == "anthropic":
            # 5-minute writes are 1.25x input and reads 0.1x; Claude 3 Haiku's published
            # $0.30 / $0.03 are rounded up from $0.3125 / $0.025.
            assert 1.19 <= entry["cache_write"] / entry["input"] <= 1.251, entry["model"]
            assert 0.099 <= entry["cached_input"] / entry["input"] <= 0.121, entry["model"]


def test_table_reads_without_importlib_resources(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.resources

    def broken(_package: str) -> None:
        raise ModuleNotFoundError("no resources here")

    monkeypatch.setattr(importlib.resources, "files", broken)
    data = json.loads(costs._read_pricing_text())
    assert data["checked"] == raw_table()["checked"]


def test_from_data_rejects_bad_tables() -> None:
    with pytest.raises(ValueError, match="'models'"):
        PriceTable.from_data({"checked": "2026-01-01"})
    with pytest.raises(ValueError, match=r"'gpt-x'.*'output'"):
        PriceTable.from_data(
            {"models": [{"provider": "openai", "model": "gpt-x", "aliases": [], "input": 1}]}
        )


# --- arithmetic --------------------------------------------------------------------------------------

RATES = {"input": 2.0, "cached_input": 0.5, "cache_write": 3.0, "output": 10.0, "reasoning": 20.0}


def priced(**counts: Any) -> CostResult:
    return compute_cost("test-model", overrides={"test-model": RATES}, **counts)


def test_uncached_input_and_output() -> None:
    result = priced(input_tokens=1_000_000, output_tokens=1_000_000)
    assert result == CostResult(usd(12.0), "override", None)


def test_cache_reads_priced_at_cached_rate() -> None:
    result = priced(input_tokens=1_000_000, cache_read_tokens=400_000, output_tokens=0)
    assert result.cost_usd == usd(0.6 * 2.0 + 0.4 * 0.5)


def test_cache_writes_priced_at_write_rate() -> None:
    result = priced(input_tokens=1_000_000, cache_write_tokens=250_000, output_tokens=0)
    assert result.cost_usd == usd(0.75 * 2.0 + 0.25 * 3.0)


def test_reasoning_priced_at_reasoning_rate_and_not_twice() -> None:
    result = priced(input_tokens=0, output_tokens=1_000_000, reasoning_tokens=300_000)
    assert result.cost_usd == usd(0.7 * 10.0 + 0.3 * 20.0)


def test_all_parts_together() -> None:
    result = priced(
        input_tokens=1_000_000,
        cache_read_tokens=500_000,
        cache_write_tokens=100_000,
        output_tokens=200_000,
        reasoning_tokens=50_000,
    )
    expected = 0.4 * 2.0 + 0.5 * 0.5 + 0.1 * 3.0 + 0.15 * 10.0 + 0.05 * 20.0
    assert result.cost_usd == usd(expected)


def test_missing_cache_and_reasoning_rates_fall_back() -> None:
    price = Price(input=2.0, output=10.0)
    assert price.cache_read_rate == 2.0
    assert price.cache_write_rate == 2.0
    assert price.reasoning_rate == 10.0
    cost = price.cost(
        input_tokens=1_000_000, cache_read_tokens=600_000, cache_write_tokens=100_000, output_tokens=1_000_000
    )
    assert cost == usd(2.0 + 10.0)
    assert price.cost(output_tokens=1_000_000, reasoning_tokens=1_000_000) == usd(10.0)


def test_parts_larger_than_their_total_are_clamped_not_negative() -> None:
    result = priced(
        input_tokens=100, cache_read_tokens=1_000_000, output_tokens=10, reasoning_tokens=1_000_000
    )
    assert result.cost_usd == usd(0.5 + 20.0)


def test_openai_shaped_usage_input_includes_cached() -> None:
    # ChatCompletion usage: prompt_tokens=1000 (400 of them cached), completion_tokens=300 (100 reasoning)
    result = compute_cost(
        "gpt-4o-2024-08-06",
        provider="openai",
        input_tokens=1000,
        cache_read_tokens=400,
        output_tokens=300,
        reasoning_tokens=100,
    )
    expected = (600 * 2.50 + 400 * 1.25 + 200 * 10.0 + 100 * 10.0) / 1e6
    assert result == CostResult(usd(expected), "table", None)


def test_anthropic_shaped_usage_after_normalisation() -> None:
    # Message usage: input_tokens=100 (uncached only), cache_read_input_tokens=1000,
    # cache_creation_input_tokens=200, output_tokens=50; the extractor sums input to 1300.
    result = compute_cost(
        "claude-sonnet-4-20250514",
        provider="anthropic",
        input_tokens=100 + 1000 + 200,
        cache_read_tokens=1000,
        cache_write_tokens=200,
        output_tokens=50,
    )
    expected = (100 * 3.0 + 1000 * 0.30 + 200 * 3.75 + 50 * 15.0) / 1e6
    assert result == CostResult(usd(expected), "table", None)


def test_gemini_thinking_priced_at_output_rate() -> None:
    result = compute_cost("gemini-2.5-flash", input_tokens=1000, output_tokens=500, reasoning_tokens=400)
    assert result.cost_usd == usd((1000 * 0.30 + 500 * 2.50) / 1e6)


def test_embedding_cost() -> None:
    result = compute_cost("text-embedding-3-small", input_tokens=1_000_000)
    assert result == CostResult(usd(0.02), "table", None)


def test_dated_snapshot_with_its_own_price() -> None:
    old = compute_cost("gpt-4o-2024-05-13", input_tokens=1_000_000, output_tokens=0)
    new = compute_cost("gpt-4o-2024-11-20", input_tokens=1_000_000, output_tokens=0)
    assert (old.cost_usd, new.cost_usd) == (usd(5.0), usd(2.5))


def test_only_output_known() -> None:
    result = compute_cost("gpt-4o", output_tokens=1_000_000)
    assert result == CostResult(usd(10.0), "table", None)


# --- missing data ------------------------------------------------------------------------------------


def test_no_token_counts() -> None:
    assert compute_cost("gpt-4o") == CostResult(None, None, "no token counts")
    assert compute_cost("gpt-4o", cache_read_tokens=5, reasoning_tokens=3) == CostResult(
        None, None, "no token counts"
    )


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "12", True, object()])
def test_unusable_counts_are_treated_as_unknown(bad: Any) -> None:
    assert compute_cost("gpt-4o", input_tokens=bad, output_tokens=bad).cost_usd is None
    result = compute_cost("gpt-4o", input_tokens=1_000_000, output_tokens=0, cache_read_tokens=bad)
    assert result.cost_usd == usd(2.5)


def test_float_counts_are_accepted() -> None:
    assert compute_cost("gpt-4o", input_tokens=1e6, output_tokens=0.0).cost_usd == usd(2.5)


def test_no_model() -> None:
    assert compute_cost(None, input_tokens=1) == CostResult(None, None, "no model name")
    assert compute_cost("  ", input_tokens=1) == CostResult(None, None, "no model name")
    assert compute_cost(7, input_tokens=1).cost_usd is None  # type: ignore[arg-type]


def test_unknown_model_is_none_with_reason_and_logged_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logging.getLogger("agentpulse"), "propagate", True)
    caplog.set_level(logging.DEBUG, logger="agentpulse")
    name = "acme-unlisted-model-7f3a"
    first = compute_cost(name, input_tokens=10, output_tokens=5)
    assert first == CostResult(None, None, f"unknown model '{name}'")
    assert first.cost_usd != 0
    for _ in range(3):
        assert compute_cost(name, input_tokens=10, output_tokens=5).cost_usd is None
    compute_cost(f"openai/{name}", input_tokens=1)
    lines = [r for r in caplog.records if r.name == "agentpulse" and name in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].levelno == logging.DEBUG


def test_compute_cost_never_raises() -> None:
    weird_overrides: Any = ["not", "a", "mapping"]
    result = compute_cost("gpt-4o", input_tokens=1, overrides=weird_overrides)
    assert result.cost_usd is None
    assert result.reason is not None


# --- overrides ---------------------------------------------------------------------------------------


def test_override_wins_over_table() -> None:
    overrides = load_overrides({"gpt-4o": {"input": 1.0, "output": 1.0}})
    result = compute_cost(
        "openai/gpt-4o-2024-08-06", input_tokens=1_000_000, output_tokens=0, overrides=overrides
    )
    assert result == CostResult(usd(1.0), "override", None)
    other = compute_cost("gpt-4o-mini", input_tokens=1_000_000, output_tokens=0, overrides=overrides)
    assert other == CostResult(usd(0.15), "table", None)


def test_override_adds_a_model_with_aliases() -> None:
    overrides = load_overrides(
        {"acme-ft": {"input": 0.3, "output": 1.2, "cached_input": 0.1, "aliases": ["acme-ft-v2"]}}
    )
    assert set(overrides) == {"acme-ft", "acme-ft-v2"}
    result = compute_cost("acme-ft-v2", input_tokens=1_000_000, output_tokens=1_000_000, overrides=overrides)
    assert result == CostResult(usd(1.5), "override", None)


def test_raw_override_mapping_with_unnormalised_keys() -> None:
    raw = {"OpenAI/GPT-4o": {"input": 1, "output": 1}}
    result = compute_cost("gpt-4o", input_tokens=1_000_000, output_tokens=0, overrides=raw)
    assert result == CostResult(usd(1.0), "override", None)


def test_invalid_raw_override_gives_none_not_an_exception() -> None:
    result = compute_cost("x-model", input_tokens=1, overrides={"x-model": {"input": 1}})
    assert result.cost_usd is None
    assert result.reason is not None and "'output'" in result.reason


def test_override_accepts_price_objects() -> None:
    overrides = load_overrides({"acme": Price(input=1.0, output=2.0)})
    assert overrides["acme"].model == "acme"


def test_overrides_from_json_file(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"acme-json": {"input": 1, "output": 2, "reasoning": 4}}), encoding="utf-8")
    overrides = load_overrides(path)
    assert overrides["acme-json"] == Price(input=1.0, output=2.0, reasoning=4.0, model="acme-json")
    assert load_overrides(str(path)) == overrides


def test_overrides_from_yaml_file(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    path = tmp_path / "prices.yaml"
    path.write_text(
        "acme-yaml:\n  input: 0.5\n  output: 1.5\n  cache_write: 0.625\n"
        "'openai/gpt-4o':\n  input: 1\n  output: 1\n",
        encoding="utf-8",
    )
    overrides = load_overrides(path)
    assert overrides["acme-yaml"].cache_write == 0.625
    assert "gpt-4o" in overrides
    yml = tmp_path / "prices.yml"
    yml.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    assert load_overrides(yml) == overrides


def test_overrides_file_in_table_shape(tmp_path: Path) -> None:
    path = tmp_path / "table.json"
    entry = {"provider": "acme", "model": "acme-1", "aliases": ["acme-one"], "input": 1, "output": 2}
    path.write_text(json.dumps({"checked": "2026-11-26", "models": [entry]}), encoding="utf-8")
    overrides = load_overrides(path)
    assert set(overrides) == {"acme-1", "acme-one"}
    assert overrides["acme-one"].provider == "acme"


def test_overrides_none_is_empty() -> None:
    assert load_overrides(None) == {}
    assert load_overrides({}) == {}


@pytest.mark.parametrize(
    ("rates", "field"),
    [
        ({"input": 1}, "output"),
        ({"output": 1}, "input"),
        ({"input": 1, "output": "lots"}, "output"),
        ({"input": -1, "output": 1}, "input"),
        ({"input": 1, "output": float("nan")}, "output"),
        ({"input": True, "output": 1}, "input"),
        ({"input": 1, "output": 1, "cached_input": [1]}, "cached_input"),
        ({"input": 1, "output": 1, "ouput": 2}, "ouput"),
        ({"input": 1, "output": 1, "aliases": "acme-2"}, "aliases"),
    ],
)
def test_bad_override_names_model_and_field(rates: Dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError) as info:
        load_overrides({"acme-bad": rates})
    message = str(info.value)
    assert "'acme-bad'" in message
    assert repr(field) in message


def test_override_numeric_strings_are_accepted() -> None:
    assert load_overrides({"acme": {"input": "0.5", "output": "1e-1"}})["acme"].output == 0.1


def test_bad_override_shapes() -> None:
    with pytest.raises(ValueError, match="'acme'"):
        load_overrides({"acme": 3})
    with pytest.raises(ValueError, match="model names"):
        load_overrides({"": {"input": 1, "output": 1}})
    with pytest.raises(ValueError, match="map model names"):
        load_overrides([1, 2])  # type: ignore[arg-type]


def test_bad_override_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        load_overrides(tmp_path / "missing.json")
    with pytest.raises(ValueError, match=r"\.json, \.yaml or \.yml"):
        load_overrides(tmp_path / "prices.toml")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_overrides(broken)
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ValueError, match="map model names"):
        load_overrides(listed)


def test_bad_yaml_file(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    path = tmp_path / "broken.yaml"
    path.write_text("acme: [unclosed\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_overrides(path)


def test_yaml_without_pyyaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)
    path = tmp_path / "prices.yaml"
    path.write_text("acme:\n  input: 1\n  output: 1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="PyYAML"):
        load_overrides(path)


# --- provider-reported cost --------------------------------------------------------------------------


def test_provider_cost_kept() -> None:
    assert provider_cost(0.0042) == CostResult(0.0042, "provider", None)
    assert provider_cost(0) == CostResult(0.0, "provider", None)
    assert provider_cost(1) == CostResult(1.0, "provider", None)


@pytest.mark.parametrize("bad", [None, -0.01, float("nan"), float("inf"), True, "0.1", {"cost": 1}])
def test_provider_cost_unusable(bad: Any) -> None:
    result = provider_cost(bad)
    assert result.cost_usd is None
    assert result.source is None
    assert result.reason
