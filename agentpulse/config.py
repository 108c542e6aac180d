"""Configuration: ``init()`` keyword arguments > ``AGENTPULSE_*`` environment variables > defaults.

Every option can be given both ways: ``agentpulse.init(flush_interval=2)`` or
``AGENTPULSE_FLUSH_INTERVAL=2``. A bad value raises ``ConfigError`` at
``init()`` naming the option, the value and what was expected.

Example::

    from agentpulse.config import Config
    cfg = Config.resolve({"agent_name": "marcus"}, environ={"AGENTPULSE_DEBUG": "1"})
    assert cfg.debug and cfg.agent_name == "marcus"
"""

from __future__ import annotations

import difflib
import importlib
import json
import os
import re
import socket
import typing
from pathlib import Path
from typing import Any, Callable, Dict, List, Literal, Mapping, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from ._internal import logger

__all__ = ["ENV_PREFIX", "INTEGRATIONS", "Config", "ConfigError"]

ENV_PREFIX = "AGENTPULSE_"

#: Libraries with an integration; each has a ``patch_<name>`` switch.
INTEGRATIONS = (
    "openai",
    "anthropic",
    "litellm",
    "cohere",
    "google_genai",
    "langchain",
    "crewai",
    "openai_agents",
)


class ConfigError(ValueError):
    """A configuration option has a value AgentPulse cannot use.

    ``option`` names the option, ``value`` is what was given, ``expected`` says
    what would have been accepted, and ``env_var`` names the environment
    variable the value came from (``None`` when it came from ``init()``).

    Example::

        try:
            agentpulse.init(flush_interval=-1)
        except agentpulse.ConfigError as e:
            print(e.option, e.expected)   # flush_interval a number > 0.0
    """

    def __init__(self, option: str, value: Any, expected: str, *, source: str = "init()") -> None:
        self.option = option
        self.value = value
        self.expected = expected
        self.source = source
        self.env_var: Optional[str] = f"{ENV_PREFIX}{option.upper()}" if source == "env" else None
        shown = _mask(option, value)
        where = f"option '{option}'"
        if self.env_var is not None:
            where = f"{self.env_var} (environment variable for option '{option}')"
        super().__init__(f"agentpulse: {where} got {shown}; expected {expected}")


def _mask(option: str, value: Any) -> str:
    if option == "api_key" and value:
        s = str(value)
        return repr(s[:4] + "…" if len(s) > 4 else "…")
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _default_agent_name() -> str:
    try:
        return socket.gethostname() or "agent"
    except Exception:
        return "agent"


def _default_local_path() -> Path:
    return Path(os.path.expanduser("~")) / ".agentpulse" / "agentpulse.db"


