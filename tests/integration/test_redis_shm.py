"""Large items on the Redis mappings through the shared memory of the driver's host
(mappings/redis/payloads.py), with a real redis-server: the results of ``simple``, only
descriptors through Redis, ``--shm-bytes``, a worker of another host joining mid-run (the
race), a worker killed while it holds a task in shared memory, and nothing left in /dev/shm.

"Another host" is a ``dispel4py worker`` started with ``DISPEL4PY_HOST_ID=elsewhere``, in
its own folder with its own HOME: it never maps the driver's arena.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess

import psutil
import pytest
from _helpers import WORKFLOWS, WatchedRun, cli, run
from redis_support import RedisServer, redis_server_fixture  # noqa: F401 - the fixture

from dispel4py.mappings.processes.shm import ShmCodec, shm_folder_prefix

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="no /dev/shm on this system"),
]

ARRAYS = WORKFLOWS / "redis_arrays.py"
MB = 1 << 20


def total_line(items: int) -> str:
    return f"Outputs: {{'Sink2': {{'total': [({items}, {sum(range(items))})]}}}}"


def folders(pid: int) -> list[str]:
    return glob.glob(os.path.join("/dev/shm", shm_folder_prefix(pid) + "*"))


def net_input_bytes(server: RedisServer) -> int:
    with server.client() as c:
        return int(c.info("stats")["total_net_input_bytes"])


def arrays_run(server: RedisServer, mapping: str, *args: str, items: int = 40) -> tuple[str, int]:
    """A whole run of the arrays workflow (1 MB each): its stdout and the bytes Redis received."""
    before = net_input_bytes(server)
    done = run(
        cli(mapping, str(ARRAYS), "-n", "3", "--redis-url", server.url, *args),
        timeout=90,
        env={"D4PY_ARRAYS": str(items), "D4PY_ARRAY_BYTES": str(MB)},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout, net_input_bytes(server) - before


@pytest.mark.parametrize("mapping", ["dyn_redis", "dyn_auto_redis", "hybrid_redis"])
def test_large_items_give_the_results_of_simple_and_only_descriptors_go_through_redis(
    mapping: str, redis_server: RedisServer
) -> None:
    """40 arrays of 1 MB, two hops each: 80 MB in band, a few hundred KB through the arena."""
    out, sent = arrays_run(redis_server, mapping)
    assert total_line(40) in out, out
    assert sent < 8 * MB, f"{sent} bytes went to Redis"
    assert redis_server.run_keys() == []


def test_shm_bytes_zero_sends_every_array_through_redis(redis_server: RedisServer) -> None:
    out, sent = arrays_run(redis_server, "dyn_redis", "--shm-bytes", "0", items=10)
    assert total_line(10) in out, out
    assert sent > 20 * MB, f"only {sent} bytes went to Redis"


@pytest.mark.parametrize(
    ("value", "says"), [("-1", "--shm-bytes must be 0 or more (got -1)"), ("lots", "--shm-bytes")]
)
def test_a_bad_shm_bytes_is_a_usage_error_naming_the_flag(
    value: str, says: str, redis_server: RedisServer
) -> None:
    done = run(
        cli("dyn_redis", str(ARRAYS), "-n", "1", "--redis-url", redis_server.url, "--shm-bytes", value)
    )
    assert done.returncode == 2, done.stderr
    assert says in done.stderr, done.stderr


def test_a_worker_of_another_host_joining_mid_run_gets_the_tasks_in_band(
    redis_server: RedisServer, tmp_path
) -> None:
    """The race: tasks went into the arena before a worker that cannot map it joined. The
    local workers are held (the gate) with tasks queued in the arena, so the joined worker
    must take some of them: each is rewritten in band by the driver, none lost or doubled."""
    items = 30
    key_file = tmp_path / "run.key"
    gate = tmp_path / "gate"
    command = cli(
        "dyn_redis", str(ARRAYS), "-n", "2", "-v", "--redis-url", redis_server.url,
        "--key-file", str(key_file), "--run", "race",
    )  # fmt: skip
    env = {"D4PY_ARRAYS": str(items), "D4PY_ARRAY_BYTES": str(MB), "D4PY_GATE": str(gate)}
    driver = WatchedRun(tmp_path / "driver", command, env=env)
    elsewhere = tmp_path / "elsewhere"  # the other host: its own folder, HOME and host id
    elsewhere.mkdir()
    shutil.copy(ARRAYS, elsewhere / ARRAYS.name)
    try:
        with redis_server.client() as c:
            driver.wait_until(lambda: key_file.exists() and c.exists("d4py:race:info"), "the run to start")
            queue = "d4py:race:q:Hold1:0"
            driver.wait_until(lambda: c.xlen(queue) >= 3, "tasks queued in shared memory", 60)
        remote_env = {k: v for k, v in os.environ.items() if k != "D4PY_GATE"}
        remote_env.update(HOME=str(elsewhere), DISPEL4PY_HOST_ID="elsewhere", D4PY_ARRAY_BYTES=str(MB))
        remote_env["D4PY_ARRAYS"] = str(items)
        remote = subprocess.Popen(
            cli("worker", "--redis-url", redis_server.url, "--key-file", str(key_file), "--run", "race",
                ARRAYS.name),
            cwd=elsewhere, env=remote_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            driver.wait_until(
                lambda: "rewritten in band for worker 2" in driver.stderr(), "a task rewritten", 60
            )
            gate.touch()
            driver.watch_until_exit(within=90)
            _, remote_err = remote.communicate(timeout=60)
        finally:
            if remote.poll() is None:
                remote.kill()
                remote.wait()
    finally:
        gate.touch()
        driver.kill_leftovers()
    assert driver.process.returncode == 0, driver.stderr()
    assert remote.returncode == 0, remote_err
    assert total_line(items) in driver.stdout(), driver.stdout()
    assert "worker 2 cannot map this host's shared memory" in driver.stderr()
    assert folders(driver.process.pid) == []
    assert redis_server.run_keys() == []


def test_a_worker_joining_from_the_drivers_host_maps_the_arena(redis_server: RedisServer, tmp_path) -> None:
    """``dispel4py worker`` on the same host (same host id) takes the tasks in shared memory
    while the driver's worker is held: exact results, and the arrays never reach Redis."""
    items = 30
    key_file = tmp_path / "run.key"
    gate = tmp_path / "gate"
    command = cli(
        "dyn_redis", str(ARRAYS), "-n", "1", "-v", "--redis-url", redis_server.url,
        "--key-file", str(key_file), "--run", "same",
    )  # fmt: skip
    env = {"D4PY_ARRAYS": str(items), "D4PY_ARRAY_BYTES": str(MB), "D4PY_GATE": str(gate)}
    before = net_input_bytes(redis_server)
    driver = WatchedRun(tmp_path / "driver", command, env=env)
    joined = None
    try:
        with redis_server.client() as c:
            driver.wait_until(lambda: key_file.exists() and c.exists("d4py:same:info"), "the run to start")
            joined_env = {k: v for k, v in os.environ.items() if k not in ("D4PY_GATE", "DISPEL4PY_HOST_ID")}
            joined_env.update(D4PY_ARRAYS=str(items), D4PY_ARRAY_BYTES=str(MB))
            joined = subprocess.Popen(
                cli("worker", "--redis-url", redis_server.url, "--key-file", str(key_file), "--run", "same",
                    str(ARRAYS)),
                env=joined_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            sink_queue = "d4py:same:q:Sink2:0"
            driver.wait_until(lambda: c.xlen(sink_queue) >= 3, "outputs of the joined worker", 60)
        gate.touch()
        driver.watch_until_exit(within=90)
        _, joined_err = joined.communicate(timeout=60)
    finally:
        gate.touch()
        if joined is not None and joined.poll() is None:
            joined.kill()
            joined.wait()
        driver.kill_leftovers()
    assert driver.process.returncode == 0, driver.stderr()
    assert joined.returncode == 0, joined_err
    assert total_line(items) in driver.stdout(), driver.stdout()
    assert "worker 1 joined" in driver.stderr() and "cannot map" not in driver.stderr(), driver.stderr()
    assert net_input_bytes(redis_server) - before < 8 * MB
    assert folders(driver.process.pid) == []


def test_a_worker_killed_holding_a_task_in_shared_memory_loses_nothing(
    redis_server: RedisServer, tmp_path
) -> None:
    """Worker 2 (no pinned instance) stalls on its first Hold task, whose array is in the
    arena; SIGKILL: the task goes back to the queue, its block is still there, another
    worker runs it: exact results, and the run's arena is gone at the end."""
    items = 40
    stalled = tmp_path / "stalled"
    command = cli("dyn_redis", str(ARRAYS), "-n", "3", "--redis-url", redis_server.url)
    env = {
        "D4PY_ARRAYS": str(items),
        "D4PY_ARRAY_BYTES": str(MB),
        "D4PY_STALL_WORKER": "dispel4py-worker-2",
        "D4PY_STALLED": str(stalled),
    }
    watched = WatchedRun(tmp_path / "run", command, env=env)
    try:
        watched.wait_until(stalled.exists, "worker 2 to stall on a task", 60)
        victim = int(stalled.read_text())
        assert victim in watched.poll()
        psutil.Process(victim).send_signal(signal.SIGKILL)
        watched.watch_until_exit(within=90)
    finally:
        watched.kill_leftovers()
    assert watched.process.returncode == 0, watched.stderr()
    assert "worker 2 died (signal 9) while running a task of Hold1" in watched.stderr(), watched.stderr()
    assert total_line(items) in watched.stdout(), watched.stdout()
    assert folders(watched.process.pid) == []
    assert redis_server.run_keys() == []


# -- the descriptor is inside the signed entry: forged, changed or stale ones are refused ----------
def _queues_pair(server: RedisServer, run_id: str):
    """A driver's queues with an arena (as ``dyn_redis`` makes them) and a worker's copy."""
    import pickle

    from dispel4py.dynamic.layout import dynamic_place
    from dispel4py.dynamic.signing import Signer, new_key
    from dispel4py.engine.loading import load_workflow
    from dispel4py.engine.plan import make_plan
    from dispel4py.mappings.processes.shm import ShmCodec
    from dispel4py.mappings.redis.payloads import Payloads, arena_keys
    from dispel4py.mappings.redis.queues import RedisQueues, RunNames
    from dispel4py.mappings.redis.run import RedisRun
    from dispel4py.mappings.redis.server import target_from_url

    plan = make_plan(load_workflow(str(ARRAYS)), None, 2, place_fn=dynamic_place)
    [hold_id] = [pe_id for pe_id in plan.instances if pe_id.startswith("Hold")]
    driver = RedisQueues(plan, target_from_url(server.url), RunNames(run_id, plan), Signer(new_key(), b"n1"))
    codec = ShmCodec.create(None, budget=32 * MB)
    driver.payloads = Payloads(codec, arena_keys(plan, 2))
    driver.open_client("test-driver")
    keys = RedisRun(driver, slots=2, local=2, ttl_s=60)
    keys.create({}, None)
    worker = pickle.loads(pickle.dumps(driver))
    worker.worker = 0
    worker.open_client("w0", load_scripts=False)
    return plan.instances[hold_id][0], driver, worker, keys, codec


def _tampered(seed: int, fields: dict, other_offset: int) -> dict:
    """A copy of a signed entry whose data was changed, keeping its MAC and identity."""
    import pickle
    import random

    rng = random.Random(seed)
    data = bytearray(fields[b"d"])
    if seed % 3 == 0:  # the descriptor made to point at another block of the arena
        main, blocks, oob = pickle.loads(bytes(data[1:]))
        blocks = [(other_offset, size, kind) for _, size, kind in blocks]
        data = bytearray(b"S" + pickle.dumps((main, blocks, oob), protocol=5))
    else:  # any byte changed
        data[rng.randrange(len(data))] ^= rng.randrange(1, 256)
    return {b"i": fields[b"i"], b"m": fields[b"m"], b"d": bytes(data)}


def reports(client, queues) -> list:
    """The messages of the reports stream, each opened with the run's key."""
    found = [f for _, f in client.xrange(queues.names.reports) if b"d" in f]
    return [queues.signer.loads(queues.reports_scope, f[b"m"], f[b"d"], f[b"i"])[1] for f in found]


def forged_reports(client, queues) -> list:
    """The reports of entries dropped as forged."""
    return [message for message in reports(client, queues) if message[0] == "forged"]


def test_forged_changed_or_stale_descriptors_are_refused_unread(redis_server: RedisServer) -> None:
    """Randomized (the seed is printed): copies of a task entry whose descriptor was changed
    are dropped as forged, the arena untouched; a valid copy of a task already committed
    (a replay whose blocks were freed) is dropped too, never read from a freed block."""
    import numpy as np

    seed = int.from_bytes(os.urandom(2), "big")
    print(f"seed {seed}")
    hold, driver, worker, keys, codec = _queues_pair(redis_server, "forge")
    stream = driver.names.stream(hold)
    try:
        driver.put(hold, ("input", [np.full(MB // 8, 7.0)]))
        driver.put(hold, ("input", [np.full(MB // 8, 8.0)]))
        with redis_server.client() as c:
            (_, first), (_, second) = c.xrange(stream)
            other = codec.blocks(second[b"d"])[0][0]
            before = codec.in_use()
            assert before == 2 * MB
            for case in range(seed, seed + 30):
                c.xadd(stream, _tampered(case, first, other))
            taken = [worker.take([hold], 1.0) for _ in range(2)]
            assert [float(items[0][0]) for _, (_, items) in taken] == [7.0, 8.0]
            assert worker.take([hold], 0.2) is None  # the 30 copies: dropped unread
            assert codec.in_use() == before  # none touched a block
            assert len(forged_reports(c, driver)) == 30
            for _ in range(2):
                worker.task_done(hold, ("task", (0, "Hold", {}, 1, 0.0)))
            worker.flush()  # committed: the entries' blocks are freed
            taken = None
            assert codec.in_use() == 0
            c.xadd(stream, first)  # a replay of a settled entry, validly signed
            assert worker.take([hold], 0.2) is None
            dropped = forged_reports(c, driver)
            assert len(dropped) == 31 and c.xlen(stream) == 0
            assert "shared-memory payload is gone" in dropped[-1][1][1], dropped[-1]
            assert codec.in_use() == 0 and codec.arena.held() == 0
    finally:
        worker.client.close()
        keys.destroy()
        codec.close()
    assert redis_server.run_keys() == []


def test_a_task_in_shared_memory_is_rewritten_in_band_only_while_its_worker_holds_it(
    redis_server: RedisServer,
) -> None:
    """The race, step by step: a worker without the arena takes a task in shared memory; it
    leaves it pending and asks the driver; the driver swaps it for an in-band entry of the
    same identity (its blocks freed), which any worker reads. If the worker was gone first
    (its tasks went back to the queue), the driver changes nothing and the block stays."""
    import pickle

    import numpy as np

    from dispel4py.mappings.redis.payloads import Payloads, rewrite_in_band

    hold, driver, local, keys, codec = _queues_pair(redis_server, "swap")
    remote = pickle.loads(pickle.dumps(driver))
    remote.payloads = Payloads(ShmCodec(None, 0, 0, None))  # another host: no arena
    remote.worker = 1
    remote.open_client("w1", load_scripts=False)
    stream = driver.names.stream(hold)
    try:
        for value in (1.0, 2.0):
            driver.put(hold, ("input", [np.full(MB // 8, value)]))
        with redis_server.client() as c:
            idents = [f[b"i"] for _, f in c.xrange(stream)]
            assert remote.take([hold], 0.2) is None  # neither run: left pending, the driver asked
            asks = [m[1] for m in reports(c, driver) if m[0] == "inband"]
            assert [(w, k) for w, k, _ in asks] == [(1, hold), (1, hold)]
            remote.requeue("w1", [hold])  # the worker is gone before the driver answers
            assert not any(rewrite_in_band(driver, *ask) for ask in asks)  # no longer its tasks
            assert codec.in_use() == 2 * MB  # the blocks stay: the requeued tasks need them
            assert remote.take([hold], 0.2) is None  # taken again: asks again
            again = [m[1] for m in reports(c, driver) if m[0] == "inband"][2:]
            assert len(again) == 2 and all(rewrite_in_band(driver, *ask) for ask in again)
            assert codec.in_use() == 0  # in band now: their blocks are free
            assert sorted(f[b"i"] for _, f in c.xrange(stream)) == sorted(idents)  # same identities
            got = [remote.take([hold], 1.0), local.take([hold], 1.0)]  # readable by both
            assert sorted(float(items[0][0]) for _, (_, items) in got) == [1.0, 2.0]
    finally:
        remote.client.close()
        local.client.close()
        keys.destroy()
        codec.close()
    assert redis_server.run_keys() == []


def test_dead_letter_with_items_in_shared_memory_retries_and_gives_up_exactly(
    redis_server: RedisServer, tmp_path
) -> None:
    """``--on-error dead-letter``: a task of arrays in the arena that raises is retried (split
    into one task per array, sharing their blocks, when it holds several) and the bad array
    given up; the others arrive once each, intact, and the arena is gone at the end."""
    items, bad = 40, 7
    command = cli(
        "dyn_redis", str(ARRAYS), "-n", "3", "--redis-url", redis_server.url,
        "--on-error", "dead-letter", "--max-deliveries", "2", "--batch-size", "4",
    )  # fmt: skip
    env = {"D4PY_ARRAYS": str(items), "D4PY_ARRAY_BYTES": str(MB), "D4PY_FAIL_VALUE": str(bad)}
    watched = WatchedRun(tmp_path / "run", command, env=env)
    try:
        watched.watch_until_exit(within=90)
    finally:
        watched.kill_leftovers()
    assert watched.process.returncode == 1, watched.stderr()
    assert "1 task(s) given up after 2 deliveries each" in watched.stderr(), watched.stderr()
    assert f"array {bad}.0 fails on purpose" in watched.stderr()
    line = f"Outputs: {{'Sink2': {{'total': [({items - 1}, {sum(range(items)) - bad})]}}}}"
    assert line in watched.stdout(), watched.stdout()
    assert folders(watched.process.pid) == []
    assert redis_server.run_keys() == []


def test_a_failed_task_split_for_retry_shares_its_blocks_and_frees_them_once(
    redis_server: RedisServer,
) -> None:
    """``--on-error dead-letter``, step by step: a task of three arrays raises; its retry is
    three one-array tasks whose entries take the same blocks (no copy), the outputs it had
    written are dropped with their blocks, and every block is freed once, by the commits."""
    from types import SimpleNamespace

    import numpy as np

    hold, driver, worker, keys, codec = _queues_pair(redis_server, "split")
    worker.dead_letter = True
    sink = next(k for k, pe in enumerate(worker.pe_ids) if pe.startswith("Sink"))
    try:
        driver.put(hold, ("input", [np.full(MB // 8, float(v)) for v in (1, 2, 3)]))
        assert codec.in_use() == 3 * MB
        key, task = worker.take([hold], 1.0)
        worker.put(sink, ("input", [(1.0, task[1][0])]))  # an output, then the PE raised
        error = SimpleNamespace(item_repr="array 2", error="ValueError: on purpose")
        worker.retry_or_give_up(key, task, error)
        worker.flush()
        task = None
        assert codec.in_use() == 3 * MB  # the three retries' references, nothing else
        with redis_server.client() as c:
            assert c.xlen(driver.names.stream(sink)) == 0 and c.xlen(driver.names.stream(hold)) == 3
        for _ in range(3):
            _, (_, [array]) = worker.take([hold], 1.0)
            assert float(array[-1]) in (1.0, 2.0, 3.0)
            worker.task_done(hold, ("task", (0, worker.pe_ids[hold], {}, 1, 0.0)))
        worker.flush()
        array = None
        assert codec.in_use() == 0 and codec.arena.held() == 0
    finally:
        worker.client.close()
        keys.destroy()
        codec.close()
    assert redis_server.run_keys() == []
