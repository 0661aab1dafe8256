"""The driver's audit of a Redis run: entries deleted by someone else (``XDEL``, ``XTRIM``)
stop the run with one clear error instead of a hang or a silent loss.

Whoever can write to the server can delete entries; the key cannot prevent it. What the
driver can do is notice it, soundly (never on a timer's guess), from one atomic snapshot
(``AUDIT``): the length of every task queue, the tasks in the dead-letter stream, the
``sent`` hash (how many reports each worker's commits wrote), and the id of the last entry
of the reports stream, ``L``. The audit decides only once the driver has handled every
report up to ``L`` (so its counts are those of exactly the reports written before the
snapshot), and then:

* **Reports.** ``COMMIT`` adds its reports and the count of them to the worker's field of
  ``sent`` in one step, and only when it lands; the driver counts the signed reports it
  reads that say they came that way (``committed``; copies and forgeries are not
  counted). Every report counted in ``sent`` at the snapshot is on the stream or was read:
  fewer read than sent means entries of the reports stream were deleted unread.
* **Tasks.** For each PE, the coordinator's tally of its tasks in flight (created minus
  done) must not exceed the entries of its queues (``XLEN``: queued or running) plus its
  tasks dead-lettered whose report the driver has not handled. Why that holds on a healthy
  run, case by case:

  - a task counted as created was added to its queue no later than the report that
    counts it: a shared task's outputs are added by the same ``COMMIT`` as its report
    (those spilled early wait in a staging stream, not counted, that the ``COMMIT``
    moves); a pinned task's puts are sent before its report or in its ``COMMIT``; a task
    nested in another counts only its own puts; the driver's own first tasks are sent
    before they are counted;
  - a task leaves its queue only in the same atomic step as its report (``COMMIT``), or
    is moved back within it (``REQUEUE``, ``GIVE_BACK``, a refused commit), or goes to the
    dead-letter stream (counted there until its report, ``dead``/``dropped``, is handled:
    that report is sent after the move, not with it);
  - what a stranger adds (forged entries, copies) is in ``XLEN`` but never in the tally:
    it can hide a deletion until a worker drops it, never fake one;
  - a command in flight or a report not handled yet: the audit waits until the driver has
    handled every report up to ``L``; a commit still on its way lands after the snapshot,
    with its report after ``L``.

  So a tally above the queues means tasks were deleted from a queue, or their report
  from the reports stream (checked first, so the error names the right one).

The audit costs nothing while reports arrive: it runs when the driver has heard nothing
for ``IDLE_S`` (a run waiting for lost tasks is such a run), and once at the end, where
only the reports are checked (a deleted report of results does not make the run wait).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

from dispel4py.mappings.redis.keys import BLOCK_MS, SOCKET_TIMEOUT_S, Tampered

__all__ = ["AUDIT", "Auditor", "driver_token", "entry_id"]

_log = logging.getLogger("dispel4py.engine")

IDLE_S = 1.0  # the driver audits after this long without a report, and at most this often

# KEYS: reports, sent, dead, the instance streams
# Returns {last entry id of the reports stream (or ''), sent as a flat list, the 'k' of
# every dead-letter entry, XLEN of each instance stream}. A stream that is gone (the server
# flushed or restarted, the keys deleted) is the NOGROUP error every other step meets then
# (``lost_error``: "the run's queues are gone"), not a deletion of entries.
AUDIT = """
for i = 1, #KEYS do
  if i ~= 2 and redis.call('EXISTS', KEYS[i]) == 0 then
    return redis.error_reply('NOGROUP ' .. KEYS[i] .. ' is gone')
  end
