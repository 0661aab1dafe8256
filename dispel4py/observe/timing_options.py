"""The options of the ``timed_*`` mappings: the original's monitoring flags, checked
before the run (figure formats, writable folders) so that a bad flag fails before any work.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dispel4py.drawing import graphviz, graphviz_missing
from dispel4py.errors import UsageError

__all__ = ["FILE_OPTIONS", "TimingOptions", "add_timing_arguments", "safe_token"]

# option dest -> (flag, what it names)
FILE_OPTIONS = {
    "summary_file": ("--summary-file", "timing summary per PE"),
    "instance_summary_file": ("--instance-summary-file", "timing summary per PE instance"),
    "iteration_summary_file": ("--iteration-summary-file", "every iteration of every instance"),
    "iteration_latency_summary_file": (
        "--iteration-latency-summary-file",
        "latency summary per instance, from the iterations",
    ),
    "shape_file": ("--shape-file", "abstract workflow shape JSON"),
    "concrete_shape_file": ("--concrete-shape-file", "concrete instance shape JSON"),
    "abstract_figure_file": (
        "--abstract-figure-file",
        "abstract graph figure (.png needs Graphviz, or .svg)",
    ),
    "concrete_figure_file": (
        "--concrete-figure-file",
        "concrete graph figure (.png needs Graphviz, or .svg)",
    ),
}


def add_timing_arguments(parser: Any) -> None:
    """The original's monitoring flags."""
    parser.add_argument(
        "--timing-dir", default="timings", help="folder of the timing files (default timings)"
    )
    parser.add_argument(
        "--timing-prefix", default="monitor", help="prefix of the file names (default monitor)"
    )
    parser.add_argument(
        "--run-id", dest="timing_run_id", default=None, help="run id in the file names (default: UTC time)"
    )
    for dest, (flag, what) in FILE_OPTIONS.items():
        parser.add_argument(flag, dest=dest, default=None, metavar="FILE", help=f"path of the {what}")
    parser.add_argument("--no-graph-figures", action="store_true", help="do not draw the graph figures")
    parser.add_argument(
        "--print-shape", action="store_true", help="log the abstract and concrete nodes, edges and order"
    )


def safe_token(value: Any) -> str:
    """``value`` with every character other than letters, digits, '.', '_', '-' made '_'."""
    token = "".join(c if c.isalnum() or c in "._-" else "_" for c in str(value))
    return token.strip("._") or "unknown"


@dataclass(frozen=True)
class TimingOptions:
    directory: Path
    prefix: str
    run_id: str
    files: dict[str, str | None]
    figures: bool
    print_shape: bool

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> TimingOptions:
        """Checked before the run: figure formats, and that the folder can be written."""
        run_id = options.get("timing_run_id") or datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        timing = cls(
            directory=Path(options.get("timing_dir") or "timings"),
            prefix=str(options.get("timing_prefix") or "monitor"),
            run_id=safe_token(run_id),
            files={dest: options.get(dest) for dest in FILE_OPTIONS},
            figures=not options.get("no_graph_figures"),
            print_shape=bool(options.get("print_shape")),
        )
        if timing.figures:
            for dest in ("abstract_figure_file", "concrete_figure_file"):
                timing.figure_format(dest)
        timing._make_folders()
        return timing

    def path(self, dest: str, default_name: str) -> Path:
        """The explicit file of option ``dest`` (relative ones under the timing folder), or
        ``default_name`` in the timing folder."""
        explicit = self.files.get(dest)
        return self.directory / (explicit or default_name)

    def name(self, middle: str, suffix: str = "csv") -> str:
        return f"{self.prefix}_{middle}_run{self.run_id}.{suffix}"

    def figure_format(self, dest: str) -> str:
        explicit = self.files.get(dest)
        if explicit is None:
            return "png" if graphviz() is not None else "svg"
        fmt = Path(explicit).suffix.lower()[1:]
        if fmt not in ("png", "svg"):
            raise UsageError(f"{FILE_OPTIONS[dest][0]} {explicit}: a figure is .svg, or .png (with Graphviz)")
        if fmt == "png" and graphviz() is None:
            raise graphviz_missing(f"{FILE_OPTIONS[dest][0]} {explicit}")
        return fmt

    @staticmethod
    def flag(dest: str) -> str:
        """The command-line flag of option ``dest`` (named in errors)."""
        return FILE_OPTIONS[dest][0]

    def _make_folders(self) -> None:
        folders = {("--timing-dir", self.directory)}
        for dest, explicit in self.files.items():
            if explicit and (self.figures or "figure" not in dest):
                folders.add((FILE_OPTIONS[dest][0], (self.directory / explicit).parent))
        for flag, folder in sorted(folders, key=lambda f: str(f[1])):
            blocked = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
            if blocked is not None:
                raise UsageError(f"{flag}: cannot create the folder {folder}: {blocked} is a file")
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UsageError(f"{flag}: cannot create the folder {folder}: {exc.strerror or exc}") from exc
            if not os.access(folder, os.W_OK | os.X_OK):
                raise UsageError(f"{flag}: cannot write in the folder {folder} (permission denied)")
