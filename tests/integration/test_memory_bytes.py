"""In-flight data is bounded by bytes, not only by item count: 20 MB items stay within a few
hundred MB on every mapping (they reached 9.4 GB on multi -n 3, and simple held the stream)."""

from __future__ import annotations

import subprocess
import threading
import time

import psutil
import pytest
from _helpers import WORKFLOWS, cli, mpiexec

pytestmark = pytest.mark.timeout(120)

ITEMS = 40  # of 20 MB: an 800 MB stream
LIMIT_MB = 450


def _peak_tree_rss_mb(cmd: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    """Run ``cmd``; the peak of the summed RSS of it and its descendants, sampled every 20 ms."""
    import os

    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **env}
    )
    peak = 0.0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        root = psutil.Process(proc.pid)
        while not stop.is_set():
            total = 0
            try:
                for p in [root, *root.children(recursive=True)]:
                    total += p.memory_info().rss
            except psutil.Error:
                pass
            peak = max(peak, total / 2**20)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate(timeout=100)
    stop.set()
    sampler.join()
    return peak, subprocess.CompletedProcess(cmd, proc.returncode, out, err)


@pytest.mark.parametrize(
    "args", [["simple"], ["multi", "-n", "3"], ["zmq_multi", "-n", "3"]], ids=lambda a: "-".join(a)
)
def test_large_items_stay_within_a_few_hundred_megabytes(args: list[str]) -> None:
    mapping, *options = args
    cmd = cli(mapping, str(WORKFLOWS / "huge_items.py"), *options)
    peak, done = _peak_tree_rss_mb(cmd, {"D4PY_HUGE_ITEMS": str(ITEMS)})
    assert done.returncode == 0, done.stderr
    assert f"(40, {float(sum(range(ITEMS)))})" in done.stdout
    assert peak < LIMIT_MB, f"peak {peak:.0f} MB for an {ITEMS * 20} MB stream"


@pytest.mark.mpi
def test_large_items_under_mpi_stay_within_a_few_hundred_megabytes() -> None:
    cmd = [mpiexec(), "-n", "3", *cli("mpi", str(WORKFLOWS / "huge_items.py"))]
    peak, done = _peak_tree_rss_mb(cmd, {"D4PY_HUGE_ITEMS": str(ITEMS)})
    assert done.returncode == 0, done.stderr
    assert f"(40, {float(sum(range(ITEMS)))})" in done.stdout
    assert peak < LIMIT_MB + 150, f"peak {peak:.0f} MB for an {ITEMS * 20} MB stream"
