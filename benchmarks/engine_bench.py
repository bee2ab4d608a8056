"""Engine benchmark: deterministic generated workloads through ``Engine.apply``, one core.

Workloads (margin checks on, fees on, every command through the full transition):
- ``exchange-core``: the exchange-core mix (9% GTC place, 3% IOC, 6% cancel, 82% move of a
  resting order) on 1 market, and on 10 markets with 10,000 accounts.
- ``taker``: a taker-heavy mix (40% IOC crossing several levels, 50% GTC refill, 10% cancel).
- ``resting``: 1,000,000 resting orders held; memory per resting order.

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

from asyncdex.engine.compiled import compiled_env, is_compiled
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
    for cmd in setup:
        refused = [e for e in shadow.apply(cmd, clock) if type(e).__name__ == "Rejected"]
        if refused:
            raise RuntimeError(f"the workload's genesis was refused: {cmd} -> {refused}")
    live: list[int] = []

    def place(cmd: PlaceOrder, out: list[Command]) -> None:
        nonlocal clock
        clock += 1
        out.append(cmd)
        for event in shadow.apply(cmd, clock // 64):
            if type(event).__name__ == "OrderRested":
                live.append(event[0])

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
    """All workloads on the engine this interpreter imports."""
    operations = 100_000 if quick else 1_000_000
    results: dict[str, Any] = {"implementation": "compiled" if is_compiled() else "interpreted"}
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


def run(quick: bool = False) -> dict[str, Any]:
    """Both implementations, each in its own process: the compiled build and the reference."""
    root = Path(__file__).resolve().parents[1]
    results: dict[str, Any] = {}
    for impl in ("compiled", "interpreted"):
        env = compiled_env() if impl == "compiled" else dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (env.get("PYTHONPATH"), str(root))))
        print(f"engine ({impl}):", flush=True)
        args = [sys.executable, "-m", "benchmarks.engine_bench", *(["--quick"] if quick else [])]
        proc = subprocess.run(args, cwd=root, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"engine bench ({impl}) failed:\n{proc.stderr[-3000:]}")
        lines = proc.stdout.strip().splitlines()
        print("\n".join(lines[:-1]), flush=True)
        results[impl] = json.loads(lines[-1])
    return results


if __name__ == "__main__":
    print(json.dumps(run_here(quick="--quick" in sys.argv)))
