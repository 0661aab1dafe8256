"""dyn_multi and dyn_auto_multi from the command line: nothing is cut off, slow stages spread
over the workers, the original's names and flags are accepted.

(Every graph vs ``simple`` and the failure paths are in the conformance suite; the
randomized protocol stress runs on the dynamic mappings too.)
"""

from __future__ import annotations

import re

import pytest
from _helpers import WORKFLOWS, cli, run

import dispel4py
from dispel4py.engine.loading import load_workflow

pytestmark = pytest.mark.timeout(60)

SLOW = str(WORKFLOWS / "dyn_slow.py")
DYNAMIC = ["dyn_multi", "dyn_auto_multi"]


@pytest.mark.parametrize("mapping", DYNAMIC)
def test_a_pe_taking_3_s_per_item_is_never_cut_off(mapping: str) -> None:
    done = run(cli(mapping, SLOW, "-n", "2"), timeout=45, env={"D4PY_SLOW_ITEMS": "2", "D4PY_SLOW_S": "3"})
    assert done.returncode == 0, done.stderr
    assert "Outputs: {'Total3': {'total': [(2, 2)]}}" in done.stdout


@pytest.mark.parametrize("mapping", DYNAMIC)
def test_a_cheap_pe_is_not_held_back_by_a_slow_one(mapping: str, tmp_path) -> None:
    """The source feeds Slow (1000 x 0.2 s, 67 s of work on 3 workers) and the cheap Boom,
    which raises on item 42: Boom's items are not kept in the source's buffer, nor left
    in the queue, while Slow's backlog keeps every worker busy. Counted in Slow's items,
    not in seconds (a loaded machine slows the engine, not Slow's sleeps)."""
    env = {"D4PY_BOOM_ITEMS": "1000", "D4PY_MARK_DIR": str(tmp_path)}
    done = run(cli(mapping, str(WORKFLOWS / "slow_and_boom.py"), "-n", "3"), timeout=90, env=env)
    assert done.returncode == 1, done.stderr
    at_raise = _slow_items_done_at_raise(done.stderr)
    assert at_raise < 500, at_raise  # not held back until Slow's backlog drained (it was all)
    after = len(list(tmp_path.iterdir())) - at_raise
    assert after < 150, after  # the run ended at once: not 10 s more of Slow's work
    assert done.stderr.count("dispel4py: error:") == 1 and "Outputs:" not in done.stdout


def _slow_items_done_at_raise(stderr: str) -> int:
    return int(re.search(r"raised at [0-9.]+ with (\d+) Slow items done", stderr).group(1))


@pytest.mark.parametrize("mapping", DYNAMIC)
def test_an_empty_run_ends_at_once_with_no_outputs(mapping: str) -> None:
    done = run(cli(mapping, SLOW, "-n", "3", "-i", "0"), timeout=20)
    assert done.returncode == 0, done.stderr
    assert "Outputs: {'Total3': {'total': [(0, 0)]}}" in done.stdout


def test_a_slow_stage_spreads_over_every_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("D4PY_SLOW_ITEMS", "40")
    monkeypatch.setenv("D4PY_SLOW_S", "0.05")
    graph = load_workflow(SLOW)
    ids = {node.obj.name: node.obj.id for node in graph.nodes}
    result = dispel4py.run(graph, None, "dyn_multi", num=4)
    assert result is not None
    assert result.items(ids["Total"], "total") == [(40, 2 * sum(range(40)))]
    [sleepy] = [s for s in result.stats if s.pe_id == ids["Sleepy"]]
    assert sleepy.copies == 4, sleepy  # a copy busy on every worker
    assert sleepy.calls == 40


def test_tiny_items_travel_in_large_tasks_and_none_is_lost() -> None:
    from dispel4py.base import ConsumerPE, IterativePE, ProducerPE
    from dispel4py.workflow_graph import WorkflowGraph

    class Many(ProducerPE):
        def _process(self, inputs):
            for i in range(200_000):
                self.write("output", i)

    class AddOne(IterativePE):
        def _process(self, x):
            return x + 1

    class Sum(ConsumerPE):
        def __init__(self):
            super().__init__()
            self._add_output("total")
            self.count = self.sum = 0

        def _process(self, x):
            self.count += 1
            self.sum += x

        def _postprocess(self):
            self.write("total", (self.count, self.sum))

    graph = WorkflowGraph()
    add = AddOne()
    graph.connect(Many(), "output", add, "input")
    graph.connect(add, "output", Sum(), "input")
    result = dispel4py.run(graph, None, "dyn_multi", num=2)
    assert result is not None
    totals = next(iter(result.outputs.values()))["total"]  # one per copy of Sum
    assert sum(c for c, _ in totals) == 200_000
    assert sum(s for _, s in totals) == sum(range(1, 200_001))
    adders = [s for s in result.stats if s.pe_id == add.id]
    tasks = sum(s.calls for s in adders)
    assert tasks == 200_000


@pytest.mark.parametrize(
    ("name", "mapping"),
    [("dispel4py.new.new_dynamic", "dyn_multi"), ("dispel4py.new.new_dynamic_auto", "dyn_auto_multi")],
)
def test_the_original_module_names_and_flags_are_accepted(name: str, mapping: str) -> None:
    extra = ["-thr", "5"] if mapping == "dyn_auto_multi" else []
    done = run(cli(name, SLOW, "-n", "2", "-ct", "3", *extra), env={"D4PY_SLOW_S": "0"})
    assert done.returncode == 0, done.stderr
    assert "(2, 2)" in done.stdout
    assert "-ct/--consumer-timeout is ignored" in done.stderr


def test_autoscaling_decisions_are_logged_and_listed_by_stats() -> None:
    env = {"D4PY_SLOW_ITEMS": "60", "D4PY_SLOW_S": "0.02"}
    done = run(cli("dyn_auto_multi", SLOW, "-n", "4", "-thr", "2", "-v", "--stats"), env=env)
    assert done.returncode == 0, done.stderr
    assert "autoscaling:" in done.stderr and "workers take shared tasks" in done.stderr
    assert "active workers (autoscaling): 0.00 s: 3, " in done.stderr  # then more: 60 tasks > 2


BOOM_BESIDE_SLOW = """
import time
from dispel4py.base import IterativePE, ProducerPE, ConsumerPE
from dispel4py.workflow_graph import WorkflowGraph

class Numbers(ProducerPE):
    def _process(self, inputs):
        for i in range(10):
            self.write("output", i)

class SlowOnZero(IterativePE):
    def _process(self, x):
        if x == 0:
            time.sleep(600)  # longer than the test's hang guard: only the error can end the run
        return x

class Boom(ConsumerPE):
    def _process(self, x):
        if x == 3:
            raise ValueError("bad item 3")

graph = WorkflowGraph()
numbers = Numbers()
graph.connect(numbers, "output", SlowOnZero(), "input")
graph.connect(numbers, "output", Boom(), "input")
"""


@pytest.mark.parametrize("mapping", DYNAMIC)
def test_an_error_ends_the_run_while_a_worker_is_busy(mapping: str, tmp_path) -> None:
    """A worker is busy for 600 s with item 0 when Boom raises: a run that waited for it
    would outlive the hang guard (timeout), so ending at all is ending because of the error."""
    workflow = tmp_path / "boom_beside_slow.py"
    workflow.write_text(BOOM_BESIDE_SLOW)
    done = run(cli(mapping, str(workflow), "-n", "3"), timeout=40)
    assert done.returncode == 1
    assert done.stderr.count("dispel4py: error:") == 1
    assert "PE Boom2" in done.stderr and "with item 3" in done.stderr
