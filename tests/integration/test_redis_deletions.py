"""Entries deleted by a client without the run key (``XDEL``, ``XTRIM``) and an older run's
metadata written over ``info``: one clear error, never a hang (docs/redis.md, "Threat
model"; the driver's audit, ``mappings/redis/audit.py``). Real ``redis-server``, real
processes. Each test takes 3-8 s on a quiet machine.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from _helpers import WORKFLOWS, WatchedRun, cli
from redis_support import RedisServer, redis_server_fixture  # noqa: F401 - the fixture

from dispel4py.dynamic.signing import MAC_SIZE, Signer

pytestmark = pytest.mark.timeout(180)

MARKS = str(WORKFLOWS / "redis_marks.py")
RESULTS = str(WORKFLOWS / "redis_results.py")


def marked(tmp_path: Path, url: str, run_id: str, *args: str, items: int = 100, sleep_s: float = 0.03):
    """The marks workflow (source, pinned -> Slow1, shared -> Total2, pinned) on dyn_redis."""
    folder = tmp_path / f"marks-{run_id}"
    folder.mkdir(parents=True)
    env = {"D4PY_MARK_DIR": str(folder), "D4PY_MARK_ITEMS": str(items), "D4PY_MARK_S": str(sleep_s)}
    command = cli("dyn_redis", MARKS, "--redis-url", url, "--run", run_id, *args)
    return WatchedRun(tmp_path / f"run-{run_id}", command, env=env)


def signed_ids(c, stream: str) -> list[bytes]:
    return [entry_id for entry_id, fields in c.xrange(stream) if b"m" in fields]


# the newest ARGV[1] signed entries of KEYS[1] that no worker has taken yet (after the
# group's last-delivered id), deleted in one step: a worker taking several tasks at once
# cannot take them between the reading of the ids and the XDEL (a taken task runs from
# the worker's memory, and deleting its entry then changes nothing); 0 while there are fewer
DELETE_QUEUED = """
local n, last = tonumber(ARGV[1]), '0-0'
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  for i = 1, #g, 2 do
    if g[i] == 'last-delivered-id' then last = g[i + 1] end
  end
