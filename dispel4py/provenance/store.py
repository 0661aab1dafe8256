"""Where records go: the original's bulk JSON files (``file`` mode) or POSTs to an
S-ProvFlow repository (``service`` mode).

Records arrive already serialised (one JSON object each) and leave in batches of
``bulk_size``, so a process never holds more than one batch: memory is bounded however
long the run.

* **Files**: each batch is one file ``<path>/bulk_<host>-<pid>-<uuid1>`` holding a JSON
  list, as the original wrote them; it is written under a hidden name and renamed, so a
  reader never sees half a file.
* **Service**: each batch is POSTed as ``application/x-www-form-urlencoded`` ``prov=<JSON
  list>`` with ``Authorization: Bearer <token>`` when a token is given, each POST bounded by
  a timeout. A repository that refuses, fails or stalls is said once (a warning naming the
  URL and the error) and this process's records from that batch on are written as bulk
  files instead (to ``--provenance-path``, else ``./provenance-unsent``): the run goes on
  and no record is lost. The driver POSTs the ``workflow_run`` record before any worker
  starts; if that fails, the workers write files from the start (one warning in all).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import urllib.error
import urllib.parse
from typing import Any

from .bulkwriter import bulk_name, write_bulk_file

__all__ = ["FileStore", "BackgroundFileStore", "ServiceStore", "make_store", "UNSENT_DIR"]

_log = logging.getLogger("dispel4py.provenance")
UNSENT_DIR = "provenance-unsent"


class FileStore:
    """Batches of records as bulk files in ``path``."""

    def __init__(self, path: str, bulk_size: int) -> None:
        self.path = path
        self.bulk_size = bulk_size
        self.batch: list[str] = []
        self.files = 0
        os.makedirs(path, exist_ok=True)  # a remote worker's own folder, made on its host

    def add(self, record: str) -> None:
        batch = self.batch
        batch.append(record)
        if len(batch) >= self.bulk_size:
            self.flush()

    def flush(self) -> None:
        if not self.batch:
            return
        batch, self.batch = self.batch, []
        self.write_batch(batch)

    def put(self, records: list[str]) -> None:
        """A whole batch of records, written now (after those added one by one)."""
        self.flush()
        self.write_batch(records)

    def write_batch(self, batch: list[str]) -> None:
        write_bulk_file(self.path, bulk_name(os.getpid()), batch)
        self.files += 1

    def close(self) -> None:
        self.flush()


class ServiceStore:
    """Batches of records POSTed to ``url``; files under ``fallback`` once it fails."""

    def __init__(self, url: str, token: str | None, bulk_size: int, timeout_s: float, fallback: str) -> None:
        self.url = url
        self.token = token
        self.bulk_size = bulk_size
        self.timeout_s = timeout_s
        self.fallback_path = fallback
        self.fallback: FileStore | None = None
        self.batch: list[str] = []

    def add(self, record: str) -> None:
        if self.fallback is not None:
            self.fallback.add(record)
            return
        self.batch.append(record)
        if len(self.batch) >= self.bulk_size:
            self.flush()

    def flush(self) -> None:
        if not self.batch:
            return
        batch, self.batch = self.batch, []
        if self.fallback is not None:
            self.fallback.write_batch(batch)
            return
        try:
            self._post("[" + ",".join(batch) + "]")
        except (OSError, urllib.error.URLError, ValueError) as exc:
            self.fallback = FileStore(self.fallback_path, self.bulk_size)
            self.fallback.write_batch(batch)
            _log.warning(
                "provenance repository %s cannot take the records (%s); this process writes them "
                "to %s instead",
                self.url,
                _reason(exc),
                os.path.abspath(self.fallback_path),
            )

    def put(self, records: list[str]) -> None:
        """A whole batch of records, sent now (after those added one by one)."""
        self.flush()
        if self.fallback is not None:
            self.fallback.write_batch(records)
            return
        self.batch = records
        self.flush()

    def _post(self, body: str) -> None:
        import urllib.request  # its HTTP client (ssl, email) costs every command ~30 ms: service mode only

        data = urllib.parse.urlencode({"prov": body}).encode("utf-8")
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            response.read()

    def close(self) -> None:
        self.flush()
        if self.fallback is not None:
            self.fallback.close()


class BackgroundFileStore(FileStore):
    """A :class:`FileStore` whose whole batches (``put``) are written by a thread of its
    own, so that the kernel's part of writing them (a record is about 1 KB: a tiny-item
    run writes hundreds of MB) overlaps with the run: the thread holds no lock the run
    needs while the bytes go out. At most :data:`QUEUED` batches wait, so memory stays
    bounded and a slow disk slows the run down instead of filling memory. A failed write
    is raised by the next ``put`` or by ``close``, as the writing itself would have."""

    QUEUED = 2

    def __init__(self, path: str, bulk_size: int) -> None:
        super().__init__(path, bulk_size)
        self._queue: queue.Queue[list[str] | None] = queue.Queue(self.QUEUED)
        self._thread: threading.Thread | None = None  # started with the first batch
        self._error: BaseException | None = None

    def put(self, records: list[str]) -> None:
        self.flush()
        self._raise_error()
        if self._thread is None:
            self._thread = threading.Thread(target=self._write_all, name="d4py-prov-writer", daemon=True)
            self._thread.start()
        self._queue.put(records)

    def _write_all(self) -> None:
        while (batch := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self.write_batch(batch)
                except BaseException as exc:  # raised in the run's thread (put, close)
                    self._error = exc

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def close(self) -> None:
        super().close()
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        self._raise_error()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    if isinstance(exc, TimeoutError) or "timed out" in str(exc):
        return "no answer: timed out"
    return f"{type(exc).__name__}: {exc}"


def make_store(
    config: Any, service_failed: bool = False, background: bool = False
) -> FileStore | ServiceStore:
    """The store of one process; ``service_failed``: the driver found the repository
    failing before the run, so the records go to files at once (no second warning);
    ``background``: files are written by a thread (a worker's lineage records)."""
    if config.save_mode == "service":
        fallback = config.path or UNSENT_DIR
        if service_failed:
            return FileStore(fallback, config.bulk_size)
        return ServiceStore(config.url, config.token, config.bulk_size, config.timeout_s, fallback)
    return (BackgroundFileStore if background else FileStore)(config.path, config.bulk_size)
