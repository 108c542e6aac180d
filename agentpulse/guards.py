"""Budget and loop guards (placeholder: the structure layer fills this in)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Optional

if TYPE_CHECKING:
    from .client import AgentPulse
    from .context import Span

__all__ = ["BudgetExceeded", "Guards"]


class BudgetExceeded(RuntimeError):
    """Raised before an LLM call is sent when a budget is spent and ``on_budget_exceeded='raise'``."""


class Guards:
    """Checks run around every LLM call."""

    def __init__(self, client: AgentPulse) -> None:
        self.client = client

    def before_call(self, provider: str, model: Optional[str], prompt_hash: Optional[str], span: Optional[Span]) -> None:
        """Called on the caller's thread before the request is sent. May raise ``BudgetExceeded``."""

    def after_call(self, data: Dict[str, Any], span: Optional[Span]) -> None:
        """Called with the finished ``llm_call`` data (cost included)."""
