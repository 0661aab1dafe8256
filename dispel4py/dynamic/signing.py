"""Signed pickles: what crosses a shared server is unpickled only if this run made it.

Unpickling runs code, so a queue that others can write to (a Redis server shared with other
users, other runs) must never hand a stranger's bytes to ``pickle.loads``. Every payload is
sealed with an HMAC-SHA256 under the key, the *run* (a random nonce per run, so that one key
file shared by many runs does not make one run's entries valid in another), a *scope* (the
name of the queue it was written to, so an entry cannot be moved to another queue) and an
*identity* (``sender:sequence``, :class:`Idents`, unique in the run, so that a copy of an
entry is recognised as one: :class:`Seen`); :meth:`Signer.loads` checks the MAC before it
unpickles anything and raises :class:`Forged` otherwise.

The key never travels with the data. The driver makes a random one per run; workers on other
hosts get the same key from a file (``--key-file``) or the ``DISPEL4PY_KEY`` environment
variable, never from the server.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import os
import pickle
import secrets
import stat
from typing import Any

__all__ = [
    "Forged",
    "Signer",
    "Idents",
    "Seen",
    "KEY_ENV",
    "MAC_SIZE",
    "new_key",
    "new_run_nonce",
    "load_key",
    "key_from_env",
]

KEY_ENV = "DISPEL4PY_KEY"
MAC_SIZE = hashlib.sha256().digest_size
_PROTOCOL = pickle.HIGHEST_PROTOCOL


class Forged(Exception):
    """A payload whose MAC does not match: unsigned, forged, or signed with another key."""


class Signer:
    """Seals and opens payloads under one key; one precomputed HMAC state per scope."""

    def __init__(self, key: bytes, run: bytes = b"") -> None:
        if len(key) < 16:
            raise ValueError("the run key must be at least 16 bytes")
        self._key, self.run = key, run
        self._scopes: dict[bytes, Any] = {}

    def __reduce__(self) -> tuple[Any, ...]:  # travels to spawned workers, never to the server
        return (Signer, (self._key, self.run))

    def for_run(self, run: bytes) -> Signer:
        """The same key bound to one run: what it seals is valid in that run only."""
        return Signer(self._key, run)

    def mac(self, scope: bytes, data: bytes | memoryview, ident: bytes = b"") -> bytes:
        state = self._scopes.get(scope)
        if state is None:
            state = hmac.new(self._key, self.run + b"\0" + scope + b"\0", hashlib.sha256)
            self._scopes[scope] = state
        h = state.copy()
        h.update(ident + b"\0")
        h.update(data)
        return h.digest()

    def dumps(self, scope: bytes, obj: Any, ident: bytes = b"") -> tuple[bytes, bytes]:
        """``(mac, data)``: ``obj`` pickled, and its MAC (bound to ``ident`` too)."""
        data = pickle.dumps(obj, protocol=_PROTOCOL)
        return self.mac(scope, data, ident), data

    def check(self, scope: bytes, mac: bytes | None, data: bytes | None, ident: bytes = b"") -> bytes:
        """``data`` if ``mac`` is right for it, else :class:`Forged`."""
        if not mac or data is None or len(mac) != MAC_SIZE:
            raise Forged("unsigned entry")
        if not hmac.compare_digest(mac, self.mac(scope, data, ident)):
            raise Forged("wrong signature")
        return data

    def loads(self, scope: bytes, mac: bytes | None, data: bytes | None, ident: bytes | None = b"") -> Any:
        """The object sealed by :meth:`dumps` under ``scope`` and ``ident``; :class:`Forged`
        if it was not."""
        return pickle.loads(self.check(scope, mac, data, ident or b""))


class Idents:
    """Unique, increasing identities of what one process seals: ``sender:sequence``, the
    sender random (a process never shares it, even when forked from another)."""

    def __init__(self) -> None:
        self.sender = secrets.token_hex(8).encode()
        self._seq = itertools.count(1)  # next() is atomic: log records are sealed from any thread

    def next(self) -> bytes:
        return b"%s:%d" % (self.sender, next(self._seq))


class Seen:
    """The identities already used, per sender: :meth:`first_use` is False for a copy.

    Each sender's sequence numbers below ``low`` were all seen; those above it are kept in
    a set, so memory stays small while a sender's entries arrive nearly in order."""

    def __init__(self) -> None:
        self._low: dict[bytes, int] = {}
        self._above: dict[bytes, set[int]] = {}

    def first_use(self, ident: bytes | None) -> bool:
        sender, _, text = (ident or b"").rpartition(b":")
        if not sender or not text.isdigit():
            return False
        seq, low = int(text), self._low.get(sender, 1)
        above = self._above.setdefault(sender, set())
        if seq < low or seq in above:
            return False
        above.add(seq)
        while low in above:
            above.discard(low)
            low += 1
        self._low[sender] = low
        return True

    def __contains__(self, ident: bytes) -> bool:
        sender, _, text = ident.rpartition(b":")
        seq = int(text) if text.isdigit() else -1
        return 0 <= seq < self._low.get(sender, 1) or seq in self._above.get(sender, ())


def new_key() -> bytes:
    return secrets.token_hex(32).encode()


def new_run_nonce() -> bytes:
    """What binds a run's entries to that run (in its signed metadata)."""
    return secrets.token_hex(16).encode()


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
        _check_private(path)
        return key
    return key_from_env()


def _check_private(path: str) -> None:
    """Refuse a key file that group or others may read or write, as ssh refuses such a
    private key: anyone who can read the key can forge every entry of the run."""
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        raise ValueError(
            f"permissions {mode:04o} for {path} are too open: the run key must be readable by its "
            f"owner only; chmod 600 {path}"
        )
