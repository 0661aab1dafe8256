"""argparse for the ``dispel4py`` commands: an option no mapping knows gets a did-you-mean
over the options of every mapping (which a parser for one mapping does not list)."""

from __future__ import annotations

import argparse
from typing import Any

from dispel4py.errors import did_you_mean
from dispel4py.mappings.options import known_option_strings

__all__ = ["OptionParser"]


class OptionParser(argparse.ArgumentParser):
    """argparse, with a did-you-mean for an option no mapping knows."""

    def error(self, message: str) -> Any:
        prefix = "unrecognized arguments: "
        if message.startswith(prefix):
            unknown = message[len(prefix) :].split()
            options = [token for token in unknown if token.startswith("-")]
            if options:
                known = {s for action in self._actions for s in action.option_strings}
                known |= known_option_strings()
                name = options[0].split("=", 1)[0]
                message = (
                    f"unknown option '{name}'{did_you_mean(name, sorted(known))}: it is not an option "
                    "of dispel4py or of any mapping (see dispel4py <mapping> --help)"
                )
            else:
                message = f"unexpected argument '{unknown[0]}': dispel4py <mapping> <workflow> [options]"
        return super().error(message)
