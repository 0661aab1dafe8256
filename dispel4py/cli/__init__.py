"""The ``dispel4py`` command line: the only place that parses arguments, prints, configures
logging and exits. ``command`` is the command itself (``dispel4py <mapping> <workflow>``);
``args``, ``observe``, ``replay``, ``draw``, ``worker`` and ``pe_logs`` are its parts.
The console script is ``dispel4py.cli:console_main``."""

from dispel4py.cli.command import console_main, format_stats, get_parser, main, print_outputs, render_outputs

__all__ = ["console_main", "format_stats", "get_parser", "main", "print_outputs", "render_outputs"]
