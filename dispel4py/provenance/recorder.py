"""The engine's recording hook (``dispel4py.recording``), implemented: records made where
each PE runs and written by that process.

* :class:`LineageRecording` is the picklable factory a run carries in its ``Tuning``: the
  driver writes the ``workflow_run`` record (:meth:`start_run`); each worker process opens
  a :class:`WorkerRecorder` (:meth:`open`).
* :class:`WorkerRecorder` gives each instance an :class:`~.context.InstanceContext` and
  recording writers; items travel between PEs as ``(item, (stream id, iteration id,
  cluster))`` — made in ``deliver``, after routing, and taken apart before the PE's
  ``process`` sees the item — so routes, group-by keys and result lists only ever see the
  user's item.
* Recording a write is appending a tuple to the process's pending list (for a PE of the
  default rule, :meth:`RecordingWriter.write` does it inline: no dict, no JSON, no
  ``datetime``); every ``bulk_size`` records the list goes, as it is, to the process's
  writer process (``pipestore.py``: ``file`` mode, records coming faster than
  :data:`WRITER_RATE` and a core seemingly free), which makes the JSON and the bulk files
  on another core, or
  becomes JSON here in one pass (``lineage_json.py``) for the process's store
  (``store.py``): files in ``--provenance-path`` on the host where it runs, written by a
  thread, or POSTs to the repository. Memory stays bounded: at most one batch is
  pending, and a full pipe to the writer makes the run wait.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from sys import getsizeof
from time import monotonic, time_ns
from typing import Any

from dispel4py.engine.recording import Handler

from .config import ProvenanceConfig
from .context import COMPACT, InstanceContext
from .lineage_json import InstanceFormat, Pending, lineage_texts
from .pipestore import WriterProcess, start_writer
from .provtypes import ForceStateless, SingleInvocationFlow
from .records import SCALARS, Ids, Serialiser, size_of, workflow_run_record
from .rules import component_of, resolve_types, rules_for
from .store import make_store
from .tally import Tally

__all__ = ["LineageRecording", "WorkerRecorder", "RecordingWriter"]

_log = logging.getLogger("dispel4py.provenance")
_NO_EXTRA: dict[str, Any] = {}
# records per second from which a writer process makes the JSON and the files: a record
# costs ~10 µs to format and write here (5 % of a core at this rate), a writer ~40 ms to start
WRITER_RATE = 5000
# internal (tests, benchmarks): a rate to use instead; "0": the writer starts with the 2nd
# batch, whatever the rate and the load
WRITER_RATE_ENV = "DISPEL4PY_PROV_WRITER_RATE"


def _core_free() -> bool:
    """Whether the machine seems to have a core the run does not use (the load average of
    the last minute, the run included, at least one below the cores): a writer process
    costs more CPU in all than a thread (the batches are marshalled and piped), which only
    another core makes up for."""
    try:
        return os.getloadavg()[0] + 1 <= (os.cpu_count() or 1)
    except OSError:
        return False


@dataclass
class LineageRecording:
    """What records a run's provenance (``Tuning.recorder``)."""

    config: ProvenanceConfig
    mapping: str = "simple"
    run_id: str = field(init=False)

    service_failed: bool = field(init=False, default=False)
    tally: Tally = field(init=False, default_factory=Tally)  # records JSON could not write

    def __post_init__(self) -> None:
        self.config = self.config.with_run_id()
        self.run_id = self.config.run_id or ""

    def open(self, plan: Any, worker: int) -> WorkerRecorder:
        return WorkerRecorder(self, plan)

    def start_run(self, plan: Any) -> None:
        for pe_id, pe in plan.pes.items():  # unknown provenance types: said before anything runs
            resolve_types(component_of(self.config.components, pe, pe_id).get("types", ()), pe, pe_id)
        store = make_store(self.config)
        serialiser = Serialiser()
        store.add(serialiser.dumps(workflow_run_record(self.config, plan, self.mapping)))
        store.close()
        self.tally.open()  # end_run removes it
        self.tally.add(serialiser.failed)
        # a repository failing now: the workers (opened after this) write files at once
        self.service_failed = getattr(store, "fallback", None) is not None

    def end_run(self) -> None:
        """Each process wrote its own records; what JSON could not write is said once."""
        self.tally.report()


