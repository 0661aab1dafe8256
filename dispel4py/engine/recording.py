"""The recording hook: how the engine lets a recorder (provenance) see every iteration and
every write, without knowing what it records.

The engine imports nothing of what implements it (``dispel4py.provenance`` implements it
and imports the engine, never the reverse). A run without a recorder (``Tuning.recorder``
is ``None``, the default) takes none of these paths: the writers, handlers and inboxes are
the engine's own, so it costs nothing.

With a recorder, each worker process (the ``simple`` driver, a ``multi`` worker, an MPI rank,
a dynamic or remote Redis worker) opens its own :class:`Recorder` and the engine:

* builds general writers (no local fast path) whose ``deliver`` the recorder wraps, so an
  item travels through inboxes and transports with the ids it was written under — the
  routes, group-by keys and result lists still see the user's item only;
* hands the writers of each instance to :meth:`Recorder.wrap`, which returns the writers to
  install (they record each write, then pass the item on unchanged);
* wraps each instance's input handler (:meth:`Recorder.handler`: one iteration per item,
  the item unwrapped before the PE sees it), a source's ``process`` (:meth:`Recorder.source`)
  and ``postprocess`` (:meth:`Recorder.postprocess`);
* reports a failing item as the user's (:meth:`Recorder.item_of`);
* closes the recorder when the worker ends (:meth:`Recorder.close`), failed or not.

The factory (:class:`RecorderFactory`) is picklable: it travels to worker processes, MPI
ranks and remote Redis workers inside the :class:`~dispel4py.tuning.Tuning`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["Recorder", "RecorderFactory", "Deliver", "Handler"]

Deliver = Callable[[int, str, Any], None]
Handler = Callable[[str, Any], None]


class Recorder(Protocol):
    def deliver(self, deliver: Deliver) -> Deliver: ...
    def wrap(self, iid: int, pe: Any, writers: dict[str, Any]) -> dict[str, Any]: ...
    def handler(self, iid: int, handler: Handler) -> Handler: ...
    def source(self, iid: int, process: Callable[[Any], Any]) -> Callable[[Any], Any]: ...
    def postprocess(self, iid: int, postprocess: Callable[[], None]) -> Callable[[], None]: ...
    def item_of(self, carried: Any) -> Any: ...  # the user's item of what an inbox holds
    def close(self) -> None: ...


class RecorderFactory(Protocol):
    run_id: str

    def open(self, plan: Any, worker: int) -> Recorder:
        """The recorder of one worker process (called where the worker runs)."""
        ...

    def start_run(self, plan: Any) -> None:
        """Called once by the primary process before the workers start."""
        ...

    def end_run(self) -> None:
        """Called once by the primary process after the run (failed or not)."""
        ...
