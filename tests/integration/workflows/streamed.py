"""Workflows for the ``dispel4py.stream`` tests (tests/integration/test_stream.py).

``Source`` writes ``count`` items of ``size`` bytes each and records, before each write, how
many it has written in an 8-byte file: the test reads it while it consumes, to see how far
the run got ahead of it. ``Double`` passes items on (a second, connected stage); ``Tap``
collects what it is given and fails on item ``fail_at`` if set.
"""

from __future__ import annotations

import os
import struct
import time
from typing import Any

from dispel4py.base import GenericPE
from dispel4py.workflow_graph import WorkflowGraph

_COUNT = struct.Struct("<q")


def produced(path: str) -> int:
    """How many items the source has started writing (0 before it starts)."""
    try:
        with open(path, "rb") as f:
            data = f.read(_COUNT.size)
    except FileNotFoundError:
        return 0
    return _COUNT.unpack(data)[0] if len(data) == _COUNT.size else 0


class Source(GenericPE):
    def __init__(self, count: int, size: int = 8, counter: str = "", pause: float = 0.0) -> None:
        GenericPE.__init__(self)
        self._add_output("output")
        self.count, self.size, self.counter, self.pause = count, size, counter, pause

    def process(self, inputs: Any) -> None:
        fd = os.open(self.counter, os.O_RDWR | os.O_CREAT, 0o600) if self.counter else -1
        try:
            for i in range(self.count):
                if fd >= 0:
                    os.pwrite(fd, _COUNT.pack(i + 1), 0)
                self.write("output", (i, "x" * self.size))
                if self.pause:
                    time.sleep(self.pause)
        finally:
            if fd >= 0:
                os.close(fd)


class Double(GenericPE):
    def __init__(self) -> None:
        GenericPE.__init__(self)
        self._add_input("input")
        self._add_output("output")

    def process(self, inputs: Any) -> None:
        i, _ = inputs["input"]
        self.write("output", 2 * i)


class Tap(GenericPE):
    def __init__(self, fail_at: int = -1) -> None:
        GenericPE.__init__(self)
        self._add_input("input")
        self._add_output("seen")
        self.fail_at = fail_at

    def process(self, inputs: Any) -> None:
        i, _ = inputs["input"]
        if i == self.fail_at:
            raise ValueError(f"item {i} is bad")
        self.write("seen", i)


def source_only(
    count: int, size: int = 8, counter: str = "", pause: float = 0.0
) -> tuple[WorkflowGraph, Source]:
    """One source whose output is unconnected: every item it writes is a result."""
    graph = WorkflowGraph()
    source = Source(count, size, counter, pause)
    graph.add(source)
    return graph, source


def two_outputs(count: int, fail_at: int = -1) -> tuple[WorkflowGraph, Source]:
    """Source -> Double (results ``output``) and Source -> Tap (results ``seen``)."""
    graph = WorkflowGraph()
    source = Source(count)
    graph.connect(source, "output", Double(), "input")
    graph.connect(source, "output", Tap(fail_at), "input")
    return graph, source


def failing_source(count: int, fail_at: int) -> tuple[WorkflowGraph, Source]:
    """The source itself fails after writing ``fail_at`` items."""
    graph = WorkflowGraph()
    source = _FailingSource(count, fail_at)
    graph.add(source)
    return graph, source


class _FailingSource(Source):
    def __init__(self, count: int, fail_at: int) -> None:
        Source.__init__(self, count)
        self.fail_at = fail_at

    def process(self, inputs: Any) -> None:
        for i in range(self.count):
            if i == self.fail_at:
                raise ValueError(f"source broke at item {i}")
            self.write("output", (i, "x"))


class Relay(GenericPE):
    def __init__(self) -> None:
        GenericPE.__init__(self)
        self._add_input("input")
        self._add_output("output")

    def process(self, inputs: Any) -> None:
        self.write("output", inputs["input"])


def relayed(count: int, size: int = 8, counter: str = "") -> tuple[WorkflowGraph, Source]:
    """Source -> Relay: the results come from the Relay instances (on other workers)."""
    graph = WorkflowGraph()
    source = Source(count, size, counter)
    graph.connect(source, "output", Relay(), "input")
    return graph, source


class Quiet(GenericPE):
    """A source that writes nothing: it takes rank 0, so that the next PEs run elsewhere."""

    def __init__(self) -> None:
        GenericPE.__init__(self)
        self._add_output("output")

    def process(self, inputs: Any) -> None:
        return None


def off_rank_0(count: int, size: int = 8, counter: str = "") -> tuple[WorkflowGraph, Source]:
    """Quiet, then Source (results): under mpi the source is on a rank other than 0."""
    graph = WorkflowGraph()
    graph.add(Quiet())
    source = Source(count, size, counter)
    graph.add(source)
    return graph, source


class _Killer(GenericPE):
    """Its worker process is killed (SIGKILL) on item ``at``."""

    def __init__(self, at: int) -> None:
        GenericPE.__init__(self)
        self._add_input("input")
        self._add_output("output")
        self.at = at

    def process(self, inputs: Any) -> None:
        i, _ = inputs["input"]
        if i == self.at:
            os.kill(os.getpid(), 9)
        self.write("output", i)


def killed_worker(count: int, at: int) -> tuple[WorkflowGraph, Source]:
    """Source -> a PE whose worker dies on item ``at``."""
    graph = WorkflowGraph()
    source = Source(count)
    graph.connect(source, "output", _Killer(at), "input")
    return graph, source
