"""``simple``: one worker hosting every instance, in this process, no transport."""

from __future__ import annotations

from dispel4py.engine.executor import Executor
from dispel4py.engine.plan import Plan
from dispel4py.engine.result import InstanceStats
from dispel4py.engine.tuning import Tuning
from dispel4py.mappings.base import Mapping, ResultCollector
from dispel4py.observe.live import sampling

__all__ = ["SimpleMapping"]


class SimpleMapping(Mapping):
    name = "simple"
    summary = "sequential, in this process (the reference for results)"
    stops_on_signals = True  # SIGTERM/SIGHUP end the run like Ctrl-C, with one line and 143/129

    def num_workers(self) -> int:
        return 1

    def execute(self, plan: Plan, collector: ResultCollector) -> list[InstanceStats]:
        executor = Executor(plan, 0, None, collector, tuning=Tuning.from_options(self.options))
        board = self.board
        send = None if board is None else lambda rows: board.update(0, rows)
        try:
            with sampling(executor.live_rows, send, board.every if board is not None else 0):
                return executor.run()
        finally:
            executor.close()
