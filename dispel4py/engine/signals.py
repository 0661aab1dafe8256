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

__all__ = [
    "Terminated",
    "flush_stack_dumps",
    "stacks_on_sigusr1",
    "stacks_on_sigusr1_here",
    "stop_on_signals",
]

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
_FLUSH = b"\0dispel4py-flush\n"  # never a line of a dump: a dump is text


class _Relay:
    """A pipe that ``faulthandler`` dumps into, and the thread that copies its lines to
    stderr (fd 2) with a label. ``flush()`` waits until what is in the pipe is copied: the
    thread is a daemon, so a dump still in the pipe would die with the process."""

    def __init__(self, label: str) -> None:
        import threading

        self.pid, self.prefix = os.getpid(), label.encode()
        self.flushed = threading.Event()
        read_fd, write_fd = os.pipe()
        self.file = os.fdopen(write_fd, "w")
        try:
            threading.Thread(target=self._copy, args=(read_fd,), name="dispel4py-stacks", daemon=True).start()
        except BaseException:
            os.close(read_fd)
            self.file.close()
            raise

    def _copy(self, read_fd: int) -> None:
        with os.fdopen(read_fd, "rb") as source:
            for line in source:
                if line == _FLUSH:
                    self.flushed.set()
                else:
                    os.write(2, self.prefix + line)

    def flush(self, timeout: float) -> None:
        self.flushed.clear()
        try:
            os.write(self.file.fileno(), _FLUSH)
        except (OSError, ValueError):  # closed: nothing to wait for
            return
        self.flushed.wait(timeout)


_relay: _Relay | None = None


def stacks_on_sigusr1(who: str = "driver") -> None:
    """``kill -USR1 <pid>`` prints every thread's Python stack on stderr and the run goes on:
    to see where a long run spends its time or waits. Set by the ``dispel4py`` command and,
    then, in its worker processes (whatever the start method), never by the Python API.

    Every line of the dump starts with ``[who, pid P]`` (``driver``, ``worker 3``, ``rank
    2``): the processes of a run share one stderr. ``faulthandler`` writes the dump at once,
    even while Python code is stuck in C (an MPI call), into a pipe that a thread of ours
    copies to stderr with the label (:class:`_Relay`); a process with no thread to spare
    dumps unlabelled. Call :func:`flush_stack_dumps` before the process exits.

    A process that crashes in C code (SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL: an extension
    module's bug, a stack overflow) prints its Python stacks on stderr first, straight to it
    (the process is dying: no thread would copy a pipe), so a crash says where it happened."""
    import faulthandler
    import sys

    global _stacks_on_sigusr1, _relay
    with contextlib.suppress(AttributeError, OSError, ValueError):  # stderr without a file
        faulthandler.enable(file=sys.stderr, all_threads=True)
    if not hasattr(signal, "SIGUSR1"):
        return
    if _relay is not None and _relay.pid != os.getpid():  # a forked worker: the driver's pipe
        _relay.file.close()  # this process's copy only
    try:
        _relay = _Relay(f"[{who}, pid {os.getpid()}] ")
    except RuntimeError:  # no thread to spare (a process limit): the plain dump will do
        _relay = None
    target = sys.stderr if _relay is None else _relay.file
    faulthandler.register(signal.SIGUSR1, file=target, all_threads=True)
    _stacks_on_sigusr1 = True


def flush_stack_dumps(timeout: float = 1.0) -> None:
    """A stack dump still in this process's pipe reaches stderr before it exits."""
    if _relay is not None and _relay.pid == os.getpid():
        _relay.flush(timeout)


def stacks_on_sigusr1_here() -> bool:
    """Whether this process prints its stacks on SIGUSR1 (its workers then do too)."""
    return _stacks_on_sigusr1
