"""``dyn_redis``, ``dyn_auto_redis``, ``hybrid_redis``, ``redis``: the dynamic engine on Redis.

The same engine as ``dyn_multi`` (``dynamic/``: shared PEs on work queues, pinned stateful
instances, end of stream by counting, help instead of wait), with Redis Streams as the task
queues (``redis/queues.py``) so that workers can run on any host that reaches the server:
``-n N`` local worker processes, plus any number of ``dispel4py worker`` processes started
elsewhere (``cli/worker.py (mappings/redis/join.py)``), which join the run and leave at its end.

* ``hybrid_redis`` and ``redis`` are the original's names for the design every dynamic
  mapping here has (stateful PEs pinned, stateless PEs on a shared queue): they are
  ``dyn_redis`` under another name.
* ``dyn_auto_redis`` adds autoscaling of the local workers with the policy of
  ``dyn_auto_multi``; ``-thr/--idle_time`` is the original's idle time in milliseconds.
* With no server named (``--redis-url``, ``-ri/-rp``, ``REDIS_HOST``/``REDIS_PORT``), a
  private embedded server runs for the length of the run (``redis/server.py``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import socket
import time
import uuid
from typing import Any

from dispel4py.dynamic.coordinator import Coordinator, merge_copies
from dispel4py.dynamic.signing import Signer, load_key, new_key, new_run_nonce
from dispel4py.engine.plan import Plan
from dispel4py.engine.result import InstanceStats
from dispel4py.engine.tuning import Tuning
from dispel4py.errors import Dispel4PyError, UsageError
from dispel4py.mappings.base import ResultCollector
from dispel4py.mappings.processes.capacity import warn_far_above_cores
from dispel4py.mappings.processes.channels import PLAIN
from dispel4py.mappings.processes.dynamic import DynMultiMapping
from dispel4py.mappings.processes.worker_process import module_files, plan_blob
from dispel4py.mappings.redis.code_digest import code_digest
from dispel4py.mappings.redis.fleet import FleetSize, announce_run
from dispel4py.mappings.redis.fleet_scaling import FleetScaler
from dispel4py.mappings.redis.keys import TTL_S
from dispel4py.mappings.redis.payloads import Payloads, arena_keys, shm_meta
from dispel4py.mappings.redis.placement import NeedsWatch, check_local_slots

__all__ = [
    "DynRedisMapping",
    "DynAutoRedisMapping",
    "HybridRedisMapping",
    "RedisMapping",
    "ItemsGivenUp",
    "add_connection_arguments",
]

_log = logging.getLogger("dispel4py.engine")
_RUN_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
DEFAULT_TTL_S = TTL_S
# a worker's liveness key lasts --claim-idle-ms and its heartbeat process renews it five
# times in that span: at 1 s, a sleeping process that misses 5 wake-ups of 200 ms in a row
# is not merely on a loaded machine
MIN_CLAIM_IDLE_MS = 1000


def add_connection_arguments(parser: Any, *, driver: bool = True) -> None:
    """How to reach the server and the run key (the driver's and ``dispel4py worker``'s)."""
    parser.add_argument(
        "--redis-url",
        default=None,
        help="redis://[user:password@]host:port/db (rediss:// for TLS); default: -ri/-rp, then "
        "REDIS_HOST/REDIS_PORT" + (", else a private embedded server" if driver else ""),
    )
    parser.add_argument("-ri", "--redis-ip", default=None, help="Redis host (the original's flag)")
    parser.add_argument("-rp", "--redis-port", type=int, default=None, help="Redis port (default 6379)")
    parser.add_argument(
        "--key-file",
        default=None,
        help="file holding the run key that signs every payload (made if missing); workers on "
        "other hosts need the same key (this file, or DISPEL4PY_KEY)"
        if driver
        else "file holding the run's key (the driver's --key-file); or set DISPEL4PY_KEY",
    )


class ItemsGivenUp(Dispel4PyError):
    """``--on-error dead-letter``: the run went on, but some tasks were given up.

    ``given_up`` says why, one entry per task; ``outputs`` holds what the run produced."""

    def __init__(self, given_up: list[str], outputs: dict[str, Any], deliveries: int) -> None:
        self.given_up, self.outputs = given_up, outputs
        shown = "; ".join(given_up[:5]) + (f"; and {len(given_up) - 5} more" if len(given_up) > 5 else "")
        super().__init__(
            f"{len(given_up)} task(s) given up after {deliveries} deliveries each (--on-error "
            f"dead-letter), the rest of the run completed: {shown}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (ItemsGivenUp, (self.given_up, self.outputs, 0))


def check_run_id(run_id: str) -> str:
    if not _RUN_ID.fullmatch(run_id):
        raise UsageError(f"--run must be 1-64 letters, digits, '_', '.' or '-' (got {run_id!r})")
    return run_id


class DynRedisMapping(DynMultiMapping):
    name = "dyn_redis"
    summary = "dynamic work queue on a Redis server"

    @classmethod
    def add_arguments(cls, parser: Any) -> None:
        parser.add_argument(
            "-n",
            "--num",
            type=int,
            default=None,
            help="local worker processes (default: number of cores; 0: none, workers join with "
            "'dispel4py worker')",
        )
        cls.add_tuning_arguments(parser)
        cls.add_shm_argument(parser)
        cls.add_start_method_argument(parser, "local worker")
        parser.add_argument(
            "-ct",
            "--consumer-timeout",
            type=int,
            default=None,
            help="accepted for compatibility and ignored: runs end by protocol, never on a timeout",
        )
        add_connection_arguments(parser)
        parser.add_argument(
            "--run", default=None, help="run id, the key prefix d4py:<run>: (default: random)"
        )
        parser.add_argument(
            "--claim-idle-ms",
            type=int,
            default=5000,
            help="a task whose worker's heartbeat process has been silent this long (the worker died, "
            f"froze or lost its host) is given to another (default 5000, at least {MIN_CLAIM_IDLE_MS})",
        )
        parser.add_argument(
            "--max-deliveries",
            type=int,
            default=3,
            help="a task whose workers died (or, with --on-error dead-letter, that raised) this many "
            "times is given up (default 3)",
        )
        parser.add_argument(
            "--on-error",
            choices=("fail", "dead-letter"),
            default="fail",
            help="a PE that raises: end the run (fail, default), or retry the item and, after "
            "--max-deliveries, give it up, go on, list it at the end and exit 1 (dead-letter)",
        )

    def local_workers(self) -> int:
        num = self.options.get("num")
        if num is None:
            return os.cpu_count() or 1
        if num < 0:
            raise UsageError(f"-n/--num must be at least 0 (got {num})")
        if not self._num_checked:  # said once per run (mappings/_capacity.py)
            self._num_checked = True
            warn_far_above_cores(int(num))
        return int(num)

    def num_workers(self) -> int:
        """Worker slots of the plan (pinned instances are laid over them): at least one,
        which a worker from another host takes when there is no local worker."""
        return max(1, self.local_workers())

    def _check_options(self) -> tuple[int, int]:
        claim, deliveries = self.options.get("claim_idle_ms"), self.options.get("max_deliveries")
        if not isinstance(claim, int) or claim < MIN_CLAIM_IDLE_MS:
            raise UsageError(f"--claim-idle-ms must be at least {MIN_CLAIM_IDLE_MS} (got {claim!r})")
        if not isinstance(deliveries, int) or deliveries < 1:
            raise UsageError(f"--max-deliveries must be at least 1 (got {deliveries!r})")
        return claim, deliveries

    def execute(self, plan: Plan, collector: ResultCollector) -> list[InstanceStats]:
        from dispel4py.mappings.redis.server import EmbeddedRedis, check_server, resolve_target

        tuning = self.live_tuning(Tuning.from_options(self.options))
        claim_ms, deliveries = self._check_options()
        self.shm_bytes()  # checked before any server starts
        run_id = check_run_id(self.options.get("run") or uuid.uuid4().hex[:12])
        try:
            key = load_key(self.options.get("key_file"), create=True)
        except (OSError, ValueError) as exc:
            raise UsageError(f"--key-file: {exc}") from exc
        target = resolve_target(self.options)
        if target is None and self.local_workers() == 0:
            raise UsageError(
                "-n 0 runs no local worker, and no worker can join the private Redis server the run "
                "would start (its password is random and it lives only as long as the run): name a "
                "server that the workers reach with --redis-url and share a --key-file, or use -n 1 or more"
            )
        with contextlib.ExitStack() as stack:
            leftovers: list[str] = []
            if target is None:
                embedded = EmbeddedRedis()
                target = stack.enter_context(embedded)
                leftovers = embedded.leftovers()
            check_server(target, lean=True)
            return self._run_on(
                plan, collector, stack, tuning, target, run_id, key, claim_ms, deliveries, leftovers
            )

    def _run_on(
        self,
        plan: Plan,
        collector: ResultCollector,
        stack: contextlib.ExitStack,
        tuning: Tuning,
        target: Any,
        run_id: str,
        key: bytes | None,
        claim_ms: int,
        deliveries: int,
        leftovers: list[str],
    ) -> list[InstanceStats]:
        import multiprocess

        from dispel4py.mappings.redis.driver_pool import RedisPool
        from dispel4py.mappings.redis.queues import RedisQueues, RunNames, lost_error
        from dispel4py.mappings.redis.run import RedisRun, ReportReader

        ctx = multiprocess.get_context(self.options.get("start_method"))
        local = self.local_workers()
        check_local_slots(plan, local)
        # large buffers through this host's shared memory (payloads.py), removed after the workers;
        # none without local workers: they remove it if the driver is SIGKILLed
        codec = stack.enter_context(contextlib.closing(self.shared_memory(ctx) if local else PLAIN))
        nonce = new_run_nonce()  # one key file for many runs: entries are valid in this run only
        signer = Signer(key or new_key(), nonce)
        queues = RedisQueues(
            plan,
            target,
            RunNames(run_id, plan),
            signer,
            claim_idle_ms=claim_ms,
            max_deliveries=deliveries,
            dead_letter=self.options.get("on_error") == "dead-letter",
            leftovers=leftovers,
        )
        queues.payloads = Payloads(codec, arena_keys(plan, local))
        queues.lean = True  # the driver and its workers without redis-py's client (lean_client.py)
        try:
            queues.open_client("dispel4py-driver")
            stack.callback(queues.client.close)
            run = RedisRun(queues, slots=plan.num_workers, local=local, ttl_s=DEFAULT_TTL_S)
            stack.callback(run.destroy)
            meta = self._meta(plan, local, claim_ms, deliveries, tuning)
            meta["shm"] = shm_meta(codec)
            run.create({**meta, "run_nonce": nonce}, self._shared_plan(plan, key))
            _log.info("run %s on Redis at %s, %d local worker(s)", run_id, target.where, local)
            if key is not None:
                announce_run(queues.client, run_id)  # standing agents (worker --serve) join now
            if key is not None or local == 0:
                _log.info(
                    "workers join with: dispel4py worker --redis-url URL --run %s --key-file FILE [workflow]",
                    run_id,
                )
            reader = ReportReader(queues, bounded=tuning.streaming).start()
            stack.callback(reader.close)
            coordinator = Coordinator(plan, queues, recording=tuning.recorder is not None)
            pool = stack.enter_context(RedisPool(ctx, plan, queues, tuning, local=local))
            on_report = self._with_status(run, coordinator, pool, key, self._on_report(coordinator))
            scaler = self._fleet_scaler(plan, queues, coordinator, pool)
            watch = NeedsWatch(plan, pool, coordinator)
            size = FleetSize(plan, pool, queues)
            pool.start()
            coordinator.start()
            stats = pool.collect_run(
                collector, reader, run, coordinator, on_report, _ticks(scaler, watch, size)
            )
        except Exception as exc:
            error = lost_error(target, exc)
            if error is exc:
                raise
            raise error from exc
        pool.report_forged()
        if scaler is not None:
            self.workers_timeline, self.hosts_timeline = scaler.timeline, scaler.hosts_timeline
        if pool.dropped:
            raise ItemsGivenUp(pool.dropped, collector.outputs(plan), deliveries)
        return merge_copies(stats)

    def _on_report(self, coordinator: Coordinator) -> Any:
        board = self.board
        if board is None:
            return coordinator.on_report
        board.queued_source = coordinator.queued_tasks

        def on_report(worker: int, kind: str, body: Any) -> bool:
            return board.on_report(worker, kind, body) or coordinator.on_report(worker, kind, body)

        return on_report

    def _with_status(
        self, run: Any, coordinator: Coordinator, pool: Any, key: bytes | None, chained: Any
    ) -> Any:
        """With a shared key, the run shows its progress to ``dispel4py status``
        (``run_status.py``): the snapshot's task counts come from the reports, first."""
        if key is None:  # nobody else has the key: nobody could read the snapshot
            return chained
        from dispel4py.mappings.redis.run_status import StatusPublisher

        publisher = StatusPublisher(
            Signer(key),
            run.queues.names,
            self.name,
            coordinator,
            lambda: (pool.local, len(pool.remote)),
        )
        run.publish_status_with(publisher.publish)
        return lambda worker, kind, body: (
            publisher.on_report(worker, kind, body) or chained(worker, kind, body)
        )

    def _meta(self, plan: Plan, local: int, claim_ms: int, deliveries: int, tuning: Tuning) -> dict[str, Any]:
        """What a worker joining from another host needs besides the plan (signed in ``info``)."""
        return {
            "version": 1,
            "mapping": self.name,
            "slots": plan.num_workers,
            "local": local,
            "claim_idle_ms": claim_ms,
            "max_deliveries": deliveries,
            "ttl_s": DEFAULT_TTL_S,
            "on_error": self.options.get("on_error"),
            "tuning": dataclasses.replace(tuning, live_s=0.0),
            "module_files": module_files(plan),
            "code": code_digest(module_files(plan)),  # a worker running other code is refused
            "order": list(plan.order),
            "driver": f"{socket.gethostname()} pid {os.getpid()}",
            "started": time.time(),
        }

    def _shared_plan(self, plan: Plan, key: bytes | None) -> bytes | None:
        """The plan for workers on other hosts, when they can have the key (a key file or
        DISPEL4PY_KEY); with a key nobody else knows, nobody else can join anyway."""
        if key is None:
            return None
        try:
            return plan_blob(plan)
        except Exception as exc:
            _log.warning("workers on other hosts cannot join this run: %s", exc)
            return None

    def _fleet_scaler(self, plan: Plan, queues: Any, coordinator: Coordinator, pool: Any) -> Any:
        return None


