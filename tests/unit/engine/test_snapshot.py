"""Snapshots: a busy state restores to the same bytes, root and behaviour; snapshots taken
under another config, and bytes that are not a snapshot, are refused with ``SnapshotError``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asyncdex.engine.snapshot import SNAPSHOT_VERSION, SnapshotError, restore, snapshot
from asyncdex.engine.state import State
from asyncdex.engine.state_root import state_root
from asyncdex.engine.transition import Engine
from asyncdex.messages.commands import (
    AdvanceTime,
    ApproveAgent,
    ApproveBuilderFee,
    CancelOrder,
    Command,
    Deposit,
    PlaceBuilderOrder,
    PlaceOrder,
    PublishOraclePrice,
    ScheduleCancel,
    SetLeverage,
    SetProtectiveMode,
    Signed,
    TimeInForce,
    TriggerKind,
)
from asyncdex.messages.events import AuctionCleared, BuilderFeePaid
from asyncdex.types.market import EngineConfig, MarketSpec
from asyncdex.types.packing import pack, unpack

PUBLISHER = b"\x0f" * 20
ALICE = b"\xa1" * 20
BOB = b"\xb0" * 20
CAROL = b"\xc0" * 20
AGENT = b"\xee" * 20
BUILDER = b"\xbd" * 20
T0 = 1_700_000_000_000

BTC = MarketSpec(0, "BTC", sz_decimals=5, tick=10, lot=10)
ETH = MarketSpec(
    1, "ETH", sz_decimals=3, tick=1, lot=1, max_leverage=10, initial_margin_ppm=100_000
)
CONFIG = EngineConfig((BTC, ETH), oracle_publishers=(PUBLISHER,))


def busy_engine() -> Engine:
    """An engine with a little of everything a snapshot must carry."""
    engine = Engine(CONFIG)
    commands: list[Command] = [
        Deposit(ALICE, 100_000_000_000, 0),
        Deposit(BOB, 100_000_000_000, 1),
        Deposit(CAROL, 5_000_000_000, 2),
        Deposit(BUILDER, 100_000_000, 3),
        PublishOraclePrice(PUBLISHER, 0, 600_000),
        PublishOraclePrice(PUBLISHER, 1, 2_500_000),
        SetLeverage(CAROL, 1, 5, True),
        PlaceOrder(ALICE, 0, True, 599_000, 1_000, client_id=7),
        PlaceOrder(ALICE, 0, True, 599_000, 500, expiry=T0 + 60_000),
        PlaceOrder(BOB, 0, False, 601_000, 2_000),
        PlaceOrder(BOB, 0, False, 599_000, 300, TimeInForce.IOC),  # trades: positions, fees
        PlaceOrder(
            ALICE, 1, False, 2_600_000, 100, trigger_price=2_400_000, trigger_kind=TriggerKind.STOP
        ),
        PlaceOrder(BOB, 1, True, 2_499_000, 400),
        PlaceOrder(CAROL, 1, False, 2_499_000, 100, TimeInForce.IOC),  # isolated position
        ApproveAgent(ALICE, AGENT, 0),
        Signed(AGENT, T0, 0, PlaceOrder(ALICE, 0, True, 598_000, 100)),
        ApproveBuilderFee(ALICE, BUILDER, 10),
        PlaceBuilderOrder(ALICE, 0, True, 598_000, 1_000, BUILDER, 10),  # filled later
        ScheduleCancel(BOB, T0 + 120_000),
        SetProtectiveMode(True),
    ]
    for command in commands:
        engine.apply(command, T0)
    engine.apply(AdvanceTime(), T0 + 7_000)  # premium samples
    state = engine.state
    assert state.orders and state.markets[1].triggers and state.nonces and state.expiries
    assert state.scheduled and state.fee_pool and state.protective
    assert state.accounts[CAROL].positions[1].iso_margin and state.accounts[ALICE].agents
    assert state.accounts[ALICE].builders and any(o.builder for o in state.orders.values())
    return engine


LATER: list[tuple[Command, int]] = [
    (PlaceOrder(BOB, 0, False, 598_000, 1_500, TimeInForce.IOC), T0 + 8_000),
    (CancelOrder(ALICE, 0, 1), T0 + 8_000),
    (PublishOraclePrice(PUBLISHER, 1, 2_300_000), T0 + 9_000),  # fires the stop
    (AdvanceTime(), T0 + 3_600_000),  # expiry, dead-man switch, funding
]


# ------------------------------------------------------------------ faithful


def test_an_empty_state_round_trips() -> None:
    data = snapshot(State(CONFIG))
    restored = restore(CONFIG, data)
    assert snapshot(restored) == data
    assert state_root(restored) == state_root(State(CONFIG))


def test_a_busy_state_restores_to_the_same_bytes_and_root() -> None:
    state = busy_engine().state
    data = snapshot(state)
    restored = restore(CONFIG, data)
    assert snapshot(restored) == data
    assert state_root(restored) == state_root(state)
    assert restored.total_money() == state.total_money()
    assert restored.agent_master == state.agent_master


def test_a_restored_engine_behaves_like_the_original() -> None:
    original = busy_engine()
    copy = Engine(state=restore(CONFIG, snapshot(original.state)))
    paid = []
    for command, timestamp in LATER:
        events = original.apply(command, timestamp)
        assert copy.apply(command, timestamp) == events
        assert state_root(copy.state) == state_root(original.state)
        paid += [event for event in events if isinstance(event, BuilderFeePaid)]
    assert snapshot(copy.state) == snapshot(original.state)
    assert paid  # the restored builder order still pays its builder


def test_a_version_2_snapshot_from_before_builder_fees_still_restores() -> None:
    """Version 2 wrote no builder approvals; a state without any restores from it to the
    same root (an order without a builder was always written as it still is)."""
    engine = Engine(CONFIG)
    engine.apply(Deposit(ALICE, 100_000_000_000, 0), T0)
    engine.apply(PublishOraclePrice(PUBLISHER, 0, 600_000), T0)
    engine.apply(PlaceOrder(ALICE, 0, True, 599_000, 1_000), T0)
    body: list[Any] = unpack(snapshot(engine.state))
    body[0] = 2
    assert body[2][-3:] == [0, 0, -1]  # nor the committee counters version 4 added
    body[2] = body[2][:-3]
    for account in body[4]:
        assert account.pop() == []  # no approvals to lose
    restored = restore(CONFIG, pack(body))
    assert state_root(restored) == state_root(engine.state)
    assert snapshot(restored) == snapshot(engine.state)


def test_restored_objects_are_shared_where_the_engine_shares_them() -> None:
    state = restore(CONFIG, snapshot(busy_engine().state))
    for order in state.orders.values():
        position = state.accounts[order.account].positions[order.market]
        assert position.orders[order.order_id] is order
        market = state.markets[order.market]
        resting = [o for o in market.book.orders_in_priority() if o.order_id == order.order_id]
        assert (resting and resting[0] is order) or market.triggers[order.order_id] is order


def test_restore_does_not_share_state_with_the_original() -> None:
    engine = busy_engine()
    data = snapshot(engine.state)
    restored = restore(CONFIG, data)
    engine.apply(LATER[0][0], LATER[0][1])
    assert snapshot(restored) == data


# ------------------------------------------------------------------ another config


def _with(spec: MarketSpec, **changes: Any) -> EngineConfig:
    markets = tuple(dataclasses.replace(m, **changes) if m is spec else m for m in CONFIG.markets)
    return dataclasses.replace(CONFIG, markets=markets)


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(_with(BTC, tick=1), id="another_tick"),
        pytest.param(_with(ETH, lot=2), id="another_lot"),
        pytest.param(_with(BTC, taker_fee_ppm=500), id="another_fee"),
        pytest.param(_with(ETH, symbol="ETH2"), id="another_symbol"),
        pytest.param(dataclasses.replace(CONFIG, markets=(BTC,)), id="one_market_fewer"),
        pytest.param(dataclasses.replace(CONFIG, oracle_publishers=()), id="no_publishers"),
        pytest.param(
            dataclasses.replace(CONFIG, oracle_publishers=(PUBLISHER, ALICE)),
            id="another_publisher",
        ),
        pytest.param(
            dataclasses.replace(CONFIG, max_open_orders_per_account=5), id="another_order_limit"
        ),
    ],
)
def test_restore_under_another_config_is_refused(other: EngineConfig) -> None:
    data = snapshot(busy_engine().state)
    with pytest.raises(SnapshotError, match="different config"):
        restore(other, data)


def test_an_equal_config_built_anew_is_accepted() -> None:
    same = EngineConfig(
        tuple(dataclasses.replace(m) for m in CONFIG.markets), oracle_publishers=(PUBLISHER,)
    )
    state = busy_engine().state
    assert state_root(restore(same, snapshot(state))) == state_root(state)


# ------------------------------------------------------------------ not a snapshot


def _body() -> list[Any]:
    body: list[Any] = unpack(snapshot(busy_engine().state))
    return body


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\xc1", id="reserved_byte"),
        pytest.param(b"snapshot", id="text"),
        pytest.param(pack(None), id="nil"),
        pytest.param(pack([]), id="empty_list"),
        pytest.param(pack({"version": SNAPSHOT_VERSION}), id="map"),
        pytest.param(pack([SNAPSHOT_VERSION, b"\x00" * 32]), id="header_only"),
    ],
)
def test_bytes_that_are_not_a_snapshot_are_refused(data: bytes) -> None:
    with pytest.raises(SnapshotError):
        restore(CONFIG, data)


def test_another_snapshot_version_is_refused() -> None:
    body = _body()
    body[0] = SNAPSHOT_VERSION + 1
    with pytest.raises(SnapshotError, match="version"):
        restore(CONFIG, pack(body))


def test_a_body_with_a_part_missing_or_extra_is_refused() -> None:
    body = _body()
    with pytest.raises(SnapshotError):
        restore(CONFIG, pack(body[:-1]))
    with pytest.raises(SnapshotError):
        restore(CONFIG, pack([*body, []]))


def test_every_truncation_is_refused() -> None:
    data = snapshot(busy_engine().state)
    for end in range(len(data)):
        with pytest.raises(SnapshotError):
            restore(CONFIG, data[:end])


def test_trailing_bytes_are_refused() -> None:
    with pytest.raises(SnapshotError):
        restore(CONFIG, snapshot(busy_engine().state) + b"\x00")


def test_a_body_naming_orders_it_does_not_hold_is_refused() -> None:
    # the header is right, the contents are not a state this engine could have written
    body = _body()
    body[3] = []  # no orders, while positions, books and triggers name some
    with pytest.raises(SnapshotError):
        restore(CONFIG, pack(body))


def test_a_body_with_malformed_counters_is_refused() -> None:
    body = _body()
    body[2] = body[2][:-1]
    with pytest.raises(SnapshotError):
        restore(CONFIG, pack(body))


@given(st.binary(max_size=200))
def test_random_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(SnapshotError):
        restore(CONFIG, data)


def test_a_batch_auction_market_snapshots_its_pending_orders_and_next_auction() -> None:
    """Orders waiting for an auction (an IOC too) and the next auction time restore: the
    restored engine runs the same auction; the next auction time is in the root."""
    spec = MarketSpec(
        0, "TST", sz_decimals=4, tick=10, lot=100, ordering="batch_auction", auction_interval_ms=500
    )
    config = EngineConfig((spec,), oracle_publishers=(PUBLISHER,))
    original = Engine(config)
    for command in (
        Deposit(ALICE, 10_000_000_000, 0),
        Deposit(BOB, 10_000_000_000, 1),
        PublishOraclePrice(PUBLISHER, 0, 10_000),
        PlaceOrder(ALICE, 0, False, 9_900, 30_000),
        PlaceOrder(BOB, 0, True, 10_100, 20_000, TimeInForce.IOC),
    ):
        original.apply(command, T0 + 100)
    market = original.state.markets[0]
    assert market.next_auction == T0 + 500 and market.book.best_bid() == 10_100
    data = snapshot(original.state)
    copy = Engine(state=restore(config, data))
    assert snapshot(copy.state) == data and state_root(copy.state) == state_root(original.state)
    events = original.apply(AdvanceTime(), T0 + 500)
    assert copy.apply(AdvanceTime(), T0 + 500) == events
    assert any(isinstance(event, AuctionCleared) for event in events)
    assert copy.state.markets[0].next_auction == T0 + 1_000
    assert state_root(copy.state) == state_root(original.state)
    copy.state.markets[0].next_auction += 500
    assert state_root(copy.state) != state_root(original.state)
