"""Frequent batch auctions: the uniform clearing price and the pro-rata allocation.

Invariants:
- Pure integer functions of their arguments: no state, clock, randomness or float. The
  engine (``Engine.process_auction``) applies what they compute.
- The clearing price maximizes the executed volume ``min(demand(p), supply(p))``, where
  ``demand(p)`` is the size of the bids priced at or above ``p`` and ``supply(p)`` that of
  the asks at or below ``p``. Among the prices of the tick grid that do, it takes the one with
  the smallest imbalance ``|demand(p) - supply(p)|``, then the one closest to the mark, then
  the lower. Order prices are on the tick grid, so the price is too.
- An allocation never gives an order more than its size, gives sizes in whole lots, and
  sums to exactly the amount allocated; it does not depend on the orders' arrival (their
  order in the list only breaks ties between orders of the same account and size, whose
  swap changes nobody's fills).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple


class Clearing(NamedTuple):
    price: int
    volume: int  # executed size: min(demand, supply) at ``price``
    demand: int  # bid size at or above ``price``
    supply: int  # ask size at or below ``price``


def calculate_clearing(
    bids: Sequence[tuple[int, int]], asks: Sequence[tuple[int, int]], tick: int, mark: int
) -> Clearing | None:
    """The clearing of ``bids`` and ``asks`` (``(price, size)`` pairs, any order), or None
    when nothing crosses. ``mark`` only breaks ties (0, no mark: the lowest price wins)."""
    if not bids or not asks:
        return None
    if max(price for price, _ in bids) < min(price for price, _ in asks):
        return None
    bid_at: dict[int, int] = {}
    ask_at: dict[int, int] = {}
    for price, size in bids:
        bid_at[price] = bid_at.get(price, 0) + size
    for price, size in asks:
        ask_at[price] = ask_at.get(price, 0) + size
    prices = sorted(bid_at.keys() | ask_at.keys())
    count = len(prices)
    # demand[i]: bids priced >= prices[i]; supply[i]: asks priced <= prices[i]
    demand = [0] * count
    supply = [0] * count
    running = 0
    for i in range(count - 1, -1, -1):
        running += bid_at.get(prices[i], 0)
        demand[i] = running
    running = 0
    for i in range(count):
        running += ask_at.get(prices[i], 0)
        supply[i] = running
    best: tuple[int, int, int, int] | None = None
    chosen = None
    for i in range(count):
        candidates = [(prices[i], demand[i], supply[i])]
        if i + 1 < count and prices[i + 1] - prices[i] > tick:
            # strictly inside a gap between two order prices demand is that of the upper
            # price and supply that of the lower: one candidate, the grid price nearest the mark
            low, high = prices[i] + tick, prices[i + 1] - tick
            candidates.append((nearest_on_grid(mark, low, high, tick), demand[i + 1], supply[i]))
        for price, d, s in candidates:
            key = (-min(d, s), abs(d - s), abs(price - mark), price)
            if best is None or key < best:
                best = key
                chosen = Clearing(price, min(d, s), d, s)
    if chosen is None or chosen.volume == 0:
        return None
    return chosen


def nearest_on_grid(mark: int, low: int, high: int, tick: int) -> int:
    """The multiple of ``tick`` in ``[low, high]`` (both multiples) closest to ``mark``; the
    lower of two equally close."""
    if mark <= low:
        return low
    if mark >= high:
        return high
    down = mark // tick * tick
    if down == mark:
        return mark
    up = down + tick
    return down if mark - down <= up - mark else up


def allocate_pro_rata(
    sizes: Sequence[int], tiebreak: Sequence[bytes], amount: int, lot: int
) -> list[int]:
    """Split ``amount`` (a multiple of ``lot``, less than ``sum(sizes)``) among orders of
    ``sizes`` (multiples of ``lot``) in proportion to their size, in whole lots.

    Each order first gets ``floor(size * amount / total)`` in lots; the lots left (fewer
    than the orders) go one each to the largest fractional remainders, ties to the larger
    order, then to the lower ``tiebreak`` (the owner's address), then to the earlier in the
    list (only between orders of one owner and one size, so nobody's fills change).
    """
    total = sum(sizes) // lot
    units = amount // lot
    shares = []
    remainders = []
    given = 0
    for index, size in enumerate(sizes):
        scaled = size // lot * units
        share = scaled // total
        shares.append(share)
        given += share
        remainders.append((-(scaled % total), -size, tiebreak[index], index))
    remainders.sort()
    for _, _, _, index in remainders[: units - given]:
        shares[index] += 1
    return [share * lot for share in shares]
