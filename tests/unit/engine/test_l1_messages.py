"""L1 messages (deposits, forced requests) and protective mode."""

from __future__ import annotations

import pytest

from asyncdex.engine.snapshot import restore, snapshot
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
from asyncdex.settlement.batch import BatchBuilder, LeafSet, decode_batch_data
from asyncdex.types.market import EngineConfig, MarketSpec
from asyncdex.types.numeric import MAX_COLLATERAL

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


def test_deposit_past_the_collateral_cap_is_rejected_and_consumed(engine: Engine) -> None:
    """2^255 twice once made the exit value overflow uint256: no root, no snapshot, no
    restart. Past MAX_COLLATERAL a deposit is rejected, its L1 message consumed, and the
    state root, snapshot and batch data still build."""
    held = engine.state.total_deposited - engine.state.total_withdrawn
    for index, amount in enumerate((2**255, 2**255, MAX_COLLATERAL - held + 1), start=1):
        root = state_root(engine.state)
        events = engine.apply(Deposit(BOB, amount, index), 1)
        assert events[0] == L1MessageConsumed(index, BOB, events[0].kind)
        assert reasons(events) == [Reject.COLLATERAL_CAP_EXCEEDED]
        assert BOB not in engine.state.accounts and engine.state.l1_consumed == index + 1
        assert state_root(engine.state) != root  # only the consumed L1 index moved
    assert reasons(engine.apply(Deposit(BOB, MAX_COLLATERAL - held, 4), 1)) == []
    assert engine.state.total_deposited - engine.state.total_withdrawn == MAX_COLLATERAL
    assert reasons(engine.apply(Deposit(ALICE, 1, 5), 1)) == [Reject.COLLATERAL_CAP_EXCEEDED]
    restored = restore(engine.state.config, snapshot(engine.state))
    assert state_root(restored) == state_root(engine.state)
    batch = BatchBuilder(bytes(32)).cut(engine.state, [], 1, 1)  # every exit leaf fits uint256
    assert batch.state_root == state_root(engine.state)
    assert LeafSet().apply(decode_batch_data(batch.data), batch.state_root) == batch.state_root


def test_amounts_past_the_collateral_cap_are_invalid(engine: Engine) -> None:
    root = state_root(engine.state)
    assert reasons(engine.apply(Withdraw(ALICE, MAX_COLLATERAL + 1), 0)) == [Reject.INVALID_AMOUNT]
    forced = engine.apply(ForceWithdraw(ALICE, 2**256, 1), 0)
    assert reasons(forced) == [Reject.INVALID_AMOUNT]
    assert engine.state.l1_consumed == 2
    engine.state.l1_consumed = 1  # only the forced request's consumption differs
    assert state_root(engine.state) == root
