"""The ``agentpulse`` command: read the local store, check the configuration, run the demo.

Each subcommand lives in ``agentpulse.commands.<name>`` and exposes
``register(subparsers)``. The list of names is fixed here; a module that is not
installed is skipped, so the command grows as modules are added.

Example::

    $ agentpulse status
    $ agentpulse sessions
    $ agentpulse show 3f2a9c1e
    $ python -m agentpulse tail

    >>> from agentpulse.cli import main
    >>> main(["sessions", "--json"])  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import List, Optional, Sequence

from ._version import __version__

__all__ = ["COMMANDS", "build_parser", "main"]

#: Subcommand modules, in the order ``--help`` lists them.
COMMANDS = ("status", "sessions", "show", "tail", "demo", "crons", "run", "serve", "keys")


def _load(name: str) -> Optional[object]:
    module = f"agentpulse.commands.{name}"
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            return None  # not part of this installation (yet)
        raise


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every installed subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="agentpulse",
        description="Observability for LLM agents: what your agents did, what it cost, and what broke.",
        epilog="Run `agentpulse demo` to record a sample trace, then `agentpulse sessions`.",
    )
    parser.add_argument("--version", action="version", version=f"agentpulse {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = _load(name)
        register = getattr(module, "register", None)
        if callable(register):
            register(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    from .config import ConfigError
    from .store import StoreError

    parser = build_parser()
    args_list: List[str] = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(args_list)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except StoreError as exc:
        sys.stderr.write(f"agentpulse: {exc}\n")
        return 1
    except ConfigError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `agentpulse tail | head`: the reader left. Point stdout at /dev/null so the
        # interpreter's final flush does not fail a second time.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return 0
