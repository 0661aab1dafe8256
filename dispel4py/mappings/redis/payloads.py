"""Large payloads of a Redis run through the shared memory of the producer's host.

On Redis every task is a signed entry (``dynamic/signing.py``). A 4 MB array in it is
pickled into the entry, hashed by the HMAC, sent to the server, kept there, read back and
hashed again by the worker that takes it: most of the cost of a large item. Workers on the
host of the driver can do better, as ``dyn_multi`` does: the driver makes the run's arena
(``processes/arena.py``, ``--shm-bytes``), and the large out-of-band buffers of a task
(``processes/shm.py``: numpy arrays, ``bytes``, ``bytearray``, ``memoryview``, nested)
go to blocks of it; the entry carries only the pickle and the blocks' offsets, *inside*
the signed data, so a descriptor that someone forged or changed is refused like any
tampered entry, before anything is read.

* **Same host.** A process belongs to the driver's host when its :func:`host_id` (a hash
  of the host name and the kernel's boot id; ``DISPEL4PY_HOST_ID`` overrides it, which is
  how the tests make a worker of "another host") equals the one in the run's signed
  metadata and it can open the arena's files (mode 0600: another user on the same host
  cannot, and works as a remote worker). The driver's local workers always are.
* **Which tasks.** A task goes through the arena when its destination can be read on the
  driver's host: a shared PE's queue, or a pinned instance whose worker slot is one of the
  driver's local workers (:func:`arena_keys`). As soon as a worker that cannot map the
  arena joins, the driver tells every worker (``("shm", "off")``) to write in band from
  then on.
* **The race.** A task written to the arena before that (or by a worker that had not heard
  yet) may still be taken by such a worker. It does not run it: it leaves it pending (its
  own: no one else takes it while it is alive) and asks the driver (``inband`` report),
  which maps the arena, to rewrite the entry in band under the same identity, and to swap
  it for the old one in one atomic step, only while the old one is still that worker's
  (``SWAP``); then the task is queued again, readable everywhere. The worker cannot lose it
  (if it dies or leaves, its tasks go back as every worker's do) nor run it twice
  (identities, ``COMMIT``).
* **Lifetime of a block.** A task may be delivered again (its worker died, its commit was
  refused), so the reader views its blocks without taking the entry's reference
  (``ShmCodec.loads(keep=True)``): the entry's reference is dropped only once its task is
  settled, i.e. ``COMMIT`` acknowledged it (:meth:`Payloads.settled`), it went to the
  dead-letter stream, or the driver rewrote it in band. Outputs of a task whose commit was
  refused, or that raised and is retried, are dropped with their blocks. Blocks that a
  worker killed at the wrong moment held stay taken until the run ends, when the driver
  removes the arena (and whatever the run left in it) on every path; a driver killed by
  SIGKILL leaves that to its local workers (``leftover_paths``), and to the workers that
  joined on its host, when they see it gone. So a run with no local worker (``-n 0``) has
  no arena: nothing would be left to remove it after a SIGKILL of the driver.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import socket
from collections.abc import Sequence
from typing import Any

from dispel4py.dynamic.layout import SHARED
from dispel4py.dynamic.signing import Forged
from dispel4py.mappings.processes.arena import StaleBlock
from dispel4py.mappings.processes.lifetime import remove_folder
from dispel4py.mappings.processes.shm import NotMapped, ShmCodec
from dispel4py.mappings.redis.keys import GROUP

__all__ = [
    "HOST_ID_ENV",
    "NotMapped",
    "Payloads",
    "SWAP",
    "arena_keys",
    "host_id",
    "joined_payloads",
    "shm_meta",
    "rewrite_in_band",
]

_log = logging.getLogger("dispel4py.engine")
HOST_ID_ENV = "DISPEL4PY_HOST_ID"
_PROTOCOL = 5
_BOOT_ID = "/proc/sys/kernel/random/boot_id"

# KEYS: stream   ARGV: group, consumer, old entry id, identity, mac, data
# The old entry, if it is still pending for that consumer, is replaced by the new one (its
# delivery count kept) at the end of the stream, in one step: the task is never in two
# entries nor in none. Returns 1 when swapped, 0 when the entry is no longer that worker's.
SWAP = """
local s, g, c, id = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
if #redis.call('XPENDING', s, g, id, id, 1, c) == 0 then return 0 end
local e = redis.call('XRANGE', s, id, id)
redis.call('XACK', s, g, id)
redis.call('XDEL', s, id)
local extra = {}
if #e > 0 then
  local f = e[1][2]
  for j = 1, #f, 2 do
    if f[j] == 'a' then extra = {'a', f[j + 1]} end
  end
