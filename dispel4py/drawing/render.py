"""Writing a drawing in a format: DOT, Mermaid, SVG (Graphviz's when ``dot`` is on ``PATH``,
else our own layout, ``svg.py``) or PNG (Graphviz only), to bytes or to a file.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from dispel4py.drawing.model import Drawing
from dispel4py.drawing.svg import to_svg
from dispel4py.drawing.text import to_dot, to_mermaid
from dispel4py.errors import UsageError

__all__ = ["FORMATS", "format_of", "graphviz", "graphviz_missing", "render", "run_dot", "write_drawing"]

# file suffix -> format
FORMATS = {".dot": "dot", ".gv": "dot", ".mmd": "mmd", ".mermaid": "mmd", ".svg": "svg", ".png": "png"}


def graphviz() -> str | None:
    """The path of Graphviz's ``dot``, or None."""
    return shutil.which("dot")


def format_of(path: str | Path, flag: str = "-o") -> str:
    """The drawing format a file name asks for; a usage error naming ``flag`` otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise UsageError(
            f"{flag} {path}: cannot tell the drawing format from '{suffix or 'no suffix'}'; "
            f"use one of {', '.join(FORMATS)}"
        )
    return FORMATS[suffix]


def graphviz_missing(what: str) -> UsageError:
    return UsageError(
        f"{what} needs Graphviz's 'dot' program, which is not on PATH: install Graphviz "
        "(e.g. apt-get install graphviz, brew install graphviz) or write .svg, .dot or .mmd instead"
    )


def run_dot(dot_text: str, fmt: str) -> bytes:
    exe = graphviz()
    if exe is None:
        raise graphviz_missing(f"{fmt.upper()} output")
    try:
        done = subprocess.run([exe, f"-T{fmt}"], input=dot_text.encode(), capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(f"Graphviz 'dot' failed: {exc}") from exc
    if done.returncode != 0:
        raise UsageError(f"Graphviz 'dot -T{fmt}' failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def render(drawing: Drawing, fmt: str) -> bytes:
    """The drawing as ``dot``, ``mmd``, ``svg`` (Graphviz if present, else our own layout)
    or ``png`` (Graphviz only)."""
    if fmt == "dot":
        return to_dot(drawing).encode()
    if fmt == "mmd":
        return to_mermaid(drawing).encode()
    if fmt == "svg":
        if graphviz() is not None:
            return run_dot(to_dot(drawing), "svg")
        return to_svg(drawing).encode()
    if fmt == "png":
        return run_dot(to_dot(drawing), "png")
    raise UsageError(f"unknown drawing format '{fmt}'; formats are: dot, mmd, svg, png")


def write_drawing(drawing: Drawing, path: str | Path, fmt: str | None = None, flag: str = "-o") -> None:
    """Write ``drawing`` to ``path`` (format from the suffix unless ``fmt``); a file that
    cannot be written is a usage error naming ``flag`` and the file."""
    data = render(drawing, fmt or format_of(path, flag))
    try:
        Path(path).write_bytes(data)
    except OSError as exc:
        raise UsageError(f"{flag} {path}: cannot write the drawing: {exc.strerror or exc}") from exc
