"""L1 messages (deposits, forced requests) and protective mode."""

from __future__ import annotations

import pytest

from asyncdex.engine.state_root import state_root
from asyncdex.engine.transition import Engine
from asyncdex.messages.commands import (
    Deposit,
    ForceCancelAll,
    ForceWithdraw,
    PlaceOrder,
    PublishOraclePrice,
    SetProtectiveMode,
    Withdraw,
)
from asyncdex.messages.events import (
    L1MessageConsumed,
    OrderCancelled,
    ProtectiveModeSet,
    Rejected,
    Withdrawn,
)
from asyncdex.messages.reasons import Reject
from asyncdex.types.market import EngineConfig, MarketSpec

PUBLISHER = b"\x0f" * 20
ALICE = b"\xa1" * 20
BOB = b"\xb0" * 20


@pytest.fixture
def engine() -> Engine:
    config = EngineConfig(
        (MarketSpec(0, "BTC", sz_decimals=5, tick=1, lot=1),), oracle_publishers=(PUBLISHER,)
    )
    engine = Engine(config)
    engine.apply(Deposit(ALICE, 1_000_000_000, 0), 0)
    engine.apply(PublishOraclePrice(PUBLISHER, 0, 600_000), 0)
    return engine


def reasons(events: list[object]) -> list[Reject]:
    return [Reject(e.reason) for e in events if isinstance(e, Rejected)]


def test_l1_messages_apply_in_index_order_only(engine: Engine) -> None:
    root = state_root(engine.state)
    assert reasons(engine.apply(Deposit(BOB, 5, 5), 0)) == [Reject.OUT_OF_ORDER_L1_MESSAGE]
    assert reasons(engine.apply(Deposit(BOB, 5, 0), 0)) == [Reject.OUT_OF_ORDER_L1_MESSAGE]
    assert state_root(engine.state) == root
    assert reasons(engine.apply(Deposit(BOB, 5, 1), 1)) == []
    assert engine.state.l1_consumed == 2


def test_forced_withdrawal_is_consumed_even_when_refused(engine: Engine) -> None:
    events = engine.apply(ForceWithdraw(ALICE, 10**15, 1), 1)
    assert events[0] == L1MessageConsumed(1, ALICE, events[0].kind)
    assert reasons(events) == [Reject.INSUFFICIENT_COLLATERAL]
    assert engine.state.l1_consumed == 2
    events = engine.apply(ForceWithdraw(ALICE, 100_000_000, 2), 1)
    assert Withdrawn(ALICE, 100_000_000, 1) in events
    assert engine.state.accounts[ALICE].collateral == 900_000_000


def test_forced_cancel_all_cancels_every_order(engine: Engine) -> None:
    engine.apply(PlaceOrder(ALICE, 0, True, 590_000, 100), 1)
    engine.apply(PlaceOrder(ALICE, 0, False, 610_000, 100), 1)
    events = engine.apply(ForceCancelAll(ALICE, 1), 2)
    assert sum(isinstance(e, OrderCancelled) for e in events) == 2
    assert not engine.state.orders


def test_protective_mode_pauses_withdrawals_and_doubles_initial_margin(engine: Engine) -> None:
    assert engine.apply(SetProtectiveMode(True), 1) == [ProtectiveModeSet(True)]
    assert reasons(engine.apply(Withdraw(ALICE, 1_000_000), 1)) == [Reject.WITHDRAWALS_PAUSED]
    # $1,000 at the default 20x carries $20,000 of exposure normally, $10,000 now
    big = PlaceOrder(ALICE, 0, True, 590_000, 30_000)  # $17,700
    assert reasons(engine.apply(big, 2)) == [Reject.INSUFFICIENT_MARGIN]
    small = PlaceOrder(ALICE, 0, True, 590_000, 15_000)  # $8,850
    assert reasons(engine.apply(small, 2)) == []
    engine.apply(SetProtectiveMode(False), 3)
    # back to normal: the same exposure again ($17,700 in all) fits under 20x
    assert reasons(engine.apply(small, 3)) == []
    assert reasons(engine.apply(Withdraw(ALICE, 1_000_000), 3)) == []
