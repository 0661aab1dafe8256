"""Turning a user exception into a :class:`WorkflowFailed` that can cross processes."""

from __future__ import annotations

import os
import reprlib
import traceback
from typing import Any

from dispel4py.errors import WorkflowFailed

__all__ = ["wrap_failure", "short_repr", "user_traceback"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_EXAMPLES_DIR = os.path.join(_PACKAGE_DIR, "examples")


def _make_repr() -> reprlib.Repr:
    r = reprlib.Repr()
    r.maxstring, r.maxother, r.maxlist, r.maxdict, r.maxlevel = 60, 60, 6, 6, 3
    return r


_REPR = _make_repr()


def short_repr(item: Any) -> str:
    try:
        return _REPR.repr(item)
    except Exception:  # a broken __repr__ must not hide the real error
        return f"<{type(item).__name__} object>"


def user_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` without dispel4py's own frames (user code only)."""
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if not f.filename.startswith(_PACKAGE_DIR) or f.filename.startswith(_EXAMPLES_DIR)
    ]
    text = "Traceback (most recent call last):\n" if frames else ""
    text += "".join(traceback.format_list(frames))
    return text + "".join(traceback.format_exception_only(type(exc), exc))


def wrap_failure(
    pe_id: str,
    instance: int,
    phase: str,
    port: str | None,
    item: Any,
    exc: BaseException,
    where: str = "",
) -> WorkflowFailed:
    has_item = phase == "process" and (port is not None or item is not None)
    return WorkflowFailed(
        pe_id,
        instance,
        phase,
        port=port,
        item_repr=short_repr(item) if has_item else None,
        error=_describe(exc),
        user_traceback=user_traceback(exc),
        where=where,
    )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r}); a PE must raise an exception or return, not exit"
    return f"{type(exc).__name__}: {exc}"
