"""``dispel4py worker``: join a Redis run in progress from any host, leave at its end.

    dispel4py worker --redis-url redis://host:6379/0 --key-file run.key [--run ID] [workflow]
    dispel4py worker -n N [--serve [--runs PATTERN]] [--tags gpu,big-mem] [--min K] [--max M] ...

What joining does and when the worker leaves: :mod:`dispel4py.mappings.redis.join`. With
``-n`` or ``--serve``, a host agent runs up to N worker processes and, with ``--serve``,
stays standing and joins run after run: :mod:`dispel4py.mappings.redis.agent`.

The workflow argument is needed only when the driver's workflow file is not at the same
path on this host; its module must have the same name (the file's name).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence

from dispel4py.engine.signals import Terminated, stop_on_signals
from dispel4py.errors import Dispel4PyError, UsageError
from dispel4py.mappings.redis.agent import Agent, AgentOptions
from dispel4py.mappings.redis.fleet import parse_tags
from dispel4py.mappings.redis.join import join_run, server_and_key
from dispel4py.mappings.redis.mapping import add_connection_arguments

__all__ = ["main", "get_parser"]

_log = logging.getLogger("dispel4py.worker")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dispel4py worker",
        description="Join a dyn_redis/dyn_auto_redis/hybrid_redis/redis run in progress as a worker.",
        allow_abbrev=False,
    )
    parser.add_argument(
        "workflow",
        nargs="?",
        help="workflow module or .py file (only if the driver's file is not at the same path here)",
    )
    parser.add_argument("-a", "--attr", help="name of the graph variable in the workflow module")
    add_connection_arguments(parser, driver=False)
    parser.add_argument(
        "--run", help="run id to join (default: the only run in progress signed with this key)"
    )
    parser.add_argument(
        "--wait", type=float, default=30.0, help="seconds to wait for a run to start (default 30)"
    )
    parser.add_argument(
        "--allow-code-mismatch",
        action="store_true",
        help="join even if the workflow's source here differs from the driver's (results may mix)",
    )
    add_agent_arguments(parser)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more diagnostics")
    return parser


def add_agent_arguments(parser: argparse.ArgumentParser) -> None:
    agent = parser.add_argument_group("host agent (several worker processes, standing)")
    agent.add_argument(
        "-n",
        "--processes",
        metavar="N",
        type=int,
        default=None,
        help="run up to N worker processes on this host under one agent (default with --serve: the cores)",
    )
    agent.add_argument(
        "--serve",
        action="store_true",
        help="stay standing: join every run signed with the key as it starts, run after run",
    )
    agent.add_argument(
        "--runs", metavar="PATTERN", help="with --serve: only runs whose id matches (shell-style)"
    )
    agent.add_argument("--tags", help="what this host offers, e.g. gpu,big-mem (PEs with requires={...})")
    agent.add_argument(
        "--min", type=int, default=0, help="dyn_auto_redis: processes always active (default 0)"
    )
    agent.add_argument(
        "--max", type=int, default=None, help="dyn_auto_redis: processes active at most (default N)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = get_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    _configure_logging(args.verbose)
    try:
        if _wants_agent(args):
            return _agent(args)
        with stop_on_signals(_stopping_signals()):
            return join_run(vars(args))
    except Terminated as exc:
        _log.warning("dispel4py worker: %s before joining a run", exc)
        return 0
    except Dispel4PyError as exc:
        sys.stderr.write(f"dispel4py worker: error: {exc}\n")
        return exc.exit_code


def _wants_agent(args: argparse.Namespace) -> bool:
    """Any agent flag runs a host agent; none: one worker process, as before agents."""
    return bool(args.processes is not None or args.serve or args.tags or args.runs or args.min or args.max)


def _agent(args: argparse.Namespace) -> int:
    options = agent_options(args)
    target, signer = server_and_key(vars(args))
    return Agent(options, target, signer).run()


def agent_options(args: argparse.Namespace) -> AgentOptions:
    """The agent's options, checked: a bad one is a usage error naming its flag (exit 2)."""
    processes = args.processes if args.processes is not None else (os.cpu_count() or 1)
    if processes < 1:
        raise UsageError(f"-n/--processes must be at least 1 (got {processes})")
    if args.serve and args.run:
        raise UsageError("--serve joins every run as it starts; --run names one run: use one of them")
    if args.runs and not args.serve:
        raise UsageError("--runs PATTERN needs --serve (without it, name the run with --run)")
    maximum = processes if args.max is None else args.max
    if not 1 <= maximum <= processes:
        raise UsageError(f"--max must be within 1..{processes} (-n) (got {maximum})")
    if not 0 <= args.min <= maximum:
        raise UsageError(f"--min must be within 0..{maximum} (--max) (got {args.min})")
    return AgentOptions(
        processes=processes,
        serve=bool(args.serve),
        pattern=args.runs,
        tags=parse_tags(args.tags),
        minimum=args.min,
        maximum=maximum,
        run=args.run,
        wait_s=float(args.wait),
        join={k: v for k, v in vars(args).items() if k not in ("run", "wait")},
        signals=_stopping_signals(),
    )


def _stopping_signals() -> tuple[int, ...]:
    """SIGTERM, SIGHUP and SIGINT all mean "leave now" (exit 0, one line): an autoscaler's
    SIGTERM and a user's Ctrl-C alike. A SIGINT that the worker inherited as ignored (a
    batch script's ``dispel4py worker … &``) stays ignored, as every program does."""
    wanted = [signal.SIGTERM, signal.SIGINT]
    if hasattr(signal, "SIGHUP"):
        wanted.append(signal.SIGHUP)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        wanted.remove(signal.SIGINT)
    return tuple(wanted)


def _configure_logging(verbose: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    own = logging.getLogger("dispel4py.worker")
    own.handlers[:] = [handler]
    own.propagate = False
    own.setLevel(logging.DEBUG if verbose else logging.INFO)
