"""Cheap shared tasks run where they are made (``dynamic/fusion.py``), on ``dyn_multi`` and
``dyn_redis``: fewer queued tasks, the same results; each fused task gets its own copies of
its items (a PE mutating its input changes nothing for the other destinations); copies that
only ran fused tasks still postprocess (their totals are all there); no fusion with
``--on-error dead-letter``."""

from __future__ import annotations

import ast
import re

import pytest
from _helpers import WORKFLOWS

pytestmark = pytest.mark.timeout(120)

CHAIN = str(WORKFLOWS / "fused_chain.py")
N = 80
TASK_LINE = re.compile(r"task of (\w+?)\d+ \(instance")


def _outputs(stdout: str) -> dict:
    line = next(x for x in stdout.splitlines() if x.startswith("Outputs: "))
    return {name.rstrip("0123456789"): value for name, value in ast.literal_eval(line[9:]).items()}


def _check(result) -> dict[str, int]:
    """The run's results are exact; the queued tasks per PE (from the -vv lines)."""
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = _outputs(result.stdout)
    totals = outputs["Tally"]["total"]
    assert sum(count for count, _ in totals) == N
    assert sum(total for _, total in totals) == 2 * sum(range(N))
    assert sorted(outputs["Length"]["output"]) == [1] * N  # Double's mutation is its copy's
    tasks: dict[str, int] = {}
    for pe in TASK_LINE.findall(result.stderr):
        tasks[pe] = tasks.get(pe, 0) + 1
    return tasks


def test_fused_runs_give_exact_results_on_dyn_multi(run_cli) -> None:
    """Exact results only: whether a task fuses follows its measured (wall) cost, 0.5 ms at
    most here, which a loaded machine can inflate; the decision is tested in unit/test_fusion.py."""
    _check(run_cli("dyn_multi", CHAIN, "-n", "2", "-vv", timeout=100))


def test_cheap_shared_tasks_run_where_they_are_made_on_redis(run_cli, monkeypatch) -> None:
    # 40 ms per item: the stage's tasks are taken ~5 at a time (0.2 s of work, RedisWorker),
    # so a task of Double gets ~5 items, well under the 2 ms under which Redis fuses even on a
    # loaded machine (at 10 ms per item, 16 at a time: ~1.6 ms, which load may push over)
    monkeypatch.setenv("D4PY_FUSED_WAIT_S", "0.04")
    result = run_cli("dyn_redis", CHAIN, "-n", "2", "-vv", timeout=100)
    tasks = _check(result)
    assert tasks["Waits"] >= N // 16, tasks  # the slow stage's tasks are queued
    # without fusion there is a task of Double for every task of Waits at least (below)
    assert tasks.get("Double", 0) < tasks["Waits"], tasks


def test_no_fusion_with_dead_letter(run_cli) -> None:
    result = run_cli("dyn_redis", CHAIN, "-n", "2", "-vv", "--on-error", "dead-letter", timeout=100)
    tasks = _check(result)
    assert tasks.get("Double", 0) >= tasks["Waits"] // 2, tasks  # about one per task of Waits
