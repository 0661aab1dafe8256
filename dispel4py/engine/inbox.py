"""Inbox loops: how the static executor runs an instance's inbox to empty, one ``process``
call per item.

This is the per-item path of every static mapping, so it is specialised once per instance,
when the executor is built, rather than decided per item:

* an instance with one connected input has a **bare** inbox: the items alone, no
  ``(port, item)`` pair built per item (``BareLocalWriter``, ``Executor.handle``);
* on a bare inbox, an ``IterativePE`` or ``ConsumerPE`` (the base classes' own ``process``)
  is called through ``_process`` directly, with no handler in between, and any other PE
  through ``process({port: item})``;
* otherwise (several inputs, or a recorder or ``timed_*`` mapping wrapping the handler) the
  loop calls ``handler(port, item)`` on pairs, as before.

The loop counts nothing per item: the executor counts the calls as the inbox's length
before the loop less its length after (nothing is appended to an inbox while it is being
drained; see ``executor.py``). The item being processed is kept only when a call fails,
for the failure's message (``current``: ``[port, item]``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from dispel4py.base import ConsumerPE, IterativePE
from dispel4py.engine.writers import BareLocalWriter

__all__ = ["make_inbox_loop", "single_input"]

Loop = Callable[[], None]


def single_input(ports: set[str]) -> str | None:
    """The port of a bare inbox: the only connected input, else None (pairs)."""
    return next(iter(ports)) if len(ports) == 1 else None


def make_inbox_loop(
    inbox: deque,
    pe: Any,
    writers: dict[str, Any],
    emit: Callable[[Any], None],
    handler: Callable[[str, Any], None],
    port: str | None,
) -> tuple[Loop, list[Any]]:
    """The loop that empties ``inbox`` and the ``[port, item]`` it fills on a failure.

    ``port`` None: the inbox holds pairs and ``handler`` runs each one. Else the inbox is
    bare, its items for ``port``, and ``handler`` must be the engine's own (no recorder,
    no timings): the loop calls the PE as that handler would."""
    current: list[Any] = [port, None]
    if port is None:
        return _pairs_loop(inbox, handler, current), current
    only_input = list(pe.inputconnections) == [getattr(pe, "INPUT_NAME", None)]
    kind = type(pe).process
    if only_input and kind is IterativePE.process and pe.OUTPUT_NAME in writers:
        writer = writers[pe.OUTPUT_NAME]
        if type(writer) is BareLocalWriter:
            return _iterative_to_local_loop(inbox, pe._process, writer, current), current
        return _iterative_loop(inbox, pe._process, writer.write, current), current
    if only_input and kind is ConsumerPE.process:
        return _consumer_loop(inbox, pe._process, current), current
    return _process_loop(inbox, pe.process, emit, port, current), current


def _pairs_loop(inbox: deque, handler: Callable[[str, Any], None], current: list[Any]) -> Loop:
    popleft = inbox.popleft

    def loop() -> None:
        pair: Any = None
        try:
            while inbox:
                pair = popleft()
                handler(*pair)
        except BaseException:
            if pair is not None:
                current[0], current[1] = pair
            raise

    return loop


def _iterative_loop(
    inbox: deque, fn: Callable[[Any], Any], write: Callable[[Any], None], current: list[Any]
) -> Loop:
    popleft = inbox.popleft

    def loop() -> None:
        item: Any = None
        try:
            while inbox:
                item = popleft()
                result = fn(item)
                if result is not None:
                    write(result)
        except BaseException:
            current[1] = item
            raise

    return loop


def _iterative_to_local_loop(
    inbox: deque, fn: Callable[[Any], Any], writer: BareLocalWriter, current: list[Any]
) -> Loop:
    """:func:`_iterative_loop` with ``BareLocalWriter.write`` written out: a chain of
    PEs on one worker saves a call per item. The writer's state stays on the writer, which
    the PE's own ``self.write`` calls share."""
    popleft, out = inbox.popleft, writer.inbox
    append, filled = out.append, writer.filled

    def loop() -> None:
        item: Any = None
        try:
            while inbox:
                item = popleft()
                result = fn(item)
                if result is not None:
                    writer.count += 1
                    append(result)
                    if len(out) >= writer.check:
                        filled(result, len(out))
        except BaseException:
            current[1] = item
            raise

    return loop


def _consumer_loop(inbox: deque, consume: Callable[[Any], Any], current: list[Any]) -> Loop:
    popleft = inbox.popleft

    def loop() -> None:
        item: Any = None
        try:
            while inbox:
                item = popleft()
                consume(item)
        except BaseException:
            current[1] = item
            raise

    return loop


def _process_loop(
    inbox: deque, process: Callable[[Any], Any], emit: Callable[[Any], None], port: str, current: list[Any]
) -> Loop:
    popleft = inbox.popleft

    def loop() -> None:
        item: Any = None
        try:
            while inbox:
                item = popleft()
                out = process({port: item})
                if out is not None:
                    emit(out)
        except BaseException:
            current[1] = item
            raise

    return loop
