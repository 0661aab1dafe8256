"""What a client that can write to the Redis server, but has no run key, can do to a run
(docs/redis.md, "Threat model"): replay signed entries, replay another run's entries signed
with the same key, set the run's state; and what a worker running other code, or a run key
others can read, cannot do. Each test names the defect of issue 15 it reproduces.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import time
from pathlib import Path

import pytest
from _helpers import WORKFLOWS, WatchedRun, cli
from redis_support import RedisServer, redis_server_fixture  # noqa: F401 - the fixture

pytestmark = pytest.mark.timeout(180)

MARKS = str(WORKFLOWS / "redis_marks.py")
SPILL = str(WORKFLOWS / "redis_spill.py")


def total_line(items: int) -> str:
    return f"Outputs: {{'Total2': {{'total': [({items}, {sum(range(items))})]}}}}"


def marked(
    tmp_path: Path, url: str, run_id: str, *args: str, items: int = 60, sleep_s: float = 0.05, env=None
):
    """The marks workflow on dyn_redis (Slow1 is the shared PE), run ``run_id``."""
    folder = tmp_path / f"marks-{run_id}"
    folder.mkdir(parents=True)
    env = {
        **(env or {}),
        "D4PY_MARK_DIR": str(folder),
        "D4PY_MARK_ITEMS": str(items),
        "D4PY_MARK_S": str(sleep_s),
    }
    command = cli("dyn_redis", MARKS, "--redis-url", url, "--run", run_id, *args)
    return WatchedRun(tmp_path / f"run-{run_id}", command, env=env)


def signed(entries: list) -> list[dict]:
    return [fields for _, fields in entries if b"m" in fields]


# -- defect 2: replays ---------------------------------------------------------------------
def test_copies_of_queued_task_entries_are_dropped_and_counted(redis_server: RedisServer, tmp_path) -> None:
    """XRANGE + XADD of three of the run's own queued tasks, by a client without the key."""
    queue = "d4py:replay-tasks:q:Slow1:0"
    watched = marked(tmp_path, redis_server.url, "replay-tasks", "-n", "2")
    with redis_server.client() as c:
        copies = watched.wait_until(
            lambda: signed(c.xrange(queue, count=3))[2:] and signed(c.xrange(queue, count=3)),
            "three queued tasks",
        )
        for fields in copies:
            c.xadd(queue, fields)
    watched.watch_until_exit(within=90)
    assert watched.process.returncode == 0, watched.stderr()
    assert total_line(60) in watched.stdout()  # each item once: none doubled, none lost
    assert "3 replayed Redis entries were dropped" in watched.stderr(), watched.stderr()
    assert redis_server.run_keys() == []


def test_copies_of_report_entries_are_dropped_and_counted(redis_server: RedisServer, tmp_path) -> None:
    reports = "d4py:replay-reports:reports"
    watched = marked(tmp_path, redis_server.url, "replay-reports", "-n", "2")
    with redis_server.client() as c:
        copies = watched.wait_until(
            lambda: signed(c.xrange(reports))[4:] and signed(c.xrange(reports)), "five reports"
        )
        for fields in copies:
            c.xadd(reports, fields)
    watched.watch_until_exit(within=90)
    assert watched.process.returncode == 0, watched.stderr()
    assert total_line(60) in watched.stdout()
    assert f"{len(copies)} replayed Redis entries were dropped" in watched.stderr(), watched.stderr()
    assert redis_server.run_keys() == []


def test_entries_of_another_run_with_the_same_key_and_run_id_are_forged_there(
    redis_server: RedisServer, tmp_path
) -> None:
    """One key file for many runs (the KEDA recipe), and a run id used again: what the first
    run signed is not valid in the second."""
    key = tmp_path / "run.key"
    queue, reports = "d4py:nightly:q:Slow1:0", "d4py:nightly:reports"
    first = marked(tmp_path / "1", redis_server.url, "nightly", "-n", "2", "--key-file", str(key))
    with redis_server.client() as c:
        tasks = first.wait_until(
            lambda: signed(c.xrange(queue, count=3))[2:] and signed(c.xrange(queue, count=3)),
            "three queued tasks",
        )
        said = first.wait_until(
            lambda: signed(c.xrange(reports))[2:] and signed(c.xrange(reports)), "reports"
        )
        first.watch_until_exit(within=90)
        assert first.process.returncode == 0, first.stderr()
        second = marked(tmp_path / "2", redis_server.url, "nightly", "-n", "2", "--key-file", str(key))
        second.wait_until(lambda: signed(c.xrange(queue, count=1)), "the second run's first task")
        for fields in tasks:
            c.xadd(queue, fields)
        for fields in said:
            c.xadd(reports, fields)
    second.watch_until_exit(within=90)
    assert second.process.returncode == 0, second.stderr()
    assert total_line(60) in second.stdout()
    injected = len(tasks) + len(said)
    assert f"{injected} forged or unsigned Redis entries were dropped unread" in second.stderr(), (
        second.stderr()
    )
    assert redis_server.run_keys() == []


