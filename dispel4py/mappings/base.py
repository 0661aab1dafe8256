"""The mapping interface: a mapping is only placement (how many workers) + transport."""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import pickle
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from collections.abc import Mapping as MappingABC
from typing import Any, ClassVar

from dispel4py.dynamic.layout import dynamic_place
from dispel4py.engine.pe_log_output import ensure_pe_log_output
from dispel4py.engine.placement import Placement, place
from dispel4py.engine.plan import Plan, make_plan
from dispel4py.engine.result import InstanceStats, Outputs, RunResult
from dispel4py.errors import TransportError
from dispel4py.observe.live import LiveBoard
from dispel4py.observe.report import find_bottleneck, layout_of
from dispel4py.workflow_graph import WorkflowGraph

__all__ = ["Mapping", "ResultCollector", "ResultBuffer", "static_place"]

Batch = list[tuple[str, str, list[Any]]]
_log = logging.getLogger("dispel4py.engine")


class ResultBuffer:
    """A worker's collected outputs, shipped to the driver in batches by ``ship(batch)``.

    The executor flushes it before it waits and when a list grows large, so a worker never
    holds more than a few thousand result items.
    """

    def __init__(self, ship: Any) -> None:
        self.ship = ship
        self.lists: dict[tuple[str, str], list[Any]] = {}

    def result_list(self, pe_id: str, output: str) -> list[Any]:
        return self.lists.setdefault((pe_id, output), [])

    def flush_results(self) -> None:
        batch: Batch = [(pe, out, items[:]) for (pe, out), items in self.lists.items() if items]
        if not batch:
            return
        for items in self.lists.values():
            items.clear()
        try:
            self.ship(batch)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise TransportError(
                f"outputs of {', '.join(sorted({f'{p}.{o}' for p, o, _ in batch}))} cannot be "
                f"returned to the driver (not picklable): {exc}"
            ) from exc


class ResultCollector:
    """Driver-side store of collected outputs, ``{(pe_id, output): [items]}``.

    ``dispel4py.stream`` hands in a collector that passes them on instead (``handoff.py``);
    a driver loop that waits on file descriptors also waits on ``stopped_fd`` (if any) and
    then calls :meth:`check_stopped`, so a run whose consumer has gone stops at once.
    """

    stopped_fd: int | None = None

    def __init__(self) -> None:
        self.lists: dict[tuple[str, str], list[Any]] = {}

    def check_stopped(self) -> None:
        """Raise if whoever reads the results has stopped (never, here)."""

    def result_list(self, pe_id: str, output: str) -> list[Any]:
        return self.lists.setdefault((pe_id, output), [])

    def flush_results(self) -> None:
        """Results are already where the driver wants them."""

    def extend(self, pe_id: str, output: str, items: list[Any]) -> None:
        self.result_list(pe_id, output).extend(items)

    def outputs(self, plan: Plan) -> dict[str, dict[str, list[Any]]]:
        """``{pe_id: {output: items}}`` in graph order, without empty outputs."""
        result: dict[str, dict[str, list[Any]]] = {}
        for pe_id, pe in plan.pes.items():
            for output in pe.outputconnections:
                items = self.lists.get((pe_id, output))
                if items:
                    result.setdefault(pe_id, {})[output] = items
        return result


