"""The registry of integrations: which library is instrumented by which module.

Each module named here exposes ``SPECS`` (a list of ``PatchSpec``) and holds
only specs and pure extractor functions; it must not import the library it
describes (the engine patches on import). The key is the library's name in
the config: ``patch_<name>=False`` switches it off.

Adding a library: write ``agentpulse/integrations/<name>.py`` with ``SPECS``,
add it to ``REGISTRY`` (and a ``patch_<name>`` option to the config), and the
compatibility tests will check its targets against the installed SDK.

Example::

    from agentpulse.integrations import REGISTRY, load_specs
    for spec in load_specs("openai"):
        print(spec.key)
"""

from __future__ import annotations

import importlib
from typing import Dict, List

from ..patching.spec import PatchSpec

__all__ = ["REGISTRY", "load_specs"]

#: Library name (as in ``patch_<name>``) -> module holding its ``SPECS``.
REGISTRY: Dict[str, str] = {
    "openai": "agentpulse.integrations.openai",
    "anthropic": "agentpulse.integrations.anthropic",
    "litellm": "agentpulse.integrations.litellm",
    "cohere": "agentpulse.integrations.cohere",
    "google_genai": "agentpulse.integrations.google_genai",
}


def load_specs(library: str) -> List[PatchSpec]:
    """The specs of ``library``; ``KeyError`` for a library with no integration."""
    module = importlib.import_module(REGISTRY[library])
    return list(module.SPECS)
