"""Batch-auction properties (hypothesis): the clearing price, the allocation, and why an
order's position inside a batch is worth nothing.

- The clearing price ``calculate_clearing`` picks is the one the rules in docs/engine.md name,
  checked by brute force over every price of the tick grid between the lowest and the highest
  order price: the largest executed volume, then the smallest imbalance, then the nearest to
  the mark, then the lower. (The engine-wide streams in ``test_engine_properties.py`` run
  batch-auction markets too: conservation, determinism, snapshots, the follower, and no
  crossed book right after each auction.)
- ``allocate_pro_rata`` hands out exactly the amount, in whole lots, never more than an
  order's size, and never less than its proportional share rounded down.
- Permuting the arrival of the orders of one interval gives every account the same fills (as a
  multiset of fill sizes), the same balance and position, and the same orders left in the book.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import NamedTuple

from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from asyncdex.engine.auction import allocate_pro_rata, calculate_clearing
from asyncdex.engine.transition import Engine
from asyncdex.messages.commands import AdvanceTime, Deposit, PlaceOrder, PublishOraclePrice
from asyncdex.messages.events import (
    AuctionCleared,
    OrderAccepted,
    Rejected,
    TradeExecuted,
)
from asyncdex.types.market import EngineConfig, MarketSpec

SCALE = float(os.environ.get("ASYNCDEX_PROPERTY_SCALE", "1"))


def engine_settings(examples: int) -> settings:
    return settings(
        max_examples=max(1, int(examples * SCALE)),
        deadline=None,
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
        suppress_health_check=[HealthCheck.too_slow],
    )


TICK = 10
levels = st.lists(
    st.tuples(st.integers(0, 30).map(lambda ticks: 9_850 + ticks * TICK), st.integers(1, 9)),
    max_size=8,
)


def brute_force_clearing(
    bids: list[tuple[int, int]], asks: list[tuple[int, int]], mark: int
) -> tuple[int, int] | None:
    """(price, volume) by trying every grid price from the lowest to the highest order price."""
    prices = [price for price, _ in bids + asks]
    if not bids or not asks:
        return None
    best: tuple[int, int, int, int] | None = None
    for price in range(min(prices), max(prices) + TICK, TICK):
        demand = sum(size for p, size in bids if p >= price)
        supply = sum(size for p, size in asks if p <= price)
        key = (-min(demand, supply), abs(demand - supply), abs(price - mark), price)
        if best is None or key < best:
            best = key
    assert best is not None
    return None if best[0] == 0 else (best[3], -best[0])


@engine_settings(examples=600)
@given(levels, levels, st.integers(9_700, 10_300))
def test_clearing_price_maximizes_volume_over_every_grid_price(
    bids: list[tuple[int, int]], asks: list[tuple[int, int]], mark: int
) -> None:
    clearing = calculate_clearing(bids, asks, TICK, mark)
    expected = brute_force_clearing(bids, asks, mark)
    if expected is None:
        assert clearing is None
        return
    assert clearing is not None
    assert (clearing.price, clearing.volume) == expected
    assert clearing.price % TICK == 0
    assert clearing.demand == sum(size for p, size in bids if p >= clearing.price)
    assert clearing.supply == sum(size for p, size in asks if p <= clearing.price)


@engine_settings(examples=400)
@given(
    st.lists(st.tuples(st.integers(1, 40), st.integers(0, 3)), min_size=1, max_size=8),
    st.integers(1, 5),
    st.data(),
)
def test_pro_rata_allocation_is_exact_whole_lots_and_fair(
    orders: list[tuple[int, int]], lot: int, data: st.DataObject
) -> None:
    sizes = [lots * lot for lots, _ in orders]
    owners = [bytes([owner]) * 20 for _, owner in orders]
    total = sum(sizes)
    amount = data.draw(st.integers(0, total // lot - 1)) * lot
    shares = allocate_pro_rata(sizes, owners, amount, lot)
    assert sum(shares) == amount
    for size, share in zip(sizes, shares, strict=True):
        assert share % lot == 0 and 0 <= share <= size
        fair = size // lot * (amount // lot) // (total // lot) * lot
        assert fair <= share <= fair + lot
    # arrival plays no part: the same orders in another order get the same shares
    order = data.draw(st.permutations(range(len(sizes))))
    again = allocate_pro_rata([sizes[i] for i in order], [owners[i] for i in order], amount, lot)
    assert Counter(zip(owners, sizes, shares, strict=True)) == Counter(
        zip([owners[i] for i in order], [sizes[i] for i in order], again, strict=True)
    )


# ------------------------------------------------------------------ one interval, permuted

ORACLE = b"\xa0" * 20
ACCOUNTS = tuple(bytes([0x10 + i]) * 20 for i in range(8))
SPEC = MarketSpec(
    0,
    "TST",
    sz_decimals=4,
    tick=TICK,
    lot=100,
    min_order_value=100_000,  # $0.10: the smallest order here is one lot at 99.00
    ordering="batch_auction",
    auction_interval_ms=1_000,
)


class Intent(NamedTuple):
    account: int
    is_buy: bool
    ticks: int  # price = 99.00 + ticks * 0.10
    lots: int
    ioc: bool


intents = st.builds(
    Intent,
    st.integers(0, len(ACCOUNTS) - 1),
    st.booleans(),
    st.integers(0, 20),
    st.integers(1, 30),
    st.booleans(),
)


def one_side_per_account(batch: list[Intent]) -> list[Intent]:
    """An account's first order fixes its side in the batch: an order crossing its own
    order of the other side would cancel it (self-trade prevention), which depends on who
    came first, so such orders are left out of the property."""
    sides: dict[int, bool] = {}
    kept = []
    for intent in batch:
        if sides.setdefault(intent.account, intent.is_buy) == intent.is_buy:
            kept.append(intent)
    return kept


class Outcome(NamedTuple):
    fills: dict[bytes, Counter[tuple[bool, int, int]]]  # account -> (is buy, price, size)
    balances: dict[bytes, tuple[int, int]]  # account -> (collateral, position)
    book: Counter[tuple[bytes, bool, int, int]]  # (account, is buy, price, size) left
    clearing: list[AuctionCleared]


def run_interval(earlier: list[Intent], batch: list[Intent]) -> Outcome:
    """Orders of an earlier interval rest through its auction, then ``batch`` arrives in the
    order given, then the auction runs."""
    engine = Engine(EngineConfig((SPEC,), oracle_publishers=(ORACLE,)))
    for index, address in enumerate(ACCOUNTS):
        engine.apply(Deposit(address, 10**12, index), 1_000)
    engine.apply(PublishOraclePrice(ORACLE, 0, 10_000), 1_000)
    owner: dict[int, bytes] = {}
    events = []
    for at, group in ((1_100, earlier), (2_100, batch)):
        for intent in group:
            command = PlaceOrder(
                ACCOUNTS[intent.account],
                0,
                intent.is_buy,
                9_900 + intent.ticks * TICK,
                intent.lots * SPEC.lot,
                1 if intent.ioc else 0,
            )
            placed = engine.apply(command, at)
            assert not any(type(e) is Rejected for e in placed), placed
            for item in placed:
                if type(item) is OrderAccepted:
                    owner[item.order_id] = item.account
            events += placed
        events += engine.apply(AdvanceTime(), at + 900)  # the auction of this interval
    fills: dict[bytes, Counter[tuple[bool, int, int]]] = {a: Counter() for a in ACCOUNTS}
    per_order: Counter[tuple[int, bool, int]] = Counter()
    for item in events:
        if type(item) is TradeExecuted:
            per_order[(item.taker_order, item.taker_is_buy, item.price)] += item.size
            per_order[(item.maker_order, not item.taker_is_buy, item.price)] += item.size
    for (order_id, is_buy, price), size in per_order.items():
        fills[owner[order_id]][(is_buy, price, size)] += 1
    state = engine.state
    balances = {}
    for address in ACCOUNTS:
        account = state.accounts[address]
        position = account.positions.get(0)
        balances[address] = (account.collateral, position.size if position else 0)
    book = Counter(
        (o.account, o.is_buy, o.price, o.size) for o in state.markets[0].book.orders_in_priority()
    )
    clearing = [e for e in events if type(e) is AuctionCleared]
    return Outcome(fills, balances, book, clearing)


@engine_settings(examples=300)
@given(st.lists(intents, max_size=6), st.lists(intents, min_size=1, max_size=10), st.data())
def test_position_inside_a_batch_is_worthless(
    earlier: list[Intent], batch: list[Intent], data: st.DataObject
) -> None:
    earlier = one_side_per_account(earlier)
    batch = one_side_per_account(batch)
    # the earlier interval's leftovers are on the book: keep the new orders from crossing
    # their own account's resting ones too
    batch = [
        i
        for i in batch
        if all(e.is_buy == i.is_buy for e in earlier if e.account == i.account and not e.ioc)
    ]
    # Other accounts' orders move anywhere around an account's own; an account's own orders
    # keep their relative order, which is that account's choice and ties between its own
    # equal orders are broken by it (the order ids), so no one else can gain from it.
    slots = data.draw(st.permutations([i.account for i in batch]))
    own = {a: [i for i in batch if i.account == a] for a in {i.account for i in batch}}
    permuted = [own[a].pop(0) for a in slots]
    note(f"earlier {earlier}\nbatch {batch}\npermuted {permuted}")
    first = run_interval(earlier, batch)
    second = run_interval(earlier, list(permuted))
    assert first.clearing == second.clearing
    assert first.fills == second.fills
    assert first.balances == second.balances
    assert first.book == second.book
