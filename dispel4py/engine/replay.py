"""Replay files: the failing call of a PE, saved where it failed, to run again on a laptop.

When PE code raises, ``calls.py`` (the one place that runs PE code, on every mapping) asks
:func:`save_failure` to write the call to a file: the PE's class and state (its attributes,
as far as they pickle with dill), the phase, and for ``process`` the input port and item.
The file is written by the process where the PE ran — a ``multi``/``zmq_multi``/dynamic
worker, or an MPI rank, on its own host — and its path travels to the driver with the
failure (``WorkflowFailed.replay_file``), which names it in the error message.
``dispel4py replay FILE [--pdb]`` (``cli/replay.py``) runs that one call again.

* **Where**: the folder named by ``$DISPEL4PY_REPLAY_DIR``. The CLI sets it for the run (and
  so for its workers): ``--replay-dir DIR``, else the variable as the user set it, else
  ``./.dispel4py``; ``--no-replay-file`` (or the variable set to '') writes nothing. From
  Python nothing is written unless the variable is set. A folder that cannot be written falls back to
  ``$TMPDIR/dispel4py-replay-<uid>``. Folders are made private (0700), files 0600.
* **State**: the PE as it was when the exception was raised, so changes the failing call
  made before raising are included. Attributes that do not pickle (a lock, a connection) are
  left out and listed when replaying. The engine's writers are never saved.
* **Safety**: a replay file holds pickles, and loading a pickle runs code: replay only files
  you (or your workflow) wrote. Saving never hides the failure: anything going wrong while
  saving becomes a note in the error message instead of a file.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from dispel4py.engine.failure import short_repr

__all__ = ["ENV", "MAGIC", "FORMAT", "Saved", "save_failure", "replay_hint", "read_replay_file"]

ENV = "DISPEL4PY_REPLAY_DIR"
MAGIC = b"DISPEL4PY-REPLAY\n"
FORMAT = 1
_ENGINE_MODULES = (
    "dispel4py.engine.writers",
    "dispel4py.engine.executor",
    "dispel4py.dynamic.worker",
    "dispel4py.observe.timing",
    "dispel4py.observe.timing_files",
    "dispel4py.observe.timing_options",
)


@dataclass
class Saved:
    """What a replay file holds (the PE and the item as dill pickles, loaded on demand)."""

    pe_id: str
    instance: int
    phase: str
    port: str | None
    source_call: bool  # a source PE's process(dict) call, not process({port: item})
    item_repr: str | None
    error: str
    user_traceback: str
    where: str
    created: str
    pe_class: str
    modules: list[tuple[str, str]]  # (module name, file) of the PE's class, to load if not importable
    sys_path: list[str]
    pe: bytes | None = None
    pe_error: str = ""
    dropped: dict[str, str] = field(default_factory=dict)  # attribute -> why it was not saved
    item: bytes | None = None
    item_error: str = ""
    instance_index: int = 0


# -- saving (in the process where the PE ran) -----------------------------------------------------
def save_failure(failure: Any, pe: Any, port: Any, item: Any, exc: BaseException) -> None:
    """Write the failing call of ``failure`` (a ``WorkflowFailed``) if replay files are on;
    set ``failure.replay_file`` to the path, or ``failure.replay_error`` to why there is none."""
    folder = os.environ.get(ENV)
    if not folder or pe is None:
        return
    try:
        saved = _describe(failure, pe, port, item)
        data = MAGIC + pickle.dumps(saved, protocol=pickle.HIGHEST_PROTOCOL)
        failure.replay_file = _write(folder, _file_name(failure), data)
    except Exception as error:  # saving must never hide the failure itself
        failure.replay_error = f"{type(error).__name__}: {error}"


def _describe(failure: Any, pe: Any, port: Any, item: Any) -> Saved:

    source_call = failure.phase == "process" and port is None
    saved = Saved(
        pe_id=failure.pe_id,
        instance=failure.instance,
        phase=failure.phase,
        port=port,
        source_call=source_call,
        item_repr=short_repr(item) if failure.phase == "process" else None,
        error=failure.error,
        user_traceback=failure.user_traceback,
        where=failure.where or f"pid {os.getpid()} on {socket.gethostname()}",
        created=time.strftime("%Y-%m-%d %H:%M:%S"),
        pe_class=f"{type(pe).__module__}.{type(pe).__qualname__}",
        modules=_module_files(pe),
        sys_path=[p for p in sys.path if p and os.path.isdir(p)],
        instance_index=getattr(pe, "instance_index", 0),
    )
    saved.pe, saved.pe_error, saved.dropped = _pickle_pe(pe)
    if failure.phase == "process":
        try:
            saved.item = _dumps(item)
        except Exception as error:
            saved.item_error = f"{type(error).__name__}: {error}"
    return saved


def _module_files(pe: Any) -> list[tuple[str, str]]:
    """The module defining the PE's class, with its file, when a replay may need to load it
    from that file (a workflow file, not an installed module; ``__main__`` is pickled by
    value). Everything else is imported by name, with the saved ``sys.path``."""
    name = type(pe).__module__
    module = sys.modules.get(name)
    path = getattr(module, "__file__", None)
    if name == "__main__" or name.startswith("dispel4py.") or not path:
        return []
    return [(name, os.path.abspath(path))]


class _Pickler:
    """dill, with the engine's objects (writers on output connections) left out."""

    @staticmethod
    def dumps(obj: Any) -> bytes:
        import dill

        class Pickler(dill.Pickler):
            def persistent_id(self, value: Any) -> Any:
                module = type(value).__module__
                return "engine" if module in _ENGINE_MODULES else None

        buffer = io.BytesIO()
        Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL, recurse=True).dump(obj)
        return buffer.getvalue()