class RecordingWriter:
    """Records each write of one output, then hands the item on unchanged."""

    __slots__ = ("prov_context", "port", "inner", "recorder")

    def __init__(self, context: InstanceContext, port: str, inner: Any, recorder: WorkerRecorder) -> None:
        self.prov_context = context
        self.port = port
        self.inner = inner
        self.recorder = recorder

    @property
    def count(self) -> int:
        return self.inner.count

    def write(self, data: Any) -> None:
        recorder = self.recorder
        context = self.prov_context
        if context.fast and not context.states:  # the default rule: a tuple, nothing more
            context.void = False
            stream_id = recorder.prefix + str(recorder.counter())
            iteration = context.iteration_id or context.iteration()
            pending = recorder.pending
            pending.append(
                (
                    context.key,
                    iteration,
                    context.iteration_index,
                    context.start_ns,
                    time_ns(),
                    context.flow,
                    stream_id,
                    self.port,
                    getsizeof(data) if type(data) in SCALARS else size_of(data),
                    None,
                    None,
                    None,
                )
            )
            if len(pending) >= recorder.bulk_size:
                recorder.flush()
            ident = (stream_id, iteration, context.cluster)
        else:
            ident = context.record_write(self.port, data, None, _NO_EXTRA)
        outer, recorder.current = recorder.current, ident
        try:
            self.inner.write(data)
        finally:
            recorder.current = outer

    def write_meta(self, data: Any, metadata: Any = None, **extra: Any) -> None:
        recorder = self.recorder
        ident = self.prov_context.record_write(self.port, data, metadata, extra)
        outer, recorder.current = recorder.current, ident
        try:
            self.inner.write(data)
        finally:
            recorder.current = outer


