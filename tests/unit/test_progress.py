"""Live counters (``live.py``), their rendering (``progress.py``) and the engine's live reads."""

from __future__ import annotations

import logging
import os
import threading
import time
from time import perf_counter

import pytest

from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
from dispel4py.engine.calls import InstanceCalls
from dispel4py.engine.executor import Executor
from dispel4py.engine.plan import make_plan
from dispel4py.engine.result import InstanceStats
from dispel4py.mappings.base import ResultCollector
from dispel4py.observe.live import LIVE_KIND, LiveBoard, PEProgress, Progress, Sampler, sampling
from dispel4py.observe.progress import ProgressLines, progress_line, render_text
from dispel4py.workflow_graph import WorkflowGraph

pytestmark = pytest.mark.timeout(30)


def _progress(finished: bool = False) -> Progress:
    return Progress(
        elapsed_s=12.34,
        mapping="multi",
        workers=4,
        pes=[
            PEProgress("Numbers0", 1, 1, 1000, 0.1, 0, 0.02),
            PEProgress("Slow1", 2, 480, 480, 39.72, 1520, 0.994),
            PEProgress("Sink2", 1, 480, 0, 39.72, 0, 0.01),
        ],
        finished=finished,
    )


# -- rendering ---------------------------------------------------------------------------------
def test_render_text_has_one_row_per_pe_with_every_column() -> None:
    lines = render_text(_progress()).splitlines()
    assert lines[0] == "dispel4py multi · 4 workers · running 12.3 s"
    assert lines[1].split() == [
        "PE",
        "instances",
        "items",
        "in",
        "items",
        "out",
        "rate/s",
        "queued",
        "(items)",
        "busy",
    ]
    assert lines[2].split() == ["Numbers0", "1", "1", "1,000", "0.1", "0", "2%"]
    assert lines[3].split() == ["Slow1", "2", "480", "480", "39.7", "1,520", "99%"]
    assert lines[4].split() == ["Sink2", "1", "480", "0", "39.7", "0", "1%"]
    assert len(lines) == 5


def test_render_text_says_done_and_tasks_on_dynamic_mappings() -> None:
    progress = _progress(finished=True)
    progress.queued_unit = "tasks"
    text = render_text(progress)
    assert "done in 12.3 s" in text
    assert "queued (tasks)" in text


def test_render_text_is_plain_text() -> None:
    assert "\x1b" not in render_text(_progress())


def test_progress_line_names_every_pe() -> None:
    line = progress_line(_progress())
    assert line == (
        "progress 12.3 s: Numbers0 1 in 1,000 out 0.1/s busy 2%; "
        "Slow1 480 in 480 out 39.7/s 1,520 queued busy 99%; Sink2 480 in 0 out 39.7/s busy 1%"
    )


# -- the board -------------------------------------------------------------------------------
class Numbers(ProducerPE):
    def _process(self, inputs):
        for n in range(inputs.get("count", 10)):
            self.write("output", n)


class Double(IterativePE):
    def _process(self, n):
        return 2 * n


class Sink(ConsumerPE):
    def _process(self, n):
        pass


def _plan(workers: int = 2, place_fn=None):
    graph = WorkflowGraph()
    numbers, double, sink = Numbers(), Double(), Sink()
    graph.connect(numbers, "output", double, "input")
    graph.connect(double, "output", sink, "input")
    kwargs = {"place_fn": place_fn} if place_fn else {}
    return make_plan(graph, {numbers.id: 1}, workers, **kwargs), (numbers.id, double.id, sink.id)


def test_board_adds_up_instances_per_pe_and_keeps_the_largest_counts() -> None:
    plan, (numbers, double, sink) = _plan()
    board = LiveBoard()
    board.start(plan, "multi")
    d0, d1 = plan.instances[double]
    board.update(0, [(plan.instances[numbers][0], 1, 10, 0.5, 0), (d0, 4, 4, 0.2, 3)])
    board.update(1, [(d1, 5, 5, 0.1, 2)])
    board.update(0, [(d0, 3, 3, 0.1, 1)])  # a read that raced with the engine: counts never go back
    rows = {row.pe: row for row in board.progress().pes}
    assert rows[numbers].items_out == 10
    assert (rows[double].items_in, rows[double].items_out, rows[double].queued) == (9, 9, 3)
    assert rows[double].instances == 2
    assert rows[sink].items_in == 0
    assert board.progress().workers == plan.num_workers


def test_board_rate_and_busy_over_the_last_seconds() -> None:
    plan, (_, double, _) = _plan()
    board = LiveBoard()
    started = time.monotonic()
    board.start(plan, "multi")
    d0, d1 = plan.instances[double]
    board.update(0, [(d0, 0, 0, 0.0, 0)])
    board.progress()
    after_first = time.monotonic()
    time.sleep(0.2)
    inner = time.monotonic() - after_first  # within the window, however slow the machine
    board.update(0, [(d0, 100, 100, inner, 0)])  # both instances busy all that time
    board.update(1, [(d1, 100, 100, inner, 0)])
    row = next(r for r in board.progress().pes if r.pe == double)
    outer = time.monotonic() - started  # the window is within this (from the start at most)
    # bounds from the clock itself, not from a guess at the machine's speed
    assert 200 / outer <= row.rate <= 200 / inner
    assert inner / outer <= row.busy <= 1.0


