"""The native engine core: ``NativeEngine.apply(command, timestamp) -> events``, in C++.

Invariants:
- The interpreted engine (``asyncdex.engine.transition``) is the specification. The native
  core (``_native/core.cpp``, built by ``pip install`` when a C++17 compiler is present)
  produces the same events, as the same event classes, and the same state root for every
  command it implements; the differential tests compare both after every command.
- What the native core does not implement is refused loudly with ``NativeUnsupported``
  before anything changes (``NATIVE_LIMITS``): values beyond its integer widths. Every
  command type is implemented (``NATIVE_COMMANDS``). Nothing falls back to the reference
  silently.
- The state root is computed by exporting the native state into the reference's structures
  (``to_reference_state``) and committing those with ``asyncdex.engine.state_root``: one
  commitment code, so the two cannot disagree on encoding. It costs a full export, so it is
  for tests, batches and snapshots, not for every command.
- Without the compiled extension, ``native_available()`` is false and
  ``native_unavailable_reason()`` says why; callers run the reference and warn.
"""

from __future__ import annotations

import heapq
from typing import Any

from asyncdex.engine.margin import initial_fraction_ppm
from asyncdex.engine.orderbook import Order
from asyncdex.engine.state import Account, Position, State
from asyncdex.engine.state_root import state_root
from asyncdex.messages.commands import (
    COMMAND_TYPES,
    AdvanceTime,
    ApproveAgent,
    ApproveBuilderFee,
    Batch,
    CancelAll,
    CancelByClientId,
    CancelOrder,
    Command,
    CommitteeBlock,
    Deposit,
    ForceCancelAll,
    ForceWithdraw,
    ModifyOrder,
    PlaceBuilderOrder,
    PlaceOrder,
    PublishOraclePrice,
    ScheduleCancel,
    SetLeverage,
    SetProtectiveMode,
    Signed,
    UpdateIsolatedMargin,
    Withdraw,
)
from asyncdex.messages.events import EVENT_TYPES, Event
from asyncdex.types.market import EngineConfig, MarketSpec

try:
    from asyncdex.engine import _native_core  # type: ignore[attr-defined]
except ImportError as error:  # no compiler at install time: the reference runs instead
    _native_core = None
    _UNAVAILABLE = f"the native engine core is not built ({error})"
else:
    _UNAVAILABLE = ""


if _native_core is not None:
    NativeUnsupported: type[NotImplementedError] = _native_core.NativeUnsupported
else:

    class NativeUnsupported(NotImplementedError):  # type: ignore[no-redef]
        """A command or state the native core does not implement (yet)."""


# The commands the native core runs, each fully (every reject reason and event).
NATIVE_COMMANDS: frozenset[type] = frozenset(
    {
        Deposit,
        Withdraw,
        PlaceOrder,
        CancelOrder,
        CancelByClientId,
        CancelAll,
        ModifyOrder,
        SetLeverage,
        UpdateIsolatedMargin,
        ScheduleCancel,
        ForceWithdraw,
        ForceCancelAll,
        PublishOraclePrice,
        AdvanceTime,
        CommitteeBlock,
        SetProtectiveMode,
        Signed,
        Batch,
        ApproveAgent,
        ApproveBuilderFee,
        PlaceBuilderOrder,
    }
)
# What it refuses within those commands (NativeUnsupported), and what it never runs.
NATIVE_LIMITS: tuple[str, ...] = (
    "committee members that are not 20-byte addresses (refused at construction)",
    "client ids outside 0..2^128 (cloids are 128-bit; the reference keeps any int), and "
    "expiries and dead-man times beyond int64",
    "an isolated flag that is not a bool (the reference commits the value as given)",
)


def native_available() -> bool:
    return _native_core is not None


def native_unavailable_reason() -> str:
    return _UNAVAILABLE


def _spec_fields(spec: MarketSpec) -> tuple[int, ...]:
    """The spec in the native core's field order (``MarketSpecN`` in core.cpp)."""
    return (
        spec.market_id,
        spec.tick,
        spec.lot,
        spec.min_order_value,
        spec.initial_margin_ppm,
        spec.maintenance_margin_ppm,
        spec.max_leverage,
        spec.maker_fee_ppm,
        spec.taker_fee_ppm,
        spec.funding_interval_ms,
        spec.premium_sample_ms,
        spec.funding_cap_ppb,
        spec.interest_ppb,
        spec.oracle_staleness_ms,
        spec.mark_band_ppm,
        spec.market_slippage_ppm,
        spec.max_order_size,
        spec.max_price,
        spec.liquidation_fee_ppm,
        spec.auction_interval_ms,
    )


