"""Showing a run while it goes: the live table on a terminal, or ``-v`` progress lines.

Both read a :class:`~dispel4py.observe.live.LiveBoard` from a thread of their own, so the driver's
loop does nothing for them. The table is drawn by ``rich`` (imported only when a table is
drawn: a run without a terminal never loads it), one row per PE: instances, items in and
out, the rate of items in over the last seconds, what waits in the inboxes (tasks on the
dynamic mappings), and how busy its instances are; the title has the mapping, workers and
elapsed time. While the table is shown, log lines (relayed from workers too) are printed
above it, and so is what PEs print when stdout is the same terminal; stdout that goes
elsewhere (``> out.txt``) is left alone.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import IO, Any

from dispel4py.observe.live import LiveBoard, PEProgress, Progress

__all__ = ["render", "render_text", "progress_line", "LiveDisplay", "ProgressLines"]

_log = logging.getLogger("dispel4py.progress")
_COLUMNS = ("PE", "instances", "items in", "items out", "rate/s", "queued", "busy")


def _count(n: int) -> str:
    return f"{n:,}"


def _rate(rate: float) -> str:
    return f"{rate:,.1f}" if rate < 100 else f"{rate:,.0f}"


def _cells(row: PEProgress) -> tuple[str, ...]:
    return (
        row.pe,
        str(row.instances),
        _count(row.items_in),
        _count(row.items_out),
        _rate(row.rate),
        _count(row.queued),
        f"{row.busy:.0%}",
    )


def _title(progress: Progress) -> str:
    workers = f"{progress.workers} worker{'s' if progress.workers != 1 else ''}"
    state = "done in" if progress.finished else "running"
    return f"dispel4py {progress.mapping} · {workers} · {state} {progress.elapsed_s:.1f} s"


def render(progress: Progress) -> Any:
    """The table for ``progress`` (a ``rich`` renderable)."""
    from rich.table import Table

    table = Table(title=_title(progress), title_justify="left", box=None, pad_edge=False)
    for i, column in enumerate(_COLUMNS):
        header = f"queued ({progress.queued_unit})" if column == "queued" else column
        table.add_column(header, justify="left" if i == 0 else "right", no_wrap=True)
    for row in progress.pes:
        table.add_row(*_cells(row))
    return table


def render_text(progress: Progress, width: int = 100) -> str:
    """The table as plain text (no colours, no terminal codes), e.g. for a transcript."""
    import io

    from rich.console import Console

    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None, force_terminal=False, highlight=False)
    console.print(render(progress))
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines())


def progress_line(progress: Progress) -> str:
    """One ``-v`` line: every PE's counters in a row."""
    parts = []
    for row in progress.pes:
        text = f"{row.pe} {_count(row.items_in)} in {_count(row.items_out)} out {_rate(row.rate)}/s"
        if row.queued:
            text += f" {_count(row.queued)} queued"
        text += f" busy {row.busy:.0%}"
        parts.append(text)
    return f"progress {progress.elapsed_s:.1f} s: " + "; ".join(parts)


def _same_terminal(a: IO[str], b: IO[str]) -> bool:
    try:
        return a.isatty() and b.isatty() and os.path.samestat(os.fstat(a.fileno()), os.fstat(b.fileno()))
    except (OSError, ValueError, AttributeError):
        return False


class LiveDisplay:
    """The live table on stderr for the length of a run (a context manager).

    ``force``: draw even when stderr is not a terminal (``--progress``), e.g. under mpiexec,
    whose ranks write to pipes that end on the user's terminal."""

    def __init__(self, board: LiveBoard, *, force: bool = False, refresh_per_second: float = 2.0) -> None:
        self.board, self.force, self.refresh_per_second = board, force, refresh_per_second
        self._live: Any = None
        self._swapped: list[tuple[logging.StreamHandler, Any]] = []

    def __enter__(self) -> LiveDisplay:
        from rich.console import Console
        from rich.live import Live

        stderr, stdout = sys.stderr, sys.stdout
        console = Console(file=stderr, force_terminal=True if self.force else None, highlight=False)
        self._live = Live(
            get_renderable=lambda: render(self.board.progress()),
            console=console,
            refresh_per_second=self.refresh_per_second,
            transient=False,
            redirect_stderr=True,
            redirect_stdout=_same_terminal(stdout, stderr),
        )
        self._live.start()
        self._swap_handlers({id(stderr): sys.stderr, id(stdout): sys.stdout})
        return self

    def _swap_handlers(self, streams: dict[int, Any]) -> None:
        """Log handlers write to the streams they were given; while the table is shown they
        write through rich, which prints their lines above it."""
        for handler in logging.getLogger("dispel4py").handlers + logging.getLogger().handlers:
            stream = getattr(handler, "stream", None)
            if isinstance(handler, logging.StreamHandler) and id(stream) in streams:
                replacement = streams[id(stream)]
                if replacement is not stream:
                    self._swapped.append((handler, stream))
                    handler.setStream(replacement)

    def __exit__(self, *exc_info: object) -> None:
        live, self._live = self._live, None
        if live is None:
            return
        try:
            live.stop()  # draws the last state: the run's totals when it ended normally
        finally:
            for handler, stream in self._swapped:
                handler.setStream(stream)
            self._swapped.clear()


class ProgressLines:
    """``-v`` without the table: a progress line every ``every`` seconds (a context manager)."""

    def __init__(self, board: LiveBoard, every: float) -> None:
        self.board, self.every = board, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="dispel4py-progress", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            _log.info("%s", progress_line(self.board.progress()))

    def __enter__(self) -> ProgressLines:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
