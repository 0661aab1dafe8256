"""``dispel4py replay FILE [--pdb]``: run a PE's failing call again, in this process.

The file is one that a failed run named (``replay.py`` writes it where the PE ran). The PE
is rebuilt with its saved state; the call is made as the engine made it
(``process({port: item})``, a source's ``process(dict)``, ``preprocess()`` or
``postprocess()``); what it writes is printed on stdout, one line per item, with its
``self.log`` lines. If it raises again, the traceback of your code is printed and the exit
code is 1; with ``--pdb`` the debugger starts at the raise (post-mortem). If it does not
raise, the failure depended on something the file does not hold (another PE, a file, the
network, timing): exit code 0 and a line saying so.

Also here: the run's options that control replay files (``--no-replay-file``,
``--replay-dir``), checked before a run starts.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from dispel4py.cli.parser import OptionParser
from dispel4py.cli.pe_logs import route_pe_logs
from dispel4py.core import WRITER
from dispel4py.engine.failure import user_traceback
from dispel4py.engine.replay import ENV, ReplayFileError, Saved, read_replay_file
from dispel4py.errors import UsageError

__all__ = ["main", "add_replay_arguments", "configure_replay", "DEFAULT_DIR"]

DEFAULT_DIR = ".dispel4py"
_log = logging.getLogger("dispel4py.cli")


# -- the run's options ------------------------------------------------------------------------------
def add_replay_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-replay-file",
        action="store_true",
        help="when a PE fails, do not save the failing call (default: saved for dispel4py replay)",
    )
    parser.add_argument(
        "--replay-dir",
        metavar="DIR",
        help="where a failing call is saved for dispel4py replay (default: $DISPEL4PY_REPLAY_DIR, "
        f"else ./{DEFAULT_DIR})",
    )


def configure_replay(args: argparse.Namespace) -> None:
    """Turn replay files on (or off) for this run and its workers, through the environment.

    Workers, started after this, inherit the variable; MPI ranks each run this themselves.
    """
    if args.no_replay_file:
        if args.replay_dir is not None:
            raise UsageError("--no-replay-file and --replay-dir contradict each other; give one of them")
        os.environ[ENV] = ""
        return
    if args.replay_dir is None:  # $DISPEL4PY_REPLAY_DIR if set ('' = none), else ./.dispel4py
        current = os.environ.get(ENV)
        os.environ[ENV] = os.path.abspath(current or DEFAULT_DIR) if current != "" else ""
        return
    folder = os.path.abspath(args.replay_dir)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UsageError(f"--replay-dir {args.replay_dir}: it is a file, not a folder")
    existing = folder
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(
            f"--replay-dir {args.replay_dir}: cannot write there (permission denied on {existing})"
        )
    os.environ[ENV] = folder


# -- dispel4py replay -------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    parser = OptionParser(
        prog="dispel4py replay",
        description="Run the failing call saved by a failed run again, in this process.",
        allow_abbrev=False,
    )
    parser.add_argument("file", help="the replay file named in the error message")
    parser.add_argument("--pdb", action="store_true", help="start the debugger at the raise")
    parser.add_argument("-q", "--quiet", action="store_true", help="only what the PE writes and errors")
    return parser


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    _configure_logging(args.quiet)
    try:
        saved = read_replay_file(args.file)
        pe = _rebuild(saved, args.file)
        item = _item(saved, args.file) if saved.phase == "process" else None
    except (ReplayFileError, UsageError) as exc:
        sys.stderr.write(f"dispel4py: error: {exc}\n")
        return 2
    for name, why in saved.dropped.items():
        _log.warning("self.%s of %s was not saved (%s): the replay runs without it", name, saved.pe_id, why)
    _log.warning("replaying %s", _describe(saved))
    return _call(saved, pe, item, args.pdb)


def _configure_logging(quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("dispel4py")
    root.handlers[:] = [handler]
    root.propagate = False
    root.setLevel(logging.ERROR if quiet else logging.WARNING)
    logging.getLogger("dispel4py.pe").setLevel(logging.ERROR if quiet else logging.INFO)
    route_pe_logs(quiet=quiet)


def _describe(saved: Saved) -> str:
    text = f"PE {saved.pe_id} (instance {saved.instance}), {saved.phase}"
    if saved.phase == "process":
        text += " of a source" if saved.source_call else f" on input '{saved.port}'"
        text += f" with item {saved.item_repr}"
    return f"{text}; it failed at {saved.created} [{saved.where}]: {saved.error}"


def _rebuild(saved: Saved, path: str) -> Any:
    if saved.pe is None:
        raise UsageError(
            f"replay file '{path}' holds no PE: {saved.pe_id} could not be saved when it failed "
            f"({saved.pe_error}); nothing to replay"
        )
    for folder in reversed(saved.sys_path):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    for name, file in saved.modules:
        _load_module(name, file, saved.pe_id)
    try:
        loaded = _loads(saved.pe)
    except Exception as exc:
        raise UsageError(
            f"PE {saved.pe_id} ({saved.pe_class}) in '{path}' cannot be rebuilt here: "
            f"{type(exc).__name__}: {exc}; replay it where its workflow's modules can be imported"
        ) from exc
    if isinstance(loaded, tuple) and loaded[:1] == ("by-attribute",):
        _, cls_blob, state = loaded
        cls = _loads(cls_blob)
        pe = cls.__new__(cls)
        for name, blob in state.items():
            pe.__dict__[name] = _loads(blob)
        return pe
    return loaded


def _load_module(name: str, file: str, pe_id: str) -> None:
    if name in sys.modules:
        return
    try:
        importlib.import_module(name)
        return
    except ImportError:
        pass
    if not os.path.isfile(file):
        raise UsageError(
            f"module '{name}', which defines PE {pe_id}, cannot be imported and its file {file} "
            "is gone; replay where the workflow's files are"
        )
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise UsageError(f"cannot load module '{name}' from {file}, which defines PE {pe_id}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise UsageError(
            f"module '{name}' ({file}), which defines PE {pe_id}, fails to load: {type(exc).__name__}: {exc}"
        ) from exc


def _item(saved: Saved, path: str) -> Any:
    if saved.item is None:
        raise UsageError(
            f"replay file '{path}': the item {saved.item_repr} of PE {saved.pe_id} could not be saved "
            f"({saved.item_error}); nothing to replay"
        )
    try:
        return _loads(saved.item)
    except Exception as exc:
        raise UsageError(
            f"replay file '{path}': the item of PE {saved.pe_id} cannot be rebuilt here: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _loads(blob: bytes) -> Any:
    import io

    import dill

    class Unpickler(dill.Unpickler):
        def persistent_load(self, pid: Any) -> Any:
            return None  # an engine object (a writer) that was left out

    return Unpickler(io.BytesIO(blob)).load()


class _Printer:
    """Stands for an output connection: prints what the PE writes."""

    def __init__(self, output: str) -> None:
        self.output = output

    def write(self, data: Any) -> None:
        sys.stdout.write(f"{self.output}: {data!r}\n")
        sys.stdout.flush()


def _call(saved: Saved, pe: Any, item: Any, debug: bool) -> int:

    for output, connection in pe.outputconnections.items():
        connection[WRITER] = _Printer(output)
    try:
        if saved.phase == "preprocess":
            pe.preprocess()
        elif saved.phase == "postprocess":
            pe.postprocess()
        else:
            out = pe.process(item if saved.source_call else {saved.port: item})
            for output, value in (out or {}).items():
                _Printer(output).write(value)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # what the PE raised, as in a run (sys.exit too)
        sys.stderr.write(f"dispel4py: error: {saved.pe_id} failed again: {type(exc).__name__}: {exc}\n")
        sys.stderr.write(user_traceback(exc).rstrip() + "\n")
        sys.stderr.flush()
        if debug:
            import pdb

            pdb.post_mortem(exc.__traceback__)
        return 1
    _log.warning(
        "%s did not fail this time: the failure depends on something the replay file does not "
        "hold (another PE, a file, the network, timing)",
        saved.pe_id,
    )
    return 0
