"""Where the time goes in a tiny-items run: cProfile, top functions by own time.

    python benchmarks/profile_tiny.py [--items 1000000] [--mapping simple] [--top 15]

Only in-process mappings (``simple``) show the engine's work; for process mappings the
profile covers the driver only. cProfile adds a fixed cost per call, so per-item functions
look more expensive than they are: read the shares, not the absolute times.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time

from workflows import make_tiny_graph

import dispel4py

PACKAGE_DIR = os.path.dirname(os.path.abspath(dispel4py.__file__))
HERE = os.path.dirname(os.path.abspath(__file__))


def _where(filename: str) -> str:
    if filename.startswith(PACKAGE_DIR):
        return "dispel4py/" + os.path.relpath(filename, PACKAGE_DIR)
    if filename.startswith(HERE):
        return "benchmarks/" + os.path.relpath(filename, HERE)
    return "other"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--mapping", default="simple")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)

    graph = make_tiny_graph(args.items)
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.runcall(dispel4py.run, graph, None, args.mapping)
    wall = time.perf_counter() - start
    stats = pstats.Stats(profiler)
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = []
    by_area: dict[str, float] = {}
    for (filename, line, name), (_, ncalls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = _where(filename)
        area = where.split("/")[0]
        by_area[area] = by_area.get(area, 0.0) + tottime
        rows.append((tottime, cumtime, ncalls, f"{where}:{line}({name})"))
    rows.sort(reverse=True)
    print(f"{args.items:,} items on {args.mapping}: {wall:.2f} s under cProfile, {total:.2f} s profiled")
    print("own share by area: " + ", ".join(f"{a} {t / total:.0%}" for a, t in sorted(by_area.items())))
    print(f"{'own %':>6} {'cum %':>6} {'calls':>10}  function")
    for tottime, cumtime, ncalls, label in rows[: args.top]:
        print(f"{tottime / total:6.1%} {cumtime / total:6.1%} {ncalls:>10}  {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
