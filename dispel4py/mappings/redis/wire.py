"""The worker's hot path to Redis: its per-task round trips (``TAKE`` with the last task's
``COMMIT``, pinned puts, counts) written straight to one connection's socket.

A one-item task costs a worker about one round trip. Through redis-py's ``Pipeline`` that
round trip spent more CPU in the client library than in the rest of the task (profiled:
half of a worker's CPU; about 110 us per round trip, of which the pool's ``get_connection``
alone, with its deprecation wrapper that inspects the call's signature, took a fifth),
against about 35 us for packing the commands, one ``sendall``, and parsing the replies with
``hiredis``. So a :class:`Wire` holds one connection that redis-py opened (with its
authentication, TLS, database and client name: nothing of that is done twice here) and
speaks RESP on it directly, as does the driver's reader of the reports stream; everything
else (rare paths, the driver's own commands) still goes through the redis-py client.

Failures keep redis-py's types, so the callers' error handling (``keys.lost_error``) is the
same: a timeout is ``redis.TimeoutError``, a lost connection ``redis.ConnectionError``, an
error reply redis-py's class for it (``ResponseError`` or a subclass, with the whole text;
raised after every reply of the batch was read, as a pipeline does). redis-py is imported
only to raise them: the driver's ``lean_client.py`` speaks through a :class:`Wire` too.
Without ``hiredis`` :func:`open_wire` gives the redis-py pipeline instead: slower, the same
behaviour.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any

__all__ = ["Batch", "Wire", "error_reply", "open_wire", "redis_module"]

_READ_BYTES = 1 << 18
_MORE = object()  # the reader's "no whole reply yet" (``False`` is a RESP3 reply)


class Batch:
    """Commands to send in one round trip; the subset of redis-py's pipeline the queues use."""

    __slots__ = ("wire", "commands")

    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.commands: list[tuple[Any, ...]] = []

    def __len__(self) -> int:
        return len(self.commands)

    def evalsha(self, sha: str, numkeys: int, *args: Any) -> Batch:
        self.commands.append(("EVALSHA", sha, numkeys, *args))
        return self

    def xadd(self, stream: str, fields: dict[Any, Any], nomkstream: bool = False) -> Batch:
        command: list[Any] = ["XADD", stream]
        if nomkstream:
            command.append("NOMKSTREAM")
        command.append("*")
        for name, value in fields.items():
            command += (name, value)
        self.commands.append(tuple(command))
        return self

    def xack(self, stream: str, group: str, *ids: bytes) -> Batch:
        self.commands.append(("XACK", stream, group, *ids))
        return self

    def xdel(self, stream: str, *ids: bytes) -> Batch:
        self.commands.append(("XDEL", stream, *ids))
        return self

    def execute(self) -> list[Any]:
        commands, self.commands = self.commands, []
        return self.wire.call(commands) if commands else []


