"""The ``dispel4py`` command's arguments: the common options, each mapping's own, and how
the mapping is found in an argument list where options may come before its name (the
options of every mapping are known, so that a value is never mistaken for the mapping).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from dispel4py import __version__
from dispel4py.cli.observe import add_observation_arguments
from dispel4py.cli.parser import OptionParser
from dispel4py.cli.replay import add_replay_arguments
from dispel4py.errors import UsageError, did_you_mean
from dispel4py.mappings import BUILTIN, available_mappings, get_mapping, mapping_status, resolve_name
from dispel4py.mappings.options import (
    AMBIGUOUS,
    FLAG,
    OPTIONAL,
    VALUE,
    add_other_options,
    mapping_option_kind,
    option_kinds,
)

__all__ = ["get_parser"]

# the commands besides running a workflow, one line each (main() in cli/command.py dispatches them)
COMMANDS = """\
other commands: dispel4py COMMAND ... (each has --help)
  worker --redis-url URL   join a Redis run as one more worker
  status --redis-url URL   the Redis runs in progress and the worker agents (--watch, --json)
  replay FILE [--pdb]      run the PE call a failed run saved again
  plan MAPPING WORKFLOW    print the layout and run nothing
  draw WORKFLOW            draw the workflow (dot, mmd, svg, png)

Mappings and their status: dispel4py --list-mappings."""


def _common_parser(mapping: str | None, argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    parser = OptionParser(
        prog="dispel4py",
        description="Run a dispel4py workflow on a mapping (simple, multi, zmq_multi, mpi, ...).",
        epilog=COMMANDS,
        formatter_class=argparse.RawDescriptionHelpFormatter,  # the epilog's lines stay lines
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"dispel4py {__version__}")
    parser.add_argument(
        "--list-mappings", action="store_true", help="list the mappings, their status and needs"
    )
    parser.add_argument("target", metavar="mapping", help="mapping name, e.g. simple or multi")
    parser.add_argument("module", metavar="workflow", help="workflow module name or .py file")
    parser.add_argument("-a", "--attr", help="name of the graph variable in the workflow module")
    parser.add_argument("-f", "--file", help="JSON file with the inputs (overrides -d and -i)")
    parser.add_argument("-d", "--data", help="inputs as JSON, e.g. '{\"TestProducer0\": 5}'")
    parser.add_argument("-i", "--iter", type=int, default=1, help="iterations of every source PE (default 1)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more diagnostics (-vv: debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only results and errors")
    parser.add_argument(
        "--stats", action="store_true", help="print a table per PE (instances, items, busy time)"
    )
    parser.add_argument(
        "--log-to-stderr",
        action="store_true",
        help="PE self.log() lines to stderr (default: stdout, with the results, as the original)",
    )
    add_provenance_arguments(parser)
    add_observation_arguments(parser)  # --progress, -o/--output-json, --stats-json, --log-*, --plan
    add_replay_arguments(parser)  # --no-replay-file, --replay-dir
    if mapping is not None:
        group = parser.add_argument_group(f"options of the {mapping} mapping")
        get_mapping(mapping).add_arguments(group)
    add_other_options(parser, mapping, argv)  # accepted, ignored with a warning (mappings/options.py)
    return parser


def add_provenance_arguments(parser: argparse.ArgumentParser) -> None:
    """The original's provenance options (docs/provenance.md)."""
    group = parser.add_argument_group("provenance (the lineage of every result; docs/provenance.md)")
    group.add_argument(
        "--provenance-config",
        dest="provenance",
        nargs="?",
        const="inline",
        metavar="FILE|inline",
        help="record provenance: a JSON config file, or 'inline' (the workflow's configure_prov_run)",
    )
    for flag, metavar, text in (
        ("--provenance-path", "DIR", "folder of the bulk JSON files (save mode 'file')"),
        ("--provenance-bulk-size", "N", "records per file or POST (default 1000)"),
        ("--provenance-runid", "ID", "the run id (default <host>-<pid>-<uuid1>)"),
        ("--provenance-userid", "USER", "the user named in the records (default anonymous)"),
        ("--provenance-repository-url", "URL", "S-ProvFlow repository to POST to (save mode 'service')"),
        ("--provenance-bearer-token", "TOKEN", "sent as 'Authorization: Bearer TOKEN' to the repository"),
    ):
        group.add_argument(flag, dest=flag.lstrip("-").replace("-", "_"), metavar=metavar, help=text)


