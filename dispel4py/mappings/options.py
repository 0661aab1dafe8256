"""Which options belong to which mapping, read from the mappings' own parsers.

Two uses: finding the mapping name in a command line whose options may come first (an
option's value must not be taken for the mapping: :func:`mapping_option_kind`), and the
options of other mappings, accepted, ignored, and named in one warning:

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
import importlib
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from dispel4py.mappings import BUILTIN, plugins, resolve_name

__all__ = [
    "PROVENANCE_OPTIONS",
    "FLAG",
    "VALUE",
    "OPTIONAL",
    "AMBIGUOUS",
    "add_other_options",
    "ignoring_message",
    "known_option_strings",
    "mapping_option_kind",
    "option_kinds",
    "other_mapping_dests",
    "split_options",
    "warn_ignored_options",
]

_log = logging.getLogger(__name__)

# The original's provenance options that are accepted and ignored (the others are the
# CLI's own, cli/args.py add_provenance_arguments).
PROVENANCE_OPTIONS = ("--provenance-export-url",)
_PROVENANCE = "the original's provenance"
_DEST = "ignored_options"


# How options take values, so that an option's value before the mapping name is not taken for
# the mapping (``dispel4py -n 2 multi wf.py``). Read from the parsers themselves: the common
# one and every mapping's ``add_arguments``, never from a hand-written list.
FLAG, VALUE, OPTIONAL, AMBIGUOUS = "flag", "value", "optional value", "ambiguous"
_MAPPING_OPTIONS: dict[str, dict[str, dict[str, str]]] = {}  # "builtin"/"plugin" -> name -> kinds


def option_kinds(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each option string of ``parser`` -> FLAG, VALUE or OPTIONAL (``nargs="?"``)."""
    kinds: dict[str, str] = {}
    for action in parser._actions:
        kind = FLAG if action.nargs == 0 else OPTIONAL if action.nargs == "?" else VALUE
        kinds.update(dict.fromkeys(action.option_strings, kind))
    return kinds


def _probe(mapping_cls: Any) -> argparse.ArgumentParser:
    probe = argparse.ArgumentParser(add_help=False)
    mapping_cls.add_arguments(probe)
    return probe


def _mapping_classes(family: str) -> Iterator[tuple[str, Any]]:
    """``(name, class)`` of the built-in or plug-in mappings that can be loaded.

    Built-in mapping modules are imported directly (not through ``get_mapping``): they import
    their optional dependencies (mpi4py, zmq, multiprocess) only when a run starts, so this
    works, and stays cheap, whether or not those are installed. One that cannot be loaded is
    reported by ``get_mapping`` when it is the one asked for.
    """
    if family == "builtin":
        for name, info in BUILTIN.items():
            if info.target is None:
                continue
            module_name, _, class_name = info.target.partition(":")
            try:
                yield name, getattr(importlib.import_module(module_name), class_name)
            except ImportError:
                continue
        return
    for name, entry_point in plugins().items():
        try:
            yield name, entry_point.load()
        except Exception as exc:  # a broken plug-in is reported when it is the one asked for
            _log.debug("cannot read the options of mapping plug-in %s: %s", name, exc)


def _mapping_options(family: str) -> dict[str, dict[str, str]]:
    """Option kinds per mapping name, built-ins or plug-ins, computed once."""
    if family not in _MAPPING_OPTIONS:
        _MAPPING_OPTIONS[family] = {name: option_kinds(_probe(cls)) for name, cls in _mapping_classes(family)}
    return _MAPPING_OPTIONS[family]


def mapping_option_kind(option: str) -> str | None:
    """How the mappings that define ``option`` take its value (plug-ins only if no built-in does)."""
    for family in ("builtin", "plugin"):
        kinds = {k[option] for k in _mapping_options(family).values() if option in k}
        if kinds:
            return kinds.pop() if len(kinds) == 1 else AMBIGUOUS
    return None


