"""The Hyperliquid ``/info`` module's pure parts, and :class:`Activity` against the real
engine: the fills, PnL, funding, builder fees and order statuses it derives must add up to
the balances and positions the engine itself holds."""

from __future__ import annotations

import itertools
import random

import pytest

from asyncdex.engine.transition import Engine
from asyncdex.gateway.hyperliquid.info import (
    CANCEL_STATUS,
    Activity,
    HlFill,
    apply_fill,
    fill_direction,
    format_mid,
    format_ppb,
    round_to_sig_figs,
    trigger_condition,
)
from asyncdex.messages.commands import (
    AdvanceTime,
    ApproveBuilderFee,
    CancelOrder,
    Command,
    Deposit,
    PlaceBuilderOrder,
    PlaceOrder,
    PublishOraclePrice,
    Signed,
    TimeInForce,
    TriggerKind,
)
from asyncdex.messages.events import OrderAccepted
from asyncdex.sequencer.sequencer import Sequenced
from asyncdex.types.market import EngineConfig, MarketSpec

BTC = MarketSpec(0, "BTC", 5, 1, 1, funding_interval_ms=60_000)
ETH = MarketSpec(1, "ETH", 4, 1, 1, funding_interval_ms=60_000)
PUBLISHER = b"\x01" * 20
ACCOUNTS = (b"\xaa" * 20, b"\xbb" * 20, b"\xcc" * 20)
BUILDER = b"\xbd" * 20
BUILDER_DEPOSIT = 100 * 10**6
DEPOSIT = 10**11
T0 = 1_700_000_000_000


def test_round_to_sig_figs_moves_bids_down_and_asks_up() -> None:
    assert round_to_sig_figs(599_900, 2, 1, up=False) == 590_000
    assert round_to_sig_figs(599_900, 2, 1, up=True) == 600_000
    assert round_to_sig_figs(600_000, 2, 1, up=True) == 600_000  # already on the grid
    assert round_to_sig_figs(612_345, 5, 2, up=False) == 612_340
    assert round_to_sig_figs(612_345, 5, 5, up=True) == 612_350
    assert round_to_sig_figs(123, 5, 1, up=False) == 123  # fewer digits than asked: kept


def test_formats() -> None:
    assert format_mid(BTC, 599_900, 600_100) == "60000"
    assert format_mid(BTC, 599_900, 600_101) == "60000.05"  # one decimal more when odd
    assert format_ppb(12_500) == "0.0000125"
    assert format_ppb(-4_000_000) == "-0.004"


@pytest.mark.parametrize(
    ("size", "entry", "price", "delta", "expected", "direction"),
    [
        (0, 0, 100, 5, (5, 500, 0), "Open Long"),
        (5, 500, 110, 5, (10, 1050, 0), "Open Long"),
        (10, 1050, 120, -4, (6, 630, 4 * 120 - 420), "Close Long"),
        (6, 630, 90, -6, (0, 0, 6 * 90 - 630), "Close Long"),
        (3, 300, 90, -5, (-2, -180, 3 * 90 - 300), "Long > Short"),
        (-2, -180, 80, 1, (-1, -90, 90 - 80), "Close Short"),
        (-1, -90, 100, 3, (2, 200, 90 - 100), "Short > Long"),
        (0, 0, 100, -5, (-5, -500, 0), "Open Short"),
    ],
)
def test_apply_fill_follows_the_engine_entry_rule(
    size: int,
    entry: int,
    price: int,
    delta: int,
    expected: tuple[int, int, int],
    direction: str,
) -> None:
    assert apply_fill(size, entry, price, delta) == expected
    assert fill_direction(size, delta) == direction


def test_trigger_condition_words() -> None:
    class Stop:
        is_buy = False
        trigger_kind = TriggerKind.STOP
        trigger_price = 550_000

    assert trigger_condition(BTC, Stop()) == "Price below 55000"  # type: ignore[arg-type]
    Stop.is_buy = True
    assert trigger_condition(BTC, Stop()) == "Price above 55000"  # type: ignore[arg-type]
    Stop.trigger_kind = TriggerKind.TAKE_PROFIT
    assert trigger_condition(BTC, Stop()) == "Price below 55000"  # type: ignore[arg-type]


class Venue:
    """The real engine, fed records as the node would, with an :class:`Activity` beside."""

    def __init__(self) -> None:
        self.engine = Engine(EngineConfig(markets=(BTC, ETH), oracle_publishers=(PUBLISHER,)))
        self.activity = Activity(self.engine.state)
        self.seq = itertools.count(1)
        self.nonces = itertools.count(T0)
        self.now = T0
        self.fills: list[HlFill] = []
        self.fundings: dict[bytes, int] = dict.fromkeys(ACCOUNTS, 0)

    def run(self, command: Command, signer: bytes | None = None) -> list[object]:
        self.now += 7
        if signer is not None:
            command = Signed(signer, next(self.nonces), 0, command)
        events = self.engine.apply(command, self.now)
        record = Sequenced(next(self.seq), self.now, command, b"", b"\x11" * 32)
        activity = self.activity.add(record, events, self.engine.state)
        self.fills.extend(activity.fills)
        for funding in activity.fundings:
            self.fundings[funding.account] += funding.usdc
        return list(events)


