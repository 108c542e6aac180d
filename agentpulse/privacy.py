"""Redaction of captured text (placeholder: the structure layer fills this in)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import Config

__all__ = ["Redactor"]


class Redactor:
    """Redacts secrets in captured prompt / response text before it is queued."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def __call__(self, value: Any) -> Any:
        return value
