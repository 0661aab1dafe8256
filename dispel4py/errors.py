"""The exception hierarchy.

Every error dispel4py raises on purpose is a :class:`Dispel4PyError`. The CLI maps the
classes to exit codes in one place (``cli.py``): usage and graph problems exit 2, a failed
workflow or transport exits 1.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "Dispel4PyError",
    "UsageError",
    "GraphError",
    "InputError",
    "MappingUnavailable",
    "TransportError",
    "GroupingError",
    "WorkflowFailed",
    "WorkerDied",
    "ResourcesRefused",
    "thread_refused",
    "did_you_mean",
]


class Dispel4PyError(Exception):
    """Root of every error dispel4py raises deliberately."""

    exit_code = 1
    quiet = False  # set when another process (MPI rank 0) reports the same error


class UsageError(Dispel4PyError):
    """The command line or a library call was given something it cannot use."""

    exit_code = 2


class GraphError(UsageError):
    """The workflow graph cannot run as written (unknown port, bad grouping, cycle...)."""


class InputError(UsageError):
    """The workflow inputs (-i/-d/-f or ``inputs=``) are invalid."""


class MappingUnavailable(UsageError):
    """The mapping is unknown, not built yet, or its optional dependencies are missing."""


class TransportError(Dispel4PyError):
    """Moving messages between workers failed (e.g. an item could not be pickled)."""


class GroupingError(Dispel4PyError):
    """An item's group-by key has a type that no hash can route the same in every process.

    It names the destination PE and input whose grouping refused the key. It is not a
    failure of the PE that wrote the item, so it is not wrapped as one: the fix is the key.
    """

    def __init__(self, pe_id: str, port: str, message: str) -> None:
        self.pe_id = pe_id
        self.port = port
        super().__init__(message)

    def __reduce__(self):  # keep the fields when sent from a worker to the driver
        return (GroupingError, (self.pe_id, self.port, self.args[0]))


class WorkflowFailed(Dispel4PyError):
    """A PE raised while the workflow ran.

    Carries the PE id, instance, phase, input port and a short repr of the item, plus the
    user's traceback formatted as text (it may have crossed a process boundary). The
    original exception, when it could travel, is the ``__cause__``.
    """

    def __init__(
        self,
        pe_id: str,
        instance: int,
        phase: str,
        port: str | None = None,
        item_repr: str | None = None,
        error: str = "",
        user_traceback: str = "",
        where: str = "",
        replay_file: str = "",
        replay_error: str = "",
    ) -> None:
        self.pe_id = pe_id
        self.instance = instance
        self.phase = phase
        self.port = port
        self.item_repr = item_repr
        self.error = error
        self.user_traceback = user_traceback
        self.where = where
        self.replay_file = replay_file  # the failing call, saved by the process where it ran
        self.replay_error = replay_error  # why it could not be saved (see replay.py)
        super().__init__(self._headline())

    def _headline(self) -> str:
        text = f"PE {self.pe_id} (instance {self.instance}) failed in {self.phase}"
        if self.port is not None:
            text += f" on input '{self.port}'"
        if self.item_repr is not None:
            text += f" with item {self.item_repr}"
        if self.where:
            text += f" [{self.where}]"
        return f"{text}: {self.error}"

    def __reduce__(self):  # keep all fields when pickled between processes
        return (
            WorkflowFailed,
            (
                self.pe_id,
                self.instance,
                self.phase,
                self.port,
                self.item_repr,
                self.error,
                self.user_traceback,
                self.where,
                self.replay_file,
                self.replay_error,
            ),
        )


class WorkerDied(Dispel4PyError):
    """A worker process ended without finishing (killed, out of memory, crashed)."""


class ResourcesRefused(Dispel4PyError):
    """The operating system refused a worker process or a thread (``mappings/processes/capacity.py``)."""


def thread_refused(exc: BaseException) -> bool:
    """Python's ``can't start new thread``: the OS refused a thread (a process limit, memory)."""
    return isinstance(exc, RuntimeError) and "can't start new thread" in str(exc)


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean 'x'?)' for the closest choice, or ''."""
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""
