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

import dispel4py.provenance as prov
from dispel4py.cli.args import _common_parser, _find_mapping, get_parser, provenance_given
from dispel4py.errors import Dispel4PyError, UsageError, WorkflowFailed

__all__ = ["main", "get_parser", "render_outputs", "print_outputs", "format_stats"]

_log = logging.getLogger("dispel4py.cli")


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
    if result.hosts_timeline:
        per_host = "; ".join(
            f"{t:.2f} s: " + ", ".join(f"{h} {n}" for h, n in hosts.items())
            for t, hosts in result.hosts_timeline
        )
        lines.append(f"active workers per host (autoscaling): {per_host}")
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
    from dispel4py.cli.observe import (
        check_observation_arguments,
        configure_log_output,
        observing,
        outputs_to_stdout,
        print_hint,
        show_plan,
        write_run_files,
    )
    from dispel4py.cli.replay import configure_replay
    from dispel4py.engine.inputs import parse_cli_inputs, roots
    from dispel4py.engine.loading import load_workflow
    from dispel4py.mappings import get_mapping
    from dispel4py.mappings.options import warn_ignored_options

    check_observation_arguments(args)  # files that cannot be written: exit 2 before anything runs
    configure_replay(args)  # where a failing call is saved (cli/replay.py), for the workers too
    configure_log_output(args)
    mapping_cls = get_mapping(args.target)
    if args.plan:  # before the mapping is made: a dry run starts nothing (no MPI either)
        return show_plan(args, mapping_cls, api.mapping_options(mapping_cls, mapping_options))
    mapping = mapping_cls(api.mapping_options(mapping_cls, mapping_options))
    if not mapping.primary:  # MPI ranks other than 0: only errors and PE logs
        logging.getLogger("dispel4py.cli").setLevel(logging.ERROR)
    warn_ignored_options(args.target, args.ignored_options)
    with mapping.setting_up():
        mapping.num_workers()  # a bad -n is a usage error before the banner; far above the cores, a warning
        graph = load_workflow(args.module, args.attr)
        if prov.asked(provenance_given(args), graph):  # else nothing of provenance is loaded
            from dispel4py.cli.prov import provenance_recording

            mapping.options["provenance"] = provenance_recording(args, graph)
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
    from dispel4py.cli.observe import outputs_to_stdout, write_outputs_json

    if outputs_to_stdout(args):
        print_outputs(outputs)
    write_outputs_json(args, outputs)


def _report(exc: BaseException) -> None:
    from dispel4py.engine.replay import replay_hint

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

    from dispel4py.engine.signals import stop_on_signals
    from dispel4py.mappings import get_mapping

    if getattr(get_mapping(target), "stops_on_signals", False):
        return stop_on_signals()
    return contextlib.nullcontext()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dispel4py`` console script; returns the exit code."""
    from dispel4py.cli.pe_logs import route_pe_logs
    from dispel4py.engine.signals import Terminated

    argv = list(sys.argv[1:] if argv is None else argv)
    if "--list-mappings" in argv or argv[:1] == ["mappings"]:
        return _list_mappings()
    if argv[:1] == ["worker"]:  # dispel4py worker --redis-url URL: join a Redis run (cli/worker.py)
        from dispel4py.cli.worker import main as worker_main

        return worker_main(argv[1:])
    if argv[:1] == ["status"]:  # dispel4py status --redis-url URL: runs and agents (cli/status.py)
        from dispel4py.cli.status import main as status_main

        return status_main(argv[1:])
    if argv[:1] == ["plan"]:  # dispel4py plan <mapping> <workflow> [-n N]: the same as --plan
        argv = [*argv[1:], "--plan"]
    if argv[:1] == ["draw"]:
        from dispel4py.cli.draw import main as draw_main

        return draw_main(argv[1:])
    if argv[:1] == ["prov"]:  # dispel4py prov export|trace DIR: a run's provenance records
        from dispel4py.cli.prov import main as prov_main

        return prov_main(argv[1:])
    if argv[:1] == ["replay"]:  # dispel4py replay FILE [--pdb]: a failed run's saved call
        from dispel4py.cli.replay import main as replay_main

        return replay_main(argv[1:])
    try:
        mapping = _find_mapping(argv)
        parser = _common_parser(mapping if mapping and not mapping.startswith("-") else None, argv)
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
    except (OSError, RuntimeError) as exc:  # the OS refused the driver a thread or process
        from dispel4py.mappings.processes.capacity import refused_by_os, refused_error

        if not refused_by_os(exc):
            raise
        _report(refused_error("the driver", None, exc))
        return 1


def console_main() -> None:
    from dispel4py.engine.signals import flush_stack_dumps, stacks_on_sigusr1

    stacks_on_sigusr1(_process_label(sys.argv[1:2]))
    try:
        code = main()
    except BaseException:  # a bug of ours: its traceback follows, and no rank may be left waiting
        _end_mpi_job_if_failed_early(1)
        raise
    finally:
        flush_stack_dumps()  # a kill -USR1 dump still on its way to stderr
    if code:
        _end_mpi_job_if_failed_early(code)
    # nothing of the run is collected any more: spare the interpreter's last collection
    # (~20 ms with redis-py loaded), which only walks objects that die with the process
    gc.freeze()
    sys.exit(code)


def _process_label(command: list[str]) -> str:
    """Who this process is, in its ``kill -USR1`` stack dumps: an MPI rank (under mpiexec
    hydra gives ``PMI_RANK``), a ``dispel4py worker`` joining a Redis run, or a driver."""
    rank = os.environ.get("PMI_RANK")
    if rank is not None:
        return f"rank {rank}"
    return "dispel4py worker" if command == ["worker"] else "driver"


def _end_mpi_job_if_failed_early(code: int) -> None:
    """Under mpiexec (hydra gives ``PMI_FD``), see ``mappings/mpi/hydra.end_mpi_job_started_without_us``."""
    if os.environ.get("PMI_FD"):
        from dispel4py.mappings.mpi.hydra import end_mpi_job_started_without_us

        end_mpi_job_started_without_us(code)
