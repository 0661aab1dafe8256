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
* **Iteration timings** (``timed_*`` mappings only, ``timings=True``): each ``process``
  call's seconds, less nested instances' time, go to ``InstanceStats.iteration_s``. Off,
  nothing is wrapped: a normal run pays nothing per item.
* **Failures**: anything PE code raises — including ``SystemExit`` and other
  ``BaseException`` s, but not ``KeyboardInterrupt`` (Ctrl-C keeps its meaning) — becomes a
  ``WorkflowFailed`` naming the PE, instance, phase, input port and item; the failing call
  is saved to a replay file when replay files are on (``replay.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from time import perf_counter
from typing import Any

from dispel4py.engine.failure import wrap_failure
from dispel4py.engine.plan import Plan
from dispel4py.engine.replay import save_failure
from dispel4py.engine.result import InstanceStats
from dispel4py.errors import Dispel4PyError, ResourcesRefused, thread_refused

__all__ = ["InstanceCalls"]


class InstanceCalls:
    def __init__(self, plan: Plan, worker: int, where: str = "", timings: bool = False) -> None:
        self.plan = plan
        self.timings = timings
        self.worker = worker
        self.where = where
        n = len(plan.placement.pe_of)
        self.active = [False] * n
        self.stack: list[int] = []  # running instances, strictly increasing in level
        order = {pe: i for i, pe in enumerate(plan.order)}
        self.level = [order[pe] for pe in plan.placement.pe_of]
        self.stats: dict[int, InstanceStats] = {}
        self.failure: Dispel4PyError | None = None
        self.pes: dict[int, Any] = {}  # the instances' PE objects (the engine fills it)
        self._nested_s = 0.0
        self.frames: list[tuple[int, float, float]] = []  # per call on the stack: iid, start, outer nested
        # a recorder's items travel with their ids (engine/recording.py): the item of a failure is
        # the user's; called only when a call fails
        self.unwrap: Callable[[Any], Any] | None = None

    def add(self, iid: int) -> InstanceStats:
        stats = self.stats[iid] = InstanceStats(self.plan.pe_of(iid), iid, self.worker)
        if self.timings:
            stats.iteration_s = []
        return stats

    def timed(self, iid: int, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` itself, or in a timed run ``fn`` recording the seconds of each call (less
        the time of instances nested inside it) in ``iid``'s ``iteration_s``."""
        times = self.stats[iid].iteration_s
        if times is None:
            return fn
        record = times.append

        def timed_call(*args: Any) -> Any:
            nested = self._nested_s
            start = perf_counter()
            result = fn(*args)
            record(perf_counter() - start - (self._nested_s - nested))
            return result

        return timed_call

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
        self.frames.append((iid, start, outer_nested))
        try:
            body()
        except (Dispel4PyError, KeyboardInterrupt):
            raise  # already reported, or Ctrl-C, which keeps its meaning
        except BaseException as exc:  # sys.exit() and other BaseExceptions from PE code too
            if thread_refused(exc):  # the OS's limit (a queue's feeder thread, say), not the PE's bug
                raise _refused(self.plan.pe_of(iid), iid, phase, exc) from exc
            at_port, at_item = port() if port else None, item() if item else None
            if self.unwrap is not None and port is not None:  # an inbox item, not a source's input
                at_item = self.unwrap(at_item)
            self.failure = wrap_failure(self.plan.pe_of(iid), iid, phase, at_port, at_item, exc, self.where)
            save_failure(self.failure, self.pes.get(iid), at_port, at_item, exc)  # replay.py
            raise self.failure from exc
        finally:
            self.frames.pop()  # before busy_s grows: a live reader may undercount, never double
            elapsed = perf_counter() - start
            self.stats[iid].busy_s += elapsed - self._nested_s
            self._nested_s = outer_nested + elapsed
            self.stack.pop()
            self.active[iid] = False

    def busy_now(self) -> dict[int, float]:
        """Busy seconds of the calls still running, per instance (not yet in ``busy_s``).

        Read by the live-counters thread (``live.py``) while calls run: a call's time so
        far, less what ran nested inside it; the frames are copied first, so a read racing
        with a call's end is off by at most that one call, never raises."""
        frames = list(self.frames)
        now, nested = perf_counter(), self._nested_s
        running: dict[int, float] = {}
        for iid, start, outer_nested in reversed(frames):  # innermost first
            running[iid] = max(0.0, now - start - nested)
            now, nested = start, outer_nested  # the caller's time stops where this call began
        return running

    def feed(
        self,
        iid: int,
        pe: Any,
        emit: Callable[[Any], None],
        provided: int | Sequence[Any],
        process: Callable[[Any], Any] | None = None,
    ) -> None:
        """Run provided inputs of a source: N ``process({})`` calls, or one call per dict
        (``process``: ``pe.process`` as a recorder wraps it, see ``engine/recording.py``)."""
        calls = range(provided) if isinstance(provided, int) else provided
        process, stats = self.timed(iid, process or pe.process), self.stats[iid]
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
        stats, handler = self.stats[iid], self.timed(iid, handler)
        current: Any = None

        def run() -> None:
            nonlocal current
            for current in items:
                stats.calls += 1
                handler(port, current)

        self.call(iid, "process", run, lambda: current, lambda: port)


def _refused(pe_id: str, iid: int, phase: str, exc: BaseException) -> ResourcesRefused:
    """A thread the OS refused during a call: one line naming the call, no replay file (the
    PE's code is not at fault, and calling it again would not show the limit)."""
    return ResourcesRefused(
        f"the operating system refused a new thread while {pe_id} (instance {iid}) ran {phase} ({exc}): "
        "more processes or threads than this machine's limits allow (processes per user, pids, "
        "memory); use a smaller -n/--num"
    )
