"""What an LLM call cost: the shipped price table and the calculator.

Prices live in ``agentpulse/data/pricing.json`` (USD per million tokens). A model
name matches a table entry exactly or through one of its listed aliases, after a
small, fixed normalisation (:func:`normalize_model`). There is no prefix or fuzzy
matching: a model the table does not know costs ``None`` with a reason, never 0
and never the price of a similarly named model.

Token counts follow the wire contract: ``input_tokens`` is all billed input,
cache reads and writes included, and ``output_tokens`` includes
``reasoning_tokens``. Each part is priced at its own rate::

    >>> from agentpulse.costs import compute_cost
    >>> compute_cost("gpt-4o-2024-08-06", input_tokens=1000, cache_read_tokens=400, output_tokens=100)
    CostResult(cost_usd=0.003, source='table', reason=None)
"""

from __future__ import annotations

import functools
import json
import logging
import math
import numbers
import re
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import (
    Any,
    Dict,
    FrozenSet,
    Iterable,
    Iterator,
    Mapping,
    NamedTuple,
    Optional,
    Set,
    Tuple,
    Union,
)

__all__ = [
    "CostResult",
    "Price",
    "PriceTable",
    "compute_cost",
    "default_table",
    "load_overrides",
    "normalize_model",
    "provider_cost",
]

logger = logging.getLogger("agentpulse")

_PER_MILLION = 1_000_000.0
_RATE_FIELDS = ("input", "output", "cached_input", "cache_write", "reasoning")
_REQUIRED_RATES = ("input", "output")
_ENTRY_FIELDS = frozenset((*_RATE_FIELDS, "provider", "model", "aliases", "kind", "notes"))

# Routing prefixes that name a provider or gateway, never part of the model itself.
_PREFIX_RE = re.compile(
    r"^(?:openai|azure|azure_ai|anthropic|gemini|google|vertex_ai|vertex_ai_beta|bedrock|groq"
    r"|together_ai|together|mistral|deepseek|cohere|cohere_chat|xai|openrouter|models"
    r"|text-completion-openai)/"
)
# Bedrock model ids: optional region profile, "anthropic." and a "-v1:0" revision.
_BEDROCK_RE = re.compile(
    r"^(?:(?:us|eu|apac|au|jp|ca|us-gov|global)\.)?anthropic\.(claude-[a-z0-9.-]+?)(?:-v\d+(?::\d+)?)?$"
)
# Snapshot suffixes: -2024-08-06 (OpenAI), -20250514 (Anthropic), @20240620 / @default (Vertex).
_SNAPSHOT_RE = re.compile(r"(?:-\d{4}-\d{2}-\d{2}|-20\d{6}|@20\d{6}|@default)$")
# OpenAI's older four-digit snapshots (gpt-4-0613, gpt-3.5-turbo-0125). Other providers use
# four-digit suffixes for distinct, differently priced versions (mistral-large-2411), so the
# rule is limited to OpenAI names.
_OPENAI_MMDD_RE = re.compile(r"^((?:gpt-|chatgpt-|o\d)[a-z0-9.-]*?)-\d{4}$")

_PROVIDER_KEYS = {
    "gemini": "google",
    "google_genai": "google",
    "vertex_ai": "google",
    "together": "together_ai",
    "togetherai": "together_ai",
    "mistralai": "mistral",
    "cohere_chat": "cohere",
    "x-ai": "xai",
    "azure": "openai",
    "azure_openai": "openai",
}

_MAX_LOGGED_UNKNOWN = 1024


class CostResult(NamedTuple):
    """The cost of one call, where it came from, and why it is missing when it is.

    ``source`` is ``"table"`` (the shipped price table), ``"override"`` (a price the
    user supplied) or ``"provider"`` (a cost the client library reported). When
    ``cost_usd`` is ``None``, ``reason`` says why::

        >>> compute_cost("my-private-model", input_tokens=10, output_tokens=5)
        CostResult(cost_usd=None, source=None, reason="unknown model 'my-private-model'")
    """

    cost_usd: Optional[float]
    source: Optional[str]
    reason: Optional[str]


