"""Order book of one market: resting limit orders in price-time priority.

Invariants:
- A price level is a ``dict`` from order id to ``Order``; dicts keep insertion order, so the
  first key is the oldest order at that price (time priority) and removal is O(1).
- ``bid_prices`` and ``ask_prices`` hold exactly the prices that have a non-empty level,
  ascending: the best bid is ``bid_prices[-1]``, the best ask ``ask_prices[0]``.
- The book of a continuous market is never crossed after a command: the matching code
  removes liquidity before it rests an order, so ``best_bid < best_ask`` whenever both exist
  (``check_invariants``). A batch-auction market's book may be crossed between auctions
  (orders wait there for the next one); it is never crossed right after an auction.
- Every resting order has ``size > 0``; an order whose size reaches 0 leaves the book at once.
- The book only holds orders: it knows nothing of accounts, margin or fees.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from operator import attrgetter


class Order:
    """A live order. Mutable on purpose: ``size`` shrinks as it fills, in place, cheaply."""

    __slots__ = (
        "account",
        "builder",
        "builder_fee",
        "client_id",
        "expiry",
        "is_buy",
        "market",
        "order_id",
        "order_type",
        "orig_size",
        "price",
        "reduce_only",
        "size",
        "tif",
        "timestamp",
        "trigger_kind",
        "trigger_price",
    )

    def __init__(
        self,
        order_id: int,
        account: bytes,
        market: int,
        is_buy: bool,
        price: int,
        size: int,
        tif: int,
        reduce_only: bool,
        client_id: int,
        expiry: int,
        timestamp: int,
        trigger_kind: int = 0,
        trigger_price: int = 0,
        order_type: int = 0,
        builder: bytes = b"",
        builder_fee: int = 0,
    ) -> None:
        self.order_id = order_id
        self.account = account
        self.market = market
        self.is_buy = is_buy
        self.price = price
        self.size = size
        self.orig_size = size
        self.tif = tif
        self.reduce_only = reduce_only
        self.client_id = client_id
        self.expiry = expiry
        self.timestamp = timestamp
        self.trigger_kind = trigger_kind
        self.trigger_price = trigger_price
        self.order_type = order_type
        self.builder = builder  # b"" = none; else paid ``builder_fee`` on every fill
        self.builder_fee = builder_fee  # tenths of a basis point of the fill's notional

    def to_list(self) -> list[object]:
        """The order's fields in ``ORDER_FIELDS`` order, the builder's two only when it has
        one: an order without a builder is written (and committed) as before builders."""
        # one C-level call for the fifteen reads: snapshots and roots list every live order
        items: list[object] = list(_ORDER_VALUES(self))
        if self.builder:
            items.append(self.builder)
            items.append(self.builder_fee)
        return items

    @classmethod
    def from_list(cls, items: list[object]) -> Order:
        """Inverse of ``to_list`` (for snapshots)."""
        if len(items) != len(ORDER_FIELDS) and len(items) != len(ORDER_FIELDS) + 2:
            raise ValueError(f"an order has {len(ORDER_FIELDS)} or {len(ORDER_FIELDS) + 2} fields")
        # positional, in ``ORDER_FIELDS`` order (the snapshot round trips hold the two together):
        # restoring a snapshot or exporting the native core builds every live order this way
        (order_id, account, market, is_buy, price, size, orig_size, tif, reduce_only,
         client_id, expiry, timestamp, trigger_kind, trigger_price, order_type,
         *builder) = items  # fmt: skip
        order = cls(
            order_id, account, market, is_buy, price, size, tif, reduce_only,  # type: ignore[arg-type]
            client_id, expiry, timestamp, trigger_kind, trigger_price, order_type,  # type: ignore[arg-type]
            *builder,  # type: ignore[arg-type]
        )  # fmt: skip
        order.orig_size = orig_size  # type: ignore[assignment]
        return order

    def __repr__(self) -> str:
        side = "buy" if self.is_buy else "sell"
        return f"Order({self.order_id} {side} {self.size}/{self.orig_size} @ {self.price})"


ORDER_FIELDS = (
    "order_id",
    "account",
    "market",
    "is_buy",
    "price",
    "size",
    "orig_size",
    "tif",
    "reduce_only",
    "client_id",
    "expiry",
    "timestamp",
    "trigger_kind",
    "trigger_price",
    "order_type",
)
BUILDER_FIELDS = ("builder", "builder_fee")
_ORDER_VALUES = attrgetter(*ORDER_FIELDS)


class Book:
    __slots__ = ("ask_prices", "asks", "bid_prices", "bids", "market")

    def __init__(self, market: int) -> None:
        self.market = market
        self.bids: dict[int, dict[int, Order]] = {}
        self.asks: dict[int, dict[int, Order]] = {}
        self.bid_prices: list[int] = []
        self.ask_prices: list[int] = []

    def best_bid(self) -> int | None:
        return self.bid_prices[-1] if self.bid_prices else None

    def best_ask(self) -> int | None:
        return self.ask_prices[0] if self.ask_prices else None

    def add(self, order: Order) -> None:
        """Rest ``order`` at the back of its price level."""
        if order.is_buy:
            levels, prices = self.bids, self.bid_prices
        else:
            levels, prices = self.asks, self.ask_prices
        level = levels.get(order.price)
        if level is None:
            levels[order.price] = {order.order_id: order}
            insort(prices, order.price)
        else:
            level[order.order_id] = order

    def remove(self, order: Order) -> None:
        """Take ``order`` off the book (it must be resting)."""
        if order.is_buy:
            levels, prices = self.bids, self.bid_prices
        else:
            levels, prices = self.asks, self.ask_prices
        level = levels[order.price]
        del level[order.order_id]
        if not level:
            del levels[order.price]
            del prices[bisect_left(prices, order.price)]

    def level_sizes(self, is_buy: bool, depth: int) -> list[tuple[int, int, int]]:
        """The best ``depth`` levels of one side as (price, total size, order count)."""
        levels = self.bids if is_buy else self.asks
        prices = reversed(self.bid_prices) if is_buy else iter(self.ask_prices)
        out: list[tuple[int, int, int]] = []
        for price in prices:
            if len(out) == depth:
                break
            level = levels[price]
            out.append((price, sum(o.size for o in level.values()), len(level)))
        return out

    def orders_in_priority(self) -> list[Order]:
        """All resting orders: bids best first then asks best first, time order within a level."""
        out: list[Order] = []
        for price in reversed(self.bid_prices):
            out.extend(self.bids[price].values())
        for price in self.ask_prices:
            out.extend(self.asks[price].values())
        return out

    def check_invariants(self, may_cross: bool = False) -> None:
        """Raise AssertionError when the book is crossed (unless ``may_cross``: a
        batch-auction book between auctions) or its indexes disagree."""
        assert self.bid_prices == sorted(self.bids), "bid price index out of sync"
        assert self.ask_prices == sorted(self.asks), "ask price index out of sync"
        for levels, is_buy in ((self.bids, True), (self.asks, False)):
            for price, level in levels.items():
                assert level, f"empty level left at {price}"
                for order in level.values():
                    assert order.size > 0 and order.price == price and order.is_buy == is_buy
        bid, ask = self.best_bid(), self.best_ask()
        assert may_cross or bid is None or ask is None or bid < ask, f"book crossed: {bid} >= {ask}"
