"""Run a conformance graph under a real ``mpiexec``: the ``mpi`` entry of ``MAPPINGS``.

The runner pickles the graph factory and inputs, starts ``mpiexec -n R python
conformance_mpi.py IN OUT``; every rank builds the graph (PE ids from 0) and runs it on the
``mpi`` mapping; rank 0 pickles the outputs to OUT.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def mpiexec_path() -> str | None:
    local = Path(sys.executable).parent / "mpiexec"
    return str(local) if local.exists() else shutil.which("mpiexec")


class MPIRunner:
    """``runner(factory, inputs) -> outputs`` on ``ranks`` MPI ranks."""

    def __init__(self, ranks: int) -> None:
        self.ranks = ranks

    def __call__(self, factory: Any, inputs: dict[str, Any] | None) -> dict[str, Any]:
        launcher = mpiexec_path()
        if launcher is None:
            raise RuntimeError("mpiexec not found: install the [mpi] extra (mpich wheel)")
        with tempfile.TemporaryDirectory(prefix="d4py-conf-mpi-") as folder:
            job, out = Path(folder) / "job.pkl", Path(folder) / "out.pkl"
            job.write_bytes(pickle.dumps((factory, inputs)))
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
            done = subprocess.run(
                [launcher, "-n", str(self.ranks), sys.executable, __file__, str(job), str(out)],
                capture_output=True,
                text=True,
                timeout=60,
                env=env,
            )
            if done.returncode != 0 or not out.exists():
                raise RuntimeError(f"mpi run failed ({done.returncode}):\n{done.stderr}")
            return pickle.loads(out.read_bytes())


def _child(job: str, out: str) -> None:
    from conformance_support import build

    import dispel4py

    factory, inputs = pickle.loads(Path(job).read_bytes())
    result = dispel4py.run(build(factory), inputs, "mpi")
    if result is not None:
        Path(out).write_bytes(pickle.dumps(result.outputs))


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2])
