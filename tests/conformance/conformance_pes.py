"""Purpose-built PEs and functions of the conformance suite.

Defined at module level of an importable module, so that worker processes started with
``spawn`` (and out-of-process runners such as ``mpiexec``) can import them.
"""

from __future__ import annotations

import os
from typing import Any

from dispel4py.base import IterativePE
from dispel4py.core import GenericPE


def named(pe: GenericPE, name: str) -> GenericPE:
    pe.name = name
    return pe


class Numbers(GenericPE):
    """Source: ``offset + 1``, ``offset + 2``, ... one number per call."""

    def __init__(self, offset: int = 0) -> None:
        GenericPE.__init__(self)
        self._add_output("output")
        self.offset = offset
        self.counter = 0

    def _process(self, inputs: Any) -> dict[str, int]:
        self.counter += 1
        return {"output": self.offset + self.counter}


class KeyedItems(GenericPE):
    """Source: ``(key, call)`` with the keys taken in turn, one item per call."""

    def __init__(self, keys: list[Any]) -> None:
        GenericPE.__init__(self)
        self._add_output("output")
        self.keys = list(keys)
        self.counter = 0

    def _process(self, inputs: Any) -> dict[str, Any]:
        key = self.keys[self.counter % len(self.keys)]
        self.counter += 1
        return {"output": (key, self.counter)}


