"""Book streams over random command streams (hypothesis): a mirror fed the node's snapshot and
deltas equals the engine's book after every command.

Each example runs a real engine over two markets and four funded accounts: limit orders of
every time in force on both sides near the mark, market orders sweeping levels, cancels
(by id and all), modifies (shrink in place, move, grow), stop and take-profit triggers fired
by oracle moves (some large enough to liquidate leveraged accounts), reduce-only orders.
After each command the server side (:func:`~asyncdex.gateway.streams.book_changes` over
:class:`~asyncdex.gateway.streams.BookLevels`) turns the record's events into deltas as the
node sends them, and a client :class:`~asyncdex.client.BookMirror` applies them. Checked
after every command, for every market:

- the tracked levels and the mirror both equal the engine's book, level by level (decimal
  strings parsed back), and the mirror is in sync and never crossed;
- a delta names only levels whose total changed, and each change is the level's new total;
- a snapshot taken at any step (a subscriber joining late) plus the deltas after it gives
  the same book as the one fed from the start.
"""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asyncdex.client import BookMirror
from asyncdex.engine.orderbook import Book
from asyncdex.engine.transition import Engine
from asyncdex.gateway.streams import BookLevels, book_changes, change_json, level_json
from asyncdex.messages.commands import (
    CancelAll,
    CancelOrder,
    Command,
    Deposit,
    ModifyOrder,
    OrderType,
    PlaceOrder,
    PublishOraclePrice,
    SetLeverage,
    Signed,
    TimeInForce,
    TriggerKind,
)
from asyncdex.types.market import EngineConfig, MarketSpec

SCALE = int(os.environ.get("ASYNCDEX_PROPERTY_SCALE", "1"))
PUBLISHER = b"\x01" * 20
ACCOUNTS = tuple(bytes([0xA0 + i]) * 20 for i in range(4))
SPECS = (
    MarketSpec(0, "BTC", sz_decimals=5, tick=10, lot=10),
    MarketSpec(1, "ETH", sz_decimals=4, tick=1, lot=10),
)
MARKS = (600_000, 300_000)  # $60,000.0 and $3,000.00
T0 = 1_767_225_600_000

operation = st.one_of(
    st.tuples(
        st.just("place"),
        st.integers(0, 3),  # account
        st.integers(0, 1),  # market
        st.booleans(),  # buy
        st.integers(-12, 12),  # ticks from the mark
        st.integers(1, 40),  # size in multiples of a $10 order
        st.sampled_from([TimeInForce.GTC] * 4 + list(TimeInForce)),
        st.sampled_from([False, False, False, False, True]),  # reduce only
    ),
    st.tuples(
        st.just("market"), st.integers(0, 3), st.integers(0, 1), st.booleans(), st.integers(1, 80)
    ),
    st.tuples(st.just("cancel"), st.integers(0, 1_000)),
    st.tuples(st.just("cancel_all"), st.integers(0, 3), st.sampled_from([-1, 0, 1])),
    st.tuples(st.just("modify"), st.integers(0, 1_000), st.integers(-12, 12), st.integers(1, 40)),
    st.tuples(
        st.just("trigger"),
        st.integers(0, 3),
        st.integers(0, 1),
        st.booleans(),
        st.integers(-30, 30),
        st.sampled_from([TriggerKind.STOP, TriggerKind.TAKE_PROFIT]),
        st.booleans(),
    ),
    st.tuples(st.just("oracle"), st.integers(0, 1), st.integers(-600, 600)),  # ppm-ish steps
    st.tuples(st.just("leverage"), st.integers(0, 3), st.integers(0, 1), st.integers(1, 20)),
)


