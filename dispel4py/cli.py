"""The ``dispel4py`` command: the only place that parses arguments, prints and exits.

    dispel4py <mapping> <workflow> [-i N | -d JSON | -f FILE] [-a GRAPH] [mapping options]

Results (``Outputs: {...}``) go to stdout, diagnostics to stderr. Exit codes: 0 success,
1 workflow/transport failure, 2 usage or graph error, 130 interrupted (Ctrl-C),
143 terminated (SIGTERM), 129 hangup (SIGHUP).
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from dispel4py import __version__
from dispel4py.errors import Dispel4PyError, UsageError, WorkflowFailed

__all__ = ["main", "get_parser", "render_outputs", "print_outputs", "format_stats"]

_log = logging.getLogger("dispel4py.cli")


def _common_parser(mapping: str | None) -> argparse.ArgumentParser:
    from dispel4py._other_options import OptionParser, add_other_options
    from dispel4py.cli_observe import add_observation_arguments
    from dispel4py.cli_replay import add_replay_arguments

    parser = OptionParser(
        prog="dispel4py",
        description="Run a dispel4py workflow on a mapping (simple, multi, zmq_multi, mpi, ...).",
        epilog="Mappings and their status: dispel4py --list-mappings. "
        "Draw a workflow: dispel4py draw --help.",
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
        "--log-to-stderr",
        action="store_true",
        help="PE self.log() lines to stderr (default: stdout, with the results, as the original)",
    )
    parser.add_argument(
        "--provenance-config",
        dest="provenance",
        nargs="?",
        const="inline",
        help="accepted for compatibility; provenance is not supported in this version",
    )
    add_observation_arguments(parser)  # --progress, -o/--output-json, --stats-json, --log-*, --plan
    add_replay_arguments(parser)  # --no-replay-file, --replay-dir
    if mapping is not None:
        from dispel4py.mappings import get_mapping

        group = parser.add_argument_group(f"options of the {mapping} mapping")
        get_mapping(mapping).add_arguments(group)
    add_other_options(parser, mapping)  # accepted, ignored with a warning (_other_options.py)
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


# How options take values, so that an option's value before the mapping name is not taken for
# the mapping (``dispel4py -n 2 multi wf.py``). Read from the parsers themselves: the common
# one and every mapping's ``add_arguments``, never from a hand-written list.
_FLAG, _VALUE, _OPTIONAL, _AMBIGUOUS = "flag", "value", "optional value", "ambiguous"
_MAPPING_OPTIONS: dict[str, dict[str, dict[str, str]]] = {}  # "builtin"/"plugin" -> name -> kinds


def _option_kinds(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each option string of ``parser`` -> _FLAG, _VALUE or _OPTIONAL (``nargs="?"``)."""
    kinds: dict[str, str] = {}
    for action in parser._actions:
        kind = _FLAG if action.nargs == 0 else _OPTIONAL if action.nargs == "?" else _VALUE
        kinds.update(dict.fromkeys(action.option_strings, kind))
    return kinds


def _class_option_kinds(mapping_cls: Any) -> dict[str, str]:
    probe = argparse.ArgumentParser(add_help=False)
    mapping_cls.add_arguments(probe)
    return _option_kinds(probe)


def _mapping_options(family: str) -> dict[str, dict[str, str]]:
    """Option kinds per mapping name, built-ins or plug-ins, computed once.

    Built-in mapping modules are imported directly (not through ``get_mapping``): they import
    their optional dependencies (mpi4py, zmq, multiprocess) only when a run starts, so this
    works, and stays cheap, whether or not those are installed.
    """
    if family not in _MAPPING_OPTIONS:
        import importlib

        from dispel4py.mappings import BUILTIN, _plugins

        found: dict[str, dict[str, str]] = {}
        if family == "builtin":
            for name, info in BUILTIN.items():
                if info.target is None:
                    continue
                module_name, _, class_name = info.target.partition(":")
                try:
                    mapping_cls = getattr(importlib.import_module(module_name), class_name)
                except ImportError:  # get_mapping reports it if this mapping is the one asked for
                    continue
                found[name] = _class_option_kinds(mapping_cls)
        else:
            for name, entry_point in _plugins().items():
                try:
                    found[name] = _class_option_kinds(entry_point.load())
                except Exception as exc:  # get_mapping reports it if this plug-in is the one asked for
                    _log.debug("cannot read the options of mapping plug-in %s: %s", name, exc)
        _MAPPING_OPTIONS[family] = found
    return _MAPPING_OPTIONS[family]


def _mapping_option_kind(option: str) -> str | None:
    """How the mappings that define ``option`` take its value (plug-ins only if no built-in does)."""
    for family in ("builtin", "plugin"):
        kinds = {k[option] for k in _mapping_options(family).values() if option in k}
        if kinds:
            return kinds.pop() if len(kinds) == 1 else _AMBIGUOUS
    return None


