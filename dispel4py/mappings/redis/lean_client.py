"""A Redis client that does not import redis-py, for a driver that runs no local worker and
for the workers that join a run from elsewhere.

``import redis`` costs a quarter of a second (measured: 0.25 s of a 0.35 s start on the
2-core machine; redis-py imports its ``asyncio`` client, its cluster client and
``importlib.metadata`` whatever one uses). A driver with local workers pays it once for
all of them (they fork from it), but a driver with ``-n 0`` (a run handed to a standing
fleet, whose agents imported it long ago) paid it on every run, before its first task
existed. A joined worker (an agent's process) has it imported already, but each of its
calls through redis-py's client machinery cost several times the round trip (a quarter of
the CPU of joining a run: 9 processes joining at once on a small host wait for each other).
:class:`LeanClient` speaks RESP with ``hiredis`` on its own sockets instead:

* the commands of :mod:`lean_commands`, with redis-py's names, arguments and reply shapes;
  any other method or option goes to a redis-py client made on first use (so nothing is
  unsupported, only slower to start);
* the same connection as redis-py's (2 s connect timeout, the socket timeout, ``AUTH``,
  ``SELECT``, ``CLIENT SETNAME``; no retries) and the same failures: an error reply raises
  redis-py's class for it, a timeout ``redis.TimeoutError``, a lost connection
  ``redis.ConnectionError`` (redis-py is imported to raise them: errors are rare);
* ``connection_pool.get_connection()`` for :class:`wire.Wire` (the reports reader's
  connection), and one lock around its own connection (the driver's threads share it).

Used only for ``redis://`` and ``unix://`` URLs with at most ``db``, ``password`` and
``username`` in the query, and when ``hiredis`` is installed (:func:`lean_client_for`).
"""

from __future__ import annotations

import socket
import threading
import urllib.parse
from collections.abc import Callable
from typing import Any

from dispel4py.mappings.redis.lean_commands import COMMANDS, Unsupported
from dispel4py.mappings.redis.wire import Wire, error_reply, redis_module

__all__ = ["LeanClient", "lean_client_for"]

_QUERY = {"db", "password", "username"}


def lean_client_for(
    url: str, *, connect_timeout: float, socket_timeout: float | None, name: str, fallback: Callable[[], Any]
) -> Any:
    """A :class:`LeanClient` for ``url``, or ``None`` when redis-py must do it (TLS, other
    URL options, no ``hiredis``); ``fallback()`` makes the redis-py client for the rest."""
    try:
        import hiredis  # noqa: F401
    except ImportError:
        return None
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qs(parts.query)
    if parts.scheme not in ("redis", "unix") or not set(query) <= _QUERY:
        return None
    try:
        db = int((query.get("db") or [parts.path.strip("/") if parts.scheme == "redis" else ""])[0] or 0)
    except ValueError:
        return None
    password = parts.password or _first(query, "password")
    user = parts.username or _first(query, "username")
    address = parts.path if parts.scheme == "unix" else (parts.hostname or "localhost", parts.port or 6379)
    settings = _Settings(address, db, user, password, name, connect_timeout, socket_timeout)
    return LeanClient(settings, fallback)