def test_board_finish_replaces_live_values_with_the_final_stats() -> None:
    plan, (_numbers, double, _sink) = _plan()
    board = LiveBoard()
    board.start(plan, "multi")
    d0 = plan.instances[double][0]
    board.update(0, [(d0, 7, 7, 0.1, 5)])
    board.finish([InstanceStats(double, d0, 0, calls=10, items_out=10, busy_s=0.3)])
    progress = board.progress()
    assert progress.finished
    row = next(r for r in progress.pes if r.pe == double)
    assert (row.items_in, row.queued, row.done) == (10, 0, True)


def test_board_counts_copies_of_shared_pes_by_worker() -> None:
    from dispel4py.dynamic.layout import dynamic_place

    plan, (_, double, _) = _plan(workers=3, place_fn=dynamic_place)
    board = LiveBoard()
    board.queued_source = lambda: {double: 4}
    board.start(plan, "dyn_multi")
    (shared,) = plan.instances[double]
    board.update(1, [(shared, 3, 3, 0.1, 0)])
    board.update(2, [(shared, 2, 2, 0.1, 0)])
    progress = board.progress()
    row = next(r for r in progress.pes if r.pe == double)
    assert (row.instances, row.items_in, row.queued) == (2, 5, 4)
    assert progress.queued_unit == "tasks"


def test_board_on_report_takes_only_live_samples() -> None:
    plan, _ = _plan()
    board = LiveBoard()
    board.start(plan, "multi")
    assert board.on_report(0, LIVE_KIND, (0, [(0, 1, 2, 0.0, 0)]))
    assert not board.on_report(0, "task", ())


# -- the sampler -----------------------------------------------------------------------------
def test_sampler_sends_periodically_and_once_more_when_closed() -> None:
    sent: list[list] = []
    counter = iter(range(1000))
    sampler = Sampler(lambda: [(0, next(counter), 0, 0.0, 0)], sent.append, 0.02).start()
    _wait_for(lambda: len(sent) >= 2, "two periodic samples")  # periodic: not only at close
    sampler.close()
    assert len(sent) >= 3  # and one more when closed
    assert [rows[0][1] for rows in sent] == sorted(rows[0][1] for rows in sent)


def _wait_for(condition, what: str, within: float = 20.0) -> None:
    """Until ``condition()``; ``within`` is a hang guard, not a bound on the machine's speed."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"no {what} after {within} s"
        time.sleep(0.005)


def test_sampling_off_starts_no_thread() -> None:
    before = threading.active_count()
    with sampling(lambda: [], None, 0.5):
        assert threading.active_count() == before
    with sampling(lambda: [], print, 0):
        assert threading.active_count() == before


def test_sampling_skips_the_last_sample_after_a_failure() -> None:
    sent: list[list] = []
    with pytest.raises(ValueError), sampling(lambda: [(0, 1, 0, 0.0, 0)], sent.append, 10):
        raise ValueError("boom")
    assert sent == []


def test_progress_lines_log_every_interval(caplog) -> None:
    plan, _ = _plan()
    board = LiveBoard()
    board.start(plan, "multi")

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "dispel4py.progress"]

    with caplog.at_level(logging.INFO, logger="dispel4py.progress"), ProgressLines(board, 0.05):
        _wait_for(lambda: len(lines()) >= 2, "two progress lines")
    lines = lines()
    assert len(lines) >= 2
    assert all(line.startswith("progress ") for line in lines)


# -- live reads from the engine ----------------------------------------------------------------
def test_busy_now_counts_running_calls_less_what_ran_nested() -> None:
    plan, (numbers, double, _) = _plan(workers=1)
    calls = InstanceCalls(plan, 0)
    outer, inner = plan.instances[numbers][0], plan.instances[double][0]
    calls.add(outer)
    calls.add(inner)
    seen: dict[int, float] = {}
    clock: dict[str, float] = {}  # bounds from the clock itself: no bet on the machine's speed

    def run_inner() -> None:
        clock["inner_in"] = perf_counter()
        time.sleep(0.1)
        clock["inner_read"] = perf_counter()
        seen.update(calls.busy_now())
        clock["inner_read_end"] = perf_counter()

    def run_outer() -> None:
        clock["outer_in"] = perf_counter()
        time.sleep(0.05)
        clock["outer_calls"] = perf_counter()
        calls.call(inner, "process", run_inner)

    clock["start"] = perf_counter()
    calls.call(outer, "process", run_outer)
    # outer: its own 50 ms (it started before outer_in, the inner call after outer_calls),
    # not the inner 100 ms as well
    assert clock["outer_calls"] - clock["outer_in"] <= seen[outer] <= clock["inner_in"] - clock["start"]
    assert clock["inner_read"] - clock["inner_in"] <= seen[inner]
    assert seen[inner] <= clock["inner_read_end"] - clock["outer_calls"]
    assert calls.busy_now() == {}  # nothing runs now
    assert calls.frames == []


def test_executor_live_rows_count_a_drain_while_it_runs() -> None:
    """Items done in the middle of a drain show, with the rest still queued."""
    seen: list = []

    class Watch(IterativePE):
        def _process(self, n):
            if n == 600:
                seen.extend(executor.live_rows())
            return n

    graph = WorkflowGraph()
    numbers, watch = Numbers(), Watch()
    graph.connect(numbers, "output", watch, "input")
    plan = make_plan(graph, {numbers.id: [{"count": 1000}]}, 1)
    executor = Executor(plan, 0, None, ResultCollector())
    executor.run()
    rows = {row[0]: row[1:] for row in seen}
    watch_iid = plan.instances[watch.id][0]
    items_in, items_out, _busy, queued = rows[watch_iid]
    # the producer fills the inbox to 1000 (its limit 1024 is not reached) and the drain runs after
    assert items_in == 601  # 0..599 done, 600 taken and running
    assert items_out == 600
    assert queued == 399
    numbers_row = rows[plan.instances[numbers.id][0]]
    assert numbers_row[1] == 1000  # all written before the drain


# -- from the Python API -----------------------------------------------------------------------
class Nap(IterativePE):
    """Holds item 20 until the gate file exists: the run cannot end before the test has seen
    a count, whatever the machine's speed (no bet on a clock)."""

    def __init__(self, gate: str) -> None:
        super().__init__()
        self.gate = gate

    def _process(self, n):
        deadline = time.monotonic() + 20
        while n == 20 and not os.path.exists(self.gate):
            if time.monotonic() > deadline:
                raise RuntimeError("the board never showed a count while the run went on")
            time.sleep(0.01)
        return n


