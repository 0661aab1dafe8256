"""SIGTERM and SIGHUP stop a run the way Ctrl-C does.

A handler turns the signal into :class:`Terminated`, a ``KeyboardInterrupt``, so it takes
the path Ctrl-C takes: PE code does not swallow it, and every ``finally``/``with`` on the
way out runs (the worker pool stops its workers). The ``dispel4py`` command installs it
for the length of a run of a mapping that asks for it (``stops_on_signals``: ``multi``,
``zmq_multi``), reports one line and exits 128 + the signal number. Under ``mpi`` the
ranks keep the default action: mpiexec owns their lifetime.

``dispel4py.run`` installs nothing: signal handlers are process-wide and belong to the
application (and can only be set from the main thread). Without a handler a SIGTERM ends
the process at once; its worker processes notice and end too. An application that wants
the orderly stop wraps its call in :func:`stop_on_signals`.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from types import FrameType

__all__ = ["Terminated", "stacks_on_sigusr1", "stacks_on_sigusr1_here", "stop_on_signals"]

_REASONS = {"SIGTERM": "terminated", "SIGHUP": "hangup"}
_OTHERS = {"SIGINT": "interrupted"}  # handled where a command asks for it (``dispel4py worker``)


class Terminated(KeyboardInterrupt):
    """The run was stopped by a signal; ``exit_code`` is the shell's 128 + signal number."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(f"{_REASONS.get(self.name, _OTHERS.get(self.name, 'stopped'))} ({self.name})")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _default_signals() -> tuple[int, ...]:
    return tuple(getattr(signal, name) for name in _REASONS if hasattr(signal, name))


@contextlib.contextmanager
def stop_on_signals(signums: tuple[int, ...] | None = None) -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP (or ``signums``) raise :class:`Terminated` in
    the main thread, once: a second signal while stopping is ignored, so that the cleanup
    completes. The previous handlers are restored on exit. Main thread only."""
    owner = os.getpid()
    fired: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if os.getpid() != owner:  # a forked child that has not set its own handlers yet
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if fired:
            return
        fired.append(signum)
        raise Terminated(signum)

    previous = {signum: signal.signal(signum, handler) for signum in signums or _default_signals()}
    try:
        yield
    finally:
        for signum, action in previous.items():
            signal.signal(signum, action)


_stacks_on_sigusr1 = False


def stacks_on_sigusr1() -> None:
    """``kill -USR1 <pid>`` prints every thread's Python stack on stderr and the run goes on:
    to see where a long run spends its time or waits. Set by the ``dispel4py`` command and,
    then, in its worker processes (whatever the start method), never by the Python API."""
    import faulthandler

    global _stacks_on_sigusr1
    if hasattr(signal, "SIGUSR1"):
        faulthandler.register(signal.SIGUSR1, all_threads=True)
        _stacks_on_sigusr1 = True


def stacks_on_sigusr1_here() -> bool:
    """Whether this process prints its stacks on SIGUSR1 (its workers then do too)."""
    return _stacks_on_sigusr1
