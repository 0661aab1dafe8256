"""The Redis mappings from the command line: connecting, values, keys, names and flags.

(Every graph vs ``simple`` and the fail-fast paths run in the conformance suite on all four
mappings with an embedded server; faults and recovery are in ``test_redis_faults.py``.)
"""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest
from _helpers import WORKFLOWS, WatchedRun, cli, run
from redis_support import RedisServer, free_port, redis_server_fixture  # noqa: F401 - the fixture

import dispel4py
from dispel4py.engine.loading import load_workflow

pytestmark = pytest.mark.timeout(60)

SLOW = str(WORKFLOWS / "dyn_slow.py")
MARKS = str(WORKFLOWS / "redis_marks.py")
VALUES = str(WORKFLOWS / "redis_values.py")
REDIS_MAPPINGS = ["dyn_redis", "dyn_auto_redis", "hybrid_redis", "redis"]
NO_ENV = {"REDIS_HOST": "", "REDIS_PORT": "", "REDIS_USERNAME": "", "REDIS_PASSWORD": "", "DISPEL4PY_KEY": ""}


@pytest.mark.parametrize("mapping", REDIS_MAPPINGS)
def test_a_run_against_a_server_leaves_no_key(mapping: str, redis_server: RedisServer) -> None:
    done = run(
        cli(mapping, SLOW, "-n", "2", "-i", "1", "--redis-url", redis_server.url), env={"D4PY_SLOW_S": "0"}
    )
    assert done.returncode == 0, done.stderr
    assert "Outputs: {'Total3': {'total': [(2, 2)]}}" in done.stdout
    assert redis_server.run_keys() == []


def test_with_no_server_given_a_private_one_runs_and_goes(tmp_path) -> None:
    watched = WatchedRun(
        tmp_path, cli("dyn_redis", SLOW, "-n", "2", "-v"), env={**NO_ENV, "D4PY_SLOW_S": "0"}
    )
    watched.watch_until_exit(within=30)
    assert watched.process.returncode == 0, watched.stderr()
    assert "Outputs: {'Total3': {'total': [(2, 2)]}}" in watched.stdout()
    assert "(embedded), 2 local worker(s)" in watched.stderr()
    assert watched.leftover_processes(within=30) == []  # the server too (a hang guard)
    assert watched.leftover_files() == []  # its folder is gone from TMPDIR