def _classify(token: str, common: dict[str, str]) -> tuple[str | None, list[str]]:
    """(kind, mapping options used) for an argument starting with '-'; kind None: unknown.

    Mirrors argparse: ``--opt=value``, ``-n4`` and ``-sn 4`` (flags and a last short option
    that takes the next argument).
    """
    name = token.split("=", 1)[0] if token.startswith("--") else token
    kind = common.get(name) or _mapping_option_kind(name)
    if kind is not None or token.startswith("--") or len(token) <= 2:
        mapping_option = [name] if kind is not None and name not in common else []
        return (_FLAG if name != token and kind is not None else kind), mapping_option
    used: list[str] = []
    for position, char in enumerate(token[1:], start=2):
        option = "-" + char
        kind = common.get(option) or _mapping_option_kind(option)
        if kind is None:
            return None, used
        if kind == _AMBIGUOUS:
            return kind, [*used, option]
        if option not in common:
            used.append(option)
        if kind != _FLAG:
            return (_FLAG if position < len(token) else kind), used  # -n4: the value is attached
    return _FLAG, used


def _find_mapping(argv: Sequence[str]) -> str | None:
    """The mapping name: the first positional argument, skipping the values of options.

    Options may come before the mapping name (``dispel4py -n 2 multi wf.py``); argparse,
    given that mapping's parser, then reads them wherever they are.
    """
    common = _option_kinds(_common_parser(None))
    before: list[str] = []  # mapping options given before the mapping name
    unknown: str | None = None
    index = 0
    while index < len(argv):
        token = argv[index]
        if token == "--":
            return argv[index + 1] if index + 1 < len(argv) else None
        if token == "-" or not token.startswith("-"):
            _check_options_before(token, before, unknown)
            return token
        kind, used = _classify(token, common)
        before += used
        if kind == _AMBIGUOUS:
            raise UsageError(
                f"option '{token}' before the mapping name takes a value in some mappings and not "
                "in others; put mapping options after the mapping name and the workflow: "
                f"dispel4py <mapping> <workflow> {token} ..."
            )
        if kind is None:
            unknown = unknown or token
        nxt = argv[index + 1] if index + 1 < len(argv) else None
        skip = kind == _VALUE or (kind == _OPTIONAL and nxt is not None and not nxt.startswith("-"))
        index += 2 if skip else 1
    return None


def _check_options_before(name: str, before: list[str], unknown: str | None) -> None:
    """An unknown option before an unknown mapping name: say both at once."""
    if not before and unknown is None:
        return
    from dispel4py.errors import did_you_mean
    from dispel4py.mappings import available_mappings, resolve_name

    names = [row[0] for row in available_mappings()]
    mapping = resolve_name(name)
    if mapping not in names:
        if unknown is None:
            return  # get_mapping reports the unknown name, with a did-you-mean
        raise UsageError(
            f"'{name}' is not a mapping{did_you_mean(name, names)} and '{unknown}' is not an option "
            "of dispel4py or of any mapping; write dispel4py <mapping> <workflow> [options], e.g. "
            f"dispel4py multi workflow.py -n 4 (mappings: {', '.join(names)})"
        )
    # options of other mappings are accepted and ignored with a warning (_other_options.py)


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
        logging.getLogger("dispel4py.timing").setLevel(logging.INFO)  # timed_*: the files written


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
    if result.workers_timeline:
        steps = ", ".join(f"{t:.2f} s: {n}" for t, n in result.workers_timeline)
        lines.append(f"active workers (autoscaling): {steps}")
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
    from dispel4py._other_options import warn_ignored_options
    from dispel4py.cli_observe import (
        check_observation_arguments,
        configure_log_output,
        observing,
        outputs_to_stdout,
        print_hint,
        show_plan,
        write_run_files,
    )
    from dispel4py.cli_replay import configure_replay
    from dispel4py.inputs import parse_cli_inputs, roots
    from dispel4py.loading import load_workflow
    from dispel4py.mappings import get_mapping

    check_observation_arguments(args)  # files that cannot be written: exit 2 before anything runs
    configure_replay(args)  # where a failing call is saved (cli_replay.py), for the workers too
    configure_log_output(args)
    mapping_cls = get_mapping(args.target)
    if args.plan:  # before the mapping is made: a dry run starts nothing (no MPI either)
        return show_plan(args, mapping_cls, api.mapping_options(mapping_cls, mapping_options))
    mapping = mapping_cls(api.mapping_options(mapping_cls, mapping_options))
    if not mapping.primary:  # MPI ranks other than 0: only errors and PE logs
        logging.getLogger("dispel4py.cli").setLevel(logging.ERROR)
    if args.provenance is not None:  # after the line above: said once, not once per MPI rank
        _log.warning(
            "--provenance-config is accepted for compatibility but ignored: provenance is not supported"
        )
    warn_ignored_options(args.target, args.ignored_options)
    with mapping.setting_up():
        graph = load_workflow(args.module, args.attr)
        inputs = parse_cli_inputs(args.data, args.file)
        if inputs is None:
            if args.iter < 0:
                raise UsageError(f"-i/--iter must not be negative (got {args.iter})")
            _log.warning("Processing %d iteration%s.", args.iter, "" if args.iter == 1 else "s")
            inputs = {pe.id: args.iter for pe in roots(graph)}
    with observing(args, mapping):  # live progress on stderr, or -v progress lines
        try:
            result = mapping.run(graph, inputs)
        except Dispel4PyError as exc:  # a run that went on past failures (dead-letter) has outputs
            partial = getattr(exc, "outputs", None)
            if partial is not None:
                _print_partial_outputs(args, partial)
            raise
    if result is None:  # a non-root MPI rank: rank 0 prints
        return 0
    _log.info(result.processes)
    if outputs_to_stdout(args):
        print_outputs(result.outputs)
    if args.stats:
        print(format_stats(result), file=sys.stderr)
        print_hint(result)
    write_run_files(args, result)
    _log.info("ELAPSED TIME: %s", result.elapsed_s)
    return 0


