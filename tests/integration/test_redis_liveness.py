"""Liveness on the Redis mappings: heartbeats a busy PE cannot starve, workers that leave
when their driver is gone whatever signal dispositions they inherited, and the signals
that stop a ``dispel4py worker`` (Ctrl-C and SIGTERM alike).

Real ``redis-server`` on a free loopback port, real driver and worker processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from _helpers import WORKFLOWS, WatchedRun, cli, run
from redis_support import RedisServer, redis_server_fixture  # noqa: F401 - the fixture

pytestmark = pytest.mark.timeout(180)

HOG = str(WORKFLOWS / "redis_hog.py")
MARKS = str(WORKFLOWS / "redis_marks.py")


def total_line(items: int) -> str:
    return f"Outputs: {{'Total2': {{'total': [({items}, {sum(range(items))})]}}}}"


def runs_of(folder: Path, kind: str) -> list[int]:
    """The items of every finished (``hog``) or started (``start``) run of Hog, once per run."""
    return sorted(int(p.name.split("-")[1]) for p in folder.glob(f"{kind}-*"))


def hog_env(folder: Path, items: int, hog_s: float) -> dict[str, str]:
    return {"D4PY_MARK_DIR": str(folder), "D4PY_HOG_ITEMS": str(items), "D4PY_HOG_S": str(hog_s)}


def driver(tmp_path: Path, url: str, *args: str, env: dict[str, str]) -> WatchedRun:
    return WatchedRun(tmp_path / "run", cli("dyn_redis", HOG, "--redis-url", url, *args), env=env)


def worker_process(url: str, key_file: Path, *extra: str, env: dict[str, str], **popen) -> subprocess.Popen:
    return subprocess.Popen(
        cli("worker", "--redis-url", url, "--key-file", str(key_file), "--wait", "30", *extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
        **popen,
    )


# -- heartbeats a busy PE cannot starve (issue 15, defect 4) --------------------------------
@pytest.mark.parametrize("workers", [2, 8])
def test_a_pe_holding_the_gil_longer_than_the_claim_time_keeps_its_task(
    workers: int, redis_server: RedisServer, tmp_path: Path
) -> None:
    """Each Hog call holds the GIL for 2.5 x --claim-idle-ms (1000, the floor) in one C call;
    with 8 workers on this machine's 2 cores the heartbeats also compete for the CPU. A
    live worker's task must never be reclaimed: every item runs exactly once, and no
    commit is refused."""
    folder = tmp_path / "marks"
    folder.mkdir()
    items = 6
    args = ("-n", str(workers), "--claim-idle-ms", "1000", "--batch-size", "1")
    done = run(
        cli("dyn_redis", HOG, *args, "--redis-url", redis_server.url),
        env=hog_env(folder, items, 2.5),
        timeout=150,
    )
    assert done.returncode == 0, done.stderr
    assert total_line(items) in done.stdout, done.stdout
    assert runs_of(folder, "start") == list(range(items)), "a task was taken from a live worker and run again"
    assert "was given to another worker" not in done.stderr, done.stderr
    assert redis_server.run_keys() == []


def test_a_joined_worker_holding_the_gil_keeps_its_task(redis_server: RedisServer, tmp_path: Path) -> None:
    """The same for a worker from another host (its liveness key, not its tasks' idle time,
    decides): the driver runs no worker, the joined worker runs everything."""
    folder, key = tmp_path / "marks", tmp_path / "run.key"
    folder.mkdir()
    key.write_text("the key of the two hosts\n")
    key.chmod(0o600)  # a key others can read is refused
    env = hog_env(folder, 3, 2.5)
    args = ("-n", "0", "--claim-idle-ms", "1000", "--batch-size", "1", "--key-file", str(key), "--run", "hog")
    watched = driver(tmp_path, redis_server.url, *args, env=env)
    joiner = worker_process(redis_server.url, key, "--run", "hog", env=env)
    try:
        watched.watch_until_exit(within=120)
        _, err = joiner.communicate(timeout=30)
    finally:
        joiner.kill()
        watched.kill_leftovers()
    assert watched.process.returncode == 0, watched.stderr()
    assert total_line(3) in watched.stdout()
    assert runs_of(folder, "start") == [0, 1, 2]
    assert joiner.returncode == 0, err
    assert "is gone" not in watched.stderr(), watched.stderr()


def test_the_claim_time_has_a_floor_that_a_loaded_machine_cannot_starve(redis_server: RedisServer) -> None:
    done = run(cli("dyn_redis", MARKS, "--claim-idle-ms", "100", "--redis-url", redis_server.url))
    assert done.returncode == 2
    assert "--claim-idle-ms must be at least 1000 (got 100)" in done.stderr


# -- a worker whose driver is gone (issue 15, defect 6) ------------------------------------
def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # what a shell does to `cmd &` in a script


@pytest.mark.parametrize("stuck", [False, True], ids=["between-tasks", "in-an-endless-gil-call"])
def test_a_background_worker_leaves_when_its_driver_is_killed(
    stuck: bool, redis_server: RedisServer, tmp_path: Path
) -> None:
    """``dispel4py worker … &`` (SIGINT ignored): SIGKILL of the driver makes it leave within
    the promised time with exit 1 and one line — even while a PE holds the GIL in a call
    that would last for hours (then it is killed, and its heartbeat process says why)."""
    folder, key = tmp_path / "marks", tmp_path / "run.key"
    folder.mkdir()
    env = {**hog_env(folder, 200, 0.05), "D4PY_HOG_SPIN": str(10**12 if stuck else 0)}
    run_id = f"orphan-{os.getpid()}-{stuck:d}"
    args = ("-n", "0", "--key-file", str(key), "--run", run_id, "--batch-size", "1")
    key.write_text("the key of the two hosts\n")
    key.chmod(0o600)  # a key others can read is refused
    watched = driver(tmp_path, redis_server.url, *args, env=env)
    joiner = worker_process(redis_server.url, key, "--run", run_id, env=env, preexec_fn=_ignore_sigint)
    try:
        watched.wait_until(lambda: runs_of(folder, "start"), "the joined worker's first task", within=60)
        watched.process.kill()
        killed = time.monotonic()
        _, err = joiner.communicate(timeout=60)
        took = time.monotonic() - killed
    finally:
        joiner.kill()
        watched.kill_leftovers()
    assert f"the driver of run {run_id} is gone" in err, err
    assert "has ended" not in err, err
    if not stuck:
        assert joiner.returncode == 1, err
        assert err.count("error:") == 1, err
    else:
        assert joiner.returncode == -signal.SIGKILL, err
        assert "did not stop within 5 s" in err, err
    # the driver's liveness key lasts 5 s, a beat is 1 s, the grace 5 s: 11 s, and a margin
    assert took < 30, took
    assert "Traceback" not in err, err


# -- Ctrl-C and SIGTERM to a worker (issue 16, point 5) ----------------------------------------
@pytest.mark.parametrize(
    ("sig", "reason"), [(signal.SIGINT, "interrupted (SIGINT)"), (signal.SIGTERM, "terminated (SIGTERM)")]
)
def test_ctrl_c_and_sigterm_make_a_worker_leave_alike(
    sig: int, reason: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    folder, key = tmp_path / "marks", tmp_path / "run.key"
    folder.mkdir()
    key.write_text("the key of the two hosts\n")
    key.chmod(0o600)  # a key others can read is refused
    env = hog_env(folder, 40, 0.1)
    args = ("-n", "1", "--key-file", str(key), "--run", "signals", "--batch-size", "1")
    watched = driver(tmp_path, redis_server.url, *args, env=env)
    joiner = worker_process(redis_server.url, key, "--run", "signals", env=env)
    try:
        watched.wait_until(
            lambda: len({p.name.split("-")[2] for p in folder.glob("start-*")}) > 1, "2 workers"
        )
        joiner.send_signal(sig)
        _, err = joiner.communicate(timeout=30)
        watched.watch_until_exit(within=120)
    finally:
        joiner.kill()
        watched.kill_leftovers()
    assert joiner.returncode == 0, err
    assert f"worker 1 left run signals ({reason}); its tasks go back to the queue" in err, err
    assert watched.process.returncode == 0, watched.stderr()
    assert total_line(40) in watched.stdout()


@pytest.mark.parametrize(
    ("sig", "reason"), [(signal.SIGINT, "interrupted (SIGINT)"), (signal.SIGTERM, "terminated (SIGTERM)")]
)
def test_ctrl_c_and_sigterm_before_a_run_starts_are_alike(
    sig: int, reason: str, redis_server: RedisServer
) -> None:
    waiting = subprocess.Popen(
        cli("worker", "--redis-url", redis_server.url, "--wait", "60"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "DISPEL4PY_KEY": "k" * 32, "PYTHONUNBUFFERED": "1"},
    )
    try:
        with redis_server.client() as c:  # it is looking for a run: its handlers are in place
            deadline = time.monotonic() + 60
            while not any(k.get("name") == "dispel4py-worker-join" for k in c.client_list()):
                assert time.monotonic() < deadline and waiting.poll() is None, "the worker never connected"
                time.sleep(0.05)
        waiting.send_signal(sig)
        _, err = waiting.communicate(timeout=30)
    finally:
        waiting.kill()
    assert waiting.returncode == 0, err
    assert f"dispel4py worker: {reason} before joining a run" in err, err


# -- Redis flushed, paused or out of reach (issue 15, defect 9) ---------------------------------
SLOW = str(WORKFLOWS / "dyn_slow.py")
SLOW_ENV = {"D4PY_SLOW_ITEMS": "300", "D4PY_SLOW_S": "0.05"}


def one_clean_error(err: str) -> None:
    assert err.count("dispel4py: error:") == 1, err
    assert "Traceback" not in err and " failed in " not in err, err


@pytest.mark.parametrize("attempt", [1, 2, 3])
def test_a_flushed_server_is_reported_as_the_runs_queues_gone_never_as_a_pe_failure(
    attempt: int, redis_server: RedisServer, tmp_path: Path
) -> None:
    """FLUSHALL while the source is writing under backpressure (batch size 1): the error is
    the transport's, whichever process meets it first, and no replay file is written."""
    args = ("-n", "2", "--batch-size", "1", "--redis-url", redis_server.url)
    command = cli("dyn_redis", SLOW, *args)
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, **SLOW_ENV},
    )
    try:
        deadline = time.monotonic() + 60
        while not any(k.endswith(":q:Sleepy1:0") for k in redis_server.run_keys()):
            assert time.monotonic() < deadline and process.poll() is None, "the run never started"
            time.sleep(0.05)
        time.sleep(0.5 * attempt)  # different moments of the run
        with redis_server.client() as c:
            c.flushall()
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 1, err
    one_clean_error(err)
    assert f"the run's queues are gone from Redis at 127.0.0.1:{redis_server.port}" in err, err
    assert not (tmp_path / ".dispel4py").exists(), "a replay file for a transport failure"


