"""Credits are counted in eighths of a full batch (engine/flow.py ``_cost``): the bytes in
flight keep their bound (``credits`` full batches of ``batch_bytes``), while small batches
take one unit each, so up to 8 x ``credits`` of them may be in flight. Runs in milliseconds."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from dispel4py.engine.flow import CREDIT_UNITS, MessageFlow

pytestmark = pytest.mark.timeout(30)

MB = 1 << 20


class _Flow(MessageFlow):
    def __init__(self, credits: int = 4, batch_bytes: int = 4 * MB) -> None:
        self.max_credits = credits * CREDIT_UNITS
        self.batch_bytes = batch_bytes


@pytest.mark.parametrize(
    ("items", "units"),
    [
        ([1], 1),  # one int
        (list(range(1024)), 1),  # a full batch of ints (~32 KB)
        ([b"x" * (MB - 48)], 2),  # 1 MB: two eighths of 4 MB
        ([np.zeros(4 * MB, dtype=np.uint8)], CREDIT_UNITS),  # a 4 MB array and its header: one credit
        ([np.zeros(20 * MB, dtype=np.uint8)], 4 * CREDIT_UNITS),  # above all credits: all of them
        ([b"x" * (256 << 10)] * 16, CREDIT_UNITS),  # a batch cut at ~4 MB by its bytes
    ],
    ids=["int", "1024-ints", "1MB", "4MB-array", "20MB-array", "16x256KB"],
)
def test_a_batch_takes_its_bytes_share_of_a_credit(items: list[Any], units: int) -> None:
    assert _Flow()._cost(items) == units


def test_small_batches_fly_eight_times_as_many_and_bytes_stay_bounded() -> None:
    flow = _Flow(credits=1)
    assert flow.max_credits // flow._cost(list(range(1024))) == 8  # 8 small batches for 1 credit
    # whatever the batch, what the units allow in flight is about one credit's bytes at most
    for size in (1, 1000, 100_000, MB, 3 * MB, 4 * MB):
        batch = [b"x" * size]
        in_flight = flow.max_credits // flow._cost(batch)
        assert in_flight * size <= 2 * flow.batch_bytes + size, size
