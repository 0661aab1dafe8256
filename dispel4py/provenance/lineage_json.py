"""Lineage records as JSON text, made in bulk when a batch is written, not per item.

While a PE runs, a record is only a tuple appended to its process's pending list
(:data:`Pending`: the instance, ids, port, size and two ``time.time_ns()`` stamps), so
recording one write costs about what appending a tuple costs. When ``bulk_size`` records
are pending they become JSON here, in one loop over a fixed template: the strings are
escaped by ``json``'s C escaper, the numbers formatted by ``%d``, and the timestamps
(the original's ``str(datetime.now())``) formatted from the stamps, the date and time of
one second made once. The text has the fields of the original's records (spec §7.1); a
record with a value the template cannot write (a port that is not a string, say) goes
through the generic :class:`~.records.Serialiser` instead (``repr`` for what JSON cannot
write, counted).
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from .records import Serialiser

__all__ = [
    "Pending",
    "DERIVATION_FIELDS",
    "derivation_dict",
    "stamp",
    "lineage_texts",
    "record_template",
    "plain",
]

# (context, iteration id, iteration index, start ns, end ns, derivations, stream id, port,
#  size, content JSON, format JSON, location JSON); the last three None: the defaults
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
_json = json.JSONEncoder(separators=(",", ":")).encode
_EMPTY = '""'
_NO_CONTENT = "[{}]"
_DERIVATION = (
    '{"port":%s,"DerivedFromDatasetID":%s,"TriggeredByProcessIterationID":%s,'
    '"prov_cluster":%s,"iterationIndex":%d}'
)


def derivation_dict(derivation: tuple[Any, ...]) -> dict[str, Any]:
    """A derivation as the original's dict (its ``derivationIds`` entry)."""
    return dict(zip(DERIVATION_FIELDS, derivation, strict=True))


# the date and time of each second seen (records alternate between the seconds of long and
# short iterations: one cached second would miss at every record); cleared when large
_seconds: dict[int, str] = {}


def stamp(ns: int) -> str:
    """``str(datetime.fromtimestamp(ns / 1e9))`` (the original's format: microseconds,
    left out when 0), the date and time of each second formatted once."""
    seconds, micro = divmod(ns // 1000, 1_000_000)
    text = _seconds.get(seconds)
    if text is None:
        if len(_seconds) > 256:
            _seconds.clear()
        text = _seconds[seconds] = str(datetime.datetime.fromtimestamp(seconds))
    return "%s.%06d" % (text, micro) if micro else text  # noqa: UP031 - faster than an f-string


def _derivations(derivations: Any) -> str:
    if len(derivations) == 1:
        p, s, i, c, n = derivations[0]
        return _DERIVATION % (_text(p), _text(s), _text(i), _text(c), n)
    return ",".join(
        [_DERIVATION % (_text(p), _text(s), _text(i), _text(c), n) for p, s, i, c, n in derivations]
    )


def record_template(pe_id: str, const_json: str, plain_ids: bool) -> str:
    """The record template of one instance: its constant fields (and, when the ids it makes
    need no escaping, their quotes) written in, so that a record is one ``%``."""
    ids = '"%s"' if plain_ids else "%s"
    write_id = _text(f"{pe_id}_write_")[:-1].replace("%", "%%") + '%s"'
    return (
        '{"iterationId":' + ids + ',"_id":' + write_id + ',"iterationIndex":%d,'
        '"derivationIds":[%s],"startTime":"%s","endTime":"%s","streams":[{"content":%s,'
        '"id":'
        + ids
        + ',"format":%s,"location":%s,"annotations":[],"port":%s,"size":%d}],'
        + const_json.replace("%", "%%")
        + "}"
    )


def plain(text: str) -> bool:
    """Whether JSON writes ``text`` as it is, between quotes (nothing to escape)."""
    return _text(text) == f'"{text}"'


def lineage_texts(pending: list[Pending], serialiser: Serialiser) -> list[str]:
    """The JSON text of each pending record, in order."""
    texts: list[str] = []
    append = texts.append
    last_start, start_text = None, ""
    second_of = _seconds.get
    for record in pending:
        ctx, itid, index, start, end, derivations, sid, port, size, content, fmt, location = record
        if start != last_start:
            last_start, start_text = start, stamp(start)
        micro = end // 1000  # stamp(end), inline
        end_text = second_of(micro // 1_000_000)
        if end_text is None:
            end_text = stamp(end)
        elif micro % 1_000_000:
            end_text = "%s.%06d" % (end_text, micro % 1_000_000)  # noqa: UP031 - as stamp()
        try:
            if ctx.plain_ids:
                write_sid = sid
            else:
                itid, sid = _text(itid), _text(sid)
                write_sid = sid[1:-1]
            append(
                ctx.template
                % (
                    itid,
                    write_sid,
                    index,
                    _derivations(derivations) if derivations else "",
                    start_text,
                    end_text,
                    content or _NO_CONTENT,
                    sid,
                    fmt or _EMPTY,
                    location or _EMPTY,
                    ctx.port_json.get(port) or _text(port),
                    size,
                )
            )
        except (TypeError, ValueError, OverflowError):  # a value the template cannot write
            append(serialiser.dumps(_record_dict(record)))
    return texts


def _record_dict(record: Pending) -> dict[str, Any]:
    ctx, itid, index, start, end, derivations, sid, port, size, content, fmt, location = record
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
