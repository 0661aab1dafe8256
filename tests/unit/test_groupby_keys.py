"""Group-by keys: keys that are == reach one instance; keys without a stable encoding are refused.

The rule lives in ``dispel4py/engine/routing.py`` (module docstring) and the README ("Group-by keys").
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import enum
import pathlib
import pickle
import uuid
from decimal import Decimal
from fractions import Fraction
from typing import NamedTuple

import numpy as np
import pytest

import dispel4py
from dispel4py.base import IterativePE, ProducerPE
from dispel4py.engine.routing import GroupByRoute, stable_hash
from dispel4py.errors import Dispel4PyError, GroupingError, WorkflowFailed
from dispel4py.workflow_graph import WorkflowGraph

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("fresh_ids")]

SIZES = range(2, 8)
NAN = float("nan")


class Color(enum.Enum):
    RED = 1
    GREEN = (2, "g")


class Level(enum.IntEnum):
    LOW = 1


class Mode(str, enum.Enum):
    READ = "r"


@dataclasses.dataclass(frozen=True)
class Cell:
    row: int
    tags: frozenset = frozenset()


@dataclasses.dataclass
class MutableCell:  # eq=True (generated), not hashable: == is still by fields
    row: int


class Point(NamedTuple):
    x: int
    y: int


UTC = dt.timezone.utc
PLUS_ONE = dt.timezone(dt.timedelta(hours=1))

# Each group: keys equal to the group's first key (Python's == between two others may raise
# or not hold, e.g. Decimal(1) == np.int64(1) raises TypeError: the value is what counts).
EQUAL_GROUPS = {
    "one": [
        *(1, 1.0, True, Decimal(1), Decimal("1.000"), Fraction(1), Fraction(2, 2), complex(1, 0)),
        *(np.int64(1), np.int8(1), np.uint16(1), np.float32(1), np.float64(1), np.bool_(True)),
        *(np.longdouble(1), np.complex64(1), Level.LOW),
    ],
    "zero": [0, 0.0, -0.0, False, Decimal(0), Decimal("-0.00"), Fraction(0), 0j, np.float64(-0.0)],
    "half": [0.5, Fraction(1, 2), Decimal("0.5"), np.float16(0.5), np.longdouble(0.5), complex(0.5, 0)],
    "big": [2**70, float(2**70), Decimal(2**70), Fraction(2**70)],
    "third": [Fraction(1, 3), Fraction(2, 6)],
    "tenth": [Decimal("0.1"), Fraction(1, 10), Decimal("0.10")],
    "inf": [float("inf"), Decimal("Infinity"), np.inf, np.float32("inf")],
    "complex": [1 + 2j, np.complex128(1 + 2j), np.clongdouble(1 + 2j)],
    "str": ["word", np.str_("word")],
    "str-enum": [Mode.READ, "r"],
    "bytes": [b"ab", bytearray(b"ab"), np.bytes_(b"ab")],
    "none": [None, None],
    "tuple": [(1, "a"), (True, "a"), (1.0, np.str_("a")), Point(1, "a")],
    "list": [[1, "a"], [Decimal(1), "a"]],
    "set": [{1, 2, 3}, frozenset({3, 2, 1}), {True, 2.0, Decimal(3)}],
    "strings-set": [frozenset({"x", "y", "z", "w"}), {"w", "z", "y", "x"}],
    "dict": [
        {"a": 1, "b": 2},
        {"b": 2.0, "a": True},
        collections.OrderedDict(b=2, a=1),
        collections.defaultdict(int, a=1, b=2),
    ],
    "nested": [
        ("k", frozenset({("x", 1), ("y", 2)}), {"d": {"e", "f"}}, [Decimal("0.5")]),
        ("k", {("y", 2.0), ("x", True)}, {"d": frozenset({"f", "e"})}, [Fraction(1, 2)]),
    ],
    "enum": [Color.RED, Color(1)],
    "enum-tuple-value": [Color.GREEN, Color((2, "g"))],
    "dataclass": [Cell(1, frozenset({"a", "b"})), Cell(True, frozenset({"b", "a"}))],
    "mutable-dataclass": [MutableCell(2), MutableCell(2.0)],
    "naive-time": [
        np.datetime64("2020-01-01T00:00:00"),
        dt.datetime(2020, 1, 1),
        np.datetime64("2020-01-01T00:00:00.000000000"),
    ],
    "date": [dt.date(2020, 1, 1), np.datetime64("2020-01-01")],
    "aware-time": [dt.datetime(2020, 1, 1, 12, tzinfo=UTC), dt.datetime(2020, 1, 1, 13, tzinfo=PLUS_ONE)],
    "time-of-day": [dt.time(12, 30), dt.time(12, 30, 0, 0)],
    "duration": [dt.timedelta(seconds=5), np.timedelta64(5, "s"), np.timedelta64(5000, "ms")],
    "uuid": [uuid.UUID(int=7), uuid.UUID("00000000-0000-0000-0000-000000000007")],
    "path": [pathlib.Path("a/b"), pathlib.PurePosixPath("a/b"), pathlib.PurePosixPath("a//b")],
    "windows-path": [pathlib.PureWindowsPath("A/B"), pathlib.PureWindowsPath("a\\b")],
}


def _route(n: int, keys=(0,), dest: str = "Counter2") -> GroupByRoute:
    return GroupByRoute("input", list(range(10, 10 + n)), list(keys), dest)


@pytest.mark.parametrize("name", EQUAL_GROUPS)
def test_the_groups_are_equal_in_python(name):
    first, *others = EQUAL_GROUPS[name]
    assert all(key == first for key in others), name


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name", EQUAL_GROUPS)
def test_equal_keys_reach_one_instance(name, n):
    route = _route(n)
    targets = {route.targets_for([key, "payload"]) for key in EQUAL_GROUPS[name]}
    assert len(targets) == 1, (name, n, targets)


@pytest.mark.parametrize("n", SIZES)
def test_equal_keys_reach_one_instance_with_dict_items_and_several_keys(n):
    route = _route(n, keys=("city", "year"))
    items = [{"city": "Paris", "year": y, "v": i} for i, y in enumerate([2020, 2020.0, Decimal(2020)])]
    assert len({route.targets_for(item) for item in items}) == 1


@pytest.mark.parametrize("name", EQUAL_GROUPS)
def test_equal_keys_hash_equal(name):
    assert len({stable_hash(key) for key in EQUAL_GROUPS[name]}) == 1, name


@pytest.mark.parametrize("n", SIZES)
def test_all_nans_meet(n):
    """NaN != NaN, so no rule needs it; every NaN goes to one instance (a NaN group stays
    together): float, numpy, Decimal, complex with a NaN part, numpy NaT."""
    nans = [NAN, float("nan"), np.nan, np.float32("nan"), Decimal("NaN"), Decimal("sNaN")]
    nans += [complex(NAN, 1), np.datetime64("NaT"), np.timedelta64("NaT")]
    route = _route(n)
    assert len({route.targets_for([key]) for key in nans}) == 1


def test_lists_and_tuples_with_equal_elements_meet():
    """Not == in Python, but grouped together as in the original (harmless: unequal keys may
    share an instance; JSON inputs give lists where Python code writes tuples)."""
    assert stable_hash([1, "a"]) == stable_hash((1, "a"))
    assert stable_hash(["a", ["b"]]) == stable_hash(("a", ("b",)))


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (1, 2),
        ("1", 1),
        (b"a", "a"),
        (0.1, Decimal("0.1")),  # not ==: Decimal('0.1') is exact, 0.1 is not
        (0.1, Fraction(1, 10)),
        (1 + 2j, 1 - 2j),
        ((1, 2), {1, 2}),
        ({"a": 1}, {"a": 2}),
        (frozenset({"a", "b"}), frozenset({"a", "c"})),
        (dt.date(2020, 1, 1), dt.date(2020, 1, 2)),
        (dt.datetime(2020, 1, 1), dt.datetime(2020, 1, 1, tzinfo=UTC)),  # naive != aware
        (dt.timedelta(seconds=5), 5_000_000),
        (Color.RED, 1),  # a plain Enum member is not == its value
        (Cell(1), MutableCell(1)),
        (pathlib.PurePosixPath("A"), pathlib.PurePosixPath("a")),
        (pathlib.PurePosixPath("a"), "a"),
        (uuid.UUID(int=7), 7),
        (None, 0),
        ("", b""),
    ],
)
def test_unequal_keys_hash_differently(first, second):
    assert first != second
    assert stable_hash(first) != stable_hash(second)


# -- refused keys --------------------------------------------------------------------------
class Plain:
    """Default object == and repr: identity."""


class CustomEq:
    def __init__(self, v):
        self.v = v

    def __eq__(self, other):
        return isinstance(other, CustomEq) and self.v == other.v

    def __hash__(self):
        return hash(self.v)


class CaseInsensitive(str):
    def __eq__(self, other):
        return str.lower(self) == str(other).lower()

    __hash__ = str.__hash__


@dataclasses.dataclass(eq=False)
class IdentityCell:
    row: int


@dataclasses.dataclass(frozen=True)
class OwnEqCell:
    row: int

    def __eq__(self, other):
        return isinstance(other, OwnEqCell) and abs(self.row) == abs(other.row)

    def __hash__(self):
        return hash(abs(self.row))


REFUSED = {
    "numpy array": (np.array([1, 2]), "numpy.ndarray", "element by element"),
    "0-d numpy array": (np.array(5), "numpy.ndarray", "element by element"),
    "object": (object(), "object", "identity"),
    "plain class": (Plain(), "Plain", "identity"),
    "dataclass eq=False": (IdentityCell(1), "IdentityCell", "identity"),
    "custom __eq__/__hash__": (CustomEq(1), "CustomEq", "its own __eq__"),
    "dataclass with its own __eq__": (OwnEqCell(1), "OwnEqCell", "its own __eq__"),
    "str subclass with its own ==": (CaseInsensitive("a"), "CaseInsensitive", "== of str"),
    "Counter": (collections.Counter("ab"), "collections.Counter", "== of dict"),
}


@pytest.mark.parametrize("n", [2, 7])
@pytest.mark.parametrize("name", REFUSED)
def test_a_key_without_a_stable_encoding_is_refused(name, n):
    key, type_name, reason = REFUSED[name]
    with pytest.raises(GroupingError) as info:
        _route(n, dest="Counter2").targets_for([key, "item"])
    message = str(info.value)
    for part in ("input 'input' of Counter2", "group-by [0]", type_name, reason, "Group by a str"):
        assert part in message, (part, message)
    assert (info.value.pe_id, info.value.port) == ("Counter2", "input")
    with pytest.raises(TypeError, match=type_name.split(".")[-1]):
        stable_hash(key)


def test_a_refused_key_grouped_by_index_1_is_named():
    with pytest.raises(GroupingError) as info:
        _route(3, keys=(1,)).targets_for(["item", np.arange(3)])
    assert "group-by [1]" in str(info.value)
    assert "its key array([0, 1, 2]) has type numpy.ndarray" in str(info.value)


@pytest.mark.parametrize(
    "key",
    [("a", np.array([1])), {"k": [Plain()]}, frozenset({("a", CustomEq(1))}), Cell(1, frozenset({Plain()}))],
)
def test_a_refused_value_nested_in_a_key_is_named(key):
    with pytest.raises(GroupingError, match=r"contains .* of type") as info:
        _route(4).targets_for([key])
    assert "of Counter2" in str(info.value)


def test_grouping_error_is_a_dispel4py_error_exiting_1_and_pickles():
    error = GroupingError("Counter2", "input", "cannot group item ...")
    assert isinstance(error, Dispel4PyError) and not isinstance(error, WorkflowFailed)
    assert error.exit_code == 1
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is GroupingError
    assert (clone.pe_id, clone.port, str(clone)) == ("Counter2", "input", str(error))


def test_equal_objects_with_the_default_repr_are_refused_not_split():
    """Was: two Plain() objects grouped by their repr (which holds the id), so they split."""
    route = _route(5)
    with pytest.raises(GroupingError):
        route.targets_for([Plain()])


# -- through the executor (simple) ------------------------------------------------------------
class ArrayKeys(ProducerPE):
    def _process(self, inputs):
        self.write("output", ["a", 1])
        self.write("output", [np.array([1, 2]), 2])


class KeyRecorder(IterativePE):
    def _process(self, data):
        return (self.rank, repr(data[0]))


def _array_key_graph() -> tuple[WorkflowGraph, ProducerPE, IterativePE]:
    graph, source, recorder = WorkflowGraph(), ArrayKeys(), KeyRecorder()
    recorder.numprocesses = 3
    recorder.inputconnections["input"]["grouping"] = [0]
    graph.connect(source, "output", recorder, "input")
    return graph, source, recorder


def test_an_array_key_stops_the_run_with_a_grouping_error_not_a_pe_failure():
    graph, source, recorder = _array_key_graph()
    with pytest.raises(GroupingError) as info:
        dispel4py.run(graph, {source: 1})
    message = str(info.value)
    assert f"input 'input' of {recorder.id}" in message
    assert "numpy.ndarray" in message
    assert source.id not in message  # the writer is not blamed as a failed PE
    assert not isinstance(info.value, WorkflowFailed)


class MixedOnes(ProducerPE):
    def _process(self, inputs):
        for i, key in enumerate([True, 1, 1.0, Decimal(1), np.int64(1), Fraction(1)] * 2):
            self.write("output", [key, i])
        for word in ["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta"]:
            self.write("output", [word, 0])


def test_equal_keys_of_several_types_reach_one_instance_on_simple():
    graph, source, recorder = WorkflowGraph(), MixedOnes(), KeyRecorder()
    recorder.numprocesses = 4
    recorder.inputconnections["input"]["grouping"] = [0]
    graph.connect(source, "output", recorder, "input")
    out = dispel4py.run(graph, {source: 1}).items(recorder.id)
    ones = {rank for rank, key in out if key in {"True", "1", "1.0", "Decimal('1')"}}
    ones |= {rank for rank, key in out if "int64" in key or "Fraction" in key}
    assert len(ones) == 1
    assert len({rank for rank, _key in out}) > 1  # the words spread: not one instance for all
