"""Lineage records as JSON text, made in bulk when a batch is written, not per item.

While a PE runs, a record is only a tuple appended to its process's pending list
(:data:`Pending`: the instance's key, ids, port, size and two ``time.time_ns()`` stamps),
so recording one write costs about what appending a tuple costs. When ``bulk_size``
records are pending they become JSON here (in the writer process, ``bulkwriter.py``, in
``file`` mode), each record one ``join`` of the pieces of text its instance's
:class:`InstanceFormat` made once (the constant fields) and the values that vary: the
strings escaped by ``json``'s C escaper (those that recur, once), the timestamps (the
original's ``str(datetime.now())``) formatted from the stamps, the date and time of one
second made once. The text has the fields of the original's records (spec §7.1); a record
with a value the pieces cannot hold (a port that is not a string, say) goes through the
generic :class:`Serialiser` instead (``repr`` for what JSON cannot write, counted).

Only the standard library is imported here: the writer process starts in a few ms.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

__all__ = [
    "Pending",
    "DERIVATION_FIELDS",
    "InstanceFormat",
    "Serialiser",
    "derivation_dict",
    "stamp",
    "lineage_texts",
    "plain",
]

# (instance key, iteration id, iteration index, start ns, end ns, derivations, stream id,
#  port, size, content JSON, format JSON, location JSON); the last three None: the defaults.
# Only builtin values: a batch of them travels to the writer process as it is (marshal)
Pending = tuple[Any, str, int, int, int, Any, str, Any, int, Any, Any, Any]

# a derivation is (port, stream id, iteration id, cluster, iteration index): these fields
DERIVATION_FIELDS = (
    "port",
    "DerivedFromDatasetID",
    "TriggeredByProcessIterationID",
    "prov_cluster",
    "iterationIndex",
)

_text = json.encoder.encode_basestring_ascii
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_EMPTY = '""'
_NO_CONTENT = "[{}]"
_D0, _D1, _D2, _D3, _D4 = (  # the pieces of a derivation (DERIVATION_FIELDS) around its values
    '{"port":',
    ',"DerivedFromDatasetID":',
    ',"TriggeredByProcessIterationID":',
    ',"prov_cluster":',
    ',"iterationIndex":',
)


class Serialiser:
    """Records to JSON text; what JSON cannot write becomes its ``repr`` (counted)."""

    def __init__(self) -> None:
        self.failed = 0

    def dumps(self, record: dict[str, Any]) -> str:
        try:
            return _dumps(record)
        except (TypeError, ValueError, OverflowError):
            self.failed += 1
            return json.dumps(record, default=repr, ensure_ascii=False, separators=(",", ":"))


def derivation_dict(derivation: tuple[Any, ...]) -> dict[str, Any]:
    """A derivation as the original's dict (its ``derivationIds`` entry)."""
    return dict(zip(DERIVATION_FIELDS, derivation, strict=True))


# the date and time of each second seen (records alternate between the seconds of long and
# short iterations: one cached second would miss at every record); cleared when large
_seconds: dict[int, str] = {}
_MILLIS = [".%03d" % k for k in range(1000)]  # noqa: UP031 - ".000" .. ".999"
_DIGITS = ["%03d" % k for k in range(1000)]  # noqa: UP031 - "000" .. "999"


