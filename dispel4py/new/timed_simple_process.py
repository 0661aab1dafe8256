"""The original ``dispel4py.new.timed_simple_process.process(workflow, inputs, args)``:
``simple`` with timing files (see ``dispel4py/observe/timing.py``)."""

from __future__ import annotations

from typing import Any

from dispel4py.api import run
from dispel4py.mappings.timed import timing_options_from_args
from dispel4py.workflow_graph import WorkflowGraph

__all__ = ["process"]


def process(workflow: WorkflowGraph, inputs: dict[Any, Any], args: Any = None) -> dict[str, Any] | None:
    """Run on ``timed_simple`` with the timing options set on ``args`` (``timing_dir``,
    ``timing_prefix``, ``timing_run_id``, ...); return the outputs (None on MPI ranks but 0)."""
    options: dict[str, Any] = {}
    result = run(workflow, inputs, "timed_simple", **options, **timing_options_from_args(args))
    return None if result is None else result.outputs