def _option_owners(mapping: str | None) -> dict[str, tuple[str, set[str]]]:
    """Each option string of the other mappings -> (kind, the mappings that define it)."""
    found: dict[str, tuple[str, set[str]]] = {}
    for family in ("builtin", "plugin"):
        for name, kinds in _mapping_options(family).items():
            if name == mapping:
                continue
            for option, kind in kinds.items():
                known_kind, owners = found.get(option, (kind, set()))
                found[option] = (known_kind if known_kind == kind else AMBIGUOUS, owners | {name})
    for option in PROVENANCE_OPTIONS:
        found.setdefault(option, (OPTIONAL, {_PROVENANCE}))
    return found


def known_option_strings() -> set[str]:
    """Every option string some mapping (or the original's provenance) defines."""
    return set(_option_owners(None))


class _Ignore(argparse.Action):
    """Records ``(option, value, owners)`` in ``namespace.ignored_options``."""

    def __init__(self, *args: Any, owners: Sequence[str] = (), **kwargs: Any) -> None:
        self.owners = tuple(owners)
        super().__init__(*args, **kwargs)

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        value = None if values is True or values == [] else values
        seen = list(getattr(namespace, _DEST, []) or [])
        setattr(namespace, _DEST, [*seen, (option_string, value, self.owners)])


def add_other_options(
    parser: argparse.ArgumentParser, mapping: str | None, argv: Sequence[str] | None = None
) -> None:
    """Let ``parser`` (the parser of ``mapping``) accept, hidden, every other mapping's options.

    ``namespace.ignored_options`` is always set (``[]`` when none was given), so it is never
    taken for an option of the mapping. ``argv``: the command line, when known; if every
    option in it is exactly one of ``parser``'s (it does not abbreviate), the others could not
    match anything and are not added: finding them imports every mapping and reads the
    installed packages' plug-ins, a tenth of a second of every command.
    """
    parser.set_defaults(**{_DEST: []})
    if mapping is None:
        return
    taken = {s for action in parser._actions for s in action.option_strings}
    if argv is not None and all(_is_one_of(token, taken) for token in argv if token.startswith("-")):
        return
    for option, (kind, owners) in sorted(_option_owners(resolve_name(mapping)).items()):
        if option in taken:
            continue
        nargs: Any = 0 if kind == FLAG else None if kind == VALUE else "?"
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


def _is_one_of(token: str, options: set[str]) -> bool:
    """``token`` is exactly one of ``options`` (``--name=value`` too): anything else (a cluster
    of short flags, a value that starts with ``-``, ``--``) counts as unknown."""
    return token in options or (token.startswith("--") and token.partition("=")[0] in options)


def warn_ignored_options(mapping: str, ignored: Iterable[tuple[str, Any, Sequence[str]]]) -> None:
    """One warning naming every option of another mapping that was given (none: nothing)."""
    entries = [
        (option if value is None else f"{option} {value}", owners) for option, value, owners in ignored
    ]
    if entries:
        logging.getLogger("dispel4py.cli").warning("%s", ignoring_message(resolve_name(mapping), entries))


def ignoring_message(mapping: str, entries: Sequence[tuple[str, Iterable[str]]]) -> str:
    """``ignoring options of other mappings, not of simple: -n 4 (multi, mpi), -s (multi)``."""
    order = {name: i for i, name in enumerate(BUILTIN)}
    shown = ", ".join(
        f"{given} ({', '.join(sorted(set(owners), key=lambda o: (order.get(o, len(order)), o)))})"
        for given, owners in entries
    )
    return f"ignoring options of other mappings, not of {mapping}: {shown}"


def other_mapping_dests(mapping: str) -> dict[str, list[str]]:
    """Option names (``num``, ``redis_ip``) of the other mappings -> the mappings using them,
    for :func:`dispel4py.run`'s keyword options."""
    found: dict[str, list[str]] = {}
    for family in ("builtin", "plugin"):
        for name, cls in _mapping_classes(family):
            if name != mapping:
                for action in _probe(cls)._actions:
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
