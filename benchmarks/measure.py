"""One measurement in this process: run a benchmark workflow once, print one JSON line.

``run.py`` starts this script in a fresh subprocess per measurement (under ``mpiexec`` for
``mpi``), so imports and process start-up are never shared between measurements. The
mapping module and the libraries mappings run on (multiprocess, pyzmq, redis-py; mpi4py
under ``mpi``, where importing it is ``MPI_Init``) are imported before the clock starts:
the "trivial run" figures time whole commands, start-up included. The wall time covers
``dispel4py.run()`` (planning, starting workers, the run, collecting results).

    python benchmarks/measure.py tiny --mapping simple --items 1000000
    python benchmarks/measure.py cpu --mapping multi --items 2000 -o num=2
    python benchmarks/measure.py tiny --mapping multi --items 1000000 -o num=2 --live
    python benchmarks/measure.py tiny --mapping multi --items 1000000 -o num=2 --per-process

``--per-process`` adds ``driver_cpu_s`` and ``child_cpu_s`` (each worker process's CPU
seconds, largest first; fork start method). ``--live`` turns the live counters on (as
the progress display does) and reads them twice a second, to measure what watching a run
costs.

The line is ``{"status": "ok" | "wrong" | "unavailable", ...}``; a failing run raises
(non-zero exit, traceback on stderr). Under MPI only rank 0 prints.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import resource
import sys
import time
from typing import Any

from workflows import expected_total, make_cpu_graph, make_tiny_graph, totals

import dispel4py
from dispel4py.mappings import get_mapping

__all__ = ["measure", "mapping_unavailable"]


TRANSPORT_LIBRARIES = ("multiprocess", "zmq", "redis")


def import_transport_libraries() -> None:
    """Every transport library there is, before the clock starts (redis-py alone takes
    ~0.1 s to import)."""
    for name in TRANSPORT_LIBRARIES:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def mapping_unavailable(mapping: str) -> str | None:
    """Why ``mapping`` cannot run now, or ``None`` if it can (its module is imported)."""
    try:
        get_mapping(mapping)
    except dispel4py.MappingUnavailable as exc:
        return str(exc)
    except ModuleNotFoundError as exc:
        # registered in dispel4py.mappings but its module is not written yet
        if exc.name and exc.name.startswith("dispel4py.mappings"):
            return f"registered, but {exc.name} does not exist (ModuleNotFoundError)"
        raise
    return None


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class ChildCpu:
    """CPU seconds of each child process, as the driver reaps it: ``os.waitpid`` (which
    ``multiprocess`` reaps its workers with, under the default fork start method) is
    replaced by ``os.wait4``, which also returns the child's resource usage. On a loaded
    machine the busiest worker's CPU time is what a quiet machine's wall time would be
    for a pipeline whose stages overlap (``--per-process``)."""

    def __init__(self) -> None:
        self.seconds: dict[int, float] = {}
        self._waitpid = os.waitpid

    def __enter__(self) -> ChildCpu:
        def waitpid(pid: int, options: int) -> tuple[int, int]:
            got, status, usage = os.wait4(pid, options)
            if got:
                self.seconds[got] = usage.ru_utime + usage.ru_stime
            return got, status

        os.waitpid = waitpid
        return self

    def __exit__(self, *exc: object) -> None:
        os.waitpid = self._waitpid


def _run_watched(graph: Any, inputs: Any, mapping: str, options: dict[str, Any]) -> Any:
    """``dispel4py.run`` with live counters on and read every 0.5 s (``--live``)."""
    import threading

    from dispel4py.observe.live import LiveBoard

    board = LiveBoard()
    stop = threading.Event()

    def read() -> None:
        while not stop.wait(0.5):
            board.progress()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        return dispel4py.run(graph, inputs, mapping, board=board, **options)
    finally:
        stop.set()
        reader.join()


def measure(
    kind: str,
    mapping: str,
    n_items: int,
    options: dict[str, Any],
    live: bool = False,
    per_process: bool = False,
) -> dict[str, Any] | None:
    """Run the ``kind`` workflow once; ``None`` on a non-root MPI rank."""
    reason = mapping_unavailable(mapping)
    if reason is not None:
        return {"status": "unavailable", "reason": reason}
    import_transport_libraries()
    if kind == "tiny":
        graph, inputs = make_tiny_graph(n_items), None
    else:
        graph, inputs = make_cpu_graph(), {"CountProducer": n_items}
    if mapping == "mpi":
        # MPI_Init and rank start-up skew are start-up costs (the trivial-run column has
        # them); time the run itself from a common starting line
        from mpi4py import MPI

        MPI.COMM_WORLD.Barrier()
    children = ChildCpu()
    cpu_before = _cpu_seconds()
    start = time.perf_counter()
    try:
        with children if per_process else contextlib.nullcontext():
            if live:
                result = _run_watched(graph, inputs, mapping, options)
            else:
                result = dispel4py.run(graph, inputs, mapping, **options)
    except dispel4py.MappingUnavailable as exc:
        return {"status": "unavailable", "reason": str(exc)}
    wall = time.perf_counter() - start
    if result is None:
        return None
    record: dict[str, Any] = {
        "status": "ok",
        "kind": kind,
        "mapping": mapping,
        "options": options,
        "live": live,
        "items": n_items,
        "wall_s": wall,
        "engine_s": result.elapsed_s,
        "items_per_s": n_items / wall if wall > 0 else None,
        "cpu_s": _cpu_seconds() - cpu_before,
        "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        # the largest child waited for (a worker, a provenance writer process)
        "children_maxrss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    }
    if per_process:
        own = resource.getrusage(resource.RUSAGE_SELF)
        record["driver_cpu_s"] = own.ru_utime + own.ru_stime  # imports included
        record["child_cpu_s"] = sorted(children.seconds.values(), reverse=True)
    got = totals(result.outputs)
    if got != expected_total(n_items):
        record.update(status="wrong", got=got, expected=expected_total(n_items))
    return record


def _option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time one run of a benchmark workflow.")
    parser.add_argument("kind", choices=["tiny", "cpu"])
    parser.add_argument("--mapping", default="simple")
    parser.add_argument("--items", type=int, required=True)
    parser.add_argument("--live", action="store_true", help="live counters on, read twice a second")
    parser.add_argument(
        "--per-process", action="store_true", help="CPU seconds of each worker process (fork only)"
    )
    parser.add_argument(
        "-o", "--option", type=_option, action="append", default=[], help="mapping option KEY=VALUE"
    )
    args = parser.parse_args(argv)
    record = measure(args.kind, args.mapping, args.items, dict(args.option), args.live, args.per_process)
    if record is not None:
        print(json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
