"""``asyncdex demo --engine-only``: a simulated session straight through the engine, with a
readable summary (no node, journal or chain: hours of venue time in seconds).

Invariants: the simulation is seeded, so a given ``--seed`` and ``--hours`` always produce the
same session, the same events and the same final state root. Randomness lives here, in the
simulated traders and oracle, never in the engine: everything reaches the engine as
sequenced commands with timestamps.

The session: three oracle publishers quote BTC and ETH from a random walk with jumps; market
makers re-quote ladders around the index; takers hit them with IOC, market, limit and
reduce-only orders and place stop-losses; one over-leveraged trader is liquidated by a
scripted price drop; funding is paid every hour; one trader withdraws.
"""

from __future__ import annotations

import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TextIO

from asyncdex.engine.build import build_engine
from asyncdex.engine.state_root import state_root
from asyncdex.messages.commands import (
    AdvanceTime,
    CancelAll,
    Command,
    Deposit,
    OrderType,
    PlaceOrder,
    PublishOraclePrice,
    SetLeverage,
    TimeInForce,
    TriggerKind,
    Withdraw,
)
from asyncdex.messages.events import (
    Event,
    FundingPaid,
    LiquidationStarted,
    PositionDeleveraged,
    Rejected,
    TradeExecuted,
)
from asyncdex.messages.reasons import Reject
from asyncdex.oracle.random_walk import RandomWalk
from asyncdex.types.hashing import keccak256
from asyncdex.types.market import EngineConfig, MarketSpec
from asyncdex.types.numeric import format_scaled, format_usdc

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z: any fixed origin keeps runs identical
USDC = 1_000_000


def _address(name: str) -> bytes:
    return keccak256(name.encode())[-20:]


PUBLISHERS = tuple(_address(f"publisher-{i}") for i in range(3))
MAKERS = tuple(_address(f"maker-{i}") for i in range(3))
TAKERS = tuple(_address(f"taker-{i}") for i in range(12))
DEGENS = (_address("over-leveraged-btc"), _address("over-leveraged-eth"))


def demo_config() -> EngineConfig:
    return EngineConfig(
        markets=(
            # BTC: sizes in 10^-5 BTC, prices in $0.1; tick $1, lot 0.0001 BTC
            MarketSpec(0, "BTC", sz_decimals=5, tick=10, lot=10),
            # ETH: sizes in 10^-4 ETH, prices in $0.01; tick $0.01, lot 0.001 ETH
            MarketSpec(1, "ETH", sz_decimals=4, tick=1, lot=10),
        ),
        oracle_publishers=PUBLISHERS,
    )


@dataclass
class DemoSummary:
    commands: int = 0
    events: Counter[str] = field(default_factory=Counter)
    rejections: Counter[str] = field(default_factory=Counter)
    volume: int = 0  # micro-USDC notional traded
    fees: int = 0
    liquidations: int = 0
    deleveraged: int = 0
    funding_payments: int = 0
    wall_seconds: float = 0.0
    state_root: str = ""
    conserved: bool = False


