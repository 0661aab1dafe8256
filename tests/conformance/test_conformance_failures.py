"""Fail fast (design: "Fail fast"; spec B6): a PE exception ends the whole run with a
:class:`dispel4py.WorkflowFailed` that names the PE, phase, port and item, carries the
user's traceback, and leaves no worker process behind.

The failing PEs live in this module (importable, so spawned workers can load them), so
the user traceback must mention this file.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest
from conformance_pes import Identity, Observer, named
from conformance_support import child_pids, items_of, leftover_children, run_result_on

import dispel4py
from dispel4py.base import IterativePE
from dispel4py.core import GenericPE
from dispel4py.workflow_graph import WorkflowGraph

pytestmark = pytest.mark.timeout(60)

THIS_FILE = os.path.basename(__file__)
N = 20


# -- failing PEs and their graphs (module level: spawned workers import them) -------------
class Labels(GenericPE):
    """Source: ``"item-1"``, ``"item-2"``, ...; raises on call ``fail_at`` if given."""

    def __init__(self, fail_at: int | None = None) -> None:
        GenericPE.__init__(self)
        self._add_output("output")
        self.fail_at = fail_at
        self.counter = 0

    def _process(self, inputs: Any) -> dict[str, str]:
        self.counter += 1
        if self.counter == self.fail_at:
            raise RuntimeError(f"source failed on call {self.counter}")
        return {"output": f"item-{self.counter}"}


class Explode(IterativePE):
    def __init__(self, bad: str) -> None:
        IterativePE.__init__(self)
        self.bad = bad

    def _process(self, data: Any) -> Any:
        if data == self.bad:
            raise ValueError(f"cannot handle {data!r}")
        return data


class ExplodeInPreprocess(IterativePE):
    def _preprocess(self) -> None:
        raise ValueError("preprocess failed on purpose")

    def _process(self, data: Any) -> Any:
        return data


class ExplodeInPostprocess(IterativePE):
    def _process(self, data: Any) -> Any:
        return data

    def _postprocess(self) -> None:
        raise ValueError("postprocess failed on purpose")


class SlowOnce(IterativePE):
    """Sleeps ``delay`` seconds on its first item (a PE still busy when another fails)."""

    def __init__(self, delay: float) -> None:
        IterativePE.__init__(self)
        self.delay = delay
        self.slept = False

    def _process(self, data: Any) -> Any:
        if not self.slept:
            self.slept = True
            time.sleep(self.delay)
        return data


class KillOwnWorker(IterativePE):
    """Kills its own process with SIGKILL on one item (a crash the PE cannot report)."""

    def __init__(self, bad: str) -> None:
        IterativePE.__init__(self)
        self.bad = bad

    def _process(self, data: Any) -> Any:
        if data == self.bad:
            os.kill(os.getpid(), signal.SIGKILL)
        return data


class WriteToUnknownOutput(IterativePE):
    def _process(self, data: Any) -> Any:
        self.write("ouput", data)  # misspelt on purpose


def chain_with(pe: GenericPE, name: str, source: GenericPE | None = None) -> WorkflowGraph:
    """source -> pe -> sink."""
    graph = WorkflowGraph()
    source = source or Labels()
    graph.connect(named(source, "source"), "output", named(pe, name), "input")
    graph.connect(pe, "output", named(Identity(), "sink"), "input")
    return graph


def failing_in_process() -> WorkflowGraph:
    return chain_with(Explode("item-7"), "explode")


def failing_in_preprocess() -> WorkflowGraph:
    return chain_with(ExplodeInPreprocess(), "explode_pre")


def failing_in_postprocess() -> WorkflowGraph:
    return chain_with(ExplodeInPostprocess(), "explode_post")


def failing_source() -> WorkflowGraph:
    return chain_with(Identity(), "middle", Labels(fail_at=5))


def failing_beside_a_slow_pe() -> WorkflowGraph:
    """source -> explode (fails on item-3) and source -> slow (busy for 600 s: longer than
    the test's timeout, so a run that waited for it would never end)."""
    graph = WorkflowGraph()
    source = named(Labels(), "source")
    graph.connect(source, "output", named(Explode("item-3"), "explode"), "input")
    graph.connect(source, "output", named(SlowOnce(600), "slow"), "input")
    return graph


def killing_its_worker() -> WorkflowGraph:
    return chain_with(KillOwnWorker("item-5"), "killer")


def writing_to_unknown_output() -> WorkflowGraph:
    return chain_with(WriteToUnknownOutput(), "misspelt")


def grouping_an_unindexable_item() -> WorkflowGraph:
    """Strings grouped by the key 'k' (strings cannot be indexed by 'k')."""
    graph = WorkflowGraph()
    graph.connect(named(Labels(), "source"), "output", named(Observer(["k"], 3), "grouped"), "input")
    return graph


def working() -> WorkflowGraph:
    return chain_with(Identity(), "middle")


# -- tests -------------------------------------------------------------------------------
def run_failing(entry, factory) -> dispel4py.WorkflowFailed:
    """Run a graph that must fail; check the failure and that no worker is left."""
    baseline = child_pids()
    with pytest.raises(dispel4py.WorkflowFailed) as info:
        run_result_on(entry, factory, {"source": N})
    assert leftover_children(baseline) == [], "worker processes outlived the failed run"
    assert isinstance(info.value, dispel4py.Dispel4PyError)
    return info.value


def test_error_in_process_names_pe_port_and_item(in_process_entry):
    error = run_failing(in_process_entry, failing_in_process)
    assert error.pe_id == "explode1"
    assert error.phase == "process"
    assert error.port == "input"
    assert error.item_repr is not None and "item-7" in error.item_repr
    assert THIS_FILE in error.user_traceback, error.user_traceback
    assert "ValueError" in error.user_traceback and "cannot handle 'item-7'" in error.user_traceback
    assert "explode1" in str(error) and "cannot handle" in str(error)
    # the mapping still works after a failed run
    again = run_result_on(in_process_entry, working, {"source": N})
    assert sorted(items_of(again.outputs, "sink")) == sorted(f"item-{i}" for i in range(1, N + 1))


def test_error_in_preprocess(in_process_entry):
    error = run_failing(in_process_entry, failing_in_preprocess)
    assert (error.pe_id, error.phase) == ("explode_pre1", "preprocess")
    assert error.port is None and error.item_repr is None
    assert THIS_FILE in error.user_traceback
    assert "preprocess failed on purpose" in str(error)


def test_error_in_postprocess(in_process_entry):
    error = run_failing(in_process_entry, failing_in_postprocess)
    assert (error.pe_id, error.phase) == ("explode_post1", "postprocess")
    assert error.port is None and error.item_repr is None
    assert THIS_FILE in error.user_traceback
    assert "postprocess failed on purpose" in str(error)


def test_error_in_a_source(in_process_entry):
    error = run_failing(in_process_entry, failing_source)
    assert (error.pe_id, error.phase) == ("source0", "process")
    assert THIS_FILE in error.user_traceback
    assert "source failed on call 5" in str(error)


def test_error_ends_the_run_while_another_pe_is_busy(spread_entry):
    """The failure is raised although 'slow' is busy for 600 s on another worker: a run
    that waited for it would outlive the test's timeout (no clock read here)."""
    error = run_failing(spread_entry, failing_beside_a_slow_pe)
    assert (error.pe_id, error.phase, error.port) == ("explode1", "process", "input")
    assert "item-3" in (error.item_repr or "")


def test_write_to_an_unknown_output(in_process_entry):
    error = run_failing(in_process_entry, writing_to_unknown_output)
    assert (error.pe_id, error.phase, error.port) == ("misspelt1", "process", "input")
    assert "ouput" in str(error) and "output" in str(error), str(error)


def test_worker_killed_by_a_signal(parallel_entry):
    """A worker that dies without a word (SIGKILL, OOM) ends the run with WorkerDied. The
    other workers wait for an end of stream that cannot come: only noticing the death
    ends the run (the test's timeout is the hang guard; no clock read here)."""
    baseline = child_pids()
    with pytest.raises(dispel4py.WorkerDied) as info:
        run_result_on(parallel_entry, killing_its_worker, {"source": N})
    assert leftover_children(baseline) == [], "worker processes outlived the failed run"
    assert "killer1" in str(info.value), str(info.value)


def test_item_that_cannot_be_grouped(in_process_entry):
    """The PE whose write cannot be routed fails, and the message names the grouping."""
    error = run_failing(in_process_entry, grouping_an_unindexable_item)
    assert (error.pe_id, error.phase) == ("source0", "process")
    assert "grouped1" in str(error) and "'k'" in str(error), str(error)
