"""The engine's stateful checks of signed intents: agents, nonces, deadlines."""

from __future__ import annotations

import pytest

from asyncdex.engine.state_root import state_root
from asyncdex.engine.transition import NONCES_KEPT, Engine
from asyncdex.messages.commands import (
    AdvanceTime,
    ApproveAgent,
    Batch,
    CancelOrder,
    Deposit,
    PlaceOrder,
    PublishOraclePrice,
    Signed,
    Withdraw,
)
from asyncdex.messages.events import (
    AgentApproved,
    BatchItem,
    Event,
    OrderAccepted,
    OrderCancelled,
    Rejected,
    Withdrawn,
)
from asyncdex.messages.reasons import Reject
from asyncdex.types.market import EngineConfig, MarketSpec

PUBLISHER = b"\x0f" * 20
ALICE = b"\xa1" * 20
BOB = b"\xb0" * 20
AGENT = b"\xa9" * 20
NOW = 1_767_225_600_000


@pytest.fixture
def engine() -> Engine:
    config = EngineConfig(
        (MarketSpec(0, "BTC", sz_decimals=5, tick=1, lot=1),), oracle_publishers=(PUBLISHER,)
    )
    engine = Engine(config)
    engine.apply(Deposit(ALICE, 10_000_000_000, 0), NOW)
    engine.apply(Deposit(BOB, 10_000_000_000, 1), NOW)
    engine.apply(PublishOraclePrice(PUBLISHER, 0, 600_000), NOW)
    return engine


def order(account: bytes = ALICE) -> PlaceOrder:
    return PlaceOrder(account, 0, True, 590_000, 100)


def rejected(events: list[object]) -> Reject | None:
    for event in events:
        if isinstance(event, Rejected):
            return Reject(event.reason)
    return None


def apply_unchanged(engine: Engine, command: Signed) -> Reject | None:
    """Apply an envelope expected to be refused; check it changed nothing, nonce included."""
    root = state_root(engine.state)
    reason = rejected(engine.apply(command, NOW))
    assert state_root(engine.state) == root
    return reason


def test_account_signs_for_itself(engine: Engine) -> None:
    events = engine.apply(Signed(ALICE, NOW, 0, order()), NOW)
    assert any(isinstance(e, OrderAccepted) for e in events)


def test_agent_trades_for_its_master_after_approval(engine: Engine) -> None:
    assert apply_unchanged(engine, Signed(AGENT, NOW, 0, order())) == Reject.UNKNOWN_AGENT
    events = engine.apply(Signed(ALICE, NOW, 0, ApproveAgent(ALICE, AGENT, 0)), NOW)
    assert events == [AgentApproved(ALICE, AGENT, 0)]
    events = engine.apply(Signed(AGENT, NOW + 1, 0, order()), NOW)
    assert any(isinstance(e, OrderAccepted) and e.account == ALICE for e in events)


def test_agent_of_another_account_is_refused(engine: Engine) -> None:
    engine.apply(Signed(ALICE, NOW, 0, ApproveAgent(ALICE, AGENT, 0)), NOW)
    assert apply_unchanged(engine, Signed(AGENT, NOW + 1, 0, order(BOB))) == Reject.UNKNOWN_AGENT


def test_an_agent_cannot_be_taken_by_a_second_account(engine: Engine) -> None:
    engine.apply(Signed(ALICE, NOW, 0, ApproveAgent(ALICE, AGENT, 0)), NOW)
    # the envelope is valid, so its nonce is spent; the approval itself is refused
    events = engine.apply(Signed(BOB, NOW, 0, ApproveAgent(BOB, AGENT, 0)), NOW)
    assert rejected(events) == Reject.AGENT_TAKEN
    assert engine.state.agent_master[AGENT] == ALICE
    assert engine.state.nonces[BOB] == [NOW]


def test_agents_may_not_withdraw_nor_approve(engine: Engine) -> None:
    engine.apply(Signed(ALICE, NOW, 0, ApproveAgent(ALICE, AGENT, 0)), NOW)
    withdraw = Signed(AGENT, NOW + 1, 0, Withdraw(ALICE, 1_000_000))
    assert apply_unchanged(engine, withdraw) == Reject.AGENT_NOT_ALLOWED
    approve = Signed(AGENT, NOW + 2, 0, ApproveAgent(ALICE, b"\x77" * 20, 0))
    assert apply_unchanged(engine, approve) == Reject.AGENT_NOT_ALLOWED
    events = engine.apply(Signed(ALICE, NOW + 3, 0, Withdraw(ALICE, 1_000_000)), NOW)
    assert any(isinstance(e, Withdrawn) for e in events)


