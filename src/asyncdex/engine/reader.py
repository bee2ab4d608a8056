"""What the rest of the venue may read of an engine, whichever implementation runs it.

Invariants:
- One read surface for both engines: ``StateReader`` is what the read side (the node's APIs,
  streams, the Hyperliquid-compatible API, metrics, the precheck, settlement's status) reads.
  The reference ``State`` is one (its containers are the mappings and sequences named here);
  ``asyncdex.engine.native.NativeStateView`` is the other, built from the native core on
  demand. Both hand out the reference's own classes (``MarketState``, ``Account``,
  ``Position``, ``Order``), so one serialiser serves both and their responses are equal.
- Read only: nothing outside the engine changes what a reader returns.
- What is read on every applied record (streams, the Hyperliquid API's activity) reads
  points (an order, a position's values), never a whole account or book: on the native
  engine those are built from the core on demand and cost what they hold.
- ``EngineLike`` is the entry points a node needs: ``apply``, ``state`` (a reader),
  ``check_authorization`` (the precheck), ``full_state`` (a whole reference ``State``),
  ``snapshot`` (a snapshot's bytes and root), ``commitment`` (what the root commits to,
  for settlement batches) and ``state_root``; ``kind`` names the implementation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from asyncdex.engine.orderbook import Order
from asyncdex.engine.state import Account, MarketState, State
from asyncdex.engine.state_root import Commitment
from asyncdex.messages.commands import Command
from asyncdex.messages.events import Event
from asyncdex.messages.reasons import Reject
from asyncdex.types.market import EngineConfig


class StateReader(Protocol):
    """The engine state as the read side sees it (see the module docstring)."""

    @property
    def config(self) -> EngineConfig: ...
    @property
    def markets(self) -> Sequence[MarketState]: ...
    @property
    def accounts(self) -> Mapping[bytes, Account]: ...
    @property
    def orders(self) -> Mapping[int, Order]: ...
    @property
    def nonces(self) -> Mapping[bytes, list[int]]: ...
    @property
    def agent_master(self) -> Mapping[bytes, bytes]: ...
    @property
    def time(self) -> int: ...
    @property
    def protective(self) -> bool: ...
    @property
    def l1_consumed(self) -> int: ...
    def position_values(self, account: bytes, market: int) -> tuple[int, int] | None:
        """(size, entry notional) of a position, or None: for readers on every record, which
        need neither the whole account nor its orders."""


class EngineLike(Protocol):
    """An engine a node runs: the reference (``transition.Engine``) or the native core."""

    @property
    def kind(self) -> str: ...
    @property
    def state(self) -> StateReader: ...
    def apply(self, command: Command, timestamp: int) -> list[Event]: ...
    def check_authorization(
        self, signer: bytes, nonce: int, expires_after: int, inner: Command, now: int
    ) -> Reject | None: ...
    def full_state(self) -> State: ...
    def commitment(self) -> Commitment: ...
    def snapshot(self) -> tuple[bytes, bytes]: ...
    def state_root(self) -> bytes: ...
