"""Nonces for signed intents: millisecond timestamps that never repeat for one signer.

Invariants:

- For one signer, every nonce a :class:`NonceSource` hands out is strictly greater than the
  one before: ``next = max(now_ms, last + 1)``. This holds when many nonces are taken in one
  millisecond, when the clock steps back (NTP, a VM resume), and across threads: the read of
  ``last`` and the write of ``next`` happen under one lock.
- Signers are independent: two keys may get the same value, since the engine keeps nonces
  per signer (an agent key has its own nonces, apart from its master's).
- The source never reads the engine's state; it only keeps the nonces it handed out itself.
  Two processes (or two sources) signing with one key can collide within a millisecond, and
  the later of the two is rejected (``NONCE_ALREADY_USED``). Give each process its own agent
  key, or share one source.

The engine's nonce rule (``asyncdex.engine.transition.check_authorization``), applied when
the intent executes, against the sequencer's timestamp ``t`` of that intent:

- the nonce must be unused among the signer's kept nonces: the 100 highest it has used;
- it must be above the smallest kept nonce once 100 are kept (so at most 100 intents of one
  signer can be in flight out of order);
- it must lie in the window ``(t - 2 days, t + 1 day)``.

Why bursts run ahead of the clock: with ``last + 1`` as the floor, a burst of more than one
intent per millisecond (about 1000 per second) from one key hands out nonces faster than the
clock moves, so the nonces run ahead of wall time by however many the burst exceeded that
rate. They stay valid while the lead is under one day — 86.4 million nonces more than the
clock could give, far beyond any rate limit — and the source catches up with the clock as
soon as the burst slows. The 100-kept rule is what matters in practice: intents of one key
that arrive more than 100 places out of nonce order are refused ``NONCE_TOO_LOW``, so keep
fewer than 100 of one key's intents in flight at once (a batch is sent in nonce order).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Final

NONCES_KEPT: Final = 100
"""The engine keeps the 100 highest nonces of each signer."""
NONCE_PAST_MS: Final = 2 * 86_400_000
"""A nonce must be more recent than two days before the sequencer's time."""
NONCE_FUTURE_MS: Final = 86_400_000
"""A nonce must be less than one day after the sequencer's time."""


def wall_clock_ms() -> int:
    """Milliseconds since the Unix epoch (wall time, as the sequencer stamps intents)."""
    return time.time_ns() // 1_000_000


class NonceSource:
    """Hands out strictly increasing millisecond nonces per signer; safe across threads."""

    __slots__ = ("_clock", "_last", "_lock")

    def __init__(self, clock: Callable[[], int] = wall_clock_ms) -> None:
        self._clock = clock
        self._last: dict[bytes, int] = {}
        self._lock = threading.Lock()

    def next(self, signer: bytes) -> int:
        """The next nonce for ``signer`` (a 20-byte address): ``max(now_ms, last + 1)``."""
        # The clock is read inside the lock: read outside, a thread holding an older reading
        # could still be above ``last + 1`` and hand out a value another thread already has.
        with self._lock:
            nonce = max(self._clock(), self._last.get(signer, 0) + 1)
            self._last[signer] = nonce
            return nonce

    def take(self, signer: bytes, count: int) -> list[int]:
        """``count`` consecutive nonces for ``signer`` in one step (for a batch)."""
        if count < 0:
            raise ValueError("count must not be negative")
        with self._lock:
            first = max(self._clock(), self._last.get(signer, 0) + 1)
            if count:
                self._last[signer] = first + count - 1
            return list(range(first, first + count))

    def last(self, signer: bytes) -> int | None:
        """The last nonce handed out for ``signer``, or ``None``."""
        with self._lock:
            return self._last.get(signer)


_SHARED = NonceSource()


def shared_nonce_source() -> NonceSource:
    """The process-wide source clients use by default, so two clients holding one key in
    one process cannot collide."""
    return _SHARED
