"""Joining a Redis run in progress from any host (``dispel4py worker``), and leaving it.

The worker finds the run (``--run``, or the only run on the server signed with its key,
waiting up to ``--wait`` seconds for one to start), checks and loads the plan the driver
published (so every worker routes and groups exactly as the driver's), says ``hello``, and
runs the same dynamic engine as the driver's local workers: shared tasks of any PE, and
the pinned instances of a worker slot no local worker took (``-n 0`` on the driver). Its
PE logs and errors go to the driver. It leaves:

* when the run ends (exit 0);
* on SIGTERM, SIGINT (Ctrl-C) or SIGHUP alike (exit 0, one line, after a ``bye``: the
  tasks it was running go back to the queue; if it hosted pinned instances, the run fails,
  as their state is lost) — this is how an autoscaler (KEDA, ``docs/redis.md``) scales
  workers down;
* when the driver is gone (its liveness key expired; exit 1): its heartbeat process
  (``heartbeat.py``) sees it and sends SIGTERM, whatever signal dispositions the worker
  inherited, and kills it if a PE call keeps it from leaving.
"""

from __future__ import annotations

import dataclasses
import hmac
import importlib
import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from dispel4py.dynamic.signing import MAC_SIZE, Forged, Signer, load_key
from dispel4py.engine.loading import load_workflow
from dispel4py.engine.signals import Terminated
from dispel4py.errors import Dispel4PyError, TransportError, UsageError
from dispel4py.mappings.processes.worker_process import load_plan
from dispel4py.mappings.redis.audit import driver_token
from dispel4py.mappings.redis.code_digest import code_differences, code_digest
from dispel4py.mappings.redis.fleet import NOT_MY_SLOT, WorkerOffer, slot_check
from dispel4py.mappings.redis.keys import DRIVER_TTL_MS, Tampered
from dispel4py.mappings.redis.payloads import joined_payloads
from dispel4py.mappings.redis.queues import GROUP, RedisQueues, Reporter, RunNames, lost_error
from dispel4py.mappings.redis.scripts import REGISTER
from dispel4py.mappings.redis.server import check_server, connect, resolve_target
from dispel4py.mappings.redis.worker import RedisWorker

__all__ = ["join_run", "find_runs", "preload_worker_modules", "server_and_key"]

_log = logging.getLogger("dispel4py.worker")
_POLL_S = 0.5  # while waiting for a run to start


def join_run(
    options: Mapping[str, Any],
    offer: WorkerOffer | None = None,
    on_park: Callable[[bool], None] | None = None,
    found: tuple[dict[str, Any], bytes] | None = None,
) -> int:
    """Join the run that ``options`` name (the ``dispel4py worker`` options by their long
    names) and serve it until it ends; the exit code. ``offer``: this worker's agent and
    tags (a process of a host agent, ``redis/agent.py``), told to the driver in ``hello``;
    ``on_park``: called with True/False when the driver parks or wakes this worker;
    ``found``: the run's signed metadata and plan, as the host agent read and checked them
    (its processes do not read them again)."""
    target, signer = server_and_key(options)
    if found is not None:
        run_id, (meta, blob) = options["run"], found
    else:
        if not options.get("server_checked"):  # a host agent checked it once for its processes
            check_server(target, lean=True)
        client = connect(target, socket_timeout=10, name="dispel4py-worker-join", lean=True)
        try:
            wait_s = float(options.get("wait", 30.0))
            run_id, meta, blob = _find_run(client, signer, options.get("run"), wait_s)
        finally:
            client.close()
    if options.get("workflow"):
        load_workflow(options["workflow"], options.get("attr"))  # makes its module importable under its name
    return _serve(
        target,
        signer,
        run_id,
        meta,
        blob,
        bool(options.get("allow_code_mismatch")),
        offer or WorkerOffer(),
        on_park,
    )


def preload_worker_modules() -> None:
    """Import what joining imports on first use (``dill``, to load the plan), so that a host
    agent's processes, forked from it, inherit it instead of each importing it as a run starts
    (a quarter of a second per process on a busy host, before the first task)."""
    importlib.import_module("dill")


def server_and_key(options: Mapping[str, Any]) -> tuple[Any, Signer]:
    """The server and the run key that ``options`` name; a usage error if either is missing."""
    target = resolve_target(options)
    if target is None:
        raise UsageError(
            "name the run's Redis server: --redis-url redis://host:port/db (or -ri/-rp, REDIS_HOST)"
        )
    try:
        key = load_key(options.get("key_file"), create=False)
    except (OSError, ValueError) as exc:
        raise UsageError(f"--key-file: {exc}") from exc
    if key is None:
        raise UsageError("the run key is needed: --key-file FILE (the driver's) or DISPEL4PY_KEY")
    return target, Signer(key)


