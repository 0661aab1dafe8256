"""Large items: numpy arrays through source -> a PE that sums each and passes it on -> a
'global' sink, on every local mapping and mpi, next to a hand-written baseline moving the
same arrays between three processes through shared memory.

    python benchmarks/large_items.py [--sizes 65536,4194304,16777216] [--items 200]
        [--mappings simple,multi,multi_pipes,zmq_multi,dyn_multi,dyn_auto_multi,dyn_redis,
                    dyn_auto_redis,hybrid_redis,mpi]
        [--num 3] [--repeat 3]

Each figure is the median wall time of ``--repeat`` whole commands (``dispel4py ...``,
``mpiexec -n N dispel4py mpi ...``; start-up included), every run in a fresh process, the
mappings interleaved; under it the spread (min-max) and the median CPU seconds (user +
system of the command and every process it waited for), which a loaded machine disturbs
less than the wall time.
``multi_pipes`` is ``multi --shm-bytes 0``: every array pickled through the pipes, as
before shared memory; ``dyn_redis_inband`` (not in the default list) is ``dyn_redis
--shm-bytes 0``: every array through Redis, as a worker of another host gets it. The Redis
mappings run with their private embedded server and ``-n`` local workers. The header gives
the machine's load: compare figures of one run.

As a workflow (the sizes from the environment)::

    D4PY_LARGE_ITEMS=200 D4PY_LARGE_BYTES=4194304 dispel4py multi benchmarks/large_items.py -n 3
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from multiprocessing import Pipe, Process, resource_tracker, shared_memory
from pathlib import Path
from typing import Any

import numpy as np

from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
ITEMS = int(os.environ.get("D4PY_LARGE_ITEMS", "200"))
BYTES = int(os.environ.get("D4PY_LARGE_BYTES", str(4 << 20)))
MAPPINGS = (
    "simple,multi,multi_pipes,zmq_multi,dyn_multi,dyn_auto_multi,dyn_redis,dyn_auto_redis,hybrid_redis,mpi"
)


def make_array(i: int, nbytes: int) -> np.ndarray:
    return np.full(nbytes // 8, float(i % 7), dtype=np.float64)


class Arrays(ProducerPE):
    def _process(self, inputs: Any) -> None:
        for i in range(ITEMS):
            self.write("output", make_array(i, BYTES))


class SumPass(IterativePE):
    """Sums each array and passes it on with its sum."""

    def _process(self, array: np.ndarray) -> tuple[float, np.ndarray]:
        return float(array.sum()), array


class Total(ConsumerPE):
    def __init__(self) -> None:
        super().__init__()
        self._add_output("total")
        self.inputconnections["input"]["grouping"] = "global"
        self.count, self.sum = 0, 0.0

    def _process(self, item: tuple[float, np.ndarray]) -> None:
        self.count += 1
        self.sum += item[0] + float(item[1][0])

    def _postprocess(self) -> None:
        self.write("total", (self.count, self.sum))


def make_graph() -> WorkflowGraph:
    graph = WorkflowGraph()
    summer = SumPass()
    graph.connect(Arrays(), "output", summer, "input")
    graph.connect(summer, "output", Total(), "input")
    return graph


graph = make_graph()


# -- the baseline: three processes, shared memory by hand ------------------------------------
def _source(out: Any, items: int, nbytes: int) -> None:
    for i in range(items):
        array = make_array(i, nbytes)
        seg = shared_memory.SharedMemory(create=True, size=array.nbytes)
        np.ndarray(array.shape, array.dtype, buffer=seg.buf)[:] = array
        out.send((seg.name, array.shape))
        seg.close()
    out.send(None)


def _summer(inp: Any, out: Any) -> None:
    while (msg := inp.recv()) is not None:
        seg = shared_memory.SharedMemory(name=msg[0])
        total = float(np.ndarray(msg[1], np.float64, buffer=seg.buf).sum())
        seg.close()
        out.send((total, *msg))
    out.send(None)


def _sink(inp: Any, out: Any) -> None:
    count, acc = 0, 0.0
    while (msg := inp.recv()) is not None:
        seg = shared_memory.SharedMemory(name=msg[1])
        acc += msg[0] + float(np.ndarray(msg[2], np.float64, buffer=seg.buf)[0])
        seg.close()
        seg.unlink()
        count += 1
    out.send((count, acc))


def baseline(items: int, nbytes: int) -> tuple[int, float]:
    """What the arrays cost moved by hand: source -> summer -> sink through shared memory."""
    resource_tracker.ensure_running()  # one tracker for the three: the sink's unlink is the last word
    a_out, a_in = Pipe()
    b_out, b_in = Pipe()
    r_out, r_in = Pipe()
    procs = [
        Process(target=_source, args=(a_in, items, nbytes)),
        Process(target=_summer, args=(a_out, b_in)),
        Process(target=_sink, args=(b_out, r_in)),
    ]
    for p in procs:
        p.start()
    result = r_out.recv()
    for p in procs:
        p.join()
    return result


# -- measuring ----------------------------------------------------------------------------------
def command(mapping: str, num: int) -> list[str]:
    d4py = [str(BIN / "dispel4py")]
    workflow = str(HERE / "large_items.py")
    if mapping == "mpi":
        return [str(BIN / "mpiexec"), "-n", str(num), *d4py, "mpi", workflow]
    if mapping == "simple":
        return [*d4py, "simple", workflow]
    if mapping == "multi_pipes":
        return [*d4py, "multi", workflow, "-n", str(num), "--shm-bytes", "0"]
    if mapping == "dyn_redis_inband":
        return [*d4py, "dyn_redis", workflow, "-n", str(num), "--shm-bytes", "0"]
    return [*d4py, mapping, workflow, "-n", str(num)]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one whole command."""
    cpu, start = _children_cpu(), time.perf_counter()
    done = subprocess.run(
        cmd, env={**os.environ, **env}, capture_output=True, text=True, timeout=900, check=False
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0 or "'total': [(" not in done.stdout:
        raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr.strip()[-500:]}")
    return elapsed, _children_cpu() - cpu


