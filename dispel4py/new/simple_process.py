"""The original ``dispel4py.new.simple_process`` library entry points."""

from __future__ import annotations

from typing import Any

from dispel4py.api import run_in_place
from dispel4py.workflow_graph import WorkflowGraph

__all__ = ["process_and_return", "process"]


def process_and_return(
    workflow: WorkflowGraph,
    inputs: dict[Any, Any],
    resultmappings: dict[str, list[str]] | None = None,
    args: Any = None,
) -> dict[str, dict[str, list[Any]]]:
    """Run on ``simple``; return ``{pe_id: {output: [items]}}`` of the collected outputs."""
    result = run_in_place(workflow, inputs, "simple", collect=resultmappings)
    assert result is not None  # simple always returns a result
    return result.outputs


def process(
    workflow: WorkflowGraph,
    inputs: dict[Any, Any],
    args: Any = None,
    resultmappings: dict[str, list[str]] | None = None,
) -> None:
    """Run on ``simple`` and print ``Outputs: {...}`` as the original did."""
    from dispel4py.cli import print_outputs

    print_outputs(process_and_return(workflow, inputs, resultmappings, args))
