"""Benchmark workflows: importable builders and CLI workflow files.

Four graph builders, each ``producer -> [work] -> SumConsumer``:

* ``make_tiny_graph(n)``: one producer call writes ``n`` small ints; ``x + 1``; sum. Measures
  the per-item cost of the engine (routing, writers, inboxes, transport).
* ``make_cpu_graph(loops)``: one item per producer call (``-i N`` gives N items), each item
  burns ``loops`` iterations of a pure-Python loop (~1 ms here, see ``calibrate_cpu_loops``).
  Items from the single producer are spread round-robin over the worker PE's instances, so
  this measures how well a mapping uses several cores.
* ``make_trivial_graph()``: producer -> consumer, one item: the fixed cost of a run.
* ``make_slow_graph(n, ms)``: one producer call writes ``n`` ints; a stage that *waits*
  ``ms`` per item (``time.sleep``, like a remote query: no CPU used); ``x + 1``; sum. Its
  time is set by how many processes run the waiting stage, not by the cores, so it shows
  whether a mapping's layout uses the workers it is given. ``slow_stage_graph`` (200 items
  x 20 ms) and ``galaxy_like_graph`` (100 x 50 ms, the shape of the galaxy-extinction
  workflow: coordinates -> VO query -> cheap stages -> sink).

The consumer writes ``{"count": c, "sum": s}`` to its unconnected output ``total`` in
postprocess, so the totals come back in ``RunResult.outputs`` (one dict per instance) on
every mapping and a benchmark can check that nothing was lost.

From the command line (several graphs are defined here, so name one with ``-a``)::

    D4PY_BENCH_ITEMS=100000 dispel4py simple benchmarks/workflows.py -a graph -i 1
    dispel4py simple benchmarks/workflows.py -a cpu_graph -i 2000
    dispel4py simple benchmarks/workflows.py -a trivial_graph -i 1
    D4PY_BENCH_SLOW_MS=20 dispel4py multi benchmarks/workflows.py -a slow_stage_graph -i 1 -n 4
    python benchmarks/workflows.py --calibrate      # loops for ~1 ms on this machine
"""

from __future__ import annotations

import os
import sys
import time
from itertools import pairwise
from typing import Any

from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph

__all__ = [
    "CPU_LOOPS",
    "DEFAULT_ITEMS",
    "DEFAULT_SLOW_ITEMS",
    "DEFAULT_SLOW_MS",
    "GALAXY_ITEMS",
    "GALAXY_MS",
    "AddOne",
    "BurnCPU",
    "CountProducer",
    "SleepStage",
    "SumConsumer",
    "TinyProducer",
    "burn",
    "calibrate_cpu_loops",
    "expected_total",
    "make_cpu_graph",
    "make_slow_graph",
    "make_tiny_graph",
    "make_trivial_graph",
    "totals",
]

DEFAULT_ITEMS = 1_000_000
DEFAULT_SLOW_ITEMS, DEFAULT_SLOW_MS = 200, 20.0  # slow_stage_graph (D4PY_BENCH_SLOW_ITEMS/_MS)
GALAXY_ITEMS, GALAXY_MS = 100, 50.0  # galaxy_like_graph


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value is None else int(value.replace("_", ""))


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return default if value is None else float(value)


# Loop iterations of ``burn`` that take ~1 ms on the reference machine (2 cores, CPython
# 3.11), from ``python benchmarks/workflows.py --calibrate``. Fixed so that the work per
# item is the same on every run; override with D4PY_BENCH_CPU_LOOPS on another machine.
CPU_LOOPS = _env_int("D4PY_BENCH_CPU_LOOPS", 13_000)


def burn(loops: int, seed: int = 0) -> int:
    """Deterministic pure-Python CPU work (an LCG), ``loops`` iterations."""
    acc = seed
    for i in range(loops):
        acc = (acc * 1103515245 + i) & 0xFFFFFFFF
    return acc


def calibrate_cpu_loops(target_s: float = 0.001, rounds: int = 5) -> int:
    """Loop count for which one ``burn`` takes ``target_s`` here (best of ``rounds``)."""
    probe = 20_000
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        burn(probe)
        best = min(best, time.perf_counter() - start)
    return max(1, round(probe * target_s / best))


class TinyProducer(ProducerPE):
    """Writes ``0 .. n_items-1`` with ``self.write`` in one process call."""

    def __init__(self, n_items: int = DEFAULT_ITEMS) -> None:
        ProducerPE.__init__(self)
        self.n_items = n_items

    def _process(self, inputs: Any) -> None:
        for i in range(self.n_items):
            self.write("output", i)


