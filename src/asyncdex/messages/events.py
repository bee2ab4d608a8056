"""Events: what the engine says happened, in past tense, in the order it happened.

Invariants:
- Events are immutable ``NamedTuple``s of ints, bools and bytes; the event list of a command
  is a deterministic function of (state, command, timestamp).
- A rejection is an event (``Rejected``) with a numbered ``Reject`` reason, never an exception,
  and a rejected command changes nothing else.
- Every money movement has an event, so a follower can rebuild balances from events alone.
"""

from __future__ import annotations

from typing import NamedTuple

# Hot paths build events as ``new_event(Cls, (field, ...))``, fields in declaration order:
# ``tuple.__new__`` directly skips the Python-level ``__new__`` that NamedTuple generates and
# costs a third as much. The codec and the scenario tests check the resulting fields.
new_event = tuple.__new__


class Rejected(NamedTuple):
    account: bytes
    command: int  # the command's type tag (asyncdex.messages.codec)
    market: int
    ref: int  # order id or client id the command named, else 0
    reason: int  # asyncdex.messages.reasons.Reject


class OrderAccepted(NamedTuple):
    order_id: int
    account: bytes
    market: int
    is_buy: bool
    price: int
    size: int
    client_id: int


class TradeExecuted(NamedTuple):
    market: int
    price: int
    size: int
    taker_is_buy: bool
    maker_order: int
    taker_order: int  # 0 for protocol trades (auto-deleveraging)
    maker: bytes
    taker: bytes
    maker_fee: int  # negative for a rebate
    taker_fee: int


class OrderRested(NamedTuple):
    order_id: int
    price: int
    size: int


class OrderCancelled(NamedTuple):
    order_id: int
    account: bytes
    market: int
    remaining: int
    reason: int  # asyncdex.messages.reasons.CancelReason


class OrderModified(NamedTuple):
    order_id: int
    price: int
    size: int
    kept_priority: bool


class TriggerArmed(NamedTuple):
    order_id: int
    trigger_price: int


class OrderTriggered(NamedTuple):
    order_id: int
    mark_price: int


class Deposited(NamedTuple):
    account: bytes
    amount: int
    l1_index: int


class Withdrawn(NamedTuple):
    account: bytes
    amount: int
    withdrawal_id: int


class LeverageSet(NamedTuple):
    account: bytes
    market: int
    leverage: int
    isolated: bool


class IsolatedMarginMoved(NamedTuple):
    account: bytes
    market: int
    delta: int


class ScheduledCancelSet(NamedTuple):
    account: bytes
    at_time: int


class OraclePriceAccepted(NamedTuple):
    publisher: bytes
    market: int
    price: int


class MarkPriceUpdated(NamedTuple):
    market: int
    index_price: int
    mark_price: int


class FundingPaid(NamedTuple):
    market: int
    rate_ppb: int  # positive: longs pay shorts
    index_price: int
    cumulative_index: int  # cumulative funding per unit of size, in price units x 10^9
    to_insurance: int  # rounding dust kept by the protocol


class LiquidationStarted(NamedTuple):
    account: bytes
    market: int  # -1 for a cross-margin account
    equity: int
    maintenance: int


class LiquidationSettled(NamedTuple):
    account: bytes
    market: int
    fee_to_insurance: int
    insurance_paid: int  # shortfall covered by the insurance fund
    bad_debt: int  # shortfall nobody could cover (should stay 0; reported, never hidden)


class PositionDeleveraged(NamedTuple):
    market: int
    account: bytes  # the bankrupt account
    counterparty: bytes
    size: int
    price: int
    counterparty_was_long: bool


class AgentApproved(NamedTuple):
    account: bytes
    agent: bytes
    valid_until: int  # 0 = no end; a past time means the agent was revoked


class ProtectiveModeSet(NamedTuple):
    enabled: bool


class L1MessageConsumed(NamedTuple):
    """An L1 message (forced request) was processed, whatever its outcome."""

    l1_index: int
    account: bytes
    kind: int  # the consuming command's type tag


class BuilderFeeApproved(NamedTuple):
    account: bytes
    builder: bytes
    max_fee: int  # tenths of a basis point of notional


class BuilderFeePaid(NamedTuple):
    """One side of the trade just before it paid its order's builder (right after its
    ``TradeExecuted``: the maker's first, then the taker's)."""

    market: int
    order_id: int
    account: bytes
    builder: bytes
    amount: int  # micro-USDC, rounded up


class AuctionCleared(NamedTuple):
    """A batch-auction market cleared: its trades (``TradeExecuted``, all at ``price``)
    follow."""

    market: int
    price: int
    volume: int  # size traded
    demand: int  # bid size at or above ``price`` when the auction ran
    supply: int  # ask size at or below ``price``


class CommitteeFeesAccrued(NamedTuple):
    """At block ``height``'s marker: ``amount`` of the fees collected since the previous marker
    moved from the fee pool to the committee pool (the configured share)."""

    height: int
    amount: int


class CommitteeRewardPaid(NamedTuple):
    """At block ``height``'s marker: ``amount`` from the committee pool credited to the
    collateral of ``member``, for leading or certifying the block before it."""

    height: int
    member: bytes
    amount: int


class BatchItem(NamedTuple):
    """The events that follow, up to the next ``BatchItem``, are inner command ``item``'s
    (its position in the ``Batch``)."""

    item: int


Event = (
    Rejected
    | OrderAccepted
    | TradeExecuted
    | OrderRested
    | OrderCancelled
    | OrderModified
    | TriggerArmed
    | OrderTriggered
    | Deposited
    | Withdrawn
    | LeverageSet
    | IsolatedMarginMoved
    | ScheduledCancelSet
    | OraclePriceAccepted
    | MarkPriceUpdated
    | FundingPaid
    | LiquidationStarted
    | LiquidationSettled
    | PositionDeleveraged
    | AgentApproved
    | ProtectiveModeSet
    | L1MessageConsumed
    | BatchItem
    | BuilderFeeApproved
    | BuilderFeePaid
    | AuctionCleared
    | CommitteeFeesAccrued
    | CommitteeRewardPaid
)

EVENT_TYPES: tuple[type, ...] = (
    Rejected,
    OrderAccepted,
    TradeExecuted,
    OrderRested,
    OrderCancelled,
    OrderModified,
    TriggerArmed,
    OrderTriggered,
    Deposited,
    Withdrawn,
    LeverageSet,
    IsolatedMarginMoved,
    ScheduledCancelSet,
    OraclePriceAccepted,
    MarkPriceUpdated,
    FundingPaid,
    LiquidationStarted,
    LiquidationSettled,
    PositionDeleveraged,
    AgentApproved,
    ProtectiveModeSet,
    L1MessageConsumed,
    BatchItem,
    BuilderFeeApproved,
    BuilderFeePaid,
    AuctionCleared,
    CommitteeFeesAccrued,
    CommitteeRewardPaid,
)
