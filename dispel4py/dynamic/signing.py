"""Signed pickles: what crosses a shared server is unpickled only if this run made it.

Unpickling runs code, so a queue that others can write to (a Redis server shared with other
users, other runs) must never hand a stranger's bytes to ``pickle.loads``. Every payload is
sealed with an HMAC-SHA256 under a per-run key and a *scope* (the name of the queue it was
written to, so an entry cannot be replayed into another queue either); :meth:`Signer.loads`
checks the MAC before it unpickles anything and raises :class:`Forged` otherwise.

The key never travels with the data. The driver makes a random one per run; workers on other
hosts get the same key from a file (``--key-file``) or the ``DISPEL4PY_KEY`` environment
variable, never from the server.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import pickle
import secrets
from typing import Any

__all__ = ["Forged", "Signer", "KEY_ENV", "MAC_SIZE", "new_key", "load_key", "key_from_env"]

KEY_ENV = "DISPEL4PY_KEY"
MAC_SIZE = hashlib.sha256().digest_size
_PROTOCOL = pickle.HIGHEST_PROTOCOL


class Forged(Exception):
    """A payload whose MAC does not match: unsigned, forged, or signed with another key."""


class Signer:
    """Seals and opens payloads under one key; one precomputed HMAC state per scope."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the run key must be at least 16 bytes")
        self._key = key
        self._scopes: dict[bytes, Any] = {}

    def __reduce__(self) -> tuple[Any, ...]:  # travels to spawned workers, never to the server
        return (Signer, (self._key,))

    def mac(self, scope: bytes, data: bytes | memoryview) -> bytes:
        state = self._scopes.get(scope)
        if state is None:
            state = self._scopes[scope] = hmac.new(self._key, scope + b"\0", hashlib.sha256)
        h = state.copy()
        h.update(data)
        return h.digest()

    def dumps(self, scope: bytes, obj: Any) -> tuple[bytes, bytes]:
        """``(mac, data)``: ``obj`` pickled, and its MAC."""
        data = pickle.dumps(obj, protocol=_PROTOCOL)
        return self.mac(scope, data), data

    def check(self, scope: bytes, mac: bytes | None, data: bytes | None) -> bytes:
        """``data`` if ``mac`` is right for it, else :class:`Forged`."""
        if not mac or data is None or len(mac) != MAC_SIZE:
            raise Forged("unsigned entry")
        if not hmac.compare_digest(mac, self.mac(scope, data)):
            raise Forged("wrong signature")
        return data

    def loads(self, scope: bytes, mac: bytes | None, data: bytes | None) -> Any:
        """The object sealed by :meth:`dumps` under ``scope``; :class:`Forged` if it was not."""
        return pickle.loads(self.check(scope, mac, data))


def new_key() -> bytes:
    return secrets.token_hex(32).encode()


def key_from_env() -> bytes | None:
    value = os.environ.get(KEY_ENV, "").strip()
    return value.encode() if value else None


def load_key(path: str | None, *, create: bool) -> bytes | None:
    """The key in ``path``, else in ``DISPEL4PY_KEY``, else ``None``.

    With ``create`` (the driver), a missing file is made with a new random key, readable by
    its owner only, so that workers started later can be given the same file.
    """
    if path:
        try:
            with open(path, "rb") as f:
                key = f.read().strip()
        except FileNotFoundError:
            if not create:
                raise
            key = new_key()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(key + b"\n")
        if len(key) < 16:
            raise ValueError(f"the key in {path} is too short (at least 16 characters)")
        return key
    return key_from_env()
