"""A frozen clock for tests, shared by the cron and guard tests."""

from __future__ import annotations

import sys
from typing import Any

from freezegun import freeze_time


def frozen(when: str) -> Any:
    """``freeze_time`` that leaves third-party packages alone.

    freezegun rewrites time functions found in every loaded module; SDKs with lazy module
    attributes (loaded by other tests) import themselves half-way when scanned. Only our code and
    the standard library need the frozen clock.

    Example::

        with frozen("2026-11-30T03:00:00"):
            ...
    """
    keep = {"_pytest", "pytest", "pluggy", "freezegun"}
    ignore = set()
    for name, module in list(sys.modules.items()):
        top = name.split(".")[0]
        if top in keep or top in ignore:
            continue
        if "site-packages" in (getattr(module, "__file__", None) or ""):
            ignore.add(top)
    return freeze_time(when, ignore=sorted(ignore))
