"""Where the CPU time of recording provenance goes, on ``simple``: the tiny-item workflow
run five ways in this process, each a step further than the last, the CPU seconds of
each (``time.process_time``: the run's own process and its threads, steadier than wall
time on a loaded machine), the median of ``--repeat`` rounds taken in turn.

    python benchmarks/prov_where.py [--items 100000] [--repeat 3] [--bulk-size 1000]

* ``off``: no provenance;
* ``hook``: a recorder that records nothing (the engine's general writers and the
  items' ids carried through deliveries and handlers: what the hook itself costs);
* ``writers``: the recorder's writers and handlers (each iteration's context kept), no
  ids and no records made;
* ``ids``: the ids made (each write's stream id, each iteration's id), no records;
* ``tuples``: lineage records made (one tuple per write) and dropped;
* ``json``: made and turned into JSON text in this process, not written;
* ``thread``: JSON and bulk files made in this process, the files written by a thread
  (``writer_process: false``);
* ``files``: the whole thing, as ``provenance={"path": ...}``: the records sent to a writer
  process, which makes the JSON and the files (``pipestore.py``).

Columns: the run's process CPU (its threads included), the more per item than the step
before, the writer processes' CPU (``RUSAGE_CHILDREN``: they are waited for) and the wall
time.
"""

from __future__ import annotations

import argparse
import os
import resource
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
from dispel4py.provenance.recorder import WRITER_RATE_ENV, LineageRecording, RecordingWriter, WorkerRecorder


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
    def flush(self, last: bool = False) -> None:
        self.records += len(self.pending)
        self.pending = []


class _WritersOnly(WorkerRecorder):
    """The recording writers pass items on with no ids (``writers``) or with their ids
    (``ids``), recording nothing."""

    make_ids = False

    def wrap(self, iid: int, pe: Any, writers: dict[str, Any]) -> dict[str, Any]:
        wrapped = super().wrap(iid, pe, writers)
        kind = _IdsWriter if self.make_ids else _BareWriter
        return {out: kind(w.prov_context, w.port, w.inner, self) for out, w in wrapped.items()}


class _IdsOnly(_WritersOnly):
    make_ids = True


class _BareWriter(RecordingWriter):
    def write(self, data: Any) -> None:
        recorder = self.recorder
        outer, recorder.current = recorder.current, None
        try:
            self.inner.write(data)
        finally:
            recorder.current = outer


class _IdsWriter(RecordingWriter):
    def write(self, data: Any) -> None:
        recorder = self.recorder
        context = self.prov_context
        context.void = False
        stream_id = recorder.prefix + str(recorder.counter())
        ident = (stream_id, context.iteration_id or context.iteration(), context.cluster)
        outer, recorder.current = recorder.current, ident
        try:
            self.inner.write(data)
        finally:
            recorder.current = outer


class _JsonOnly(WorkerRecorder):
    def flush(self, last: bool = False) -> None:
        pending, self.pending = self.pending, []
        self.records += len(lineage_texts(pending, self.formats, self.serialiser))


class _Recording(LineageRecording):
    recorder_class: type[WorkerRecorder] = WorkerRecorder

    def open(self, plan: Any, worker: int) -> WorkerRecorder:
        return self.recorder_class(self, plan)


def _factory(step: str, folder: str, bulk_size: int) -> Any:
    if step == "off":
        return None
    if step == "hook":
        return _Hook()
    # files: the writer process, whatever the load (it starts with the second batch)
    os.environ[WRITER_RATE_ENV] = "0"
    recording = _Recording(ProvenanceConfig(path=folder, bulk_size=bulk_size, writer_process=step == "files"))
    recording.recorder_class = {
        "writers": _WritersOnly,
        "ids": _IdsOnly,
        "tuples": _TuplesOnly,
        "json": _JsonOnly,
    }.get(step, WorkerRecorder)
    return recording


def _children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def cpu_of(step: str, items: int, folder: str, bulk_size: int) -> tuple[float, float, float]:
    """(the run's process CPU, its writer processes' CPU, wall) seconds of one run."""
    mapping_cls = get_mapping("simple")
    runner = mapping_cls(mapping_options(mapping_cls, {}))
    runner.options["provenance"] = _factory(step, folder, bulk_size)
    runner.board = None
    graph = make_tiny_graph(items)
    before, children, wall = time.process_time(), _children_cpu(), time.perf_counter()
    runner.run(graph, None)
    return time.process_time() - before, _children_cpu() - children, time.perf_counter() - wall


STEPS = ("off", "hook", "writers", "ids", "tuples", "json", "thread", "files")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--bulk-size", type=int, default=1000)
    args = parser.parse_args(argv)
    print(f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")
    seconds: dict[str, list[tuple[float, float, float]]] = {step: [] for step in STEPS}
    with tempfile.TemporaryDirectory(prefix="d4py-prov-where-") as folder:
        cpu_of("files", 1000, folder, args.bulk_size)  # imports and first-run costs, not counted
        for _ in range(args.repeat):
            for step in STEPS:
                seconds[step].append(cpu_of(step, args.items, folder, args.bulk_size))
                for name in os.listdir(folder):
                    os.remove(os.path.join(folder, name))
    off = statistics.median(s[0] for s in seconds["off"])
    off_wall = statistics.median(s[2] for s in seconds["off"])
    print(
        f"{'step':<7} {'CPU s':>7} {'x off':>6} {'µs/item more':>12} {'writer CPU s':>12}"
        f" {'wall s':>7} {'x off':>6}"
    )
    previous = None
    for step in STEPS:
        median, writer, wall = (statistics.median(s[k] for s in seconds[step]) for k in range(3))
        more = "" if previous is None else f"{(median - previous) / args.items * 1e6:.2f}"
        line = f"{step:<7} {median:>7.3f} {median / off:>6.1f} {more:>12} {writer:>12.3f}"
        print(f"{line} {wall:>7.3f} {wall / off_wall:>6.1f}")
        previous = median
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
