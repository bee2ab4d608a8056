"""Builder fees (Hyperliquid's builder codes) in the engine: approvals, the fee on every fill
of a builder's order whatever brought the fill (a batch, a modify, a fired trigger), the
margin check that counts it, and who may approve."""

from __future__ import annotations

import pytest

from asyncdex.engine.margin import MIN_BUILDER_ACCOUNT_VALUE, builder_fee_charged
from asyncdex.engine.state_root import state_root
from asyncdex.engine.transition import Engine
from asyncdex.messages.commands import (
    ApproveAgent,
    ApproveBuilderFee,
    Batch,
    Command,
    Deposit,
    ModifyOrder,
    PlaceBuilderOrder,
    PlaceOrder,
    PublishOraclePrice,
    Signed,
    TimeInForce,
    TriggerKind,
)
from asyncdex.messages.events import BuilderFeeApproved, BuilderFeePaid, Event, Rejected
from asyncdex.messages.reasons import Reject
from asyncdex.types.market import EngineConfig, MarketSpec

PUBLISHER = b"\x0f" * 20
ALICE = b"\xa1" * 20
BOB = b"\xb0" * 20
BUILDER = b"\xbd" * 20
AGENT = b"\xa9" * 20
NOW = 1_767_225_600_000
MARK = 600_000  # $60,000 in $0.1 (sz_decimals 5)


@pytest.fixture
def engine() -> Engine:
    config = EngineConfig(
        (MarketSpec(0, "BTC", sz_decimals=5, tick=1, lot=1),), oracle_publishers=(PUBLISHER,)
    )
    engine = Engine(config)
    engine.apply(Deposit(ALICE, 10_000_000_000, 0), NOW)
    engine.apply(Deposit(BOB, 10_000_000_000, 1), NOW)
    engine.apply(Deposit(BUILDER, MIN_BUILDER_ACCOUNT_VALUE, 2), NOW)
    engine.apply(PublishOraclePrice(PUBLISHER, 0, MARK), NOW)
    assert engine.apply(ApproveBuilderFee(ALICE, BUILDER, 50), NOW) == [
        BuilderFeeApproved(ALICE, BUILDER, 50)
    ]
    return engine


def paid(events: list[Event]) -> list[BuilderFeePaid]:
    return [event for event in events if isinstance(event, BuilderFeePaid)]


def reason(events: list[Event]) -> Reject | None:
    for event in events:
        if isinstance(event, Rejected):
            return Reject(event.reason)
    return None


def test_the_fee_rounds_up_and_is_never_negative() -> None:
    assert builder_fee_charged(10_011_001, 10) == 1_002  # 1001.1001
    assert builder_fee_charged(10_000_000, 10) == 1_000
    assert builder_fee_charged(1, 1) == 1
    assert builder_fee_charged(10_000_000, 0) == 0


def test_orders_in_a_batch_each_pay_their_fills(engine: Engine) -> None:
    engine.apply(PlaceOrder(BOB, 0, False, MARK, 3_000), NOW)
    builder_before = engine.state.accounts[BUILDER].collateral
    money = engine.state.total_money()
    batch = Batch(
        ALICE,
        (
            PlaceBuilderOrder(ALICE, 0, True, MARK, 1_000, BUILDER, 50, TimeInForce.IOC),
            PlaceBuilderOrder(ALICE, 0, True, MARK, 2_000, BUILDER, 20, TimeInForce.IOC),
        ),
    )
    events = engine.apply(Signed(ALICE, NOW, 0, batch), NOW)
    notional = MARK * 1_000
    expected = [builder_fee_charged(notional, 50), builder_fee_charged(2 * notional, 20)]
    assert [event.amount for event in paid(events)] == expected == [300_000, 240_000]
    assert engine.state.accounts[BUILDER].collateral == builder_before + sum(expected)
    assert engine.state.total_money() == money  # a transfer, not new money


def test_a_fee_free_order_needs_the_approval_and_pays_nothing(engine: Engine) -> None:
    engine.apply(PlaceOrder(BOB, 0, False, MARK, 1_000), NOW)
    free = PlaceBuilderOrder(BOB, 0, True, MARK, 1_000, BUILDER, 0, TimeInForce.IOC)
    assert reason(engine.apply(free, NOW)) == Reject.BUILDER_NOT_APPROVED
    assert engine.apply(ApproveBuilderFee(BOB, BUILDER, 0), NOW) == [
        BuilderFeeApproved(BOB, BUILDER, 0)
    ]
    taker = PlaceBuilderOrder(ALICE, 0, True, MARK, 1_000, BUILDER, 0, TimeInForce.IOC)
    events = engine.apply(taker, NOW)
    assert reason(events) is None and not paid(events)