def test_agent_expires_and_can_be_revoked(engine: Engine) -> None:
    engine.apply(Signed(ALICE, NOW, 0, ApproveAgent(ALICE, AGENT, NOW + 1_000)), NOW)
    assert rejected(engine.apply(Signed(AGENT, NOW + 1, 0, order()), NOW + 10)) is None
    engine.apply(AdvanceTime(), NOW + 1_000)
    late = Signed(AGENT, NOW + 2, 0, order())
    assert rejected(engine.apply(late, NOW + 1_000)) == Reject.AGENT_EXPIRED
    engine.apply(Signed(ALICE, NOW + 5, 0, ApproveAgent(ALICE, AGENT, 1)), NOW + 1_000)
    assert AGENT not in engine.state.agent_master
    assert apply_unchanged(engine, Signed(AGENT, NOW + 3, 0, order())) == Reject.UNKNOWN_AGENT


def test_nonce_reuse_is_refused(engine: Engine) -> None:
    engine.apply(Signed(ALICE, NOW, 0, order()), NOW)
    assert apply_unchanged(engine, Signed(ALICE, NOW, 0, order())) == Reject.NONCE_ALREADY_USED


def test_nonces_may_arrive_out_of_order_within_the_kept_window(engine: Engine) -> None:
    for nonce in (NOW + 5, NOW + 1, NOW + 3):
        assert rejected(engine.apply(Signed(ALICE, nonce, 0, order()), NOW)) is None


def test_nonce_below_the_kept_window_is_refused(engine: Engine) -> None:
    for i in range(NONCES_KEPT):
        engine.apply(Signed(ALICE, NOW + 10 + i, 0, order()), NOW)
    assert apply_unchanged(engine, Signed(ALICE, NOW + 5, 0, order())) == Reject.NONCE_TOO_LOW
    assert rejected(engine.apply(Signed(ALICE, NOW + 10_000, 0, order()), NOW)) is None
    assert len(engine.state.nonces[ALICE]) == NONCES_KEPT


@pytest.mark.parametrize("nonce", [NOW - 2 * 86_400_000, NOW + 86_400_000, 1])
def test_nonce_outside_the_time_window_is_refused(engine: Engine, nonce: int) -> None:
    assert apply_unchanged(engine, Signed(ALICE, nonce, 0, order())) == Reject.NONCE_OUT_OF_WINDOW


def test_expired_intent_is_refused(engine: Engine) -> None:
    command = Signed(ALICE, NOW, NOW - 1, order())
    assert apply_unchanged(engine, command) == Reject.INTENT_EXPIRED


def test_system_commands_cannot_be_signed_by_traders(engine: Engine) -> None:
    command = Signed(ALICE, NOW, 0, Deposit(ALICE, 10**12, 2))
    assert apply_unchanged(engine, command) == Reject.NOT_SIGNABLE


# ------------------------------------------------------------------ batches


def items_of(events: list[Event]) -> list[list[Event]]:
    """The events of each inner command of a Batch, split at the BatchItem markers."""
    split: list[list[Event]] = []
    for event in events:
        if isinstance(event, BatchItem):
            assert event.item == len(split)
            split.append([])
        elif split:
            split[-1].append(event)
    return split


def test_a_batch_spends_one_nonce_and_runs_each_command_in_order(engine: Engine) -> None:
    batch = Batch(ALICE, (order(), order(), CancelOrder(ALICE, 0, 1)))
    events = engine.apply(Signed(ALICE, NOW, 0, batch), NOW)
    first, second, cancel = items_of(events)
    placed = [e for e in first + second if isinstance(e, OrderAccepted)]
    assert len(placed) == 2
    assert [e.order_id for e in cancel if isinstance(e, OrderCancelled)] == [placed[0].order_id]
    assert engine.state.nonces[ALICE] == [NOW]
    # the same nonce again is refused as a whole: nothing runs
    again = Signed(ALICE, NOW, 0, Batch(ALICE, (order(),)))
    assert apply_unchanged(engine, again) == Reject.NONCE_ALREADY_USED


def test_a_batch_item_may_fail_alone(engine: Engine) -> None:
    foreign = PlaceOrder(BOB, 0, True, 590_000, 100)
    batch = Batch(ALICE, (foreign, Withdraw(ALICE, 1), order(), CancelOrder(ALICE, 0, 999)))
    refused_foreign, refused_withdraw, placed, unknown = items_of(
        engine.apply(Signed(ALICE, NOW, 0, batch), NOW)
    )
    assert rejected(refused_foreign) == Reject.NOT_BATCHABLE
    assert rejected(refused_withdraw) == Reject.NOT_BATCHABLE
    assert any(isinstance(e, OrderAccepted) and e.account == ALICE for e in placed)
    assert rejected(unknown) == Reject.UNKNOWN_ORDER
    bob = engine.state.accounts[BOB]
    assert all(not position.orders for position in bob.positions.values())


def test_an_agent_batch_acts_for_its_master_only(engine: Engine) -> None:
    engine.apply(Signed(ALICE, NOW, 0, ApproveAgent(ALICE, AGENT, 0)), NOW)
    events = engine.apply(Signed(AGENT, NOW + 1, 0, Batch(ALICE, (order(),))), NOW)
    assert any(isinstance(e, OrderAccepted) and e.account == ALICE for e in events)
    foreign = Signed(AGENT, NOW + 2, 0, Batch(BOB, (order(BOB),)))
    assert apply_unchanged(engine, foreign) == Reject.UNKNOWN_AGENT
