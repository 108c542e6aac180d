"""API keys of the collector: created, listed and revoked by ``agentpulse keys``, stored hashed.

A key is ``ap_`` followed by 32 random bytes (URL-safe base64). The store keeps
only its SHA-256 digest and its first characters (to recognise it in a list):
a random key of that length needs no slow hash, and the digest is what an
incoming ``Authorization: Bearer`` header is looked up by. The plain key is
shown once, when it is created.

Example::

    from agentpulse.server.auth import KeyStore
    from agentpulse.server.storage import open_storage

    store = open_storage("/tmp/agentpulse.db")
    store.migrate()
    keys = KeyStore(store)
    record, secret = keys.create("laptop")
    assert keys.verify(secret) == record.id
    keys.revoke(record.id)
    store.close()
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from typing import Dict, List, Optional, Set, Tuple

from pydantic import BaseModel

from .storage.base import Storage

__all__ = ["KEY_PREFIX", "ApiKey", "KeyStore", "bearer_token", "generate_key", "hash_key"]

KEY_PREFIX = "ap_"
_SHOWN = 10  # characters of the key kept in clear to tell keys apart


def generate_key() -> str:
    """A new random API key."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The digest stored for ``key``."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def bearer_token(header: Optional[str]) -> Optional[str]:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    return token or None


class ApiKey(BaseModel):
    """An API key as listed: never the key itself."""

    id: str
    name: str
    prefix: str
    created_at: float
    last_used_at: Optional[float] = None
    revoked_at: Optional[float] = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class KeyStore:
    """Create, list, revoke and check API keys. ``verify`` answers from memory; ``refresh`` reloads.

    The active digests are kept in memory and reloaded by ``refresh`` (the
    collector calls it every few seconds), so a key revoked by ``agentpulse
    keys`` in another process stops working within seconds; a key created
    there works at once (``lookup`` asks the store about a key it does not
    know). No restart needed.
    """

    def __init__(self, storage: Storage, *, lookups_per_second: int = 20) -> None:
        self.storage = storage
        self.lookups_per_second = lookups_per_second
        self._digests: Dict[str, str] = {}
        self._unknown: Dict[str, float] = {}
        self._window = (0.0, 0)
        self._used: Set[str] = set()
        self._lock = threading.Lock()

    # -- management (CLI) -------------------------------------------------

    def create(self, name: str = "default") -> Tuple[ApiKey, str]:
        """Make a new key; returns its record and the plain key (shown once, never stored)."""
        key = generate_key()
        record = ApiKey(id=secrets.token_hex(6), name=name, prefix=key[:_SHOWN], created_at=time.time())
        self.storage.execute(
            "INSERT INTO api_keys (id, name, prefix, hash, created_at) VALUES (?, ?, ?, ?, ?)",
            (record.id, record.name, record.prefix, hash_key(key), record.created_at),
        )
        self.refresh()
        return record, key

    def list(self, *, include_revoked: bool = True) -> List[ApiKey]:
        """Every key, newest first."""
        rows = self.storage.fetch(
            "SELECT id, name, prefix, created_at, last_used_at, revoked_at FROM api_keys"
            " ORDER BY created_at DESC"
        )
        keys = [ApiKey.model_validate(r) for r in rows]
        return keys if include_revoked else [k for k in keys if k.active]

    def revoke(self, ref: str) -> Optional[ApiKey]:
        """Revoke the key whose id, name or shown prefix is ``ref``; returns it, or None when none matches.

        Raises ``ValueError`` when ``ref`` matches more than one active key.
        """
        matches = [k for k in self.list() if k.active and ref in (k.id, k.name, k.prefix)]
        if not matches:
            return None
        if len(matches) > 1:
            raise ValueError(f"{ref!r} matches {len(matches)} keys; give the id")
        key = matches[0]
        self.storage.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (time.time(), key.id)
        )
        self.refresh()
        return key

    # -- checking (collector) ---------------------------------------------

    def refresh(self) -> None:
        """Reload the active digests (revoked keys drop out, new ones come in)."""
        rows = self.storage.fetch("SELECT id, hash FROM api_keys WHERE revoked_at IS NULL")
        with self._lock:
            self._digests = {str(r["hash"]): str(r["id"]) for r in rows}
            self._unknown.clear()

    def lookup(self, token: Optional[str]) -> Optional[str]:
        """Like ``verify``, but a key not in memory is looked up in the store (a key created a moment ago).

        Unknown keys are remembered for a few seconds and lookups are capped per
        second, so a flood of bad keys costs the store almost nothing.
        """
        found = self.verify(token)
        if found is not None or not token:
            return found
        digest = hash_key(token)
        now = time.monotonic()
        with self._lock:
            if self._unknown.get(digest, 0.0) > now:
                return None
            start, count = self._window
            if now - start >= 1.0:
                start, count = now, 0
            if count >= self.lookups_per_second:
                return None
            self._window = (start, count + 1)
        rows = self.storage.fetch("SELECT id FROM api_keys WHERE hash = ? AND revoked_at IS NULL", (digest,))
        with self._lock:
            if not rows:
                if len(self._unknown) > 10_000:
                    self._unknown.clear()
                self._unknown[digest] = now + 5.0
                return None
            key_id = str(rows[0]["id"])
            self._digests[digest] = key_id
            self._used.add(key_id)
        return key_id

    def verify(self, token: Optional[str]) -> Optional[str]:
        """The id of the active key ``token`` is, or None. Answered from memory."""
        if not token:
            return None
        digest = hash_key(token)
        found = self._digests.get(digest)
        if found is None:
            return None
        with self._lock:
            self._used.add(found)
        return found

    def knows(self, token: Optional[str]) -> bool:
        """True when ``token`` is an active key right now."""
        return self.verify(token) is not None

    def flush_usage(self) -> int:
        """Write ``last_used_at`` of keys seen since the last call; returns how many."""
        with self._lock:
            used, self._used = self._used, set()
        now = time.time()
        for key_id in used:
            self.storage.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (now, key_id))
        return len(used)
