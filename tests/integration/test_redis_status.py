"""``dispel4py status`` (cli/status.py, mappings/redis/run_status.py) against a real
``redis-server``: a real driver's run in progress is shown with its PEs, and published agent
records with it; after the run nothing of it is; what is not signed with the key is counted,
never shown; an unreachable server, a wrong key and bad flags are clear errors; ``--watch``
redraws until Ctrl-C and exits 0.

The run stays in progress until the test opens a gate (``workflows/gated.py``): no clock
decides what the test sees."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import socket
import subprocess
import time
from dataclasses import asdict
from pathlib import Path

import pytest
from _helpers import WORKFLOWS, cli
from redis_support import redis_server_fixture  # noqa: F401 - the fixture

from dispel4py.cli.command import main
from dispel4py.dynamic.signing import Signer
from dispel4py.mappings.redis.agents import AGENT_PREFIX, AgentRecord, new_agent_id, publish_agent
from dispel4py.mappings.redis.run_status import PEStatus, RunStatus, publish_status, status_key

pytestmark = pytest.mark.timeout(90)
KEY = b"s" * 32
OTHER = b"o" * 32


@pytest.fixture
def client(redis_server):
    with redis_server.client() as c:
        c.flushall()
        yield c


@pytest.fixture
def key_file(tmp_path: Path) -> str:
    path = tmp_path / "run.key"
    path.write_bytes(KEY + b"\n")
    path.chmod(0o600)
    return str(path)


def _agent(**changes) -> AgentRecord:
    fields = {"agent_id": new_agent_id(), "host": "h-gpu", "pid": 7, "tags": ["gpu"], "max": 4, "active": 2}
    return AgentRecord(**{**fields, "parked": 1, "served": 3, "started": time.time() - 5, **changes})


def _status(capsys, url: str, key_file: str, *extra: str) -> tuple[int, str, str]:
    code = main(["status", "--redis-url", url, "--key-file", key_file, *extra])
    out, err = capsys.readouterr()
    return code, out, err


def _doc(capsys, url: str, key_file: str) -> dict:
    code, out, err = _status(capsys, url, key_file, "--json")
    assert code == 0, err
    return json.loads(out)


def test_a_run_in_progress_is_shown_then_nothing_of_it(
    redis_server, client, key_file, tmp_path, capsys
) -> None:
    """About 4 s: a driver on dyn_redis -n 2 held open by a gate, two agents (one of
    another key) and junk under the agents' prefix."""
    agent = _agent(runs=["galaxy"])
    publish_agent(client, Signer(KEY), agent)
    publish_agent(client, Signer(OTHER), _agent(host="stranger"))
    client.set(AGENT_PREFIX + "junk", b"x" * 40)
    gate = tmp_path / "gate"
    env = {**os.environ, "D4PY_GATE": str(gate), "D4PY_GATE_ITEMS": "20"}
    command = cli("dyn_redis", str(WORKFLOWS / "gated.py"), "-n", "2", "--redis-url", redis_server.url)
    driver = subprocess.Popen(
        [*command, "--key-file", key_file, "--run", "galaxy"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        doc = _wait_for_run(capsys, redis_server.url, key_file, driver)
        run = doc["runs"][0]
        assert (run["run"], run["mapping"], run["workers"]) == (
            "galaxy",
            "dyn_redis",
            {"local": 2, "joined": 0},
        )
        assert [pe["pe"] for pe in run["pes"]] == ["Numbers0", "Gate1", "Total2"]
        assert run["backlog"] >= 1 and not any(pe["ended"] for pe in run["pes"][1:])
        assert [(a["host"], a["tags"], a["active"], a["parked"], a["runs"]) for a in doc["agents"]] == [
            ("h-gpu", ["gpu"], 2, 1, ["galaxy"])
        ]
        assert doc["not_shown"] == {"runs": 0, "agents": 2}
        code, text, _ = _status(capsys, redis_server.url, key_file)
        assert code == 0
        for shown in ("1 run(s) in progress", "galaxy", "dyn_redis", "Gate1", "h-gpu", "gpu", "1 agent(s)"):
            assert shown in text, text
        assert "stranger" not in text
        assert "2 record(s) not signed with this key were not shown" in text
    finally:
        gate.touch()
        out, err = driver.communicate(timeout=60)
    assert driver.returncode == 0, err
    assert "'total': [(20, 190)]" in out
    assert _doc(capsys, redis_server.url, key_file)["runs"] == []
    assert redis_server.run_keys() == []
    client.delete(*client.keys(AGENT_PREFIX + "*"))  # the agents leave too
    code, text, _ = _status(capsys, redis_server.url, key_file)
    assert code == 0 and "no run in progress" in text and "no agent" in text


def _wait_for_run(capsys, url: str, key_file: str, driver: subprocess.Popen) -> dict:
    """The first status that shows the run with work queued at its gate."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert driver.poll() is None, driver.communicate()
        doc = _doc(capsys, url, key_file)
        if doc["runs"] and doc["runs"][0]["pes"][1]["backlog"] >= 1:
            return doc
        time.sleep(0.1)
    raise AssertionError("the run was never shown in progress")


def _published_run() -> RunStatus:
    pes = [PEStatus("Src0", 1, 1, 0.5, True, ["d4py:r1:q:Src0:0"]), PEStatus("Work1", 5, 2, 2.5, False, [])]
    return RunStatus("r1", "dyn_auto_redis", "h1 pid 9", 12.5, 2, 1, pes)


def test_json_shape_is_stable(redis_server, client, key_file, capsys) -> None:
    """Under 1 s: every field of the documented shape (docs/redis.md), with its type."""
    publish_status(client, Signer(KEY), _published_run())
    client.xadd("d4py:r1:q:Src0:0", {"t": b"1"})  # one task queued: the backlog is read from the stream
    publish_agent(client, Signer(KEY), _agent(runs=["r1"]))
    doc = _doc(capsys, redis_server.url, key_file)
    assert set(doc) == {"version", "server", "time", "runs", "agents", "not_shown", "stale"}
    assert doc["version"] == 1 and doc["server"] == f"127.0.0.1:{redis_server.port}"
    (run,) = doc["runs"]
    assert 12.5 <= run.pop("age_s") <= 17.5  # the snapshot's age, plus its own (at most 5 s)
    assert run == {
        "run": "r1",
        "mapping": "dyn_auto_redis",
        "driver": "h1 pid 9",
        "workers": {"local": 2, "joined": 1},
        "backlog": 1,
        "items_per_s": 3.0,
        "pes": [
            {"pe": "Src0", "items": 1, "tasks": 1, "items_per_s": 0.5, "ended": True, "backlog": 1},
            {"pe": "Work1", "items": 5, "tasks": 2, "items_per_s": 2.5, "ended": False, "backlog": 0},
        ],
    }
    (agent,) = doc["agents"]
    assert set(agent) == {
        "agent",
        "host",
        "pid",
        "tags",
        "active",
        "parked",
        "min",
        "max",
        "runs",
        "served",
        "age_s",
    }
    assert (agent["host"], agent["runs"], agent["served"], agent["max"]) == ("h-gpu", ["r1"], 3, 4)
    assert 4 <= agent["age_s"] < 600
    assert doc["not_shown"] == {"runs": 0, "agents": 0} and doc["stale"] == {"runs": 0, "agents": 0}


def test_forged_copied_and_other_key_records_are_counted_not_shown(
    redis_server, client, key_file, capsys
) -> None:
    """Under 1 s: a run snapshot of another key, junk, a good snapshot copied to another run's
    key, an agent record copied to another agent's key."""
    publish_status(client, Signer(KEY), _published_run())
    good = client.get(status_key("r1"))
    client.delete(status_key("r1"))
    client.set(status_key("copy"), good)
    client.set(status_key("junk"), b"{}" * 30)
    other = _published_run()
    other.run = "theirs"
    publish_status(client, Signer(OTHER), other)
    agent = _agent()
    publish_agent(client, Signer(KEY), agent)
    client.set(AGENT_PREFIX + "copied", client.get(agent.key))
    doc = _doc(capsys, redis_server.url, key_file)
    assert doc["runs"] == [] and [a["agent"] for a in doc["agents"]] == [agent.agent_id]
    assert doc["not_shown"] == {"runs": 3, "agents": 1}
    _, text, _ = _status(capsys, redis_server.url, key_file)
    assert "4 record(s) not signed with this key were not shown" in text and "theirs" not in text


def test_an_old_signed_record_written_back_is_not_shown(redis_server, client, key_file, capsys) -> None:
    """Under 1 s: a run's snapshot and an agent's record, genuinely signed a minute ago (a
    stranger keeps copies and writes them back after the run and the agent are gone)."""
    old = time.time() - 60
    run = _published_run()
    run.updated = old
    data = json.dumps(asdict(run), sort_keys=True).encode()
    client.set(run.key, Signer(KEY).mac(b"run-status", data, run.key.encode()) + data)
    agent = _agent(updated=old)
    data = json.dumps(asdict(agent), sort_keys=True).encode()
    client.set(agent.key, Signer(KEY).mac(b"agent", data, agent.key.encode()) + data)
    doc = _doc(capsys, redis_server.url, key_file)
    assert (doc["runs"], doc["agents"]) == ([], [])
    assert doc["stale"] == {"runs": 1, "agents": 1} and doc["not_shown"] == {"runs": 0, "agents": 0}
    code, text, _ = _status(capsys, redis_server.url, key_file)
    assert code == 0 and "2 record(s) signed more than 30 s ago were not shown" in text


def test_the_wrong_key_is_an_error(redis_server, client, tmp_path, capsys) -> None:
    """Under 1 s: records exist and none is signed with the key given: exit 1, said."""
    publish_agent(client, Signer(KEY), _agent())
    publish_status(client, Signer(KEY), _published_run())
    wrong = tmp_path / "wrong.key"
    wrong.write_bytes(OTHER)
    wrong.chmod(0o600)
    code, out, err = _status(capsys, redis_server.url, str(wrong))
    assert code == 1 and out == ""
    assert f"none of the 2 dispel4py record(s) on Redis at 127.0.0.1:{redis_server.port} is signed" in err
    assert "--key-file" in err


def test_an_empty_server_is_not_a_wrong_key(redis_server, client, key_file, capsys) -> None:
    code, out, _ = _status(capsys, redis_server.url, key_file)
    assert code == 0 and "no run in progress" in out and "no agent" in out


def test_a_server_that_cannot_be_reached_is_an_error_naming_it(key_file, capsys) -> None:
    """Under 1 s: nothing listens on the port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        code, out, err = _status(capsys, f"redis://127.0.0.1:{port}/0", key_file)
    assert code == 1 and out == ""
    assert err.startswith(f"dispel4py status: error: cannot connect to Redis at 127.0.0.1:{port}")


def test_a_server_that_does_not_answer_is_an_error_within_its_timeout(key_file, capsys) -> None:
    """About 2 s: a port that accepts connections and never answers (the 2 s timeout)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        port = s.getsockname()[1]
        started = time.monotonic()
        code, out, err = _status(capsys, f"redis://127.0.0.1:{port}/0", key_file)
        took = time.monotonic() - started
    assert code == 1 and out == ""
    assert f"Redis at 127.0.0.1:{port} did not answer within 2 s" in err
    assert took < 30, took  # a hang guard only: the 2 s are the client's timeout


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--watch", "0"], "--watch: must be more than 0 seconds"),
        (["--watch", "soon"], "--watch: must be a number of seconds"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--redis-url", "http://x"], "--redis-url must start with redis://"),
    ],
)
def test_bad_flags_exit_2(redis_server, key_file, capsys, flags, said) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["status", "--redis-url", redis_server.url, "--key-file", key_file, *flags])
    assert exit_info.value.code == 2
    assert said in capsys.readouterr().err


