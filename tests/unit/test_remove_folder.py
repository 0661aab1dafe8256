"""remove_folder (mappings/processes/lifetime.py): a folder other writers keep adding files
to is still removed. Plain ``rmtree`` leaves it when a file appears between its listing
and its last ``rmdir`` (seen in CI: a worker outliving a killed driver left a file of the
shared-memory arena behind)."""

from __future__ import annotations

import os
import threading

import pytest

from dispel4py.mappings.processes.lifetime import remove_folder

pytestmark = pytest.mark.timeout(60)


def _keep_writing(folder: str, stop: threading.Event, made: list[int]) -> None:
    n = 0
    while not stop.is_set() and n < 300:  # real writers are bounded: the arena's budget
        try:
            with open(os.path.join(folder, f"f{n}"), "wb") as f:
                f.write(b"x" * 4096)
        except OSError:  # the folder is gone: nothing can be created in it any more
            break
        n += 1
    made.append(n)


@pytest.mark.parametrize("round_", range(5))
def test_a_folder_written_to_while_removed_is_gone(tmp_path, round_) -> None:
    folder = tmp_path / "arena"
    folder.mkdir()
    for i in range(200):  # enough files that the listing and the rmdir are far apart
        (folder / f"old{i}").write_bytes(b"y")
    stop = threading.Event()
    made: list[int] = []
    writers = [threading.Thread(target=_keep_writing, args=(str(folder), stop, made)) for _ in range(3)]
    for w in writers:
        w.start()
    try:
        remove_folder(str(folder))
        assert not folder.exists()
    finally:
        stop.set()
        for w in writers:
            w.join()
    assert not folder.exists()  # nobody made it again


def test_a_missing_folder_is_fine(tmp_path) -> None:
    remove_folder(str(tmp_path / "never-made"))
