"""A standing fleet's figures (issue 17): 3 agents x 3 processes on the slow stage.

    python benchmarks/fleet_bench.py [--agents 3] [--processes 3] [--repeat 3] [--json out.json]

The agents (``dispel4py worker -n 3 --serve``) each run in their own working directory and
HOME, against a redis-server this script starts; they stay up for every run. Figures are
medians of ``--repeat`` runs of whole commands (``slow_stage_graph``, 200 x 20 ms):

* fleet (``dyn_redis -n 0``: every worker is an agent's) against ``simple`` (target >= 5x)
  and against ``dyn_multi -n 9`` on one machine (target: within 1.2x);
* time from a run's start (its ``info`` key exists) to every agent's process having joined
  it (the run's worker counter reaches agents x processes; target <= 0.5 s);
* ``dyn_auto_redis -n 0`` on the same fleet: wall time against the fixed fleet (target: within
  1.2x) and its worker-seconds (the integral of its active workers over the run, from
  ``--stats-json``) against the fixed fleet's (all processes x wall time).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from redis_bench import ROOT, Server, _dispel4py, command_s

SLOW = [str(ROOT / "benchmarks" / "workflows.py"), "-a", "slow_stage_graph", "-i", "1"]


class Agents:
    def __init__(self, url: str, key: Path, count: int, processes: int) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="d4py-bench-fleet-"))
        self.procs = []
        for i in range(count):
            home = self.folder / f"host{i}"
            home.mkdir()
            cmd = [*_dispel4py(), "worker", "-n", str(processes), "--serve", "--redis-url", url]
            self.procs.append(
                subprocess.Popen(
                    [*cmd, "--key-file", str(key)],
                    cwd=home,
                    env={**os.environ, "HOME": str(home), "PYTHONPATH": str(ROOT / "benchmarks")},
                    stdout=subprocess.DEVNULL,
                    stderr=open(home / "stderr.txt", "w"),  # noqa: SIM115 - the agent keeps it
                )
            )

    def close(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(timeout=30)


def wait_agents(client, key: bytes, count: int) -> None:
    from dispel4py.dynamic.signing import Signer
    from dispel4py.mappings.redis.agents import read_agents

    deadline = time.monotonic() + 60
    while len(read_agents(client, Signer(key))[0]) < count:
        if time.monotonic() > deadline:
            sys.exit("the agents did not start")
        time.sleep(0.05)


def join_delay(client, run_id: str, workers: int, stop: threading.Event, out: list[float]) -> None:
    """Seconds from the run's info key to its worker counter reaching ``workers``."""
    start = None
    while not stop.is_set():
        if start is None and client.exists(f"d4py:{run_id}:info"):
            start = time.perf_counter()
        if start is not None and int(client.get(f"d4py:{run_id}:workers") or 0) >= workers:
            out.append(time.perf_counter() - start)
            return
        time.sleep(0.005)  # 5 ms resolution: a tighter poll costs the run it measures CPU


def fleet_run(args: list[str], client, run_id: str, workers: int, timeout: float) -> tuple[float, float]:
    stop, delays = threading.Event(), []
    watcher = threading.Thread(target=join_delay, args=(client, run_id, workers, stop, delays))
    watcher.start()
    try:
        wall = command_s([*args, "--run", run_id], {"PYTHONPATH": str(ROOT / "benchmarks")}, timeout)
    finally:
        stop.set()
        watcher.join()
    return wall, delays[0] if delays else float("nan")


@contextlib.contextmanager
def standing_fleet(count: int, processes: int) -> Iterator[tuple[Server, Path, Any]]:
    """A redis-server, a run key and ``count`` agents standing (registered): (server, key
    file, a redis-py client of the server); all stopped and closed afterwards."""
    server = Server()
    key = Path(tempfile.mkdtemp(prefix="d4py-bench-key-")) / "run.key"
    key.write_text(os.urandom(32).hex())
    key.chmod(0o600)
    import redis

    client = redis.Redis.from_url(server.url)
    agents = Agents(server.url, key, count, processes)
    try:
        wait_agents(client, key.read_text().strip().encode(), count)
        yield server, key, client
    finally:
        agents.close()
        client.close()
        server.close()


def worker_seconds(stats: dict, wall: float, fallback: int) -> float:
    timeline = stats.get("workers_timeline") or [[0.0, fallback]]
    points = [*timeline, [wall, timeline[-1][1]]]
    return sum((b[0] - a[0]) * a[1] for a, b in itertools.pairwise(points))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--json", default=None)
    opts = parser.parse_args(argv)
    total, r, t = opts.agents * opts.processes, opts.repeat, opts.timeout
    samples: dict[str, list[float]] = {}
    with standing_fleet(opts.agents, opts.processes) as (server, key, client):
        folder = key.parent
        samples["simple"] = [command_s(["simple", *SLOW], {}, t) for _ in range(r)]
        samples["dyn_multi"] = [command_s(["dyn_multi", *SLOW, "-n", str(total)], {}, t) for _ in range(r)]
        net = ["--redis-url", server.url, "--key-file", str(key), "-n", "0"]
        fixed = [fleet_run(["dyn_redis", *SLOW, *net], client, f"fixed{i}", total, t) for i in range(r)]
        samples["fleet"], samples["join_s"] = [w for w, _ in fixed], [d for _, d in fixed]
        samples["auto"], samples["auto_worker_s"] = [], []
        for i in range(r):
            stats = folder / f"auto{i}.json"
            auto = ["dyn_auto_redis", *SLOW, *net, "--stats-json", str(stats)]
            wall, _ = fleet_run(auto, client, f"auto{i}", total, t)
            samples["auto"].append(wall)
            samples["auto_worker_s"].append(worker_seconds(json.loads(stats.read_text()), wall, total))
    med = {name: statistics.median(values) for name, values in samples.items()}
    print(f"slow stage 200 x 20 ms, {opts.agents} agents x {opts.processes} processes, median of {r}")
    print(f"simple {med['simple']:.2f} s, dyn_multi -n {total} {med['dyn_multi']:.2f} s, ", end="")
    print(f"fleet {med['fleet']:.2f} s")
    print(f"fleet speed-up over simple        {med['simple'] / med['fleet']:.2f}x   (target >= 5x)")
    print(f"fleet / dyn_multi -n {total}           {med['fleet'] / med['dyn_multi']:.2f}    (target <= 1.2)")
    print(f"run start -> every agent joined   {med['join_s']:.3f} s (target <= 0.5 s)")
    print(
        f"dyn_auto_redis on the fleet {med['auto']:.2f} s ({med['auto'] / med['fleet']:.2f}x the fixed "
        f"fleet, target <= 1.2), worker-seconds {med['auto_worker_s']:.2f} "
        f"vs fixed {total * med['fleet']:.2f}"
    )
    if opts.json:
        Path(opts.json).write_text(json.dumps({"samples": samples, "median": med}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
