"""The precheck refuses before sequencing exactly what the engine would refuse."""

from __future__ import annotations

import pytest

from asyncdex.engine.transition import Engine
from asyncdex.gateway.precheck import Precheck, PrecheckRefused
from asyncdex.messages.commands import (
    ApproveAgent,
    Deposit,
    PlaceOrder,
    PublishOraclePrice,
    Signed,
    Withdraw,
)
from asyncdex.messages.events import Rejected
from asyncdex.messages.reasons import Reject
from asyncdex.sequencer.sequencer import Submission
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


def signed(signer: bytes, nonce: int, inner: object, expires_after: int = 0) -> Submission:
    return Submission(Signed(signer, nonce, expires_after, inner))  # type: ignore[arg-type]


def refusal(precheck: Precheck, *submissions: Submission) -> Reject | None:
    try:
        precheck.check(list(submissions), NOW)
    except PrecheckRefused as refused:
        return refused.reason
    return None


def engine_reason(engine: Engine, submission: Submission) -> Reject | None:
    for event in engine.apply(submission.command, NOW):
        if isinstance(event, Rejected):
            return Reject(event.reason)
    return None


@pytest.mark.parametrize(
    ("submission", "reason"),
    [
        (signed(AGENT, NOW, order()), Reject.UNKNOWN_AGENT),  # also: signed for another domain
        (signed(BOB, NOW, order(ALICE)), Reject.UNKNOWN_AGENT),  # acting for another account
        (signed(ALICE, NOW, order(), expires_after=NOW - 1), Reject.INTENT_EXPIRED),
        (signed(ALICE, 5, order()), Reject.NONCE_OUT_OF_WINDOW),
        (signed(ALICE, NOW, Deposit(ALICE, 1, 2)), Reject.NOT_SIGNABLE),
    ],
)
def test_refuses_what_the_engine_refuses(
    engine: Engine, submission: Submission, reason: Reject
) -> None:
    assert refusal(Precheck(engine), submission) == reason
    assert engine_reason(engine, submission) == reason


def test_a_replayed_nonce_is_refused_while_its_twin_is_in_flight(engine: Engine) -> None:
    precheck = Precheck(engine)
    first = signed(ALICE, NOW, order())
    assert refusal(precheck, first) is None
    assert refusal(precheck, first) == Reject.NONCE_ALREADY_USED
    assert refusal(precheck, signed(ALICE, NOW + 1, order()), signed(ALICE, NOW + 1, order())) == (
        Reject.NONCE_ALREADY_USED
    )
    engine.apply(first.command, NOW)
    precheck.release([first.command])
    assert precheck.in_flight == 0
    assert refusal(precheck, first) == Reject.NONCE_ALREADY_USED  # now from the engine's state


def test_an_agent_may_trade_while_its_approval_is_in_flight(engine: Engine) -> None:
    precheck = Precheck(engine)
    approve = signed(ALICE, NOW, ApproveAgent(ALICE, AGENT, 0))
    trade = signed(AGENT, NOW, order())
    assert refusal(precheck, approve, trade) is None
    withdraw = signed(AGENT, NOW + 1, Withdraw(ALICE, 1))
    engine.apply(approve.command, NOW)
    precheck.release([approve.command])
    assert refusal(precheck, withdraw) == Reject.AGENT_NOT_ALLOWED


def test_a_refused_request_holds_nothing(engine: Engine) -> None:
    precheck = Precheck(engine)
    good = signed(ALICE, NOW, order())
    assert refusal(precheck, good, signed(AGENT, NOW, order())) == Reject.UNKNOWN_AGENT
    assert precheck.in_flight == 0
    assert refusal(precheck, good) is None