def test_a_modified_order_and_a_fired_trigger_keep_their_builder(engine: Engine) -> None:
    engine.apply(PlaceOrder(BOB, 0, False, MARK, 2_000), NOW)
    engine.apply(PlaceBuilderOrder(ALICE, 0, True, MARK - 1_000, 1_000, BUILDER, 30), NOW)
    (order_id,) = engine.state.orders.keys() - {1}
    events = engine.apply(ModifyOrder(ALICE, 0, order_id, MARK, 1_000), NOW)
    assert [(e.order_id, e.amount) for e in paid(events)] == [(order_id, 180_000)]
    stop = PlaceBuilderOrder(
        ALICE, 0, True, MARK + 10_000, 1_000, BUILDER, 30,
        trigger_price=MARK + 1, trigger_kind=TriggerKind.STOP,
    )  # fmt: skip
    assert not paid(engine.apply(stop, NOW))  # armed, not fired
    fired = engine.apply(PublishOraclePrice(PUBLISHER, 0, MARK + 1), NOW + 1)
    # the stop takes bob's remaining 1,000 at MARK
    assert [e.amount for e in paid(fired)] == [builder_fee_charged(MARK * 1_000, 30)]


def test_refusals_change_nothing(engine: Engine) -> None:
    def buy(builder: bytes, fee: int) -> PlaceBuilderOrder:
        return PlaceBuilderOrder(ALICE, 0, True, MARK, 100, builder, fee)

    cases: list[tuple[Command, Reject]] = [
        (buy(BUILDER, 51), Reject.BUILDER_FEE_ABOVE_APPROVED),
        (buy(BUILDER, 101), Reject.INVALID_BUILDER_FEE),
        (buy(BUILDER, -1), Reject.INVALID_BUILDER_FEE),
        (buy(b"\xbd" * 19, 1), Reject.INVALID_BUILDER_FEE),
        (buy(BOB, 1), Reject.BUILDER_NOT_APPROVED),
        (ApproveBuilderFee(ALICE, AGENT, 10), Reject.BUILDER_BALANCE_TOO_LOW),
        (ApproveBuilderFee(ALICE, BUILDER, 1_001), Reject.INVALID_BUILDER_FEE),
        (ApproveBuilderFee(b"\x01" * 20, BUILDER, 1), Reject.UNKNOWN_ACCOUNT),
    ]
    for command, expected in cases:
        root = state_root(engine.state)
        assert reason(engine.apply(command, NOW)) == expected, command
        assert state_root(engine.state) == root


def test_a_later_approval_replaces_the_earlier_one(engine: Engine) -> None:
    engine.apply(ApproveBuilderFee(ALICE, BUILDER, 5), NOW)
    assert engine.state.accounts[ALICE].builders == {BUILDER: 5}
    order = PlaceBuilderOrder(ALICE, 0, True, MARK - 1_000, 100, BUILDER, 6)
    assert reason(engine.apply(order, NOW)) == Reject.BUILDER_FEE_ABOVE_APPROVED


def test_only_the_account_key_may_approve_a_builder(engine: Engine) -> None:
    engine.apply(Signed(ALICE, NOW, 0, ApproveAgent(ALICE, AGENT, 0)), NOW)
    approve = ApproveBuilderFee(ALICE, BUILDER, 100)
    events = engine.apply(Signed(AGENT, NOW + 1, 0, approve), NOW)
    assert reason(events) == Reject.AGENT_NOT_ALLOWED
    assert engine.state.accounts[ALICE].builders == {BUILDER: 50}
    events = engine.apply(Signed(ALICE, NOW + 2, 0, approve), NOW)
    assert events == [BuilderFeeApproved(ALICE, BUILDER, 100)]


def test_the_margin_check_counts_the_builder_fee(engine: Engine) -> None:
    """At the smallest balance that carries an order, the same order with a builder fee is
    refused: the fee it would pay is part of what the account must be able to carry."""
    state = engine.state
    account = state.accounts[BOB]
    market = state.markets[0]
    position = engine._position(account, market)

    def carries(collateral: int, builder_fee: int) -> bool:
        account.collateral = collateral
        return engine.check_order_margin(
            account, market, position, True, MARK, 100_000, False, TimeInForce.GTC, 0, builder_fee
        )

    low, high = 0, 10_000_000_000
    while low < high:  # the smallest collateral that carries the order without a builder
        middle = (low + high) // 2
        if carries(middle, 0):
            high = middle
        else:
            low = middle + 1
    assert carries(low, 0) and not carries(low - 1, 0)
    assert not carries(low, 100)
    assert carries(low + builder_fee_charged(MARK * 100_000, 100), 100)