class WorkerRecorder:
    """The recorder of one worker process (``recording.Recorder``)."""

    def __init__(self, factory: LineageRecording, plan: Any) -> None:
        self.config = config = factory.config
        self.tally = factory.tally
        self.plan = plan
        self.mapping = factory.mapping
        self.ids = Ids()
        self.prefix = self.ids.prefix  # ids of this process: prefix + counter()
        self.counter = self.ids.counter
        self.serialiser = Serialiser()
        self.store = make_store(config, factory.service_failed, background=True)
        # file mode: a writer process makes the JSON and the files (pipestore.py) once the
        # records come fast (WRITER_RATE); a run of one batch never waits for it to start
        self.writer: WriterProcess | None = None
        self.use_writer = config.save_mode != "service" and config.writer_process
        forced = os.environ.get(WRITER_RATE_ENV)
        self.writer_rate = float(forced) if forced else WRITER_RATE
        self.forced_writer = self.writer_rate == 0
        self.batch_began = monotonic()
        self.bulk_size = config.bulk_size
        self.pending: list[Pending] = []  # records not yet JSON (lineage_json.py)
        self.formats: dict[int, InstanceFormat] = {}  # each instance's (context.seal)
        self.current: Any = None  # the ids of the item being delivered (RecordingWriter)
        self.contexts: dict[int, InstanceContext] = {}
        self.records = 0
        self._host, self._pid = socket.gethostname(), str(os.getpid())

    def next_id(self) -> str:
        return self.prefix + str(self.counter())

    def json_of(self, value: Any) -> str:
        return self.serialiser.dumps(value)

    def add(self, record: Pending) -> None:
        pending = self.pending
        pending.append(record)
        if len(pending) >= self.bulk_size:
            self.flush()

    def flush(self, last: bool = False) -> None:
        """The pending records to the writer process, or as JSON to the store (one bulk
        file or POST)."""
        pending, self.pending = self.pending, []
        if not pending:
            return
        self.records += len(pending)
        if self.writer is None and self.use_writer and not last:
            now = monotonic()
            fast = len(pending) >= self.writer_rate * (now - self.batch_began)
            if fast and (self.forced_writer or _core_free()):
                self.writer = start_writer(self.config.path or ".")
                self.use_writer = self.writer is not None
            self.batch_began = now
        if self.writer is not None and self.writer.fd >= 0:
            self.writer.put_pending(pending, self.formats)
        else:  # no writer, or one abandoned by Ctrl-C mid-batch (pipestore.py): written here
            self.store.put(lineage_texts(pending, self.formats, self.serialiser))

    # -- the hook ----------------------------------------------------------------------------
    def deliver(self, deliver: Callable[[int, str, Any], None]) -> Callable[[int, str, Any], None]:
        def deliver_with_ids(target: int, port: str, data: Any) -> None:
            deliver(target, port, (data, self.current))

        return deliver_with_ids

    def wrap(self, iid: int, pe: Any, writers: dict[str, Any]) -> dict[str, Any]:
        pe_id = self.plan.pe_of(iid)
        component = component_of(self.config.components, pe, pe_id)
        context = InstanceContext(self, iid, pe, pe_id, component)
        context.rules = rules = rules_for(pe, pe_id, component, context)
        context.stateful = not isinstance(rules, (ForceStateless, SingleInvocationFlow))
        sel = self.config.sel_rules
        selection = sel.get(pe_id) or sel.get(context.name)
        if isinstance(selection, dict):
            context.sel_rules = selection.get("rules", selection)
        context.seal()
        self.contexts[iid] = context
        assert context.format is not None
        self.formats[iid] = context.format
        return {out: RecordingWriter(context, out, writer, self) for out, writer in writers.items()}

    def handler(self, iid: int, handler: Callable[[str, Any], None]) -> Callable[[str, Any], None]:
        context = self.contexts[iid]
        if context.default_rule:
            return _default_handler(context, handler)
        begin, end = context.begin, context.end

        def handle(port: str, item: Any) -> None:
            data, meta = item
            begin(port, meta)
            handler(port, data)
            end(port)

        return handle

    def source(self, iid: int, process: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """One iteration per call (what it returns is written right after, in the same
        iteration: nothing else begins one in between)."""
        context = self.contexts[iid]

        def call(inputs: Any) -> Any:
            context.begin(None, None)
            out = process(inputs)
            context.end(None)
            return out

        return call

    def postprocess(self, iid: int, postprocess: Callable[[], None]) -> Callable[[], None]:
        context = self.contexts.get(iid)
        if context is None:
            return postprocess

        def call() -> None:
            context.begin_postprocess()
            postprocess()
            context.end_postprocess()

        return call

    def item_of(self, carried: Any) -> Any:
        """The user's item of ``(item, ids)`` (for a failure's message and replay file)."""
        return carried[0] if type(carried) is tuple and len(carried) == 2 else carried

    def close(self) -> None:
        try:
            self.flush(last=True)
        finally:
            writer, self.writer = self.writer, None
            try:
                if writer is not None:
                    writer.close()  # its files are complete when it returns
            finally:
                self.store.close()
        failed = self.serialiser.failed + (writer.failed if writer is not None else 0)
        self.tally.add(failed)  # the driver says the run's total (tally.py)

    # -- records -----------------------------------------------------------------------------
    def constant_fields(self, pe: Any, pe_id: str, name: str, cluster: str) -> dict[str, Any]:
        """The fields every lineage record of one instance shares."""
        parameters = getattr(pe, "parameters", None)
        return {
            "actedOnBehalfOf": pe_id,
            "instanceId": f"{name}-Instance--{self.ids.new()}",
            "annotations": {},
            "feedbackIteration": False,
            "worker": self._host,
            "parameters": parameters if isinstance(parameters, dict) else {},
            "errors": "",
            "pid": self._pid,
            "name": name,
            "runId": self.config.run_id,
            "username": self.config.user,
            "type": "lineage",
            "mapping": self.mapping,
            "prov_cluster": cluster,
        }


def _default_handler(context: InstanceContext, handler: Handler) -> Handler:
    """``InstanceContext.begin`` and ``end`` of the default rule, inline: the flow is the
    item's derivation during the call and nothing after it (kept in the history when the
    PE has a ``postprocess``, folded past ``COMPACT`` entries, as ``discard_flow`` does)."""
    keep_history = context.keep_history

    def handle(port: str, item: Any) -> None:
        data, meta = item
        context.iteration_index = index = context.iteration_index + 1
        context.iteration_id = ""
        context.start_ns = time_ns()
        context.void = True
        context.ignore_state_once = False
        if meta is not None:
            context.flow = [(port, meta[0], meta[1], meta[2], index)]
        handler(port, data)
        if keep_history:
            history = context.history
            history.extend(context.flow)
            if len(history) > COMPACT:
                context.history = [context.fold(history)]
        context.flow = []

    return handle
