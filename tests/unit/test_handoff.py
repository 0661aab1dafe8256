"""The bounded hand-off behind ``dispel4py.stream`` (mappings/handoff.py), with real threads.

The claim "the queue never holds more than ``capacity`` items, whatever the batch sizes" is
checked on random batch sizes (the seed is printed), with a producer that fills the queue
as fast as it can and a consumer that checks ``held`` at every item.
"""

from __future__ import annotations

import random
import threading

import pytest

import dispel4py
from dispel4py.mappings.handoff import END, Handoff, StreamClosed, StreamingCollector
from dispel4py.streaming import stream

pytestmark = pytest.mark.timeout(30)


def _producer(
    handoff: Handoff, batches: list[list[int]], error: BaseException | None = None
) -> threading.Thread:
    def run() -> None:
        try:
            for batch in batches:
                handoff.put("P", "out", batch)
        except StreamClosed:
            handoff.end()
            return
        handoff.end(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_the_queue_never_holds_more_than_its_capacity() -> None:
    seed = random.randrange(1 << 30)
    print(f"seed {seed}")
    rng = random.Random(seed)
    for _ in range(20):
        capacity = rng.randint(1, 50)
        batches, n = [], 0
        for _ in range(rng.randint(1, 30)):
            size = rng.randint(0, 3 * capacity)
            batches.append(list(range(n, n + size)))
            n += size
        handoff = Handoff(capacity)
        thread = _producer(handoff, batches)
        taken = []
        while (got := handoff.get()) is not END:
            assert handoff.held < capacity, f"seed {seed}"  # one item was just taken
            taken.append(got[2])
        thread.join()
        assert taken == list(range(n)), f"seed {seed}"


def test_the_error_comes_after_every_item_before_it() -> None:
    handoff = Handoff(4)
    thread = _producer(handoff, [[1, 2, 3], [4, 5]], ValueError("boom"))
    taken = []
    with pytest.raises(ValueError, match="boom"):
        while (got := handoff.get()) is not END:
            taken.append(got[2])
    thread.join()
    assert taken == [1, 2, 3, 4, 5]


def test_close_wakes_a_blocked_put_which_raises() -> None:
    handoff = Handoff(2)
    thread = _producer(handoff, [[1, 2], [3, 4]])
    assert handoff.get() == ("P", "out", 1)
    handoff.close()
    thread.join(timeout=10)
    assert not thread.is_alive()
    handoff.release()


def test_after_close_a_run_that_cannot_stop_drops_its_results() -> None:
    handoff = Handoff(1)
    handoff.drop_when_closed = True
    handoff.close()
    handoff.put("P", "out", [1, 2, 3])  # returns: nobody reads, nothing is kept
    assert handoff.held == 0
    collector = StreamingCollector(handoff)
    collector.check_stopped()  # does not raise: the run goes on to its end
    handoff.release()


def test_a_streaming_collector_ships_its_lists_when_flushed() -> None:
    handoff = Handoff(10)
    collector = StreamingCollector(handoff)
    results = collector.result_list("P", "out")
    results += [1, 2]
    collector.flush_results()
    assert results == []
    assert [handoff.get(), handoff.get()] == [("P", "out", 1), ("P", "out", 2)]
    handoff.close()
    with pytest.raises(StreamClosed):
        collector.check_stopped()
    handoff.release()


def test_stream_is_public_and_a_bad_buffer_is_refused() -> None:
    assert dispel4py.stream is stream
    with pytest.raises(dispel4py.UsageError, match=r"buffer must be a whole number of at least 1 \(got -1\)"):
        stream(None, buffer=-1)  # type: ignore[arg-type]
