"""The CLI's side of provenance: turning it on for a run from the ``--provenance-*`` flags,
and ``dispel4py prov export|trace DIR`` (docs/provenance.md)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from dispel4py.errors import Dispel4PyError
from dispel4py.provenance.config import FLAGS, config_from_sources
from dispel4py.provenance.export import FORMATS, export
from dispel4py.provenance.reading import LineageIndex
from dispel4py.provenance.recorder import LineageRecording
from dispel4py.provenance.setup import INLINE_DEFAULT_PATH
from dispel4py.provenance.trace import sources_of, trace_lines

__all__ = ["provenance_recording", "main"]


def provenance_recording(args: argparse.Namespace, graph: Any) -> LineageRecording:
    """The run's recorder, when ``dispel4py.provenance.asked`` says the run records (a
    ``--provenance-*`` flag, or the workflow called ``configure_prov_run``)."""
    flags = {field: getattr(args, flag.lstrip("-").replace("-", "_"), None) for flag, field in FLAGS.items()}
    inline = getattr(graph, "provenance_config", None)
    # the workflow alone asked (configure_prov_run): the original's default folder, ./
    default_path = INLINE_DEFAULT_PATH if args.provenance is None and flags["path"] is None else None
    if args.provenance is not None and flags["path"] is None:
        default_path = None  # --provenance-config in file mode needs --provenance-path (the original)
    config = config_from_sources(inline, args.provenance, flags, default_path=default_path)
    return LineageRecording(config, args.target)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dispel4py prov", description="Read the provenance records of a run (--provenance-path DIR)."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    exporting = commands.add_parser("export", help="the records as W3C PROV")
    exporting.add_argument("folder", metavar="DIR")
    exporting.add_argument("--format", "-f", default="provn", choices=FORMATS)
    exporting.add_argument("-o", "--output", help="file to write (default: stdout)")
    exporting.add_argument("--run-id", help="the run to export when DIR holds several")
    tracing = commands.add_parser("trace", help="the derivations of one result back to its sources")
    tracing.add_argument("folder", metavar="DIR")
    tracing.add_argument(
        "target", metavar="ID|PE:port:index", help="an output id, or e.g. WordCounter1:output:0"
    )
    tracing.add_argument("--run-id", help="the run to read when DIR holds several")
    tracing.add_argument("--limit", type=int, default=20, help="derivations shown per item (default 20)")
    return parser


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    try:
        if args.command == "export":
            data = export(args.folder, args.format, args.run_id)
            if args.output:
                with open(args.output, "wb") as handle:
                    handle.write(data)
            else:
                sys.stdout.buffer.write(data)
                sys.stdout.flush()
            return 0
        index = LineageIndex.load(args.folder, args.run_id)
        start = index.find(args.target)
        print("\n".join(trace_lines(index, start, args.limit)))
        sources = sources_of(index, start)
        print(f"{len(sources)} source item(s): " + ", ".join(f"{s.pe}:{s.port} {s.id}" for s in sources[:10]))
        return 0
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        return 0
    except (Dispel4PyError, OSError) as exc:
        print(f"dispel4py prov: error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)