@pytest.mark.parametrize("how", ["client-pause", "sigstop"])
def test_a_paused_server_is_noticed_within_the_socket_timeout(how: str, tmp_path: Path) -> None:
    """CLIENT PAUSE, or SIGSTOP of redis-server: the run ends with one line saying that the
    server did not answer within 3 s (docs/redis.md), long before the 60 s pause ends."""
    server = RedisServer()
    env = {"D4PY_SLOW_ITEMS": "40", "D4PY_SLOW_S": "0.5"}
    watched = WatchedRun(tmp_path, cli("dyn_redis", SLOW, "-n", "2", "--redis-url", server.url), env=env)
    try:
        watched.wait_until(lambda: server.run_keys(), "the run's keys")
        if how == "sigstop":
            server.process.send_signal(signal.SIGSTOP)
        else:
            with server.client() as c:
                c.execute_command("CLIENT", "PAUSE", "60000", "ALL")
        paused = time.monotonic()
        watched.watch_until_exit(within=60)
        took = time.monotonic() - paused
        err = watched.stderr()
        assert watched.process.returncode == 1, err
        one_clean_error(err)
        assert f"Redis at 127.0.0.1:{server.port} did not answer within 3 s" in err, err
        assert took < 30, took  # 3 s to notice, up to 2 x 3 s to try to delete the keys, and a margin
        print(f"{how}: the run ended {took:.1f} s after the pause:\n{err}")
        assert watched.leftover_processes(within=30) == []  # a hang guard
    finally:
        if server.process is not None:
            server.process.send_signal(signal.SIGCONT)
        watched.kill_leftovers()
        server.close()