end
local signed = {}
for _, e in ipairs(redis.call('XRANGE', KEYS[1], '(' .. last, '+')) do
  for i = 1, #e[2], 2 do
    if e[2][i] == 'm' then signed[#signed + 1] = e[1] end
  end
end
if #signed < n then return 0 end
for i = #signed - n + 1, #signed do redis.call('XDEL', KEYS[1], signed[i]) end
return n
"""


def delete_queued(watched: WatchedRun, c, stream: str, n: int) -> None:
    """Delete the newest ``n`` tasks of ``stream`` not taken yet, once there are ``n``."""
    watched.wait_until(lambda: c.eval(DELETE_QUEUED, 1, stream, n) == n, f"{n} queued tasks of {stream}")


def one_error(watched: WatchedRun, redis_server: RedisServer, pattern: str) -> None:
    """The run ended with exit 1 and one ``dispel4py: error:`` line matching ``pattern``,
    and left no key behind."""
    watched.watch_until_exit(within=120)
    err = watched.stderr()
    assert watched.process.returncode == 1, err
    errors = [line for line in err.splitlines() if line.startswith("dispel4py: error:")]
    assert len(errors) == 1 and re.search(pattern, errors[0]), err
    assert "Traceback" not in err, err
    assert redis_server.run_keys() == []


def test_xdel_of_queued_shared_tasks_is_one_clear_error(redis_server: RedisServer, tmp_path) -> None:
    queue = "d4py:xdel-shared:q:Slow1:0"
    watched = marked(tmp_path, redis_server.url, "xdel-shared", "-n", "2")
    try:
        with redis_server.client() as c:
            delete_queued(watched, c, queue, 3)
        one_error(
            watched,
            redis_server,
            r"3 task\(s\) of Slow1 are neither queued, running nor reported done: someone deleted "
            r"entries from d4py:xdel-shared:q:Slow1:0 or d4py:xdel-shared:reports .*\(XDEL/XTRIM\)",
        )
    finally:
        watched.kill_leftovers()


def test_xtrim_of_a_shared_queue_is_one_clear_error(redis_server: RedisServer, tmp_path) -> None:
    queue = "d4py:xtrim-shared:q:Slow1:0"
    watched = marked(tmp_path, redis_server.url, "xtrim-shared", "-n", "2")
    try:
        with redis_server.client() as c:
            watched.wait_until(lambda: signed_ids(c, queue)[5:], "queued tasks")
            assert c.xtrim(queue, maxlen=0, approximate=False) > 0  # the running ones too
        one_error(
            watched,
            redis_server,
            r"\d+ task\(s\) of Slow1 are neither queued, running nor reported done: someone deleted "
            r"entries from d4py:xtrim-shared:q:Slow1:0",
        )
    finally:
        watched.kill_leftovers()


def test_xdel_from_a_pinned_instances_stream_is_one_clear_error(redis_server: RedisServer, tmp_path) -> None:
    """Total2's worker is frozen while the others queue tasks for it; two are deleted."""
    queue = "d4py:xdel-pinned:q:Total2:0"
    watched = marked(tmp_path, redis_server.url, "xdel-pinned", "-n", "3")
    marks = tmp_path / "marks-xdel-pinned"
    try:
        total = watched.wait_until(lambda: list(marks.glob("total-*")), "Total2's worker")[0]
        host = int(total.name.split("-")[1])
        with redis_server.client() as c:
            watched.wait_until(lambda: c.xlen("d4py:xdel-pinned:q:Slow1:0") > 5, "queued tasks")
            os.kill(host, signal.SIGSTOP)
            try:
                delete_queued(watched, c, queue, 2)
            finally:
                os.kill(host, signal.SIGCONT)
        one_error(
            watched,
            redis_server,
            r"2 task\(s\) of Total2 are neither queued, running nor reported done: someone deleted "
            r"entries from d4py:xdel-pinned:q:Total2:0",
        )
    finally:
        watched.kill_leftovers()


def _unread_reports(watched: WatchedRun, c, reports: str, enough: int) -> list[bytes]:
    """With the driver stopped: the signed reports written after it stopped, once there
    are ``enough`` (its reader may get the first commit's reports in flight: skipped)."""
    last = c.xrevrange(reports, count=1)[0][0]
    os.kill(watched.process.pid, signal.SIGSTOP)
    after = lambda: [i for i in signed_ids(c, reports) if i > last]  # noqa: E731
    ids = watched.wait_until(
        lambda: after()[enough - 1 :] and after(), "reports written while the driver stopped"
    )
    return ids[4:]


def test_xdel_of_unread_reports_is_one_clear_error(redis_server: RedisServer, tmp_path) -> None:
    reports = "d4py:xdel-reports:reports"
    watched = marked(tmp_path, redis_server.url, "xdel-reports", "-n", "2")
    try:
        with redis_server.client() as c:
            watched.wait_until(lambda: signed_ids(c, reports)[3:], "the first reports")
            try:
                unread = _unread_reports(watched, c, reports, 8)
                assert c.xdel(reports, *unread[-3:]) == 3
            finally:
                os.kill(watched.process.pid, signal.SIGCONT)
        one_error(
            watched,
            redis_server,
            r"3 report\(s\) of workers? [\d, ]+ never reached the driver: someone deleted entries from "
            r"d4py:xdel-reports:reports .*\(XDEL/XTRIM\)",
        )
    finally:
        watched.kill_leftovers()


def test_xtrim_of_the_reports_stream_is_one_clear_error(redis_server: RedisServer, tmp_path) -> None:
    reports = "d4py:xtrim-reports:reports"
    watched = marked(tmp_path, redis_server.url, "xtrim-reports", "-n", "2")
    try:
        with redis_server.client() as c:
            watched.wait_until(lambda: signed_ids(c, reports)[3:], "the first reports")
            try:
                _unread_reports(watched, c, reports, 8)
                c.xtrim(reports, maxlen=0, approximate=False)
            finally:
                os.kill(watched.process.pid, signal.SIGCONT)
        one_error(
            watched,
            redis_server,
            r"\d+ report\(s\) of workers? [\d, ]+ never reached the driver: someone deleted entries from "
            r"d4py:xtrim-reports:reports",
        )
    finally:
        watched.kill_leftovers()


def test_deleted_reports_of_results_are_one_clear_error_though_the_run_would_not_wait(
    redis_server: RedisServer, tmp_path
) -> None:
    """Reports of results only (the task reports stay): the run does not wait for anything,
    and would end with results missing; the task report that lists them says so instead
    (signed: a stranger cannot hide it by setting the ``sent`` hash)."""
    run_id, key = "xdel-results", tmp_path / "run.key"
    reports = f"d4py:{run_id}:reports"
    env = {"D4PY_RESULTS_ITEMS": "120", "D4PY_RESULTS_S": "0.02"}
    command = cli(
        "dyn_redis",
        RESULTS,
        "-n",
        "2",
        "--redis-url",
        redis_server.url,
        "--run",
        run_id,
        "--key-file",
        str(key),
    )
    watched = WatchedRun(tmp_path / "run", command, env=env)
    try:
        with redis_server.client() as c:
            watched.wait_until(lambda: signed_ids(c, reports)[3:], "the first reports")
            signer = _run_signer(c, run_id, key.read_bytes().strip())
            try:
                unread = _unread_reports(watched, c, reports, 16)
                results = [i for i in unread if _kind(signer, c, reports, i) == "results"]
                assert results[1:], "no results among the unread reports"
                assert c.xdel(reports, *results[-2:]) == 2
            finally:
                os.kill(watched.process.pid, signal.SIGCONT)
        one_error(
            watched,
            redis_server,
            r"a report of results of worker \d never reached the driver: someone deleted entries from "
            rf"{reports} on Redis at .* \(XDEL/XTRIM\); the results would be incomplete",
        )
    finally:
        watched.kill_leftovers()


def _run_signer(c, run_id: str, key: bytes) -> Signer:
    info = f"d4py:{run_id}:info"
    sealed = c.hget(info, "meta")
    meta = Signer(key).loads(info.encode(), sealed[:MAC_SIZE], sealed[MAC_SIZE:])
    return Signer(key, meta["run_nonce"])


def _kind(signer: Signer, c, reports: str, entry_id: bytes) -> str:
    [(_, fields)] = c.xrange(reports, entry_id, entry_id)
    _, message, *_ = signer.loads(reports.encode(), fields[b"m"], fields[b"d"], fields[b"i"])
    return message[0]


def test_an_older_runs_metadata_over_info_is_refused_by_a_joining_worker(
    redis_server: RedisServer, tmp_path
) -> None:
    """Same run id, same key: the first run's ``info`` written over the second's. The worker
    that joins is refused (it would drop every task it took, as signed for another run);
    the run goes on with its own worker, exactly."""
    key = tmp_path / "run.key"
    info = "d4py:oldinfo:info"
    first = marked(tmp_path / "1", redis_server.url, "oldinfo", "-n", "1", "--key-file", str(key), items=10)
    with redis_server.client() as c:
        old = first.wait_until(lambda: c.hgetall(info), "the first run's metadata")
        first.watch_until_exit(within=60)
        assert first.process.returncode == 0, first.stderr()
        second = marked(
            tmp_path / "2", redis_server.url, "oldinfo", "-n", "1", "--key-file", str(key), items=100
        )
        try:
            second.wait_until(lambda: c.exists("d4py:oldinfo:driver"), "the second run")
            c.hset(info, mapping=old)
            command = cli(
                "worker", "--redis-url", redis_server.url, "--key-file", str(key), "--run", "oldinfo", MARKS
            )
            joiner = subprocess.run(command, capture_output=True, text=True, timeout=60)
            second.watch_until_exit(within=90)
        finally:
            second.kill_leftovers()
    assert joiner.returncode == 1, joiner.stderr
    assert (
        "the metadata of run oldinfo in d4py:oldinfo:info on Redis at" in joiner.stderr
        and "is not its running driver's" in joiner.stderr
        and "someone wrote an older run's metadata over it; not joining" in joiner.stderr
    ), joiner.stderr
    assert second.process.returncode == 0, second.stderr()
    assert "Outputs: {'Total2': {'total': [(100, 4950)]}}" in second.stdout()
    assert redis_server.run_keys() == []


CASE = str(Path(__file__).resolve().parent / "redis_audit_case.py")
AUDIT_CASES = int(os.environ.get("D4PY_AUDIT_CASES", "3"))


@pytest.mark.timeout(60 + AUDIT_CASES * 120)
def test_the_audit_never_fires_on_healthy_random_graphs(redis_server: RedisServer) -> None:
    """No tampering: random graphs on dyn_redis, dyn_auto_redis and hybrid_redis, with the
    audit every 10 ms whether the run is idle or not; every case is exact and the audit
    decided many times (``D4PY_AUDIT_SEED``/``D4PY_AUDIT_CASES`` replay or extend; about
    3 s a case)."""
    base = int(os.environ.get("D4PY_AUDIT_SEED", random.randrange(1_000_000)))
    print(f"audit seeds {base}..{base + AUDIT_CASES - 1} (D4PY_AUDIT_SEED={base})", flush=True)
    mappings = ("dyn_redis", "dyn_auto_redis", "hybrid_redis")
    decided = 0
    for n in range(AUDIT_CASES):
        seed, mapping = base + n, mappings[n % len(mappings)]
        done = subprocess.run(
            [sys.executable, CASE, str(seed), mapping, redis_server.url],
            capture_output=True,
            text=True,
            timeout=120,
        )
        print(f"seed {seed} on {mapping}: {done.stdout.strip()}", flush=True)
        assert done.returncode == 0 and done.stdout.startswith("EXACT"), (
            f"seed {seed} on {mapping}: {done.stdout}{done.stderr[-3000:]}"
        )
        decided += int(re.search(r"decided=(\d+)", done.stdout).group(1))
    assert decided >= AUDIT_CASES, f"the audit decided only {decided} times in {AUDIT_CASES} cases"
    assert redis_server.run_keys() == []