def timed_baseline(items: int, nbytes: int) -> tuple[float, float]:
    cpu, start = _children_cpu(), time.perf_counter()
    count, _ = baseline(items, nbytes)
    assert count == items
    return time.perf_counter() - start, _children_cpu() - cpu


def _rows(size: int, names: list[str], samples: dict[str, list[tuple[float, float]]]) -> list[str]:
    """The medians with their ratio to mpi (else the baseline), the spread, the CPU."""
    wall = {n: statistics.median(w for w, _ in v) for n, v in samples.items()}
    ref = wall.get("mpi", wall["baseline"])
    cells = [f"{wall[n]:6.2f}s {wall[n] / ref:4.2f}x" for n in names]
    spread = [f"{min(w for w, _ in samples[n]):.2f}-{max(w for w, _ in samples[n]):.2f}" for n in names]
    cpu = [f"cpu {statistics.median(c for _, c in samples[n]):.2f}s" for n in names]
    return [
        f"{size:>9}  " + "  ".join(f"{c:>14}" for c in cells),
        f"{'':>9}  " + "  ".join(f"{c:>14}" for c in spread),
        f"{'':>9}  " + "  ".join(f"{c:>14}" for c in cpu),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="65536,1048576,4194304,16777216")
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--mappings", default=MAPPINGS)
    parser.add_argument("--num", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    mappings = args.mappings.split(",")
    names = ["baseline", *mappings]
    print(
        f"large items: {args.items} arrays per size, -n {args.num}, median of {args.repeat}; "
        f"{platform.node()} {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} before",
        flush=True,
    )
    print(f"{'size':>9}  " + "  ".join(f"{n:>14}" for n in names), flush=True)
    for size in map(int, args.sizes.split(",")):
        env = {"D4PY_LARGE_ITEMS": str(args.items), "D4PY_LARGE_BYTES": str(size)}
        samples: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
        for _ in range(args.repeat):  # interleaved, so a change of load hits every mapping alike
            samples["baseline"].append(timed_baseline(args.items, size))
            for mapping in mappings:
                samples[mapping].append(timed(command(mapping, args.num), env))
        print("\n".join(_rows(size, names, samples)), flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} after")
    print(
        "(each size: median wall seconds and the ratio to mpi's median, else the baseline's; "
        "min-max wall; median CPU seconds)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
