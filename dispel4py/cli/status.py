"""``dispel4py status``: the runs in progress and the standing agents on a Redis server.

    dispel4py status --redis-url URL [--key-file F] [--watch [SECONDS]] [--json]

It only reads: the runs' signed snapshots (``mappings/redis/run_status.py``), their queues'
lengths, and the agents' signed records (``mappings/redis/agents.py``). What is not signed
with the key is counted in one line and never shown; JSON is parsed, nothing is unpickled.

Exit codes: 0 shown (also after Ctrl-C ends ``--watch``), 1 the server cannot be reached or
the key is wrong (records exist, none is signed with it), 2 bad flags.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import IO, Any

from dispel4py.dynamic.signing import Signer, load_key
from dispel4py.errors import Dispel4PyError, TransportError, UsageError
from dispel4py.mappings.redis.agents import AgentRecord, read_agents
from dispel4py.mappings.redis.mapping import add_connection_arguments
from dispel4py.mappings.redis.run_status import STATUS_TTL_MS, RunStatus, read_runs
from dispel4py.mappings.redis.server import CONNECT_TIMEOUT_S, connect, connection_error, resolve_target

__all__ = ["main", "get_parser", "gather", "render_text", "JSON_VERSION"]

JSON_VERSION = 1
DEFAULT_WATCH_S = 2.0
# a record is rewritten every second (runs) or few seconds (agents) and expires soon after:
# one signed this long ago is a copy written back by someone else (or a clock far off)
STALE_S = 30.0
_HOME, _CLEAR_LINE, _CLEAR_BELOW = "\x1b[H", "\x1b[K", "\x1b[J"
_HIDE_CURSOR, _SHOW_CURSOR, _CLEAR_SCREEN = "\x1b[?25l", "\x1b[?25h", "\x1b[2J"


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds (got {text!r})") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds (got {text!r})")
    return value


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dispel4py status",
        description="Show the runs in progress and the worker agents on a Redis server (read only).",
        allow_abbrev=False,
    )
    add_connection_arguments(parser, driver=False)
    parser.add_argument(
        "--watch",
        nargs="?",
        type=_seconds,
        const=DEFAULT_WATCH_S,
        default=None,
        metavar="SECONDS",
        help=f"redraw every SECONDS (default {DEFAULT_WATCH_S:g}) until Ctrl-C",
    )
    parser.add_argument("--json", action="store_true", help="one JSON document (with --watch: one per line)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = get_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        target, signer = _open(args)
        client = connect(target, socket_timeout=CONNECT_TIMEOUT_S, name="dispel4py-status")
        try:
            if args.watch is None:
                _show(sys.stdout, gather(client, signer, target), args.json)
                return 0
            return _watch(client, signer, target, args)
        finally:
            client.close()
    except KeyboardInterrupt:
        return 130
    except UsageError as exc:
        parser.error(str(exc))  # exit 2, with the usage line
    except Dispel4PyError as exc:
        sys.stderr.write(f"dispel4py status: error: {exc}\n")
        return exc.exit_code
    return 0  # unreachable: parser.error exits


def _open(args: argparse.Namespace) -> tuple[Any, Signer]:
    target = resolve_target(vars(args))
    if target is None:
        raise UsageError("name the server: --redis-url URL (or -ri/-rp, or REDIS_HOST/REDIS_PORT)")
    try:
        key = load_key(args.key_file, create=False)
    except (OSError, ValueError) as exc:
        raise UsageError(f"--key-file: {exc}") from exc
    if key is None:
        raise UsageError(
            "the runs' key is needed to tell their records from forged ones: --key-file FILE or DISPEL4PY_KEY"
        )
    return target, Signer(key)


def gather(client: Any, signer: Signer, target: Any) -> dict[str, Any]:
    """The JSON document (version ``JSON_VERSION``, docs/redis.md): what the server holds
    now that is signed with the key. Raises :class:`TransportError` if the server cannot be
    read, and when records exist but none is signed with the key."""
    try:
        runs, forged_runs = read_runs(client, signer)
        agents, forged_agents = read_agents(client, signer)
    except Exception as exc:
        import redis

        if isinstance(exc, redis.RedisError):
            raise connection_error(target, exc) from exc
        raise
    if not runs and not agents and forged_runs + forged_agents:
        raise TransportError(
            f"none of the {forged_runs + forged_agents} dispel4py record(s) on Redis at {target.where} "
            "is signed with this key: is it the runs' key file (--key-file, DISPEL4PY_KEY)?"
        )
    now = time.time()
    fresh_runs = [r for r in runs if now - r.updated <= STALE_S]
    fresh_agents = [a for a in agents if now - a.updated <= STALE_S]
    return {
        "version": JSON_VERSION,
        "server": target.where,
        "time": round(now, 3),
        "runs": [_run_json(r, now) for r in fresh_runs],
        "agents": [_agent_json(a, now) for a in fresh_agents],
        "not_shown": {"runs": forged_runs, "agents": forged_agents},
        "stale": {"runs": len(runs) - len(fresh_runs), "agents": len(agents) - len(fresh_agents)},
    }


def _run_json(run: RunStatus, now: float) -> dict[str, Any]:
    pes = [{k: v for k, v in asdict(pe).items() if k != "streams"} for pe in run.pes]
    # the snapshot is up to a second old; the hosts' clocks may differ, so never add more
    since = min(max(0.0, now - run.updated), STATUS_TTL_MS / 1000)
    return {
        "run": run.run,
        "mapping": run.mapping,
        "driver": run.driver,
        "age_s": round(run.elapsed_s + since, 1),
        "workers": {"local": run.local_workers, "joined": run.joined_workers},
        "backlog": run.backlog,
        "items_per_s": round(sum(pe.items_per_s for pe in run.pes), 2),
        "pes": pes,
    }


def _agent_json(agent: AgentRecord, now: float) -> dict[str, Any]:
    return {
        "agent": agent.agent_id,
        "host": agent.host,
        "pid": agent.pid,
        "tags": list(agent.tags),
        "active": agent.active,
        "parked": agent.parked,
        "min": agent.min,
        "max": agent.max,
        "runs": list(agent.runs),
        "served": agent.served,
        "age_s": round(max(0.0, now - agent.started), 1) if agent.started else None,
    }


def _table(rows: Sequence[tuple[str, ...]], right: set[int], indent: str = "") -> list[str]:
    """Aligned columns; those in ``right`` (numbers) to the right."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        indent
        + "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))
        ).rstrip()
        for r in rows
    ]


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def render_text(doc: dict[str, Any]) -> str:
    """The document as the tables a person reads."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(doc["time"]))
    lines = [f"Redis at {doc['server']} · {stamp} UTC", ""]
    lines += [*_runs_text(doc["runs"]), "", *_agents_text(doc["agents"])]
    hidden = doc["not_shown"]["runs"] + doc["not_shown"]["agents"]
    if hidden:
        lines += [
            "",
            f"{hidden} record(s) not signed with this key were not shown (forged, or another key's)",
        ]
    stale = doc["stale"]["runs"] + doc["stale"]["agents"]
    if stale:
        lines += [
            "",
            f"{stale} record(s) signed more than {STALE_S:g} s ago were not shown (old records written "
            "back by someone else, or this host's clock is off)",
        ]
    return "\n".join(lines)


def _runs_text(runs: list[dict[str, Any]]) -> list[str]:
    if not runs:
        return ["no run in progress"]
    lines = [f"{len(runs)} run(s) in progress"]
    for run in runs:
        workers = run["workers"]
        head = (
            run["run"],
            run["mapping"],
            _age(run["age_s"]),
            f"{workers['local']} local + {workers['joined']} joined",
            str(run["backlog"]),
            f"{run['items_per_s']:.1f}",
            run["driver"],
        )
        lines += [
            "",
            *_table([("RUN", "MAPPING", "AGE", "WORKERS", "BACKLOG", "ITEMS/S", "DRIVER"), head], {4, 5}),
        ]
        rows = [("PE", "ITEMS", "TASKS", "BACKLOG", "ITEMS/S", "")]
        for pe in run["pes"]:
            rows.append(
                (
                    pe["pe"],
                    str(pe["items"]),
                    str(pe["tasks"]),
                    str(pe["backlog"]),
                    f"{pe['items_per_s']:.1f}",
                    "ended" if pe["ended"] else "",
                )
            )
        lines += _table(rows, {1, 2, 3, 4}, indent="  ")
    return lines


def _agents_text(agents: list[dict[str, Any]]) -> list[str]:
    if not agents:
        return ["no agent"]
    rows = [("AGENT", "HOST", "TAGS", "ACTIVE", "PARKED", "MIN-MAX", "RUNS", "SERVED", "UP")]
    for a in agents:
        rows.append(
            (
                a["agent"],
                a["host"],
                ",".join(a["tags"]) or "-",
                str(a["active"]),
                str(a["parked"]),
                f"{a['min']}-{a['max']}",
                ",".join(a["runs"]) or "-",
                str(a["served"]),
                _age(a["age_s"]),
            )
        )
    return [f"{len(agents)} agent(s)", *_table(rows, {3, 4, 7})]


def _show(out: IO[str], doc: dict[str, Any], as_json: bool) -> None:
    if as_json:
        out.write(json.dumps(doc, sort_keys=True) + "\n")
    else:
        out.write(render_text(doc) + "\n")
    out.flush()


def _watch(client: Any, signer: Signer, target: Any, args: argparse.Namespace) -> int:
    """Redraw every ``--watch`` seconds until Ctrl-C (exit 0). On a terminal each frame is
    written over the last, line by line (no clearing of the whole screen: no flicker);
    elsewhere, and with ``--json``, frames follow each other."""
    out = sys.stdout
    redraw = out.isatty() and not args.json
    try:
        doc = gather(client, signer, target)  # a server or key that fails: the screen stays as it was
        if redraw:
            out.write(_HIDE_CURSOR + _CLEAR_SCREEN)
        while True:
            if redraw:
                frame = render_text(doc).split("\n")
                out.write(_HOME + "".join(line + _CLEAR_LINE + "\n" for line in frame) + _CLEAR_BELOW)
                out.flush()
            else:
                _show(out, doc, args.json)
                if not args.json:
                    out.write("\n")
            time.sleep(args.watch)
            doc = gather(client, signer, target)
    except KeyboardInterrupt:
        return 0
    finally:
        if redraw:
            out.write(_SHOW_CURSOR)
            out.flush()