def lots_for(spec: MarketSpec, price: int, orders: int) -> int:
    """A size of about ``orders`` times the $10 minimum order value (and never below it)."""
    return (-(-orders * spec.min_order_value // (price * spec.lot)) + 1) * spec.lot


def engine_levels(book: Book) -> tuple[dict[int, int], dict[int, int]]:
    def total(levels: dict[int, Any]) -> dict[int, int]:
        return {price: sum(o.size for o in level.values()) for price, level in levels.items()}

    return total(book.bids), total(book.asks)


def as_decimals(spec: MarketSpec, levels: dict[int, int]) -> list[tuple[Decimal, Decimal]]:
    return sorted(
        (Decimal(p), Decimal(s)) for p, s in (level_json(spec, *lv) for lv in levels.items())
    )


def snapshot_message(spec: MarketSpec, levels: BookLevels, seq: int) -> dict[str, Any]:
    bids, asks = levels.sides()
    return {
        "channel": "book",
        "type": "snapshot",
        "market": spec.symbol,
        "seq": seq,
        "bids": [level_json(spec, *level) for level in bids],
        "asks": [level_json(spec, *level) for level in asks],
    }


class Run:
    """An engine, the node's tracked levels, and client mirrors fed as over the socket."""

    def __init__(self) -> None:
        self.engine = Engine(EngineConfig(markets=SPECS, oracle_publishers=(PUBLISHER,)))
        self.now = T0
        self.nonce = T0
        self.seq = 0
        self.marks = list(MARKS)
        for index, account in enumerate(ACCOUNTS):
            self.apply(Deposit(account, 10**12, index))
        for market, mark in enumerate(MARKS):
            self.apply(PublishOraclePrice(PUBLISHER, market, mark))
        self.tracked = {m.spec.market_id: BookLevels(m.book) for m in self.engine.state.markets}
        self.mirrors = {spec.market_id: BookMirror(spec.symbol) for spec in SPECS}
        # each subscriber (socket) has its own prevSeq chain, as the node keeps per socket
        self.last_book_seq = {id(mirror): self.seq for mirror in self.mirrors.values()}
        for spec in SPECS:
            self.mirrors[spec.market_id].apply(
                snapshot_message(spec, self.tracked[spec.market_id], self.seq)
            )
        self.late: dict[int, BookMirror] = {}

    def apply(self, command: Command) -> list[Any]:
        self.seq += 1
        self.now += 7
        return self.engine.apply(command, self.now)

    def signed(self, account: bytes, command: Command) -> list[Any]:
        self.nonce += 1
        return self.apply(Signed(account, self.nonce, 0, command))

    def step(self, op: tuple[Any, ...]) -> None:
        state = self.engine.state
        kind = op[0]
        if kind == "place":
            _, who, market, buy, ticks, size, tif, reduce_only = op
            spec = SPECS[market]
            price = self.marks[market] + ticks * spec.tick * 10
            lots = lots_for(spec, price, size)
            command: Command = PlaceOrder(ACCOUNTS[who], market, buy, price, lots, tif,
                                          reduce_only=reduce_only)  # fmt: skip
            events = self.signed(ACCOUNTS[who], command)
        elif kind == "market":
            _, who, market, buy, size = op
            spec = SPECS[market]
            lots = lots_for(spec, self.marks[market], size)
            command = PlaceOrder(ACCOUNTS[who], market, buy, 0, lots, TimeInForce.IOC,
                                 OrderType.MARKET)  # fmt: skip
            events = self.signed(ACCOUNTS[who], command)
        elif kind == "cancel":
            orders = list(state.orders.values())
            if not orders:
                return
            order = orders[op[1] % len(orders)]
            events = self.signed(order.account, CancelOrder(order.account, order.market,
                                                            order.order_id))  # fmt: skip
        elif kind == "cancel_all":
            _, who, market = op
            events = self.signed(ACCOUNTS[who], CancelAll(ACCOUNTS[who], market))
        elif kind == "modify":
            orders = list(state.orders.values())
            if not orders:
                return
            _, pick, ticks, size = op
            order = orders[pick % len(orders)]
            spec = SPECS[order.market]
            price = self.marks[order.market] + ticks * spec.tick * 10
            lots = lots_for(spec, price, size)
            modify = ModifyOrder(order.account, order.market, order.order_id, price, lots)
            events = self.signed(order.account, modify)
        elif kind == "trigger":
            _, who, market, buy, ticks, trigger_kind, as_market = op
            spec = SPECS[market]
            trigger_price = self.marks[market] + ticks * spec.tick * 10
            lots = lots_for(spec, trigger_price, 2)
            command = PlaceOrder(
                ACCOUNTS[who], market, buy, 0 if as_market else trigger_price, lots,
                TimeInForce.IOC if as_market else TimeInForce.GTC,
                OrderType.MARKET if as_market else OrderType.LIMIT,
                trigger_price=trigger_price, trigger_kind=trigger_kind,
            )  # fmt: skip
            events = self.signed(ACCOUNTS[who], command)
        elif kind == "oracle":
            _, market, step = op
            spec = SPECS[market]
            mark = self.marks[market] * (10_000 + step) // 10_000 // spec.tick * spec.tick
            self.marks[market] = mark
            events = self.apply(PublishOraclePrice(PUBLISHER, market, mark))
        else:
            _, who, market, leverage = op
            events = self.signed(ACCOUNTS[who], SetLeverage(ACCOUNTS[who], market, leverage))
        self.feed(events)

    def feed(self, events: list[Any]) -> None:
        state = self.engine.state
        before = {m: (dict(lv.bids), dict(lv.asks)) for m, lv in self.tracked.items()}
        changes = book_changes(state, events, self.tracked)
        for market, changed in changes.items():
            spec = SPECS[market]
            bids, asks = before[market]
            for is_buy, price, size in changed:
                old = (bids if is_buy else asks).get(price, 0)
                assert old != size, "a delta names a level that did not change"
            for mirror in (self.mirrors[market], self.late.get(market)):
                if mirror is None:
                    continue
                delta = {
                    "channel": "book",
                    "type": "delta",
                    "market": spec.symbol,
                    "seq": self.seq,
                    "prevSeq": self.last_book_seq[id(mirror)],
                    "changes": [change_json(spec, *change) for change in changed],
                }
                self.last_book_seq[id(mirror)] = self.seq
                assert not mirror.apply(delta), "an exact stream never needs a resync"
        for market_state in state.markets:
            market = market_state.spec.market_id
            spec = SPECS[market]
            bids, asks = engine_levels(market_state.book)
            tracked = self.tracked[market]
            assert (tracked.bids, tracked.asks) == (bids, asks)
            for mirror in (self.mirrors[market], self.late.get(market)):
                if mirror is None:
                    continue
                assert mirror.synced
                assert sorted(mirror.bids()) == as_decimals(spec, bids)
                assert sorted(mirror.asks()) == as_decimals(spec, asks)
                best_bid, best_ask = mirror.best()
                assert best_bid is None or best_ask is None or best_bid < best_ask

    def join_late(self, market: int) -> None:
        """A subscriber arriving now: a snapshot of the tracked levels at the current seq."""
        mirror = BookMirror(SPECS[market].symbol)
        mirror.apply(snapshot_message(SPECS[market], self.tracked[market], self.seq))
        self.late[market] = mirror
        self.last_book_seq[id(mirror)] = self.seq


@settings(
    max_examples=100 * SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    operations=st.lists(operation, min_size=30, max_size=200),
    join_at=st.integers(0, 200),
)
def test_mirror_fed_snapshot_and_deltas_equals_the_engine_book(
    operations: list[tuple[Any, ...]], join_at: int
) -> None:
    run = Run()
    for index, op in enumerate(operations):
        if index == join_at:
            run.join_late(index % 2)
        run.step(op)
