"""Fails to load on MPI rank 1 only, as when a data file is missing on one node."""

import os

from dispel4py.examples.graph_testing.pipeline_test import graph  # noqa: F401 - the workflow

if os.environ.get("PMI_RANK") == "1":
    raise RuntimeError("data file missing on this node")
