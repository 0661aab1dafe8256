"""The command line's observation options: progress, JSON files, logging, ``--plan``.

Kept out of ``cli.py`` so that it stays the short list of what a run does; this module
only adds options, checks them before anything runs (a file that cannot be written is a
usage error naming the flag, exit 2) and writes what they ask for after the run.

* ``--progress/--no-progress``: the live table (``progress.py``) is shown when stderr is a
  terminal and ``-q`` is not given, unless forced either way. ``-v`` without the table
  logs a progress line every ``--progress-interval`` seconds (default 5).
* ``--output-json FILE`` / ``-o FILE`` (``-`` = stdout, instead of the ``Outputs:`` line)
  and ``--stats-json FILE``: see ``report.py`` and ``docs/observability.md``.
* ``--log-format`` (``plain``, ``time``, ``full`` or a ``logging`` format string) and
  ``--log-file FILE`` (appended; with ``-q`` the file still gets the ``-v``/``-vv`` lines).
* ``--plan``: print the layout the mapping would use, run nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dispel4py.engine.inputs import parse_cli_inputs, roots
from dispel4py.engine.loading import load_workflow
from dispel4py.engine.result_json import outputs_dict, stats_dict
from dispel4py.errors import UsageError
from dispel4py.observe.live import LiveBoard
from dispel4py.observe.progress import LiveDisplay, ProgressLines
from dispel4py.observe.report import bottleneck_line, describe_layout

__all__ = [
    "add_observation_arguments",
    "check_observation_arguments",
    "write_outputs_json",
    "configure_log_output",
    "observing",
    "show_plan",
    "write_run_files",
    "print_hint",
    "outputs_to_stdout",
    "LOG_FORMATS",
]

_log = logging.getLogger("dispel4py.cli")

LOG_FORMATS = {
    "plain": "%(message)s",
    "time": "%(asctime)s %(message)s",
    "full": "%(asctime)s %(levelname)s %(name)s: %(message)s",
}
_FILE_FORMAT = LOG_FORMATS["full"]
_LINES_EVERY_S = 5.0


def add_observation_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("watching a run")
    group.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show (or never show) the live table of the run on stderr "
        "(default: when stderr is a terminal and -q is not given)",
    )
    group.add_argument(
        "--progress-interval",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"seconds between -v progress lines (default {_LINES_EVERY_S:g})",
    )
    group.add_argument(
        "-o",
        "--output-json",
        metavar="FILE",
        help="write the outputs as JSON to FILE ('-': to stdout, instead of the Outputs: line)",
    )
    group.add_argument(
        "--stats-json",
        metavar="FILE",
        help="write the stats (per PE, per instance, layout, bottleneck) as JSON to FILE",
    )
    group.add_argument(
        "--log-format",
        metavar="FORMAT",
        default=None,
        help="diagnostics as plain (default), time (with timestamps), full (time, level, logger) "
        "or a Python logging format such as '%%(asctime)s %%(message)s'",
    )
    group.add_argument(
        "--log-file", metavar="FILE", help="also append the diagnostics to FILE, with timestamps"
    )
    group.add_argument(
        "--plan",
        action="store_true",
        help="print the instance layout the mapping would use (for -n N) and run nothing",
    )


# -- checks before anything runs -------------------------------------------------------------
def check_observation_arguments(args: argparse.Namespace) -> None:
    """Every file flag names a file that can be written; formats and intervals make sense."""
    interval = args.progress_interval
    if interval is not None and not interval > 0:
        raise UsageError(f"--progress-interval must be a number of seconds above 0 (got {interval:g})")
    _log_format(args.log_format)
    files = [("--output-json", args.output_json), ("--stats-json", args.stats_json)]
    for flag, path in [*files, ("--log-file", args.log_file)]:
        if path is not None and path != "-":
            _check_writable(path, flag)
    if args.stats_json == "-":
        raise UsageError("--stats-json needs a file name ('-' is only for --output-json)")
    named = [(flag, Path(path).resolve()) for flag, path in files if path not in (None, "-")]
    if len(named) == 2 and named[0][1] == named[1][1]:
        raise UsageError(
            f"--output-json and --stats-json name the same file {args.output_json}; give two files"
        )


def _check_writable(path: str, flag: str) -> None:
    """Open ``path`` for appending (and remove it again if this made it): the one check
    that knows about permissions, read-only mounts, missing folders and folders."""
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"{flag} {path}: is a folder; give a file name")
    if not target.parent.is_dir():
        raise UsageError(f"{flag} {path}: the folder {target.parent} does not exist")
    existed = target.exists()
    try:
        with open(target, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise UsageError(f"{flag} {path}: cannot write there ({exc.strerror or exc})") from exc
    if not existed:  # another MPI rank may have removed it already: they all check
        target.unlink(missing_ok=True)


def _log_format(text: str | None) -> str | None:
    if text is None:
        return None
    fmt = LOG_FORMATS.get(text, text)
    if "%(" not in fmt:
        raise UsageError(
            f"--log-format {text!r}: give plain, time, full or a logging format with %(message)s, "
            "e.g. '%(asctime)s %(levelname)s %(message)s'"
        )
    record = logging.LogRecord("dispel4py", logging.INFO, "", 0, "message", None, None)
    try:
        logging.Formatter(fmt).format(record)
    except (KeyError, ValueError, TypeError) as exc:
        raise UsageError(f"--log-format {text!r} is not a valid logging format: {exc!r}") from exc
    return fmt


# -- logging ------------------------------------------------------------------------------------
def configure_log_output(args: argparse.Namespace) -> None:
    """After ``cli._configure_logging``: the format of the stderr lines, and the log file."""
    fmt = _log_format(args.log_format)
    root = logging.getLogger("dispel4py")
    if fmt is not None:  # the diagnostics on stderr; PE lines on stdout keep the original's form
        for handler in root.handlers:
            if getattr(handler, "stream", None) in (sys.stderr, sys.__stderr__):
                handler.setFormatter(logging.Formatter(fmt))
    if args.log_file is None:
        return
    try:
        file_handler = logging.FileHandler(args.log_file, mode="a", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--log-file {args.log_file}: cannot write there ({exc.strerror or exc})") from exc
    file_handler.setFormatter(logging.Formatter(fmt or _FILE_FORMAT))
    if args.quiet:  # stderr keeps only errors; the file gets what the verbosity asks for
        for handler in root.handlers:
            handler.setLevel(logging.ERROR)
        root.setLevel(
            logging.DEBUG if args.verbose >= 2 else logging.INFO if args.verbose else logging.WARNING
        )
        logging.getLogger("dispel4py.pe").setLevel(logging.INFO if args.verbose < 2 else logging.DEBUG)
    root.addHandler(file_handler)


# -- while the run goes ------------------------------------------------------------------------
def _display_mode(args: argparse.Namespace) -> str | None:
    """``"table"``, ``"lines"`` (``-v`` progress lines) or None."""
    if args.progress is False:
        return None
    if args.progress or (not args.quiet and _stderr_is_terminal()):
        return "table"
    return "lines" if args.verbose >= 1 and not args.quiet else None


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def observing(args: argparse.Namespace, mapping: Any) -> Iterator[None]:
    """Live counters and their display for the length of ``mapping.run`` (rank 0 only on
    MPI; the other ranks learn from it whether to sample)."""
    mode = _display_mode(args)
    if mode is None or not mapping.primary:
        yield
        return

    board = LiveBoard()
    mapping.board = board
    if mode == "table":
        with LiveDisplay(board, force=bool(args.progress)):
            yield
    else:
        with ProgressLines(board, args.progress_interval or _LINES_EVERY_S):
            yield


# -- after the run ----------------------------------------------------------------------------
def outputs_to_stdout(args: argparse.Namespace) -> bool:
    """Whether the ``Outputs:`` line is printed (not when ``-o -`` writes JSON there)."""
    return args.output_json != "-"


def write_run_files(args: argparse.Namespace, result: Any) -> None:

    write_outputs_json(args, result.outputs)
    if args.stats_json is not None:
        _write_json(args.stats_json, "--stats-json", stats_dict(result))


def write_outputs_json(args: argparse.Namespace, outputs: dict[str, Any]) -> None:
    """``-o/--output-json``, if given."""

    if args.output_json is not None:
        _write_json(args.output_json, "--output-json", outputs_dict(outputs))


def _write_json(path: str, flag: str, data: Any) -> None:
    text = json.dumps(data, indent=None if flag == "--output-json" else 1, allow_nan=False) + "\n"
    if path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{flag} {path}: cannot write there ({exc.strerror or exc})") from exc


def print_hint(result: Any) -> None:
    """The bottleneck line after the ``--stats`` table, if a PE bounded the run."""

    line = bottleneck_line(result)
    if line:
        sys.stderr.write(line + "\n")


def show_plan(args: argparse.Namespace, mapping_cls: Any, options: dict[str, Any]) -> int:
    """``--plan``: load the workflow, plan it as ``mapping_cls`` would, print the layout."""

    graph = load_workflow(args.module, args.attr)
    inputs = parse_cli_inputs(args.data, args.file)
    if inputs is None:
        if args.iter < 0:
            raise UsageError(f"-i/--iter must not be negative (got {args.iter})")
        inputs = {pe.id: args.iter for pe in roots(graph)}
    plan = mapping_cls.preview_plan(options, graph, inputs)
    if _launcher_rank() == 0:  # under mpiexec, rank 0 alone prints
        sys.stdout.write(describe_layout(plan, mapping_cls.name) + "\n")
    return 0


def _launcher_rank() -> int:
    """This process's rank when started by mpiexec (hydra, Open MPI, PMIx), else 0."""
    import os

    for name in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK"):
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 0