def stamp(ns: int) -> str:
    """``str(datetime.fromtimestamp(ns / 1e9))`` (the original's format: microseconds,
    left out when 0), the date and time of each second formatted once, the microseconds
    as two pieces of a table (a ``%06d`` or an f-string's ``:06d`` costs 3-5 times more)."""
    micro = ns // 1000
    seconds = micro // 1_000_000
    micro -= seconds * 1_000_000
    text = _seconds.get(seconds)
    if text is None:
        if len(_seconds) > 256:
            _seconds.clear()
        text = _seconds[seconds] = str(datetime.datetime.fromtimestamp(seconds))
    return text + _MILLIS[micro // 1000] + _DIGITS[micro % 1000] if micro else text


class InstanceFormat:
    """How the records of one instance are written: its constant fields (JSON once) and
    the pieces of text between the fields that vary, so that a record is one ``join``.

    Made where the PE runs (``InstanceContext.seal``) and, from :meth:`args`, again in the
    writer process (``bulkwriter.py``)."""

    def __init__(self, pe_id: str, const_json: str, plain_ids: bool, ports: Any = ()) -> None:
        self.pe_id = pe_id
        self.const_json = const_json  # the constant fields, without braces
        self.plain_ids = plain_ids  # the ids this instance makes need no escaping
        self.write_id_prefix = f"{pe_id}_write_"
        self.port_json = {p: _text(p) for p in ports if isinstance(p, str)}
        write_id = _text(self.write_id_prefix)[:-1]  # '"<pe_id>_write_' (escaped)
        quote = '"' if plain_ids else ""
        # iterationId, _id (its end), iterationIndex, derivationIds, startTime, endTime,
        # content, id, format, location, port, size, and the constant fields
        self.chunks = (
            '{"iterationId":' + quote,
            quote + ',"_id":' + write_id,
            '","iterationIndex":',
            ',"derivationIds":[',
            '],"startTime":"',
            '","endTime":"',
            '","streams":[{"content":',
            ',"id":' + quote,
            quote + ',"format":',
            ',"location":',
            ',"annotations":[],"port":',
            ',"size":',
            "}]," + const_json + "}",
        )
        self._const: dict[str, Any] | None = None

    def args(self) -> tuple[str, str, bool, list[str]]:
        """What makes this format again (in the writer process)."""
        return (self.pe_id, self.const_json, self.plain_ids, list(self.port_json))

    @property
    def const(self) -> dict[str, Any]:
        if self._const is None:
            self._const = json.loads("{" + self.const_json + "}")
        return self._const


def plain(text: str) -> bool:
    """Whether JSON writes ``text`` as it is, between quotes (nothing to escape)."""
    return _text(text) == f'"{text}"'


class _Quoted(dict[Any, str]):
    """JSON strings of values that recur (ports, clusters, iteration ids), made once."""

    def __missing__(self, key: Any) -> str:
        if len(self) > 4096:
            self.clear()
        text = self[key] = _text(key)
        return text


def _derivations(derivations: Any, quoted: _Quoted) -> str:
    join = "".join
    return ",".join(
        [
            join((_D0, quoted[p], _D1, _text(s), _D2, quoted[i], _D3, quoted[c], _D4, str(n), "}"))
            for p, s, i, c, n in derivations
        ]
    )


def lineage_texts(pending: list[Pending], formats: Any, serialiser: Serialiser) -> list[str]:
    """The JSON text of each pending record, in order; ``formats[key]`` is the
    :class:`InstanceFormat` of the record's instance (its first field)."""
    texts: list[str] = []
    append = texts.append
    quoted = _Quoted()
    last_start, start_text, last_key = None, "", None
    form: Any = None
    join = "".join
    for record in pending:
        key, itid, index, start, end, derivations, sid, port, size, content, fmt, location = record
        if start != last_start:
            last_start, start_text = start, stamp(start)
        end_text = stamp(end) if end != start else start_text
        if key != last_key:
            last_key, form = key, formats[key]
            c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12 = form.chunks
            plain_ids, port_json = form.plain_ids, form.port_json
        try:
            if plain_ids:
                write_sid = sid
            else:
                itid, sid = _text(itid), _text(sid)
                write_sid = sid[1:-1]
            if not derivations:
                derived = ""
            elif len(derivations) == 1:
                p, s, i, c, n = derivations[0]
                derived = join(
                    (_D0, quoted[p], _D1, _text(s), _D2, quoted[i], _D3, quoted[c], _D4, str(n), "}")
                )
            else:
                derived = _derivations(derivations, quoted)
            append(
                join(
                    (
                        c0, itid, c1, write_sid, c2, str(index), c3, derived, c4, start_text, c5, end_text,
                        c6, content or _NO_CONTENT, c7, sid, c8, fmt or _EMPTY, c9, location or _EMPTY, c10,
                        port_json.get(port) or _text(port), c11, str(size), c12,
                    )
                )
            )  # fmt: skip
        except (TypeError, ValueError, OverflowError):  # a value the pieces cannot hold
            append(serialiser.dumps(_record_dict(record, form)))
    return texts


def _record_dict(record: Pending, ctx: InstanceFormat) -> dict[str, Any]:
    _, itid, index, start, end, derivations, sid, port, size, content, fmt, location = record
    stream = {
        "content": json.loads(content) if content else [{}],
        "id": sid,
        "format": json.loads(fmt) if fmt else "",
        "location": json.loads(location) if location else "",
        "annotations": [],
        "port": port,
        "size": size,
    }
    return {
        "iterationId": itid,
        "_id": ctx.write_id_prefix + sid,
        "iterationIndex": index,
        "derivationIds": [derivation_dict(d) for d in derivations],
        "startTime": stamp(start),
        "endTime": stamp(end),
        "streams": [stream],
        **ctx.const,
    }