@pytest.mark.parametrize(
    ("mapping", "options"), [("simple", {}), ("multi", {"num": 2}), ("dyn_multi", {"num": 2})]
)
def test_run_with_a_board_feeds_it_while_the_run_goes(mapping, options, tmp_path) -> None:
    import dispel4py

    gate = tmp_path / "open"
    graph = WorkflowGraph()
    numbers, nap, sink = Numbers(), Nap(str(gate)), Sink()
    graph.connect(numbers, "output", nap, "input")
    graph.connect(nap, "output", sink, "input")
    board = LiveBoard(every=0.05)
    seen: list[int] = []  # nap's items in, seen while item 20 was held (the run going on)
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.05) and not gate.exists():
            count = next((r.items_in for r in board.progress().pes if r.pe == nap.id), 0)
            if count > 0:
                seen.append(count)
                gate.touch()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        dispel4py.run(graph, {numbers.id: [{"count": 40}]}, mapping, board=board, **options)
    finally:
        done.set()
        watcher.join()
    final = board.progress()
    assert final.finished
    rows = {r.pe: r for r in final.pes}
    assert rows[nap.id].items_in == 40 and rows[sink.id].items_in == 40
    assert seen and 0 < seen[0] <= 40, seen  # counted while it ran, not only at the end


def test_board_first_reading_measures_since_the_start() -> None:
    """The first reading (the first ``-v`` line) has a rate and a busy share over the time
    since the start, not 0.0/s and 0% over a window of zero length."""
    plan, (_, double, _) = _plan()
    board = LiveBoard()
    before = time.monotonic()
    board.start(plan, "multi")
    started = time.monotonic()
    d0, d1 = plan.instances[double]
    time.sleep(0.05)  # any span > 0 will do: the bounds below are from the clock itself
    span = time.monotonic() - started
    board.update(0, [(d0, 10, 10, span, 0)])  # busy all along
    board.update(1, [(d1, 10, 10, span, 0)])
    row = next(r for r in board.progress().pes if r.pe == double)
    outer = time.monotonic() - before
    assert row.rate > 0
    assert 20 / outer <= row.rate <= 20 / span
    assert span / outer <= row.busy <= 1.0  # both busy the whole time measured, over the whole time


def test_board_finish_counts_the_copies_of_a_shared_pe() -> None:
    """The final stats merge a shared PE's copies into one row (worker -1); its instances
    are the workers that ran a copy, and its busy share is per copy."""
    from dispel4py.dynamic.layout import dynamic_place

    plan, (_, double, _) = _plan(workers=4, place_fn=dynamic_place)
    board = LiveBoard()
    board.start(plan, "dyn_multi")
    (shared,) = plan.instances[double]
    time.sleep(0.02)
    board.finish([InstanceStats(double, shared, -1, calls=8, items_out=8, busy_s=0.0, copies=3)])
    row = next(r for r in board.progress().pes if r.pe == double)
    assert (row.instances, row.items_in, row.done) == (3, 8, True)
