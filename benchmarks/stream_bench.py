"""``dispel4py.stream`` next to ``dispel4py.run``: items per second of a source whose every
item is a result, consumed by a loop that does nothing (the cost of the hand-off itself).

    python benchmarks/stream_bench.py --items 300000 --mappings simple,multi,dyn_multi

Not a test: nothing is asserted. Each figure is the median of ``--repeat`` runs in this
process; the header shows the load average (a load above the core count spoils figures).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import dispel4py
from dispel4py.base import GenericPE
from dispel4py.workflow_graph import WorkflowGraph


class Count(GenericPE):
    def __init__(self, items: int) -> None:
        GenericPE.__init__(self)
        self._add_output("output")
        self.items = items

    def process(self, inputs: Any) -> None:
        for i in range(self.items):
            self.write("output", i)


def _graph(items: int) -> tuple[WorkflowGraph, Count]:
    graph = WorkflowGraph()
    source = Count(items)
    graph.add(source)
    return graph, source


def _once(how: str, mapping: str, items: int, num: int) -> float:
    graph, source = _graph(items)
    options = {} if mapping == "simple" else {"num": num}
    start = time.perf_counter()
    if how == "run":
        result = dispel4py.run(graph, {source: 1}, mapping, **options)
        assert result is not None and len(result[source.id]["output"]) == items
    else:
        got = sum(1 for _ in dispel4py.stream(graph, {source: 1}, mapping, **options))
        assert got == items
    return items / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=300_000)
    parser.add_argument("--mappings", default="simple,multi,dyn_multi")
    parser.add_argument("--num", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; {args.items} items")
    for mapping in args.mappings.split(","):
        row = []
        for how in ("run", "stream"):
            rates = [_once(how, mapping, args.items, args.num) for _ in range(args.repeat)]
            row.append(f"{how} {statistics.median(rates):>10,.0f} items/s")
        print(f"{mapping:<12} " + "   ".join(row))
    print(f"load average {os.getloadavg()[0]:.1f} after")


if __name__ == "__main__":
    main()