@dataclass(frozen=True)
class Price:
    """Rates for one model, in USD per million tokens.

    ``cached_input`` (prompt-cache reads) and ``cache_write`` (prompt-cache writes)
    fall back to ``input`` when not set; ``reasoning`` falls back to ``output``::

        >>> Price(input=3.0, output=15.0, cached_input=0.3, cache_write=3.75).cost(
        ...     input_tokens=1300, cache_read_tokens=1000, cache_write_tokens=200, output_tokens=50)
        0.0021
    """

    input: float
    output: float
    cached_input: Optional[float] = None
    cache_write: Optional[float] = None
    reasoning: Optional[float] = None
    model: str = ""
    provider: Optional[str] = None
    aliases: Tuple[str, ...] = ()

    @property
    def cache_read_rate(self) -> float:
        """Rate for tokens read from a prompt cache."""
        return self.input if self.cached_input is None else self.cached_input

    @property
    def cache_write_rate(self) -> float:
        """Rate for tokens written to a prompt cache."""
        return self.input if self.cache_write is None else self.cache_write

    @property
    def reasoning_rate(self) -> float:
        """Rate for reasoning (thinking) tokens."""
        return self.output if self.reasoning is None else self.reasoning

    def cost(
        self,
        *,
        input_tokens: float = 0.0,
        output_tokens: float = 0.0,
        cache_read_tokens: float = 0.0,
        cache_write_tokens: float = 0.0,
        reasoning_tokens: float = 0.0,
    ) -> float:
        """USD for counts that follow the wire contract (non-negative numbers).

        Uncached input is ``input - cache_read - cache_write`` and visible output is
        ``output - reasoning``, both clamped at 0; every part is priced at its own rate.
        """
        uncached = max(0.0, input_tokens - cache_read_tokens - cache_write_tokens)
        visible = max(0.0, output_tokens - reasoning_tokens)
        total = (
            uncached * self.input
            + cache_read_tokens * self.cache_read_rate
            + cache_write_tokens * self.cache_write_rate
            + visible * self.output
            + reasoning_tokens * self.reasoning_rate
        )
        return round(total / _PER_MILLION, 12)


class PriceTable:
    """Prices indexed by every canonical name and alias.

    A lookup normalises the name once (cached) and then costs one or two dict hits::

        >>> default_table().lookup("openai/gpt-4o-mini-2024-07-18").model
        'gpt-4o-mini'
    """

    def __init__(self, prices: Iterable[Price], checked: Optional[str] = None) -> None:
        """Index ``prices`` under each one's ``model`` and ``aliases``.

        Raises ``ValueError`` when one provider lists the same name twice.
        """
        self.checked = checked
        self._prices = list(prices)
        self._by_name: Dict[str, Price] = {}
        self._by_provider: Dict[Tuple[str, str], Price] = {}
        for price in self._prices:
            provider = _provider_key(price.provider) if price.provider else ""
            for name in (price.model, *price.aliases):
                key = _base_name(name)
                if (provider, key) in self._by_provider:
                    raise ValueError(f"price table lists {name!r} twice for provider {provider!r}")
                self._by_provider[(provider, key)] = price
                self._by_name.setdefault(key, price)

    @classmethod
    def from_data(cls, data: Any) -> PriceTable:
        """Build a table from the parsed ``pricing.json`` shape (``checked`` and ``models``)."""
        if not isinstance(data, Mapping) or not isinstance(data.get("models"), list):
            raise ValueError("a price table needs a 'models' list")
        checked = data.get("checked")
        return cls(
            [_parse_entry(entry, i) for i, entry in enumerate(data["models"])],
            checked=str(checked) if checked is not None else None,
        )

    def lookup(self, model: str, provider: Optional[str] = None) -> Optional[Price]:
        """The price for ``model``, or ``None`` when the table does not list it.

        ``provider`` only decides between entries that two providers list under the
        same name; it never excludes a match.
        """
        if not isinstance(model, str):
            return None
        names = _names(model)
        if provider and isinstance(provider, str):
            key = _provider_key(provider)
            for name in names:
                price = self._by_provider.get((key, name))
                if price is not None:
                    return price
        for name in names:
            price = self._by_name.get(name)
            if price is not None:
                return price
        return None

    @property
    def providers(self) -> FrozenSet[str]:
        """Providers that have at least one entry."""
        return frozenset(p.provider for p in self._prices if p.provider)

    def __len__(self) -> int:
        return len(self._prices)

    def __iter__(self) -> Iterator[Price]:
        return iter(self._prices)

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and self.lookup(model) is not None


