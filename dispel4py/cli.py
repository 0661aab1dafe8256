"""The ``dispel4py`` command: the only place that parses arguments, prints and exits.

    dispel4py <mapping> <workflow> [-i N | -d JSON | -f FILE] [-a GRAPH] [mapping options]

Results (``Outputs: {...}``) go to stdout, diagnostics to stderr. Exit codes: 0 success,
1 workflow/transport failure, 2 usage or graph error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from dispel4py import __version__
from dispel4py.errors import Dispel4PyError, UsageError, WorkflowFailed

__all__ = ["main", "get_parser", "render_outputs", "print_outputs", "format_stats"]

_log = logging.getLogger("dispel4py.cli")

# common options that take a value (so their value is not mistaken for the mapping name)
_VALUE_OPTIONS = {"-a", "--attr", "-f", "--file", "-d", "--data", "-i", "--iter"}


def _common_parser(mapping: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dispel4py",
        description="Run a dispel4py workflow on a mapping (simple, multi, zmq_multi, mpi, ...).",
        epilog="Mappings and their status: dispel4py --list-mappings",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"dispel4py {__version__}")
    parser.add_argument(
        "--list-mappings", action="store_true", help="list the mappings, their status and needs"
    )
    parser.add_argument("target", metavar="mapping", help="mapping name, e.g. simple or multi")
    parser.add_argument("module", metavar="workflow", help="workflow module name or .py file")
    parser.add_argument("-a", "--attr", help="name of the graph variable in the workflow module")
    parser.add_argument("-f", "--file", help="JSON file with the inputs (overrides -d and -i)")
    parser.add_argument("-d", "--data", help="inputs as JSON, e.g. '{\"TestProducer0\": 5}'")
    parser.add_argument("-i", "--iter", type=int, default=1, help="iterations of every source PE (default 1)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more diagnostics (-vv: debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only results and errors")
    parser.add_argument(
        "--stats", action="store_true", help="print a table per PE (instances, items, busy time)"
    )
    parser.add_argument(
        "--provenance-config",
        dest="provenance",
        nargs="?",
        const="inline",
        help="accepted for compatibility; provenance is not supported in this version",
    )
    if mapping is not None:
        from dispel4py.mappings import get_mapping

        group = parser.add_argument_group(f"options of the {mapping} mapping")
        get_mapping(mapping).add_arguments(group)
    return parser


def get_parser() -> argparse.ArgumentParser:
    """The full parser with every available mapping's options (for the man page)."""
    from dispel4py.mappings import BUILTIN, get_mapping, mapping_status

    parser = _common_parser(None)
    taken = {s for action in parser._actions for s in action.option_strings}
    for name in BUILTIN:
        if mapping_status(name) != "available":
            continue
        group = parser.add_argument_group(f"options of the {name} mapping")
        probe = argparse.ArgumentParser(add_help=False)
        get_mapping(name).add_arguments(probe)
        for action in probe._actions:
            free = [s for s in action.option_strings if s not in taken]
            if not free:
                continue
            action.option_strings = free
            taken.update(free)
            group._add_action(action)
    return parser


def _find_mapping(argv: Sequence[str]) -> str | None:
    skip = False
    for token in argv:
        if skip:
            skip = False
        elif token in _VALUE_OPTIONS:
            skip = True
        elif not token.startswith("-"):
            return token
    return None


def _configure_logging(verbose: int, quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("dispel4py")
    root.handlers[:] = [handler]
    root.propagate = False
    if quiet:
        root.setLevel(logging.ERROR)
    elif verbose >= 2:
        root.setLevel(logging.DEBUG)
    elif verbose == 1:
        root.setLevel(logging.INFO)
    else:
        root.setLevel(logging.WARNING)
        logging.getLogger("dispel4py.pe").setLevel(logging.INFO)  # user self.log() is shown


def render_outputs(outputs: dict[str, Any]) -> str:
    return f"Outputs: {outputs}"


def print_outputs(outputs: dict[str, Any]) -> None:
    """The results line on stdout (also used by the original ``simple_process.process``)."""
    print(render_outputs(outputs), flush=True)


def format_stats(result: Any) -> str:
    rows = [("PE", "instances", "items in", "items out", "busy s")]
    for pe_id, row in result.per_pe().items():
        rows.append(
            (
                pe_id,
                str(row["instances"]),
                str(row["items_in"]),
                str(row["items_out"]),
                f"{row['busy_s']:.3f}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = [
        "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths)))
        for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _list_mappings() -> int:
    from dispel4py.mappings import available_mappings

    rows = available_mappings()
    width = max(len(r[0]) for r in rows)
    status_width = max(len(r[1]) for r in rows)
    for name, status, summary in rows:
        print(f"{name.ljust(width)}  {status.ljust(status_width)}  {summary}")
    return 0


def _run(args: argparse.Namespace, mapping_options: dict[str, Any]) -> int:
    import dispel4py.api as api
    from dispel4py.inputs import parse_cli_inputs, roots
    from dispel4py.loading import load_workflow
    from dispel4py.mappings import get_mapping

    if args.provenance is not None:
        _log.warning(
            "--provenance-config is accepted for compatibility but ignored: provenance is not supported"
        )
    mapping_cls = get_mapping(args.target)
    mapping = mapping_cls(api.mapping_options(mapping_cls, mapping_options))
    if not mapping.primary:  # MPI ranks other than 0: only errors and PE logs
        logging.getLogger("dispel4py.cli").setLevel(logging.ERROR)
    with mapping.setting_up():
        graph = load_workflow(args.module, args.attr)
        inputs = parse_cli_inputs(args.data, args.file)
        if inputs is None:
            if args.iter < 0:
                raise UsageError(f"-i/--iter must not be negative (got {args.iter})")
            _log.warning("Processing %d iteration%s.", args.iter, "" if args.iter == 1 else "s")
            inputs = {pe.id: args.iter for pe in roots(graph)}
    result = mapping.run(graph, inputs)
    if result is None:  # a non-root MPI rank: rank 0 prints
        return 0
    _log.info(result.processes)
    print_outputs(result.outputs)
    if args.stats:
        print(format_stats(result), file=sys.stderr)
    _log.info("ELAPSED TIME: %s", result.elapsed_s)
    return 0


def _report(exc: BaseException) -> None:
    if getattr(exc, "quiet", False):
        return
    if isinstance(exc, WorkflowFailed):
        print(f"dispel4py: error: {exc}", file=sys.stderr)
        if exc.user_traceback:
            print(exc.user_traceback.rstrip(), file=sys.stderr)
    else:
        print(f"dispel4py: error: {exc}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dispel4py`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--list-mappings" in argv or argv[:1] == ["mappings"]:
        return _list_mappings()
    try:
        mapping = _find_mapping(argv)
        parser = _common_parser(mapping if mapping and not mapping.startswith("-") else None)
    except Dispel4PyError as exc:
        if "-h" in argv or "--help" in argv:
            _common_parser(None).print_help()
            return 0
        _report(exc)
        return exc.exit_code
    args = parser.parse_args(argv)
    _configure_logging(args.verbose, args.quiet)
    common = set(vars(_common_parser(None).parse_args([args.target, args.module])))
    mapping_options = {k: v for k, v in vars(args).items() if k not in common}
    try:
        return _run(args, mapping_options)
    except KeyboardInterrupt:
        print("dispel4py: interrupted", file=sys.stderr)
        return 130
    except Dispel4PyError as exc:
        _report(exc)
        return exc.exit_code


def console_main() -> None:
    sys.exit(main())