def test_no_server_no_key_or_an_open_key_file_exit_2(redis_server, tmp_path, capsys, monkeypatch) -> None:
    for name in ("REDIS_HOST", "REDIS_PORT", "DISPEL4PY_KEY"):
        monkeypatch.delenv(name, raising=False)
    open_key = tmp_path / "open.key"
    open_key.write_bytes(KEY)
    open_key.chmod(0o644)
    for argv, said in (
        (["status"], "name the server: --redis-url URL"),
        (["status", "--redis-url", redis_server.url], "--key-file FILE or DISPEL4PY_KEY"),
        (["status", "--redis-url", redis_server.url, "--key-file", str(open_key)], "chmod 600"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        assert said in capsys.readouterr().err


def test_watch_redraws_in_place_until_ctrl_c(redis_server, client, key_file) -> None:
    """About 2 s: on a terminal (a pty), frames are drawn over each other line by line;
    Ctrl-C ends it with exit 0 and the cursor shown again."""
    publish_agent(client, Signer(KEY), _agent())
    master, slave = pty.openpty()
    command = cli("status", "--redis-url", redis_server.url, "--key-file", key_file, "--watch", "0.2")
    process = subprocess.Popen(command, stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    try:
        screen = _read_until(master, lambda text: text.count("\x1b[H") >= 2)
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=30)
        screen += _read_rest(master)
        os.close(master)
        err = process.stderr.read().decode() if process.stderr else ""
        if process.stderr:
            process.stderr.close()
    assert code == 0, err
    assert screen.count("\x1b[2J") == 1  # the screen is cleared once, not per frame
    assert "h-gpu" in screen and "\x1b[K" in screen and screen.endswith("\x1b[?25h")


def test_watch_json_is_one_document_per_line(redis_server, client, key_file) -> None:
    """About 2 s: not a terminal, with --json: JSON lines; Ctrl-C: exit 0."""
    publish_agent(client, Signer(KEY), _agent())
    command = cli(
        "status", "--redis-url", redis_server.url, "--key-file", key_file, "--watch", "0.1", "--json"
    )
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [process.stdout.readline() for _ in range(2)] if process.stdout else []
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    for line in [*lines, *out.splitlines()]:
        assert json.loads(line)["agents"][0]["host"] == "h-gpu"


def _read_until(fd: int, done, within: float = 30.0) -> str:
    text, deadline = "", time.monotonic() + within
    while not done(text):
        assert time.monotonic() < deadline, f"the screen so far: {text!r}"
        if select.select([fd], [], [], 0.5)[0]:
            text += os.read(fd, 65536).decode(errors="replace")
    return text


def _read_rest(fd: int) -> str:
    text = ""
    while select.select([fd], [], [], 0.5)[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the other side closed
            break
        if not chunk:
            break
        text += chunk.decode(errors="replace")
    return text