def _first(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


class _Settings:
    def __init__(
        self,
        address: Any,
        db: int,
        user: str | None,
        password: str | None,
        name: str,
        connect_timeout: float,
        socket_timeout: float | None,
    ) -> None:
        self.address, self.db, self.name = address, db, name
        self.user = urllib.parse.unquote(user) if user else None
        self.password = urllib.parse.unquote(password) if password else None
        self.connect_timeout, self.socket_timeout = connect_timeout, socket_timeout
        self.where = address if isinstance(address, str) else f"{address[0]}:{address[1]}"

    def handshake(self) -> list[tuple[Any, ...]]:
        commands: list[tuple[Any, ...]] = []
        if self.password is not None:
            commands.append(("AUTH", self.user, self.password) if self.user else ("AUTH", self.password))
        commands.append(("CLIENT", "SETNAME", self.name))
        if self.db:
            commands.append(("SELECT", self.db))
        return commands


class _Connection:
    """One socket with redis-py's connection's interface as :class:`wire.Wire` uses it."""

    def __init__(self, settings: _Settings) -> None:
        self.settings = settings
        self._sock: socket.socket | None = None
        self._hello = False
        address = settings.address
        self.host: str | None = None if isinstance(address, str) else address[0]
        self.port: int | None = None if isinstance(address, str) else address[1]
        self.path: str | None = address if isinstance(address, str) else None

    def connect(self) -> None:
        if self._sock is not None:
            return
        s = self.settings
        try:
            if isinstance(s.address, str):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(s.connect_timeout)
                sock.connect(s.address)
            else:
                sock = socket.create_connection(s.address, timeout=s.connect_timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except TimeoutError as exc:
            raise redis_module().TimeoutError(f"Timeout connecting to server {s.where}") from exc
        except OSError as exc:
            raise redis_module().ConnectionError(
                f"Error {exc.errno} connecting to {s.where}. {exc.strerror or exc}."
            ) from exc
        sock.settimeout(s.socket_timeout)
        self._sock, self._hello = sock, True

    def take_handshake(self) -> list[tuple[Any, ...]]:
        """What a fresh socket must say first (once; :class:`wire.Wire` sends it)."""
        hello, self._hello = self._hello, False
        return self.settings.handshake() if hello else []

    def disconnect(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass


class _Pool:
    """Hands :class:`wire.Wire` a connection of its own; closes them all."""

    def __init__(self, settings: _Settings) -> None:
        self.settings = settings
        self.connections: list[_Connection] = []

    def get_connection(self, *_args: Any) -> _Connection:
        connection = _Connection(self.settings)
        self.connections.append(connection)
        return connection

    def disconnect(self) -> None:
        for connection in self.connections:
            connection.disconnect()


class LeanClient:
    """The subset of ``redis.Redis`` a driver with no local worker uses; see the module."""

    def __init__(self, settings: _Settings, fallback: Callable[[], Any]) -> None:
        self.settings, self._fallback = settings, fallback
        self.connection_pool = _Pool(settings)
        self._own = Wire(self.connection_pool)
        self._lock = threading.Lock()
        self._redis_py: Any = None

    def call(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        with self._lock:
            return self._own.call(commands)

    def execute_command(self, *args: Any) -> Any:
        return self.call([args])[0]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        spec = COMMANDS.get(name)
        if spec is None:
            return getattr(self.redis_py(), name)
        build, shape = spec

        def command(*args: Any, **kwargs: Any) -> Any:
            try:
                built = build(*args, **kwargs)
            except (Unsupported, TypeError):
                return getattr(self.redis_py(), name)(*args, **kwargs)
            return shape(self.call([tuple(built)])[0])

        return command

    def scan_iter(self, match: Any = None, count: Any = None) -> Any:
        cursor = None
        while cursor != 0:
            cursor, keys = self.scan(cursor or 0, match=match, count=count)
            yield from keys

    def pipeline(self, transaction: bool = True) -> Any:
        return LeanPipeline(self, transaction)

    def redis_py(self) -> Any:
        """The redis-py client for what the table does not cover (imported now)."""
        if self._redis_py is None:
            self._redis_py = self._fallback()
        return self._redis_py

    def close(self) -> None:
        self.connection_pool.disconnect()
        if self._redis_py is not None:
            self._redis_py.close()


class LeanPipeline:
    """Calls queued, sent in one round trip (``transaction``: between ``MULTI`` and ``EXEC``,
    so they run at once); with a method or option the table lacks, the whole batch goes
    through a redis-py pipeline instead."""

    def __init__(self, client: LeanClient, transaction: bool = False) -> None:
        self.client, self.transaction = client, transaction
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __len__(self) -> int:
        return len(self.calls)

    def __enter__(self) -> LeanPipeline:
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.calls = []

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)

        def queue(*args: Any, **kwargs: Any) -> LeanPipeline:
            self.calls.append((name, args, kwargs))
            return self

        return queue

    def execute(self) -> list[Any]:
        calls, self.calls = self.calls, []
        if not calls:
            return []
        try:
            built = [(tuple(COMMANDS[n][0](*args, **kwargs)), COMMANDS[n][1]) for n, args, kwargs in calls]
        except (KeyError, Unsupported, TypeError):
            pipe = self.client.redis_py().pipeline(transaction=self.transaction)
            for name, args, kwargs in calls:
                getattr(pipe, name)(*args, **kwargs)
            return list(pipe.execute())
        commands = [command for command, _ in built]
        if self.transaction:
            replies = self.client.call([("MULTI",), *commands, ("EXEC",)])[-1]
            for reply in replies:  # errors of a transaction's commands come inside EXEC's reply
                if isinstance(reply, Exception):
                    raise error_reply(str(reply))
        else:
            replies = self.client.call(commands)
        return [shape(reply) for (_, shape), reply in zip(built, replies)]
