"""``service`` mode: records POSTed to an S-ProvFlow repository (here a local HTTP server
the test starts on a free loopback port); a repository that refuses, fails or stalls gives
one warning per process and the records go to files instead: no hang, no lost record."""

from __future__ import annotations

import json
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from _helpers import cli, run
from prov_support import records

pytestmark = pytest.mark.timeout(120)

WC = "dispel4py.examples.graph_testing.word_count"


class Repository(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, status: int) -> None:
        self.status = status
        self.posts: list[tuple[str, dict[str, str], list[dict]]] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/workflowexecutions/insert"


class _Handler(BaseHTTPRequestHandler):
    server: Repository

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        (prov,) = urllib.parse.parse_qs(body)["prov"]
        if self.server.status == 200:
            self.server.posts.append((self.path, dict(self.headers), json.loads(prov)))
        self.send_response(self.server.status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def repository(request) -> Iterator[Repository]:
    server = Repository(getattr(request, "param", 200))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def service_config(tmp_path: Path, **extra: object) -> str:
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"s-prov:save-mode": "service", "s-prov:workflowName": "wc", **extra}))
    return str(path)


@pytest.mark.parametrize("mapping", [("simple",), ("multi", "-n", "3")], ids=lambda m: m[0])
def test_batches_are_posted_with_the_bearer_token(repository, tmp_path, mapping) -> None:
    args = ["-i", "5", "--provenance-config", service_config(tmp_path), "--provenance-bulk-size", "2"]
    flags = ["--provenance-repository-url", repository.url, "--provenance-bearer-token", "tok3n"]
    done = run(cli(*mapping, WC, *args, *flags))
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr.lower()
    posted = [r for _, _, batch in repository.posts for r in batch]
    assert all(len(batch) <= 2 for _, _, batch in repository.posts)
    assert {path for path, _, _ in repository.posts} == {"/workflowexecutions/insert"}
    assert {h["Authorization"] for _, h, _ in repository.posts} == {"Bearer tok3n"}
    assert {h["Content-Type"] for _, h, _ in repository.posts} == {"application/x-www-form-urlencoded"}
    assert sorted(r["type"] for r in posted) == ["lineage"] * 10 + ["workflow_run"]


def _stalled_port() -> tuple[socket.socket, int]:
    """A port that takes connections (the kernel's backlog) and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    return listener, listener.getsockname()[1]


@pytest.mark.parametrize("repository", [503], indirect=True)
@pytest.mark.parametrize("mapping", [("simple",), ("multi", "-n", "3")], ids=lambda m: m[0])
def test_a_refusing_repository_is_one_warning_and_nothing_is_lost(repository, tmp_path, mapping) -> None:
    folder = tmp_path / "kept"
    args = ["-i", "5", "--provenance-config", service_config(tmp_path), "--provenance-path", str(folder)]
    done = run(cli(*mapping, WC, *args, "--provenance-repository-url", repository.url))
    assert done.returncode == 0, done.stderr
    assert "Outputs: {'WordCounter1'" in done.stdout
    warnings = [x for x in done.stderr.splitlines() if "cannot take the records (HTTP 503" in x]
    assert len(warnings) == 1 and str(folder) in warnings[0]  # the driver's: the workers write files at once
    assert sorted(r["type"] for r in records(folder)) == ["lineage"] * 10 + ["workflow_run"]


def test_a_stalling_repository_times_out_and_nothing_is_lost(tmp_path) -> None:
    listener, port = _stalled_port()
    with listener:
        config = service_config(tmp_path, timeout_s=1)
        args = ["-i", "5", "--provenance-config", config, "--provenance-path", str(tmp_path / "kept")]
        url = f"http://127.0.0.1:{port}/insert"
        done = run(cli("simple", WC, *args, "--provenance-repository-url", url), timeout=60)
    assert done.returncode == 0, done.stderr
    (warning,) = [x for x in done.stderr.splitlines() if "cannot take the records" in x]
    assert "timed out" in warning
    assert sorted(r["type"] for r in records(tmp_path / "kept")) == ["lineage"] * 10 + ["workflow_run"]


def test_no_server_at_all(tmp_path) -> None:
    listener, port = _stalled_port()
    listener.close()  # nobody listens there now: connection refused
    args = [
        "-i",
        "2",
        "--provenance-config",
        service_config(tmp_path),
        "--provenance-path",
        str(tmp_path / "k"),
    ]
    done = run(cli("simple", WC, *args, "--provenance-repository-url", f"http://127.0.0.1:{port}/x"))
    assert done.returncode == 0, done.stderr
    assert "Connection refused" in done.stderr
    assert len(records(tmp_path / "k")) == 5