# -- defect 3: unsigned state ----------------------------------------------------------------
def test_setting_the_old_counters_hash_changes_nothing(redis_server: RedisServer, tmp_path) -> None:
    """``HSET d4py:<run>:n b1 100000`` made every process wait forever: the counts are now
    read from the streams themselves."""
    watched = marked(tmp_path, redis_server.url, "counters", "-n", "2")
    with redis_server.client() as c:
        watched.wait_until(
            lambda: c.exists("d4py:counters:info") and c.xlen("d4py:counters:q:Slow1:0"), "tasks"
        )
        for k in range(3):
            c.hset("d4py:counters:n", mapping={f"b{k}": 100000, f"r{k}": 100000})
    watched.watch_until_exit(within=90)
    assert watched.process.returncode == 0, watched.stderr()
    assert total_line(60) in watched.stdout()
    assert redis_server.run_keys() == []


def test_junk_entries_inflate_the_counts_only_until_taken(redis_server: RedisServer, tmp_path) -> None:
    """The counts are XLEN minus pending: entries a stranger adds count as queued until a
    worker takes them and drops them unread; the backlog they fake cannot stop the run."""
    queue = "d4py:junk:q:Slow1:0"
    watched = marked(tmp_path, redis_server.url, "junk", "-n", "2", "--credits", "2")
    with redis_server.client() as c:
        watched.wait_until(lambda: c.xlen(queue), "tasks")
        pipe = c.pipeline(transaction=False)
        for n in range(200):
            pipe.xadd(queue, {"i": b"x:%d" % n, "m": b"y" * 32, "d": b"junk"})
        pipe.execute()
    watched.watch_until_exit(within=90)
    assert watched.process.returncode == 0, watched.stderr()
    assert total_line(60) in watched.stdout()
    assert "200 forged or unsigned Redis entries were dropped unread" in watched.stderr()


def _idents(entries: list[dict]) -> list[bytes]:
    return [fields[b"i"] for fields in entries]


def test_identities_removed_from_the_used_set_are_a_clear_error(redis_server: RedisServer, tmp_path) -> None:
    """SREM of committed tasks' identities, then copies of those tasks: they run again and
    commit; the driver sees them done twice and stops, naming the set."""
    queue, used = "d4py:srem:q:Slow1:0", "d4py:srem:used"
    watched = marked(tmp_path, redis_server.url, "srem", "-n", "2", items=120)
    with redis_server.client() as c:
        copies = watched.wait_until(
            lambda: signed(c.xrange(queue, count=3))[2:] and signed(c.xrange(queue, count=3)),
            "three queued tasks",
        )
        watched.wait_until(lambda: all(c.sismember(used, i) for i in _idents(copies)), "their commits")
        c.srem(used, *_idents(copies))
        for fields in copies:
            c.xadd(queue, fields)
    watched.watch_until_exit(within=90)
    assert watched.process.returncode == 1, watched.stderr()
    err = watched.stderr()
    assert err.count("dispel4py: error:") == 1, err
    assert "was reported done twice: someone removed entries from d4py:srem:used" in err, err
    assert "Traceback" not in err
    assert redis_server.run_keys() == []