def _find_run(
    client: Any, signer: Any, run_id: str | None, wait_s: float
) -> tuple[str, dict[str, Any], bytes]:
    """The run to join: its id, its signed metadata and its plan (waiting for it to start)."""
    deadline = time.monotonic() + wait_s
    while True:
        runs = _runs(client, signer, run_id)
        if len(runs) > 1:
            raise UsageError(
                f"several runs are in progress: {', '.join(sorted(runs))}; choose one with --run"
            )
        if runs:
            [(found, (meta, blob))] = runs.items()
            if blob is None:
                raise UsageError(
                    f"run {found} cannot take workers from other hosts: its driver has no shareable key "
                    "(start it with --key-file FILE or DISPEL4PY_KEY) or its plan could not be pickled"
                )
            return found, meta, blob
        if time.monotonic() >= deadline:
            which = f"run {run_id} is not" if run_id else "no run signed with this key is"
            raise UsageError(f"{which} in progress on this server (waited {wait_s:g} s)")
        time.sleep(_POLL_S)


def find_runs(
    client: Any, signer: Any, run_id: str | None = None
) -> dict[str, tuple[dict[str, Any], bytes | None]]:
    """The runs in progress signed with ``signer``'s key (or only ``run_id``): id ->
    (signed metadata, plan or None)."""
    return _runs(client, signer, run_id)


def _runs(client: Any, signer: Any, run_id: str | None) -> dict[str, tuple[dict[str, Any], bytes | None]]:
    infos = [f"d4py:{run_id}:info"] if run_id else list(client.scan_iter(match="d4py:*:info", count=1000))
    found = {}
    for info in infos:
        name = info.decode() if isinstance(info, bytes) else info
        sealed, plan = client.hmget(name, ["meta", "plan"])
        if not sealed:
            continue
        try:
            meta = signer.loads(name.encode(), sealed[:MAC_SIZE], sealed[MAC_SIZE:])
        except Forged:
            if run_id:
                raise UsageError(
                    f"run {run_id} was not signed with this key (--key-file/DISPEL4PY_KEY)"
                ) from None
            continue  # another user's run
        blob = None
        if plan:
            blob = signer.check(name.encode() + b"plan", plan[:MAC_SIZE], plan[MAC_SIZE:])
        found[name.split(":")[1]] = (meta, blob)
    return found


def _serve(
    target: Any,
    signer: Any,
    run_id: str,
    meta: dict[str, Any],
    blob: bytes,
    allow_mismatch: bool,
    offer: WorkerOffer,
    on_park: Callable[[bool], None] | None,
) -> int:
    try:
        plan = load_plan(blob, meta["module_files"])
    except Exception as exc:
        raise UsageError(
            f"cannot load the plan of run {run_id}: {type(exc).__name__}: {exc}; give the workflow "
            "file as an argument if it is not at the same path here"
        ) from exc
    _check_code(run_id, meta, allow_mismatch)
    names = RunNames(run_id, plan)
    queues = _RemoteQueues(
        plan,
        target,
        names,
        signer.for_run(meta["run_nonce"]),
        claim_idle_ms=meta["claim_idle_ms"],
        max_deliveries=meta["max_deliveries"],
        dead_letter=meta.get("on_error") == "dead-letter",
    )
    queues.offers = offer.tags  # type: ignore[attr-defined] # read by RedisWorker
    queues.payloads = joined_payloads(meta, plan)  # this host's shared memory, if the driver's
    queues.lean = True  # its own client (lean_client.py): a quarter of the CPU of joining
    queues.open_client("dispel4py-worker", load_scripts=False)  # the driver loaded them
    _check_driver(queues, run_id)
    worker = _register(queues, plan, meta, offer)
    if worker == -2:
        raise Tampered(
            f"the worker id given by {names.workers} on Redis at {target.where} is in use: someone "
            f"set it back; run {run_id} takes no more workers"
        )
    if worker < 0:
        _log.info("run %s has ended", run_id)
        return 0
    host = socket.gethostname()
    queues.start_worker(worker, f"dispel4py-w{worker}", remote=True)
    _route_logging(queues)
    offer = dataclasses.replace(offer, host=offer.host or host)
    queues.send_now(("hello", (worker, host, os.getpid(), offer, queues.payloads.maps_arena)))
    slot = " (hosting pinned instances)" if plan.hosted(worker) else ""
    _log.info("worker %d joined run %s on Redis at %s%s", worker, run_id, target.where, slot)
    where = f"worker {worker}, pid {os.getpid()} on {host}"
    engine = RedisWorker(
        plan, worker, queues, Reporter(queues, meta["tuning"].streaming), tuning=meta["tuning"], where=where
    )
    engine.on_park = on_park
    try:
        engine.run()
    except Terminated as exc:
        if queues.driver_gone():
            return queues.gone_exit(run_id)
        queues.send_now(("bye", worker))
        _log.info("worker %d left run %s (%s); its tasks go back to the queue", worker, run_id, exc)
        return 0
    except Dispel4PyError as exc:
        if isinstance(exc, TransportError) and queues.run_ended():  # deleted as this worker read
            _log.info("run %s has ended", run_id)
            return 0
        queues.send_now(("error", exc))
        raise
    except Exception as exc:
        error = lost_error(target, exc)
        if error is exc:
            queues.send_now(("error", TransportError(f"worker {worker} failed: {type(exc).__name__}: {exc}")))
            raise
        if queues.run_ended():
            _log.info("run %s has ended", run_id)
            return 0
        raise error from exc
    finally:
        engine.close()
        queues.stop_worker()
        queues.payloads.codec.close()
    _log.info("run %s has ended; worker %d leaves", run_id, worker)
    return 0


