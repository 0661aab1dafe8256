"""``timed_simple``, ``timed_multi``, ``timed_mpi``: a mapping with timing on.

Each is its base mapping unchanged plus the original's monitoring flags (``--timing-dir``,
``--run-id``, ...): the engine times every ``process`` call (``Tuning.timings``, off in
normal runs) and the driver writes the original's files (``dispel4py/observe/timing.py``). The
abstract shape is written before the run, as the original did, so a folder that cannot
be written is reported (exit 2) before anything runs; on MPI, rank 0 alone writes and
every rank learns of its failure.
"""

from __future__ import annotations

from collections.abc import Mapping as MappingABC
from typing import Any

from dispel4py.drawing import Drawing
from dispel4py.engine.plan import Plan
from dispel4py.engine.result import RunResult
from dispel4py.mappings.base import Mapping
from dispel4py.mappings.mpi.mapping import MPIMapping
from dispel4py.mappings.processes.multi import MultiMapping
from dispel4py.mappings.simple import SimpleMapping
from dispel4py.observe.timing import (
    TimingOptions,
    add_timing_arguments,
    write_abstract_shape,
    write_run_files,
)
from dispel4py.workflow_graph import WorkflowGraph, abstract_drawing

__all__ = ["TimedSimpleMapping", "TimedMultiMapping", "TimedMPIMapping", "timing_options_from_args"]


class _Timed(Mapping):
    """Mixed in before a mapping class: the same run, timed, with the timing files."""

    def __init__(self, options: MappingABC[str, Any] | None = None) -> None:
        super().__init__(options)
        self.options["timings"] = True  # read by Tuning.from_options
        self._timing: TimingOptions | None = None
        self._abstract: Drawing | None = None
        self._plan: Plan | None = None

    @classmethod
    def add_arguments(cls, parser: Any) -> None:
        super().add_arguments(parser)
        add_timing_arguments(parser)

    def make_plan(
        self,
        graph: WorkflowGraph,
        inputs: MappingABC[Any, Any] | None,
        collect: MappingABC[str, list[str]] | None,
    ) -> Plan:
        wants_figure = self.primary and not self.options.get("no_graph_figures")
        abstract = abstract_drawing(graph) if wants_figure else None  # composites still whole
        plan = super().make_plan(graph, inputs, collect)
        with self.setting_up():  # on MPI, every rank learns whether rank 0 could write
            if self.primary:
                self._timing = TimingOptions.from_options(self.options)
                write_abstract_shape(self._timing, plan)
        self._abstract, self._plan = abstract, plan
        return plan

    def run(
        self,
        graph: WorkflowGraph,
        inputs: MappingABC[Any, Any] | None,
        *,
        collect: MappingABC[str, list[str]] | None = None,
        collector: Any = None,
    ) -> RunResult | None:
        result = super().run(graph, inputs, collect=collect, collector=collector)
        if result is not None and self._timing is not None and self._plan is not None:
            write_run_files(self._timing, self._plan, result, self._abstract, self.worker_word)
        return result


class TimedSimpleMapping(_Timed, SimpleMapping):
    name = "timed_simple"
    summary = "simple with per-PE timing files"


class TimedMultiMapping(_Timed, MultiMapping):
    name = "timed_multi"
    summary = "multi with per-PE timing files"


class TimedMPIMapping(_Timed, MPIMapping):
    name = "timed_mpi"
    summary = "mpi with per-PE timing files"


_OPTION_NAMES = (
    "timing_dir",
    "timing_prefix",
    "timing_run_id",
    "summary_file",
    "instance_summary_file",
    "iteration_summary_file",
    "iteration_latency_summary_file",
    "shape_file",
    "concrete_shape_file",
    "abstract_figure_file",
    "concrete_figure_file",
    "no_graph_figures",
    "print_shape",
)


def timing_options_from_args(args: Any) -> dict[str, Any]:
    """The timing options set on an original-style ``args`` namespace (for the
    ``dispel4py.new.timed_*_process`` shims)."""
    return {name: getattr(args, name) for name in _OPTION_NAMES if getattr(args, name, None) is not None}
