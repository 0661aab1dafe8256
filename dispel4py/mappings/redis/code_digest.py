"""The workflow's source as a digest, so that a worker running other code cannot join a run.

A worker that joins a Redis run unpickles the driver's plan, whose PE classes are pickled
by reference: it runs *its own* copy of the workflow module. If that copy differs (a file
edited on one host only), the run would mix the results of two programs without a word.
The driver publishes, in the run's signed metadata, a SHA-256 per source file: the
workflow's modules and the modules they import from the same folders. A worker
computes the same over what it loaded and names each file that differs.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterable
from types import ModuleType

__all__ = ["code_digest", "code_differences"]


def code_digest(module_files: Iterable[tuple[str, str]]) -> dict[str, str]:
    """``{file name: sha256}`` of the modules in ``module_files`` (``(name, path)``) and of
    the modules they import, directly or through each other, from their folders (a
    workflow's sibling helpers). Other modules loaded from those folders (another workflow
    a notebook loaded) do not count."""
    paths: set[str] = set()
    todo = [sys.modules[name] for name, _ in module_files if name in sys.modules]
    folders = {os.path.dirname(_path_of(module)) for module in todo if _path_of(module)}
    while todo:
        module = todo.pop()
        path = _path_of(module)
        if not path or path in paths or os.path.dirname(path) not in folders:
            continue
        paths.add(path)
        todo.extend(_imported(module))
    return {os.path.basename(path): _sha256(path) for path in sorted(paths)}


def _path_of(module: ModuleType) -> str:
    path = getattr(module, "__file__", None)
    return os.path.abspath(path) if isinstance(path, str) and path.endswith(".py") else ""


def _imported(module: ModuleType) -> list[ModuleType]:
    """The modules ``module`` refers to: those it imported, and those of what it imported
    from them (``from helper import f``)."""
    found = []
    for value in list(vars(module).values()):
        if isinstance(value, ModuleType):
            found.append(value)
            continue
        try:
            owner = sys.modules.get(getattr(value, "__module__", None) or "")
        except Exception:  # an object whose attributes raise: it names no module
            continue
        if owner is not None:
            found.append(owner)
    return found


def code_differences(driver: dict[str, str], here: dict[str, str]) -> list[str]:
    """What differs between the driver's digest and this host's, one phrase per file."""
    found = []
    for name in sorted(set(driver) | set(here)):
        if name not in here:
            found.append(f"{name} (the driver's workflow imports it; it is not loaded here)")
        elif name not in driver:
            found.append(f"{name} (imported here, not by the driver's workflow)")
        elif driver[name] != here[name]:
            found.append(f"{name} (sha256 {here[name][:12]} here, {driver[name][:12]} on the driver)")
    return found


def _sha256(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError as exc:
        return f"unreadable: {exc.strerror}"
