"""Commands: what the sequencer hands the engine, one at a time, each with a timestamp.

Invariants:
- Commands are immutable ``NamedTuple``s of ints, bools and bytes only, so their canonical
  encoding (``asyncdex.messages.codec``) is trivial and stable. ``NamedTuple`` rather than a
  frozen dataclass: construction is several times cheaper, and millions are built per second.
- Names are imperative. A command never carries a timestamp of its own: time is assigned by
  the sequencer and passed beside the command, so one clock orders everything.
- ``account`` fields are 20-byte addresses; authentication happened before sequencing.
- Prices and sizes are integers in the market's units (``asyncdex.types.numeric``).
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple


class OrderType(IntEnum):
    LIMIT = 0
    MARKET = 1


class TimeInForce(IntEnum):
    GTC = 0  # good til cancelled (or til ``expiry`` when set: good til time)
    IOC = 1  # immediate or cancel
    FOK = 2  # fill or kill
    ALO = 3  # add liquidity only (post-only)


class TriggerKind(IntEnum):
    NONE = 0
    STOP = 1  # fires when the mark moves against the order's side (stop-loss / stop-entry)
    TAKE_PROFIT = 2  # fires when the mark moves in favour of closing at a profit


ALL_MARKETS = -1


class Deposit(NamedTuple):
    """Credit collateral deposited on the base chain; ``l1_index`` is the L1 message index."""

    account: bytes
    amount: int
    l1_index: int


class Withdraw(NamedTuple):
    account: bytes
    amount: int


class PlaceOrder(NamedTuple):
    account: bytes
    market: int
    is_buy: bool
    price: int  # the limit price; for a market order, 0 or a worst acceptable price
    size: int
    tif: int = TimeInForce.GTC
    order_type: int = OrderType.LIMIT
    reduce_only: bool = False
    client_id: int = 0  # 0 = none; otherwise unique among the account's open orders
    expiry: int = 0  # ms timestamp; 0 = none
    trigger_price: int = 0
    trigger_kind: int = TriggerKind.NONE


class CancelOrder(NamedTuple):
    account: bytes
    market: int
    order_id: int


class CancelByClientId(NamedTuple):
    account: bytes
    market: int
    client_id: int


class CancelAll(NamedTuple):
    account: bytes
    market: int = ALL_MARKETS


class ModifyOrder(NamedTuple):
    """Cancel-replace keeping the order id; priority is kept only when only the size shrinks."""

    account: bytes
    market: int
    order_id: int
    price: int
    size: int


class ScheduleCancel(NamedTuple):
    """Dead-man switch: cancel all the account's orders at ``at_time`` (0 clears it)."""

    account: bytes
    at_time: int


class SetLeverage(NamedTuple):
    account: bytes
    market: int
    leverage: int
    isolated: bool = False


class UpdateIsolatedMargin(NamedTuple):
    account: bytes
    market: int
    delta: int  # micro-USDC moved into (positive) or out of (negative) the isolated margin


class PublishOraclePrice(NamedTuple):
    publisher: bytes
    market: int
    price: int


class AdvanceTime(NamedTuple):
    """A time tick: lets expiries, funding and scheduled cancels happen with no other traffic."""


class ApproveAgent(NamedTuple):
    """Let ``agent`` (an API wallet) sign for ``account`` until ``valid_until`` (0 = no end).

    A ``valid_until`` already in the past revokes the agent. Only the account's own key may
    approve: the envelope's signer must be the account.
    """

    account: bytes
    agent: bytes
    valid_until: int


class Signed(NamedTuple):
    """The envelope of a trader's intent: who signed it, its nonce and its deadline.

    The signature itself was checked before sequencing; the engine checks what needs state:
    the signer may act for ``command.account`` (itself or an approved agent), the nonce is
    fresh for the signer, and ``expires_after`` (ms, 0 = none) has not passed.
    """

    signer: bytes
    nonce: int
    expires_after: int
    command: Command


class ForceWithdraw(NamedTuple):
    """A withdrawal forced through the settlement contract's inbox (L1 message ``l1_index``).

    It consumes its L1 message whatever the outcome, so the contract sees it processed.
    """

    account: bytes
    amount: int
    l1_index: int


class ForceCancelAll(NamedTuple):
    """Cancel-all forced through the settlement contract's inbox (L1 message ``l1_index``)."""

    account: bytes
    l1_index: int


