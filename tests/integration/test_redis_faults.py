"""Faults on the Redis mappings: dead, frozen and departed workers, workers from other hosts,
forged entries, a server restart, signals. Counts must stay exact wherever the run goes on.
"""

from __future__ import annotations

import os
import pickle
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from _helpers import WORKFLOWS, WatchedRun, cli, run
from redis_support import RedisServer, redis_server_fixture  # noqa: F401 - the fixture

import dispel4py
from dispel4py.engine.loading import load_workflow

pytestmark = pytest.mark.timeout(90)

MARKS = str(WORKFLOWS / "redis_marks.py")
SLOW = str(WORKFLOWS / "dyn_slow.py")


def marks(folder: Path, kind: str) -> set[int]:
    return {int(p.name.split("-")[1]) for p in folder.glob(f"{kind}-*")}


def total_line(items: int) -> str:
    return f"Outputs: {{'Total2': {{'total': [({items}, {sum(range(items))})]}}}}"


def marked_run(
    tmp_path: Path, url: str, *args: str, items: int = 200, sleep_s: float = 0.02
) -> tuple[WatchedRun, Path]:
    """The marks workflow on dyn_redis; ``folder / "env"`` holds its environment (for the
    workers that join: the workflow reads its settings when it is imported)."""
    folder = tmp_path / "marks"
    folder.mkdir()
    env = {"D4PY_MARK_DIR": str(folder), "D4PY_MARK_ITEMS": str(items), "D4PY_MARK_S": str(sleep_s)}
    ENVS[str(folder)] = env
    return WatchedRun(tmp_path / "run", cli("dyn_redis", MARKS, "--redis-url", url, *args), env=env), folder


ENVS: dict[str, dict[str, str]] = {}


def test_a_killed_worker_gives_its_tasks_back_and_counts_stay_exact(
    redis_server: RedisServer, tmp_path
) -> None:
    watched, folder = marked_run(tmp_path, redis_server.url, "-n", "3")
    pinned = watched.wait_until(
        lambda: (
            marks(folder, "source")
            and marks(folder, "total")
            and marks(folder, "source") | marks(folder, "total")
        ),
        "pinned marks of the source and the total",
    )
    victim = watched.wait_until(
        lambda: sorted(marks(folder, "shared") - pinned), "a worker with only shared work"
    )[0]
    os.kill(victim, signal.SIGKILL)
    watched.watch_until_exit(within=60)
    assert watched.process.returncode == 0, watched.stderr()
    assert total_line(200) in watched.stdout()  # every item exactly once
    assert "died (signal 9)" in watched.stderr() and "go back to the queue" in watched.stderr()
    assert watched.leftover_processes(within=30) == []  # a hang guard
    assert redis_server.run_keys() == []


def test_a_killed_worker_hosting_a_pinned_instance_fails_the_run_naming_it(
    redis_server: RedisServer, tmp_path
) -> None:
    watched, folder = marked_run(tmp_path, redis_server.url, "-n", "3", items=400)
    [total] = watched.wait_until(lambda: marks(folder, "total"), "Total's worker")
    watched.wait_until(lambda: marks(folder, "shared"), "a first item")
    os.kill(total, signal.SIGKILL)
    killed = time.monotonic()
    watched.watch_until_exit(within=30)
    assert time.monotonic() - killed < 5
    assert watched.process.returncode == 1
    assert "hosting Total2 (instance 2)" in watched.stderr(), watched.stderr()
    assert "cannot be recovered" in watched.stderr()
    assert watched.stdout() == ""
    assert watched.leftover_processes(within=30) == []  # a hang guard
    assert redis_server.run_keys() == []