def test_activity_adds_up_to_the_engine_balances() -> None:
    rng = random.Random(6)
    venue = Venue()
    for index, account in enumerate(ACCOUNTS):
        venue.run(Deposit(account, DEPOSIT, index))
    venue.run(Deposit(BUILDER, BUILDER_DEPOSIT, len(ACCOUNTS)))
    for account in ACCOUNTS:
        venue.run(ApproveBuilderFee(account, BUILDER, 100), account)
    marks = {0: 600_000, 1: 300_000}
    for market, price in marks.items():
        venue.run(PublishOraclePrice(PUBLISHER, market, price))
    placed: list[tuple[bytes, int, int]] = []
    for step in range(600):
        account = rng.choice(ACCOUNTS)
        market = rng.randrange(2)
        if step % 50 == 49:
            venue.now += 30_000  # funding falls due every minute
            for market_id, price in marks.items():
                venue.run(PublishOraclePrice(PUBLISHER, market_id, price + rng.randrange(-50, 50)))
            venue.run(AdvanceTime())
        elif placed and rng.random() < 0.2:
            owner, market_id, order_id = placed.pop(rng.randrange(len(placed)))
            venue.run(CancelOrder(owner, market_id, order_id), owner)
        else:
            price = marks[market] + rng.randrange(-20, 21) * 10
            size = rng.randrange(20, 400)
            tif = rng.choice((TimeInForce.GTC, TimeInForce.IOC))
            is_buy = rng.random() < 0.5
            command: Command = PlaceOrder(account, market, is_buy, price, size, tif)
            if rng.random() < 0.3:  # a builder-coded order, up to the 0.1% cap
                fee = rng.randrange(0, 101)
                command = PlaceBuilderOrder(account, market, is_buy, price, size, BUILDER, fee, tif)
            for event in venue.run(command, account):
                if isinstance(event, OrderAccepted):
                    placed.append((account, market, event.order_id))

    state = venue.engine.state
    assert venue.fills and any(venue.fundings.values())
    assert any(fill.builder_fee for fill in venue.fills)
    paid_to_builder = sum(fill.builder_fee for fill in venue.fills)
    assert state.accounts[BUILDER].collateral == BUILDER_DEPOSIT + paid_to_builder
    for account in ACCOUNTS:
        held = state.accounts[account]
        fills = [fill for fill in venue.fills if fill.account == account]
        closed = sum(fill.closed_pnl for fill in fills)
        fees = sum(fill.fee + fill.builder_fee for fill in fills)
        entry = sum(position.entry_notional for position in held.positions.values())
        # the balance is the deposit plus realized PnL less fees (builder fees included) and
        # funding paid, less what the open positions cost
        assert held.collateral == DEPOSIT + closed - fees + venue.fundings[account] - entry
        for market_id in (0, 1):
            chain = [fill for fill in fills if fill.market == market_id]
            size = 0
            for fill in chain:
                assert fill.start_position == size
                size += fill.size if fill.is_buy else -fill.size
            position = held.positions.get(market_id)
            assert size == (position.size if position else 0)
        # newest first, bounded per account
        assert venue.activity.fills(account) == list(reversed(fills))[: len(fills)]

    # every order that left the book has its final status; live ones are open
    for order_id, order in state.orders.items():
        tracked = venue.activity.order(order_id)
        assert tracked is not None and tracked.status == "open"
        assert (tracked.size, tracked.orig_size) == (order.size, order.orig_size)
    for fill in venue.fills:
        tracked = venue.activity.order(fill.order_id)
        assert tracked is not None
        if fill.order_id not in state.orders:
            assert tracked.status in {"filled", *CANCEL_STATUS.values()}


def test_order_statuses_through_their_lives() -> None:
    venue = Venue()
    alice, bob = ACCOUNTS[:2]
    venue.run(Deposit(alice, DEPOSIT, 0))
    venue.run(Deposit(bob, DEPOSIT, 1))
    venue.run(PublishOraclePrice(PUBLISHER, 0, 600_000))
    (accepted,) = [
        e for e in venue.run(PlaceOrder(bob, 0, False, 600_100, 100, client_id=9), bob)
        if isinstance(e, OrderAccepted)
    ]  # fmt: skip
    ask = accepted.order_id
    order = venue.activity.order(ask)
    assert order is not None and (order.status, order.size, order.client_id) == ("open", 100, 9)
    assert venue.activity.order_by_cloid(bob, 9) is order
    assert venue.activity.order_by_cloid(alice, 9) is None

    venue.run(PlaceOrder(alice, 0, True, 600_100, 30, TimeInForce.IOC), alice)
    assert (order.status, order.size) == ("open", 70)
    (taker,) = [fill for fill in venue.fills if fill.crossed]
    assert (taker.account, taker.direction, taker.start_position) == (alice, "Open Long", 0)
    filled = venue.activity.order(taker.order_id)
    assert filled is not None and filled.status == "filled"
    assert filled.tif == TimeInForce.IOC  # from the command: it never rested to be read
    (maker,) = [fill for fill in venue.fills if not fill.crossed]
    assert (maker.client_id, maker.tid, maker.hash) == (9, taker.tid, taker.hash)

    venue.run(CancelOrder(bob, 0, ask), bob)
    cancelled = venue.activity.order_by_cloid(bob, 9)
    assert cancelled is not None and (cancelled.status, cancelled.size) == ("canceled", 70)
    assert cancelled.status_time == venue.now
