"""Redaction of secrets in captured text, before anything is queued.

Prompt and response text are recorded only with ``capture_messages=True``.
When they are, every string in them (nested anywhere in dicts, lists and
tuples) goes through ``Redactor`` on the caller's thread, before the event is
queued:

* API-key shapes: OpenAI ``sk-...``, Anthropic ``sk-ant-...``, AWS ``AKIA...`` /
  ``ASIA...``, GitHub ``ghp_...`` / ``github_pat_...``, Slack ``xox?-...``,
  Google ``AIza...``, Stripe ``sk_live_...``, JSON Web Tokens, PEM private keys;
* ``Bearer <token>`` (the word ``Bearer`` is kept) and credentials in URLs
  (``https://user:pass@host``);
* ``api_key=...`` / ``"password": "..."`` style assignments (the name is kept);
* e-mail addresses;
* values of dict keys that name a secret (``authorization``, ``api_key``,
  ``password``, ``secret``, ``token``, ...);
* your own regular expressions, ``redact_patterns`` (always applied).

``redact=False`` switches the built-in rules off (``redact_patterns`` still
apply). For anything else, ``before_send(event) -> event | None`` sees every
event last and may edit or drop it.

Example::

    from agentpulse.config import Config
    from agentpulse.privacy import Redactor

    redact = Redactor(Config(redact_patterns=[r"ACME-\\d{6}"]))
    redact({"content": "key sk-abcdefghijklmnopqrstuv, ticket ACME-123456"})
    # {'content': 'key [REDACTED:api_key], ticket [REDACTED]'}
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Pattern, Set, Tuple

if TYPE_CHECKING:
    from .config import Config

__all__ = ["BUILTIN_RULES", "REDACTED", "Redactor", "redact_text"]

#: What a redacted user pattern becomes.
REDACTED = "[REDACTED]"

# A key name that says "secret": the identifier ends with one of these words (api_key, OPENAI_API_KEY,
# client_secret, auth-token, password ...). Anchored on the word itself so the regex engine can skip
# ahead to candidates instead of trying every position.
_SECRET_WORD = r"(?i:api[_\-]?key|secret|token|passwd|password|access[_\-]?key)\b"
# Not a value already redacted by an earlier rule.
_NOT_DONE = r"(?!\[REDACTED)"

# (name, regex, replacement, hints). A rule runs only when one of its hints occurs in the text
# (for the case-insensitive assignment rules, in the lower-cased text), so ordinary prose costs a
# few substring searches. ``\g<keep>`` keeps a prefix such as "Bearer " or "api_key=". Rules run in order.
BUILTIN_RULES: Tuple[Tuple[str, str, str, Tuple[str, ...]], ...] = (
    (
        "private_key",
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
        "[REDACTED:private_key]",
        ("PRIVATE KEY-----",),
    ),
    (
        "url_credentials",
        r"(?P<keep>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)[^\s/@:]+:[^\s/@]+@",
        r"\g<keep>[REDACTED]@",
        ("://",),
    ),
    (
        "bearer",
        r"(?P<keep>\b[Bb]earer\s+)" + _NOT_DONE + r"[A-Za-z0-9\-._~+/]{8,}=*",
        r"\g<keep>[REDACTED:token]",
        ("earer",),
    ),
    ("anthropic_key", r"\bsk-ant-[A-Za-z0-9_\-]{16,}", "[REDACTED:api_key]", ("sk-ant-",)),
    (
        "openai_key",
        r"\bsk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_\-]{16,}",
        "[REDACTED:api_key]",
        ("sk-",),
    ),
    (
        "stripe_key",
        r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}",
        "[REDACTED:api_key]",
        ("_live_", "_test_"),
    ),
    (
        "aws_access_key",
        r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b",
        "[REDACTED:aws_key]",
        ("AKIA", "ASIA", "AGPA", "AIDA", "AROA"),
    ),
    (
        "github_token",
        r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})",
        "[REDACTED:token]",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    ("slack_token", r"\bxox[abposr]-[A-Za-z0-9\-]{10,}", "[REDACTED:token]", ("xox",)),
    ("google_api_key", r"\bAIza[0-9A-Za-z_\-]{35}", "[REDACTED:api_key]", ("AIza",)),
    (
        "jwt",
        r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
        "[REDACTED:token]",
        ("eyJ",),
    ),
    (
        "assignment_quoted",
        r"(?P<keep>" + _SECRET_WORD + r"[\"']?\s*[:=]\s*(?P<q>[\"']))" + _NOT_DONE + r"[^\"'\n]{1,}(?P=q)",
        r"\g<keep>[REDACTED]\g<q>",
        ("key", "secret", "token", "passw"),
    ),
    (
        "assignment",
        r"(?P<keep>" + _SECRET_WORD + r"[\"']?\s*[:=]\s*)" + _NOT_DONE + r"[^\s\"',;&]{6,}",
        r"\g<keep>[REDACTED]",
        ("key", "secret", "token", "passw"),
    ),
    (
        "email",
        r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}\b",
        "[REDACTED:email]",
        ("@",),
    ),
)

# Dict keys whose values are secrets whatever they look like.
_SECRET_KEY = re.compile(
    r"^(?:authorization|proxy[_\-]authorization|x[_\-]api[_\-]key|api[_\-]?key|apikey|access[_\-]?token|"
    r"refresh[_\-]?token|auth[_\-]?token|secret|client[_\-]secret|password|passwd|cookie|set[_\-]cookie)$",
    re.IGNORECASE,
)

_Rule = Tuple[Pattern[str], str, Tuple[str, ...], bool]
_RULES: List[_Rule] = [
    (re.compile(regex), replacement, hints, name.startswith("assignment"))
    for name, regex, replacement, hints in BUILTIN_RULES
]


def redact_text(text: str, *, builtin: bool = True, patterns: Tuple[Pattern[str], ...] = ()) -> str:
    """Redact one string: the built-in rules (unless ``builtin=False``), then ``patterns``.

    Example::

        redact_text("mail me at ada@example.com")  # 'mail me at [REDACTED:email]'
    """
    if builtin:
        low: Optional[str] = None
        for regex, replacement, hints, lower in _RULES:
            if lower:
                if low is None:
                    low = text.lower()
                hit = any(h in low for h in hints)
            else:
                hit = any(h in text for h in hints)
            if hit:
                text = regex.sub(replacement, text)
                low = None
    for pattern in patterns:
        text = pattern.sub(REDACTED, text)
    return text


class Redactor:
    """Redacts secrets in captured prompt / response text before it is queued.

    ``redactor(value)`` returns a redacted copy of ``value``: strings,
    and strings nested in dicts, lists and tuples (pydantic models and
    dataclasses are turned into dicts first). The value passed in is never
    modified. With nothing to redact (``redact=False`` and no
    ``redact_patterns``) the value itself is returned.

    Example::

        client = agentpulse.init(capture_messages=True)
        client.redact([{"role": "user", "content": "my key is sk-abcdefghijklmnopqrstu"}])
        # [{'role': 'user', 'content': 'my key is [REDACTED:api_key]'}]
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.builtin = bool(config.redact)
        self.patterns: Tuple[Pattern[str], ...] = tuple(re.compile(p) for p in config.redact_patterns)
        self.active = self.builtin or bool(self.patterns)

    def __call__(self, value: Any) -> Any:
        if not self.active:
            return value
        return self._walk(value, 0, set())

    def text(self, value: str) -> str:
        """Redact one string."""
        if not self.active:
            return value
        return redact_text(value, builtin=self.builtin, patterns=self.patterns)

    def _walk(self, value: Any, depth: int, seen: Set[int]) -> Any:
        if isinstance(value, str):
            return redact_text(value, builtin=self.builtin, patterns=self.patterns) if value else value
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if depth > 32:
            return "<max depth>"
        if isinstance(value, (dict, list, tuple)):
            if id(value) in seen:
                return "<cycle>"
            seen.add(id(value))
            try:
                if isinstance(value, dict):
                    return self._walk_dict(value, depth, seen)
                items = [self._walk(v, depth + 1, seen) for v in value]
                return tuple(items) if isinstance(value, tuple) else items
            finally:
                seen.discard(id(value))
        if isinstance(value, (bytes, bytearray)):
            return self._walk(bytes(value).decode("utf-8", errors="replace"), depth, seen)
        converted = _as_plain(value)
        if converted is not _UNCONVERTIBLE:
            return self._walk(converted, depth + 1, seen)
        # Anything else would be repr()'d on the worker: redact that text now.
        try:
            return self._walk(repr(value), depth, seen)
        except Exception:
            return f"<unrepresentable {type(value).__name__}>"

    def _walk_dict(self, value: Dict[Any, Any], depth: int, seen: Set[int]) -> Dict[Any, Any]:
        out: Dict[Any, Any] = {}
        for k, v in value.items():
            if (
                self.builtin
                and isinstance(k, str)
                and _SECRET_KEY.match(k)
                and v is not None
                and not isinstance(v, (dict, list, tuple, bool))
            ):
                out[k] = "[REDACTED]"
            else:
                out[k] = self._walk(v, depth + 1, seen)
        return out


_UNCONVERTIBLE: Any = object()


def _as_plain(value: Any) -> Any:
    dump: Optional[Callable[..., Any]] = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        try:
            return dump(mode="json")
        except Exception:
            return _UNCONVERTIBLE
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        try:
            return {f.name: getattr(value, f.name, None) for f in dataclasses.fields(value)}
        except Exception:
            return _UNCONVERTIBLE
    return _UNCONVERTIBLE