@functools.lru_cache(maxsize=1024)
def _base_name(model: str) -> str:
    """Lower-cased name without routing prefixes or a Bedrock wrapper; snapshots kept."""
    name = model.strip().lower()
    while True:
        stripped = _PREFIX_RE.sub("", name, count=1)
        if stripped == name:
            break
        name = stripped
    match = _BEDROCK_RE.match(name)
    if match:
        name = match.group(1)
    return name


@functools.lru_cache(maxsize=1024)
def _names(model: str) -> Tuple[str, ...]:
    """Names to try, most specific first: the exact name, then without its snapshot suffix."""
    base = _base_name(model)
    name = _SNAPSHOT_RE.sub("", base)
    match = _OPENAI_MMDD_RE.match(name)
    if match:
        name = match.group(1)
    return (base,) if name == base or not name else (base, name)


def normalize_model(model: str) -> str:
    """The name the price table is searched under.

    Lower-cases, strips routing prefixes (``openai/``, ``anthropic/``, ``gemini/``,
    ``vertex_ai/``, ``bedrock/``, ``groq/``, ``together_ai/``, ``mistral/``,
    ``deepseek/``, ``cohere/``, ``xai/``, ``openrouter/``, ``azure/``, Gemini's
    ``models/``), a Bedrock ``anthropic.…-v1:0`` wrapper, and one snapshot suffix
    (``-2024-08-06``, ``-20250514``, ``@20240620``, and OpenAI's ``-0613``)::

        >>> normalize_model("openai/gpt-4o-2024-08-06")
        'gpt-4o'
        >>> normalize_model("models/gemini-2.5-flash")
        'gemini-2.5-flash'

    A dated name the table lists on its own (``gpt-4o-2024-05-13``) is still
    matched exactly before the suffix is dropped.
    """
    if not isinstance(model, str):
        return ""
    return _names(model)[-1]


def _provider_key(provider: str) -> str:
    key = provider.strip().lower()
    return _PROVIDER_KEYS.get(key, key)


def _rate(value: Any, where: str, field: str) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{where}: field {field!r} must be a number (USD per million tokens), got {value!r}")
    rate = float(value)
    if not math.isfinite(rate) or rate < 0:
        raise ValueError(f"{where}: field {field!r} must be a finite number >= 0, got {value!r}")
    return rate


def _parse_rates(rates: Any, where: str, model: str) -> Price:
    if not isinstance(rates, Mapping):
        raise ValueError(f"{where}: expected a mapping of rates, got {type(rates).__name__}")
    for field in rates:
        if field not in _ENTRY_FIELDS:
            allowed = ", ".join(_RATE_FIELDS)
            raise ValueError(f"{where}: unknown field {field!r} (rates are {allowed})")
    for field in _REQUIRED_RATES:
        if rates.get(field) is None:
            raise ValueError(f"{where}: missing required field {field!r}")
    optional = {f: _rate(rates[f], where, f) for f in _RATE_FIELDS[2:] if rates.get(f) is not None}
    aliases = rates.get("aliases") or []
    if not isinstance(aliases, (list, tuple)) or not all(isinstance(a, str) and a.strip() for a in aliases):
        raise ValueError(f"{where}: field 'aliases' must be a list of model names")
    entry_provider = rates.get("provider")
    if entry_provider is not None and not isinstance(entry_provider, str):
        raise ValueError(f"{where}: field 'provider' must be a string")
    return Price(
        input=_rate(rates["input"], where, "input"),
        output=_rate(rates["output"], where, "output"),
        cached_input=optional.get("cached_input"),
        cache_write=optional.get("cache_write"),
        reasoning=optional.get("reasoning"),
        model=model,
        provider=entry_provider,
        aliases=tuple(aliases),
    )


