"""``CommitteeBlock``: the marker a committee member journals before each committed block."""

from __future__ import annotations

from asyncdex.engine.state_root import state_root
from asyncdex.engine.transition import Engine
from asyncdex.messages.codec import decode_command, encode_command
from asyncdex.messages.commands import (
    AdvanceTime,
    CommitteeBlock,
    Deposit,
    PlaceOrder,
    PublishOraclePrice,
    Signed,
)
from asyncdex.messages.events import Rejected
from asyncdex.types.market import EngineConfig, MarketSpec

PUBLISHER = b"\x0f" * 20
ALICE = b"\xa1" * 20
NOW = 1_767_225_600_000


def venue() -> Engine:
    config = EngineConfig(
        (MarketSpec(0, "BTC", sz_decimals=5, tick=1, lot=1),), oracle_publishers=(PUBLISHER,)
    )
    engine = Engine(config)
    engine.apply(Deposit(ALICE, 10_000_000_000, 0), NOW)
    engine.apply(PublishOraclePrice(PUBLISHER, 0, 600_000), NOW)
    engine.apply(Signed(ALICE, NOW, NOW + 5_000, PlaceOrder(ALICE, 0, True, 590_000, 100)), NOW)
    return engine


def test_a_block_start_is_a_time_tick_at_the_block_time() -> None:
    # far enough ahead that the oracle price is stale and funding samples are due
    later = NOW + 3_600_000
    ticked, marked = venue(), venue()
    tick_events = ticked.apply(AdvanceTime(), later)
    block_events = marked.apply(CommitteeBlock(7, 2, 0b1011), later)
    assert block_events == tick_events
    assert state_root(marked.state) == state_root(ticked.state)
    assert marked.state.time == later


def test_the_marker_round_trips_through_the_journal_codec() -> None:
    marker = CommitteeBlock(2**40, 3, (1 << 255) | 1)
    assert decode_command(encode_command(marker)) == marker


def test_a_trader_cannot_sign_a_block_marker() -> None:
    engine = venue()
    before = state_root(engine.state)
    events = engine.apply(Signed(ALICE, NOW + 1, 0, CommitteeBlock(1, 0, 1)), NOW)
    assert any(isinstance(event, Rejected) for event in events)
    assert state_root(engine.state) == before
