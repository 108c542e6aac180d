"""Configuration: every option from init() and from AGENTPULSE_* env vars; bad values name the option."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import pytest

from agentpulse.config import ENV_PREFIX, Config, ConfigError


def hook(event: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    return event


PRICES = {"my-finetune": {"input": 0.3, "output": 1.2}}

# option -> (value for init(), text for the environment, what the resolved config holds)
CASES: Dict[str, Tuple[Any, Optional[str], Any]] = {
    "api_key": ("ap-secret-1", "ap-secret-1", "ap-secret-1"),
    "agent_name": ("marcus", "marcus", "marcus"),
    "endpoint": ("http://127.0.0.1:4318/", "http://127.0.0.1:4318/", "http://127.0.0.1:4318"),
    "exporter": ("memory", "memory", "memory"),
    "otlp_endpoint": ("http://127.0.0.1:4318/", "http://127.0.0.1:4318/", "http://127.0.0.1:4318"),
    "otlp_use_global_provider": (True, "true", True),
    "enabled": (False, "false", False),
    "debug": (True, "yes", True),
    "capture_messages": (True, "1", True),
    "capture_metadata": (False, "off", False),
    "max_string_length": (1000, "1000", 1000),
    "flush_interval": (0.25, "0.25", 0.25),
    "max_queue_size": (500, "500", 500),
    "max_queue_bytes": (4096, "4096", 4096),
    "max_batch_size": (50, "50", 50),
    "shutdown_timeout": (2.5, "2.5", 2.5),
    "request_timeout": (3.0, "3", 3.0),
    "max_retries": (2, "2", 2),
    "local_path": ("/tmp/ap/x.db", "/tmp/ap/x.db", Path("/tmp/ap/x.db")),
    "auto_patch": (False, "no", False),
    "patch_openai": (False, "0", False),
    "patch_anthropic": (False, "false", False),
    "patch_litellm": (False, "false", False),
    "patch_cohere": (False, "false", False),
    "patch_google_genai": (False, "false", False),
    "patch_langchain": (False, "false", False),
    "patch_crewai": (False, "false", False),
    "patch_openai_agents": (False, "false", False),
    "patch_specs": (["a.yaml", "b.yaml"], "a.yaml, b.yaml", [Path("a.yaml"), Path("b.yaml")]),
    "propagate_context": (False, "off", False),
    "capture_exceptions": (False, "off", False),
    "cost_table_override": (PRICES, '{"my-finetune": {"input": 0.3, "output": 1.2}}', PRICES),
    "before_send": (hook, None, hook),  # a callable cannot come from the environment
    "redact": (False, "false", False),
    "redact_patterns": (["sk-[a-z]+", "\\d{16}"], '["sk-[a-z]+", "\\\\d{16}"]', ["sk-[a-z]+", "\\d{16}"]),
    "budget_usd_per_hour": (2.5, "2.5", 2.5),
    "budget_usd_per_session": (0.5, "0.5", 0.5),
    "on_budget_exceeded": ("raise", "raise", "raise"),
    "loop_threshold": (3, "3", 3),
    "loop_window": (30.0, "30", 30.0),
}


def resolved(cfg: Config, name: str) -> Any:
    value = getattr(cfg, name)
    return value.get_secret_value() if name == "api_key" else value


def test_every_option_has_a_case() -> None:
    assert set(CASES) == set(Config.model_fields)


@pytest.mark.parametrize("name", sorted(CASES))
def test_option_from_kwargs(name: str) -> None:
    given, _, expected = CASES[name]
    assert resolved(Config.resolve({name: given}, environ={}), name) == expected


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if c[1] is not None))
def test_option_from_env(name: str) -> None:
    _, text, expected = CASES[name]
    assert text is not None
    assert resolved(Config.resolve({}, environ={ENV_PREFIX + name.upper(): text}), name) == expected


def test_kwargs_win_over_env_and_env_over_defaults() -> None:
    env = {"AGENTPULSE_FLUSH_INTERVAL": "3", "AGENTPULSE_MAX_RETRIES": "7"}
    cfg = Config.resolve({"flush_interval": 0.5}, environ=env)
    assert cfg.flush_interval == 0.5 and cfg.max_retries == 7 and cfg.max_batch_size == 100


def test_empty_env_var_means_unset() -> None:
    assert Config.resolve({}, environ={"AGENTPULSE_MAX_RETRIES": ""}).max_retries == 5


def test_defaults() -> None:
    cfg = Config.resolve({}, environ={})
    assert (
        cfg.enabled
        and not cfg.capture_messages
        and cfg.max_queue_size == 10_000
        and cfg.max_batch_size == 100
    )
    assert cfg.agent_name and cfg.local_path.name == "agentpulse.db" and not cfg.uses_http()
    assert Config.resolve({"api_key": "k", "endpoint": "https://c.example"}, environ={}).uses_http()


BAD_KWARGS = [
    ("flush_interval", "soon", "a number"),
    ("flush_interval", 0, "a number > 0"),
    ("max_queue_size", 1.5, "a whole number"),
    ("max_queue_size", True, "a whole number"),
    ("budget_usd_per_hour", True, "a number"),
    ("max_batch_size", 0, ">= 1"),
    ("shutdown_timeout", -1, ">= 0"),
    ("exporter", "kafka", "one of 'auto', 'local'"),
    ("on_budget_exceeded", "explode", "one of"),
    ("endpoint", "ftp://collector", "an http:// or https:// URL"),
    ("enabled", "no", "True or False"),
    ("debug", 1, "True or False"),
    ("agent_name", "", "a non-empty string"),
    ("redact_patterns", ["("], "valid regular expressions"),
    ("local_path", 5, "a file path"),
    ("before_send", "print", "a callable"),
    ("cost_table_override", 5, "a dict of prices"),
    ("cost_table_override", {"m": {"input": "cheap"}}, "a valid price table"),
]


@pytest.mark.parametrize(("name", "value", "expected"), BAD_KWARGS)
def test_bad_kwarg_names_the_option(name: str, value: Any, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.resolve({name: value}, environ={})
    err = info.value
    assert err.option == name and err.env_var is None
    assert f"option '{name}'" in str(err) and expected in str(err)


BAD_ENV = [
    ("flush_interval", "soon", "a number"),
    ("max_queue_size", "lots", "a whole number"),
    ("enabled", "maybe", "true or false"),
    ("exporter", "kafka", "one of"),
    ("endpoint", "collector:4318", "URL"),
    ("redact_patterns", '["("]', "valid regular expressions"),
    ("before_send", "mymodule.hook", "only init() can take"),
    ("cost_table_override", "/no/such/prices.json", "a valid price table"),
]


@pytest.mark.parametrize(("name", "text", "expected"), BAD_ENV)
def test_bad_env_value_names_option_and_variable(name: str, text: str, expected: str) -> None:
    var = ENV_PREFIX + name.upper()
    with pytest.raises(ConfigError) as info:
        Config.resolve({}, environ={var: text})
    err = info.value
    assert err.option == name and err.env_var == var
    assert var in str(err) and f"option '{name}'" in str(err) and expected in str(err)


def test_unknown_option_suggests_the_right_one() -> None:
    with pytest.raises(ConfigError, match="did you mean 'flush_interval'"):
        Config.resolve({"flush_intervall": 1}, environ={})
    with pytest.raises(ConfigError, match="a known option"):
        Config.resolve({"zzz": 1}, environ={})


def test_unknown_env_var_is_warned_about_with_a_suggestion(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="agentpulse"):
        Config.resolve({}, environ={"AGENTPULSE_CAPTURE_MESAGES": "1"})
    assert any("AGENTPULSE_CAPTURE_MESSAGES" in r.getMessage() for r in caplog.records)


def test_api_key_never_shows_in_errors_or_repr() -> None:
    secret = "sk-live-0123456789abcdef"
    with pytest.raises(ConfigError) as info:
        Config.resolve({"api_key": secret, "flush_interval": "x"}, environ={})
    assert secret not in str(info.value)
    cfg = Config.resolve({"api_key": secret}, environ={})
    assert secret not in repr(cfg) and secret not in str(cfg.public_dict())


def test_single_path_given_for_a_list() -> None:
    assert Config.resolve({"patch_specs": "one.yaml"}, environ={}).patch_specs == [Path("one.yaml")]
    assert Config.resolve({"redact_patterns": "tok-\\w+"}, environ={}).redact_patterns == ["tok-\\w+"]


def test_empty_api_key_is_no_key() -> None:
    assert Config.resolve({"api_key": ""}, environ={}).api_key is None


def test_config_error_is_a_value_error() -> None:
    make: Callable[[], Any] = lambda: Config.resolve({"max_retries": -1}, environ={})  # noqa: E731
    with pytest.raises(ValueError):
        make()
