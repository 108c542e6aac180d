"""The patch engine: one generic ``wrapt`` engine applying declarative specs.

``init()`` calls ``apply_integrations(client)``: every registered integration
the config allows (``patch_<library>``) plus the user's YAML specs
(``patch_specs``). ``shutdown()`` calls ``unpatch_all()``. ``patch()`` /
``unpatch()`` do the same by hand.

Example::

    import agentpulse
    agentpulse.init(auto_patch=False)
    agentpulse.patch("openai")      # only OpenAI is instrumented
    ...
    agentpulse.unpatch()            # every original restored
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, List, Optional

from .._internal import capture_internal_errors
from .engine import applied, apply_spec
from .engine import unpatch_all as _unpatch_all
from .spec import PatchSpec, StreamState
from .yaml_specs import PatchSpecError, load_user_specs

if TYPE_CHECKING:
    from ..client import AgentPulse

__all__ = [
    "PatchSpec",
    "PatchSpecError",
    "StreamState",
    "applied",
    "apply_integrations",
    "load_user_specs",
    "patch",
    "unpatch",
    "unpatch_all",
]


def _apply_library(library: str) -> None:
    from ..integrations import load_specs

    for spec in load_specs(library):
        with capture_internal_errors(f"patching.apply.{library}"):
            apply_spec(spec)


def apply_integrations(client: AgentPulse) -> None:
    """Apply every integration ``client.config`` allows, and the user's YAML specs."""
    from ..integrations import REGISTRY

    config = client.config
    for library in REGISTRY:
        if config.patch_enabled(library):
            with capture_internal_errors(f"patching.apply.{library}"):
                _apply_library(library)
    if config.patch_specs:
        with capture_internal_errors("patching.apply.user_specs"):
            for spec in load_user_specs(config):
                apply_spec(spec)


def unpatch_all() -> None:
    """Restore every patched attribute (``shutdown()`` calls this)."""
    _unpatch_all()


def patch(library: Optional[str] = None) -> List[str]:
    """Instrument ``library`` (or every known library) now, whatever ``patch_<library>`` says.

    Returns the libraries patched. Raises ``ValueError`` for a library with no
    integration. Idempotent. With ``library=None`` the YAML specs of the running
    client are applied again too (after an ``unpatch()``).

    Example::

        agentpulse.init(auto_patch=False)
        agentpulse.patch("anthropic")
    """
    from ..integrations import REGISTRY

    if library is not None and library not in REGISTRY:
        raise ValueError(f"agentpulse.patch(): no integration for {library!r}; known: {', '.join(REGISTRY)}")
    libraries = [library] if library is not None else list(REGISTRY)
    for name in libraries:
        with capture_internal_errors(f"patching.apply.{name}"):
            _apply_library(name)
    if library is None:
        from ..client import get_client

        client: Any = get_client()
        if client is not None and client.config.patch_specs:
            with capture_internal_errors("patching.apply.user_specs"):
                for spec in load_user_specs(client.config):
                    apply_spec(spec)
    return libraries


def unpatch(library: Optional[str] = None) -> List[str]:
    """Restore the originals of ``library`` (or of everything). Returns the targets restored.

    Example::

        agentpulse.unpatch("openai")   # OpenAI calls are no longer recorded
    """
    return _unpatch_all(library)
