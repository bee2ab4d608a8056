"""The nonce source: strictly increasing per signer under bursts, threads and clock steps."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable

import pytest

from asyncdex.client.nonces import (
    NONCE_FUTURE_MS,
    NONCE_PAST_MS,
    NONCES_KEPT,
    NonceSource,
    shared_nonce_source,
)
from asyncdex.engine import transition

ALICE = b"\xaa" * 20
BOB = b"\xbb" * 20
T0 = 1_767_225_600_000


class SteppedClock:
    """A clock the test moves by hand, backwards too."""

    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def test_follows_the_clock_when_it_moves_ahead() -> None:
    clock = SteppedClock()
    source = NonceSource(clock)
    assert source.next(ALICE) == T0
    clock.now = T0 + 500
    assert source.next(ALICE) == T0 + 500


def test_burst_in_one_millisecond_counts_up_ahead_of_the_clock() -> None:
    source = NonceSource(SteppedClock())
    assert [source.next(ALICE) for _ in range(5)] == [T0, T0 + 1, T0 + 2, T0 + 3, T0 + 4]


def test_monotonic_when_the_clock_steps_back() -> None:
    clock = SteppedClock()
    source = NonceSource(clock)
    before = [source.next(ALICE) for _ in range(3)]
    clock.now = T0 - 60_000  # NTP step back by a minute
    after = [source.next(ALICE) for _ in range(3)]
    assert after == [before[-1] + 1, before[-1] + 2, before[-1] + 3]
    clock.now = T0 + 10_000  # and forward again: the clock leads once it is ahead
    assert source.next(ALICE) == T0 + 10_000


def test_signers_are_independent() -> None:
    source = NonceSource(SteppedClock())
    assert source.next(ALICE) == T0
    assert source.next(BOB) == T0  # the engine keeps nonces per signer
    assert source.next(ALICE) == T0 + 1
    assert source.last(BOB) == T0
    assert source.last(b"\xcc" * 20) is None


def test_take_reserves_a_consecutive_run() -> None:
    source = NonceSource(SteppedClock())
    source.next(ALICE)
    assert source.take(ALICE, 3) == [T0 + 1, T0 + 2, T0 + 3]
    assert source.next(ALICE) == T0 + 4
    assert source.take(ALICE, 0) == []
    assert source.next(ALICE) == T0 + 5
    with pytest.raises(ValueError):
        source.take(ALICE, -1)


@pytest.mark.parametrize(
    "clock",
    [
        SteppedClock(),  # frozen: every nonce comes from the "last + 1" floor
        None,  # the wall clock: nonces mostly come from it, with bursts in between
    ],
    ids=["frozen", "wall"],
)
def test_no_collisions_across_threads(clock: Callable[[], int] | None) -> None:
    source = NonceSource(clock) if clock is not None else NonceSource()
    threads, per_thread = 8, 2_000
    results: list[list[int]] = [[] for _ in range(threads)]
    start = threading.Barrier(threads)

    def worker(out: list[int]) -> None:
        start.wait()  # all threads burst at once
        for _ in range(per_thread):
            out.append(source.next(ALICE))

    pool = [threading.Thread(target=worker, args=(out,)) for out in results]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    everything = [nonce for out in results for nonce in out]
    assert len(set(everything)) == threads * per_thread
    for out in results:  # each thread sees its own nonces strictly increasing
        assert all(a < b for a, b in itertools.pairwise(out))
    assert source.last(ALICE) == max(everything)


def test_threads_interleaving_take_and_next_never_overlap() -> None:
    source = NonceSource(SteppedClock())
    taken: list[int] = []
    lock = threading.Lock()

    def worker(batch: bool) -> None:
        for _ in range(300):
            got = source.take(ALICE, 3) if batch else [source.next(ALICE)]
            with lock:
                taken.extend(got)

    pool = [threading.Thread(target=worker, args=(i % 2 == 0,)) for i in range(6)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert len(taken) == len(set(taken)) == 3 * (300 * 3 + 300)


def test_documented_window_is_the_engines() -> None:
    # The module documents the engine's rule; if the engine changes it, the docs must too.
    assert NONCES_KEPT == transition.NONCES_KEPT
    assert NONCE_PAST_MS == transition.NONCE_PAST_MS
    assert NONCE_FUTURE_MS == transition.NONCE_FUTURE_MS


def test_shared_source_is_one_per_process() -> None:
    assert shared_nonce_source() is shared_nonce_source()