end
redis.call('XADD', s, '*', 'i', ARGV[4], 'm', ARGV[5], 'd', ARGV[6], unpack(extra))
return 1
"""


def host_id() -> str:
    """What tells this host from others: ``DISPEL4PY_HOST_ID`` if set, else a hash of the
    host name and the boot id (two containers or two boots of one name differ)."""
    forced = os.environ.get(HOST_ID_ENV, "").strip()
    if forced:
        return forced
    try:
        with open(_BOOT_ID) as f:
            boot = f.read().strip()
    except OSError:
        boot = ""
    return hashlib.sha256(f"{socket.gethostname()}\0{boot}".encode()).hexdigest()[:16]


def arena_keys(plan: Any, local: int) -> frozenset[int]:
    """The queue keys whose tasks may go through the arena: shared PEs' queues, and pinned
    instances of the driver's local workers (a pinned instance of a joined worker keeps
    its order: its tasks are never rewritten and queued again)."""
    worker_of = plan.placement.worker_of
    return frozenset(k for k, w in enumerate(worker_of) if w == SHARED or 0 <= w < local)


class Payloads:
    """The payload codec of one process of a Redis run: ``codec`` has the run's arena in
    the processes of the driver's host, none elsewhere (:data:`PLAIN_PAYLOADS`)."""

    def __init__(self, codec: ShmCodec, keys: frozenset[int] = frozenset()) -> None:
        self.codec, self.keys = codec, keys
        self.in_band = codec.arena is None  # set by ("shm", "off") too
        self.settling: list[Any] = []  # per commit queued: its frame (or None), in order

    def __getstate__(self) -> dict[str, Any]:
        return {"codec": self.codec, "keys": self.keys, "in_band": self.in_band, "settling": []}

    @property
    def maps_arena(self) -> bool:
        return self.codec.arena is not None

    def dumps(self, key: int, message: Any) -> bytes:
        """``message`` for the queue ``key``: its large buffers in the arena when readers
        of ``key`` may map it."""
        if self.in_band or key not in self.keys:
            return pickle.dumps(message, protocol=_PROTOCOL)
        return self.codec.dumps(message)

    def loads(self, data: bytes) -> Any:
        """A signed entry's message (checked before); its blocks stay the entry's.
        :class:`NotMapped` where there is no arena; :class:`Forged` for blocks that have
        no reference left (a copy of an entry settled before)."""
        if data[:1] != b"S":
            return pickle.loads(data)
        try:
            return self.codec.loads(data, keep=True)
        except StaleBlock as exc:
            raise Forged(
                f"its shared-memory payload is gone ({exc}): a copy of an entry settled before"
            ) from exc

    @staticmethod
    def blocks(data: bytes | None) -> list[tuple[int, int]]:
        return ShmCodec.blocks(data) if data else []

    def release(self, blocks: Sequence[tuple[int, int]]) -> None:
        if blocks:
            self.codec.release(list(blocks))

    def release_puts(self, puts: Sequence[tuple[int, bytes, bytes, bytes]]) -> None:
        """Outputs that will never be sent (a refused commit, a task that raised)."""
        for put in puts:
            self.release(self.blocks(put[3]))

    def remove_orphaned_arena(self) -> None:
        """A worker that joined on the driver's host, which knows that the driver is gone
        (its liveness key expired): the driver's arena goes with this worker."""
        folder = self.codec.folder
        if folder is not None and not self.codec.owner:
            self.codec.close()
            remove_folder(folder)

    # -- settling: a task's blocks go when COMMIT acknowledged it -----------------------------
    def committing(self, frame: Any) -> None:
        """A commit was queued (in the order of the queues' commits)."""
        self.settling.append(frame)

    def settled(self, results: Sequence[Any]) -> None:
        """The replies of the commits queued so far: a commit done frees its task's input
        blocks; a refused one (the task is someone else's now, or a copy) frees only the
        outputs it held, which are dropped."""
        frames, self.settling = self.settling, []
        if not self.maps_arena:
            return
        for frame, done in zip(frames, results):
            if frame is None:
                continue
            if done == 1:
                self.release(frame.blocks)
            else:
                self.release_puts(frame.puts)


PLAIN_PAYLOADS = Payloads(ShmCodec(None, 0, 0, None))


def shm_meta(codec: ShmCodec) -> dict[str, Any] | None:
    """What a joining worker needs to find the run's arena (in the run's signed metadata)."""
    if codec.arena is None:
        return None
    return {"host": host_id(), "folder": codec.folder, "size": codec.arena.size}


def joined_payloads(meta: dict[str, Any], plan: Any) -> Payloads:
    """The codec of a worker that joined: with the arena if it is on the driver's host and
    can open it; else plain (its tasks in the arena are rewritten for it by the driver)."""
    shm = meta.get("shm")
    if not shm or shm.get("host") != host_id():
        return Payloads(ShmCodec(None, 0, 0, None))
    try:
        codec = ShmCodec.attach(shm["folder"], int(shm["size"]))
    except OSError as exc:
        _log.warning(
            "the run's shared memory %s cannot be opened here (%s): large items come through Redis",
            shm["folder"],
            exc,
        )
        return Payloads(ShmCodec(None, 0, 0, None))
    return Payloads(codec, arena_keys(plan, int(meta.get("local", 0))))


def rewrite_in_band(queues: Any, worker: int, key: int, entry_id: bytes) -> bool:
    """The driver's: the task ``entry_id`` of queue ``key``, pending for ``worker`` which
    cannot map the arena, rewritten in band under the same identity (``SWAP``), its blocks
    freed; False if it is no longer that worker's (it went back to the queue meanwhile)."""
    payloads: Payloads = queues.payloads
    stream = queues.names.stream(key)
    found = queues.client.xrange(stream, entry_id, entry_id)
    if not found or not payloads.maps_arena:
        return False
    values = found[0][1]
    scope, ident = queues._scope(key), values.get(b"i")
    try:
        data = queues.signer.check(scope, values.get(b"m"), values.get(b"d"), ident)
        message = payloads.loads(data)
    except Forged as exc:
        _log.warning("a task of %s asked to be rewritten in band is not readable: %s", stream, exc)
        return False
    plain = pickle.dumps(message, protocol=_PROTOCOL)
    message = None  # its views of the blocks go
    mac = queues.signer.mac(scope, plain, ident)
    done = queues.client.eval(SWAP, 1, stream, GROUP, f"w{worker}", entry_id, ident, mac, plain)
    if done == 1:
        payloads.release(Payloads.blocks(data))
    return bool(done == 1)