_INT64_MAX = (1 << 63) - 1
# the codec's tags as core.cpp numbers them (``enum Tag``) and the event classes it emits
# (``enum Ev``): a renumbering in messages/ must be mirrored there
_CORE_COMMAND_ORDER = [
    "Deposit",
    "Withdraw",
    "PlaceOrder",
    "CancelOrder",
    "CancelByClientId",
    "CancelAll",
    "ModifyOrder",
    "ScheduleCancel",
    "SetLeverage",
    "UpdateIsolatedMargin",
    "PublishOraclePrice",
    "AdvanceTime",
    "ApproveAgent",
    "Signed",
    "ForceWithdraw",
    "ForceCancelAll",
    "SetProtectiveMode",
    "Batch",
    "ApproveBuilderFee",
    "PlaceBuilderOrder",
    "CommitteeBlock",
]
_CORE_EVENT_ORDER = [
    "Rejected",
    "OrderAccepted",
    "TradeExecuted",
    "OrderRested",
    "OrderCancelled",
    "OrderModified",
    "TriggerArmed",
    "OrderTriggered",
    "Deposited",
    "Withdrawn",
    "LeverageSet",
    "IsolatedMarginMoved",
    "ScheduledCancelSet",
    "OraclePriceAccepted",
    "MarkPriceUpdated",
    "FundingPaid",
    "LiquidationStarted",
    "LiquidationSettled",
    "PositionDeleveraged",
    "AgentApproved",
    "ProtectiveModeSet",
    "L1MessageConsumed",
    "BatchItem",
    "BuilderFeeApproved",
    "BuilderFeePaid",
    "AuctionCleared",
    "CommitteeFeesAccrued",
    "CommitteeRewardPaid",
]


class NativeEngine:
    """The native core behind the reference's entry point (``apply``)."""

    def __init__(self, config: EngineConfig) -> None:
        if _native_core is None:
            raise NativeUnsupported(_UNAVAILABLE)
        config.validate()
        for spec in config.markets:
            if spec.market_id != config.markets.index(spec):
                raise NativeUnsupported("market ids must be their positions in the config")
            if spec.max_price > 10**15 or spec.max_order_size > 10**15:
                raise NativeUnsupported("market bounds beyond 10^15")
        if config.max_open_orders_per_account > _INT64_MAX:
            raise NativeUnsupported("max_open_orders_per_account beyond int64")
        if [c.__name__ for c in COMMAND_TYPES] != _CORE_COMMAND_ORDER or [
            e.__name__ for e in EVENT_TYPES[: len(_CORE_EVENT_ORDER)]
        ] != _CORE_EVENT_ORDER:
            raise NativeUnsupported("the codec's numbering moved: update core.cpp to match")
        self.config = config
        self._core = _native_core.Core(
            [_spec_fields(spec) for spec in config.markets],
            list(config.oracle_publishers),
            config.max_open_orders_per_account,
            EVENT_TYPES,
            COMMAND_TYPES,
        )
        if config.committee_fee_share_ppm:
            self._core.set_committee(config.committee_fee_share_ppm, list(config.committee_members))
        self.apply_native = self._core.apply

    def apply(self, command: Command, timestamp: int) -> list[Event]:
        """Apply one sequenced command at ``timestamp`` (ms) and return what happened."""
        events: list[Event] = self._core.apply(command, timestamp)
        return events

    def run_stream(
        self, commands: list[Command], clock_start: int, latency: bool = False
    ) -> tuple[int, int, list[int], int]:
        """Apply ``commands`` at ``clock >> 6`` (the engine benchmark's timestamps) without
        building event objects: (events emitted, elapsed ns, sorted per-command ns when
        ``latency``, this thread's CPU ns). The batch entry point: one call for the stream."""
        result: tuple[int, int, list[int], int] = self._core.run_stream(
            commands, clock_start, latency
        )
        return result

    def apply_records(self, payloads: list[bytes]) -> int:
        """Apply trusted journal payloads (``asyncdex.sequencer.records``: checksummed, written
        by ``encode_record``) decoded in C++, with no Python object per record and no events;
        returns how many were applied. For replay, which discards the events."""
        applied: int = self._core.apply_records(payloads)
        return applied

    def replay_segment(
        self, data: bytes, pos: int, expected: int, from_seq: int, last: int
    ) -> tuple[int, int, int, int]:
        """Replay's fast path over one journal segment's bytes (framing, checksums and seqs
        checked, records decoded and applied in C++): (pos, expected seq, applied, status),
        status 0 segment done, 1 ``last`` reached, 2 torn or damaged (use the exact reader)."""
        result: tuple[int, int, int, int] = self._core.replay_segment(
            data, pos, expected, from_seq, last
        )
        return result

    def memory(self) -> dict[str, int]:
        """Bytes the native core holds for orders and books (capacities, not just sizes)."""
        figures: dict[str, int] = self._core.memory()
        return figures

    @classmethod
    def from_reference_state(cls, config: EngineConfig, state: State) -> NativeEngine:
        """A native engine holding ``state`` (a reference ``State``, e.g. a restored
        snapshot): snapshots are interchangeable both ways."""
        engine = cls(config)
        engine._core.import_state(export_reference_state(state))
        return engine

    def to_reference_state(self) -> State:
        """The native state as the reference's ``State`` (for roots and snapshots)."""
        return build_reference_state(self.config, self._core.export_state())

    def state_root(self) -> bytes:
        return state_root(self.to_reference_state())


