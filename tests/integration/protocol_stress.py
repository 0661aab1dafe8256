"""Randomized stress of the engine's protocols: credits, holding, end of stream, batching.

A *case* is drawn from a seed: a random DAG of 2-12 PEs (one or two sources, fan-out,
fan-in, two-input PEs), a random grouping on every input (shuffle, group-by, 'all',
'global'), random ``numprocesses``, a batch size of 1-1024, 1-4 credits and 1-8 workers.
With ``--large``, cases carry a *large* payload with every item on every connected output
(a numpy array, ``bytes``, ``bytearray`` or a dict holding an array, 200 KB-1 MB: around
and above the local mappings' threshold for shared memory), checked by every PE that
receives it and, for half the items, passed on as it came (in shared memory: the same
block again, counted by reference), and run the local process mappings with a random
``--shm-bytes`` (default, 0, or an arena of 1-3 payloads, so that a full arena is hit:
senders wait on it, and cycles of waits end by sending in band). Each case runs on ``simple``
and on the mapping under test, in a fresh process; the outputs must be the same
multisets. A case that hangs is killed by the caller and reported with the command that
reproduces it.

    python tests/integration/protocol_stress.py case --seed 7 --mapping multi
    mpiexec -n 3 python tests/integration/protocol_stress.py case --seed 7 --mapping mpi
    python tests/integration/protocol_stress.py soak --seconds 600     # every transport
    python tests/integration/protocol_stress.py soak --large --mappings multi,dyn_multi
    python tests/integration/protocol_stress.py soak --large --mappings dyn_redis,dyn_auto_redis

The PEs are deterministic per item, and only PEs with a grouped input (group-by, 'all',
'global') keep state (per-key totals written in ``postprocess``), so every correct mapping
gives the same multiset as ``simple``.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import dispel4py
from dispel4py.core import GenericPE
from dispel4py.mappings.processes.arena import UNIT as SHM_UNIT
from dispel4py.workflow_graph import WorkflowGraph, WorkflowNode

MAX_ITEMS = 20_000  # items processed by all PEs together in one case (measured on simple)
MAX_PAYLOAD_BYTES = 64 << 20  # payload bytes processed by all PEs together in a large case
CASE_TIMEOUT_S = 60.0
# the mappings with --shm-bytes (on Redis: the workers of the driver's host, redis/payloads.py)
LOCAL = ("multi", "zmq_multi", "dyn_multi", "dyn_auto_multi", "dyn_redis", "dyn_auto_redis")
MAPPINGS = ("multi", "zmq_multi", "mpi", "dyn_multi", "dyn_auto_multi", "dyn_redis", "dyn_auto_redis")


@dataclass
class Case:
    seed: int
    pes: list[dict[str, Any]] = field(default_factory=list)  # n_out, salt, numprocesses, items
    edges: list[tuple[int, int, int, int]] = field(default_factory=list)  # src, out, dst, inp
    groupings: dict[tuple[int, int], Any] = field(default_factory=dict)  # (dst, inp) -> grouping
    calls: dict[int, int] = field(default_factory=dict)  # source PE -> process() calls
    batch_size: int = 1024
    credits: int = 4
    workers: int = 2
    payload: int = 0  # bytes carried with every item (0: none)
    shm_bytes: int | None = None  # the local mappings' --shm-bytes (None: the default)

    def describe(self) -> str:
        groupings = Counter(_grouping_name(g) for g in self.groupings.values())
        large = f", payload {self.payload} B, shm-bytes {self.shm_bytes}" if self.payload else ""
        return (
            f"seed {self.seed}: {len(self.pes)} PEs, {len(self.edges)} edges {dict(groupings)}, "
            f"batch {self.batch_size}, credits {self.credits}, workers {self.workers}{large}"
        )

    @property
    def max_items(self) -> int:
        return min(MAX_ITEMS, MAX_PAYLOAD_BYTES // self.payload) if self.payload else MAX_ITEMS


def _grouping_name(grouping: Any) -> str:
    return "group-by" if isinstance(grouping, list) else (grouping or "shuffle")


def draw_case(seed: int, large: bool = False) -> Case:
    rng = random.Random(seed)
    case = Case(seed=seed)
    n = rng.randint(2, 12)
    sources = {0} | ({1} if n > 2 and rng.random() < 0.3 else set())
    for j in range(n):
        case.pes.append(
            {
                "n_out": rng.choice((1, 1, 2)),
                "salt": rng.randint(0, 7),
                "numprocesses": 1 if j in sources else rng.choice((1, 1, 2, 3)),
                "items": rng.randint(1, 400),
            }
        )
    for j in range(n):
        if j in sources:
            case.calls[j] = rng.randint(1, 5)
            continue
        for inp in range(rng.choice((1, 1, 2))):
            case.groupings[(j, inp)] = rng.choice((None, None, [0], [0], "all", "global"))
            for src in rng.sample(range(j), k=min(j, rng.choice((1, 1, 2)))):
                case.edges.append((src, rng.randrange(case.pes[src]["n_out"]), j, inp))
    case.batch_size = rng.choice((1, 2, 3, 7, 16, 64, 256, 1024))
    case.credits = rng.randint(1, 4)
    case.workers = rng.randint(1, 8)
    if large:  # its own draws, so a seed's graph is the same with and without --large
        more = random.Random(f"large-{seed}")
        case.payload = more.choice((200_000, 400_000, 1 << 20))
        block = -(-case.payload // SHM_UNIT) * SHM_UNIT  # what one payload takes in the arena
        case.shm_bytes = more.choice((None, 0, block, block, 2 * block, 3 * block))
    return case


def payload(size: int, key: int, value: int) -> Any:
    """A large item part whose kind and content follow from ``(key, value)``."""
    fill = (key * 31 + value) % 256
    kind = (key + value) % 4
    if kind == 0:
        return np.full(size, fill, dtype=np.uint8)
    if kind == 1:
        return bytes([fill]) * size
    if kind == 2:
        return bytearray([fill]) * size
    return {"samples": np.full(size // 8, fill, dtype=np.float64), "fill": fill}


def check_payload(size: int, key: int, value: int, got: Any) -> None:
    want = payload(size, key, value)
    if isinstance(want, dict):
        same = (
            isinstance(got, dict)
            and got["fill"] == want["fill"]
            and np.array_equal(got["samples"], want["samples"])
        )
    elif isinstance(want, np.ndarray):
        same = isinstance(got, np.ndarray) and np.array_equal(got, want)
    else:
        same = type(got) is type(want) and got == want
    if not same:
        raise AssertionError(f"payload of {(key, value)} arrived wrong: {type(got).__name__}")


def build(case: Case) -> tuple[Any, dict[str, int]]:
    """The graph (PE ids numbered from 0) and its inputs."""
    WorkflowNode.node_counter = 0
    pes = []
    for j, spec in enumerate(case.pes):
        inputs = {inp: g for (dst, inp), g in case.groupings.items() if dst == j}
        pes.append(StressPE(f"P{j}_", spec, inputs, case.payload))
    graph = WorkflowGraph()
    for j in case.calls:
        graph.add(pes[j])
    for src, out, dst, inp in case.edges:
        graph.connect(pes[src], f"out{out}", pes[dst], f"in{inp}")
        pes[src].connected.add(f"out{out}")
    return graph, {pes[j].id: calls for j, calls in case.calls.items()}


class StressPE(GenericPE):
    """Forwards ``(key, value)`` items to every output; on its grouped inputs it also totals
    values per key and writes the totals in ``postprocess``."""

    def __init__(self, name: str, spec: dict[str, Any], inputs: dict[int, Any], size: int = 0):
        GenericPE.__init__(self)
        self.size = size  # bytes of payload with every item sent on (0: items are (key, value))
        self.connected: set[str] = set()  # outputs with a consumer: the others are collected
        self.name = name
        for inp, grouping in sorted(inputs.items()):
            self._add_input(f"in{inp}", grouping=grouping)
        for out in range(spec["n_out"]):
            self._add_output(f"out{out}")
        self.numprocesses = spec["numprocesses"]
        self.salt, self.items = spec["salt"], spec["items"]
        self.grouped = {f"in{inp}" for inp, grouping in inputs.items() if grouping}
        self.totals: dict[tuple[str, int], int] = {}

    def process(self, inputs: dict[str, Any]) -> None:
        if not inputs:
            for i in range(self.items):
                self._forward((i * 3 + self.salt) % 8, i)
            return
        for port, item in inputs.items():
            key, value = item[0], item[1]
            passed = None
            if self.size:
                check_payload(self.size, *item[2])
                if value % 2:  # passed on as it came (shared memory: the same block, no copy)
                    passed = item[2]
            if port in self.grouped:
                self.totals[(port, key)] = self.totals.get((port, key), 0) + value
            if (value + self.salt) % 5:  # drop a fifth, so volumes stay bounded
                self._forward((key * 5 + self.salt) % 8, value + 1, passed)

    def _forward(self, key: int, value: int, passed: Any = None) -> None:
        """Write ``(key, value)``, with a payload (``(its key, its value, its data)``: a new
        one, or the one received, ``passed``) on the outputs some PE consumes."""
        for out in self.outputconnections:
            if self.size and out in self.connected:  # collected outputs stay small
                carried = passed if passed is not None else (key, value, payload(self.size, key, value))
                self.write(out, (key, value, carried))
            else:
                self.write(out, (key, value))

    def postprocess(self) -> None:
        for (port, key), total in sorted(self.totals.items()):
            self._forward(key, total % 1000 + len(port))


def multisets(outputs: dict[str, dict[str, list[Any]]]) -> dict[tuple[str, str], Counter]:
    return {(pe, out): Counter(items) for pe, ports in outputs.items() for out, items in ports.items()}


def fit(case: Case) -> tuple[Case, dict[tuple[str, str], Counter]]:
    """Shrink the sources until the case processes at most ``max_items``; its reference.

    The shrinking runs without payloads (the counts do not depend on them)."""
    size, case.payload = case.payload, 0
    while True:
        graph, inputs = build(case)
        result = dispel4py.run(graph, inputs, "simple")
        assert result is not None
        processed = sum(s.calls for s in result.stats)
        case.payload = size
        if processed <= case.max_items or all(p["items"] == 1 for p in case.pes):
            break
        case.payload = 0
        for spec in case.pes:
            spec["items"] = max(1, spec["items"] // 4)
        for j in case.calls:
            case.calls[j] = 1
    if size:
        result = dispel4py.run(*build(case), "simple")
        assert result is not None
    return case, multisets(result.outputs)


def run_case(seed: int, mapping: str, large: bool = False) -> int:
    import logging

    logging.getLogger("dispel4py").setLevel(logging.ERROR)  # no unfed-source warnings
    case = draw_case(seed, large)
    case, expected = fit(case)  # on every MPI rank too: each must shrink the case alike
    graph, inputs = build(case)
    options: dict[str, Any] = {"batch_size": case.batch_size, "credits": case.credits}
    if mapping != "mpi":
        options["num"] = case.workers
    if mapping in LOCAL and case.shm_bytes is not None:
        options["shm_bytes"] = case.shm_bytes
    result = dispel4py.run(graph, inputs, mapping, **options)
    if result is None:  # an MPI rank other than 0
        return 0
    got = multisets(result.outputs)
    if got != expected:
        print(f"MISMATCH {case.describe()} on {mapping}", file=sys.stderr)
        for key in sorted(set(got) | set(expected)):
            a, b = got.get(key, Counter()), expected.get(key, Counter())
            if a != b:
                print(f"  {key}: missing {dict(b - a)} extra {dict(a - b)}", file=sys.stderr)
        return 1
    print(f"ok {case.describe()} on {mapping}")
    return 0


# -- driving cases in fresh processes --------------------------------------------------------
def case_command(
    seed: int, mapping: str, workers: int, mpiexec: str | None = None, large: bool = False
) -> list[str]:
    script = [
        sys.executable,
        str(Path(__file__).resolve()),
        "case",
        "--seed",
        str(seed),
        "--mapping",
        mapping,
        *(["--large"] if large else []),
    ]
    if mapping == "mpi":
        assert mpiexec is not None
        return [mpiexec, "-n", str(workers), *script]
    return script


def run_in_child(
    seed: int, mapping: str, mpiexec: str | None = None, large: bool = False
) -> tuple[bool, str]:
    """Run one case in a fresh process group; (passed, what happened)."""
    workers = draw_case(seed).workers
    cmd = case_command(seed, mapping, workers, mpiexec, large)
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=CASE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.communicate()
        return False, f"HANG after {CASE_TIMEOUT_S:.0f} s: {' '.join(cmd)}"
    if proc.returncode != 0:
        return False, f"exit {proc.returncode}: {' '.join(cmd)}\n{err[-3000:]}"
    return True, out.strip()


def soak(seconds: float, mappings: list[str], base: int, mpiexec: str | None, large: bool = False) -> int:
    deadline, seed, failures, done = time.monotonic() + seconds, base, 0, 0
    while time.monotonic() < deadline:
        mapping = mappings[done % len(mappings)]
        passed, text = run_in_child(seed, mapping, mpiexec, large)
        print(text, flush=True)
        failures += not passed
        done += 1
        seed += 1
    print(f"{done} cases, {failures} failed (seeds {base}..{seed - 1})")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("case", help="run one case (under mpiexec for mpi)")
    one.add_argument("--seed", type=int, required=True)
    one.add_argument("--mapping", choices=MAPPINGS, required=True)
    one.add_argument("--large", action="store_true", help="a large payload with every item")
    many = sub.add_parser("soak", help="run cases in fresh processes until the time is up")
    many.add_argument("--seconds", type=float, default=60)
    many.add_argument("--mappings", default=",".join(MAPPINGS))
    many.add_argument("--seed", type=int, default=None, help="first seed (default: random)")
    many.add_argument("--mpiexec", default=str(Path(sys.executable).parent / "mpiexec"))
    many.add_argument("--large", action="store_true", help="large payloads (mappings with --shm-bytes)")
    args = parser.parse_args(argv)
    if args.command == "case":
        return run_case(args.seed, args.mapping, args.large)
    base = args.seed if args.seed is not None else random.randrange(1_000_000)
    return soak(args.seconds, args.mappings.split(","), base, args.mpiexec, args.large)


if __name__ == "__main__":
    sys.exit(main())
