"""Group-by keys: a hash that is the same in every process and on every host.

The group-by rule: keys that are ``==`` reach the same instance, whichever process wrote
them. So the canonical encoding of a key depends only on its value as ``==`` sees it:
numbers by exact value across int/float/bool/Decimal/Fraction/complex/numpy, sets and dicts
without order, dataclasses and enums by class name and fields/value, times by instant. It
never uses ``hash()`` or ``repr()``, which differ between processes (hash seeds, ids in the
default repr). A type whose ``==`` cannot be reproduced this way (arrays, identity
equality, a custom ``__eq__``) is refused with a :class:`GroupingError`, never guessed.
Unequal keys may share an instance (a list and a tuple with equal elements do, as in the
original; so do all NaNs): that only affects balance, never correctness.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import struct
import zlib
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Sequence
from decimal import Decimal
from fractions import Fraction
from pathlib import PurePath, PureWindowsPath
from typing import Any
from uuid import UUID

__all__ = ["stable_hash", "UnencodableKey"]


class UnencodableKey(TypeError):
    """A key, or a part of it (``culprit``), whose type has no process-independent encoding."""

    def __init__(self, culprit: Any, reason: str) -> None:
        self.culprit = culprit
        self.type_name = _type_name(type(culprit))
        self.reason = reason
        super().__init__(f"{self.type_name} {reason}")


def stable_hash(value: Any) -> int:
    """A hash of ``value`` that is the same in every interpreter and on every host.

    Values that are ``==`` hash equal (see the module docstring); a value whose type
    cannot be encoded that way raises ``TypeError``.
    """
    parts: list[bytes] = []
    _encode(value, parts)
    return zlib.crc32(b"".join(parts))


Encoder = Callable[[Any, list], None]
_pack_double = struct.Struct("<d").pack
_NAN = b"n"  # every NaN (float, complex, Decimal, numpy, NaT): one group
_MAX_CACHED_TYPES = 1024


def _encode(value: Any, out: list[bytes]) -> None:
    cls = type(value)
    if cls is str:  # the common keys first, without a lookup
        data = value.encode("utf-8", "surrogatepass")
        out.append(b"s%d:" % len(data))
        out.append(data)
    elif cls is int or cls is bool:  # True == 1
        out.append(b"i%d;" % value)
    elif cls is tuple or cls is list:
        out.append(b"t%d(" % len(value))
        for element in value:
            _encode(element, out)
    else:
        encoder = _ENCODERS.get(cls) or _encoder_for(cls)
        encoder(value, out)


def _encode_str(value: str, out: list[bytes]) -> None:
    data = value.encode("utf-8", "surrogatepass")
    out.append(b"s%d:" % len(data))
    out.append(data)


def _encode_int(value: int, out: list[bytes]) -> None:
    out.append(b"i%d;" % int(value))  # bool and IntEnum too: True == 1


def _encode_float(value: float, out: list[bytes]) -> None:
    if value.is_integer():  # 2.0 == 2, and -0.0 == 0
        out.append(b"i%d;" % int(value))
    elif value != value:
        out.append(_NAN)
    else:
        out.append(b"f" + _pack_double(value))


def _encode_ratio(numerator: int, denominator: int, out: list[bytes]) -> None:
    """An exact rational in lowest terms: as an int or a float when it is one, so that
    Fraction(1, 2), Decimal('0.5') and 0.5 meet."""
    if denominator == 1:
        out.append(b"i%d;" % numerator)
        return
    try:
        as_float = numerator / denominator
    except OverflowError:
        as_float = None
    if as_float is not None and as_float.as_integer_ratio() == (numerator, denominator):
        out.append(b"f" + _pack_double(as_float))
    else:
        out.append(b"q%d/%d;" % (numerator, denominator))


def _encode_fraction(value: Fraction, out: list[bytes]) -> None:
    _encode_ratio(value.numerator, value.denominator, out)


def _encode_decimal(value: Decimal, out: list[bytes]) -> None:
    if value.is_nan():
        out.append(_NAN)
    elif value.is_infinite():
        _encode_float(float(value), out)
    else:
        _encode_ratio(*value.as_integer_ratio(), out)


def _encode_complex(value: complex, out: list[bytes]) -> None:
    real, imag = value.real, value.imag
    if imag == 0:  # complex(2, 0) == 2
        _encode_float(float(real), out)
    elif real != real or imag != imag:
        out.append(_NAN)
    else:
        out.append(b"x" + _pack_double(real + 0.0) + _pack_double(imag + 0.0))


def _encode_bytes(value: bytes | bytearray, out: list[bytes]) -> None:
    out.append(b"b%d:" % len(value))
    out.append(bytes(value))


def _encode_none(value: None, out: list[bytes]) -> None:
    out.append(b"cNone")


def _encode_sequence(value: Sequence[Any], out: list[bytes]) -> None:
    out.append(b"t%d(" % len(value))
    for element in value:
        _encode(element, out)


def _encode_set(value: set | frozenset, out: list[bytes]) -> None:
    hashes = sorted(stable_hash(e).to_bytes(4, "little") for e in value)
    out.append(b"S%d(" % len(hashes))
    out.extend(hashes)


def _encode_dict(value: dict, out: list[bytes]) -> None:
    hashes = sorted(stable_hash(item).to_bytes(4, "little") for item in value.items())
    out.append(b"d%d(" % len(hashes))
    out.extend(hashes)


# times: naive points as microseconds since 1970 (a date as its midnight, as numpy does),
# aware points as UTC microseconds (== compares instants), durations as microseconds.
_EPOCH = dt.datetime(1970, 1, 1)
_EPOCH_UTC = _EPOCH.replace(tzinfo=dt.timezone.utc)
_EPOCH_DAY = _EPOCH.toordinal()
_MICROSECOND = dt.timedelta(microseconds=1)


def _encode_datetime(value: dt.datetime, out: list[bytes]) -> None:
    if value.utcoffset() is None:
        out.append(b"T%d;" % ((value.replace(tzinfo=None) - _EPOCH) // _MICROSECOND))
    else:
        out.append(b"Z%d;" % ((value - _EPOCH_UTC) // _MICROSECOND))


def _encode_date(value: dt.date, out: list[bytes]) -> None:
    out.append(b"T%d;" % ((value.toordinal() - _EPOCH_DAY) * 86_400_000_000))


def _encode_time(value: dt.time, out: list[bytes]) -> None:
    micros = ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000 + value.microsecond
    offset = value.utcoffset()
    if offset is None:
        out.append(b"h%d;" % micros)
    else:
        out.append(b"H%d;" % (micros - offset // _MICROSECOND))


def _encode_timedelta(value: dt.timedelta, out: list[bytes]) -> None:
    out.append(b"L%d;" % (value // _MICROSECOND))


def _encode_uuid(value: UUID, out: list[bytes]) -> None:
    out.append(b"u" + value.bytes)


def _encode_path(value: PurePath, out: list[bytes]) -> None:
    if isinstance(value, PureWindowsPath):  # case-insensitive ==
        out.append(b"W")
        _encode_str(str(value).lower(), out)
    else:
        out.append(b"P")
        _encode_str(str(value), out)


def _encode_enum(value: enum.Enum, out: list[bytes]) -> None:
    out.append(b"e")
    _encode_str(type(value).__qualname__, out)  # not the module: __main__ vs __mp_main__
    _encode(value._value_, out)


def _encode_numpy(value: Any, out: list[bytes]) -> None:
    kind = value.dtype.kind
    if kind in "mM":  # datetime64/timedelta64 in any unit: as microseconds, like datetime
        if value != value:
            out.append(_NAN)
        else:
            micros = int(value.astype("datetime64[us]" if kind == "M" else "timedelta64[us]").astype("int64"))
            out.append((b"T%d;" if kind == "M" else b"L%d;") % micros)
        return
    item = value.item()
    if type(item) is type(value):  # longdouble, clongdouble: no Python type holds them
        _encode_wide_float(item, out)
    else:
        _encode(item, out)


def _encode_wide_float(value: Any, out: list[bytes]) -> None:
    if value.imag != 0:
        _encode_complex(complex(value), out)
        return
    real = value.real
    if real != real:
        out.append(_NAN)
    elif real in (float("inf"), float("-inf")):
        _encode_float(float(real), out)
    else:
        numerator, denominator = real.as_integer_ratio()
        _encode_ratio(int(numerator), int(denominator), out)


def _dataclass_encoder(cls: type) -> Encoder:
    names = tuple(f.name for f in dataclasses.fields(cls) if f.compare)
    qualname = cls.__qualname__

    def encode(value: Any, out: list[bytes]) -> None:
        out.append(b"o")
        _encode_str(qualname, out)
        _encode_sequence([getattr(value, name) for name in names], out)

    return encode


# -- which encoder for a type (decided once per type) -----------------------------------
_KNOWN: dict[type, Encoder] = {
    str: _encode_str,
    int: _encode_int,
    bool: _encode_int,
    float: _encode_float,
    complex: _encode_complex,
    bytes: _encode_bytes,
    bytearray: _encode_bytes,  # b"a" == bytearray(b"a")
    type(None): _encode_none,
    tuple: _encode_sequence,
    list: _encode_sequence,
    set: _encode_set,
    frozenset: _encode_set,
    dict: _encode_dict,
    OrderedDict: _encode_dict,  # its == ignores order against a dict
    defaultdict: _encode_dict,
    Decimal: _encode_decimal,
    Fraction: _encode_fraction,
    dt.datetime: _encode_datetime,
    dt.date: _encode_date,
    dt.time: _encode_time,
    dt.timedelta: _encode_timedelta,
    UUID: _encode_uuid,
    PurePath: _encode_path,
}
_ENCODERS = dict(_KNOWN)  # grows with the types met: each is resolved once


def _encoder_for(cls: type) -> Encoder:
    encoder = _resolve(cls)
    if len(_ENCODERS) < _MAX_CACHED_TYPES:
        _ENCODERS[cls] = encoder
    return encoder


def _resolve(cls: type) -> Encoder:
    if _is_numpy_scalar(cls):
        return _encode_numpy
    # a subclass keeps its nearest known base's encoding if it keeps its == (namedtuple,
    # IntEnum, str-valued enums, pathlib.Path), else it is refused (collections.Counter)
    base = next((b for b in cls.__mro__[1:] if b in _KNOWN), None)
    if base is not None:
        if cls.__eq__ is not base.__eq__:
            return _refusal(f"overrides the == of {base.__name__}")
        return _KNOWN[base]
    if issubclass(cls, enum.Enum) and cls.__eq__ is object.__eq__:
        return _encode_enum
    if _has_generated_eq(cls):
        return _dataclass_encoder(cls)
    return _refusal(_why_refused(cls))


def _is_numpy_scalar(cls: type) -> bool:
    return any(b.__name__ == "generic" and b.__module__ == "numpy" for b in cls.__mro__)


def _has_generated_eq(cls: type) -> bool:
    """A dataclass whose == is the generated one (fields compared, same class)."""
    params = getattr(cls, "__dataclass_params__", None)
    code = getattr(cls.__eq__, "__code__", None)
    return bool(params is not None and params.eq and code is not None and code.co_filename == "<string>")


def _why_refused(cls: type) -> str:
    if hasattr(cls, "__array__") and hasattr(cls, "shape"):
        return "is an array: == compares it element by element, so it has no single key value"
    if cls.__eq__ is object.__eq__:
        return "compares by identity (the default __eq__): no other process can hold an equal key"
    return "defines its own __eq__, which dispel4py cannot turn into a hash that every process agrees on"


def _refusal(reason: str) -> Encoder:
    def refuse(value: Any, out: list[bytes]) -> None:
        raise UnencodableKey(value, reason)

    return refuse


def _type_name(cls: type) -> str:
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
