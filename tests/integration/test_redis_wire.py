"""The workers' hot path to Redis (``mappings/redis/wire.py``) against a real server: the
same replies as redis-py's pipeline, error replies raised without leaving the connection
out of step, a lost server reported as redis-py reports it, and the fallback without
``hiredis``."""

from __future__ import annotations

import socket
import sys
import types

import pytest
import redis
from redis_support import RedisServer, free_port, redis_server_fixture  # noqa: F401 - the fixture

from dispel4py.errors import TransportError
from dispel4py.mappings.redis.keys import lost_error
from dispel4py.mappings.redis.server import connect, target_from_url
from dispel4py.mappings.redis.wire import Wire, open_wire

pytestmark = pytest.mark.timeout(60)

ECHO = "return {#KEYS, ARGV[1], {KEYS[1], 'x'}}"


def _client(url: str):
    return connect(target_from_url(url), socket_timeout=5, name="wire-test")


def _same_batch(pipe, sha: str) -> None:
    pipe.evalsha(sha, 1, "s", b"arg")
    pipe.xadd("s", {"a": b"1", "b": b"\x00\xff"}, nomkstream=False)
    pipe.xadd("missing", {"a": b"1"}, nomkstream=True)


def test_a_batch_gives_what_the_pipeline_gives(redis_server: RedisServer) -> None:
    client = _client(redis_server.url)
    sha = client.script_load(ECHO)
    wire = open_wire(client)
    assert isinstance(wire, Wire)
    ours = wire.batch()
    _same_batch(ours, sha)
    theirs = client.pipeline(transaction=False)
    _same_batch(theirs, sha)
    mine, reference = ours.execute(), theirs.execute()
    assert mine[0] == reference[0] == [1, b"arg", [b"s", b"x"]]
    assert mine[2] is None and reference[2] is None  # NOMKSTREAM on a missing stream
    ids = [mine[1], reference[1]]
    client.xgroup_create("s", "g", id="0")
    client.xgroup_create("s", "g2", id="0")
    got = wire.xreadgroup("g", "c", {"s": ">"}, 5, 10)
    assert got == client.xreadgroup("g2", "c", {"s": ">"}, count=5)
    assert [fields for _, fields in got[0][1]] == [{b"a": b"1", b"b": b"\x00\xff"}] * 2
    assert wire.batch().xack("s", "g", *ids).xdel("s", *ids).execute() == [2, 2]
    assert wire.xread({"s": "0"}, 5, 10) == []  # deleted: nothing, as redis-py says ([])
    client.close()


def test_an_error_reply_is_raised_after_the_whole_batch(redis_server: RedisServer) -> None:
    client = _client(redis_server.url)
    wire = open_wire(client)
    batch = wire.batch().xadd("t", {"a": b"1"}).evalsha("0" * 40, 0).xadd("t", {"a": b"2"})
    with pytest.raises(redis.ResponseError, match="NOSCRIPT") as caught:
        batch.execute()
    error = lost_error(target_from_url(redis_server.url), caught.value)
    assert isinstance(error, TransportError) and "NOSCRIPT" in str(error)  # the callers' message
    assert client.xlen("t") == 2  # both others ran, as in a pipeline
    assert wire.batch().xadd("t", {"a": b"3"}).execute()[0]  # and the connection is in step
    client.close()


def test_a_false_reply_is_a_reply(redis_server: RedisServer) -> None:
    """A script's ``false`` is a RESP3 boolean (``False``), not "no reply yet": read at once."""
    client = _client(redis_server.url)
    wire = open_wire(client)
    assert wire.call([("EVAL", "return false", 0), ("PING",)]) in ([False, b"PONG"], [None, b"PONG"])
    client.close()


class _SocketPool:
    """A pool whose one connection is a socket of a local pair (the server's end is the test's)."""

    def __init__(self, sock: socket.socket) -> None:
        self.connection = types.SimpleNamespace(connect=lambda: None, _sock=sock)

    def get_connection(self):
        return self.connection


def test_a_resp3_false_is_read_as_a_reply_at_once() -> None:
    """``#f`` (RESP3's false, which a script's ``false`` becomes on Redis 7) must not be taken
    for hiredis's "no whole reply yet", which would wait for bytes that never come."""
    ours, theirs = socket.socketpair()
    ours.settimeout(5)
    theirs.sendall(b"#f\r\n+PONG\r\n")
    wire = Wire(_SocketPool(ours))
    assert wire.call([("EVAL", "return false", 0), ("PING",)]) == [False, b"PONG"]
    ours.close()
    theirs.close()


def test_a_server_gone_is_a_connection_error_then_a_reconnect() -> None:
    server = RedisServer(free_port())  # started
    try:
        client = _client(server.url)
        wire = open_wire(client)
        assert wire.batch().xadd("u", {"a": b"1"}).execute()[0]
        server.kill()
        with pytest.raises(redis.ConnectionError):
            wire.batch().xadd("u", {"a": b"2"}).execute()
        server.start()  # the same port: the next round trip connects again
        assert wire.batch().xadd("u", {"a": b"3"}).execute()[0]
        client.close()
    finally:
        server.close()


def test_without_hiredis_the_pipeline_is_used(redis_server: RedisServer, monkeypatch) -> None:
    client = redis.Redis.from_url(redis_server.url)
    with monkeypatch.context() as patched:
        patched.setitem(sys.modules, "hiredis", None)  # import hiredis raises ImportError
        wire = open_wire(client)
    assert not isinstance(wire, Wire)
    assert isinstance(wire.batch(), redis.client.Pipeline)
    client.xadd("v", {"a": b"1"})
    assert wire.xread({"v": "0"}, 1, 10)[0][1][0][1] == {b"a": b"1"}
    client.close()


def test_abort_ends_a_blocked_read_at_once(redis_server: RedisServer) -> None:
    """``abort()`` from another thread: a read blocked for 20 s ends now, as
    ``ConnectionAbortedError`` (the reports reader's stop, without a round trip)."""
    import threading
    import time

    client = _client(redis_server.url)
    client.xadd("w", {"a": b"1"})
    wire = open_wire(client)
    assert isinstance(wire, Wire)
    assert wire.xread({"w": "0"}, 1, 10)  # connected
    failed: list[BaseException] = []

    def read() -> None:
        try:
            wire.xread({"w": "$"}, 1, 20_000)
        except BaseException as exc:
            failed.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(0.2)  # let it block (if it has not yet, abort() still makes its call fail)
    start = time.monotonic()
    wire.abort()
    reader.join(timeout=10)
    assert not reader.is_alive() and time.monotonic() - start < 10  # not the 20 s block
    assert len(failed) == 1 and isinstance(failed[0], ConnectionAbortedError), failed
    client.close()
