"""``dispel4py.stream``: the results of a run, from Python, while the run goes.

``dispel4py.run`` returns when the run is over, which is too late for a notebook watching a
long run, or for a program that acts on the first results (the way Ray's ``ray.wait`` and
Dask's ``as_completed`` are used). ``stream`` yields every item written to a collected
(by default: unconnected) output as it reaches the driver, on any mapping.

* **Backpressure.** The run goes in a thread of this process and hands results over
  through a bounded queue (``mappings/handoff.py``). A consumer slower than the run makes
  the driver wait, and each transport then makes its workers wait: memory stays bounded
  (docs/design.md, "Results while the run goes", says how on each transport).
* **Failure.** The run's error (a :class:`dispel4py.errors.WorkflowFailed` for a PE that
  raised, as :func:`dispel4py.run` raises it) comes out of the iterator after every item
  that reached the driver before it.
* **Stopping early.** ``break``, an exception in the loop body, ``KeyboardInterrupt`` or
  the iterator being garbage-collected close it: the run is stopped and cleaned up as after
  a failure (every worker process gone, its files and Redis keys removed) before ``close``
  returns. Under ``mpi`` a stop would end every rank's process, so there the run goes on to
  its end with its results dropped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from collections.abc import Mapping as MappingABC
from typing import Any

from dispel4py.api import mapping_options
from dispel4py.engine.fresh import fresh_copy
from dispel4py.engine.tuning import Tuning
from dispel4py.errors import UsageError
from dispel4py.mappings import get_mapping
from dispel4py.mappings.base import Mapping
from dispel4py.mappings.handoff import END, Handoff, StreamClosed, StreamingCollector
from dispel4py.observe.live import LiveBoard
from dispel4py.workflow_graph import WorkflowGraph

__all__ = ["stream"]

_log = logging.getLogger("dispel4py.api")

DEFAULT_BUFFER = 1024  # result items the run may get ahead of its consumer


def stream(
    graph: WorkflowGraph,
    inputs: MappingABC[Any, Any] | None = None,
    mapping: str = "simple",
    *,
    collect: MappingABC[str, list[str]] | None = None,
    buffer: int = DEFAULT_BUFFER,
    board: LiveBoard | None = None,
    **options: Any,
) -> Iterator[tuple[str, str, Any]]:
    """Run ``graph`` on ``mapping`` and yield ``(pe_id, output, item)`` as results arrive.

    The arguments are those of :func:`dispel4py.run` (a fresh copy of the graph is run);
    ``buffer`` is how many result items the run may get ahead of the loop before it waits.
    Bad options raise :class:`UsageError` here; the run starts with the first ``next()``.
    Under ``mpiexec`` rank 0 yields; on the other ranks the iterator runs their part of the
    run and ends without yielding.
    """
    if isinstance(buffer, bool) or not isinstance(buffer, int) or buffer < 1:
        raise UsageError(f"buffer must be a whole number of at least 1 (got {buffer!r})")
    graph, inputs = fresh_copy(graph, inputs)
    mapping_cls = get_mapping(mapping)
    chosen = {**mapping_options(mapping_cls, options), "streaming": True}
    Tuning.from_options(chosen)  # --batch-size/--credits errors now, not at the first next()

    def make() -> Mapping:
        runner = mapping_cls(chosen)
        runner.board = board
        return runner

    return _results(make, graph, inputs, collect, buffer)


def _results(
    make: Callable[[], Mapping],
    graph: WorkflowGraph,
    inputs: MappingABC[Any, Any] | None,
    collect: MappingABC[str, list[str]] | None,
    buffer: int,
) -> Iterator[tuple[str, str, Any]]:
    """The generator behind :func:`stream`: its ``finally`` is the clean-up on every way out
    (end, error, ``close()`` after ``break``, garbage collection, ``KeyboardInterrupt``).
    Nothing is made before the first ``next()``: an iterator never started holds nothing."""
    runner = make()  # MPI starts here, in the caller's (main) thread
    handoff = Handoff(buffer)
    thread: threading.Thread | None = None
    try:
        if not runner.primary:  # an MPI rank other than 0: its share of the run, no results
            runner.run(graph, inputs, collect=collect)
            return
        handoff.drop_when_closed = not runner.stops_early
        thread = threading.Thread(
            target=_run_into,
            args=(runner, graph, inputs, collect, handoff),
            name="dispel4py-stream",
            daemon=True,  # a consumer that exits without closing must not be held up by it
        )
        thread.start()
        while (got := handoff.get()) is not END:
            yield got
    finally:
        handoff.close()
        if thread is not None:
            thread.join()  # bounded: the run stops at its next hand-off or wait, then cleans up
        if thread is None or not thread.is_alive():  # a second Ctrl-C may cut the join short
            handoff.release()
        runner.release()


def _run_into(
    runner: Mapping,
    graph: WorkflowGraph,
    inputs: MappingABC[Any, Any] | None,
    collect: MappingABC[str, list[str]] | None,
    handoff: Handoff,
) -> None:
    """The run's thread: results to ``handoff``, then its end (or error) after them."""
    collector = StreamingCollector(handoff)
    try:
        runner.run(graph, inputs, collect=collect, collector=collector)
    except StreamClosed:
        handoff.end()  # the consumer stopped: nobody is there to be told
    except BaseException as exc:  # everything reaches the consumer, as from dispel4py.run
        try:  # what an in-process run (simple) wrote before the failure comes first
            collector.flush_results()
        except Exception as flush_exc:  # the run's own error is the one to report
            _log.debug("results written before the failure not handed over: %s", flush_exc)
        handoff.end(exc)
    else:
        handoff.end()