def _parse_entry(entry: Any, index: int) -> Price:
    model = entry.get("model") if isinstance(entry, Mapping) else None
    if not isinstance(model, str) or not model.strip():
        raise ValueError(f"price table entry #{index}: missing required field 'model'")
    return _parse_rates(entry, f"price for model {model!r}", model)


def _read_pricing_text() -> str:
    try:
        from importlib.resources import files

        return (files("agentpulse") / "data" / "pricing.json").read_text(encoding="utf-8")
    except Exception:
        # Frozen apps and unusual loaders: read the file next to this module.
        return (Path(__file__).resolve().parent / "data" / "pricing.json").read_text(encoding="utf-8")


_default_lock = threading.Lock()
_default: Optional[PriceTable] = None


def default_table() -> PriceTable:
    """The shipped price table, loaded on first use and kept for the process."""
    global _default
    table = _default
    if table is None:
        with _default_lock:
            if _default is None:
                _default = PriceTable.from_data(json.loads(_read_pricing_text()))
            table = _default
    return table


def load_overrides(value: Union[Mapping[str, Any], str, Path, None]) -> Dict[str, Price]:
    """Validate user prices that win over the table (``cost_table_override=``).

    ``value`` is a mapping of model name to rates, or the path of a ``.json`` /
    ``.yaml`` / ``.yml`` file holding one. A file may also use the shipped table's
    shape (a top-level ``models`` list). Rates use the table's keys: ``input`` and
    ``output`` (required), ``cached_input``, ``cache_write``, ``reasoning``, all in
    USD per million tokens; ``aliases`` and ``provider`` are optional::

        >>> load_overrides({"my-finetune": {"input": 0.3, "output": 1.2}})["my-finetune"].output
        1.2

    Raises ``ValueError`` naming the model and the field at fault. The result is
    keyed by normalised name and can be passed to :func:`compute_cost` as is.
    """
    if value is None:
        return {}
    data: Any = value
    if isinstance(value, (str, Path)):
        data = _read_override_file(Path(value))
    if isinstance(data, Mapping) and isinstance(data.get("models"), list):
        entries = [_parse_entry(entry, i) for i, entry in enumerate(data["models"])]
    elif isinstance(data, Mapping):
        entries = []
        for model, rates in data.items():
            if not isinstance(model, str) or not model.strip():
                raise ValueError(f"cost override keys must be model names, got {model!r}")
            if isinstance(rates, Price):
                entries.append(replace(rates, model=model))
            else:
                entries.append(_parse_rates(rates, f"cost override for model {model!r}", model))
    else:
        raise ValueError(f"cost overrides must map model names to rates, got {type(data).__name__}")
    result: Dict[str, Price] = {}
    for price in entries:
        for name in (price.model, *price.aliases):
            result[_base_name(name)] = price
    return result


def _read_override_file(path: Path) -> Any:
    suffix = path.suffix.lower()
    if suffix not in (".json", ".yaml", ".yml"):
        raise ValueError(f"cost override file {str(path)!r} must end in .json, .yaml or .yml")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read cost override file {str(path)!r}: {exc.strerror or exc}") from None
    if suffix == ".json":
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ValueError(f"cost override file {str(path)!r} is not valid JSON: {exc}") from None
    try:
        import yaml
    except ImportError:
        raise ValueError(
            f"reading {str(path)!r} needs PyYAML: pip install 'agentpulse[yaml]', or use a .json file"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"cost override file {str(path)!r} is not valid YAML: {exc}") from None


def _count(value: Any) -> Optional[float]:
    """A usable token count, or None for missing, negative, non-finite or non-numeric input."""
    if value is None or isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    count = float(value)
    if not math.isfinite(count) or count < 0:
        return None
    return count


def _find_override(overrides: Mapping[str, Any], names: Tuple[str, ...]) -> Tuple[Optional[str], Any]:
    for name in names:
        found = overrides.get(name)
        if found is not None:
            return name, found
    # A mapping that did not come from load_overrides may use un-normalised keys.
    for key, found in overrides.items():
        if isinstance(key, str) and _base_name(key) in names:
            return key, found
    return None, None


