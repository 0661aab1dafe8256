"""Calling PE code: the one place that runs ``preprocess``/``process``/``postprocess`` of an
instance, times it, keeps the stack of running instances and turns what user code raises
into a :class:`~dispel4py.errors.WorkflowFailed`.

Shared by the static executor (``executor.py``) and the dynamic worker
(``dynamic/worker.py``); neither has a second copy of this.

* **The stack** holds the instances whose code is running, outermost first. A worker runs
  another instance *nested* (while the one below it waits, e.g. for credit) only if that
  instance's **level** (its PE's position in the topological order) is above the top's:
  the stack strictly rises, which is what makes both engines' waits deadlock-free.
* **Busy time** of an instance excludes the time spent in instances nested inside it.
* **Failures**: anything PE code raises — including ``SystemExit`` and other
  ``BaseException`` s, but not ``KeyboardInterrupt`` (Ctrl-C keeps its meaning) — becomes a
  ``WorkflowFailed`` naming the PE, instance, phase, input port and item.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from time import perf_counter
from typing import Any

from dispel4py.errors import Dispel4PyError
from dispel4py.failure import wrap_failure
from dispel4py.plan import Plan
from dispel4py.result import InstanceStats

__all__ = ["InstanceCalls"]


class InstanceCalls:
    def __init__(self, plan: Plan, worker: int, where: str = "") -> None:
        self.plan = plan
        self.worker = worker
        self.where = where
        n = len(plan.placement.pe_of)
        self.active = [False] * n
        self.stack: list[int] = []  # running instances, strictly increasing in level
        order = {pe: i for i, pe in enumerate(plan.order)}
        self.level = [order[pe] for pe in plan.placement.pe_of]
        self.stats: dict[int, InstanceStats] = {}
        self.failure: Dispel4PyError | None = None
        self._nested_s = 0.0

    def add(self, iid: int) -> InstanceStats:
        stats = self.stats[iid] = InstanceStats(self.plan.pe_of(iid), iid, self.worker)
        return stats

    def may_nest(self, iid: int) -> bool:
        """Whether ``iid`` may run now, on top of the stack (its level is above the top's)."""
        return not self.stack or self.level[iid] > self.level[self.stack[-1]]

    def call(
        self,
        iid: int,
        phase: str,
        body: Callable[[], None],
        item: Callable[[], Any] | None = None,
        port: Callable[[], Any] | None = None,
    ) -> None:
        """Run ``body`` as instance ``iid``: mark it active, time it, wrap user errors."""
        self.active[iid] = True
        self.stack.append(iid)
        outer_nested, self._nested_s = self._nested_s, 0.0
        start = perf_counter()
        try:
            body()
        except (Dispel4PyError, KeyboardInterrupt):
            raise  # already reported, or Ctrl-C, which keeps its meaning
        except BaseException as exc:  # sys.exit() and other BaseExceptions from PE code too
            self.failure = wrap_failure(
                self.plan.pe_of(iid),
                iid,
                phase,
                port() if port else None,
                item() if item else None,
                exc,
                self.where,
            )
            raise self.failure from exc
        finally:
            elapsed = perf_counter() - start
            self.stats[iid].busy_s += elapsed - self._nested_s
            self._nested_s = outer_nested + elapsed
            self.stack.pop()
            self.active[iid] = False

    def feed(self, iid: int, pe: Any, emit: Callable[[Any], None], provided: int | Sequence[Any]) -> None:
        """Run provided inputs of a source: N ``process({})`` calls, or one call per dict."""
        calls = range(provided) if isinstance(provided, int) else provided
        process, stats = pe.process, self.stats[iid]
        item: Any = None

        def feed() -> None:
            nonlocal item
            for entry in calls:
                item = {} if isinstance(provided, int) else entry
                stats.calls += 1
                out = process(item)
                if out is not None:
                    emit(out)

        self.call(iid, "process", feed, lambda: item)

    def run_items(
        self, iid: int, handler: Callable[[str, Any], None], port: str, items: Sequence[Any]
    ) -> None:
        """One ``process`` call per item arriving on ``port``."""
        stats = self.stats[iid]
        current: Any = None

        def run() -> None:
            nonlocal current
            for current in items:
                stats.calls += 1
                handler(port, current)

        self.call(iid, "process", run, lambda: current, lambda: port)
