"""``dispel4py worker``: join a Redis run in progress from any host, leave at its end.

    dispel4py worker --redis-url redis://host:6379/0 --key-file run.key [--run ID] [workflow]

What joining does and when the worker leaves: :mod:`dispel4py.mappings.redis.join`.

The workflow argument is needed only when the driver's workflow file is not at the same
path on this host; its module must have the same name (the file's name).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence

from dispel4py.engine.signals import Terminated, stop_on_signals
from dispel4py.errors import Dispel4PyError
from dispel4py.mappings.redis.join import join_run
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
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more diagnostics")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = get_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    _configure_logging(args.verbose)
    try:
        with stop_on_signals(_stopping_signals()):
            return join_run(vars(args))
    except Terminated as exc:
        _log.warning("dispel4py worker: %s before joining a run", exc)
        return 0
    except Dispel4PyError as exc:
        sys.stderr.write(f"dispel4py worker: error: {exc}\n")
        return exc.exit_code


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