class Config(BaseModel):
    """Every option of AgentPulse, validated. Build one with ``Config.resolve``."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False, arbitrary_types_allowed=True)

    api_key: Optional[SecretStr] = Field(
        None, description="Key for the HTTP collector; sent as a Bearer token."
    )
    agent_name: str = Field(
        default_factory=_default_agent_name,
        min_length=1,
        description="Name of this agent (default: hostname).",
    )
    endpoint: Optional[str] = Field(
        None,
        description="Collector base URL, e.g. `http://127.0.0.1:4318`; events go to `{endpoint}/v1/ingest`.",
    )
    exporter: Literal["auto", "local", "http", "memory", "none", "otlp"] = Field(
        "auto",
        description="Where events go. `auto`: `otlp` when otlp_endpoint is set, `http` when api_key"
        " or endpoint is set, else `local`.",
    )
    otlp_endpoint: Optional[str] = Field(
        None,
        description="OTLP/HTTP base URL of an OpenTelemetry backend, e.g. `http://127.0.0.1:4318`"
        " (extra `otlp`).",
    )
    otlp_use_global_provider: bool = Field(
        False,
        description="OTLP: send through the application's global tracer provider, not AgentPulse's own.",
    )
    enabled: bool = Field(True, description="False turns the whole SDK into cheap no-ops.")
    debug: bool = Field(False, description="Log the SDK's own debug lines to stderr.")
    capture_messages: bool = Field(False, description="Record prompt and response text of LLM calls.")
    capture_metadata: bool = Field(True, description="Record metadata given to spans and `set_metadata`.")
    max_string_length: int = Field(
        8192,
        ge=64,
        description="Longer strings in events are truncated, with a marker giving the original size.",
    )
    flush_interval: float = Field(1.0, gt=0, le=3600, description="Seconds between flushes of the queue.")
    max_queue_size: int = Field(
        10_000, ge=1, description="Events held in memory at most; the oldest is dropped."
    )
    max_queue_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="Bytes of encoded events held for retry at most."
    )
    max_batch_size: int = Field(100, ge=1, le=10_000, description="Events per batch sent.")
    shutdown_timeout: float = Field(
        5.0, ge=0, description="Seconds `shutdown()` and the exit flush may take."
    )
    request_timeout: float = Field(10.0, gt=0, description="Seconds one HTTP request may take.")
    max_retries: int = Field(
        5, ge=0, le=100, description="Retries of a failed HTTP batch before it is requeued."
    )
    local_path: Path = Field(
        default_factory=_default_local_path, description="SQLite file of the local store (default exporter)."
    )
    auto_patch: bool = Field(True, description="Patch every installed LLM library at `init()`.")
    patch_openai: bool = Field(True, description="Instrument the `openai` package.")
    patch_anthropic: bool = Field(True, description="Instrument the `anthropic` package.")
    patch_litellm: bool = Field(True, description="Instrument the `litellm` package.")
    patch_cohere: bool = Field(True, description="Instrument the `cohere` package.")
    patch_google_genai: bool = Field(True, description="Instrument the `google-genai` package.")
    patch_langchain: bool = Field(True, description="Instrument LangChain / LangGraph.")
    patch_crewai: bool = Field(True, description="Instrument CrewAI.")
    patch_openai_agents: bool = Field(True, description="Instrument the OpenAI Agents SDK.")
    patch_specs: List[Path] = Field(
        default_factory=list,
        description="YAML files of patch specs for your own clients (comma-separated in env).",
    )
    propagate_context: bool = Field(
        True, description="Carry the current span into threads and `ThreadPoolExecutor` work."
    )
    capture_exceptions: bool = Field(
        True, description="Record unhandled exceptions (sys/threading excepthook)."
    )
    cost_table_override: Optional[Union[Dict[str, Any], Path]] = Field(
        None, description="Prices that win over the built-in table: a dict, or a JSON/YAML file."
    )
    before_send: Optional[Callable[[Dict[str, Any]], Optional[Dict[str, Any]]]] = Field(
        None, description="Called with each event before it is queued; return it (edited) or None to drop it."
    )
    redact: bool = Field(
        True, description="Redact API keys, bearer tokens and e-mail addresses in captured text."
    )
    redact_patterns: List[str] = Field(
        default_factory=list, description="Extra regular expressions to redact (JSON list in env)."
    )
    budget_usd_per_hour: Optional[float] = Field(
        None, gt=0, description="Alert when LLM spend in an hour passes this."
    )
    budget_usd_per_session: Optional[float] = Field(
        None, gt=0, description="Alert when one session's LLM spend passes this."
    )
    on_budget_exceeded: Literal["alert", "raise"] = Field(
        "alert",
        description="`raise`: the next LLM call raises `agentpulse.BudgetExceeded` before it is sent.",
    )
    loop_threshold: int = Field(
        5,
        ge=2,
        description="Same model + prompt this many times within `loop_window` in one session: an alert.",
    )
    loop_window: float = Field(60.0, gt=0, description="Seconds of the loop detector's window.")

    @field_validator("endpoint", "otlp_endpoint")
    @classmethod
    def _check_endpoint(cls, v: Optional[str]) -> Optional[str]:
        if v is None or v == "":
            return None
        if not re.match(r"^https?://[^\s/]+", v):
            raise ValueError("an http:// or https:// URL")
        return v.rstrip("/")

    @field_validator("redact_patterns")
    @classmethod
    def _check_patterns(cls, v: List[str]) -> List[str]:
        for p in v:
            try:
                re.compile(p)
            except re.error as exc:
                raise ValueError(f"valid regular expressions ({p!r}: {exc})") from None
        return v

    @field_validator("local_path")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return Path(os.path.expanduser(str(v)))

    # -- resolution -------------------------------------------------------

    @classmethod
    def resolve(cls, kwargs: Mapping[str, Any], environ: Optional[Mapping[str, str]] = None) -> Config:
        """Merge ``kwargs`` over ``AGENTPULSE_*`` env vars over defaults and validate.

        Raises ``ConfigError`` naming the first bad option.
        """
        env = os.environ if environ is None else environ
        fields = cls.model_fields
        for name in kwargs:
            if name not in fields:
                close = difflib.get_close_matches(name, list(fields), n=1)
                hint = (
                    f"one of the documented options (did you mean '{close[0]}'?)"
                    if close
                    else "a known option"
                )
                raise ConfigError(name, kwargs[name], hint)
        _warn_unknown_env(env, fields)
        values: Dict[str, Any] = {}
        sources: Dict[str, str] = {}
        for name in fields:
            key = ENV_PREFIX + name.upper()
            if name in kwargs:
                values[name] = kwargs[name]
                sources[name] = "init()"
            elif key in env and env[key] != "":
                if name in _NOT_FROM_ENV:
                    raise ConfigError(name, env[key], _NOT_FROM_ENV[name], source="env")
                values[name] = _from_env(name, env[key])
                sources[name] = "env"
        for name, value in list(values.items()):
            if sources[name] != "init()":
                continue
            annotation = _base_type(fields[name].annotation)
            # A bool where a bool belongs, and nowhere else: init(enabled="no") and
            # init(max_queue_size=True) are bugs, not values to guess at.
            if annotation is bool and not isinstance(value, bool):
                raise ConfigError(name, value, "True or False")
            if annotation in _NUMBERS and isinstance(value, bool):
                raise ConfigError(name, value, _NUMBERS[annotation])
            if name in _LISTS and isinstance(value, (str, Path)):
                values[name] = [value]
        if values.get("api_key") == "":
            values["api_key"] = None
        try:
            cfg = cls.model_validate(values)
        except ValidationError as exc:
            err = exc.errors()[0]
            name = str(err["loc"][0]) if err["loc"] else "?"
            raise ConfigError(
                name,
                values.get(name),
                _expected(name, err),
                source=sources.get(name, "init()"),
            ) from None
        if cfg.cost_table_override is not None:
            _check_cost_table(cfg.cost_table_override, sources.get("cost_table_override", "init()"))
        return cfg

    def uses_http(self) -> bool:
        """True when events are POSTed to a collector."""
        if self.exporter == "auto":
            return self.otlp_endpoint is None and (self.api_key is not None or self.endpoint is not None)
        return self.exporter == "http"

    def patch_enabled(self, library: str) -> bool:
        """Whether the integration for ``library`` may be applied."""
        return self.auto_patch and bool(getattr(self, f"patch_{library}", True))

    def public_dict(self) -> Dict[str, Any]:
        """The resolved options, with the API key masked: for ``agentpulse status``."""
        out: Dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name == "api_key":
                value = None if value is None else _mask("api_key", value.get_secret_value()).strip("'")
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, list):
                value = [str(v) for v in value]
            elif callable(value):
                value = getattr(value, "__qualname__", repr(value))
            out[name] = value
        return out

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.public_dict().items())
        return f"Config({shown})"


_NUMBERS: Dict[Any, str] = {int: "a whole number", float: "a number"}


def _base_type(annotation: Any) -> Any:
    """``float`` for ``Optional[float]``; the annotation itself otherwise."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is Union and len(args) == 1:
        return args[0]
    return annotation