class CountProducer(ProducerPE):
    """One item per process call: 0, 1, 2, ..."""

    def __init__(self) -> None:
        ProducerPE.__init__(self)
        self.next_item = 0

    def _process(self, inputs: Any) -> int:
        item = self.next_item
        self.next_item += 1
        return item


class AddOne(IterativePE):
    def _process(self, data: int) -> int:
        return data + 1


class BurnCPU(IterativePE):
    """``x + 1`` after ``loops`` iterations of ``burn`` (~1 ms with ``CPU_LOOPS``)."""

    def __init__(self, loops: int = CPU_LOOPS) -> None:
        IterativePE.__init__(self)
        self.loops = loops

    def _process(self, data: int) -> int:
        burn(self.loops, data)
        return data + 1


class SleepStage(IterativePE):
    """Passes ``x`` on after waiting ``ms`` milliseconds (a remote query: time, no CPU)."""

    def __init__(self, ms: float = DEFAULT_SLOW_MS) -> None:
        IterativePE.__init__(self)
        self.ms = ms

    def _process(self, data: int) -> int:
        time.sleep(self.ms / 1000)
        return data


class SumConsumer(ConsumerPE):
    """Counts and sums its input; writes ``{"count", "sum"}`` to ``total`` at the end."""

    def __init__(self) -> None:
        ConsumerPE.__init__(self)
        self._add_output("total")
        self.count = 0
        self.sum = 0

    def _process(self, data: int) -> None:
        self.count += 1
        self.sum += data

    def _postprocess(self) -> None:
        self.write("total", {"count": self.count, "sum": self.sum})


def _chain(*pes: Any) -> WorkflowGraph:
    graph = WorkflowGraph()
    for src, dst in pairwise(pes):
        graph.connect(src, "output", dst, "input")
    return graph


def make_tiny_graph(n_items: int = DEFAULT_ITEMS) -> WorkflowGraph:
    """TinyProducer(n_items) -> AddOne -> SumConsumer; run the producer once."""
    return _chain(TinyProducer(n_items), AddOne(), SumConsumer())


def make_cpu_graph(loops: int = CPU_LOOPS) -> WorkflowGraph:
    """CountProducer -> BurnCPU(loops) -> SumConsumer; run the producer N times."""
    return _chain(CountProducer(), BurnCPU(loops), SumConsumer())


def make_trivial_graph() -> WorkflowGraph:
    """CountProducer -> SumConsumer; run once."""
    return _chain(CountProducer(), SumConsumer())


def make_slow_graph(n_items: int = DEFAULT_SLOW_ITEMS, ms: float = DEFAULT_SLOW_MS) -> WorkflowGraph:
    """TinyProducer(n_items) -> SleepStage(ms) -> AddOne -> SumConsumer; run the producer once.

    Four PEs, so ``multi -n 4`` is where the original's formula gave each PE one instance."""
    return _chain(TinyProducer(n_items), SleepStage(ms), AddOne(), SumConsumer())


def expected_total(n_items: int) -> dict[str, int]:
    """What SumConsumer reports after ``x + 1`` over ``0 .. n_items-1``."""
    return {"count": n_items, "sum": n_items * (n_items + 1) // 2}


def totals(outputs: dict[str, dict[str, list[Any]]]) -> dict[str, int]:
    """Add up the ``total`` dicts of every SumConsumer instance in a run's outputs."""
    result = {"count": 0, "sum": 0}
    for t in (t for ports in outputs.values() for t in ports.get("total", ())):
        result["count"] += t["count"]
        result["sum"] += t["sum"]
    return result


graph = make_tiny_graph(_env_int("D4PY_BENCH_ITEMS", DEFAULT_ITEMS))
cpu_graph = make_cpu_graph(CPU_LOOPS)
trivial_graph = make_trivial_graph()
slow_stage_graph = make_slow_graph(
    _env_int("D4PY_BENCH_SLOW_ITEMS", DEFAULT_SLOW_ITEMS), _env_float("D4PY_BENCH_SLOW_MS", DEFAULT_SLOW_MS)
)
galaxy_like_graph = make_slow_graph(GALAXY_ITEMS, GALAXY_MS)


if __name__ == "__main__":
    if sys.argv[1:] != ["--calibrate"]:
        sys.exit("usage: python benchmarks/workflows.py --calibrate")
    loops = calibrate_cpu_loops()
    start = time.perf_counter()
    for seed in range(200):
        burn(loops, seed)
    per_item_ms = (time.perf_counter() - start) / 200 * 1000
    print(f"CPU_LOOPS = {loops}  # {per_item_ms:.3f} ms per item over 200 items")
