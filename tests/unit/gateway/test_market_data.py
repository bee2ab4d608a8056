"""Market data stores: trades, candles (1m and aggregated), funding, fills, bounds; and the
account view's margin and liquidation figures."""

from __future__ import annotations

import pytest

from asyncdex.engine.state import Account, Position, State
from asyncdex.engine.transition import Engine
from asyncdex.gateway.market_data import (
    INTERVALS_MS,
    MINUTE_MS,
    MarketData,
    account_view,
    calculate_cross_liquidation_price,
    calculate_isolated_liquidation_price,
)
from asyncdex.messages.commands import (
    Command,
    Deposit,
    PlaceOrder,
    PublishOraclePrice,
    SetLeverage,
    Signed,
    TimeInForce,
)
from asyncdex.messages.events import Deposited, Event, FundingPaid, TradeExecuted
from asyncdex.types.market import EngineConfig, MarketSpec
from asyncdex.types.numeric import PPM

ALICE = b"\xaa" * 20
BOB = b"\xbb" * 20
CAROL = b"\xcc" * 20
HOUR_MS = 60 * MINUTE_MS
T0 = 1_700_000_000_000 - 1_700_000_000_000 % HOUR_MS  # on the hour


def trade(price: int, size: int, *, maker: bytes = ALICE, taker: bytes = BOB,
          taker_is_buy: bool = True, market: int = 0, maker_order: int = 1,
          taker_order: int = 2) -> TradeExecuted:  # fmt: skip
    return TradeExecuted(market, price, size, taker_is_buy, maker_order, taker_order, maker,
                         taker, 15, 45)  # fmt: skip


def test_trades_are_kept_newest_first_per_market() -> None:
    data = MarketData(2)
    data.add(1, T0, [trade(100, 1), Deposited(ALICE, 5, 0), trade(101, 2, market=1)])
    data.add(2, T0 + 5, [trade(102, 3)])
    assert [(t.seq, t.price, t.size) for t in data.trades(0, 10)] == [(2, 102, 3), (1, 100, 1)]
    assert [t.price for t in data.trades(0, 1)] == [102]
    assert [(t.market, t.price) for t in data.trades(1, 10)] == [(1, 101)]
    assert data.last_seq == 2


def test_one_minute_candles_open_high_low_close_volume_count() -> None:
    data = MarketData(1)
    data.add(1, T0 + 1_000, [trade(100, 1), trade(105, 2)])
    data.add(2, T0 + 59_999, [trade(95, 3)])
    data.add(3, T0 + MINUTE_MS, [trade(97, 4)])
    candles = data.candles(0, MINUTE_MS, 0, 2**63)
    assert [(c.start, c.open, c.high, c.low, c.close, c.volume, c.trades) for c in candles] == [
        (T0, 100, 105, 95, 95, 6, 3),
        (T0 + MINUTE_MS, 97, 97, 97, 97, 4, 1),
    ]


