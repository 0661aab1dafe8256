"""The original ``dispel4py.new.multi_process.process(workflow, inputs, args)``."""

from __future__ import annotations

import queue
from typing import Any

from dispel4py.api import run_in_place
from dispel4py.workflow_graph import WorkflowGraph

__all__ = ["process"]

STATUS_TERMINATED = 12


def process(workflow: WorkflowGraph, inputs: dict[Any, Any], args: Any = None) -> queue.Queue | None:
    """Run on ``multi`` with ``args.num`` workers (``args.simple`` forces partitioning).

    As in the original, when ``args.results`` is set the collected outputs are returned as a
    queue of ``(pe_id, output, item)`` tuples ending with ``12`` (STATUS_TERMINATED).
    """
    options: dict[str, Any] = {
        "num": getattr(args, "num", None),
        "simple": bool(getattr(args, "simple", False)),
    }
    result = run_in_place(workflow, inputs, "multi", **options)
    if result is None or not getattr(args, "results", False):
        return None
    results: queue.Queue = queue.Queue()
    for pe_id, outputs in result.outputs.items():
        for output, items in outputs.items():
            for item in items:
                results.put((pe_id, output, item))
    results.put(STATUS_TERMINATED)
    return results