def export_reference_state(state: State) -> dict[str, Any]:
    """A reference ``State`` in the form ``export_state`` gives (the inverse of
    ``build_reference_state``), for loading into the native core."""
    names = (
        "time",
        "next_due",
        "next_order_id",
        "next_withdrawal_id",
        "l1_consumed",
        "insurance_fund",
        "fee_pool",
        "total_deposited",
        "total_withdrawn",
        "protective",
    )
    exported: dict[str, Any] = {name: getattr(state, name) for name in names}
    exported["committee"] = (
        state.committee_pool,
        state.committee_fee_mark,
        state.committee_proposer,
    )
    exported["markets"] = [
        {
            "scalars": market.scalars(),
            "oracle": [(p, price, at) for p, (price, at) in market.oracle.items()],
            "book": [order.to_list() for order in market.book.orders_in_priority()],
            "triggers": [order.to_list() for order in market.triggers.values()],
        }
        for market in state.markets
    ]
    exported["accounts"] = [
        (
            address,
            account.collateral,
            account.scheduled_cancel,
            [
                (market_id, position.scalars(), list(position.orders))
                for market_id, position in account.positions.items()
            ],
            list(account.agents.items()),
            list(account.builders.items()),
        )
        for address, account in state.accounts.items()
    ]
    exported["expiries"] = list(state.expiries)
    exported["scheduled"] = list(state.scheduled)
    exported["nonces"] = list(state.nonces.items())
    return exported


def build_reference_state(config: EngineConfig, exported: dict[str, Any]) -> State:
    state = State(config)
    for name in (
        "time",
        "next_due",
        "next_order_id",
        "next_withdrawal_id",
        "l1_consumed",
        "insurance_fund",
        "fee_pool",
        "total_deposited",
        "total_withdrawn",
        "protective",
    ):
        setattr(state, name, exported[name])
    orders: dict[int, Order] = {}
    for market, data in zip(state.markets, exported["markets"], strict=True):
        market.set_scalars(list(data["scalars"]))
        market.oracle = {publisher: (price, at) for publisher, price, at in data["oracle"]}
        for items in data["book"]:
            order = Order.from_list(list(items))
            market.book.add(order)
            orders[order.order_id] = order
        for items in data["triggers"]:
            order = Order.from_list(list(items))
            market.triggers[order.order_id] = order
            orders[order.order_id] = order
    for address, collateral, scheduled_cancel, positions, agents, builders in exported["accounts"]:
        account = Account(address)
        account.collateral = collateral
        account.scheduled_cancel = scheduled_cancel
        account.agents = dict(agents)
        account.builders = dict(builders)
        for agent in account.agents:
            state.agent_master[agent] = address
        for market_id, scalars, order_ids in positions:
            spec = config.markets[market_id]
            position = Position(spec.max_leverage, spec.initial_margin_ppm)
            position.set_scalars(list(scalars))
            position.imf = initial_fraction_ppm(spec.initial_margin_ppm, position.leverage)
            for order_id in sorted(order_ids):
                order = orders[order_id]
                position.orders[order_id] = order
                if order.client_id:
                    account.client_ids[order.client_id] = order_id
            account.positions[market_id] = position
            if position.size:
                state.markets[market_id].holders[address] = None
        state.accounts[address] = account
    state.orders = dict(sorted(orders.items()))
    state.nonces = {signer: list(kept) for signer, kept in exported["nonces"]}
    state.committee_pool, state.committee_fee_mark, state.committee_proposer = exported["committee"]
    state.expiries = list(exported["expiries"])
    heapq.heapify(state.expiries)
    state.scheduled = list(exported["scheduled"])
    heapq.heapify(state.scheduled)
    return state
