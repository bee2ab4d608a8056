"""Engine benchmark: deterministic generated workloads through ``Engine.apply``, one core.

Workloads (margin checks on, fees on, every command through the full transition):
- ``exchange-core``: the exchange-core mix (9% GTC place, 3% IOC, 6% cancel, 82% move of a
  resting order) on 1 market, and on 10 markets with 10,000 accounts.
- ``taker``: a taker-heavy mix (40% IOC crossing several levels, 50% GTC refill, 10% cancel).
- ``resting``: 1,000,000 resting orders held; memory per resting order.

Both implementations on the same generated streams, each in a process of its own: the
interpreted reference and the native core (``asyncdex.engine.native``), the latter both
through its batch entry point (the whole stream in one call, no event objects) and per
call (``apply`` from Python, events built). A comparison row drives the
``limit-order-book`` package from PyPI (the ``bench`` extra) through the same place, cancel,
modify and IOC stream: book only, no accounts, margin or fees.

The command stream is generated before timing by a shadow engine (so moves and cancels name
live orders), then replayed on a fresh engine: the timed loop is only ``apply``. It prints
figures and never asserts a duration.
"""

from __future__ import annotations

import gc
import json
import os
import random
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

from asyncdex.engine.transition import Engine
from asyncdex.messages.commands import (
    CancelOrder,
    Command,
    Deposit,
    ModifyOrder,
    PlaceOrder,
    PublishOraclePrice,
    TimeInForce,
)
from asyncdex.messages.events import OrderRested
from asyncdex.types.market import EngineConfig, MarketSpec
from asyncdex.types.numeric import MAX_COLLATERAL

PUBLISHER = b"\x0f" * 20
MID = 600_000  # $60,000.0 with sz_decimals 5 (price in 0.1 USDC)


def bench_config(markets: int) -> EngineConfig:
    specs = tuple(
        MarketSpec(m, f"M{m}", sz_decimals=5, tick=1, lot=1, min_order_value=1_000_000)
        for m in range(markets)
    )
    return EngineConfig(specs, oracle_publishers=(PUBLISHER,), max_open_orders_per_account=10**7)


def _address(i: int) -> bytes:
    return i.to_bytes(20, "big")


def _genesis(markets: int, accounts: int) -> list[Command]:
    # Generous collateral, within the venue-wide cap (MAX_COLLATERAL): a deposit past it is
    # refused, and an account without collateral would see every order refused, fast.
    amount = min(10**15, MAX_COLLATERAL // accounts)
    cmds: list[Command] = [Deposit(_address(i), amount, i) for i in range(accounts)]
    cmds += [PublishOraclePrice(PUBLISHER, m, MID) for m in range(markets)]
    return cmds


def generate(
    kind: str, markets: int, accounts: int, operations: int, seed: int = 7
) -> tuple[list[Command], list[Command]]:
    """Return (setup commands, timed commands) for a workload."""
    rng = random.Random(seed)
    config = bench_config(markets)
    shadow = Engine(config)
    setup = _genesis(markets, accounts)
    clock = 0
    for genesis in setup:
        refused = [e for e in shadow.apply(genesis, clock) if type(e).__name__ == "Rejected"]
        if refused:
            raise RuntimeError(f"the workload's genesis was refused: {genesis} -> {refused}")
    live: list[int] = []

    def place(cmd: PlaceOrder, out: list[Command]) -> None:
        nonlocal clock
        clock += 1
        out.append(cmd)
        for event in shadow.apply(cmd, clock // 64):
            if isinstance(event, OrderRested):
                live.append(event.order_id)

    # a book to work against: 20 resting orders per account-ish, spread around the mid
    for _ in range(min(accounts * 4, 40_000)):
        m = rng.randrange(markets)
        is_buy = rng.random() < 0.5
        offset = rng.randint(1, 500)
        price = MID - offset if is_buy else MID + offset
        acct = _address(rng.randrange(accounts))
        place(PlaceOrder(acct, m, is_buy, price, rng.randint(20, 200)), setup)
    timed: list[Command] = []
    orders = shadow.state.orders
    while len(timed) < operations:
        roll = rng.random()
        m = rng.randrange(markets)
        acct = _address(rng.randrange(accounts))
        is_buy = rng.random() < 0.5
        if kind == "exchange-core":
            p_gtc, p_ioc, p_cancel = 0.09, 0.12, 0.18
        else:
            p_gtc, p_ioc, p_cancel = 0.50, 0.90, 1.0
        if roll < p_gtc:
            offset = rng.randint(1, 500)
            price = MID - offset if is_buy else MID + offset
            place(PlaceOrder(acct, m, is_buy, price, rng.randint(20, 200)), timed)
        elif roll < p_ioc:
            depth = rng.randint(1, 60)
            price = MID + depth if is_buy else MID - depth
            place(PlaceOrder(acct, m, is_buy, price, rng.randint(20, 400), TimeInForce.IOC), timed)
        else:
            order = None
            while live and order is None:
                index = rng.randrange(len(live))
                candidate = orders.get(live[index])
                if candidate is None:
                    live[index] = live[-1]
                    live.pop()
                else:
                    order = candidate
            if order is None:
                continue
            if roll < p_cancel:
                cmd: Command = CancelOrder(order.account, order.market, order.order_id)
            else:
                # a move: a few ticks either way, never across the mid (makers re-quote)
                step = rng.randint(-5, 5) or 1
                price = order.price + step
                if order.is_buy:
                    price = min(max(price, MID - 500), MID - 1)
                else:
                    price = max(min(price, MID + 500), MID + 1)
                cmd = ModifyOrder(order.account, order.market, order.order_id, price, order.size)
            clock += 1
            timed.append(cmd)
            shadow.apply(cmd, clock // 64)
    return setup, timed


def _percentile(sorted_values: list[int], fraction: float) -> int:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))]


