"""The specs against the installed SDKs: every target exists, and no generation method is missed.

An upstream rename makes the first test fail; a new generation API makes the
second one fail, until a spec covers it or it joins the ignore-list below with
the reason it is not a model call of this process.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from importlib import metadata
from typing import Dict, List, Tuple

import pytest

from agentpulse.integrations import REGISTRY, load_specs
from agentpulse.patching.spec import PatchSpec, version_in_range

SDKS = ("openai", "anthropic")
SPECS: List[PatchSpec] = [spec for lib in SDKS for spec in load_specs(lib)]

GENERATION_METHOD = re.compile(r"^(create|stream|parse|generate\w*)$")

# (pattern on "module.Class.method", why it is not instrumented)
IGNORED: List[Tuple[str, str]] = [
    # -- openai -------------------------------------------------------------------
    (
        r"^openai\.resources\.chat\.completions\.completions\.(Async)?Completions\.stream$",
        "helper that calls create(stream=True); recorded there",
    ),
    (
        r"^openai\.resources\.responses\.responses\.(Async)?Responses\.stream$",
        "helper that calls create(stream=True) (or retrieve to resume); recorded by create",
    ),
    (
        r"\.(Async)?ResponsesResponseResource\.create$",
        "sends response.create on a Responses WebSocket connection (responses.connect), not HTTP",
    ),
    (
        r"^openai\.resources\.(beta\.)?realtime\.",
        "Realtime API: sessions, client secrets and events over a WebSocket / WebRTC connection",
    ),
    (r"^openai\.resources\.live\.", "Live API: WebRTC media sessions, not a request/response model call"),
    (
        r"^openai\.resources\.audio\.",
        "speech, transcription, translation and voices: billed per audio second / character, not tokens",
    ),
    (r"^openai\.resources\.images\.", "image generation: billed per image, no token usage to normalise"),
    (r"^openai\.resources\.videos\.", "video generation jobs: billed per second of video"),
    (r"^openai\.resources\.moderations\.", "moderation: free classification, no generation"),
    (r"^openai\.resources\.content_provenance_checks\.", "provenance check of a file: no generation"),
    (
        r"^openai\.resources\.beta\.(assistants|threads)\.",
        "Assistants API (deprecated upstream): usage lives on Run objects polled later",
    ),
    (r"^openai\.resources\.beta\.agents\.", "hosted agents: server-side sessions and automations"),
    (r"^openai\.resources\.beta\.chatkit\.", "ChatKit: client-secret sessions for a browser widget"),
    (r"^openai\.resources\.admin\.", "organization administration: keys, projects, users, roles"),
    (
        r"^openai\.resources\.(batches|files|uploads|containers|vector_stores|fine_tuning|evals|webhooks|skills)\.",
        "resource management and offline jobs: no model call in this process",
    ),
    (r"^openai\.resources\.conversations\.", "stores conversation items; generation goes through responses"),
    # -- anthropic ----------------------------------------------------------------
    (
        r"^anthropic\.resources\.(beta\.)?messages\.batches\.",
        "message batches: submitted now, generated and billed offline",
    ),
    (
        r"^anthropic\.resources\.beta\.(agents|deployments|dreams|environments|sessions|tunnels)\.",
        "managed agents: sessions run server-side and stream their own events",
    ),
    (
        r"^anthropic\.resources\.beta\.(memory_stores|vaults|skills|user_profiles)\.",
        "stored resources for managed agents: no generation",
    ),
    (r"^anthropic\.resources\.(beta\.)?organization\.", "organization administration"),
    (r"^anthropic\.resources\.(skills|user_profiles)\.", "stored resources: no generation"),
]


def _resolve(spec: PatchSpec) -> Tuple[object, str]:
    owner: object = importlib.import_module(spec.module)
    parts = spec.target.split(".")
    for part in parts[:-1]:
        owner = getattr(owner, part)
    return owner, parts[-1]


def test_registry_lists_these_sdks() -> None:
    for lib in SDKS:
        assert lib in REGISTRY


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.key)
def test_every_target_exists_on_the_installed_sdk(spec: PatchSpec) -> None:
    owner, attr = _resolve(spec)
    # Defined on that very class (patching an inherited attribute would shadow, not wrap).
    assert attr in vars(owner), f"{spec.key}: not defined on {owner!r}"
    fn = inspect.unwrap(vars(owner)[attr])
    assert callable(fn)
    assert inspect.iscoroutinefunction(fn) == spec.is_async, f"{spec.key}: is_async is wrong"
    if spec.stream == "kwarg":
        assert spec.stream_kwarg in inspect.signature(fn).parameters
    version = metadata.version(spec.dist_name)
    assert version_in_range(version, spec.min_version, spec.max_version), (
        f"{spec.key}: {version} out of range"
    )


def _generation_methods(sdk: str) -> List[str]:
    pkg = importlib.import_module(f"{sdk}.resources")
    found: List[str] = []
    for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        module = importlib.import_module(info.name)
        for cls_name, cls in vars(module).items():
            if not inspect.isclass(cls) or cls.__module__ != module.__name__:
                continue
            if cls_name.endswith(("WithRawResponse", "WithStreamingResponse")):
                continue  # built from the resource's own bound methods
            for attr in vars(cls):
                if GENERATION_METHOD.match(attr):
                    found.append(f"{module.__name__}.{cls_name}.{attr}")
    return found


@pytest.mark.parametrize("sdk", SDKS)
def test_no_generation_method_is_left_uncovered(sdk: str) -> None:
    covered: Dict[str, PatchSpec] = {f"{s.module}.{s.target}": s for s in SPECS}
    methods = _generation_methods(sdk)
    assert methods, f"found no resource methods in {sdk}"
    uncovered = [
        name for name in methods if name not in covered and not any(re.search(p, name) for p, _ in IGNORED)
    ]
    assert not uncovered, "generation methods with no spec and no ignore-list entry:\n" + "\n".join(uncovered)
    # Every spec of this SDK is one of the methods found: a spec for a method that is gone fails here too.
    missing = [key for key in covered if key.startswith(f"{sdk}.") and key not in methods]
    assert not missing, missing


def test_every_ignore_entry_still_matches_something() -> None:
    methods = [m for sdk in SDKS for m in _generation_methods(sdk)]
    stale = [pattern for pattern, _ in IGNORED if not any(re.search(pattern, m) for m in methods)]
    assert not stale, f"ignore-list entries that match nothing any more: {stale}"
