"""How a worker's finished work reaches Redis: the committing half of ``RedisQueues`` (see
``redis/queues.py``), and the engine's reporter.

A shared task's outputs and reports are held until it is done, then added with its
acknowledgement in one atomic ``COMMIT`` (``redis/scripts.py``), queued here and sent with
the worker's next round trip (its next take, as a rule). ``COMMIT`` refuses a task that is
no longer this worker's, or a copy of one committed before, and counts the reports it
wrote in the ``sent`` hash for the driver's audit (``redis/audit.py``). Every report is
sealed: signed over the run, the reports stream and a fresh identity.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from dispel4py.dynamic.signing import Idents
from dispel4py.mappings.base import ResultBuffer
from dispel4py.mappings.redis.keys import GROUP, redis_failures_are_transport_errors
from dispel4py.mappings.redis.take import Taking, _Frame

__all__ = ["Committing", "Reporter", "REPORTS_HIGH"]

REPORTS_HIGH = 64  # streaming: entries on the reports stream above which results wait


class Committing(Taking):
    """The committing methods of ``RedisQueues`` (over its taking ones: a task is committed
    in the round trip of the next take); the attributes below are the queues' own."""

    idents: Idents
    reports_scope: bytes
    pending: list[tuple[int, bytes, bytes, bytes]]
    pending_bytes: int
    unsent: Counter[int]
    commits: list[tuple[int, tuple[Any, ...]]]
    unlisted: list[bytes]

    @redis_failures_are_transport_errors
    def task_done(self, key: int, report: Any) -> None:
        """The commit goes with the next round trip (the next take, as a rule): one round
        trip per task. A worker that dies before it is sent has committed nothing."""
        frame = self.frames.pop()
        assert frame.key == key, (frame.key, key)
        listed = [ident for ident, _, _ in frame.reports] if frame.shared else self._take_unlisted()
        sealed = self._seal_report(self._merged(frame, report), frame.idents, listed=listed)
        self._commit(frame, [*frame.reports, sealed])

    def _take_unlisted(self) -> list[bytes]:
        listed, self.unlisted = self.unlisted, []
        return listed

    def _merged(self, frame: _Frame, report: Any) -> Any:
        """The report of a frame that ran n tasks as one: n tasks done for the coordinator
        (the engine reports one; the others are counted as created minus one each)."""
        extra = len(frame.entries) - 1
        if not extra:
            return report
        kind, (worker, pe_id, created, items, busy) = report
        created = {**created, pe_id: created.get(pe_id, 0) - extra}
        return kind, (worker, pe_id, created, items, busy)

    def _seal_report(
        self,
        message: Any,
        done: Sequence[bytes] = (),
        committed: bool = True,
        listed: Sequence[bytes] = (),
    ) -> tuple[bytes, bytes, bytes]:
        """``(identity, mac, data)`` of a report; ``done``: the identities of the tasks
        it reports done (the driver refuses a second report of one); ``committed``: it goes
        through ``COMMIT``, which counts it in the ``sent`` hash (the driver audits that it
        read as many); ``listed``: the identities of reports of results written before it,
        which the driver must have read (signed, so that no stranger can hide a deletion)."""
        ident = self.idents.next()
        payload = (self.worker, message, tuple(done), committed, tuple(listed))
        return (ident, *self.signer.dumps(self.reports_scope, payload, ident))

    @redis_failures_are_transport_errors
    def report(self, message: Any) -> None:
        """A report through ``COMMIT``: held by a shared task (its task report lists those of
        results), else sent at once; reports of results sent at once are listed by the next
        report that is not one (a task's, ``posted``, ``done``), so that the driver knows
        when one was deleted unread."""
        top = self.frames[-1] if self.frames else None
        if top is not None and top.shared:
            top.reports.append(self._seal_report(message))
            return
        results = message[0] == "results"
        sealed = self._seal_report(message, listed=() if results else self._take_unlisted())
        self._commit(None, [sealed])
        self._execute(self._pipeline())
        if results:
            self.unlisted.append(sealed[0])

    def send_now(self, message: Any) -> None:
        """A report that is not part of any task (logs, errors, hello/bye); any thread."""
        ident, mac, data = self._seal_report(message, committed=False)
        # NOMKSTREAM: a worker that speaks after the driver deleted the run leaves no key behind
        self.client.xadd(self.names.reports, {"i": ident, "m": mac, "d": data}, nomkstream=True)

    def _commit(self, frame: _Frame | None, reports: list[tuple[bytes, bytes, bytes]]) -> None:
        """Queue the atomic step of the puts (the frame's, staged or held, and the pending
        pinned ones), the reports and the acknowledgement of the frame's task (refused if
        the task is no longer this worker's, or is a copy); it is sent with the next round trip."""
        # a shared task's commit may be refused: the pinned puts not sent yet (of the task
        # this one runs nested in) go separately, so that they are never dropped with it
        outside = [] if frame and frame.shared else self.pending
        puts = [*outside, *(frame.puts if frame else [])]
        streams: dict[int, int] = {}
        args: list[Any] = []
        for key, ident, mac, data in puts:
            index = streams.setdefault(key, 6 + len(streams))  # KEYS: 5 before the destinations
            args += [index, ident, mac, data]
        for sealed in reports:
            args += sealed
        source = self.names.stream(frame.key) if frame else self.names.reports
        stage = frame.stage if frame and frame.stage else self.names.prefix + "stage:none"
        entries, idents = (frame.entries, frame.idents) if frame else ([], [])
        call = (
            5 + len(streams),
            self.names.used,
            self.names.reports,
            source,
            stage,
            self.names.sent,
            *(self.names.stream(k) for k in streams),
            GROUP,
            self.consumer,
            len(entries),
            *entries,
            *idents,
            b"1" if frame and frame.stage else b"0",
            len(puts),
            *args,
        )
        self.commits.append((frame.key if frame else -1, call))
        self.payloads.committing(frame)  # its blocks go once the reply says it is done
        if outside:
            self.pending, self.pending_bytes, self.unsent = [], 0, Counter()


class Reporter:
    """The engine's reporter on Redis: results travel in the reports stream (inside the
    task that produced them, so a redelivered task cannot return them twice).

    ``bounded`` (a streamed run): results wait while the reports stream holds more than
    ``REPORTS_HIGH`` entries, i.e. while the driver is not reading (its consumer is slow).
    """

    def __init__(self, queues: Committing, bounded: bool = False) -> None:
        self.queues, self.bounded = queues, bounded
        self.results = ResultBuffer(self._ship)
        self.result_list = self.results.result_list
        self.flush_results = self.results.flush_results

    def _ship(self, batch: Any) -> None:
        nap = 0.001
        while self.bounded and self.queues.client.xlen(self.queues.names.reports) > REPORTS_HIGH:
            time.sleep(nap)  # backoff, not a spin; the driver's reading is what we wait for
            nap = min(0.05, nap * 2)
        self.queues.report(("results", batch))