def provenance_given(args: argparse.Namespace) -> Any:
    """What the command line asks of provenance, for ``dispel4py.provenance.asked``: ``True``
    when a ``--provenance-*`` flag is given, else ``None`` (the workflow decides)."""
    given = args.provenance is not None or any(
        value is not None for name, value in vars(args).items() if name.startswith("provenance_")
    )
    return True if given else None


def get_parser() -> argparse.ArgumentParser:
    """The full parser with every available mapping's options (for the man page)."""
    parser = _common_parser(None)
    taken = {s for action in parser._actions for s in action.option_strings}
    for name in BUILTIN:
        if mapping_status(name) != "available":
            continue
        group = parser.add_argument_group(f"options of the {name} mapping")
        probe = argparse.ArgumentParser(add_help=False)
        get_mapping(name).add_arguments(probe)
        for action in probe._actions:
            free = [s for s in action.option_strings if s not in taken]
            if not free:
                continue
            action.option_strings = free
            taken.update(free)
            group._add_action(action)
    return parser


def _classify(token: str, common: dict[str, str]) -> tuple[str | None, list[str]]:
    """(kind, mapping options used) for an argument starting with '-'; kind None: unknown.

    Mirrors argparse: ``--opt=value``, ``-n4`` and ``-sn 4`` (flags and a last short option
    that takes the next argument).
    """
    name = token.split("=", 1)[0] if token.startswith("--") else token
    kind = common.get(name) or mapping_option_kind(name)
    if kind is not None or token.startswith("--") or len(token) <= 2:
        mapping_option = [name] if kind is not None and name not in common else []
        return (FLAG if name != token and kind is not None else kind), mapping_option
    used: list[str] = []
    for position, char in enumerate(token[1:], start=2):
        option = "-" + char
        kind = common.get(option) or mapping_option_kind(option)
        if kind is None:
            return None, used
        if kind == AMBIGUOUS:
            return kind, [*used, option]
        if option not in common:
            used.append(option)
        if kind != FLAG:
            return (FLAG if position < len(token) else kind), used  # -n4: the value is attached
    return FLAG, used


def _find_mapping(argv: Sequence[str]) -> str | None:
    """The mapping name: the first positional argument, skipping the values of options.

    Options may come before the mapping name (``dispel4py -n 2 multi wf.py``); argparse,
    given that mapping's parser, then reads them wherever they are.
    """
    common = option_kinds(_common_parser(None))
    before: list[str] = []  # mapping options given before the mapping name
    unknown: str | None = None
    index = 0
    while index < len(argv):
        token = argv[index]
        if token == "--":
            return argv[index + 1] if index + 1 < len(argv) else None
        if token == "-" or not token.startswith("-"):
            _check_options_before(token, before, unknown)
            return token
        kind, used = _classify(token, common)
        before += used
        if kind == AMBIGUOUS:
            raise UsageError(
                f"option '{token}' before the mapping name takes a value in some mappings and not "
                "in others; put mapping options after the mapping name and the workflow: "
                f"dispel4py <mapping> <workflow> {token} ..."
            )
        if kind is None:
            unknown = unknown or token
        nxt = argv[index + 1] if index + 1 < len(argv) else None
        skip = kind == VALUE or (kind == OPTIONAL and nxt is not None and not nxt.startswith("-"))
        index += 2 if skip else 1
    return None


def _check_options_before(name: str, before: list[str], unknown: str | None) -> None:
    """An unknown option before an unknown mapping name: say both at once."""
    if not before and unknown is None:
        return
    names = [row[0] for row in available_mappings()]
    mapping = resolve_name(name)
    if mapping not in names:
        if unknown is None:
            return  # get_mapping reports the unknown name, with a did-you-mean
        raise UsageError(
            f"'{name}' is not a mapping{did_you_mean(name, names)} and '{unknown}' is not an option "
            "of dispel4py or of any mapping; write dispel4py <mapping> <workflow> [options], e.g. "
            f"dispel4py multi workflow.py -n 4 (mappings: {', '.join(names)})"
        )
    # options of other mappings are accepted and ignored with a warning (mappings/options.py)
