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
says how much work the run does, not how fast it goes. ``--per-process`` adds a third:
items per CPU second of the busiest worker process (the one that sets a pipeline's pace on
a quiet machine: on ``multi -n 2`` of the tiny graph, the worker hosting the producer); it
runs *this* checkout's ``measure.py --per-process`` against each tree's package.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def once(
    tree: str, mapping: str, items: int, options: list[str], timeout: float, per_process: bool = False
) -> tuple[float, ...]:
    """Items per wall second, per CPU second (and per busiest worker's CPU second) of one
    run of ``tree``."""
    script = os.path.join(HERE if per_process else os.path.join(tree, "benchmarks"), "measure.py")
    cmd = [sys.executable, script, "tiny", "--mapping", mapping, "--items", str(items)]
    if per_process:
        cmd.append("--per-process")
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
    if per_process:
        busiest = max(record["child_cpu_s"], default=record["cpu_s"])
        return items / record["wall_s"], items / record["cpu_s"], items / busiest
    return items / record["wall_s"], items / record["cpu_s"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="+", help="checkouts to compare; the first is the reference")
    parser.add_argument("--mapping", default="simple")
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("-o", "--option", action="append", default=[], help="mapping option KEY=VALUE")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per run")
    parser.add_argument("--per-process", action="store_true", help="also items per busiest worker's CPU s")
    args = parser.parse_args(argv)
    trees = [os.path.abspath(t) for t in args.trees]
    load = os.getloadavg()[0]
    print(f"{args.mapping} {args.items:,} items, {args.repeat} runs a tree {args.option}; load {load:.2f}")
    runs: dict[str, list[tuple[float, ...]]] = {t: [] for t in trees}
    for r in range(args.repeat):
        for tree in trees if r % 2 == 0 else trees[::-1]:
            run = once(tree, args.mapping, args.items, args.option, args.timeout, args.per_process)
            runs[tree].append(run)
    figures = [(0, "items/wall s"), (1, "items/cpu s")]
    if args.per_process:
        figures.append((2, "/busiest cpu"))
    for k, label in figures:
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