class Mapping(ABC):
    """Base class of mappings. Subclasses set ``name``/``summary``, add their CLI options
    and implement :meth:`execute`."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    primary = True  # whether this process reports results (False on MPI ranks other than 0)
    # whether a run can be stopped midway and the process go on (False for mpi, where a
    # stop ends every rank): a streamed run whose consumer stops early then runs to its end
    stops_early: ClassVar[bool] = True
    layout: ClassVar[str] = "static"  # "dynamic": shared PEs on a work queue (dynamic/layout.py)
    worker_word: ClassVar[str] = "worker"  # what a worker is called in drawings and timing files
    # True when the launcher fixes the workers (mpiexec -n N): making the mapping object then
    # starts the transport (MPI_Init), so a plan is previewed without making one
    sized_by_launcher: ClassVar[bool] = False

    def __init__(self, options: MappingABC[str, Any] | None = None) -> None:
        self.options = dict(options or {})
        self.workers_timeline: list[tuple[float, int]] = []  # set by autoscaling mappings
        self.hosts_timeline: list[tuple[float, dict[str, int]]] = []  # set by dyn_auto_redis
        # live counters while the run goes (progress display): set before run(), see live.py
        self.board: LiveBoard | None = None

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser | Any) -> None:
        """Add this mapping's command-line options (none by default)."""

    @staticmethod
    def add_tuning_arguments(parser: argparse.ArgumentParser | Any) -> None:
        """``--batch-size`` and ``--credits``, for mappings with several workers."""
        parser.add_argument(
            "--batch-size",
            type=int,
            default=None,
            help="items per message between workers (default 1024; batches also stop at ~4 MB)",
        )
        parser.add_argument(
            "--credits",
            type=int,
            default=None,
            help="unacknowledged batches a worker may send to one PE instance (default 4)",
        )

    @staticmethod
    def add_layout_arguments(parser: argparse.ArgumentParser | Any) -> None:
        """``--original-layout``, for the static mappings (engine/placement.py)."""
        parser.add_argument(
            "--original-layout",
            action="store_true",
            help="the original's one-instance-per-worker layout where it fits (its Processes: "
            "lines); a PE may then get fewer instances with more workers",
        )

    @abstractmethod
    def num_workers(self) -> int:
        """How many workers to plan for."""

    @contextlib.contextmanager
    def setting_up(self) -> Iterator[None]:
        """Wraps loading and input parsing; MPI ranks agree there on failures (see mpi.py)."""
        yield

    def make_plan(
        self,
        graph: WorkflowGraph,
        inputs: MappingABC[Any, Any] | None,
        collect: MappingABC[str, list[str]] | None,
    ) -> Plan:
        return make_plan(
            graph,
            inputs,
            self.num_workers(),
            partitioned=bool(self.options.get("simple")),
            collect=collect,
            place_fn=static_place(self.options),
        )

    @classmethod
    def preview_plan(
        cls, options: MappingABC[str, Any], graph: WorkflowGraph, inputs: MappingABC[Any, Any] | None
    ) -> Plan:
        """The plan a run with ``options`` would follow (``--plan``), made without side
        effects: no process, no file, no MPI."""
        mapping = cls(options)
        if cls.layout == "dynamic":
            return make_plan(graph, inputs, mapping.num_workers(), place_fn=dynamic_place)
        partitioned = bool(mapping.options.get("simple"))
        return make_plan(
            graph, inputs, mapping.num_workers(), partitioned=partitioned, place_fn=static_place(options)
        )

    @abstractmethod
    def execute(self, plan: Plan, collector: ResultCollector) -> list[InstanceStats] | None:
        """Run the plan; collected outputs go to ``collector``; return per-instance stats
        (``None`` in a process that is not the primary one)."""

    def release(self) -> None:
        """Give back what making this mapping took from the process (MPI: its signal
        handlers), when the run went in another thread (``dispel4py.stream``)."""

    def run(
        self,
        graph: WorkflowGraph,
        inputs: MappingABC[Any, Any] | None,
        *,
        collect: MappingABC[str, list[str]] | None = None,
        collector: ResultCollector | None = None,
    ) -> RunResult | None:

        ensure_pe_log_output()  # self.log lines show in a program that configured no logging
        plan = self.make_plan(graph, inputs, collect)
        layout = layout_of(plan)
        if _log.isEnabledFor(logging.DEBUG) and self.primary:
            _log.debug("placement: %s", _placement_text(plan, layout))
        collector = collector if collector is not None else ResultCollector()
        if self.board is not None:
            self.board.start(plan, self.name)
        recorder = self.options.get("provenance")  # recording.RecorderFactory, or None
        if recorder is not None and self.primary:
            recorder.start_run(plan)  # the workflow_run record, before any worker starts
        start = time.perf_counter()
        try:
            stats = self.execute(plan, collector)
        finally:
            if recorder is not None and self.primary:
                recorder.end_run()
        if stats is None:  # not the primary process (an MPI rank other than 0)
            return None
        elapsed = time.perf_counter() - start
        if self.board is not None:
            self.board.finish(stats)
        result = RunResult(
            outputs=Outputs(collector.outputs(plan), plan.order),
            stats=sorted(stats, key=lambda s: s.instance),
            mapping=self.name,
            elapsed_s=elapsed,
            processes=plan.describe(),
            workers_timeline=self.workers_timeline,
            hosts_timeline=self.hosts_timeline,
            workers=plan.num_workers,
            layout=layout,
        )
        result.bottleneck = find_bottleneck(plan, result)
        return result


def static_place(options: MappingABC[str, Any]) -> Callable[..., Placement]:
    """The static placement ``options`` ask for: ``--original-layout`` or the default."""
    return functools.partial(place, original_layout=bool(options.get("original_layout")))


def _placement_text(plan: Plan, layout: dict[str, list[tuple[int, int]]]) -> str:
    """``-vv``: the layout chosen and where each instance runs."""
    kind = "partitioned" if plan.placement.partitioned else "one instance per worker"
    if any(w < 0 for pairs in layout.values() for _, w in pairs):
        kind = "dynamic (worker -1: shared, any worker)"
    where = "; ".join(f"{pe} -> " + ", ".join(f"{i}@w{w}" for i, w in pairs) for pe, pairs in layout.items())
    return f"{plan.num_workers} worker(s), {kind}: {where}"
