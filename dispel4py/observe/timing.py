"""The files of the ``timed_*`` mappings, with the original's names and columns (spec §7.2),
so that analysis scripts written for the original keep working.

Everything is computed from the engine's own counters (``InstanceStats``: calls and, in a
timed run, the seconds of each ``process`` call) and the plan, and written once by the
driver (MPI rank 0) after the run; the original wrapped every PE in a timing proxy that
wrote a file per instance from each worker. Under ``--timing-dir`` (default ``timings``),
with ``P`` = ``--timing-prefix`` (default ``monitor``) and ``ID`` = ``--run-id``:

* ``P_shape_runID.json``, ``P_concrete_shape_runID.json``: abstract and concrete graph;
* ``P_<pe>_rank<r>_runID.csv`` (``pe_id,rank,count,total_secs,avg_secs``) and
  ``P_iterations_<pe>_rank<r>_runID.csv`` (``pe_id,rank,instance_id,iteration_index,
  iteration_secs``) per instance;
* ``P_summary_runID.csv`` per PE, ``P_instances_runID.csv`` per instance,
  ``P_iteration_timings_runID.csv`` every iteration, ``P_iteration_timings_summary_runID.csv``
  per instance from the iterations; percentiles interpolate linearly;
* ``P_abstract_graph_runID.png`` / ``P_concrete_graph_runID.png`` (Graphviz), or ``.svg``
  when Graphviz is not installed (drawn by ``dispel4py.drawing``).

A rank is an instance id; an instance id is ``<pe>@<rank>``. The options and their checks
live in ``timing_options.py``, the CSV/JSON writing in ``timing_files.py``; this module
makes the shapes and figures and says what it wrote.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from dispel4py.drawing import Drawing, write_drawing
from dispel4py.engine.plan import Plan
from dispel4py.engine.result import RunResult
from dispel4py.observe.concrete import communication, concrete_drawing, concrete_edges
from dispel4py.observe.timing_files import latency_stats, percentile, write_json, write_tables
from dispel4py.observe.timing_options import TimingOptions, add_timing_arguments, safe_token

__all__ = [
    "TimingOptions",
    "add_timing_arguments",
    "abstract_shape",
    "concrete_shape",
    "percentile",
    "latency_stats",
    "safe_token",
    "write_abstract_shape",
    "write_run_files",
]

_log = logging.getLogger("dispel4py.timing")


# -- shapes ---------------------------------------------------------------------------
def abstract_shape(plan: Plan) -> dict[str, Any]:
    return {
        "nodes": sorted(plan.pes),
        "edges": [
            {"from": e.src, "to": e.dst, "from_connection": e.out, "to_connection": e.inp} for e in plan.edges
        ],
        "topological_order": list(plan.order),
    }


def concrete_shape(plan: Plan) -> dict[str, Any]:
    """Instances ``<pe>@<rank>`` and every path an item may take between them."""
    nodes = [
        {"instance_id": f"{pe}@{iid}", "pe_id": pe, "rank": iid, "worker": plan.worker_of(iid)}
        for pe in plan.order
        for iid in plan.instances[pe]
    ]
    edges = []
    for src, dst, edge in concrete_edges(plan):
        edges.append(
            {
                "from": f"{edge.src}@{src}",
                "to": f"{edge.dst}@{dst}",
                "from_pe_id": edge.src,
                "to_pe_id": edge.dst,
                "from_rank": src,
                "to_rank": dst,
                "from_connection": edge.out,
                "to_connection": edge.inp,
                "communication": communication(edge.grouping),
            }
        )
    return {
        "processes": {pe: list(iids) for pe, iids in plan.instances.items()},
        "nodes": sorted(nodes, key=lambda row: row["instance_id"]),
        "edges": edges,
        "topological_order": [f"{pe}@{iid}" for pe in plan.order for iid in plan.instances[pe]],
    }


def _shape_lines(kind: str, shape: dict[str, Any]) -> list[str]:
    nodes = [n["instance_id"] if isinstance(n, dict) else n for n in shape["nodes"]]
    return [
        f"{kind} nodes: {nodes}",
        f"{kind} edges: {[(e['from'], e['to']) for e in shape['edges']]}",
        f"{kind} topological order: {shape['topological_order']}",
    ]


# -- writing --------------------------------------------------------------------------
def write_abstract_shape(timing: TimingOptions, plan: Plan) -> None:
    """Before the run, as the original: the abstract shape (and ``--print-shape``)."""
    shape = abstract_shape(plan)
    path = timing.path("shape_file", timing.name("shape", "json"))
    write_json(path, "--shape-file", {"run_id": timing.run_id, **shape})
    _log.info("Timing monitor enabled for %d PEs (run_id=%s).", len(plan.pes), timing.run_id)
    if timing.print_shape:
        for line in _shape_lines("Abstract", shape):
            _log.info("%s", line)
    _log.info("Abstract workflow shape written to: %s", path)


def _figure(timing: TimingOptions, dest: str, middle: str, drawing: Drawing) -> Path:
    fmt = timing.figure_format(dest)
    path = timing.path(dest, timing.name(middle, fmt))
    write_drawing(drawing, path, fmt, timing.flag(dest))
    return path


def write_run_files(
    timing: TimingOptions, plan: Plan, result: RunResult, abstract: Drawing | None, worker_word: str
) -> list[Path]:
    """After the run: every file but the abstract shape; returns their paths."""
    shape = concrete_shape(plan)
    written = [
        write_json(
            timing.path("concrete_shape_file", timing.name("concrete_shape", "json")),
            "--concrete-shape-file",
            {"run_id": timing.run_id, **shape},
        )
    ]
    if timing.print_shape:
        for line in _shape_lines("Concrete", shape):
            _log.info("%s", line)
    _log.info("Concrete instance shape written to: %s", written[-1])
    for what, path in write_tables(timing, result.stats):
        written.append(path)
        _log.info("%s written to: %s", what, path)
    if timing.figures:
        figures = [("concrete_figure_file", "concrete_graph", concrete_drawing(plan, worker_word))]
        if abstract is not None:
            figures.insert(0, ("abstract_figure_file", "abstract_graph", abstract))
        for dest, middle, drawing in figures:
            written.append(_figure(timing, dest, middle, drawing))
            _log.info(
                "%s figure written to: %s",
                "Abstract workflow" if "abstract" in dest else "Concrete instance",
                written[-1],
            )
    return written
