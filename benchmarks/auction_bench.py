"""Batch-auction clearing benchmark: one auction over 10,000 waiting orders.

A batch-auction market (tick 0.10, lot 0.01) gets 10,000 limit orders from 200 accounts (100
buying, 100 selling, one side each) at 101 prices around the mark, all in one interval; then
one ``AdvanceTime`` at the interval's end runs the auction: clearing price, pro-rata
allocation, every fill's trade and fees, IOC clean-up. The figure is the time of that one
``apply``, measured over several fresh books (the placement is not timed; the collector stays
on with the long-lived objects frozen, as a node runs), on both engines:
the native core (its own clearing, when the extension is built; else left out with a
warning) and the interpreted reference, in one process (one engine at a time). Both must
clear to the same trades and volume.

Prints the figures (and ``--json``); never asserts a time. Run:
``python -m benchmarks.auction_bench [--orders N] [--repeat N]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from typing import Any

from asyncdex.engine.build import build_engine
from asyncdex.engine.native import native_available, native_unavailable_reason
from asyncdex.messages.commands import AdvanceTime, Deposit, PlaceOrder, PublishOraclePrice
from asyncdex.messages.events import AuctionCleared, TradeExecuted
from asyncdex.types.market import EngineConfig, MarketSpec

ORACLE = b"\x0f" * 20
SPEC = MarketSpec(
    0,
    "TST",
    sz_decimals=4,
    tick=10,
    lot=100,
    min_order_value=0,
    ordering="batch_auction",
    auction_interval_ms=1_000,
)
ACCOUNTS = tuple(index.to_bytes(20, "big") for index in range(1, 201))


def one_auction(kind: str, orders: int) -> tuple[float, int, int]:
    """(seconds of the auction, trades, volume) for a fresh book of ``orders`` orders on the
    engine ``kind``."""
    engine = build_engine(kind, EngineConfig((SPEC,), oracle_publishers=(ORACLE,)))
    for index, address in enumerate(ACCOUNTS):
        engine.apply(Deposit(address, 10**13, index), 1_000)
    engine.apply(PublishOraclePrice(ORACLE, 0, 10_000), 1_000)
    for k in range(orders):
        who = k % len(ACCOUNTS)
        price = 10_000 + ((k * 7_919) % 101 - 50) * SPEC.tick  # spread deterministically
        command = PlaceOrder(ACCOUNTS[who], 0, who < 100, price, SPEC.lot * (1 + k % 9))
        engine.apply(command, 1_100)
    assert len(engine.state.orders) == orders, "every order must wait for the auction"
    # The book and whatever the process imported are long-lived: moved out of the collector's
    # sight as a node runs (else the first full collection, triggered by the auction's
    # thousands of event objects, walks them all and is charged to the auction).
    gc.collect()
    gc.freeze()
    try:
        start = time.perf_counter()
        events = engine.apply(AdvanceTime(), 2_000)
        elapsed = time.perf_counter() - start
    finally:
        gc.unfreeze()
    cleared = [e for e in events if type(e) is AuctionCleared]
    trades = sum(1 for e in events if type(e) is TradeExecuted)
    return elapsed, trades, cleared[0].volume if cleared else 0


def run(kind: str, orders: int, repeat: int) -> dict[str, Any]:
    times = []
    trades = volume = 0
    for _ in range(repeat):
        elapsed, trades, volume = one_auction(kind, orders)
        times.append(elapsed * 1_000)
    return {
        "implementation": kind,
        "orders": orders,
        "trades": trades,
        "volume": volume,
        "median_ms": round(statistics.median(times), 2),
        "max_ms": round(max(times), 2),
        "load_average": os.getloadavg()[0],
    }


def run_both(orders: int, repeat: int) -> list[dict[str, Any]]:
    """``run`` on the native core (when it is built), then on the interpreted reference."""
    kinds = ["reference"]
    if native_available():
        kinds.insert(0, "native")
    else:
        print(f"warning: native core left out: {native_unavailable_reason()}", file=sys.stderr)
    results = [run(kind, orders, repeat) for kind in kinds]
    if len({(item["trades"], item["volume"]) for item in results}) != 1:
        raise RuntimeError(f"the engines cleared the auction differently: {results}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = run_both(args.orders, args.repeat)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for item in results:
        print(
            f"{item['implementation']:>9}: one auction of {item['orders']:,} orders "
            f"({item['trades']:,} trades): median {item['median_ms']} ms, "
            f"max {item['max_ms']} ms (load average {item['load_average']:.2f})"
        )


if __name__ == "__main__":
    main()
