"""The driver's client without redis-py (``mappings/redis/lean_client.py``) against a real
server: every command of its table gives what redis-py gives for the same call, pipelines
too; what the table lacks goes to redis-py; the connection says what redis-py's says (a
password, an ACL user, a database) and fails as it fails; and a driver with ``-n 0`` runs
without importing redis-py at all."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import redis
from redis_support import RedisServer, free_port, redis_server_fixture  # noqa: F401 - the fixture

from dispel4py.mappings.redis.lean_client import LeanClient, LeanPipeline
from dispel4py.mappings.redis.lean_commands import COMMANDS
from dispel4py.mappings.redis.server import check_server, connect, target_from_url

pytestmark = pytest.mark.timeout(60)

SCRIPT = "return {KEYS[1], ARGV[1]}"


def _pair(url: str) -> tuple[LeanClient, redis.Redis]:
    target = target_from_url(url)
    lean = connect(target, socket_timeout=5, name="lean-test", lean=True)
    assert isinstance(lean, LeanClient)
    return lean, connect(target, socket_timeout=5, name="lean-test")


def _calls(p: str) -> list[tuple[str, tuple, dict]]:
    """One call or more of every command in the table, on keys prefixed ``p``; a client's
    answers depend only on what came before (the two clients replay the same calls)."""
    return [
        ("set", (f"{p}k", b"v"), {}),
        ("set", (f"{p}k", b"w"), {"nx": True}),
        ("set", (f"{p}t", 5), {"px": 60000}),
        ("set", (f"{p}u", "x"), {"ex": 60, "xx": True}),
        ("get", (f"{p}k",), {}),
        ("get", (f"{p}none",), {}),
        ("mget", ([f"{p}k", f"{p}t", f"{p}none"],), {}),
        ("exists", (f"{p}k", f"{p}t", f"{p}none"), {}),
        ("expire", (f"{p}k", 100), {}),
        ("expire", (f"{p}none", 100), {}),
        ("incr", (f"{p}n",), {}),
        ("incr", (f"{p}n", 5), {}),
        ("hset", (f"{p}h", "a", b"1"), {}),
        ("hset", (f"{p}h",), {"mapping": {"b": 2, "c": 3.5}}),
        ("hsetnx", (f"{p}h", "a", b"9"), {}),
        ("hsetnx", (f"{p}h", "d", b"9"), {}),
        ("hget", (f"{p}h", "c"), {}),
        ("hmget", (f"{p}h", ["a", "b", "zz"]), {}),
        ("sadd", (f"{p}s", "x", "y", "x"), {}),
        ("publish", (f"{p}chan", b"hi"), {}),
        ("eval", (SCRIPT, 1, f"{p}k", b"arg"), {}),
        ("script_load", (SCRIPT,), {}),
        ("evalsha", (_sha(), 1, f"{p}k", b"arg"), {}),
        ("xadd", (f"{p}x", {"a": b"1"}), {}),
        ("xadd", (f"{p}x", {"a": b"2", "b": b"\x00\xff"}), {"maxlen": 10, "approximate": False}),
        ("xadd", (f"{p}missing", {"a": b"1"}), {"nomkstream": True}),
        ("xlen", (f"{p}x",), {}),
        ("xgroup_create", (f"{p}y", "g"), {"id": "0", "mkstream": True}),
        ("xtrim", (f"{p}x",), {"maxlen": 5, "approximate": False}),
        ("xtrim", (f"{p}x",), {"minid": "0-1", "approximate": False}),
        ("delete", (f"{p}t", f"{p}none"), {}),
        ("ping", (), {}),
        ("client_setname", ("lean-test",), {}),
    ]


def _sha() -> str:
    import hashlib

    return hashlib.sha1(SCRIPT.encode()).hexdigest()


def _stream_ids_free(value):
    """Stream entry ids differ between the two clients' streams, and so do key prefixes:
    compare the rest."""
    if isinstance(value, bytes) and value.count(b"-") == 1 and value.split(b"-")[0].isdigit():
        return b"<id>"
    if isinstance(value, bytes):
        return value.replace(b"lean:", b"P:").replace(b"ref:", b"P:")
    if isinstance(value, list):
        return [_stream_ids_free(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_stream_ids_free(v) for v in value)
    return value


def test_every_command_of_the_table_answers_as_redis_py(redis_server: RedisServer) -> None:
    lean, reference = _pair(redis_server.url)
    calls = {"lean:": _calls("lean:"), "ref:": _calls("ref:")}
    later = {"xack", "xdel", "xrange", "info", "time", "scan"}  # below
    assert {name for name, _, _ in calls["lean:"]} == set(COMMANDS) - later
    for (name, args, kwargs), (_, ref_args, ref_kwargs) in zip(calls["lean:"], calls["ref:"]):
        mine = getattr(lean, name)(*args, **kwargs)
        theirs = getattr(reference, name)(*ref_args, **ref_kwargs)
        assert _stream_ids_free(mine) == _stream_ids_free(theirs), (name, args, kwargs)
        assert type(mine) is type(theirs), (name, mine, theirs)
    # the stream reads, acks and deletes, on one stream both clients read
    lean.xgroup_create("lean:y", "g2", id="0")
    ids = [lean.xadd("lean:y", {"f": b"1"}), lean.xadd("lean:y", {"f": b"2"})]
    assert lean.xrange("lean:y") == reference.xrange("lean:y")
    assert lean.xrange("lean:y", ids[1], "+", count=1) == reference.xrange("lean:y", ids[1], "+", count=1)
    reference.xreadgroup("g2", "c", {"lean:y": ">"})
    assert lean.xack("lean:y", "g2", ids[0]) == 1 and lean.xdel("lean:y", ids[0]) == 1
    assert lean.info("server")["run_id"] == reference.info("server")["run_id"]
    assert lean.info("server")["redis_version"] == reference.info("server")["redis_version"]
    assert abs(lean.time()[0] - reference.time()[0]) <= 1 and isinstance(lean.time()[1], int)
    keys = sorted(reference.scan_iter(match="lean:*", count=2))
    assert sorted(lean.scan_iter(match="lean:*", count=2)) == keys and len(keys) > 2
    cursor, found = lean.scan(0, match="lean:*", count=1000)
    assert (cursor, sorted(found)) == (0, keys) and reference.scan(0, match="lean:*", count=1000)[0] == 0
    lean.close()
    reference.close()


def test_a_pipeline_answers_as_redis_py_and_takes_any_method(redis_server: RedisServer) -> None:
    lean, reference = _pair(redis_server.url)
    for client, p in ((lean, "a:"), (reference, "b:")):
        client.hset(f"{p}h", mapping={"x": b"1"})
    answers = []
    for client, p in ((lean, "a:"), (reference, "b:")):
        pipe = client.pipeline(transaction=False)
        pipe.set(f"{p}k", b"v", px=5000).exists(f"{p}k").expire(f"{p}k", 9).xadd(f"{p}s", {"a": b"1"})
        pipe.xgroup_create(f"{p}s", "g", id="0").script_load(SCRIPT)
        answers.append(_stream_ids_free(pipe.execute()))
    assert answers[0] == answers[1] == [True, 1, True, b"<id>", True, _sha()]
    pipe = lean.pipeline(transaction=False)
    assert isinstance(pipe, LeanPipeline)
    pipe.set("a:k", b"w").hgetall("a:h")  # not in the table: the whole batch goes through redis-py
    assert pipe.execute() == [True, {b"x": b"1"}]
    assert lean.hgetall("a:h") == {b"x": b"1"}  # so does a call
    assert lean.set("a:k", b"z", keepttl=True) is True  # an option the table does not build
    for client in (lean, reference):  # a transaction: MULTI ... EXEC
        assert client.pipeline().set("t:k", b"1").incr("t:n").execute() == [True, 1]
        client.delete("t:n")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        lean.pipeline().hset("t:h", "f", b"1").incr("t:h").execute()
    assert lean.hget("t:h", "f") == b"1"  # ran: a transaction is not rolled back
    lean.close()
    reference.close()


def test_an_error_reply_is_redis_pys_exception_and_the_connection_stays_in_step(
    redis_server: RedisServer,
) -> None:
    lean, _ = _pair(redis_server.url)
    with pytest.raises(redis.exceptions.NoScriptError, match="NOSCRIPT"):
        lean.evalsha("0" * 40, 0)
    pipe = lean.pipeline(transaction=False).set("e:k", b"1").evalsha("0" * 40, 0).set("e:j", b"2")
    with pytest.raises(redis.ResponseError, match="NOSCRIPT"):
        pipe.execute()
    assert lean.exists("e:k", "e:j") == 2  # both others ran, as in redis-py's pipeline
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        lean.hget("e:k", "x")
    assert lean.ping() is True
    lean.close()


def test_passwords_users_and_databases_as_redis_py_reads_them() -> None:
    server = RedisServer(free_port())
    try:
        admin = redis.Redis(port=server.port)
        admin.execute_command("ACL", "SETUSER", "alice", "on", ">s3cret pw", "~*", "&*", "+@all")
        admin.config_set("requirepass", "top:secret")
        admin.close()
        base = f"127.0.0.1:{server.port}"
        for url in (
            f"redis://:top%3Asecret@{base}/3",
            f"redis://alice:s3cret%20pw@{base}/3",
            f"redis://{base}?db=3&password=top%3Asecret",
        ):
            lean = connect(target_from_url(url), socket_timeout=5, name="lean-auth", lean=True)
            assert isinstance(lean, LeanClient), url
            lean.set("where", b"db3")
            assert lean.get("where") == b"db3"
            assert redis.Redis(port=server.port, password="top:secret", db=3).get("where") == b"db3"
            lean.close()
        wrong = connect(target_from_url(f"redis://:nope@{base}/0"), socket_timeout=5, name="x", lean=True)
        with pytest.raises(redis.AuthenticationError, match=r"WRONGPASS|invalid"):
            wrong.ping()
        with pytest.raises(Exception, match="refused the credentials"):
            check_server(target_from_url(f"redis://:nope@{base}/0"), lean=True)
    finally:
        server.close()


def test_tls_and_other_url_options_go_to_redis_py(redis_server: RedisServer) -> None:
    for url in ("rediss://127.0.0.1:1/0", f"{redis_server.url}?socket_keepalive=true"):
        client = connect(target_from_url(url), socket_timeout=5, name="x", lean=True)
        assert isinstance(client, redis.Redis), url


def test_no_server_is_redis_pys_connection_error_within_the_connect_timeout() -> None:
    target = target_from_url(f"redis://127.0.0.1:{free_port()}/0")
    lean = connect(target, socket_timeout=5, name="x", lean=True)
    start = time.monotonic()
    with pytest.raises(redis.ConnectionError, match=r"connecting to 127\.0\.0\.1"):
        lean.ping()
    assert time.monotonic() - start < 5  # refused at once (the bound only guards a hang)
    with pytest.raises(Exception, match=f"cannot connect to Redis at 127.0.0.1:{target.where.split(':')[1]}"):
        check_server(target, lean=True)


def test_a_driver_never_imports_redis_py(redis_server: RedisServer, tmp_path, run_cli) -> None:
    """``-n 0`` with a joined ``dispel4py worker``: the driver's results, and no ``redis`` in
    its ``sys.modules`` at its end; the same with a local worker (forked from it)."""
    key = tmp_path / "run.key"
    key.write_text(os.urandom(32).hex())
    key.chmod(0o600)
    probe = (
        "import sys, atexit\n"
        "atexit.register(lambda: sys.stderr.write(f'REDIS-PY {\"redis\" in sys.modules}\\n'))\n"
        "from dispel4py.cli.command import console_main\n"
        "sys.argv = ['dispel4py', *sys.argv[1:]]\n"
        "console_main()\n"
    )
    workflow = "dispel4py.examples.graph_testing.pipeline_test"
    net = ["--redis-url", redis_server.url, "--key-file", str(key), "--run", "lean1"]
    driver = subprocess.Popen(
        [sys.executable, "-c", probe, "dyn_redis", workflow, "-i", "5", "-n", "0", *net],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    worker = run_cli("worker", *net, "--wait", "30", timeout=50)
    out, err = driver.communicate(timeout=50)
    assert worker.returncode == 0, worker.stderr
    assert driver.returncode == 0, err
    assert "[1, 2, 3, 4, 5]" in out
    assert "REDIS-PY False" in err
    local = subprocess.run(
        [sys.executable, "-c", probe, "dyn_redis", workflow, "-i", "5", "-n", "1", *net[:2]],
        capture_output=True,
        text=True,
        timeout=50,
        cwd=tmp_path,
    )
    assert local.returncode == 0, local.stderr
    assert "REDIS-PY False" in local.stderr  # nor with local workers (their heartbeats neither)
