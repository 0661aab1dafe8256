"""The bulk formatter of lineage records (``provenance/lineage_json.py``) writes exactly what
the generic JSON encoder writes for the original's record, whatever the names, ports and ids
(quotes, ``%``, backslashes, non-ASCII), and the original's timestamps; the writer thread
of a worker's files (``store.BackgroundFileStore``) loses nothing and hides no error; the
counts of records JSON cannot write are said once (``tally.py``)."""

from __future__ import annotations

import datetime
import json
import logging
import os
import random
import shutil
import time
from typing import Any

import pytest

from dispel4py.provenance import records
from dispel4py.provenance.lineage_json import (
    InstanceFormat,
    Serialiser,
    derivation_dict,
    lineage_texts,
    plain,
    stamp,
)
from dispel4py.provenance.store import BackgroundFileStore
from dispel4py.provenance.tally import Tally

pytestmark = pytest.mark.timeout(30)

_ODD = ['"', "\\", "%", "%s", "é", "\n", "☃", "-", "x"]


def Ctx(pe_id: str, name: str, prefix: str, const: dict[str, Any], ports: Any = ()) -> InstanceFormat:
    """The format of an instance, as ``InstanceContext.seal`` makes it."""
    return InstanceFormat(pe_id, Serialiser().dumps(const)[1:-1], plain(prefix) and plain(f"{name}-"), ports)


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(_ODD) if rng.random() < 0.3 else rng.choice("abcXYZ019_") for _ in range(6))


def _expected(record: tuple[Any, ...], ctx: InstanceFormat) -> dict[str, Any]:
    _, itid, index, start, end, derivations, sid, port, size, content, fmt, location = record
    return {
        "iterationId": itid,
        "_id": ctx.write_id_prefix + sid,
        "iterationIndex": index,
        "derivationIds": [derivation_dict(d) for d in derivations],
        "startTime": str(datetime.datetime.fromtimestamp(start // 1000 / 1e6)),
        "endTime": str(datetime.datetime.fromtimestamp(end // 1000 / 1e6)),
        "streams": [
            {
                "content": json.loads(content) if content else [{}],
                "id": sid,
                "format": json.loads(fmt) if fmt else "",
                "location": json.loads(location) if location else "",
                "annotations": [],
                "port": port,
                "size": size,
            }
        ],
        **ctx.const,
    }


def test_records_are_the_generic_encoders_whatever_the_strings() -> None:
    seed = random.randrange(2**32)
    print(f"seed {seed}")
    rng = random.Random(seed)
    serialiser = Serialiser()
    now = time.time_ns()
    for case in range(200):
        plain_case = case % 2 == 0
        name = "PE" if plain_case else _word(rng)
        prefix = "host-1-abc-" if plain_case else _word(rng) + "-"
        pe_id = _word(rng)
        const = {"name": name, "runId": _word(rng), "stateful": rng.random() < 0.5}
        ctx = Ctx(pe_id, name, prefix, const, [_word(rng) for _ in range(rng.randrange(3))])
        pending = []
        for i in range(rng.randrange(1, 6)):
            derivations = [
                (_word(rng), _word(rng), _word(rng), _word(rng), rng.randrange(100))
                for _ in range(rng.randrange(3))
            ]
            start = now + rng.randrange(-(10**12), 10**12) // 1000 * 1000
            end = start if rng.random() < 0.2 else start + rng.randrange(10**10)
            if rng.random() < 0.2:  # a whole second: str(datetime) has no fraction then
                end = (end // 10**9 + 1) * 10**9
            content = None if rng.random() < 0.5 else serialiser.dumps([{_word(rng): rng.random()}])
            fmt = None if rng.random() < 0.5 else serialiser.dumps(_word(rng))
            sid = f"{prefix}{i}"
            port = _word(rng)
            itid = f"{name}-{prefix}{i}"
            if ctx.port_json and rng.random() < 0.5:
                port = rng.choice(list(ctx.port_json))  # a port of the PE: its JSON made once
            pending.append((case, itid, i, start, end, derivations, sid, port, i, content, fmt, fmt))
        texts = lineage_texts(pending, {case: ctx}, serialiser)
        assert [json.loads(t) for t in texts] == [_expected(r, ctx) for r in pending], f"case {case}"
    assert serialiser.failed == 0


def test_stamp_is_the_originals_format() -> None:
    base = time.time_ns() // 10**9 * 10**9
    for ns in (base, base + 1000, base + 999_999_999, base + 10**9 + 500_000):
        assert stamp(ns) == str(datetime.datetime.fromtimestamp(ns // 1000 / 1e6))
    assert "." not in stamp(base)  # str(datetime) leaves out zero microseconds


def test_a_port_the_template_cannot_write_goes_through_the_generic_encoder() -> None:
    serialiser = Serialiser()
    ctx = Ctx("P0", "P", "h-1-", {"name": "P"})
    record = ("k", "P-h-1-1", 1, time.time_ns(), time.time_ns(), [], "h-1-2", 3, 28, None, None, None)
    (text,) = lineage_texts([record], {"k": ctx}, serialiser)
    assert json.loads(text)["streams"][0]["port"] == 3


def test_background_writes_keep_every_batch_and_raise_a_failed_one(tmp_path) -> None:
    folder = tmp_path / "prov"
    store = BackgroundFileStore(str(folder), 10)
    for i in range(7):  # more than the queue holds: put waits, nothing is dropped
        store.put([json.dumps({"batch": i, "n": n}) for n in range(3)])
    store.close()
    written = [json.loads(p.read_text()) for p in folder.glob("bulk_*")]
    assert sorted(r["batch"] for batch in written for r in batch) == sorted(list(range(7)) * 3)
    store = BackgroundFileStore(str(folder), 10)
    shutil.rmtree(folder)  # the folder is gone: the write fails in the thread
    with pytest.raises(FileNotFoundError):
        try:
            store.put(['{"a":1}'])
            store.put(['{"a":2}'])
        finally:
            store.close()


def test_the_modules_list_read_from_the_heads_is_importlibs() -> None:
    """The ``workflow_run`` record's ``modules``, read from the metadata heads (fast), is
    the list ``importlib.metadata`` gives."""
    assert records._modules() == records._modules_by_importlib()
    assert any(m.startswith("dispel4py==") for m in records._modules())


def test_the_tally_says_the_runs_total_once_and_a_late_count_where_it_is(caplog) -> None:
    tally = Tally()
    tally.open()
    for count in (2, 0, 3):
        tally.add(count)  # as three worker processes would, at their end
    with caplog.at_level(logging.WARNING, logger="dispel4py.provenance"):
        assert tally.report() == 5
        assert not os.path.exists(tally.folder)
        tally.add(1)  # a worker ending after the driver: said by the worker itself
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith("5 provenance records could not be written as JSON")
    assert messages[1].startswith("1 provenance record could not be written as JSON")
    assert "in the worker on host" in messages[1] and len(messages) == 2