def test_identities_added_to_the_used_set_are_a_clear_error(redis_server: RedisServer, tmp_path) -> None:
    """SADD of queued tasks' identities: their commits are refused as copies; the driver
    knows no such task was done and stops, naming the set (the task would be lost)."""
    queue = "d4py:sadd:q:Slow1:0"
    watched = marked(tmp_path, redis_server.url, "sadd", "-n", "2", items=120, sleep_s=0.1)
    with redis_server.client() as c:
        queued = watched.wait_until(
            lambda: signed(c.xrange(queue))[3:] and signed(c.xrange(queue)), "four tasks"
        )
        c.sadd("d4py:sadd:used", *_idents(queued))
    watched.watch_until_exit(within=90)
    assert watched.process.returncode == 1, watched.stderr()
    err = watched.stderr()
    assert err.count("dispel4py: error:") == 1, err
    assert "someone added entries to d4py:sadd:used" in err and "the task is lost" in err, err
    assert redis_server.run_keys() == []


def test_a_workers_counter_set_back_refuses_the_joining_worker(redis_server: RedisServer, tmp_path) -> None:
    key = tmp_path / "run.key"
    gate = {"D4PY_MARK_GATE": str(tmp_path / "gate")}  # the run lasts until the joiner was refused
    watched = marked(
        tmp_path,
        redis_server.url,
        "ids",
        "-n",
        "1",
        "--key-file",
        str(key),
        items=60,
        sleep_s=0.002,
        env=gate,
    )
    with redis_server.client() as c:
        # the plan is written after the worker counter: set back once it is there
        watched.wait_until(lambda: key.exists() and c.hexists("d4py:ids:info", "plan"), "the run to start")
        c.set("d4py:ids:workers", 0)  # the next worker would be given id 0: the driver's own
    joiner = subprocess.run(
        cli(
            "worker", "--redis-url", redis_server.url, "--key-file", str(key), "--run", "ids", "--wait", "20"
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert joiner.returncode == 1, joiner.stderr
    assert "the worker id given by d4py:ids:workers" in joiner.stderr and "is in use" in joiner.stderr
    _open(tmp_path)
    watched.watch_until_exit(within=90)
    assert watched.process.returncode == 0, watched.stderr()
    assert total_line(60) in watched.stdout()


def test_the_worker_counter_is_set_before_a_joiner_can_see_the_plan(
    redis_server: RedisServer, tmp_path
) -> None:
    """A worker joins once it can read the run's plan, and registers by incrementing the
    worker counter: the driver must have set the counter (to its local workers) before it
    writes the plan, or an early joiner gets a local worker's id and is refused as if someone
    had set the counter back. The server's own log of commands (MONITOR) shows the order."""
    key = tmp_path / "run.key"
    run = [*cli("dyn_redis", "dispel4py.examples.graph_testing.pipeline_test", "-i", "3", "-n", "1")]
    run += ["--redis-url", redis_server.url, "--key-file", str(key), "--run", "order"]
    with redis_server.client() as c, c.monitor() as monitor:
        done = subprocess.Popen(run, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        commands: list[str] = []
        for event in monitor.listen():
            commands.append(event["command"])
            if event["command"].startswith("HSET d4py:order:info plan"):
                break
        _, err = done.communicate(timeout=60)
    assert done.returncode == 0, err
    counter = [i for i, text in enumerate(commands) if text.startswith("SET d4py:order:workers ")]
    assert counter and counter[0] < len(commands) - 1, commands[-10:]


# -- defect 1: a task over the spill limit -------------------------------------------------------
@pytest.mark.parametrize("on_tally", [False, True], ids=["any-worker", "the-tally-host"])
def test_a_task_over_the_spill_limit_reclaimed_from_a_frozen_worker_stays_exact(
    redis_server: RedisServer, tmp_path, on_tally: bool
) -> None:
    """Big writes 50 x 4 KB for one input, past a 20 KB spill limit; its worker is frozen
    half-way, past --claim-idle-ms: the task runs again elsewhere, and when the first
    attempt wakes, what it spilled is dropped with its commit.

    The second attempt is waited for until it *starts*: when the frozen worker hosts
    Tally (pinned, the only consumer of Big's outputs), the second attempt waits in
    backpressure until Tally's queue drains, i.e. until that worker wakes (the case
    ``the-tally-host`` forces; under load it came by chance). With as many items as
    workers, some other worker is idle when the frozen worker's key expires: it takes the
    task back."""
    folder = tmp_path / "marks"
    folder.mkdir()
    env = {"D4PY_SPILL_DIR": str(folder), "DISPEL4PY_SPILL_BYTES": "20000"}
    if on_tally:
        env |= {"D4PY_SPILL_ON_TALLY": "1", "D4PY_SPILL_ITEMS": "4"}
    items = int(env.get("D4PY_SPILL_ITEMS", "3"))
    command = cli("dyn_redis", SPILL, "-n", "4", "--claim-idle-ms", "1000", "--redis-url", redis_server.url)
    watched = WatchedRun(tmp_path / "run", command, env=env)
    try:
        spilling = lambda: list(folder.glob("spilled-*"))  # noqa: E731
        [spilled] = watched.wait_until(spilling, "the first attempt to spill", 60)
        _, frozen, item = spilled.name.split("-")
        os.kill(int(frozen), signal.SIGSTOP)
        (folder / "go").touch()
        again = lambda: [p for p in folder.glob(f"start-*-{item}") if p.name.split("-")[1] != frozen]  # noqa: E731
        watched.wait_until(again, f"item {item} to run again on another worker", 60)
        os.kill(int(frozen), signal.SIGCONT)
        watched.watch_until_exit(within=90)
    finally:
        watched.kill_leftovers()
    assert watched.process.returncode == 0, watched.stderr()
    count = items * 50
    assert f"Outputs: {{'Tally2': {{'tally': [({count}, {count})]}}}}" in watched.stdout(), watched.stdout()
    assert [p for p in folder.glob(f"done-*-{item}") if p.name.split("-")[1] != frozen], "no 2nd attempt done"
    refused = "was given to another worker while worker"  # the first attempt's commit
    assert refused in watched.stderr(), watched.stderr()
    if on_tally:
        assert (folder / f"tally-{frozen}").exists()
    assert redis_server.run_keys() == []


def test_staged_outputs_move_with_the_commit_or_go_with_a_refused_one(redis_server: RedisServer) -> None:
    """The mechanism of defect 1 on two queue objects of one run, whatever decides that a
    task is taken back: the first attempt stages its outputs and loses the task; the second
    commits; the first's commit is refused and its staging stream deleted."""
    from dispel4py.dynamic.layout import dynamic_place
    from dispel4py.dynamic.signing import Signer, new_key
    from dispel4py.engine.loading import load_workflow
    from dispel4py.engine.plan import make_plan
    from dispel4py.mappings.redis.queues import RedisQueues, RunNames
    from dispel4py.mappings.redis.run import RedisRun
    from dispel4py.mappings.redis.server import target_from_url

    plan = make_plan(load_workflow(SPILL), None, 2, place_fn=dynamic_place)
    # ids carry the global node counter, which earlier tests in this process have moved on
    [big_id] = [pe_id for pe_id in plan.instances if pe_id.startswith("Big")]
    [tally_id] = [pe_id for pe_id in plan.instances if pe_id.startswith("Tally")]
    big, tally = plan.instances[big_id][0], plan.instances[tally_id][0]
    names = RunNames("staging", plan)
    driver = RedisQueues(
        plan, target_from_url(redis_server.url), names, Signer(new_key(), b"n1"), claim_idle_ms=200
    )
    driver.spill_bytes = 1000
    driver.open_client("test-driver")
    keys = RedisRun(driver, slots=2, local=2, ttl_s=60)
    keys.create({}, None)
    try:
        driver.put(big, ("input", [0]))
        first, second = (pickle.loads(pickle.dumps(driver)) for _ in range(2))
        for worker, queues in enumerate((first, second)):
            queues.worker = worker
            queues.open_client(f"w{worker}")
        assert first.take([big], 1.0) == (big, ("input", [0]))
        for j in range(10):
            first.put(tally, ("input", [(0, j, b"." * 400)]))
        with redis_server.client() as c:
            assert c.xlen(names.stream(tally)) == 0  # staged, not queued
            [stage] = c.keys("d4py:staging:stage:*")
            assert c.xlen(stage) >= 8
        assert first.requeue("w0") == ([big], [])  # the task is taken back (worker deemed gone)
        assert second.take([big], 1.0) == (big, ("input", [0]))
        for j in range(10):
            second.put(tally, ("input", [(0, j, b"." * 400)]))
        second.task_done(big, ("task", "second"))
        second.flush()
        first.task_done(big, ("task", "first"))
        first.flush()  # refused: no longer its task
        with redis_server.client() as c:
            assert c.xlen(names.stream(tally)) == 10
            assert c.keys("d4py:staging:stage:*") == []
            reports = [fields for _, fields in c.xrange(names.reports) if b"d" in fields]
        assert len(reports) == 1
    finally:
        keys.destroy()
    assert redis_server.run_keys() == []


# -- defect 7: a worker running other code -------------------------------------------------------
WFV = """
import time

from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph
from wfv_helper import factor


class Numbers(ProducerPE):
    def _process(self, inputs):
        for i in range(40):
            self.write("output", i)


class Times(IterativePE):
    def _process(self, x):
        time.sleep(0.05)
        return x * {times}


class Total(ConsumerPE):
    def __init__(self):
        super().__init__()
        self.inputconnections["input"]["grouping"] = "global"
        self._add_output("total")
        self.sum = 0

    def _process(self, x):
        self.sum += x

    def _postprocess(self):
        self.write("total", self.sum)


graph = WorkflowGraph()
graph.connect(Numbers(), "output", Times(), "input")
graph.connect(graph.get_contained_objects()[1], "output", Total(), "input")
"""


def _workflow(folder: Path, times: str, factor: int) -> Path:
    folder.mkdir()
    (folder / "wfv.py").write_text(WFV.replace("{times}", times))
    (folder / "wfv_helper.py").write_text(f"def factor():\n    return {factor}\n")
    return folder / "wfv.py"


def _driver(tmp_path: Path, url: str, key: Path, run_id: str) -> WatchedRun:
    """The run of the driver's folder, with no local worker: it waits for workers to join."""
    ours = _workflow(tmp_path / "driver", "factor()", 10)
    command = cli(
        "dyn_redis", str(ours), "-n", "0", "--redis-url", url, "--key-file", str(key), "--run", run_id
    )
    watched = WatchedRun(tmp_path / "run", command)
    with _client(url) as c:
        watched.wait_until(lambda: key.exists() and c.exists(f"d4py:{run_id}:info"), "the run to start")
    return watched


def _client(url: str):
    import redis

    return redis.Redis.from_url(url, socket_timeout=10)


def _join(url: str, key: Path, run_id: str, workflow: Path, *extra: str) -> subprocess.CompletedProcess:
    command = cli(
        "worker", "--redis-url", url, "--key-file", str(key), "--run", run_id, str(workflow), *extra
    )
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("times", "factor", "named"),
    [("1000", 10, "wfv.py"), ("factor()", 1000, "wfv_helper.py")],
    ids=["the workflow file", "a helper it imports"],
)
def test_a_worker_whose_code_differs_is_refused_naming_the_file(
    redis_server: RedisServer, tmp_path, times: str, factor: int, named: str
) -> None:
    """x*1000 against the driver's x*10: refused; a worker with the same files in another
    folder joins and runs the whole run."""
    key = tmp_path / "run.key"
    watched = _driver(tmp_path, redis_server.url, key, "code")
    try:
        refused = _join(redis_server.url, key, "code", _workflow(tmp_path / "other", times, factor))
        assert refused.returncode == 2, refused.stderr
        assert "the workflow's source here differs from the driver's of run code" in refused.stderr
        assert f"{named} (sha256 " in refused.stderr and "--allow-code-mismatch" in refused.stderr, (
            refused.stderr
        )
        same = _join(redis_server.url, key, "code", _workflow(tmp_path / "copy", "factor()", 10))
        assert same.returncode == 0, same.stderr
        assert "differs" not in same.stderr, same.stderr
        watched.watch_until_exit(within=90)
    finally:
        watched.kill_leftovers()
    assert watched.process.returncode == 0, watched.stderr()
    assert f"{{'Total2': {{'total': [{sum(range(40)) * 10}]}}}}" in watched.stdout()


def test_allow_code_mismatch_joins_with_a_warning(redis_server: RedisServer, tmp_path) -> None:
    key = tmp_path / "run.key"
    watched = _driver(tmp_path, redis_server.url, key, "mixed")
    try:
        theirs = _workflow(tmp_path / "other", "1000", 10)
        joined = _join(redis_server.url, key, "mixed", theirs, "--allow-code-mismatch")
        assert joined.returncode == 0, joined.stderr
        assert (
            "wfv.py (sha256 " in joined.stderr and "joining anyway (--allow-code-mismatch)" in joined.stderr
        )
        watched.watch_until_exit(within=90)
    finally:
        watched.kill_leftovers()
    assert watched.process.returncode == 0, watched.stderr()
    assert f"{{'Total2': {{'total': [{sum(range(40)) * 1000}]}}}}" in watched.stdout()  # its code ran


# -- defect 8: a key file others can read ----------------------------------------------------------
def test_a_key_file_others_can_read_is_refused_by_driver_and_worker(
    redis_server: RedisServer, tmp_path
) -> None:
    key = tmp_path / "run.key"
    key.write_text("a shared secret of the two hosts\n")
    key.chmod(0o644)
    driver = subprocess.run(
        cli("dyn_redis", MARKS, "-n", "1", "--redis-url", redis_server.url, "--key-file", str(key)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    worker = subprocess.run(
        cli("worker", "--redis-url", redis_server.url, "--key-file", str(key), "--wait", "1"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    for done in (driver, worker):
        assert done.returncode == 2, done.stderr
        assert f"--key-file: permissions 0644 for {key} are too open" in done.stderr, done.stderr
        assert f"chmod 600 {key}" in done.stderr
    assert redis_server.run_keys() == []


# -- availability: what deleting a key does (docs/redis.md, "Threat model") ---------------------
def _joined(tmp_path: Path, url: str, run_id: str, key: Path):
    """A marks run on one local worker, with a worker joined from "another host"; Slow holds
    every item until the test opens the gate (``_open``), so the run lasts as long as the
    test needs, on a loaded machine too, and ends quickly after."""
    folder = tmp_path / f"marks-{run_id}"
    gate = {"D4PY_MARK_GATE": str(tmp_path / "gate")}
    watched = marked(
        tmp_path,
        url,
        run_id,
        "-n",
        "1",
        "--key-file",
        str(key),
        "--claim-idle-ms",
        "1000",
        items=200,
        sleep_s=0.002,
        env=gate,
    )
    with _client(url) as c:
        watched.wait_until(lambda: key.exists() and c.exists(f"d4py:{run_id}:info"), "the run to start")
    env = {
        **os.environ,
        **gate,
        "D4PY_MARK_DIR": str(folder),
        "D4PY_MARK_ITEMS": "200",
        "D4PY_MARK_S": "0.002",
    }
    command = cli("worker", "--redis-url", url, "--key-file", str(key), "--run", run_id, MARKS)
    joiner = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    watched.wait_until(lambda: (folder / f"shared-{joiner.pid}").exists(), "the joined worker's first task")
    return watched, joiner


def _open(tmp_path: Path) -> None:
    (tmp_path / "gate").touch()


def test_deleting_a_joined_workers_liveness_key_gives_its_tasks_to_others(
    redis_server: RedisServer, tmp_path
) -> None:
    key = tmp_path / "run.key"
    watched, joiner = _joined(tmp_path, redis_server.url, "alive", key)
    try:
        with redis_server.client() as c:  # deleted faster than the worker's heartbeat renews it
            gone = lambda: c.delete("d4py:alive:alive:1") >= 0 and "worker 1 is gone" in watched.stderr()  # noqa: E731
            watched.wait_until(gone, "the driver to take worker 1 for gone", 60)
        _open(tmp_path)
        watched.watch_until_exit(within=90)
        joiner.communicate(timeout=30)
    finally:
        joiner.kill()
        joiner.communicate()
        watched.kill_leftovers()
    assert watched.process.returncode == 0, watched.stderr()
    assert total_line(200) in watched.stdout()


def test_deleting_the_drivers_liveness_key_makes_joined_workers_leave(
    redis_server: RedisServer, tmp_path
) -> None:
    key = tmp_path / "run.key"
    watched, joiner = _joined(tmp_path, redis_server.url, "driverkey", key)
    try:
        with redis_server.client() as c:  # kept deleted: one deletion the driver renews at
            deadline = time.monotonic() + 60  # once may fall between two of the worker's looks
            while joiner.poll() is None and time.monotonic() < deadline:
                c.delete("d4py:driverkey:driver")
                time.sleep(0.01)
        _, err = joiner.communicate(timeout=30)
        _open(tmp_path)
        watched.watch_until_exit(within=90)
    finally:
        joiner.kill()
        joiner.communicate()
        watched.kill_leftovers()
    assert joiner.returncode == 1, err
    assert "the driver of run driverkey is gone" in err, err
    assert watched.process.returncode == 0, watched.stderr()
    assert total_line(200) in watched.stdout()
