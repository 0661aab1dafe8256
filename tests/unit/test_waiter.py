"""``mappings/processes/waiting.py``: the ready ones of pipes that come and go between waits,
end of file included, as ``multiprocess.connection.wait`` returns them."""

from __future__ import annotations

import os

import pytest

from dispel4py.mappings.processes.waiting import Waiter

pytestmark = pytest.mark.timeout(30)


class _End:
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd


def test_ready_pipes_among_those_that_come_and_go() -> None:
    waiter = Waiter()
    (r1, w1), (r2, w2), (r3, w3) = os.pipe(), os.pipe(), os.pipe()
    one, two = _End(r1), _End(r2)
    assert waiter.wait([one, two], 0) == []
    os.write(w2, b"x")
    assert waiter.wait([one, two], None) == [two]
    os.read(r2, 1)
    os.write(w1, b"x")
    assert waiter.wait([two, r3], 0) == []  # one is not asked about any more
    os.write(w3, b"x")
    assert waiter.wait([one, two, r3], None) in ([one, r3], [r3, one])  # a plain descriptor too
    os.close(w2)
    assert two in waiter.wait([two], 0)  # end of file counts as ready
    for fd in (r1, w1, r2, r3, w3):
        os.close(fd)