def run_stream(setup: list[Command], timed: list[Command], markets: int) -> dict[str, Any]:
    config = bench_config(markets)
    figures: dict[str, Any] = {}
    for pass_name in ("throughput", "latency"):
        engine = Engine(config)
        clock = 0
        for cmd in setup:
            clock += 1
            engine.apply(cmd, clock // 64)
        apply = engine.apply
        # as a node does after start-up: long-lived state moves out of the collector's sight
        # (gc.freeze), the collector stays on for what the timed loop allocates
        gc.collect()
        gc.freeze()
        try:
            if pass_name == "throughput":
                start = time.perf_counter()
                for cmd in timed:
                    clock += 1
                    apply(cmd, clock >> 6)
                elapsed = time.perf_counter() - start
                figures["ops_per_s"] = round(len(timed) / elapsed)
            else:
                samples = []
                now = time.perf_counter_ns
                for cmd in timed:
                    clock += 1
                    t0 = now()
                    apply(cmd, clock >> 6)
                    samples.append(now() - t0)
                samples.sort()
                figures["p50_us"] = round(_percentile(samples, 0.50) / 1000, 2)
                figures["p99_us"] = round(_percentile(samples, 0.99) / 1000, 2)
        finally:
            gc.unfreeze()
    return figures


def run_resting(count: int) -> dict[str, Any]:
    """Memory per resting order, with ``count`` orders resting on one market.

    Counted with tracemalloc (every allocation the orders cause: order objects, their
    integers, book levels, indexes), not RSS, which earlier workloads in the process blur.
    """
    config = bench_config(1)
    engine = Engine(config)
    accounts = max(1, count // 1000)
    for cmd in _genesis(1, accounts):
        engine.apply(cmd, 0)
    rng = random.Random(3)
    commands = []
    for i in range(count):
        is_buy = i % 2 == 0
        offset = rng.randint(1, 20_000)
        price = MID - offset if is_buy else MID + offset
        commands.append(PlaceOrder(_address(i % accounts), 0, is_buy, price, rng.randint(20, 200)))
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for cmd in commands:
        engine.apply(cmd, 0)
    commands.clear()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    resting = len(engine.state.orders)
    return {"resting_orders": resting, "bytes_per_order": round((after - before) / resting)}


def run_here(quick: bool = False) -> dict[str, Any]:
    """All workloads on the interpreted reference."""
    operations = 100_000 if quick else 1_000_000
    results: dict[str, Any] = {"implementation": "interpreted"}
    cases = [
        ("exchange_core_1_market", "exchange-core", 1, 1_000),
        ("exchange_core_10_markets_10k_accounts", "exchange-core", 10, 10_000),
        ("taker_heavy_1_market", "taker", 1, 1_000),
    ]
    for name, kind, markets, accounts in cases:
        setup, timed = generate(kind, markets, accounts, operations)
        results[name] = run_stream(setup, timed, markets)
        print(f"  {name:40s} {results[name]}", flush=True)
    results["resting_1m"] = run_resting(100_000 if quick else 1_000_000)
    print(f"  {'resting_1m':40s} {results['resting_1m']}", flush=True)
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return results


def _native_stream(setup: list[Command], timed: list[Command], markets: int) -> dict[str, Any]:
    """The native core on one stream: batch throughput and latency, then per call."""
    from asyncdex.engine.native import NativeEngine

    config = bench_config(markets)
    figures: dict[str, Any] = {}
    engine = NativeEngine(config)
    engine.run_stream(setup, 0)
    _, elapsed_ns, _, cpu_ns = engine.run_stream(timed, len(setup))
    figures["ops_per_s"] = round(len(timed) / (elapsed_ns / 1e9))
    # per CPU second of the thread: what one core does, whatever else the machine runs
    figures["ops_per_cpu_s"] = round(len(timed) / (cpu_ns / 1e9))
    engine = NativeEngine(config)
    engine.run_stream(setup, 0)
    _, _, samples, _ = engine.run_stream(timed, len(setup), latency=True)
    figures["p50_us"] = round(_percentile(samples, 0.50) / 1000, 3)
    figures["p99_us"] = round(_percentile(samples, 0.99) / 1000, 3)
    # per call: one Python call and the event objects per command, as a node applies them
    engine = NativeEngine(config)
    engine.run_stream(setup, 0)
    apply = engine.apply
    clock = len(setup)
    gc.collect()
    gc.freeze()
    try:
        start = time.perf_counter()
        for cmd in timed:
            clock += 1
            apply(cmd, clock >> 6)
        figures["per_call_ops_per_s"] = round(len(timed) / (time.perf_counter() - start))
        engine = NativeEngine(config)
        engine.run_stream(setup, 0)
        apply = engine.apply
        clock = len(setup)
        calls = []
        now = time.perf_counter_ns
        for cmd in timed:
            clock += 1
            t0 = now()
            apply(cmd, clock >> 6)
            calls.append(now() - t0)
        calls.sort()
        figures["per_call_p50_us"] = round(_percentile(calls, 0.50) / 1000, 3)
        figures["per_call_p99_us"] = round(_percentile(calls, 0.99) / 1000, 3)
    finally:
        gc.unfreeze()
    return figures


def _native_resting(count: int) -> dict[str, Any]:
    """Bytes per resting order in the native core: what its order pool, id index and price
    levels hold (capacities), plus whatever Python allocates meanwhile (tracemalloc)."""
    from asyncdex.engine.native import NativeEngine

    engine = NativeEngine(bench_config(1))
    accounts = max(1, count // 1000)
    engine.run_stream(_genesis(1, accounts), 0)
    rng = random.Random(3)
    commands: list[Command] = []
    for i in range(count):
        is_buy = i % 2 == 0
        offset = rng.randint(1, 20_000)
        price = MID - offset if is_buy else MID + offset
        commands.append(PlaceOrder(_address(i % accounts), 0, is_buy, price, rng.randint(20, 200)))
    before = engine.memory()
    gc.collect()
    tracemalloc.start()
    python_before = tracemalloc.get_traced_memory()[0]
    engine.run_stream(commands, 0)
    commands.clear()
    gc.collect()
    python_after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    after = engine.memory()
    resting = after["live_orders"]
    native = sum(after[k] - before[k] for k in ("orders", "id_index", "levels", "client_ids"))
    return {
        "resting_orders": resting,
        "bytes_per_order": round((native + max(0, python_after - python_before)) / resting),
        "order_record_bytes": after["order_size"],
    }


def _lob_stream(setup: list[Command], timed: list[Command]) -> dict[str, Any]:
    """``limit-order-book`` (PyPI) through the same stream, book only: a GTC place is a
    limit order, an IOC a limit order cancelled if anything rests, a cancel a cancel, a
    modify a cancel and a new limit order under the same id (the package has no modify)."""
    from limit_order_book import LimitOrderBook

    books: dict[int, Any] = {}
    side_of: dict[int, bool] = {}
    next_id = 1
    setup_calls: list[tuple[Any, ...]] = []
    timed_calls: list[tuple[Any, ...]] = []
    for phase, calls in ((setup, setup_calls), (timed, timed_calls)):
        for cmd in phase:
            if type(cmd) is PlaceOrder:
                book = books.setdefault(cmd.market, LimitOrderBook())
                side_of[next_id] = cmd.is_buy
                calls.append((0, book, cmd.is_buy, next_id, cmd.size, cmd.price, cmd.tif))
                next_id += 1
            elif type(cmd) is CancelOrder:
                calls.append((1, books[cmd.market], cmd.order_id))
            elif type(cmd) is ModifyOrder:
                is_buy = side_of[cmd.order_id]
                calls.append((2, books[cmd.market], is_buy, cmd.order_id, cmd.size, cmd.price))
    ioc = int(TimeInForce.IOC)

    def run(calls: list[tuple[Any, ...]], samples: list[int] | None) -> float:
        now = time.perf_counter_ns
        start = time.perf_counter()
        for call in calls:
            t0 = now() if samples is not None else 0
            kind = call[0]
            if kind == 0:
                _, book, is_buy, order_id, size, price, tif = call
                book.limit(is_buy, order_id, size, price)
                if tif == ioc and book.has(order_id):
                    book.cancel(order_id)
            elif kind == 1:
                call[1].cancel(call[2])
            else:
                _, book, is_buy, order_id, size, price = call
                book.cancel(order_id)
                book.limit(is_buy, order_id, size, price)
            if samples is not None:
                samples.append(now() - t0)
        return time.perf_counter() - start

    run(setup_calls, None)
    elapsed = run(timed_calls, None)
    for book in books.values():
        book.clear()
    run(setup_calls, None)
    samples: list[int] = []
    run(timed_calls, samples)
    samples.sort()
    return {
        "ops_per_s": round(len(timed_calls) / elapsed),
        "p50_us": round(_percentile(samples, 0.50) / 1000, 3),
        "p99_us": round(_percentile(samples, 0.99) / 1000, 3),
    }


def run_native(quick: bool = False) -> dict[str, Any]:
    """The native core (and the ``limit-order-book`` comparison row) on the same streams."""
    from asyncdex.engine.native import native_available, native_unavailable_reason

    if not native_available():
        return {"implementation": "native", "unavailable": native_unavailable_reason()}
    try:
        import limit_order_book  # noqa: F401
    except ImportError:
        lob_missing = "limit-order-book is not installed (pip install -e '.[bench]')"
    else:
        lob_missing = ""
    operations = 100_000 if quick else 1_000_000
    results: dict[str, Any] = {"implementation": "native"}
    lob: dict[str, Any] = {"implementation": "limit-order-book (PyPI), book only"}
    cases = [
        ("exchange_core_1_market", "exchange-core", 1, 1_000),
        ("exchange_core_10_markets_10k_accounts", "exchange-core", 10, 10_000),
        ("taker_heavy_1_market", "taker", 1, 1_000),
    ]
    for name, kind, markets, accounts in cases:
        setup, timed = generate(kind, markets, accounts, operations)
        results[name] = _native_stream(setup, timed, markets)
        print(f"  {name:40s} {results[name]}", flush=True)
        if lob_missing:
            lob[name] = {"unavailable": lob_missing}
        else:
            lob[name] = _lob_stream(setup, timed)
        print(f"  {name + ' (limit-order-book)':40s} {lob[name]}", flush=True)
    results["resting_1m"] = _native_resting(100_000 if quick else 1_000_000)
    print(f"  {'resting_1m':40s} {results['resting_1m']}", flush=True)
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    results["limit_order_book"] = lob
    return results


def run(quick: bool = False) -> dict[str, Any]:
    """Both implementations, each in its own process: the native core and the reference
    (the ``limit-order-book`` row comes with the native one)."""
    root = Path(__file__).resolve().parents[1]
    results: dict[str, Any] = {}
    for impl in ("native", "interpreted"):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (env.get("PYTHONPATH"), str(root))))
        print(f"engine ({impl}):", flush=True)
        args = [sys.executable, "-m", "benchmarks.engine_bench", *(["--quick"] if quick else [])]
        if impl == "native":
            args.append("--native")
        proc = subprocess.run(args, cwd=root, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"engine bench ({impl}) failed:\n{proc.stderr[-3000:]}")
        lines = proc.stdout.strip().splitlines()
        print("\n".join(lines[:-1]), flush=True)
        figures = json.loads(lines[-1])
        if impl == "native":
            results["limit_order_book"] = figures.pop("limit_order_book", None)
        results[impl] = figures
    return results


if __name__ == "__main__":
    if "--native" in sys.argv:
        print(json.dumps(run_native(quick="--quick" in sys.argv)))
    else:
        print(json.dumps(run_here(quick="--quick" in sys.argv)))