def _check_driver(queues: Any, run_id: str) -> None:
    """Refuse metadata that is not the running driver's: an older run's (same run id, same
    key) written over ``info`` has another nonce, and this worker would drop every task it
    takes as forged. The driver's liveness key holds a MAC under the nonce that only the
    running driver can make (``audit.driver_token``); missing, the driver is gone, which
    the heartbeat process sees."""
    names = queues.names
    token = queues.client.get(names.driver)
    if token is None or hmac.compare_digest(token, driver_token(queues.signer, names)):
        return
    raise Tampered(
        f"the metadata of run {run_id} in {names.info} on Redis at {queues.target.where} is not its "
        f"running driver's (the driver's liveness key {names.driver} was signed for another run): someone "
        "wrote an older run's metadata over it; not joining"
    )


def _register(queues: Any, plan: Any, meta: dict[str, Any], offer: WorkerOffer) -> int:
    """This worker's id in the run (``REGISTER``). With PEs that require tags, a worker does
    not take a slot hosting pinned instances whose tags it lacks: it waits until a worker
    that offers them has taken that slot (``fleet.slot_check``)."""
    names = queues.names
    check, acceptable = slot_check(plan, offer.tags)
    while True:
        worker = int(
            queues.client.eval(
                check + REGISTER,
                2,
                names.info,
                names.workers,
                names.prefix,
                GROUP,
                meta["ttl_s"],
                max(1000, queues.claim_idle_ms),
                meta["local"],
                meta["slots"],
                acceptable,
            )
        )
        if worker != NOT_MY_SLOT:
            return worker
        time.sleep(_POLL_S)


def _check_code(run_id: str, meta: dict[str, Any], allow_mismatch: bool) -> None:
    """Refuse to join with a workflow whose source differs from the driver's: the run
    would mix the results of two programs (``--allow-code-mismatch``: a warning)."""
    loaded = [(name, getattr(sys.modules.get(name), "__file__", "")) for name, _ in meta["module_files"]]
    differences = code_differences(meta.get("code", {}), code_digest(loaded))
    if not differences:
        return
    text = f"the workflow's source here differs from the driver's of run {run_id}: " + "; ".join(differences)
    if not allow_mismatch:
        raise UsageError(f"{text}; use the same files, or join anyway with --allow-code-mismatch")
    _log.warning("%s; joining anyway (--allow-code-mismatch): results may mix both versions", text)


class _RemoteQueues(RedisQueues):
    """The queues of a worker on another host: it notices when the driver is gone (its
    heartbeat process watches the driver's liveness key and sends SIGTERM)."""

    def driver_gone(self) -> bool:
        return self.heart is not None and self.heart.driver_gone()

    def run_ended(self) -> bool:
        """Whether the driver deleted the run (its ``info`` key first); unknown is not ended."""
        try:
            return not self.client.exists(self.names.info)
        except Exception:
            return False

    def gone_exit(self, run_id: str) -> int:
        if self.run_ended():  # it ended the run as this worker was told it is gone
            _log.info("run %s has ended", run_id)
            return 0
        _log.error(
            "dispel4py worker: error: the driver of run %s is gone (no sign of life for %g s); leaving",
            run_id,
            DRIVER_TTL_MS / 1000,
        )
        self.payloads.remove_orphaned_arena()  # the driver cannot any more
        return 1


def _route_logging(queues: Any) -> None:
    """The engine's and PEs' log records go to the driver, which prints them."""

    class ToDriver(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            try:
                queues.send_now(("log", (record.name, record.levelno, record.getMessage())))
            except Exception:  # the run is ending; the record is not worth an error
                pass

    root = logging.getLogger("dispel4py")
    root.handlers[:] = [ToDriver()]
    root.propagate = False
    root.setLevel(logging.INFO)
    logging.getLogger("dispel4py.worker").propagate = False