class Wire:
    """One connection of ``client``'s pool, kept for this process's hot path (not
    thread-safe: the worker's main thread only; other threads use the client)."""

    def __init__(self, pool: Any) -> None:
        import hiredis

        self._hiredis = hiredis
        self.pool = pool  # redis-py's connection pool, or lean_client's
        self.conn: Any = None
        self.sock: Any = None
        self.reader: Any = None
        self.aborted = False

    def batch(self) -> Batch:
        return Batch(self)

    def xread(self, streams: dict[str, Any], count: int, block: int) -> list[Any]:
        """``XREAD``, shaped as redis-py shapes it (``[[stream, [(id, fields)]]]``)."""
        command = ("XREAD", "COUNT", count, "BLOCK", block, "STREAMS", *streams, *streams.values())
        return _shaped(self.call([command])[0])

    def xreadgroup(
        self, group: str, consumer: str, streams: dict[str, Any], count: int, block: int
    ) -> list[Any]:
        command = ("XREADGROUP", "GROUP", group, consumer, "COUNT", count, "BLOCK", block, "STREAMS")
        return _shaped(self.call([(*command, *streams, *streams.values())])[0])

    def _connect(self) -> None:
        if self.conn is None:
            self.conn = self.pool.get_connection()  # held by this wire until the client closes
        self.conn.connect()  # a no-op when connected; reconnects after a failure
        self.sock = self.conn._sock
        self.reader = self._hiredis.Reader(notEnoughData=_MORE)
        hello = getattr(self.conn, "take_handshake", None)  # lean_client's: AUTH, SETNAME, SELECT
        if hello is not None and (commands := hello()):
            try:
                self.call(commands)
            except Exception:
                self._broken()  # the next call connects and says it again
                raise

    def call(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Send ``commands`` at once and read one reply each; the first error reply is raised
        once all were read (the connection stays in step)."""
        if self.sock is None:
            self._connect()
        pack = self._hiredis.pack_command
        try:
            self.sock.sendall(b"".join([pack(command) for command in commands]))
            replies = self._replies(len(commands))
        except OSError as exc:
            self._broken()
            if self.aborted:  # abort(): its caller expects it
                raise ConnectionAbortedError("the connection was closed under this call") from exc
            if isinstance(exc, TimeoutError):
                raise redis_module().TimeoutError(f"Timeout reading from {self._where()}") from exc
            raise redis_module().ConnectionError(f"Error while talking to {self._where()}: {exc}") from exc
        for reply in replies:
            if isinstance(reply, self._hiredis.ReplyError):
                raise error_reply(str(reply))
        return replies

    def close(self) -> None:
        self._broken()

    def abort(self) -> None:
        """From another thread: end a call blocked on this connection at once (it raises
        ``ConnectionAbortedError``, without a round trip or importing redis-py)."""
        self.aborted = True
        sock = self.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _replies(self, wanted: int) -> list[Any]:
        replies: list[Any] = []
        reader, recv = self.reader, self.sock.recv
        while len(replies) < wanted:
            reply = reader.gets()
            if reply is _MORE:
                data = recv(_READ_BYTES)
                if not data:
                    raise ConnectionResetError("connection closed by the server")
                reader.feed(data)
                continue
            replies.append(reply)
        return replies

    def _broken(self) -> None:
        """A failed round trip leaves the stream out of step: the next one reconnects."""
        self.sock = None
        if self.conn is not None:
            self.conn.disconnect()

    def _where(self) -> str:
        conn = self.conn
        host, port = getattr(conn, "host", None), getattr(conn, "port", None)
        return f"{host}:{port}" if host else str(getattr(conn, "path", "redis"))


def redis_module() -> Any:
    """redis-py, for its exception classes (imported on a failure, if not before)."""
    import redis

    return redis


def error_reply(text: str) -> Exception:
    """An error reply as the exception redis-py raises for it (``NoScriptError``,
    ``AuthenticationError``, … else ``ResponseError``)."""
    redis = redis_module()
    try:
        from redis._parsers.base import BaseParser

        kind = type(BaseParser.parse_error(text))
    except (ImportError, AttributeError):  # another redis-py layout: the generic class
        kind = redis.ResponseError
    return kind(text)  # the whole text, code included (``keys.lost_error`` looks for it)


def _shaped(reply: Any) -> list[Any]:
    """A stream reply (RESP2: a list of pairs; RESP3: a map) with each entry's flat field
    list made a dict."""
    if not reply:
        return []
    pairs = reply.items() if isinstance(reply, dict) else reply
    return [[stream, [(entry[0], _fields(entry[1])) for entry in found]] for stream, found in pairs]


def _fields(flat: Any) -> Any:
    return None if flat is None else dict(zip(flat[::2], flat[1::2]))


class _PipelineWire:
    """The same interface through redis-py's pipeline (no ``hiredis``)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def batch(self) -> Any:
        return self.client.pipeline(transaction=False)

    def xread(self, streams: dict[str, Any], count: int, block: int) -> Any:
        return self.client.xread(streams, count=count, block=block)

    def xreadgroup(self, group: str, consumer: str, streams: dict[str, Any], count: int, block: int) -> Any:
        return self.client.xreadgroup(group, consumer, streams, count=count, block=block)


def open_wire(client: Any) -> Wire | _PipelineWire:
    """A :class:`Wire` on ``client``'s server when ``hiredis`` (which reads RESP2 and RESP3)
    is installed; else redis-py's pipeline."""
    try:
        import hiredis  # noqa: F401
    except ImportError:
        return _PipelineWire(client)
    return Wire(client.connection_pool)
