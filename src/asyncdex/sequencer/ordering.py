"""Ordering policies: in which order the sequencer takes what traders sent.

Invariants:
- A policy only reorders; it never drops, duplicates or alters a submission.
- Deterministic given the arrival order and the times it is asked at.
- ``FirstComeFirstServed``: arrival order, at once.
- ``CancelFirstBatches``: arrivals are collected for ``window_ms`` after the first one of a
  batch; then cancels come first, post-only (ALO) orders second, everything else last, each
  group in arrival order. A maker's cancel sent in the same short window as a taker's order
  is sequenced first, so a stale quote is not picked off (Hyperliquid orders blocks alike).
"""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar

from asyncdex.messages.commands import (
    CancelAll,
    CancelByClientId,
    CancelOrder,
    Command,
    PlaceOrder,
    Signed,
    TimeInForce,
)

T = TypeVar("T")


class OrderingPolicy(Protocol[T]):
    def add(self, item: T, command: Command, now_ms: int) -> None: ...

    def take_ready(self, now_ms: int) -> list[T]:
        """What may be sequenced now, in the order to sequence it."""
        ...

    def next_deadline(self) -> int | None:
        """The time at which ``take_ready`` will release what is held (None: nothing held)."""
        ...


class FirstComeFirstServed(Generic[T]):
    def __init__(self) -> None:
        self._held: list[T] = []

    def add(self, item: T, command: Command, now_ms: int) -> None:
        self._held.append(item)

    def take_ready(self, now_ms: int) -> list[T]:
        ready, self._held = self._held, []
        return ready

    def next_deadline(self) -> int | None:
        return None


_CANCELS = (CancelOrder, CancelByClientId, CancelAll)


def priority_class(command: Command) -> int:
    """0 for cancels, 1 for post-only orders, 2 for everything else."""
    inner = command.command if isinstance(command, Signed) else command
    if isinstance(inner, _CANCELS):
        return 0
    if isinstance(inner, PlaceOrder) and inner.tif == TimeInForce.ALO:
        return 1
    return 2


class CancelFirstBatches(Generic[T]):
    def __init__(self, window_ms: int = 1) -> None:
        if window_ms <= 0:
            raise ValueError("the batch window must be positive")
        self.window_ms = window_ms
        self._groups: tuple[list[T], list[T], list[T]] = ([], [], [])
        self._opened: int | None = None

    def add(self, item: T, command: Command, now_ms: int) -> None:
        if self._opened is None:
            self._opened = now_ms
        self._groups[priority_class(command)].append(item)

    def take_ready(self, now_ms: int) -> list[T]:
        if self._opened is None or now_ms < self._opened + self.window_ms:
            return []
        cancels, post_only, rest = self._groups
        self._groups = ([], [], [])
        self._opened = None
        return cancels + post_only + rest

    def next_deadline(self) -> int | None:
        return None if self._opened is None else self._opened + self.window_ms
