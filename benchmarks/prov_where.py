"""Where the CPU time of recording provenance goes, on ``simple``: the tiny-item workflow
run five ways in this process, each a step further than the last, the CPU seconds of
each (``time.process_time``: the run's own process and its threads, steadier than wall
time on a loaded machine), the median of ``--repeat`` rounds taken in turn.

    python benchmarks/prov_where.py [--items 100000] [--repeat 3] [--bulk-size 1000]

* ``off``: no provenance;
* ``hook``: a recorder that records nothing (the engine's general writers and the
  items' ids carried through deliveries and handlers: what the hook itself costs);
* ``tuples``: lineage records made (one tuple per write) and dropped;
* ``json``: made and turned into JSON text, not written;
* ``files``: the whole thing, as ``provenance={"path": ...}`` (bulk files written).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from typing import Any

from workflows import make_tiny_graph

from dispel4py.api import mapping_options
from dispel4py.mappings import get_mapping
from dispel4py.provenance import ProvenanceConfig
from dispel4py.provenance.lineage_json import lineage_texts
from dispel4py.provenance.recorder import LineageRecording, WorkerRecorder


class _NothingRecorded:
    """The hook's protocol, recording nothing; items carry ``None`` as their ids."""

    def deliver(self, deliver: Any) -> Any:
        return lambda target, port, data: deliver(target, port, (data, None))

    def wrap(self, iid: int, pe: Any, writers: dict[str, Any]) -> dict[str, Any]:
        return writers

    def handler(self, iid: int, handler: Any) -> Any:
        return lambda port, item: handler(port, item[0])

    def source(self, iid: int, process: Any) -> Any:
        return process

    def postprocess(self, iid: int, postprocess: Any) -> Any:
        return postprocess

    def item_of(self, carried: Any) -> Any:
        return carried[0] if type(carried) is tuple else carried

    def close(self) -> None:
        pass


class _Hook:
    run_id = "hook"

    def open(self, plan: Any, worker: int) -> _NothingRecorded:
        return _NothingRecorded()

    def start_run(self, plan: Any) -> None:
        pass

    def end_run(self) -> None:
        pass


class _TuplesOnly(WorkerRecorder):
    def flush(self) -> None:
        self.records += len(self.pending)
        self.pending = []


class _JsonOnly(WorkerRecorder):
    def flush(self) -> None:
        pending, self.pending = self.pending, []
        self.records += len(lineage_texts(pending, self.serialiser))


class _Recording(LineageRecording):
    recorder_class: type[WorkerRecorder] = WorkerRecorder

    def open(self, plan: Any, worker: int) -> WorkerRecorder:
        return self.recorder_class(self, plan)


def _factory(step: str, folder: str, bulk_size: int) -> Any:
    if step == "off":
        return None
    if step == "hook":
        return _Hook()
    recording = _Recording(ProvenanceConfig(path=folder, bulk_size=bulk_size))
    recording.recorder_class = {"tuples": _TuplesOnly, "json": _JsonOnly}.get(step, WorkerRecorder)
    return recording


def cpu_of(step: str, items: int, folder: str, bulk_size: int) -> float:
    mapping_cls = get_mapping("simple")
    runner = mapping_cls(mapping_options(mapping_cls, {}))
    runner.options["provenance"] = _factory(step, folder, bulk_size)
    runner.board = None
    graph = make_tiny_graph(items)
    before = time.process_time()
    runner.run(graph, None)
    return time.process_time() - before


STEPS = ("off", "hook", "tuples", "json", "files")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--bulk-size", type=int, default=1000)
    args = parser.parse_args(argv)
    print(f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")
    seconds: dict[str, list[float]] = {step: [] for step in STEPS}
    with tempfile.TemporaryDirectory(prefix="d4py-prov-where-") as folder:
        cpu_of("files", 1000, folder, args.bulk_size)  # imports and first-run costs, not counted
        for _ in range(args.repeat):
            for step in STEPS:
                seconds[step].append(cpu_of(step, args.items, folder, args.bulk_size))
                for name in os.listdir(folder):
                    os.remove(os.path.join(folder, name))
    off = statistics.median(seconds["off"])
    print(f"{'step':<7} {'CPU s':>7} {'x off':>6} {'µs/item more than the step before':>34}")
    previous = None
    for step in STEPS:
        median = statistics.median(seconds[step])
        more = "" if previous is None else f"{(median - previous) / args.items * 1e6:.2f}"
        print(f"{step:<7} {median:>7.3f} {median / off:>6.1f} {more:>34}")
        previous = median
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