def test_ri_rp_and_the_environment_name_the_server(redis_server: RedisServer) -> None:
    args = (SLOW, "-n", "2")
    env = {**NO_ENV, "D4PY_SLOW_S": "0"}
    flags = run(cli("hybrid_redis", *args, "-ri", "127.0.0.1", "-rp", str(redis_server.port)), env=env)
    assert flags.returncode == 0, flags.stderr
    by_env = run(
        cli("dyn_redis", *args), env={**env, "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis_server.port)}
    )
    assert by_env.returncode == 0, by_env.stderr
    assert "(2, 2)" in flags.stdout and "(2, 2)" in by_env.stdout
    assert redis_server.run_keys() == []


def test_credentials_from_the_url_and_from_the_environment() -> None:
    from dispel4py.mappings.redis.server import EmbeddedRedis

    with EmbeddedRedis() as target:  # it has a random password
        password = target.url.split(":")[2].split("@")[0]
        port = target.url.rsplit(":", 1)[1].split("/")[0]
        env = {**NO_ENV, "D4PY_SLOW_S": "0"}
        by_url = run(cli("dyn_redis", SLOW, "-n", "1", "--redis-url", target.url), env=env)
        assert by_url.returncode == 0, by_url.stderr
        by_env = run(
            cli("dyn_redis", SLOW, "-n", "1"),
            env={**env, "REDIS_HOST": "127.0.0.1", "REDIS_PORT": port, "REDIS_PASSWORD": password},
        )
        assert by_env.returncode == 0, by_env.stderr
        wrong = run(cli("dyn_redis", SLOW, "-n", "1", "-ri", "127.0.0.1", "-rp", port), env=env)
        assert wrong.returncode == 1
        assert f"Redis at 127.0.0.1:{port}" in wrong.stderr and "credentials" in wrong.stderr


def test_an_unreachable_server_is_a_clear_error_within_2_s() -> None:
    port = free_port()
    start = time.monotonic()
    done = run(cli("dyn_redis", SLOW, "-n", "2", "--redis-url", f"redis://127.0.0.1:{port}/0"))
    assert done.returncode == 1
    assert f"cannot connect to Redis at 127.0.0.1:{port}" in done.stderr, done.stderr
    assert done.stderr.count("dispel4py: error:") == 1
    assert time.monotonic() - start < 8  # interpreter start-up included; the connect itself is instant


def test_a_server_that_does_not_answer_is_an_error_within_2_s() -> None:
    """Something listens on the port but never answers (a wrong host, a firewall, not Redis)."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    try:
        start = time.monotonic()
        done = run(cli("dyn_redis", SLOW, "-n", "2", "-ri", "127.0.0.1", "-rp", str(port)), timeout=30)
        elapsed = time.monotonic() - start
    finally:
        silent.close()
    assert done.returncode == 1
    assert f"Redis at 127.0.0.1:{port} did not answer within 2 s" in done.stderr, done.stderr
    assert elapsed < 9


def test_tuples_numpy_bytes_sets_and_classes_round_trip(redis_server: RedisServer, fresh_ids) -> None:
    graph = load_workflow(VALUES)
    result = dispel4py.run(graph, None, "dyn_redis", num=2, redis_url=redis_server.url)
    assert result is not None
    got = result.items("Same1", "output")
    import numpy as np
    from redis_values import values  # the module the workflow file was loaded as

    expected = values()
    assert len(got) == len(expected)
    for want in expected:
        match = [
            g
            for g in got
            if type(g) is type(want) and (np.array_equal(g, want) if type(want) is np.ndarray else g == want)
        ]
        assert match, f"{want!r} ({type(want).__name__}) did not come back: {got!r}"


def test_two_runs_at_once_on_one_server_do_not_see_each_other(redis_server: RedisServer, tmp_path) -> None:
    env = {"D4PY_MARK_ITEMS": "150", "D4PY_MARK_S": "0.002"}
    one = WatchedRun(
        tmp_path / "one", cli("dyn_redis", MARKS, "-n", "2", "--redis-url", redis_server.url), env=env
    )
    two = WatchedRun(
        tmp_path / "two",
        cli("dyn_redis", MARKS, "-n", "2", "--redis-url", redis_server.url),
        env={**env, "D4PY_MARK_ITEMS": "100"},
    )
    one.watch_until_exit(within=45)
    two.watch_until_exit(within=45)
    assert one.process.returncode == 0, one.stderr()
    assert two.process.returncode == 0, two.stderr()
    assert f"(150, {sum(range(150))})" in one.stdout()
    assert f"(100, {sum(range(100))})" in two.stdout()
    assert redis_server.run_keys() == []


def test_keys_live_under_one_prefix_with_a_ttl_and_go_at_the_end(redis_server: RedisServer) -> None:
    seen: dict[str, int] = {}

    def watch() -> None:
        client = redis_server.client()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not seen:
            for key in client.keys("d4py:ttl-run:*"):
                seen[key.decode()] = client.ttl(key)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    env = {**os.environ, "D4PY_SLOW_ITEMS": "4", "D4PY_SLOW_S": "0.3"}
    done = run(
        cli("dyn_redis", SLOW, "-n", "2", "--redis-url", redis_server.url, "--run", "ttl-run"), env=env
    )
    watcher.join()
    assert done.returncode == 0, done.stderr
    assert seen, "no key of the run was seen while it ran"
    assert all(key.startswith("d4py:ttl-run:") for key in seen)
    assert all(ttl > 0 for ttl in seen.values()), seen  # every key expires on its own too
    assert redis_server.run_keys() == []


def test_a_run_id_in_use_is_refused(redis_server: RedisServer) -> None:
    with redis_server.client() as c:
        c.hset("d4py:busy:info", "meta", b"x")
    try:
        done = run(cli("dyn_redis", SLOW, "-n", "1", "--redis-url", redis_server.url, "--run", "busy"))
        assert done.returncode == 2
        assert "run 'busy' is already in progress" in done.stderr
    finally:
        with redis_server.client() as c:
            c.delete("d4py:busy:info")


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        ("dispel4py.new.new_dynamic_redis", ["-ct", "3"]),
        ("dispel4py.new.new_dynamic_redis_auto", ["-thr", "500"]),
        ("dispel4py.new.new_hybrid_redis", []),
        ("dispel4py.new.dynamic_redis", []),
    ],
)
def test_the_original_module_names_and_flags_are_accepted(name: str, extra: list[str], redis_server) -> None:
    where = ["-ri", "127.0.0.1", "-rp", str(redis_server.port)]
    done = run(cli(name, SLOW, "-n", "2", *where, *extra), env={"D4PY_SLOW_S": "0"})
    assert done.returncode == 0, done.stderr
    assert "(2, 2)" in done.stdout


@pytest.mark.parametrize("mapping", ["dyn_redis", "dyn_auto_redis"])
def test_a_pe_taking_3_s_per_item_is_never_cut_off(mapping: str, redis_server: RedisServer) -> None:
    env = {"D4PY_SLOW_ITEMS": "2", "D4PY_SLOW_S": "3"}
    done = run(cli(mapping, SLOW, "-n", "2", "--redis-url", redis_server.url), timeout=45, env=env)
    assert done.returncode == 0, done.stderr
    assert "Outputs: {'Total3': {'total': [(2, 2)]}}" in done.stdout


def test_an_empty_run_ends_at_once(redis_server: RedisServer) -> None:
    start = time.monotonic()
    done = run(cli("dyn_redis", SLOW, "-n", "3", "-i", "0", "--redis-url", redis_server.url))
    assert done.returncode == 0, done.stderr
    assert "Outputs: {'Total3': {'total': [(0, 0)]}}" in done.stdout
    assert time.monotonic() - start < 10


def test_autoscaling_decisions_are_logged_and_listed_by_stats(redis_server: RedisServer) -> None:
    env = {"D4PY_SLOW_ITEMS": "60", "D4PY_SLOW_S": "0.02"}
    done = run(
        cli(
            "dyn_auto_redis", SLOW, "-n", "4", "-thr", "200", "-v", "--stats", "--redis-url", redis_server.url
        ),
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "autoscaling:" in done.stderr and "workers take shared tasks" in done.stderr
    assert "active workers (autoscaling): 0.00 s: 3" in done.stderr


def test_a_slow_stage_spreads_over_every_worker(redis_server: RedisServer, monkeypatch, fresh_ids) -> None:
    monkeypatch.setenv("D4PY_SLOW_ITEMS", "40")
    monkeypatch.setenv("D4PY_SLOW_S", "0.05")
    graph = load_workflow(SLOW)
    result = dispel4py.run(graph, None, "dyn_redis", num=4, redis_url=redis_server.url)
    assert result is not None
    assert result.items("Total3", "total") == [(40, 2 * sum(range(40)))]
    [sleepy] = [s for s in result.stats if s.pe_id == "Sleepy1"]
    assert sleepy.copies == 4, sleepy
    assert sleepy.calls == 40