def test_no_local_worker_on_the_private_server_is_a_usage_error(tmp_path: Path) -> None:
    """``-n 0`` without a server: nobody could ever join (random password), so it is refused
    at once instead of waiting forever."""
    done = run(cli("dyn_redis", MARKS, "-n", "0"), env={"REDIS_HOST": "", "REDIS_PORT": ""}, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "-n 0 runs no local worker" in done.stderr and "--redis-url" in done.stderr
    assert done.stderr.count("dispel4py: error:") == 1 and "Traceback" not in done.stderr


def test_a_worker_whose_heartbeat_process_died_stops_with_a_clear_error(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """Without its heartbeat process a worker looks dead to the others, who would take every
    task it runs: it stops instead, and says why."""
    import psutil

    folder = tmp_path / "marks"
    folder.mkdir()
    env = hog_env(folder, 200, 0.05)
    watched = driver(tmp_path, redis_server.url, "-n", "2", "--batch-size", "1", env=env)
    try:
        watched.wait_until(lambda: runs_of(folder, "start"), "a first task")
        workers = psutil.Process(watched.process.pid).children()
        beating = [c for w in workers for c in w.children()]
        assert beating, "no heartbeat process"
        beating[0].kill()
        watched.watch_until_exit(within=60)
    finally:
        watched.kill_leftovers()
    err = watched.stderr()
    assert watched.process.returncode == 1, err
    one_clean_error(err)
    assert f"the heartbeat process (pid {beating[0].pid})" in err and "ended (signal 9)" in err, err


def test_a_worker_killed_after_a_blocking_read_leaves_counts_right(
    redis_server: RedisServer,
) -> None:
    """A blocking XREADGROUP hands a task over before the worker can do anything else (a
    script cannot block): a worker killed right after it must leave the counts right — its
    task counted as running while it is pending for the dead worker, as queued once given
    back, and as running again once another worker takes it. The counts are derived from the
    streams (``COUNTS``: XLEN minus pending, and pending), so there is no step between the
    read and the count where a death could make them drift. (Found by the chaos soak when
    the counts were a hash a worker updated after its read: a running count of -1, then
    ZeroDivisionError in the scheduler.)"""
    import pickle

    from dispel4py.dynamic.layout import dynamic_place
    from dispel4py.dynamic.signing import Signer, new_key
    from dispel4py.engine.loading import load_workflow
    from dispel4py.engine.plan import make_plan
    from dispel4py.mappings.redis.queues import RedisQueues, RunNames
    from dispel4py.mappings.redis.run import RedisRun
    from dispel4py.mappings.redis.scripts import COUNTS
    from dispel4py.mappings.redis.server import target_from_url

    plan = make_plan(load_workflow(MARKS), None, 2, place_fn=dynamic_place)
    shared = next(k for k, w in enumerate(plan.placement.worker_of) if w < 0)
    names = RunNames(f"blocking-{os.getpid()}", plan)
    driver = RedisQueues(
        plan, target_from_url(redis_server.url), names, Signer(new_key()), claim_idle_ms=1000
    )
    driver.open_client("test-driver")
    keys = RedisRun(driver, slots=2, local=2, ttl_s=60)
    keys.create({}, None)
    try:
        driver.put(shared, ("input", [1, 2, 3]))
        with redis_server.client() as c:
            stream = names.stream(shared)

            def counts() -> tuple[int, int]:
                queued, running = c.eval(COUNTS, 1, stream, "d4py")
                return int(queued), int(running)

            assert counts() == (1, 0)
            # worker 0's blocking read (consumer 'w0', as take() reads), then it dies
            assert c.xreadgroup("d4py", "w0", {stream: ">"}, count=1)
            assert counts() == (0, 1)
            assert driver.requeue("w0") == ([shared], [])
            assert counts() == (1, 0)
            second = pickle.loads(pickle.dumps(driver))
            second.worker = 1
            second.open_client("w1")
            assert second.take([shared], 5.0) == (shared, ("input", [1, 2, 3]))
            assert counts() == (0, 1)
    finally:
        keys.destroy()