class DemoSession:
    def __init__(self, seed: int, out: TextIO | None, engine_kind: str = "reference") -> None:
        self.engine = build_engine(engine_kind, demo_config())
        self.rng = random.Random(seed)
        self.out = out
        self.now = START_MS
        self.summary = DemoSummary()
        self.walks = [
            RandomWalk(600_000, 10, seed * 7 + 1, volatility_ppm=600),  # BTC $60,000
            RandomWalk(300_000, 1, seed * 7 + 2, volatility_ppm=800),  # ETH $3,000
        ]
        self.l1_index = 0

    def send(self, command: Command) -> list[Event]:
        events = self.engine.apply(command, self.now)
        summary = self.summary
        summary.commands += 1
        for event in events:
            summary.events[type(event).__name__] += 1
            if isinstance(event, Rejected):
                summary.rejections[Reject(event.reason).name] += 1
            elif isinstance(event, TradeExecuted):
                summary.volume += event.price * event.size
                summary.fees += event.maker_fee + event.taker_fee
            elif isinstance(event, LiquidationStarted):
                summary.liquidations += 1
            elif isinstance(event, PositionDeleveraged):
                summary.deleveraged += 1
            elif isinstance(event, FundingPaid):
                summary.funding_payments += 1
        return events

    def deposit(self, account: bytes, usdc: int) -> None:
        self.send(Deposit(account, usdc * USDC, self.l1_index))
        self.l1_index += 1

    def publish(self) -> None:
        for market, walk in enumerate(self.walks):
            for i, publisher in enumerate(PUBLISHERS):
                self.send(PublishOraclePrice(publisher, market, walk.quote(i)))

    def requote(self, market: int) -> None:
        spec = self.engine.state.markets[market].spec
        index = self.engine.state.markets[market].index_price
        for i, maker in enumerate(MAKERS):
            self.send(CancelAll(maker, market))
            for level in range(1, 5):
                offset = (index * (3 + 4 * level + i) // 10_000) // spec.tick * spec.tick
                size = spec.lot * self.rng.randint(100, 500) * (1 if market == 0 else 2)
                self.send(PlaceOrder(maker, market, True, index - offset, size))
                self.send(PlaceOrder(maker, market, False, index + offset, size))

    def take(self) -> None:
        rng = self.rng
        trader = rng.choice(TAKERS)
        market = rng.randrange(2)
        state = self.engine.state.markets[market]
        spec = state.spec
        size = spec.lot * rng.randint(5, 60) * (1 if market == 0 else 10)
        roll = rng.random()
        is_buy = rng.random() < 0.5
        if roll < 0.45:
            self.send(PlaceOrder(trader, market, is_buy, 0, size, order_type=OrderType.MARKET))
        elif roll < 0.7:
            edge = state.index_price * rng.randint(-5, 15) // 10_000 // spec.tick * spec.tick
            price = state.index_price + edge if is_buy else state.index_price - edge
            self.send(PlaceOrder(trader, market, is_buy, price, size, TimeInForce.IOC))
        elif roll < 0.85:
            position = self.engine.state.accounts[trader].positions.get(market)
            if position is not None and position.size:
                self.send(
                    PlaceOrder(trader, market, position.size < 0, 0, abs(position.size),
                               order_type=OrderType.MARKET, reduce_only=True)
                )  # fmt: skip
        else:
            position = self.engine.state.accounts[trader].positions.get(market)
            if position is not None and position.size and not position.orders:
                # a protective stop 3% away from the mark
                mark = state.mark_price
                away = mark * 3 // 100 // spec.tick * spec.tick
                trigger = mark - away if position.size > 0 else mark + away
                self.send(
                    PlaceOrder(trader, market, position.size < 0, 0, abs(position.size),
                               order_type=OrderType.MARKET, reduce_only=True,
                               trigger_price=trigger, trigger_kind=TriggerKind.STOP)
                )  # fmt: skip

    def line(self, text: str) -> None:
        if self.out is not None:
            print(text, file=self.out, flush=True)

    def status(self, elapsed: float) -> None:
        markets = self.engine.state.markets
        parts = []
        for market in markets:
            spec = market.spec
            bid, ask = market.book.best_bid(), market.book.best_ask()
            decimals = spec.price_decimals
            parts.append(
                f"{spec.symbol} mark {format_scaled(market.mark_price, decimals):>9}"
                f" bid/ask {format_scaled(bid or 0, decimals)}/{format_scaled(ask or 0, decimals)}"
            )
        summary = self.summary
        minutes = (self.now - START_MS) // 60_000
        rate = summary.commands / elapsed if elapsed > 0 else 0
        self.line(
            f"t+{minutes // 60:02d}:{minutes % 60:02d}  " + "  ".join(parts)
            + f"  trades {summary.events['TradeExecuted']:>6}"
            + f"  liq {summary.liquidations}  {rate:,.0f} cmd/s"
        )  # fmt: skip

    def run(self, hours: float) -> DemoSummary:
        started = time.perf_counter()
        for maker in MAKERS:
            self.deposit(maker, 5_000_000)
        for taker in TAKERS:
            self.deposit(taker, 50_000)
        for degen in DEGENS:
            self.deposit(degen, 1_600)
        self.publish()
        for market in range(2):
            self.requote(market)
        # two over-leveraged traders go long about 19x: 0.5 BTC, and 10 ETH, on $1,600 each
        for market, (degen, size) in enumerate(zip(DEGENS, (50_000, 100_000), strict=True)):
            self.send(SetLeverage(degen, market, 20))
            self.send(PlaceOrder(degen, market, True, 0, size, order_type=OrderType.MARKET))
        total_seconds = int(hours * 3600)
        # a 5.5% drop: the BTC trader is closed through the book, the fee funds the insurance;
        # then a 9% gap in ETH: bankrupt beyond what the fund holds, so ADL steps in
        shocks = {total_seconds * 2 // 5: (0, -55_000), total_seconds * 3 // 5: (1, -90_000)}
        for second in range(1, total_seconds + 1):
            self.now += 1_000
            shock = shocks.get(second)
            if shock is not None:
                market, ppm = shock
                symbol = self.engine.state.markets[market].spec.symbol
                self.line(f"-- scripted shock: {symbol} falls {-ppm / 10_000:g}% --")
                self.walks[market].move_by(ppm)
            if second % 3 == 0 or shock is not None:
                self.publish()
            if second % 3 == 1:
                self.requote(second % 2)
            if self.rng.random() < 0.6:
                self.take()
            if second == total_seconds // 2:
                self.send(Withdraw(TAKERS[0], 1_000 * USDC))
            self.send(AdvanceTime())
            if second % 1800 == 0:
                self.status(time.perf_counter() - started)
        summary = self.summary
        summary.wall_seconds = time.perf_counter() - started
        state = self.engine.full_state()
        summary.state_root = state_root(state).hex()
        summary.conserved = state.total_money() == state.total_deposited - state.total_withdrawn
        return summary


def print_summary(session: DemoSession, out: TextIO) -> None:
    summary = session.summary
    state = session.engine.full_state()
    rows = [
        ("commands applied", f"{summary.commands:,}"),
        ("trades", f"{summary.events['TradeExecuted']:,}"),
        ("volume", f"${format_usdc(summary.volume)}"),
        ("fees to the fee pool", f"${format_usdc(state.fee_pool)}"),
        ("commands rejected", f"{summary.events['Rejected']:,} {dict(summary.rejections)}"),
        ("stops triggered", f"{summary.events['OrderTriggered']:,}"),
        ("funding payments", f"{summary.funding_payments}"),
        ("liquidations", f"{summary.liquidations}"),
        ("auto-deleveraged fills", f"{summary.deleveraged}"),
        ("insurance fund", f"${format_usdc(state.insurance_fund)}"),
        ("withdrawn", f"${format_usdc(state.total_withdrawn)}"),
        ("money conserved", "yes" if summary.conserved else "NO"),
        ("final state root", "0x" + summary.state_root),
        ("engine speed", f"{summary.commands / summary.wall_seconds:,.0f} commands/s"),
    ]
    print("\nasyncdex demo summary", file=out)
    for name, value in rows:
        print(f"  {name:<24} {value}", file=out)


def run_demo(
    hours: float = 3.0, seed: int = 1, quiet: bool = False, engine_kind: str = "reference"
) -> DemoSummary:
    out = None if quiet else sys.stdout
    session = DemoSession(seed, out, engine_kind)
    session.line(
        f"asyncdex demo --engine-only: {hours:g} simulated hours, seed {seed}, "
        f"engine {session.engine.kind}"
    )
    summary = session.run(hours)
    if out is not None:
        print_summary(session, out)
    return summary
