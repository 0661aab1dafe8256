"""Where a standing fleet's run goes (issue 17): the phases of ``fleet_bench.py``'s fleet run.

    python benchmarks/fleet_phases.py [--runs 5] [--agents 3] [--processes 3]

The same set-up as ``fleet_bench.py`` (a redis-server, agents ``dispel4py worker -n P --serve``
in their own folders, the slow stage, 200 x 20 ms, ``dyn_redis -n 0``); for each run, measured
from this process (a thread polling the run's keys every 2 ms, which costs the run a little
CPU: compare runs of this script with each other, not with ``fleet_bench.py``):

* start -> info: the driver's start (Python, the CLI, the workflow, connecting) until the
  run's ``info`` key exists;
* info -> joined: until the run's worker counter shows every agent process joined;
* joined -> exit: the work, the run's end and the driver's exit.

Medians over ``--runs``; each run's phases are printed too.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import threading
import time
from pathlib import Path

from fleet_bench import SLOW, standing_fleet
from redis_bench import ROOT, _dispel4py


def _phases(client, run_id: str, workers: int, stop: threading.Event, marks: dict[str, float]) -> None:
    while not stop.is_set():
        now = time.perf_counter()
        if "info" not in marks and client.exists(f"d4py:{run_id}:info"):
            marks["info"] = now
        if "info" in marks and int(client.get(f"d4py:{run_id}:workers") or 0) >= workers:
            marks["joined"] = now
            return
        time.sleep(0.002)


def one_run(url: str, key: Path, client, run_id: str, workers: int) -> tuple[float, float, float]:
    marks: dict[str, float] = {}
    stop = threading.Event()
    watcher = threading.Thread(target=_phases, args=(client, run_id, workers, stop, marks))
    watcher.start()
    command = [*_dispel4py(), "dyn_redis", *SLOW, "--redis-url", url, "--key-file", str(key)]
    start = time.perf_counter()
    done = subprocess.run(
        [*command, "-n", "0", "--run", run_id],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "benchmarks")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    end = time.perf_counter()
    stop.set()
    watcher.join()
    if done.returncode != 0 or "Outputs:" not in done.stdout or len(marks) < 2:
        raise RuntimeError(f"the fleet run {run_id} failed: {done.stderr[-2000:]}")
    return marks["info"] - start, marks["joined"] - marks["info"], end - marks["joined"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--processes", type=int, default=3)
    opts = parser.parse_args()
    rows = []
    with standing_fleet(opts.agents, opts.processes) as (server, key, client):
        for i in range(opts.runs):
            rows.append(one_run(server.url, key, client, f"phases{i}", opts.agents * opts.processes))
            print(_line(f"run {i}:", rows[-1]))
    medians = tuple(statistics.median(column) for column in zip(*rows))
    print(_line("median:", medians) + f", total {statistics.median(sum(row) for row in rows):.3f} s")


def _line(head: str, phases: tuple[float, ...]) -> str:
    info, joined, end = phases
    return f"{head} start -> info {info:.3f} s, info -> joined {joined:.3f} s, joined -> exit {end:.3f} s"


if __name__ == "__main__":
    main()
