"""PEs used by the test workflows in this package."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from dispel4py.base import GenericPE, IterativePE
from dispel4py.core import GROUPING, NAME, TYPE

WORDS = ["Dispel4Py", "Tutorial", "My", "Lovely", "Modelling", "Lecture", "Workflow"]


class TestProducer(GenericPE):
    """Emits 1, 2, 3, ... (one number per call) on each of its outputs."""

    def __init__(self, numOutputs: int = 1) -> None:
        GenericPE.__init__(self)
        if numOutputs == 1:
            self._add_output("output", tuple_type=["number"])
        else:
            for i in range(numOutputs):
                self._add_output(f"output{i}", tuple_type=["number"])
        self.counter = 0
        self.outputnames = list(self.outputconnections)

    def _process(self, inputs: Any) -> dict[str, int]:
        self.counter += 1
        return {name: self.counter for name in self.outputnames}


class NumberProducer(GenericPE):
    """Writes ``"<call>:<i>"`` for ``i < numIterations`` on every call."""

    def __init__(self, numIterations: int = 1) -> None:
        GenericPE.__init__(self)
        self._add_output("output", tuple_type=["number"])
        self.counter = 0
        self.numIterations = numIterations

    def process(self, inputs: Any) -> None:
        self.counter += 1
        for i in range(self.numIterations):
            self.write("output", f"{self.counter}:{i}")


class TestOneInOneOut(GenericPE):
    """Passes each input item through."""

    def __init__(self) -> None:
        GenericPE.__init__(self)
        self._add_input("input")
        self._add_output("output")

    def process(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return {"output": inputs["input"]}


class TestDelayOneInOneOut(GenericPE):
    """Sleeps ``delay`` seconds, then passes the item through."""

    def __init__(self, delay: float = 1) -> None:
        GenericPE.__init__(self)
        self._add_input("input")
        self._add_output("output")
        self.delay = delay

    def process(self, inputs: dict[str, Any]) -> dict[str, Any]:
        time.sleep(self.delay)
        return {"output": inputs["input"]}


class TestOneInOneOutWriter(GenericPE):
    """Passes each input item through with ``write``."""

    def __init__(self) -> None:
        GenericPE.__init__(self)
        self._add_input("input")
        self._add_output("output")

    def process(self, inputs: dict[str, Any]) -> None:
        self.write("output", inputs["input"])


class TestTwoInOneOut(GenericPE):
    """Two inputs; returns the string of whichever inputs arrived in this call."""

    def __init__(self) -> None:
        GenericPE.__init__(self)
        self._add_input("input0")
        self._add_input("input1")
        self._add_output("output")

    def process(self, inputs: dict[str, Any]) -> dict[str, str]:
        result = ""
        for name in ("input0", "input1"):
            if name in inputs:
                result += str(inputs[name])
        return {"output": result}


class TestMultiProducer(GenericPE):
    """Writes 0 .. num_output-1 on every call."""

    def __init__(self, num_output: int = 10) -> None:
        GenericPE.__init__(self)
        self._add_output("output")
        self.num_output = num_output

    def process(self, inputs: Any) -> None:
        for i in range(self.num_output):
            self.write("output", i)


SEED_VARIABLE = "DISPEL4PY_EXAMPLE_SEED"


def seed_from_environment(rank: int) -> None:
    """With ``DISPEL4PY_EXAMPLE_SEED`` set, the random PEs below draw a sequence fixed by it
    and their rank (numpy's global generator, which they use as the original did), so a
    test that prints its seed can be rerun with the same words; unset, nothing changes."""
    seed = os.environ.get(SEED_VARIABLE)
    if seed:
        np.random.seed((int(seed) + rank) % 2**32)


class RandomFilter(GenericPE):
    """Passes each item through with probability 1/2."""

    input_name = "input"
    output_name = "output"

    def __init__(self) -> None:
        GenericPE.__init__(self)
        self.inputconnections["input"] = {NAME: "input"}
        self.outputconnections["output"] = {NAME: "output", TYPE: ["word"]}

    def preprocess(self) -> None:
        seed_from_environment(self.rank)

    def process(self, inputs: dict[str, Any]) -> dict[str, Any] | None:
        if np.random.choice([True, False]):
            return {"output": inputs["input"]}
        return None


class WordCounter(GenericPE):
    """Counts words (grouped by item[0]); returns ``[word, count so far]``."""

    input_name = "input"
    output_name = "output"

    def __init__(self) -> None:
        GenericPE.__init__(self)
        self.inputconnections["input"] = {NAME: "input", GROUPING: [0]}
        self.outputconnections["output"] = {NAME: "output", TYPE: ["word", "count"]}
        self.mywords: dict[str, int] = {}

    def process(self, inputs: dict[str, Any]) -> dict[str, list[Any]]:
        word = inputs["input"][0]
        self.mywords[word] = self.mywords.get(word, 0) + 1
        return {"output": [word, self.mywords[word]]}


class RandomWordProducer(GenericPE):
    """Returns ``[one random word]`` per call."""

    def __init__(self) -> None:
        GenericPE.__init__(self)
        self.outputconnections["output"] = {NAME: "output", TYPE: ["word"]}

    def preprocess(self) -> None:
        seed_from_environment(self.rank)

    def process(self, inputs: Any = None) -> dict[str, list[Any]]:
        return {"output": [str(np.random.choice(WORDS))]}  # a plain str, not numpy's np.str_


class ProvenanceLogger(GenericPE):
    """Logs the first 300 characters of each metadata item."""

    def __init__(self) -> None:
        GenericPE.__init__(self)
        self.inputconnections = {"metadata": {NAME: "metadata"}}

    def process(self, inputs: dict[str, Any]) -> None:
        self.log(f"Logging metadata: {str(inputs['metadata'])[:300]}")


class SquareIterative(IterativePE):
    """IterativePE returning x * x (used by the tutorial and tests)."""

    def _process(self, data: Any) -> Any:
        return data * data
