"""The targets' ratios (tiny items/s of a mapping ÷ the bare loop's or the mp pipe's), paired
per round, for several checkouts: on a machine whose load moves, each round measures the
baselines and then every tree's mappings, so a ratio compares runs minutes apart at most.

    python benchmarks/ratio_rounds.py ../base . [--rounds 5] [--mappings simple,multi,zmq_multi]

``simple`` is divided by the bare loop, the others (``-n 2``) by the mp pipe, as in
``run.py``'s ``/bare loop`` and ``/mp pipe`` columns. Trees alternate order round by round;
each tree's ``dispel4py`` comes from ``PYTHONPATH`` set to it (one venv for all). Prints the
median of the per-round ratios and their range.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))


def _record(cmd: list[str], tree: str | None = None) -> dict[str, Any]:
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = tree
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines or json.loads(lines[-1])["status"] != "ok":
        raise RuntimeError(f"{' '.join(cmd)} (tree {tree}) failed: {done.stderr[-2000:]}")
    record: dict[str, Any] = json.loads(lines[-1])
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="+")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mappings", default="simple,multi,zmq_multi")
    parser.add_argument("--items", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    trees = [os.path.abspath(t) for t in args.trees]
    ratios: dict[tuple[str, str], list[float]] = {}
    for r in range(args.rounds):
        base = {}
        for name in ("bare", "mp_pipe"):
            cmd = [
                sys.executable,
                os.path.join(HERE, "baseline.py"),
                name,
                "--json",
                "--items",
                str(args.items),
            ]
            base[name] = _record(cmd)["items_per_s"]
        for mapping in args.mappings.split(","):
            for tree in trees if r % 2 == 0 else trees[::-1]:
                cmd = [sys.executable, os.path.join(HERE, "measure.py"), "tiny", "--mapping", mapping]
                cmd += ["--items", str(args.items)] + ([] if mapping == "simple" else ["-o", "num=2"])
                rate = _record(cmd, tree)["items_per_s"]
                ref = base["bare"] if mapping == "simple" else base["mp_pipe"]
                ratios.setdefault((mapping, tree), []).append(rate / ref)
        print(
            f"round {r}: load {os.getloadavg()[0]:.1f}, bare loop {base['bare']:,.0f}/s, "
            f"mp pipe {base['mp_pipe']:,.0f}/s",
            flush=True,
        )
    for (mapping, tree), values in ratios.items():
        ref = "bare loop" if mapping == "simple" else "mp pipe"
        print(
            f"  {mapping:10} x {ref:9} median {statistics.median(values):.2f} "
            f"[{min(values):.2f}-{max(values):.2f}]  {tree}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