_unknown_lock = threading.Lock()
_unknown_logged: Set[str] = set()


def _note_unknown(model: str, name: str) -> None:
    with _unknown_lock:
        if name in _unknown_logged or len(_unknown_logged) >= _MAX_LOGGED_UNKNOWN:
            return
        _unknown_logged.add(name)
    logger.debug(
        "agentpulse: no price for model %r; its cost_usd is null (add it with cost_table_override)", model
    )


def compute_cost(
    model: Optional[str],
    *,
    provider: Optional[str] = None,
    input_tokens: Optional[float] = None,
    output_tokens: Optional[float] = None,
    cache_read_tokens: Optional[float] = None,
    cache_write_tokens: Optional[float] = None,
    reasoning_tokens: Optional[float] = None,
    overrides: Optional[Mapping[str, Any]] = None,
) -> CostResult:
    """Price one call from its normalised token counts.

    ``input_tokens`` is all billed input (cache reads and writes included) and
    ``output_tokens`` includes ``reasoning_tokens``. Uncached input, cache reads,
    cache writes, visible output and reasoning are each priced at their own rate.
    An ``overrides`` price (see :func:`load_overrides`) wins over the table::

        >>> compute_cost("claude-sonnet-4-20250514", input_tokens=1300, cache_read_tokens=1000,
        ...              cache_write_tokens=200, output_tokens=50).cost_usd
        0.0021

    Never raises and never returns 0 for a model it cannot price: the cost is then
    ``None`` and ``reason`` says why (``"no token counts"``, ``"unknown model 'x'"``).
    """
    try:
        return _compute(
            model,
            provider,
            _count(input_tokens),
            _count(output_tokens),
            _count(cache_read_tokens) or 0.0,
            _count(cache_write_tokens) or 0.0,
            _count(reasoning_tokens) or 0.0,
            overrides,
        )
    except Exception as exc:  # a cost is never worth breaking the caller for
        logger.debug("agentpulse: cost computation failed for %r: %r", model, exc)
        return CostResult(None, None, f"cost computation failed: {type(exc).__name__}")


def _compute(
    model: Optional[str],
    provider: Optional[str],
    input_tokens: Optional[float],
    output_tokens: Optional[float],
    cache_read: float,
    cache_write: float,
    reasoning: float,
    overrides: Optional[Mapping[str, Any]],
) -> CostResult:
    if input_tokens is None and output_tokens is None:
        return CostResult(None, None, "no token counts")
    if not isinstance(model, str) or not model.strip():
        return CostResult(None, None, "no model name")
    names = _names(model)
    price: Optional[Price] = None
    source = "table"
    if overrides:
        key, found = _find_override(overrides, names)
        if found is not None:
            source = "override"
            if isinstance(found, Price):
                price = found
            else:
                try:
                    price = _parse_rates(found, f"cost override for model {key!r}", str(key))
                except ValueError as exc:
                    return CostResult(None, None, f"invalid cost override: {exc}")
    if price is None:
        price = default_table().lookup(model, provider)
    if price is None:
        _note_unknown(model, names[-1])
        return CostResult(None, None, f"unknown model {model!r}")
    cost = price.cost(
        input_tokens=input_tokens or 0.0,
        output_tokens=output_tokens or 0.0,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=reasoning,
    )
    return CostResult(cost, source, None)


def provider_cost(value: Any) -> CostResult:
    """Wrap a cost the client library reported itself (LiteLLM's ``response_cost``).

    A finite, non-negative number becomes ``source="provider"``; anything else is a
    ``None`` cost with a reason, so the caller can fall back to :func:`compute_cost`::

        >>> provider_cost(0.0042)
        CostResult(cost_usd=0.0042, source='provider', reason=None)
    """
    if value is None:
        return CostResult(None, None, "no provider-reported cost")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return CostResult(None, None, f"provider-reported cost is not a number: {type(value).__name__}")
    cost = float(value)
    if not math.isfinite(cost) or cost < 0:
        return CostResult(None, None, f"provider-reported cost is not usable: {cost!r}")
    return CostResult(cost, "provider", None)
