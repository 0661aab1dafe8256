"""Options that belong to other mappings: accepted, ignored, and named in one warning.

Scripts run one workflow on several mappings with the same flags
(``for m in simple multi mpi; do dispel4py $m wf.py -n 4; done``), and the original's
``simple`` ignored ``-n``. So every mapping accepts the options of the other mappings (and
the original's ``--provenance-*`` options), ignores them and says so once. An option that
no mapping knows is still a usage error, with the nearest known option suggested.

The same rule holds for :func:`dispel4py.run`: ``run(graph, mapping="simple", num=2)``
ignores ``num`` with a warning; ``run(graph, mapping="simple", nmu=2)`` is an error.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from dispel4py.errors import did_you_mean

__all__ = [
    "PROVENANCE_OPTIONS",
    "OptionParser",
    "add_other_options",
    "warn_ignored_options",
    "other_mapping_dests",
]

# The original re-read these from sys.argv when --provenance-config was given.
PROVENANCE_OPTIONS = (
    "--provenance-repository-url",
    "--provenance-export-url",
    "--provenance-path",
    "--provenance-bulk-size",
    "--provenance-runid",
    "--provenance-userid",
    "--provenance-bearer-token",
)
_PROVENANCE = "the original's provenance"
_DEST = "ignored_options"


def _option_owners(mapping: str | None) -> dict[str, tuple[str, set[str]]]:
    """Each option string of the other mappings -> (kind, the mappings that define it)."""
    from dispel4py.cli_args import _AMBIGUOUS, _OPTIONAL, _mapping_options

    found: dict[str, tuple[str, set[str]]] = {}
    for family in ("builtin", "plugin"):
        for name, kinds in _mapping_options(family).items():
            if name == mapping:
                continue
            for option, kind in kinds.items():
                known_kind, owners = found.get(option, (kind, set()))
                found[option] = (known_kind if known_kind == kind else _AMBIGUOUS, owners | {name})
    for option in PROVENANCE_OPTIONS:
        found.setdefault(option, (_OPTIONAL, {_PROVENANCE}))
    return found


class _Ignore(argparse.Action):
    """Records ``(option, value, owners)`` in ``namespace.ignored_options``."""

    def __init__(self, *args: Any, owners: Sequence[str] = (), **kwargs: Any) -> None:
        self.owners = tuple(owners)
        super().__init__(*args, **kwargs)

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        value = None if values is True or values == [] else values
        seen = list(getattr(namespace, _DEST, []) or [])
        setattr(namespace, _DEST, [*seen, (option_string, value, self.owners)])


def add_other_options(parser: argparse.ArgumentParser, mapping: str | None) -> None:
    """Let ``parser`` (the parser of ``mapping``) accept, hidden, every other mapping's options.

    ``namespace.ignored_options`` is always set (``[]`` when none was given), so it is never
    taken for an option of the mapping.
    """
    parser.set_defaults(**{_DEST: []})
    if mapping is None:
        return
    from dispel4py.cli_args import _FLAG, _VALUE
    from dispel4py.mappings import resolve_name

    taken = {s for action in parser._actions for s in action.option_strings}
    for option, (kind, owners) in sorted(_option_owners(resolve_name(mapping)).items()):
        if option in taken:
            continue
        nargs: Any = 0 if kind == _FLAG else None if kind == _VALUE else "?"
        parser.add_argument(
            option,
            action=_Ignore,
            nargs=nargs,
            const=True,
            default=argparse.SUPPRESS,
            help=argparse.SUPPRESS,
            owners=sorted(owners),
            dest=f"_other{option}",
        )


def warn_ignored_options(mapping: str, ignored: Iterable[tuple[str, Any, Sequence[str]]]) -> None:
    """One warning naming every option of another mapping that was given (none: nothing)."""
    entries = [
        (option if value is None else f"{option} {value}", owners) for option, value, owners in ignored
    ]
    if entries:
        from dispel4py.mappings import resolve_name

        logging.getLogger("dispel4py.cli").warning("%s", ignoring_message(resolve_name(mapping), entries))


def ignoring_message(mapping: str, entries: Sequence[tuple[str, Iterable[str]]]) -> str:
    """``ignoring options of other mappings, not of simple: -n 4 (multi, mpi), -s (multi)``."""
    from dispel4py.mappings import BUILTIN

    order = {name: i for i, name in enumerate(BUILTIN)}
    shown = ", ".join(
        f"{given} ({', '.join(sorted(set(owners), key=lambda o: (order.get(o, len(order)), o)))})"
        for given, owners in entries
    )
    return f"ignoring options of other mappings, not of {mapping}: {shown}"


class OptionParser(argparse.ArgumentParser):
    """argparse, with a did-you-mean for an option no mapping knows."""

    def error(self, message: str) -> Any:
        prefix = "unrecognized arguments: "
        if message.startswith(prefix):
            unknown = message[len(prefix) :].split()
            options = [token for token in unknown if token.startswith("-")]
            if options:
                known = {s for action in self._actions for s in action.option_strings}
                known |= set(_option_owners(None))
                name = options[0].split("=", 1)[0]
                message = (
                    f"unknown option '{name}'{did_you_mean(name, sorted(known))}: it is not an option "
                    "of dispel4py or of any mapping (see dispel4py <mapping> --help)"
                )
            else:
                message = f"unexpected argument '{unknown[0]}': dispel4py <mapping> <workflow> [options]"
        return super().error(message)


def other_mapping_dests(mapping: str) -> dict[str, list[str]]:
    """Option names (``num``, ``redis_ip``) of the other mappings -> the mappings using them,
    for :func:`dispel4py.run`'s keyword options."""
    import importlib

    from dispel4py.mappings import BUILTIN, _plugins

    classes: dict[str, Any] = {}
    for name, info in BUILTIN.items():
        if name == mapping or info.target is None:
            continue
        module_name, _, class_name = info.target.partition(":")
        try:
            classes[name] = getattr(importlib.import_module(module_name), class_name)
        except ImportError:
            continue
    for name, entry_point in _plugins().items():
        if name != mapping:
            try:
                classes[name] = entry_point.load()
            except Exception:  # a broken plug-in is reported when it is the one asked for
                continue
    found: dict[str, list[str]] = {}
    for name, cls in classes.items():
        probe = argparse.ArgumentParser(add_help=False)
        cls.add_arguments(probe)
        for action in probe._actions:
            found.setdefault(action.dest, []).append(name)
    return found


def split_options(
    mapping: str, own: Iterable[str], options: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, list[str]], list[str]]:
    """(this mapping's options, other mappings' options -> owners, unknown names)."""
    own = set(own)
    mine = {k: v for k, v in options.items() if k in own}
    rest = [k for k in options if k not in own]
    if not rest:
        return mine, {}, []
    others = other_mapping_dests(mapping)
    ignored = {k: others[k] for k in rest if k in others}
    unknown = [k for k in rest if k not in others]
    return mine, ignored, unknown