def _ticks(scaler: Any, watch: NeedsWatch, size: FleetSize) -> Any:
    """The driver's tick: the autoscaler's (if any), the placement watch's, the fleet's size."""

    def tick() -> None:
        if scaler is not None:
            scaler.tick()
        watch.tick()
        size.tick()

    return tick


class DynAutoRedisMapping(DynRedisMapping):
    name = "dyn_auto_redis"
    summary = "dynamic Redis work queue with autoscaling"
    autoscale = True

    @classmethod
    def add_arguments(cls, parser: Any) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "-thr",
            "--idle_time",
            type=int,
            default=1000,
            help="milliseconds the workers (the driver's and the agents') must be idle before one fewer "
            "takes shared tasks "
            "(the original's flag; default 1000)",
        )

    def _fleet_scaler(self, plan: Plan, queues: Any, coordinator: Coordinator, pool: Any) -> Any:
        """The whole fleet's autoscaler (``redis/fleet_scaling.py``): the driver's workers and
        every worker that joins, with the original's idle time."""
        idle_ms = self.options.get("idle_time")
        if not isinstance(idle_ms, int) or idle_ms < 0:
            raise UsageError(f"-thr/--idle_time must be a number of milliseconds (got {idle_ms!r})")
        # a writer waits (helps) once a queue holds --credits tasks per worker slot of the plan,
        # which -n 0 makes small: the backlog that means "more workers" must stay below it
        limit = Tuning.from_options(self.options).credits * max(1, plan.num_workers)
        threshold = max(1, min(10, limit // 2))
        return FleetScaler(queues, coordinator, pool, self.local_workers(), idle_ms / 1000, threshold)


class HybridRedisMapping(DynRedisMapping):
    name = "hybrid_redis"
    summary = "Redis: stateful PEs pinned, stateless dynamic (same as dyn_redis)"


class RedisMapping(DynRedisMapping):
    name = "redis"
    summary = "the original's alias of hybrid_redis (same as dyn_redis)"