class EchoSource(GenericPE):
    """Source: emits the input dict it was called with, as sorted ``(key, value)`` pairs."""

    def __init__(self) -> None:
        GenericPE.__init__(self)
        self._add_output("output")

    def process(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return {"output": sorted(inputs.items())}


class Identity(IterativePE):
    def _process(self, data: Any) -> Any:
        return data


class Double(IterativePE):
    def _process(self, data: Any) -> Any:
        return 2 * data


class Splitter(GenericPE):
    """Writes ``copies`` items ``(item, j)`` per input item."""

    def __init__(self, copies: int) -> None:
        GenericPE.__init__(self)
        self._add_input("input")
        self._add_output("output")
        self.copies = copies

    def process(self, inputs: dict[str, Any]) -> None:
        for j in range(self.copies):
            self.write("output", (inputs["input"], j))


class TwoInputs(GenericPE):
    """Two inputs; emits ``(port, item)``, or ``('BAD', ports)`` if a call got != 1 input."""

    def __init__(self) -> None:
        GenericPE.__init__(self)
        self._add_input("left")
        self._add_input("right")
        self._add_output("output")

    def process(self, inputs: dict[str, Any]) -> dict[str, Any]:
        if len(inputs) != 1:
            return {"output": ("BAD", sorted(inputs))}
        ((port, item),) = inputs.items()
        return {"output": (port, item)}


class Observer(GenericPE):
    """Records which instance sees what: ``seen`` gets ``(rank, item)`` per item and
    ``done`` gets ``(rank, items processed)`` from postprocess."""

    def __init__(self, grouping: Any = None, numprocesses: int = 1) -> None:
        GenericPE.__init__(self, numprocesses=numprocesses)
        self._add_input("input", grouping=grouping)
        self._add_output("seen")
        self._add_output("done")
        self.count = 0

    def process(self, inputs: dict[str, Any]) -> None:
        self.count += 1
        self.write("seen", (self.rank, inputs["input"]))

    def _postprocess(self) -> None:
        self.write("done", (self.rank, self.count))


class Lifecycle(GenericPE):
    """Counts its hook calls and logs from each of them with ``self.log``.

    ``output`` gets ``("item", rank, pre, post, item)`` per item and, from postprocess,
    ``("post", rank, pre, post, items)``, where pre/post are the calls so far.
    """

    def __init__(self, numprocesses: int = 1) -> None:
        GenericPE.__init__(self, numprocesses=numprocesses)
        self._add_input("input")
        self._add_output("output")
        self.pre = 0
        self.post = 0
        self.items = 0

    def _preprocess(self) -> None:
        self.pre += 1
        self.log(f"lifecycle preprocess rank={self.rank}")

    def process(self, inputs: dict[str, Any]) -> dict[str, Any]:
        self.items += 1
        self.log(f"lifecycle process rank={self.rank} item={inputs['input']}")
        return {"output": ("item", self.rank, self.pre, self.post, inputs["input"])}

    def _postprocess(self) -> None:
        self.post += 1
        self.log(f"lifecycle postprocess rank={self.rank}")
        self.write("output", ("post", self.rank, self.pre, self.post, self.items))


class Summer(GenericPE):
    """Sums its inputs and writes the sum from postprocess only."""

    def __init__(self, numprocesses: int = 1, grouping: Any = None) -> None:
        GenericPE.__init__(self, numprocesses=numprocesses)
        self._add_input("input", grouping=grouping)
        self._add_output("output")
        self.total = 0

    def process(self, inputs: dict[str, Any]) -> None:
        self.total += inputs["input"]

    def _postprocess(self) -> None:
        self.write("output", self.total)


class Relay(GenericPE):
    """Tags ``(key, n)`` items with its rank, pid and this interpreter's ``hash(key)``."""

    def __init__(self, numprocesses: int = 1) -> None:
        GenericPE.__init__(self, numprocesses=numprocesses)
        self._add_input("input")
        self._add_output("output")

    def process(self, inputs: dict[str, Any]) -> dict[str, Any]:
        key, n = inputs["input"]
        return {"output": (key, n, self.rank, os.getpid(), hash(key))}


class KeyRecorder(GenericPE):
    """Grouped by item[0]; emits ``(key, own rank, own pid, sender rank, sender pid, hashes)``."""

    def __init__(self, numprocesses: int = 1) -> None:
        GenericPE.__init__(self, numprocesses=numprocesses)
        self._add_input("input", grouping=[0])
        self._add_output("output")

    def process(self, inputs: dict[str, Any]) -> dict[str, Any]:
        key, _n, sender_rank, sender_pid, sender_hash = inputs["input"]
        return {"output": (key, self.rank, os.getpid(), sender_rank, sender_pid, sender_hash, hash(key))}


def add_one(x: Any) -> Any:
    return x + 1


def scale(x: Any, factor: int) -> Any:
    return x * factor


def make_adder(n: int):
    def add_n(x: Any) -> Any:
        return x + n

    return add_n


TRIPLE = lambda x: 3 * x  # noqa: E731  (a lambda on purpose)


ADD_TEN = make_adder(10)


def pair_to_dict(pair: Any) -> dict[str, Any]:
    return {"k": pair[0], "n": pair[1]}


class Values(GenericPE):
    """Source: the given values in turn, one per call (``None`` included)."""

    def __init__(self, values: list[Any]) -> None:
        GenericPE.__init__(self)
        self._add_output("output")
        self.values = list(values)
        self.counter = 0

    def process(self, inputs: Any) -> dict[str, Any]:
        value = self.values[self.counter % len(self.values)]
        self.counter += 1
        return {"output": value}


class Pairs(GenericPE):
    """Source with two outputs: ``a`` gets n, ``b`` gets -n."""

    def __init__(self) -> None:
        GenericPE.__init__(self)
        self._add_output("a")
        self._add_output("b")
        self.counter = 0

    def _process(self, inputs: Any) -> dict[str, int]:
        self.counter += 1
        return {"a": self.counter, "b": -self.counter}


class Blobs(GenericPE):
    """Source: ``size`` bytes, all equal to the call number modulo 256."""

    def __init__(self, size: int) -> None:
        GenericPE.__init__(self)
        self._add_output("output")
        self.size = size
        self.counter = 0

    def _process(self, inputs: Any) -> dict[str, bytes]:
        self.counter += 1
        return {"output": bytes([self.counter % 256]) * self.size}


class Mutator(IterativePE):
    """Mutates the list it receives in place (a careless user PE)."""

    def _process(self, data: Any) -> Any:
        data.append("mutated")
        return data


class Rekey(IterativePE):
    """``(rank, (key, n))`` -> ``("r<n mod 11>", n)``: regroups items under new keys."""

    def _process(self, data: Any) -> Any:
        _rank, (_key, n) = data
        return (f"r{n % 11}", n)


def type_and_value(x: Any) -> Any:
    return (type(x).__name__, x)


def describe_blob(blob: bytes) -> Any:
    return (len(blob), blob[0], blob.count(blob[:1]) == len(blob))


def as_list(x: Any) -> list[Any]:
    return [x]


class NumbersThenEnd(Numbers):
    """A source that also writes ``"end"`` from its postprocess."""

    def _postprocess(self) -> None:
        self.write("output", "end")


class AppendToFile(GenericPE):
    """A consumer without outputs: appends each item to a file (a side effect only)."""

    def __init__(self, path: str, numprocesses: int = 1) -> None:
        GenericPE.__init__(self, numprocesses=numprocesses)
        self._add_input("input")
        self.path = path

    def process(self, inputs: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(f"{inputs['input']}\n")
