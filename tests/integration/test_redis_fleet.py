"""Standing host agents (``dispel4py worker -n N --serve``) on a real server: run after run,
runs at once, no CPU between runs, an agent killed mid-run, draining on SIGTERM, and
placement by capability (tags). Every simulated host is its own process tree, with its own
working directory and HOME (``fleet_support.Host``).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from _helpers import WORKFLOWS, cli, run, wait_gone
from fleet_support import Host, agents_of, tree_cpu_s, wait_for
from redis_support import RedisServer, redis_server_fixture  # noqa: F401 - the fixture

pytestmark = pytest.mark.timeout(120)

FLEET = str(WORKFLOWS / "fleet_marks.py")


class Fleet:
    """Hosts sharing one key file and one marks folder, against one server."""

    def __init__(self, tmp_path: Path, server: RedisServer, items: int = 30, sleep_s: float = 0.01) -> None:
        self.tmp, self.server = tmp_path, server
        self.key = tmp_path / "run.key"
        self.key.write_text(os.urandom(32).hex())
        self.key.chmod(0o600)
        self.marks = tmp_path / "marks"
        self.marks.mkdir()
        self.env = {
            "D4PY_MARK_DIR": str(self.marks),
            "D4PY_MARK_ITEMS": str(items),
            "D4PY_MARK_S": str(sleep_s),
        }
        self.hosts: list[Host] = []

    def host(self, *args: str, env: dict[str, str] | None = None) -> Host:
        host = Host(
            self.tmp / f"host{len(self.hosts)}",
            self.server.url,
            self.key,
            list(args),
            {**self.env, **(env or {})},
        )
        self.hosts.append(host)
        return host

    def agents(self):
        with self.server.client() as client:
            return agents_of(client, self.key.read_text().strip().encode())

    def wait_agents(self, count: int) -> None:
        wait_for(lambda: len(self.agents()) >= count, f"{count} agents in the registry")

    def driver(self, *args: str, env: dict[str, str] | None = None) -> list[str]:
        return cli("dyn_redis", FLEET, "--redis-url", self.server.url, "--key-file", str(self.key), *args)

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return run(self.driver(*args), timeout=90, env={**self.env, **(env or {})})

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        return subprocess.Popen(
            self.driver(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **self.env, **(env or {})},
        )

    def shared_marks(self) -> list[tuple[int, int]]:
        """(pid, parent pid) of every process that ran a Slow task."""
        return [tuple(int(x) for x in p.name.split("-")[1:]) for p in self.marks.glob("shared-*")]

    def close(self) -> None:
        for host in self.hosts:
            host.stop(within=10)


@pytest.fixture
def fleet(tmp_path, redis_server):
    made = Fleet(tmp_path, redis_server)
    try:
        yield made
    finally:
        made.close()


def outputs(text: str) -> str:
    [line] = [line for line in text.splitlines() if line.startswith("Outputs:")]
    return line


def test_bad_agent_flags_name_the_flag() -> None:
    cases = {
        ("-n", "0"): "-n/--processes must be at least 1 (got 0)",
        ("-n", "-2"): "-n/--processes must be at least 1 (got -2)",
        ("-n", "2", "--tags", "gpu,,big"): "--tags: '' is not a tag",
        ("--tags", "gpu;rm"): "--tags: 'gpu;rm' is not a tag",
        ("--serve", "--run", "galaxy"): "--serve joins every run as it starts; --run names one run",
        ("-n", "2", "--max", "3"): "--max must be within 1..2 (-n) (got 3)",
        ("-n", "2", "--min", "3"): "--min must be within 0..2 (--max) (got 3)",
        ("--runs", "nightly-*"): "--runs PATTERN needs --serve",
    }
    for args, text in cases.items():
        done = run(
            cli("worker", "--redis-url", "redis://127.0.0.1:1/0", *args), env={"DISPEL4PY_KEY": "k" * 32}
        )
        assert done.returncode == 2, (args, done.stderr)
        assert f"dispel4py worker: error: {text}" in done.stderr, (args, done.stderr)


def test_three_standing_agents_serve_runs_one_after_another_and_at_once(fleet: Fleet) -> None:
    expected = outputs(run(cli("simple", FLEET), env=fleet.env).stdout)
    hosts = [fleet.host("-n", "2", "--serve", "-v") for _ in range(3)]
    fleet.wait_agents(3)
    for _ in range(5):
        done = fleet.run("-n", "0")
        assert done.returncode == 0, done.stderr
        assert outputs(done.stdout) == expected
    both = [fleet.start("-n", "0"), fleet.start("-n", "0")]
    for driver in both:
        out, err = driver.communicate(timeout=90)
        assert driver.returncode == 0, err
        assert outputs(out) == expected
    # every agent served every run, and is back to idle: no process, no CPU
    wait_for(
        lambda: [(a.served, a.runs, a.active) for a in fleet.agents()] == [(7, [], 0)] * 3, "idle agents"
    )
    trees = [pid for host in hosts for pid in host.tree()]
    assert sorted(trees) == sorted(host.pid for host in hosts)  # no worker process left
    before = tree_cpu_s(trees)
    time.sleep(3.0)  # the window holds at least one refresh of each record
    used = tree_cpu_s(trees) - before
    assert used <= 0.05, f"idle agents used {used:.2f} s of CPU in 3 s"
    for host in hosts:
        assert "waits for runs signed with its key" in host.stderr()  # -v: said once, quietly
        assert host.stop() == 0
    assert fleet.agents() == []  # each removed its record as it left


def test_an_agent_killed_with_its_processes_gives_its_tasks_back(fleet: Fleet) -> None:
    fleet.env.update(D4PY_MARK_ITEMS="150", D4PY_MARK_S="0.03")
    victim, other = fleet.host("-n", "2", "--serve"), fleet.host("-n", "2", "--serve")
    fleet.wait_agents(2)
    driver = fleet.start("-n", "1", "--claim-idle-ms", "1000")
    wait_for(lambda: any(parent == victim.pid for _, parent in fleet.shared_marks()), "a task on the victim")
    victim.kill_tree()
    out, err = driver.communicate(timeout=90)
    assert driver.returncode == 0, err
    assert "Outputs: {'Total2': {'total': [(150, 11175)]}}" in out
    assert "is gone" in err and "go back to the queue" in err
    assert other.stop() == 0


def test_an_agent_hosting_pinned_instances_killed_fails_the_run_naming_them(fleet: Fleet) -> None:
    fleet.env.update(D4PY_MARK_ITEMS="200", D4PY_MARK_S="0.03")
    host = fleet.host("-n", "2", "--serve")
    fleet.wait_agents(1)
    driver = fleet.start("-n", "0", "--claim-idle-ms", "1000")
    wait_for(lambda: fleet.shared_marks(), "a first task")
    host.kill_tree()
    out, err = driver.communicate(timeout=60)
    assert driver.returncode == 1, err
    assert "hosting Numbers0 (instance 0)" in err or "hosting Total2 (instance 2)" in err, err
    assert "cannot be recovered" in err
    assert out == ""


def test_sigterm_drains_an_agent_mid_run_and_the_run_goes_on(fleet: Fleet) -> None:
    fleet.env.update(D4PY_MARK_ITEMS="120", D4PY_MARK_S="0.03")
    host = fleet.host("-n", "2", "--serve")
    fleet.wait_agents(1)
    driver = fleet.start("-n", "1")
    wait_for(lambda: any(parent == host.pid for _, parent in fleet.shared_marks()), "a task on the agent")
    os.kill(host.pid, signal.SIGTERM)
    assert host.process.wait(timeout=20) == 0
    assert "draining 2 process(es)" in host.stderr()
    assert fleet.agents() == []
    out, err = driver.communicate(timeout=60)
    assert driver.returncode == 0, err
    assert "Outputs: {'Total2': {'total': [(120, 7140)]}}" in out


def test_without_serve_an_agent_joins_one_run_then_leaves(fleet: Fleet) -> None:
    driver = fleet.start("-n", "0", "--run", "once")
    host = fleet.host("-n", "2", "--run", "once", "--wait", "30")
    out, err = driver.communicate(timeout=60)
    assert driver.returncode == 0, err
    assert "Outputs: {'Total2': {'total': [(30, 435)]}}" in out
    assert host.process.wait(timeout=20) == 0, host.stderr()
    assert "2 process(es) join run once" in host.stderr()


def test_a_pe_that_requires_a_tag_runs_only_on_agents_offering_it(fleet: Fleet) -> None:
    fleet.env.update(D4PY_MARK_REQUIRES="gpu", D4PY_MARK_ITEMS="60")
    gpu = fleet.host("-n", "2", "--serve", "--tags", "gpu,big-mem")
    plain = fleet.host("-n", "2", "--serve")
    fleet.wait_agents(2)
    done = fleet.run("-n", "1")
    assert done.returncode == 0, done.stderr
    assert "Outputs: {'Total2': {'total': [(60, 1770)]}}" in done.stdout
    parents = {parent for _, parent in fleet.shared_marks()}
    assert parents == {gpu.pid}, (parents, gpu.pid, plain.pid)


def test_a_run_whose_needs_no_worker_meets_says_so_and_fails(fleet: Fleet) -> None:
    fleet.env.update(D4PY_MARK_REQUIRES="gpu")
    fleet.host("-n", "1", "--serve", "--tags", "big-mem")
    fleet.wait_agents(1)
    started = time.monotonic()
    done = fleet.run("-n", "1")
    assert done.returncode == 1, done.stderr
    assert time.monotonic() - started < 30
    assert "PE Slow1 requires the tags gpu, and no worker of run" in done.stderr, done.stderr
    assert "dispel4py worker --serve --tags gpu" in done.stderr


def test_a_pinned_pe_that_requires_a_tag_is_refused_on_the_drivers_workers(fleet: Fleet) -> None:
    done = fleet.run("-n", "1", env={"D4PY_MARK_TOTAL_REQUIRES": "gpu"})
    assert done.returncode == 2, done.stderr
    assert "PE Total2 requires the tags gpu and is pinned" in done.stderr


def test_a_pinned_pe_that_requires_a_tag_is_placed_on_an_agent_offering_it(fleet: Fleet) -> None:
    fleet.env.update(D4PY_MARK_TOTAL_REQUIRES="gpu")
    plain = fleet.host("-n", "2", "--serve")
    fleet.wait_agents(1)  # the plain agent is there first: it must not take the pinned slot
    gpu = fleet.host("-n", "1", "--serve", "--tags", "gpu")
    fleet.wait_agents(2)
    done = fleet.run("-n", "0")
    assert done.returncode == 0, done.stderr
    assert "Outputs: {'Total2': {'total': [(30, 435)]}}" in done.stdout
    [total] = list(fleet.marks.glob("total-*"))
    assert int(total.name.split("-")[2]) == gpu.pid, (total.name, gpu.pid, plain.pid)


BURST = str(WORKFLOWS / "fleet_burst.py")


def autoscaled(fleet: Fleet, tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess, dict]:
    stats, results = tmp_path / "stats.json", tmp_path / "results.json"
    done = run(
        cli(
            "dyn_auto_redis", BURST, "-n", "0", "-thr", "300", "-v", "--stats-json", str(stats),
            "--output-json", str(results),
            "--redis-url", fleet.server.url, "--key-file", str(fleet.key),
        ),
        timeout=90,
        env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    items = int(env.get("D4PY_BURST_ITEMS", "0")) + int(env.get("D4PY_TRICKLE_ITEMS", "0"))
    assert sorted(json.loads(results.read_text())["Slow1"]["output"]) == list(range(items))
    return done, json.loads(stats.read_text())


def test_the_fleet_grows_to_its_maximum_on_a_burst_and_back_to_its_minimum(fleet: Fleet, tmp_path) -> None:
    # 12 s of work: longer than growing one worker per cooldown (0.5 s) to six takes, at any load
    env = {"D4PY_BURST_ITEMS": "400", "D4PY_BURST_S": "0.03"}
    env.update(D4PY_TRICKLE_ITEMS="20", D4PY_TRICKLE_S="0.3")  # idle, and its backlog flushed
    hosts = [fleet.host("-n", "2", "--serve", env=env) for _ in range(3)]
    fleet.wait_agents(3)
    done, stats = autoscaled(fleet, tmp_path, env)
    timeline = [n for _, n in stats["workers_timeline"]]
    # every process of the three agents (6), or all but the one held by the source once it
    # has run its pinned task for a second (5: it cannot take shared tasks)
    top = max(timeline)
    assert top in (5, 6), stats["workers_timeline"]
    assert timeline[-1] == 1, stats["workers_timeline"]  # the trickle: back to the minimum
    # per host: at the peak every available process of each agent was active
    peak = [hosts_now for _, hosts_now in stats["hosts_timeline"] if sum(hosts_now.values()) == top]
    assert peak and sorted(peak[0].values()) == ([2, 2, 2] if top == 6 else [1, 2, 2]), stats[
        "hosts_timeline"
    ]
    assert f"autoscaling: {top} of 6 workers take shared tasks" in done.stderr
    assert all(host.process.poll() is None for host in hosts)


def test_a_trickle_changes_the_fleet_at_most_once_per_policy_interval(fleet: Fleet, tmp_path) -> None:
    env = {"D4PY_BURST_ITEMS": "0", "D4PY_TRICKLE_ITEMS": "20", "D4PY_TRICKLE_S": "0.15"}
    for _ in range(2):
        fleet.host("-n", "2", "--serve", env=env)
    fleet.wait_agents(2)
    _, stats = autoscaled(fleet, tmp_path, env)
    times = [t for t, _ in stats["workers_timeline"]][1:]  # the changes after the start
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= 0.5 - 0.01 for gap in gaps), stats["workers_timeline"]  # the policy's cooldown


def test_an_agent_waiting_for_its_run_stops_on_sigterm_and_removes_its_record(fleet: Fleet) -> None:
    host = fleet.host("-n", "2", "--run", "never", "--wait", "60")
    fleet.wait_agents(1)
    host.process.send_signal(signal.SIGTERM)
    assert host.process.wait(timeout=10) == 0
    assert "terminated (SIGTERM) before joining a run" in host.stderr()
    assert fleet.agents() == []


def test_a_standing_agent_whose_server_goes_away_says_so_and_exits_1(tmp_path) -> None:
    server = RedisServer()
    try:
        fleet = Fleet(tmp_path, server)
        host = fleet.host("-n", "1", "--serve")
        fleet.wait_agents(1)
        server.kill()
        assert host.process.wait(timeout=30) == 1
        assert f"Redis at 127.0.0.1:{server.port}" in host.stderr(), host.stderr()
    finally:
        server.close()


def test_a_second_signal_stops_a_draining_agent_at_once(fleet: Fleet) -> None:
    # the agent's one process runs a PE stuck in a C loop that no signal interrupts: the
    # first SIGTERM cannot drain it; the second kills it and the agent leaves (143)
    env = {"D4PY_HOG_ITEMS": "1", "D4PY_HOG_SPIN": str(10**12)}
    host = fleet.host("-n", "1", "--serve", env=env)
    fleet.wait_agents(1)
    hog = str(WORKFLOWS / "redis_hog.py")
    driver = subprocess.Popen(
        cli("dyn_redis", hog, "-n", "0", "--claim-idle-ms", "1000", "--redis-url", fleet.server.url,
            "--key-file", str(fleet.key)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **fleet.env, **env},
    )  # fmt: skip
    try:
        [start] = wait_for(lambda: list(fleet.marks.glob("start-*")), "the PE stuck in its C loop")
        stuck = int(start.name.split("-")[2])
        os.kill(host.pid, signal.SIGTERM)
        wait_for(lambda: "draining 1 process(es)" in host.stderr(), "the agent draining")
        assert host.process.poll() is None  # its process cannot leave: it is in the C loop
        os.kill(host.pid, signal.SIGTERM)
        assert host.process.wait(timeout=15) == 128 + signal.SIGTERM
        assert "second signal: stopping at once" in host.stderr()
        assert wait_gone([stuck], within=5) == []  # killed, not left spinning
        _, err = driver.communicate(timeout=60)
        assert driver.returncode == 1 and "cannot be recovered" in err, err  # it hosted pinned instances
    finally:
        driver.kill()
        driver.communicate()


def test_runs_pattern_limits_the_runs_an_agent_joins(fleet: Fleet) -> None:
    host = fleet.host("-n", "1", "--serve", "--runs", "nightly-*", "-v")
    fleet.wait_agents(1)
    other = fleet.run("-n", "1", "--run", "adhoc", "-v")
    assert other.returncode == 0, other.stderr
    assert "joined from" not in other.stderr  # not a nightly run: the agent stayed away
    nightly = fleet.run("-n", "0", "--run", "nightly-1", "-v")  # it needs the agent
    assert nightly.returncode == 0, nightly.stderr
    assert "worker 0 joined from" in nightly.stderr
    assert "process(es) join run nightly-1" in host.stderr() and "join run adhoc" not in host.stderr()
