"""Process-seconds per task: where a Redis run's CPU goes, against ``dyn_multi`` (issue 18).

    python benchmarks/task_cpu.py [--items 1051] [--ms 50] [--workers 2,4,8] [--repeat 3]

The galaxy-like shape (``slow_stage_graph`` with ``--items`` x ``--ms`` of waiting: one
producer call, a stage that waits like a VO query, ``x + 1``, a sum) on ``dyn_multi -n N``
and on ``dyn_redis -n N`` with its own embedded redis-server. A figure is the user + system
seconds of the whole command and everything it waited for (its workers, the embedded
server), from the operating system's accounting of finished children; the median of
``--repeat`` runs, with the wall time beside it. The stage only waits, so almost all of this
CPU is the mapping's own cost of moving the items; divided by the items, it is the CPU of
one task of one item through three stages.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _command() -> list[str]:
    script = Path(sys.executable).parent / "dispel4py"
    return [str(script)] if script.exists() else [sys.executable, "-m", "dispel4py"]


def measure(mapping: str, workers: int, items: int, ms: float) -> tuple[float, float]:
    """(process-seconds, wall seconds) of one whole command."""
    env = {**os.environ, "D4PY_BENCH_SLOW_ITEMS": str(items), "D4PY_BENCH_SLOW_MS": str(ms)}
    args = [*_command(), mapping, str(HERE / "workflows.py"), "-a", "slow_stage_graph", "-i", "1"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([*args, "-n", str(workers)], capture_output=True, text=True, env=env, timeout=900)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    counted = sum(int(c) for c in re.findall(r"'count': (\d+)", done.stdout))
    if done.returncode != 0 or counted != items:
        raise RuntimeError(f"{mapping} -n {workers}: {counted} of {items} items; {done.stderr[-2000:]}")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return cpu, wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=1051)
    parser.add_argument("--ms", type=float, default=50.0)
    parser.add_argument("--workers", default="2,4,8")
    parser.add_argument("--repeat", type=int, default=3)
    opts = parser.parse_args(argv)
    load = os.getloadavg()[0]
    rows = []
    for n in [int(x) for x in opts.workers.split(",")]:
        figures: dict[str, list[tuple[float, float]]] = {"dyn_multi": [], "dyn_redis": []}
        for _ in range(opts.repeat):  # interleaved: a drift of the machine's speed hits both
            for mapping in figures:
                figures[mapping].append(measure(mapping, n, opts.items, opts.ms))
        med = {
            m: (statistics.median(c for c, _ in v), statistics.median(w for _, w in v))
            for m, v in figures.items()
        }
        rows.append((n, med))
    print(
        f"{opts.items} items x {opts.ms:g} ms, median of {opts.repeat}; load average {load:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after"
    )
    print(
        f"{'-n':>3}  {'dyn_multi cpu s':>15}  {'wall s':>7}  {'dyn_redis cpu s':>15}  {'wall s':>7}  "
        f"{'redis/multi cpu':>15}  {'redis ms/item':>13}"
    )
    for n, med in rows:
        (mc, mw), (rc, rw) = med["dyn_multi"], med["dyn_redis"]
        print(
            f"{n:>3}  {mc:>15.2f}  {mw:>7.2f}  {rc:>15.2f}  {rw:>7.2f}  {rc / mc:>15.2f}  "
            f"{1000 * rc / opts.items:>13.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