def _print_partial_outputs(args: argparse.Namespace, outputs: dict[str, Any]) -> None:
    """What a run produced although some of its items were given up (``--on-error
    dead-letter``): on stdout or ``-o`` as usual; the error follows on stderr, exit 1."""
    from dispel4py.cli_observe import outputs_to_stdout, write_outputs_json

    if outputs_to_stdout(args):
        print_outputs(outputs)
    write_outputs_json(args, outputs)


def _report(exc: BaseException) -> None:
    from dispel4py.replay import replay_hint

    if getattr(exc, "quiet", False):
        return
    if isinstance(exc, WorkflowFailed):
        print(f"dispel4py: error: {exc}", file=sys.stderr)
        if exc.user_traceback:
            print(exc.user_traceback.rstrip(), file=sys.stderr)
        hint = replay_hint(exc)  # the saved failing call: dispel4py replay FILE
        if hint:
            print(hint, file=sys.stderr)
    else:
        print(f"dispel4py: error: {exc}", file=sys.stderr)


def _stop_signals(target: str) -> Any:
    """For the length of a run: SIGTERM/SIGHUP stop it like Ctrl-C (one line, exit 143/129,
    workers stopped on the way out) if the mapping asks for it (``stops_on_signals``: the
    worker pools do); other mappings keep the default action (mpiexec owns its ranks)."""
    import contextlib

    from dispel4py.mappings import get_mapping
    from dispel4py.signals import stop_on_signals

    if getattr(get_mapping(target), "stops_on_signals", False):
        return stop_on_signals()
    return contextlib.nullcontext()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dispel4py`` console script; returns the exit code."""
    from dispel4py._pe_logs import route_pe_logs
    from dispel4py.signals import Terminated

    argv = list(sys.argv[1:] if argv is None else argv)
    if "--list-mappings" in argv or argv[:1] == ["mappings"]:
        return _list_mappings()
    if argv[:1] == ["worker"]:  # dispel4py worker --redis-url URL: join a Redis run (worker_cli.py)
        from dispel4py.worker_cli import main as worker_main

        return worker_main(argv[1:])
    if argv[:1] == ["plan"]:  # dispel4py plan <mapping> <workflow> [-n N]: the same as --plan
        argv = [*argv[1:], "--plan"]
    if argv[:1] == ["draw"]:
        from dispel4py.cli_draw import main as draw_main

        return draw_main(argv[1:])
    if argv[:1] == ["replay"]:  # dispel4py replay FILE [--pdb]: a failed run's saved call
        from dispel4py.cli_replay import main as replay_main

        return replay_main(argv[1:])
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
    route_pe_logs(to_stderr=args.log_to_stderr, quiet=args.quiet)
    common = set(vars(_common_parser(None).parse_args([args.target, args.module])))
    mapping_options = {k: v for k, v in vars(args).items() if k not in common}
    try:
        with _stop_signals(args.target):
            return _run(args, mapping_options)
    except Terminated as exc:
        print(f"dispel4py: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("dispel4py: interrupted", file=sys.stderr)
        return 130
    except Dispel4PyError as exc:
        _report(exc)
        return exc.exit_code


def console_main() -> None:
    from dispel4py.signals import stacks_on_sigusr1

    stacks_on_sigusr1()
    try:
        code = main()
    except BaseException:  # a bug of ours: its traceback follows, and no rank may be left waiting
        _end_mpi_job_if_failed_early(1)
        raise
    if code:
        _end_mpi_job_if_failed_early(code)
    # nothing of the run is collected any more: spare the interpreter's last collection
    # (~20 ms with redis-py loaded), which only walks objects that die with the process
    gc.freeze()
    sys.exit(code)


def _end_mpi_job_if_failed_early(code: int) -> None:
    """Under mpiexec (hydra gives ``PMI_FD``), see ``_mpi_hydra.end_mpi_job_started_without_us``."""
    if os.environ.get("PMI_FD"):
        from dispel4py.mappings._mpi_hydra import end_mpi_job_started_without_us

        end_mpi_job_started_without_us(code)