def test_higher_intervals_aggregate_the_minutes() -> None:
    data = MarketData(1)
    # minutes 0, 4, 5, 14, 15 and 61 of the hour
    for seq, (minute, price) in enumerate(
        [(0, 10), (4, 14), (5, 15), (14, 8), (15, 30), (61, 20)], start=1
    ):
        data.add(seq, T0 + minute * MINUTE_MS + 7, [trade(price, seq)])
    five = data.candles(0, INTERVALS_MS["5m"], 0, 2**63)
    assert [(c.start - T0) // MINUTE_MS for c in five] == [0, 5, 10, 15, 60]
    assert [(c.open, c.close, c.high, c.low, c.volume, c.trades) for c in five[:2]] == [
        (10, 14, 14, 10, 1 + 2, 2),
        (15, 15, 15, 15, 3, 1),
    ]
    quarter = data.candles(0, INTERVALS_MS["15m"], 0, 2**63)
    assert [(c.start - T0) // MINUTE_MS for c in quarter] == [0, 15, 60]
    assert (quarter[0].open, quarter[0].high, quarter[0].low, quarter[0].close) == (10, 15, 8, 8)
    assert quarter[0].volume == 1 + 2 + 3 + 4 and quarter[0].trades == 4
    hourly = data.candles(0, INTERVALS_MS["1h"], 0, 2**63)
    assert [(c.start, c.open, c.close, c.trades) for c in hourly] == [
        (T0, 10, 30, 5),
        (T0 + HOUR_MS, 20, 20, 1),
    ]
    # aggregation leaves the stored minutes as they were
    assert len(data.candles(0, MINUTE_MS, 0, 2**63)) == 6


def test_candle_range_selects_by_interval_start() -> None:
    data = MarketData(1)
    for seq in range(1, 6):
        data.add(seq, T0 + seq * MINUTE_MS, [trade(100 + seq, 1)])
    picked = data.candles(0, MINUTE_MS, T0 + 2 * MINUTE_MS, T0 + 4 * MINUTE_MS)
    assert [c.open for c in picked] == [102, 103, 104]
    assert data.candles(0, MINUTE_MS, T0 + 9 * MINUTE_MS, 2**63) == []
    with pytest.raises(ValueError):
        data.candles(0, 90_000, 0, 1)


def test_funding_history_by_time_range() -> None:
    data = MarketData(2)
    for hour in range(4):
        data.add(hour + 1, T0 + hour * HOUR_MS, [FundingPaid(0, 1_000 * hour, 600_000, hour, 0)])
    records = data.funding(0, T0 + HOUR_MS, T0 + 2 * HOUR_MS)
    assert [(r.seq, r.rate_ppb, r.cumulative_index) for r in records] == [
        (2, 1_000, 1),
        (3, 2_000, 2),
    ]
    assert data.funding(1, 0, 2**63) == []


def test_each_trade_is_a_fill_for_both_sides() -> None:
    data = MarketData(1)
    data.add(7, T0, [trade(100, 5, maker=ALICE, taker=BOB, taker_is_buy=False)])
    [maker_fill] = data.fills(ALICE, 10)
    [taker_fill] = data.fills(BOB, 10)
    assert (maker_fill.is_buy, maker_fill.is_maker, maker_fill.order_id, maker_fill.fee) == (
        True, True, 1, 15,
    )  # fmt: skip
    assert (taker_fill.is_buy, taker_fill.is_maker, taker_fill.order_id, taker_fill.fee) == (
        False, False, 2, 45,
    )  # fmt: skip
    assert maker_fill.seq == taker_fill.seq == 7
    assert data.fills(CAROL, 10) == [] and not data.has_fills(CAROL)


def test_stores_are_bounded_oldest_dropped_first() -> None:
    data = MarketData(
        1,
        trade_capacity=3,
        candle_capacity=2,
        funding_capacity=2,
        fill_capacity=2,
        account_capacity=2,
    )
    for seq in range(1, 6):
        data.add(
            seq,
            T0 + seq * MINUTE_MS,
            [trade(100 + seq, 1), FundingPaid(0, seq, 600_000, seq, 0)],
        )
    assert [t.seq for t in data.trades(0, 100)] == [5, 4, 3]
    assert [c.open for c in data.candles(0, MINUTE_MS, 0, 2**63)] == [104, 105]
    assert [r.seq for r in data.funding(0, 0, 2**63)] == [4, 5]
    assert [f.seq for f in data.fills(ALICE, 100)] == [5, 4]
    # a third account pushes out the one whose latest fill is oldest
    data.add(6, T0 + 6 * MINUTE_MS, [trade(100, 1, maker=ALICE, taker=CAROL)])
    assert data.has_fills(ALICE) and data.has_fills(CAROL) and not data.has_fills(BOB)
    with pytest.raises(ValueError):
        MarketData(1, fill_capacity=0)


def test_same_events_give_the_same_stores() -> None:
    def build() -> MarketData:
        data = MarketData(1)
        for seq in range(1, 50):
            data.add(seq, T0 + seq * 7_919, [trade(100 + seq % 7, seq % 5 + 1)])
        return data

    first, second = build(), build()
    assert first.trades(0, 100) == second.trades(0, 100)
    assert first.candles(0, 5 * MINUTE_MS, 0, 2**63) == second.candles(0, 5 * MINUTE_MS, 0, 2**63)
    assert first.fills(BOB, 100) == second.fills(BOB, 100)


# ---------------------------------------------------------------------------------------------
# Account view

SPEC = MarketSpec(0, "BTC", 5, 10, 10)  # 5% initial, 2.5% maintenance
MARK = 600_000


def state_with(account: Account) -> State:
    state = State(EngineConfig(markets=(SPEC,)))
    state.markets[0].mark_price = MARK
    state.accounts[account.address] = account
    return state


def position(
    size: int, entry_price: int, *, isolated: bool = False, iso_margin: int = 0
) -> Position:
    held = Position(leverage=20, imf=50_000)
    held.size = size
    held.entry_notional = entry_price * size
    held.isolated = isolated
    held.iso_margin = iso_margin
    return held


def liquidatable(equity: int, size: int, price: int) -> bool:
    """The engine's test, before it rounds the requirement up: equity under maintenance."""
    return equity * PPM < abs(size) * price * SPEC.maintenance_margin_ppm


def test_cross_long_view_and_its_liquidation_price_is_the_boundary() -> None:
    account = Account(ALICE)
    size = 1_000  # 0.01 BTC
    entry = 590_000
    account.collateral = 40_000_000 - entry * size  # $40 of own money plus the quote balance
    account.positions[0] = position(size, entry)
    view = account_view(state_with(account), account)
    [held] = view.positions
    assert held.unrealized_pnl == (MARK - entry) * size
    assert held.entry_price == entry
    assert held.margin_used == -(-size * MARK * 50_000 // PPM)
    assert view.cross_equity == account.collateral + size * MARK == view.equity
    price = held.liquidation_price
    assert price is not None and price < MARK
    # rounded up for a long: a falling mark reaches the figure before the account is liquidated
    assert not liquidatable(account.collateral + size * price, size, price)
    assert liquidatable(account.collateral + size * (price - 1), size, price - 1)


def test_cross_short_liquidation_price_is_the_boundary_above_the_mark() -> None:
    size = -1_000
    collateral = 40_000_000 + 1_000 * MARK  # $40 plus the proceeds of the short sale
    equity = collateral + size * MARK
    maintenance_ppm_sum = 1_000 * MARK * 25_000
    price = calculate_cross_liquidation_price(size, MARK, 25_000, equity, maintenance_ppm_sum)
    assert price is not None and price > MARK
    # rounded down for a short: a rising mark reaches the figure first
    assert not liquidatable(collateral + size * price, size, price)
    assert liquidatable(collateral + size * (price + 1), size, price + 1)


def test_isolated_liquidation_price_and_margin_used() -> None:
    account = Account(ALICE)
    size = 1_000
    iso = 30_000_000 - MARK * size  # $30 margin put up, then bought at the mark
    account.positions[0] = position(size, MARK, isolated=True, iso_margin=iso)
    view = account_view(state_with(account), account)
    [held] = view.positions
    assert held.margin_used == iso + size * MARK == 30_000_000  # the $30 put up, at entry
    price = held.liquidation_price
    assert price is not None and price < MARK
    assert not liquidatable(iso + size * price, size, price)
    assert liquidatable(iso + size * (price - 1), size, price - 1)
    assert view.equity == iso + size * MARK and view.cross_equity == 0


def test_no_liquidation_price_without_position_or_danger() -> None:
    assert calculate_isolated_liquidation_price(0, 5, 25_000) is None
    assert calculate_cross_liquidation_price(0, MARK, 25_000, 10, 0) is None
    # a long backed by more than its notional cannot be liquidated by any positive price
    assert calculate_cross_liquidation_price(10, MARK, 25_000, 10 * MARK + 10**9, 0) is None


# ---------------------------------------------------------------------------------------------
# Fed by a real engine

PUBLISHER = b"\x01" * 20


def test_stores_and_view_agree_with_the_engine() -> None:
    engine = Engine(EngineConfig(markets=(SPEC,), oracle_publishers=(PUBLISHER,)))
    data = MarketData(1)
    start = T0 + 1_000
    seq = 0
    emitted: list[Event] = []

    def run(command: Command, at: int) -> None:
        nonlocal seq
        seq += 1
        events = engine.apply(command, at)
        emitted.extend(events)
        data.add(seq, at, events)

    run(Deposit(ALICE, 10**11, 0), start)
    run(Deposit(BOB, 10**11, 1), start)
    run(Deposit(CAROL, 10**11, 2), start)
    run(PublishOraclePrice(PUBLISHER, 0, MARK), start)
    run(Signed(ALICE, start, 0, PlaceOrder(ALICE, 0, True, 599_990, 20)), start + 1)
    run(Signed(BOB, start, 0, PlaceOrder(BOB, 0, False, 599_990, 20, TimeInForce.IOC)), start + 2)
    # an isolated position with a resting order: its order is margined from the cross balance
    run(Signed(CAROL, start, 0, SetLeverage(CAROL, 0, 10, True)), start + 3)
    run(Signed(CAROL, start + 1, 0, PlaceOrder(CAROL, 0, False, 600_500, 30)), start + 4)
    run(PublishOraclePrice(PUBLISHER, 0, MARK + 100), start + HOUR_MS)

    [executed] = [e for e in emitted if isinstance(e, TradeExecuted)]
    [paid] = [e for e in emitted if isinstance(e, FundingPaid)]
    [public] = data.trades(0, 10)
    assert (public.seq, public.time, public.price, public.size) == (6, start + 2, 599_990, 20)
    [alice_fill] = data.fills(ALICE, 10)
    [bob_fill] = data.fills(BOB, 10)
    assert (alice_fill.is_buy, alice_fill.fee) == (True, executed.maker_fee)
    assert (bob_fill.is_buy, bob_fill.fee) == (False, executed.taker_fee)
    [record] = data.funding(0, 0, 2**63)
    assert (record.seq, record.time, record.rate_ppb) == (9, start + HOUR_MS, paid.rate_ppb)
    [minute] = data.candles(0, MINUTE_MS, 0, 2**63)
    assert (minute.start, minute.open, minute.volume, minute.trades) == (T0, 599_990, 20, 1)

    state = engine.state
    carol = state.accounts[CAROL].positions[0]
    assert carol.isolated and len(carol.orders) == 1
    for address in (ALICE, BOB, CAROL):
        account = state.accounts[address]
        view = account_view(state, account)
        assert (view.cross_equity, view.cross_initial, view.cross_maintenance) == (
            engine.cross_risk(account)
        )
