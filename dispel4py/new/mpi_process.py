"""The original ``dispel4py.new.mpi_process.process(workflow, inputs, args)``."""

from __future__ import annotations

from typing import Any

from dispel4py.api import run_in_place
from dispel4py.workflow_graph import WorkflowGraph

__all__ = ["process"]


def process(workflow: WorkflowGraph, inputs: dict[Any, Any], args: Any = None) -> dict[str, Any] | None:
    """Run on ``mpi`` (call it on every rank); rank 0 returns the outputs, others ``None``."""
    options: dict[str, Any] = {"simple": bool(getattr(args, "simple", False))}
    result = run_in_place(workflow, inputs, "mpi", **options)
    return None if result is None else result.outputs
