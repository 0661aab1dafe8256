"""Wiring one instance into the executor: its routes, its process handler, its emitter.

Pure functions of the plan and the PE object, kept apart from the executor loop.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

from dispel4py.base import ConsumerPE, IterativePE
from dispel4py.core import GenericPE
from dispel4py.engine.failure import short_repr
from dispel4py.engine.plan import Plan
from dispel4py.engine.routing import (
    ALL,
    GLOBAL,
    GROUP_BY,
    BroadcastRoute,
    FixedRoute,
    GroupByRoute,
    RoundRobinRoute,
    Route,
)

__all__ = [
    "make_routes",
    "make_handler",
    "make_emitter",
    "install_pe_write",
    "remove_pe_write",
    "unpicklable_message",
]


def make_routes(plan: Plan, worker: int, iid: int, output: str) -> list[Route]:
    """The routes of ``output`` of instance ``iid`` (hosted on ``worker``)."""
    placement = plan.placement
    pe_id = plan.pe_of(iid)
    routes: list[Route] = []
    for e in plan.edges:
        if e.src != pe_id or e.out != output:
            continue
        targets = plan.instances[e.dst]
        kind = e.grouping.kind
        if kind == GLOBAL:
            routes.append(FixedRoute(e.inp, targets[:1]))
        elif kind == ALL:
            routes.append(BroadcastRoute(e.inp, targets))
        elif kind == GROUP_BY:
            routes.append(GroupByRoute(e.inp, targets, e.grouping.keys, e.dst))
        else:
            candidates = _shuffle_candidates(plan, worker, e.src, targets)
            if len(candidates) == 1:
                routes.append(FixedRoute(e.inp, candidates))
            else:
                routes.append(RoundRobinRoute(e.inp, candidates, placement.index_of[iid]))
    return routes


def _shuffle_candidates(plan: Plan, worker: int, src: str, targets: list[int]) -> list[int]:
    """Prefer local destinations when every destination worker has a local source."""
    worker_of = plan.placement.worker_of
    src_workers = {worker_of[i] for i in plan.instances[src]}
    if {worker_of[t] for t in targets} <= src_workers:
        local = [t for t in targets if worker_of[t] == worker]
        if local:
            return local
    return targets


def make_handler(pe: Any, writers: dict[str, Any], emit: Callable[[Any], None]) -> Callable[[str, Any], None]:
    """``handler(port, item)``: one process call, with fast paths for the base classes."""

    only_input = list(pe.inputconnections) == [getattr(pe, "INPUT_NAME", None)]
    if only_input and type(pe).process is IterativePE.process:
        fn, writer = pe._process, writers.get(pe.OUTPUT_NAME)
        if writer is not None:
            write = writer.write

            def iterative(port: str, item: Any) -> None:
                result = fn(item)
                if result is not None:
                    write(result)

            return iterative
    if only_input and type(pe).process is ConsumerPE.process:
        consume = pe._process
        return lambda port, item: consume(item)
    process = pe.process

    def generic(port: str, item: Any) -> None:
        out = process({port: item})
        if out is not None:
            emit(out)

    return generic


def make_emitter(pe_id: str, writers: dict[str, Any]) -> Callable[[Any], None]:
    """What handles the dict a ``process`` call returns."""

    def emit(out: Any) -> None:
        if not isinstance(out, dict):
            raise TypeError(
                f"process() of {pe_id} returned {type(out).__name__}; expected None or a "
                "dict {output_name: item}"
            )
        for name, value in out.items():
            writer = writers.get(name)
            if writer is None:
                raise KeyError(
                    f"process() of {pe_id} returned output '{name}', which it does not "
                    f"declare; outputs are: {', '.join(writers) or '(none)'}"
                )
            writer.write(value)

    return emit


def install_pe_write(pe: Any, writers: dict[str, Any]) -> bool:
    """Let ``pe.write(name, data)`` reach the writer of the PE's main output in one call.

    ``GenericPE.write`` looks the writer up and calls it: two Python calls per item, about
    as much as the writer's work (benchmarks/profile_tiny.py). Here the PE object gets an
    attribute ``write``, the writer's own ``pe_write``, which checks the name and writes; a
    write to another output (or an unknown one, which raises naming the PE) goes through
    ``GenericPE._write`` as before. Only on a PE that keeps ``GenericPE.write`` and has no
    ``write`` of its own, and only for writers that have ``pe_write`` (the fast paths).
    The main output is ``OUTPUT_NAME``, else the only output. Removed by
    :func:`remove_pe_write` when the run ends."""
    if type(pe).write is not GenericPE.write or "write" in vars(pe):
        return False
    output = getattr(pe, "OUTPUT_NAME", None)
    if output not in writers:
        if len(writers) != 1:
            return False
        output = next(iter(writers))
    writer = writers[output]
    pe_write = getattr(writer, "pe_write", None)
    if pe_write is None:
        return False
    writer.output, writer.other = output, pe._write
    pe.write = pe_write
    return True


def remove_pe_write(pe: Any) -> None:
    """Undo :func:`install_pe_write` (the PE object may be the user's, run again later)."""
    write = vars(pe).get("write")
    if write is not None and getattr(write, "__name__", "") == "pe_write":
        del pe.write


def unpicklable_message(plan: Plan, target: int, port: str, items: list[Any], exc: Exception) -> str:
    dst = plan.pe_of(target)
    sources = ", ".join(f"{e.src}.{e.out}" for e in plan.edges if e.dst == dst and e.inp == port)
    culprit = next((i for i in items if not _picklable(i)), None)
    worker = plan.worker_of(target)
    where = f" on worker {worker}" if worker >= 0 else ""  # a dynamic mapping's shared queue: any
    return (
        f"cannot send item {short_repr(culprit)} written by {sources} to {dst} input '{port}'"
        f"{where}: it cannot be pickled "
        f"({type(exc).__name__}: {exc}); send plain data (numbers, strings, lists, dicts, arrays)"
    )


def _picklable(item: Any) -> bool:
    try:
        pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return False
    return True
