"""The ``mpi`` mapping: MPI ranks under ``mpiexec``, the guard that reports a dead rank and the
hydra helpers. Nothing here initialises MPI at import."""
