"""``dispel4py draw``: draw a workflow, abstract or as a mapping would run it.

    dispel4py draw <workflow> [-a GRAPH] [-o FILE.dot|.mmd|.svg|.png] [--format FMT]
                   [--concrete MAPPING [-n N] [-s]]

Without ``-o`` the drawing goes to stdout (DOT unless ``--format`` says otherwise). Errors
are one line on stderr and exit code 2, like the rest of the CLI.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dispel4py import drawing
from dispel4py.api import mapping_options
from dispel4py.engine.loading import find_graph, load_module
from dispel4py.engine.plan import Plan, make_plan
from dispel4py.errors import Dispel4PyError, UsageError
from dispel4py.mappings import get_mapping
from dispel4py.observe.concrete import concrete_drawing
from dispel4py.workflow_graph import WorkflowGraph, abstract_drawing

__all__ = ["main", "get_parser"]

_FORMATS = ("dot", "mmd", "svg", "png")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dispel4py draw",
        description="Draw a workflow: its PEs and ports (composites as clusters), or with "
        "--concrete the instances a mapping would run and the workers hosting them. "
        "SVG needs nothing installed; PNG needs Graphviz's dot.",
        allow_abbrev=False,
    )
    parser.add_argument("module", metavar="workflow", help="workflow module name or .py file")
    parser.add_argument("-a", "--attr", help="name of the graph variable in the workflow module")
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write to FILE; the suffix gives the format (.dot .mmd .svg .png)",
    )
    parser.add_argument("--format", choices=_FORMATS, help="the format (default: from -o, else dot)")
    parser.add_argument(
        "--concrete", metavar="MAPPING", help="draw the instances MAPPING would run, grouped by worker"
    )
    parser.add_argument("-n", "--num", type=int, help="workers (ranks for mpi) for --concrete")
    parser.add_argument("-s", "--simple", action="store_true", help="partitioned placement, for --concrete")
    return parser


def _drawing(args: argparse.Namespace) -> drawing.Drawing:
    graph = find_graph(load_module(args.module), args.module, args.attr)
    if args.concrete is None:
        if args.num is not None or args.simple:
            raise UsageError(
                "-n and -s apply to --concrete MAPPING; add --concrete, e.g. --concrete multi -n 4"
            )
        return abstract_drawing(graph)
    plan = concrete_plan(graph, args.concrete, args.num, args.simple)
    return concrete_drawing(plan, get_mapping(args.concrete).worker_word)


def concrete_plan(graph: WorkflowGraph, mapping: str, num: int | None = None, simple: bool = False) -> Plan:
    """The plan ``mapping`` would run with ``num`` workers (``-n``) and ``simple`` (``-s``),
    made without starting anything (an MPI mapping is not initialised: ``num`` is its
    world size)."""
    cls = get_mapping(mapping)
    probe = argparse.ArgumentParser(add_help=False)
    cls.add_arguments(probe)
    accepted = {action.dest for action in probe._actions}
    options: dict[str, Any] = {}
    if num is not None:
        if num < 1:
            raise UsageError(f"-n must be at least 1 (got {num})")
        dest = next((d for d in ("num", "num_processes") if d in accepted), None)
        if dest is None:
            raise UsageError(f"-n: the {cls.name} mapping runs on one worker; leave out -n")
        options[dest] = num
    if simple:
        if "simple" not in accepted:
            raise UsageError(f"-s: the {cls.name} mapping has no partitioned placement; leave out -s")
        options["simple"] = True
    if cls.sized_by_launcher:
        if num is None:
            raise UsageError(f"--concrete {mapping} needs -n N, the number of MPI ranks (as in mpiexec -n N)")
        return make_plan(graph, None, num, partitioned=simple)
    return cls.preview_plan(mapping_options(cls, options), graph, None)  # no file (timed_*), no process


def _run(args: argparse.Namespace) -> int:
    if args.output is not None:
        fmt = args.format or drawing.format_of(args.output)
        if args.format and drawing.FORMATS.get(_suffix(args.output)) not in (None, args.format):
            raise UsageError(f"-o {args.output} does not match --format {args.format}; make them agree")
    else:
        fmt = args.format or "dot"
    if fmt == "png" and drawing.graphviz() is None:  # said before the workflow is loaded
        raise drawing.graphviz_missing("PNG output")
    if args.output is None and fmt == "png" and sys.stdout.isatty():
        raise UsageError("--format png writes binary data: give -o FILE.png or redirect stdout")
    picture = _drawing(args)
    if args.output is None:
        sys.stdout.buffer.write(drawing.render(picture, fmt))
        sys.stdout.flush()
    else:
        drawing.write_drawing(picture, args.output, fmt)
    return 0


def _suffix(path: str) -> str:
    return Path(path).suffix.lower()


def main(argv: Sequence[str]) -> int:
    """``dispel4py draw ...`` (``argv`` without ``draw``); returns the exit code."""
    args = get_parser().parse_args(list(argv))
    try:
        return _run(args)
    except Dispel4PyError as exc:
        sys.stderr.write(f"dispel4py draw: error: {exc}\n")
        return exc.exit_code