def worker_process(
    url: str, key_file: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.Popen:
    return subprocess.Popen(
        cli("worker", "--redis-url", url, "--key-file", str(key_file), "--wait", "20", *extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def test_a_worker_process_joins_the_run_and_leaves_at_its_end(redis_server: RedisServer, tmp_path) -> None:
    key = tmp_path / "run.key"
    watched, folder = marked_run(
        tmp_path, redis_server.url, "-n", "1", "--key-file", str(key), "--run", "joined", "-v", sleep_s=0.03
    )
    watched.wait_until(lambda: key.exists() and marks(folder, "source"), "the run to start")
    joiner = worker_process(redis_server.url, key, "--run", "joined", MARKS, env=ENVS[str(folder)])
    try:
        watched.watch_until_exit(within=60)
        _, err = joiner.communicate(timeout=20)
    finally:
        joiner.kill()
    assert watched.process.returncode == 0, watched.stderr()
    assert total_line(200) in watched.stdout()
    assert joiner.returncode == 0, err
    assert "worker 1 joined run joined" in err and "run joined has ended; worker 1 leaves" in err
    assert "worker 1 joined from" in watched.stderr()
    assert joiner.pid in marks(folder, "shared"), "the joined worker ran no task"
    assert redis_server.run_keys() == []


def test_a_driver_without_local_workers_runs_on_workers_that_join(
    redis_server: RedisServer, tmp_path
) -> None:
    key = tmp_path / "run.key"
    key.write_text("a shared secret of the two hosts\n")
    key.chmod(0o600)  # a key others can read is refused
    watched, folder = marked_run(tmp_path, redis_server.url, "-n", "0", "--key-file", str(key), items=60)
    joiners = [worker_process(redis_server.url, key, env=ENVS[str(folder)]) for _ in range(2)]
    try:
        watched.watch_until_exit(within=60)
        results = [j.communicate(timeout=20) for j in joiners]
    finally:
        for j in joiners:
            j.kill()
    assert watched.process.returncode == 0, watched.stderr()
    assert total_line(60) in watched.stdout()
    assert [j.returncode for j in joiners] == [0, 0], results
    assert any("hosting pinned instances" in err for _, err in results)


def test_a_killed_remote_worker_gives_its_tasks_back(redis_server: RedisServer, tmp_path) -> None:
    key = tmp_path / "run.key"
    watched, folder = marked_run(
        tmp_path,
        redis_server.url,
        *("-n", "1", "--key-file", str(key), "--claim-idle-ms", "1000"),
        sleep_s=0.05,
        items=80,
    )
    watched.wait_until(lambda: key.exists() and marks(folder, "source"), "the run to start")
    joiner = worker_process(redis_server.url, key, env=ENVS[str(folder)])
    try:
        watched.wait_until(lambda: joiner.pid in marks(folder, "shared"), "the joined worker's first task")
        joiner.kill()
        watched.watch_until_exit(within=60)
    finally:
        joiner.kill()
        joiner.communicate()
    assert watched.process.returncode == 0, watched.stderr()
    assert total_line(80) in watched.stdout()
    assert "worker 1 is gone (no heartbeat for 1000 ms)" in watched.stderr()
    assert redis_server.run_keys() == []


def test_a_frozen_worker_cannot_add_its_outputs_twice(redis_server: RedisServer, tmp_path) -> None:
    """SIGSTOP a joined worker mid-task beyond the claim time: its task runs elsewhere; when
    it wakes up, its commit is refused (the task is no longer its own) and counts stay exact."""
    key = tmp_path / "run.key"
    watched, folder = marked_run(
        tmp_path,
        redis_server.url,
        "-n",
        "1",
        "--key-file",
        str(key),
        "--claim-idle-ms",
        "1000",
        sleep_s=0.2,
        items=40,
    )
    watched.wait_until(lambda: key.exists() and marks(folder, "source"), "the run to start")
    joiner = worker_process(redis_server.url, key, env=ENVS[str(folder)])
    try:
        watched.wait_until(lambda: joiner.pid in marks(folder, "shared"), "the joined worker's first task")
        joiner.send_signal(signal.SIGSTOP)
        time.sleep(3.5)  # its liveness key (1 s) expires, a reclaim (every 0.5 s) runs
        joiner.send_signal(signal.SIGCONT)
        watched.watch_until_exit(within=60)
        joiner.communicate(timeout=20)
    finally:
        joiner.kill()
    assert watched.process.returncode == 0, watched.stderr()
    assert total_line(40) in watched.stdout()


def test_a_remote_worker_stopped_by_sigterm_leaves_and_the_run_goes_on(
    redis_server: RedisServer, tmp_path
) -> None:
    key = tmp_path / "run.key"
    watched, folder = marked_run(
        tmp_path, redis_server.url, "-n", "1", "--key-file", str(key), sleep_s=0.05, items=80
    )
    watched.wait_until(lambda: key.exists() and marks(folder, "source"), "the run to start")
    joiner = worker_process(redis_server.url, key, env=ENVS[str(folder)])
    try:
        watched.wait_until(lambda: joiner.pid in marks(folder, "shared"), "the joined worker's first task")
        joiner.terminate()
        _, err = joiner.communicate(timeout=20)
        watched.watch_until_exit(within=60)
    finally:
        joiner.kill()
    assert joiner.returncode == 0, err
    assert "its tasks go back to the queue" in err
    assert watched.process.returncode == 0, watched.stderr()
    assert total_line(80) in watched.stdout()
    assert "worker 1 left" in watched.stderr()


def test_a_live_worker_reclaims_an_idle_task_and_the_old_owner_cannot_commit(
    redis_server: RedisServer,
) -> None:
    """Reclaim of an idle task whose worker has no liveness key: the mechanism itself, on two
    queue objects of one run."""
    from dispel4py.dynamic.layout import dynamic_place
    from dispel4py.dynamic.signing import Signer, new_key
    from dispel4py.engine.plan import make_plan
    from dispel4py.mappings.redis.queues import RedisQueues, RunNames
    from dispel4py.mappings.redis.run import RedisRun
    from dispel4py.mappings.redis.server import target_from_url

    graph = load_workflow(MARKS)
    plan = make_plan(graph, None, 2, place_fn=dynamic_place)
    shared = next(k for k, w in enumerate(plan.placement.worker_of) if w < 0)
    target, signer = target_from_url(redis_server.url), Signer(new_key())
    names = RunNames("claim-test", plan)
    driver = RedisQueues(plan, target, names, signer, claim_idle_ms=300)
    driver.open_client("test-driver")
    keys = RedisRun(driver, slots=2, local=2, ttl_s=60)
    keys.create({}, None)
    try:
        driver.put(shared, ("input", [1, 2, 3]))
        first, second = (pickle.loads(pickle.dumps(driver)) for _ in range(2))
        first.worker, second.worker = 0, 1
        first.open_client("w0")
        second.open_client("w1")
        assert first.take([shared], 1.0) == (shared, ("input", [1, 2, 3]))  # and then it freezes
        assert second.take([shared], 0.05) is None  # not idle long enough yet
        time.sleep(0.35)
        second.next_reclaim = 0
        assert second.take([shared], 1.0) == (shared, ("input", [1, 2, 3]))
        second.task_done(shared, ("task", "second"))
        second.flush()
        first.task_done(shared, ("task", "first"))
        first.flush()  # refused: no longer its task
        with redis_server.client() as c:
            reports = c.xrange(names.reports)
        sealed = [r[1] for r in reports if b"d" in r[1]]
        messages = [signer.loads(names.reports.encode(), r[b"m"], r[b"d"], r[b"i"]) for r in sealed]
        assert [m[:2] for m in messages] == [(1, ("task", "second"))]
        assert driver.backlog(shared) == 0 and driver.running(shared) == 0
    finally:
        keys.destroy()
    assert redis_server.run_keys() == []


class _Boom:
    """Unpickling this creates a file: proof that a forged entry was (or was not) unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_forged_and_unsigned_entries_are_never_unpickled(
    redis_server: RedisServer, tmp_path, fresh_ids
) -> None:
    trap = tmp_path / "unpickled"
    evil = pickle.dumps(_Boom(str(trap)))
    os.environ["D4PY_SLOW_ITEMS"], os.environ["D4PY_SLOW_S"] = "6", "0.3"
    try:
        graph = load_workflow(SLOW)
    finally:
        del os.environ["D4PY_SLOW_ITEMS"], os.environ["D4PY_SLOW_S"]
    injected = threading.Event()

    def inject() -> None:
        client = redis_server.client()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if client.exists("d4py:forged:info"):
                client.xadd("d4py:forged:q:Sleepy1:0", {"d": evil})  # unsigned
                client.xadd("d4py:forged:q:Sleepy1:0", {"m": b"x" * 32, "d": evil})  # forged MAC
                client.xadd("d4py:forged:reports", {"m": b"y" * 32, "d": evil})
                injected.set()
                return
            time.sleep(0.01)

    thread = threading.Thread(target=inject)
    thread.start()
    with _captured_warnings() as warnings:
        result = dispel4py.run(graph, None, "dyn_redis", num=2, redis_url=redis_server.url, run="forged")
    thread.join()
    assert injected.is_set()
    assert result.items("Total3", "total") == [(6, 30)]
    assert not trap.exists(), "a forged entry was unpickled"
    [warning] = [w for w in warnings if "forged or unsigned" in w]
    assert "3 forged or unsigned Redis entries were dropped unread" in warning
    assert redis_server.run_keys() == []


class _captured_warnings:
    def __enter__(self) -> list[str]:
        import logging

        self.lines: list[str] = []
        self.handler = logging.Handler(logging.WARNING)
        self.handler.emit = lambda record: self.lines.append(record.getMessage())  # type: ignore[method-assign]
        logging.getLogger("dispel4py").addHandler(self.handler)
        return self.lines

    def __exit__(self, *exc) -> None:
        import logging

        logging.getLogger("dispel4py").removeHandler(self.handler)


def test_a_redis_restart_mid_run_is_a_clear_error(tmp_path) -> None:
    server = RedisServer()
    try:
        env = {"D4PY_SLOW_ITEMS": "20", "D4PY_SLOW_S": "0.5"}
        watched = WatchedRun(tmp_path, cli("dyn_redis", SLOW, "-n", "2", "--redis-url", server.url), env=env)
        watched.wait_until(lambda: server.run_keys(), "the run's keys")
        time.sleep(0.5)
        server.kill()
        server.start()  # a restart: same port, empty
        restarted = time.monotonic()
        watched.watch_until_exit(within=30)
        assert time.monotonic() - restarted < 12
        assert watched.process.returncode == 1
        err = watched.stderr()
        assert err.count("dispel4py: error:") == 1, err
        assert f"Redis at 127.0.0.1:{server.port}" in err, err
        assert "Traceback" not in err
        assert watched.leftover_processes(within=30) == []  # a hang guard
    finally:
        server.close()


@pytest.mark.parametrize(
    ("sig", "code", "line"),
    [(signal.SIGTERM, 143, "terminated (SIGTERM)"), (signal.SIGINT, 130, "interrupted")],
)
def test_sigterm_and_ctrl_c_stop_the_run_and_delete_its_keys(
    sig, code, line, redis_server: RedisServer, tmp_path
) -> None:
    watched, folder = marked_run(tmp_path, redis_server.url, "-n", "2", sleep_s=0.1)
    watched.wait_until(lambda: marks(folder, "shared"), "a first task")
    watched.process.send_signal(sig)
    watched.watch_until_exit(within=10)
    assert watched.process.returncode == code, watched.stderr()
    assert line in watched.stderr()
    assert watched.leftover_processes(within=30) == []  # a hang guard
    assert redis_server.run_keys() == []


def test_a_pe_error_ends_the_run_at_once_and_deletes_its_keys(redis_server: RedisServer, tmp_path) -> None:
    """Slow has 67 s of work; the cheap Boom raises on item 42 (see test_dynamic.py):
    counted in Slow's items, not in seconds."""
    env = {"D4PY_BOOM_ITEMS": "1000", "D4PY_MARK_DIR": str(tmp_path)}
    done = run(
        cli("dyn_redis", str(WORKFLOWS / "slow_and_boom.py"), "-n", "3", "--redis-url", redis_server.url),
        timeout=90,
        env=env,
    )
    assert done.returncode == 1, done.stderr
    at_raise = int(re.search(r"raised at [0-9.]+ with (\d+) Slow items done", done.stderr).group(1))
    assert at_raise < 500, at_raise  # Boom was not held back behind Slow's backlog
    after = len(list(tmp_path.iterdir())) - at_raise
    assert after < 150, after  # the run ended at once: not 10 s more of Slow's work
    assert done.stderr.count("dispel4py: error:") == 1
    assert redis_server.run_keys() == []


def test_an_unpicklable_item_names_pe_and_port(redis_server: RedisServer) -> None:
    done = run(
        cli(
            "dyn_redis",
            str(WORKFLOWS / "unpicklable.py"),
            "-n",
            "2",
            "-i",
            "3",
            "--redis-url",
            redis_server.url,
        )
    )
    assert done.returncode == 1
    assert "written by Locks0.output to Sink1 input 'input'" in done.stderr
    assert "cannot be pickled" in done.stderr
    assert redis_server.run_keys() == []


def test_the_worker_command_says_what_it_needs(redis_server: RedisServer) -> None:
    no_server = run(cli("worker"), env={"REDIS_HOST": "", "REDIS_PORT": ""})
    assert no_server.returncode == 2 and "--redis-url" in no_server.stderr
    no_key = run(cli("worker", "--redis-url", redis_server.url), env={"DISPEL4PY_KEY": ""})
    assert no_key.returncode == 2 and "--key-file" in no_key.stderr
    no_run = run(
        cli("worker", "--redis-url", redis_server.url, "--wait", "0.2"), env={"DISPEL4PY_KEY": "k" * 32}
    )
    assert no_run.returncode == 2
    assert "no run signed with this key is in progress" in no_run.stderr, no_run.stderr


def test_dead_letter_gives_up_the_bad_items_and_the_run_goes_on(redis_server: RedisServer, fresh_ids) -> None:
    from dispel4py.mappings.redis.mapping import ItemsGivenUp

    graph = load_workflow(str(WORKFLOWS / "redis_picky.py"))
    with pytest.raises(ItemsGivenUp) as info:
        dispel4py.run(graph, None, "dyn_redis", num=3, redis_url=redis_server.url, on_error="dead-letter")
    error = info.value
    assert sorted(error.given_up) == [
        "Picky1[0] with item 13: ValueError: I do not like 13",
        "Picky1[0] with item 42: ValueError: I do not like 42",
    ]
    assert error.outputs == {"Total2": {"total": [(98, sum(range(100)) - 13 - 42)]}}  # each other item once
    assert redis_server.run_keys() == []
    picky = str(WORKFLOWS / "redis_picky.py")
    done = run(
        cli("dyn_redis", picky, "-n", "2", "--on-error", "dead-letter", "--redis-url", redis_server.url)
    )
    assert done.returncode == 1
    assert "2 task(s) given up after 3 deliveries each" in done.stderr
    # what the run produced is printed as usual, the error follows
    assert f"Outputs: {{'Total2': {{'total': [(98, {sum(range(100)) - 13 - 42})]}}}}" in done.stdout


def test_a_killed_driver_leaves_no_process_and_no_folder_behind(tmp_path) -> None:
    """SIGKILL of the driver: its workers and its embedded server end, the server's folder goes."""
    folder = tmp_path / "marks"
    folder.mkdir()
    env = {"D4PY_MARK_DIR": str(folder), "D4PY_MARK_S": "0.05", "REDIS_HOST": "", "REDIS_PORT": ""}
    watched = WatchedRun(tmp_path / "run", cli("dyn_redis", MARKS, "-n", "2"), env=env)
    try:
        watched.wait_until(lambda: marks(folder, "shared"), "a first task")
        watched.poll()
        watched.process.kill()
        watched.process.wait()
        assert watched.leftover_processes(within=30) == []  # a hang guard
        assert watched.leftover_files() == []
    finally:
        watched.kill_leftovers()


def test_a_joined_worker_leaves_when_the_driver_is_gone(redis_server: RedisServer, tmp_path) -> None:
    key = tmp_path / "run.key"
    watched, folder = marked_run(tmp_path, redis_server.url, "-n", "1", "--key-file", str(key), sleep_s=0.05)
    watched.wait_until(lambda: key.exists() and marks(folder, "source"), "the run to start")
    joiner = worker_process(redis_server.url, key, env=ENVS[str(folder)])
    try:
        watched.wait_until(lambda: joiner.pid in marks(folder, "shared"), "the joined worker's first task")
        watched.process.kill()
        killed = time.monotonic()
        _, err = joiner.communicate(timeout=30)
        assert time.monotonic() - killed < 15
    finally:
        joiner.kill()
        watched.kill_leftovers()
    assert joiner.returncode == 1, err
    assert "the driver of run" in err and "is gone" in err
