"""The patch engine: one generic wrapt engine applying declarative specs."""

from __future__ import annotations

from typing import Any

__all__ = ["apply_integrations", "unpatch_all"]


def apply_integrations(client: Any) -> None:
    """Apply every registered integration the config allows (placeholder until the engine lands)."""
    return None


def unpatch_all() -> None:
    """Restore every patched attribute."""
    return None
