"""Where the CLI shows ``self.log`` lines: stdout, as the original printed them.

``dispel4py simple wordcount.py > out.txt`` kept the PEs' log lines with the results in the
original, and users rely on that. Engine messages (``Processing…``, warnings, ``-v``) stay
on stderr. ``--log-to-stderr`` sends the PE lines to stderr with them.

PE lines are the records of the loggers ``dispel4py.pe.<pe id>`` (``GenericPE.log``); in a
worker process they travel to the driver with the other records, so they are printed once,
by the driver (or by their own rank under MPI).
"""

from __future__ import annotations

import logging
import sys

__all__ = ["route_pe_logs", "is_pe_record"]

_PE_PREFIX = "dispel4py.pe."


def is_pe_record(record: logging.LogRecord) -> bool:
    return record.name.startswith(_PE_PREFIX)


class _NotPE(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not is_pe_record(record)


class _OnlyPE(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return is_pe_record(record)


def route_pe_logs(to_stderr: bool = False, quiet: bool = False) -> None:
    """PE log lines to stdout (unless ``to_stderr``), everything else where it already goes;
    none with ``quiet`` (-q: only results and errors).

    Called by the CLI after it has set up its stderr handler on the ``dispel4py`` logger.
    """
    if to_stderr:
        if quiet:
            for handler in logging.getLogger("dispel4py").handlers:
                handler.addFilter(_NotPE())
        return
    root = logging.getLogger("dispel4py")
    for handler in root.handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.stderr, sys.__stderr__):
            handler.addFilter(_NotPE())
    out = logging.StreamHandler(sys.stdout)
    out.setFormatter(logging.Formatter("%(message)s"))
    out.addFilter(_OnlyPE())
    if quiet:
        out.setLevel(logging.ERROR)
    root.addHandler(out)
