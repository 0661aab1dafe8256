"""The original CLI module path: ``python -m dispel4py.new.processor <mapping> <workflow>``."""

from __future__ import annotations

from collections.abc import Sequence

from dispel4py.cli import console_main
from dispel4py.cli import main as _cli_main

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    return _cli_main(argv)


if __name__ == "__main__":
    console_main()
