"""A/B of source trees: the tiny-items run of each tree, interleaved, in fresh subprocesses.

    python benchmarks/compare_trees.py /path/to/base /path/to/branch [--mapping multi] \\
        [--items 1000000] [--repeat 5] [-o num=2]

Each tree is a checkout of this repository (e.g. ``git worktree add --detach ../base
BASE``); its ``benchmarks/measure.py`` runs with ``PYTHONPATH`` set to the tree, under this
interpreter (so the same venv and libraries for every tree). Runs alternate A B C ...,
then ... C B A, so a drift of the machine's speed hits every tree alike, and each tree's
figure is compared with the first tree's *run by run* (paired ratios).

Two figures per tree: items per wall second, and items per CPU second (user + system of
the run and its child processes). On a loaded machine the wall figure swings with the
other load; the CPU figure much less, and for ``simple`` (one process) it is the engine's
cost per item. For the process mappings the CPU figure adds up every worker's time, so it
says how much work the run does, not how fast it goes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys


def once(tree: str, mapping: str, items: int, options: list[str], timeout: float) -> tuple[float, float]:
    """Items per wall second and per CPU second of one run of ``tree``."""
    cmd = [sys.executable, os.path.join(tree, "benchmarks", "measure.py"), "tiny"]
    cmd += ["--mapping", mapping, "--items", str(items)]
    for option in options:
        cmd += ["-o", option]
    env = dict(os.environ, PYTHONPATH=tree)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{tree}: measure.py failed (exit {done.returncode}): {done.stderr[-2000:]}")
    record = json.loads(lines[-1])
    if record["status"] != "ok":
        raise RuntimeError(f"{tree}: {record}")
    return items / record["wall_s"], items / record["cpu_s"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="+", help="checkouts to compare; the first is the reference")
    parser.add_argument("--mapping", default="simple")
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("-o", "--option", action="append", default=[], help="mapping option KEY=VALUE")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per run")
    args = parser.parse_args(argv)
    trees = [os.path.abspath(t) for t in args.trees]
    load = os.getloadavg()[0]
    print(f"{args.mapping} {args.items:,} items, {args.repeat} runs a tree {args.option}; load {load:.2f}")
    runs: dict[str, list[tuple[float, float]]] = {t: [] for t in trees}
    for r in range(args.repeat):
        for tree in trees if r % 2 == 0 else trees[::-1]:
            runs[tree].append(once(tree, args.mapping, args.items, args.option, args.timeout))
    for k, label in ((0, "items/wall s"), (1, "items/cpu s")):
        for tree in trees:
            values = [run[k] for run in runs[tree]]
            ratios = [a[k] / b[k] for a, b in zip(runs[tree], runs[trees[0]], strict=True)]
            print(
                f"  {label:12} median {statistics.median(values):>11,.0f} (min {min(values):,.0f}, "
                f"max {max(values):,.0f})  x first {statistics.median(ratios):.2f} "
                f"[{min(ratios):.2f}-{max(ratios):.2f}]  {tree}"
            )
    print(f"load after {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