def _dumps(obj: Any) -> bytes:
    return _Pickler.dumps(obj)


def _pickle_pe(pe: Any) -> tuple[bytes | None, str, dict[str, str]]:
    """The PE as one pickle; else its class and the attributes that pickle, one by one.
    Without the engine's ``write`` (``wiring.install_pe_write``: a writer's method, which the
    replay could not call), which is put back after."""
    write = vars(pe).get("write")
    if write is None or type(getattr(write, "__self__", None)).__module__ not in _ENGINE_MODULES:
        return _pickle_pe_as_is(pe)
    del pe.write
    try:
        return _pickle_pe_as_is(pe)
    finally:
        pe.write = write


def _pickle_pe_as_is(pe: Any) -> tuple[bytes | None, str, dict[str, str]]:
    try:
        return _dumps(pe), "", {}
    except Exception as whole:
        reason = f"{type(whole).__name__}: {whole}"
    try:
        cls = _dumps(type(pe))
    except Exception as error:
        return None, f"its class cannot be saved ({type(error).__name__}: {error}); {reason}", {}
    state: dict[str, bytes] = {}
    dropped: dict[str, str] = {}
    for name, value in vars(pe).items():
        try:
            state[name] = _dumps(value)
        except Exception as error:
            dropped[name] = f"{type(error).__name__}: {error}"
    return _dumps(("by-attribute", cls, state)), "", dropped


def _file_name(failure: Any) -> str:
    pe = re.sub(r"[^A-Za-z0-9._-]", "_", failure.pe_id)[:80]
    return f"replay-{time.strftime('%Y%m%d-%H%M%S')}-{pe}-{failure.instance}-{os.getpid()}.pkl"


def _write(folder: str, name: str, data: bytes) -> str:
    """Write privately to ``folder``, else to a private folder under $TMPDIR."""
    try:
        return _write_in(folder, name, data)
    except OSError as first:
        fallback = os.path.join(tempfile.gettempdir(), f"dispel4py-replay-{os.getuid()}")
        try:
            return _write_in(fallback, name, data)
        except OSError:
            raise first from None


def _write_in(folder: str, name: str, data: bytes) -> str:
    os.makedirs(folder, mode=0o700, exist_ok=True)
    path = os.path.join(os.path.abspath(folder), name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return path


def replay_hint(failure: Any) -> str:
    """The line the error message ends with: the replay command, or why there is none."""
    path = getattr(failure, "replay_file", "")
    if path:
        shown = os.path.relpath(path) if path.startswith(os.getcwd() + os.sep) else path
        return f"the failing call is saved: dispel4py replay {shown} [--pdb] runs it again"
    error = getattr(failure, "replay_error", "")
    if error:
        return f"the failing call could not be saved for dispel4py replay ({error})"
    return ""


# -- reading (dispel4py replay) ------------------------------------------------------------------
def read_replay_file(path: str) -> Saved:
    """The :class:`Saved` call in ``path``; ``ReplayFileError`` with a clear reason otherwise."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(MAGIC))
            if head != MAGIC:
                raise ReplayFileError(
                    f"'{path}' is not a dispel4py replay file (they are written when a PE "
                    "fails and named in the error message)"
                )
            body = handle.read()
    except IsADirectoryError:
        raise ReplayFileError(f"'{path}' is a folder, not a replay file") from None
    except FileNotFoundError:
        raise ReplayFileError(f"replay file '{path}' does not exist{_near(path)}") from None
    except PermissionError:
        raise ReplayFileError(f"replay file '{path}' cannot be read (permission denied)") from None
    try:
        saved = pickle.loads(body)
    except Exception as error:
        raise ReplayFileError(f"replay file '{path}' is damaged ({type(error).__name__}: {error})") from None
    if not isinstance(saved, Saved):
        raise ReplayFileError(f"replay file '{path}' is damaged (it holds a {type(saved).__name__})")
    return saved


class ReplayFileError(Exception):
    """A replay file that cannot be used; the message says why."""


def _near(path: str) -> str:
    import difflib

    folder = os.path.dirname(path) or "."
    try:
        names = [n for n in os.listdir(folder) if n.startswith("replay-") and n.endswith(".pkl")]
    except OSError:
        return ""
    close = difflib.get_close_matches(os.path.basename(path), names, n=1, cutoff=0.8)
    return f" (did you mean {os.path.join(os.path.dirname(path), close[0])}?)" if close else ""
