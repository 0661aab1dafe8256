"""Finding a workflow given by module name as ``python -m`` would, and suggesting a file.

``dispel4py simple squares`` beside ``squares.py`` must work: ``python -m`` puts the
current directory on ``sys.path``, while the ``dispel4py`` console script's ``sys.path``
starts with its own bin folder. The current directory is only added when the module is not
found otherwise, so an installed module is never shadowed by a file that happens to be here.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from types import ModuleType

__all__ = ["import_workflow", "near_files"]


def import_workflow(source: str) -> ModuleType:
    """``importlib.import_module(source)``, retried with the current directory on sys.path."""
    try:
        return importlib.import_module(source)
    except ModuleNotFoundError as exc:
        top = source.split(".")[0]
        here = os.getcwd()
        searched = here in sys.path or "" in sys.path
        present = os.path.isfile(os.path.join(here, top + ".py")) or os.path.isdir(os.path.join(here, top))
        if exc.name != top or searched or not present:
            raise
    sys.path.insert(0, here)  # as python -m does; kept, so spawned workers find it too
    importlib.invalidate_caches()
    return importlib.import_module(source)


def near_files(source: str) -> str:
    """`` (did you mean squares.py?)`` for the .py file nearest to ``source``, or ''.

    ``source`` is a module name (``square``, ``tutorial.square``) or a path
    (``examples/sqaures.py``); files are looked for where it points, else here.
    """
    path = source if source.endswith(".py") or os.sep in source else source.replace(".", os.sep) + ".py"
    if not path.endswith(".py"):
        path += ".py"
    folder, name = os.path.split(path)
    try:
        files = [f for f in os.listdir(folder or ".") if f.endswith(".py") and not f.startswith(".")]
    except OSError:
        return ""
    close = difflib.get_close_matches(name, files, n=1, cutoff=0.75)
    if not close or close[0] == name:
        return ""
    return f" (did you mean {os.path.join(folder, close[0])}?)"