end
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local id = ''
if #last > 0 then id = last[1][1] end
local dead = {}
for _, e in ipairs(redis.call('XRANGE', KEYS[3], '-', '+')) do
  local f = e[2]
  for j = 1, #f, 2 do
    if f[j] == 'k' then dead[#dead + 1] = f[j + 1] end
  end
end
local lens = {}
for i = 4, #KEYS do lens[#lens + 1] = redis.call('XLEN', KEYS[i]) end
return {id, redis.call('HGETALL', KEYS[2]), dead, lens}
"""


def entry_id(value: bytes | str | None) -> tuple[int, int]:
    """A stream entry id as a comparable pair (``b''``: before every entry)."""
    if not value:
        return (0, 0)
    text = value.decode() if isinstance(value, bytes) else value
    ms, _, seq = text.partition("-")
    return (int(ms), int(seq or 0))


def driver_token(signer: Any, names: Any) -> bytes:
    """The value of the driver's liveness key: a MAC under the run's nonce, which only
    this run's driver (holding the key and this nonce) can make. A worker that joins checks
    it against the nonce of the metadata it read: an older run's metadata written over
    ``info`` (same run id, same key) has another nonce, and the worker refuses it."""
    return signer.mac(names.driver.encode(), b"driver of " + names.run_id.encode())


class Auditor:
    """The driver's audit (see the module docstring); ``pool`` is the ``RedisPool``."""

    def __init__(self, pool: Any, reader: Any, coordinator: Any) -> None:
        self.pool, self.reader, self.coordinator = pool, reader, coordinator
        self.queues = queues = pool.queues
        names = queues.names
        self.keys = [names.reports, names.sent, names.dead, *names.instance_streams]
        self.given_up: Counter[int] = Counter()  # dead-lettered tasks handled, per queue key
        self.heard_at = self.audited_at = time.monotonic()
        self.audits = self.decided = 0  # snapshots taken; of them, those that could decide

    def heard(self) -> None:
        self.heard_at = time.monotonic()

    def tick(self) -> None:
        """Audit if the run looks idle (nothing heard, no audit, for ``IDLE_S``)."""
        now = time.monotonic()
        if now - max(self.heard_at, self.audited_at) < IDLE_S:
            return
        self.audited_at = now
        self.audits += 1
        last, sent, dead, lens = self._snapshot()
        if entry_id(self.reader.drained_to) < entry_id(last):
            return  # reports on their way: the next idle moment decides
        self.decided += 1
        self._check_reports(sent)
        self._check_tasks(dead, lens)

    def final(self, relay: Any) -> None:
        """At the end: every report the workers' commits wrote was read (``relay`` handles
        what the reader still holds, e.g. late log lines)."""
        last, sent, _, _ = self._snapshot()
        reads = self.reader.reads_begun
        deadline = time.monotonic() + BLOCK_MS / 1000 + 2 * SOCKET_TIMEOUT_S
        while entry_id(self.reader.read_to) < entry_id(last) and self.reader.empty_read <= reads:
            relay(self.reader.drain())
            if time.monotonic() > deadline:  # the reader is stuck: nothing to conclude
                _log.debug("audit at the end skipped: the reports reader did not catch up")
                return
            time.sleep(0.005)
        relay(self.reader.drain())
        self._check_reports(sent)

    def _snapshot(self) -> tuple[bytes, dict[str, int], list[bytes], list[int]]:
        last, flat, dead, lens = self.queues.client.eval(AUDIT, len(self.keys), *self.keys)
        sent = {_text(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}
        return last, sent, dead, [int(n) for n in lens]

    def _check_reports(self, sent: dict[str, int]) -> None:
        received = self.reader.received
        missing = {c: n - received.get(c, 0) for c, n in sent.items() if n > received.get(c, 0)}
        if not missing:
            return
        workers = ", ".join(sorted((c[1:] for c in missing), key=lambda w: (len(w), w)))
        names = self.queues.names
        raise Tampered(
            f"{sum(missing.values())} report(s) of worker{'s' if len(missing) > 1 else ''} {workers} never "
            f"reached the driver: someone deleted entries from {names.reports} on Redis at "
            f"{self.queues.target.where} (XDEL/XTRIM); the run cannot end correctly"
        )

    def _check_tasks(self, dead: list[bytes], lens: list[int]) -> None:
        queues, coordinator = self.queues, self.coordinator
        have: Counter[str] = Counter()
        streams: dict[str, list[str]] = {}
        for key, length in enumerate(lens):
            pe_id = queues.pe_ids[key]
            have[pe_id] += length
            streams.setdefault(pe_id, []).append(queues.names.stream(key))
        # dead-lettered, report not handled yet (a stranger's junk there can only hide a loss)
        waiting = Counter(int(k) for k in dead if k.isdigit())
        for key, n in waiting.items():
            if 0 <= key < len(lens):
                have[queues.pe_ids[key]] += max(0, n - self.given_up[key])
        for pe_id, counted in coordinator.in_flight.items():
            missing = counted - have[pe_id]
            if missing > 0 and pe_id not in coordinator.ended:
                raise Tampered(
                    f"{missing} task(s) of {pe_id} are neither queued, running nor reported done: "
                    f"someone deleted entries from {' or '.join(streams.get(pe_id, []))} or "
                    f"{queues.names.reports} on Redis at {queues.target.where} (XDEL/XTRIM)"
                )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
