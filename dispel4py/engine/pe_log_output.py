"""Where ``self.log(...)`` lines go when the application has not configured logging.

``GenericPE.log`` logs at INFO on ``dispel4py.pe.<id>``. The command line routes those
records itself. A script calling :func:`dispel4py.run` usually configures nothing, and
Python would then drop INFO records (its last-resort handler shows warnings only), so
the PE author's lines would vanish. So, when a run starts, :func:`ensure_pe_log_output`:

* sets the level of the ``dispel4py.pe`` logger to INFO if nobody set it (so the lines
  also reach an application's handlers when its root logger is at WARNING);
* adds one handler to that logger (never to the root logger) that prints a record on
  stdout, as the original dispel4py did, **only if no handler is configured** on the root
  logger or on ``dispel4py`` when the record arrives: as soon as the application sets up
  logging (``logging.basicConfig()``, a framework, pytest), its handlers get the lines
  instead, and this one stays silent.

To silence PE lines: ``logging.getLogger("dispel4py.pe").setLevel(logging.WARNING)``.
Nothing is done when the ``dispel4py`` logger has handlers: the command line (and a worker
process) route these lines themselves.
"""

from __future__ import annotations

import logging
import sys

__all__ = ["ensure_pe_log_output"]

_PE_LOGGER = "dispel4py.pe"


class _UnconfiguredHandler(logging.Handler):
    """Prints PE lines on stdout while the application has no handler of its own."""

    def emit(self, record: logging.LogRecord) -> None:
        if _configured():
            return
        try:
            sys.stdout.write(self.format(record) + "\n")
            sys.stdout.flush()
        except Exception:
            self.handleError(record)


def _configured() -> bool:
    others = [h for h in logging.getLogger(_PE_LOGGER).handlers if not isinstance(h, _UnconfiguredHandler)]
    return bool(others or logging.getLogger().handlers or logging.getLogger("dispel4py").handlers)


def ensure_pe_log_output() -> None:
    """Make ``self.log`` lines visible in a program that configured no logging (idempotent)."""
    logger = logging.getLogger(_PE_LOGGER)
    if logging.getLogger("dispel4py").handlers:  # the CLI (or a worker) set up dispel4py's logging
        return
    if any(isinstance(h, _UnconfiguredHandler) for h in logger.handlers):
        return
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    logger.addHandler(_UnconfiguredHandler())
