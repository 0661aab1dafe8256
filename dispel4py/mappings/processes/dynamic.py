"""``dyn_multi`` and ``dyn_auto_multi``: the dynamic engine on worker processes of this machine.

``-n N`` starts N workers; the driver (this process) only coordinates (the original counted
the driver: ``-n N`` gave N - 1 workers). Shared PEs' tasks go to any free worker; pinned
instances (sources, grouped inputs, ``stateful``/``single`` PEs) each live on one worker
(``dynamic/layout.py``), so every graph gives the same results as ``simple``.
``dyn_auto_multi`` adds autoscaling: a pure policy (``dynamic/autoscale.py``) decides how
many workers take shared tasks, and the others are parked (they still serve their pinned
instances); decisions are logged at ``-v`` and listed by ``--stats``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping as MappingABC
from typing import Any

from dispel4py.dynamic.coordinator import Coordinator, merge_copies
from dispel4py.dynamic.layout import dynamic_place, shared_combiners
from dispel4py.engine.plan import Plan, make_plan
from dispel4py.engine.result import InstanceStats
from dispel4py.engine.tuning import Tuning
from dispel4py.mappings.base import ResultCollector
from dispel4py.mappings.processes.local_queues import REPORTS, LocalQueues
from dispel4py.mappings.processes.pool import ProcessMapping, _Pool
from dispel4py.workflow_graph import WorkflowGraph

__all__ = ["DynMultiMapping", "DynAutoMultiMapping"]

_log = logging.getLogger("dispel4py.engine")
_TICK_S = 0.1  # how often the autoscaler looks at the queues


class DynMultiMapping(ProcessMapping):
    name = "dyn_multi"
    summary = "dynamic work queue on this machine"
    autoscale = False
    layout = "dynamic"

    @classmethod
    def add_arguments(cls, parser: Any) -> None:
        parser.add_argument(
            "-n", "--num", type=int, default=None, help="worker processes (default: number of cores)"
        )
        cls.add_tuning_arguments(parser)
        cls.add_shm_argument(parser)
        cls.add_start_method_argument(parser)
        parser.add_argument(
            "-ct",
            "--consumer-timeout",
            type=int,
            default=None,
            help="accepted for compatibility and ignored: runs end by protocol, never on a timeout",
        )

    def make_plan(
        self,
        graph: WorkflowGraph,
        inputs: MappingABC[Any, Any] | None,
        collect: MappingABC[str, list[str]] | None,
    ) -> Plan:
        if self.options.get("consumer_timeout") is not None:
            _log.warning("-ct/--consumer-timeout is ignored: dynamic runs end by protocol, not on a timeout")
        plan = make_plan(graph, inputs, self.num_workers(), collect=collect, place_fn=dynamic_place)
        if plan.num_workers > 1:
            for pe_id, ports, kept in shared_combiners(plan):
                _log.warning(
                    "%s: %s has %d inputs (%s) and keeps %s, but no declared state, so it runs as "
                    "copies, one per worker, each seeing only the items that worker took: if it "
                    "combines items across calls (a merge, a join), declare it stateful "
                    "(stateful = True on the PE, in the workflow) so that one instance sees them "
                    "all; stateful = False says it keeps no state and silences this warning",
                    self.name,
                    pe_id,
                    len(ports),
                    ", ".join(ports),
                    ", ".join(f"self.{name}" for name in kept),
                )
        return plan

    def make_channels(self, ctx: Any, workers: int) -> Any:
        raise NotImplementedError  # the dynamic mappings make their queues from the plan

    def execute(self, plan: Plan, collector: ResultCollector) -> list[InstanceStats]:
        import multiprocess

        tuning = self.live_tuning(Tuning.from_options(self.options))
        ctx = multiprocess.get_context(self.options.get("start_method"))
        queues = LocalQueues(ctx, plan)
        coordinator = Coordinator(plan, queues, recording=tuning.recorder is not None)
        scaler = self._scaler(plan, queues, coordinator)
        on_report = coordinator.on_report
        board = self.board
        if board is not None:
            board.queued_source = coordinator.queued_tasks

            def on_report(worker: int, kind: str, body: Any) -> bool:
                return board.on_report(worker, kind, body) or coordinator.on_report(worker, kind, body)

        on_report = _unbatching(on_report)

        with (
            contextlib.closing(self.shared_memory(ctx)) as codec,
            contextlib.closing(queues),
            _Pool(ctx, plan, queues, tuning) as pool,
        ):
            queues.codec = codec
            pool.start()
            coordinator.start()
            stats = pool.collect(
                collector,
                on_report=on_report,
                tick=scaler.tick if scaler else None,
                every=_TICK_S,
            )
        if scaler is not None:
            self.workers_timeline = scaler.timeline
        return merge_copies(stats)

    def _scaler(self, plan: Plan, queues: LocalQueues, coordinator: Coordinator) -> Any:
        return None


def _unbatching(on_report: Any) -> Any:
    """``on_report`` that also takes a worker's batch of reports (``LocalQueues``), in order."""

    def on_reports(worker: int, kind: str, body: Any) -> bool:
        if kind != REPORTS:
            return bool(on_report(worker, kind, body))
        return all([on_report(worker, k, b) for k, b in body])

    return on_reports


class DynAutoMultiMapping(DynMultiMapping):
    name = "dyn_auto_multi"
    summary = "dynamic work queue with autoscaling"
    autoscale = True

    @classmethod
    def add_arguments(cls, parser: Any) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "-thr",
            "--queue_threshold",
            type=int,
            default=10,
            help="tasks queued before more workers take shared work (default 10)",
        )

    def _scaler(self, plan: Plan, queues: LocalQueues, coordinator: Coordinator) -> Any:
        from dispel4py.mappings.processes.scaling import LocalScaler

        return LocalScaler(plan.num_workers, queues, coordinator, self.options.get("queue_threshold"))