_LISTS = ("patch_specs", "redact_patterns")
_NOT_FROM_ENV = {"before_send": "a callable, which only init() can take (not the environment)"}


def _warn_unknown_env(env: Mapping[str, str], fields: Mapping[str, Any]) -> None:
    """A typo in an AGENTPULSE_* variable would otherwise be ignored in silence."""
    known = {ENV_PREFIX + name.upper() for name in fields}
    for key in env:
        if key.startswith(ENV_PREFIX) and key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            if close:
                logger.warning(
                    "agentpulse: environment variable %s is not an option (did you mean %s?)", key, close[0]
                )


def _check_cost_table(value: Any, source: str) -> None:
    try:
        costs = importlib.import_module("agentpulse.costs")
    except ImportError:  # the price table ships with the package; a trimmed install may lack it
        return
    try:
        costs.load_overrides(value)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            "cost_table_override", value, f"a valid price table ({exc})", source=source
        ) from None


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _from_env(name: str, raw: str) -> Any:
    field = Config.model_fields[name]
    ann = field.annotation
    text = raw.strip()
    if ann is bool:
        low = text.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        return text  # validation reports it
    if name == "patch_specs":
        return [p.strip() for p in text.split(",") if p.strip()]
    if name == "redact_patterns":
        if text.startswith("["):
            try:
                return json.loads(text)
            except ValueError:
                return text
        return [text]
    if name == "cost_table_override" and text.startswith("{"):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def _expected(name: str, err: Mapping[str, Any]) -> str:
    kind = err.get("type", "")
    ctx = err.get("ctx") or {}
    msg = str(err.get("msg", ""))
    if name == "cost_table_override":
        return "a dict of prices, or the path of a JSON or YAML file of them"
    if name in ("local_path", "patch_specs") and (kind.startswith("path") or kind == "list_type"):
        return "a file path" if name == "local_path" else "a list of file paths (comma-separated in env)"
    if kind == "value_error":
        return msg.replace("Value error, ", "")
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        op = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}[
            kind
        ]
        bound = next(iter(ctx.values()), "?")
        return f"a number {op} {bound}"
    if kind == "literal_error":
        return "one of " + str(ctx.get("expected", msg))
    if kind.startswith("int"):
        return "a whole number"
    if kind.startswith("float"):
        return "a number"
    if kind.startswith("bool"):
        return "true or false (1/0, yes/no, on/off)"
    if kind.startswith("string") or kind == "str_type":
        return "a non-empty string"
    if kind.startswith("list"):
        return "a list"
    if kind == "callable_type":
        return "a callable taking the event dict"
    return msg[:1].lower() + msg[1:]
