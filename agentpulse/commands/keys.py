"""``agentpulse keys``: API keys of the collector (``agentpulse serve``): create, list, revoke.

Keys are stored hashed in the collector's store; the plain key is printed once,
when it is created. A running collector picks up new and revoked keys within
seconds.

Example::

    $ agentpulse keys create --name laptop
    $ agentpulse keys list
    $ agentpulse keys revoke laptop
    $ agentpulse keys create --db postgresql://agentpulse@127.0.0.1/agentpulse
"""

from __future__ import annotations

import argparse
import os
from typing import Any, List, Optional

from . import emit_json, fmt_time, out, render_table

__all__ = ["DB_ENV", "add_db_option", "register", "resolve_db", "run_create", "run_list", "run_revoke"]

#: Environment variable naming the collector's store (a SQLite path or a PostgreSQL DSN).
DB_ENV = "AGENTPULSE_SERVE_DB"


def add_db_option(parser: argparse.ArgumentParser) -> None:
    """``--db PATH|DSN``: the collector's store (shared by ``serve`` and ``keys``)."""
    parser.add_argument(
        "--db",
        metavar="PATH|DSN",
        default=None,
        help=(
            f"SQLite file or postgresql:// DSN of the collector's store (default: ${DB_ENV}, "
            "else the SDK's local store: $AGENTPULSE_LOCAL_PATH or ~/.agentpulse/agentpulse.db)"
        ),
    )


def resolve_db(args: argparse.Namespace) -> str:
    """The store named by ``--db``, ``$AGENTPULSE_SERVE_DB`` or the SDK's default local path."""
    db: Optional[str] = getattr(args, "db", None)
    if db:
        return db
    env = os.environ.get(DB_ENV)
    if env:
        return env
    from ..store import default_store_path

    return str(default_store_path())


def register(subparsers: Any) -> None:
    """Add the ``keys`` command and its ``create`` / ``list`` / ``revoke`` subcommands."""
    p = subparsers.add_parser(
        "keys",
        help="API keys of the collector: create, list, revoke",
        description="Manage the API keys `agentpulse serve` accepts. Keys are stored hashed.",
    )
    sub = p.add_subparsers(dest="keys_command", metavar="ACTION")
    create = sub.add_parser("create", help="make a new key and print it once")
    create.add_argument(
        "--name", default="default", help="a label to recognise the key by (default: default)"
    )
    listing = sub.add_parser("list", help="list keys (never the keys themselves)")
    listing.add_argument("--all", action="store_true", help="include revoked keys")
    revoke = sub.add_parser("revoke", help="revoke a key by id, name or shown prefix")
    revoke.add_argument("ref", help="the key's id, name or prefix as `keys list` shows it")
    for sp in (create, listing, revoke):
        add_db_option(sp)
        sp.add_argument("--json", action="store_true", help="print JSON instead of text")
    create.set_defaults(func=run_create)
    listing.set_defaults(func=run_list)
    revoke.set_defaults(func=run_revoke)
    p.set_defaults(func=lambda args: _usage(p))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _keystore(args: argparse.Namespace) -> Any:
    from ..server.auth import KeyStore
    from ..server.storage import open_storage

    storage = open_storage(resolve_db(args), read_pool_size=1)
    try:
        storage.migrate()
    except BaseException:
        storage.close()
        raise
    return KeyStore(storage)


def _fail(exc: Exception) -> int:
    import sys

    sys.stderr.write(f"agentpulse keys: {exc}\n")
    return 1


def run_create(args: argparse.Namespace) -> int:
    """Create a key and print it (once)."""
    from ..server.storage.base import StorageError

    try:
        keys = _keystore(args)
    except StorageError as exc:
        return _fail(exc)
    try:
        record, secret = keys.create(args.name)
    except StorageError as exc:
        return _fail(exc)
    finally:
        keys.storage.close()
    if args.json:
        emit_json({**record.model_dump(), "key": secret})
        return 0
    out(f"Created API key {record.id} ({record.name}). It is shown only this once:")
    out("")
    out(f"  {secret}")
    out("")
    out("Point an agent at the collector with it:")
    out(f"  AGENTPULSE_ENDPOINT=http://127.0.0.1:8484 AGENTPULSE_API_KEY={secret} python my_agent.py")
    return 0


def run_list(args: argparse.Namespace) -> int:
    """List keys: id, name, prefix, created, last used, revoked."""
    from ..server.storage.base import StorageError

    try:
        keys = _keystore(args)
    except StorageError as exc:
        return _fail(exc)
    try:
        records = keys.list(include_revoked=args.all)
    except StorageError as exc:
        return _fail(exc)
    finally:
        keys.storage.close()
    if args.json:
        emit_json([r.model_dump() for r in records])
        return 0
    if not records:
        out("No API keys. Create one with: agentpulse keys create --name NAME")
        return 0
    rows: List[List[str]] = [
        [
            r.id,
            r.name,
            r.prefix + "…",
            fmt_time(r.created_at),
            fmt_time(r.last_used_at) if r.last_used_at else "never",
            "revoked " + fmt_time(r.revoked_at) if r.revoked_at else "active",
        ]
        for r in records
    ]
    for line in render_table(
        ["ID", "NAME", "KEY", "CREATED", "LAST USED", "STATE"], rows, align=["<"] * 6, flex=1
    ):
        out(line)
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    """Revoke one key; exit code 1 when nothing matches."""
    from ..server.storage.base import StorageError

    try:
        keys = _keystore(args)
    except StorageError as exc:
        return _fail(exc)
    try:
        record = keys.revoke(args.ref)
    except (StorageError, ValueError) as exc:
        return _fail(exc)
    finally:
        keys.storage.close()
    if record is None:
        return _fail(ValueError(f"no active key matches {args.ref!r} (see `agentpulse keys list`)"))
    if args.json:
        emit_json({"revoked": record.model_dump()})
    else:
        out(f"Revoked API key {record.id} ({record.name}). Collectors refuse it within seconds.")
    return 0
