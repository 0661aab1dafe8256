"""A worker taken for gone while it is still alive (its liveness key expired or was
deleted: a paused VM, a stranger's DEL) may commit one more task before it sees its quit
command: the task is done, and must be counted, but that worker will never postprocess
its copy of the shared PE, so the end of stream must not wait for it.

The test plays the joined worker itself, in this process, so that the order of events is
exact: it joins, lets its liveness key expire, waits until the driver has taken it for
gone, then takes, runs and commits a task and leaves without answering any command.
"""

from __future__ import annotations

import os

import pytest
from _helpers import WORKFLOWS, WatchedRun, cli
from redis_support import RedisServer, redis_server_fixture  # noqa: F401 - the fixture

pytestmark = pytest.mark.timeout(180)

GATE = str(WORKFLOWS / "gated.py")
ITEMS = 20


def _join_by_hand(url: str, key_file: str, run_id: str):
    """Register as a worker of ``run_id`` and say hello, as ``dispel4py worker`` does, but
    with no heartbeat process (the liveness key expires after --claim-idle-ms) and no loop."""
    import redis

    from dispel4py.dynamic.signing import Signer, load_key
    from dispel4py.engine.loading import load_workflow
    from dispel4py.mappings.processes.worker_process import load_plan
    from dispel4py.mappings.redis.join import _find_run
    from dispel4py.mappings.redis.queues import GROUP, RedisQueues, RunNames
    from dispel4py.mappings.redis.scripts import REGISTER
    from dispel4py.mappings.redis.server import target_from_url

    key = load_key(key_file, create=False)
    assert key is not None
    signer = Signer(key)
    load_workflow(GATE)  # its module importable under its name, for the plan
    with redis.Redis.from_url(url) as client:
        _, meta, blob = _find_run(client, signer, run_id, 30.0)
    plan = load_plan(blob, meta["module_files"])
    names = RunNames(run_id, plan)
    run_signer = signer.for_run(meta["run_nonce"])
    queues = RedisQueues(plan, target_from_url(url), names, run_signer, claim_idle_ms=meta["claim_idle_ms"])
    queues.open_client("test-joined", load_scripts=False)
    queues.worker = int(
        queues.client.eval(
            REGISTER, 2, names.info, names.workers, names.prefix, GROUP, meta["ttl_s"],
            queues.claim_idle_ms, meta["local"], meta["slots"],
        )
    )  # fmt: skip
    assert queues.worker == 1, queues.worker
    queues.send_now(("hello", (queues.worker, "test-host", os.getpid())))
    return plan, queues


def test_a_task_committed_by_a_worker_taken_for_gone_does_not_hold_the_run(
    redis_server: RedisServer, tmp_path
) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    key_file = tmp_path / "run.key"
    env = {"D4PY_GATE": str(gate / "open"), "D4PY_GATE_ITEMS": str(ITEMS)}
    command = cli(
        "dyn_redis", GATE, "-n", "1", "--key-file", str(key_file), "--claim-idle-ms", "1000",
        "--run", "gone", "--redis-url", redis_server.url,
    )  # fmt: skip
    watched = WatchedRun(tmp_path / "run", command, env=env)
    queues = None
    try:
        with redis_server.client() as c:
            watched.wait_until(lambda: key_file.exists() and c.exists("d4py:gone:info"), "the run to start")
        plan, queues = _join_by_hand(redis_server.url, str(key_file), "gone")
        [slow] = [iid for iid, pe in enumerate(plan.placement.pe_of) if pe.startswith("Gate")]
        [total] = [iid for iid, pe in enumerate(plan.placement.pe_of) if pe.startswith("Total")]
        # no heartbeat: the key expires, and the driver gives worker 1 up (and tells it to quit)
        given_up = lambda: "worker 1 is gone" in watched.stderr()  # noqa: E731
        watched.wait_until(given_up, "the driver to give worker 1 up", 60)
        taken = queues.take([slow], 30.0)  # the only local worker is held by the gate
        assert taken is not None and taken[0] == slow, taken
        _, items = taken[1]
        queues.put(total, ("input", list(items)))
        created = {plan.placement.pe_of[total]: 1}
        queues.task_done(slow, ("task", (1, plan.placement.pe_of[slow], created, len(items), 0.0)))
        queues.flush()
        with redis_server.client() as c:  # committed: its output is queued for Total
            assert c.xlen(queues.names.stream(total)) == 1
        (gate / "open").touch()  # worker 1 answers nothing from now on, as if it had quit
        watched.watch_until_exit(within=90)
    finally:
        if queues is not None:
            queues.client.close()
        watched.kill_leftovers()
    assert watched.process.returncode == 0, watched.stderr()
    total_line = f"Outputs: {{'Total2': {{'total': [({ITEMS}, {sum(range(ITEMS))})]}}}}"
    assert total_line in watched.stdout(), watched.stdout()
    assert redis_server.run_keys() == []