class SetProtectiveMode(NamedTuple):
    """Enter or leave protective mode, sequenced by the node when settlement lags too far.

    In protective mode, trader withdrawals are paused and orders that add exposure must
    meet twice the initial margin; cancels, reducing orders and forced requests go on.
    """

    enabled: bool


class ApproveBuilderFee(NamedTuple):
    """Let ``builder`` charge this account's orders up to ``max_fee`` (Hyperliquid's builder
    codes), in tenths of a basis point of notional (10 = 0.01%); it replaces an earlier
    approval of the same builder, and 0 leaves the builder only the attribution of fee-free
    orders. Only the account's own key may approve, as for agents.
    """

    account: bytes
    builder: bytes
    max_fee: int


class PlaceBuilderOrder(NamedTuple):
    """A ``PlaceOrder`` (its fields, with ``builder`` and ``builder_fee`` after ``size``)
    whose fills each pay ``builder`` ``builder_fee`` tenths of a basis point of their
    notional, on top of the trading fee.

    The account must have approved the builder for at least that fee
    (``ApproveBuilderFee``). The order keeps its builder for life: a modify changes price
    and size only, and a trigger that fires still pays it.
    """

    account: bytes
    market: int
    is_buy: bool
    price: int
    size: int
    builder: bytes
    builder_fee: int  # tenths of a basis point of notional (10 = 0.01%)
    tif: int = TimeInForce.GTC
    order_type: int = OrderType.LIMIT
    reduce_only: bool = False
    client_id: int = 0
    expiry: int = 0
    trigger_price: int = 0
    trigger_kind: int = TriggerKind.NONE


class CommitteeBlock(NamedTuple):
    """The start of a committed block of a sequencer committee, written by every member before
    the block's items: ``height`` of the block, the member index of its ``proposer`` and the
    ``signers`` (bit i = member index i) of the certificate its justification carries, all
    covered by the block's hash, so every member journals the same command.

    It is a time tick at the block's timestamp (as ``AdvanceTime``), marks where each block's
    records begin (a restarted member resumes from the last one it journaled), and is what
    committee incentives are paid by. Only a committee member's node writes it: it never comes
    from a client.
    """

    height: int
    proposer: int
    signers: int


class Batch(NamedTuple):
    """Several commands of one account under one signature and nonce: a Hyperliquid action
    holding many orders, cancels or modifies.

    Inside a ``Signed`` envelope, authorization and the nonce are checked once; then each
    inner command runs in order, each preceded by a ``BatchItem(item)`` event (``item``: its
    position) so a client can tell which events are whose. Only trading commands of
    ``account`` itself may be inner ones (``BATCHABLE``); any other is rejected on its own,
    the rest still run.
    """

    account: bytes
    commands: tuple[Command, ...]


Command = (
    Deposit
    | Withdraw
    | PlaceOrder
    | CancelOrder
    | CancelByClientId
    | CancelAll
    | ModifyOrder
    | ScheduleCancel
    | SetLeverage
    | UpdateIsolatedMargin
    | PublishOraclePrice
    | AdvanceTime
    | ApproveAgent
    | Signed
    | ForceWithdraw
    | ForceCancelAll
    | SetProtectiveMode
    | Batch
    | ApproveBuilderFee
    | PlaceBuilderOrder
    | CommitteeBlock
)

COMMAND_TYPES: tuple[type, ...] = (
    Deposit,
    Withdraw,
    PlaceOrder,
    CancelOrder,
    CancelByClientId,
    CancelAll,
    ModifyOrder,
    ScheduleCancel,
    SetLeverage,
    UpdateIsolatedMargin,
    PublishOraclePrice,
    AdvanceTime,
    ApproveAgent,
    Signed,
    ForceWithdraw,
    ForceCancelAll,
    SetProtectiveMode,
    Batch,
    ApproveBuilderFee,
    PlaceBuilderOrder,
    CommitteeBlock,
)

# What a Batch may hold: an account's trading commands (no money moves, no agent approvals).
BATCHABLE: frozenset[type] = frozenset(
    {
        PlaceOrder,
        CancelOrder,
        CancelByClientId,
        CancelAll,
        ModifyOrder,
        ScheduleCancel,
        SetLeverage,
        UpdateIsolatedMargin,
        PlaceBuilderOrder,
    }
)
