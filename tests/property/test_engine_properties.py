"""Engine properties over random command streams (hypothesis).

A scenario is 2-3 markets with different size decimals, ticks, lots, leverage and fees, 3-12
funded accounts (some isolated in every market), three oracle publishers, optionally a quoted
book, and a stream of abstract operations. Each operation becomes a concrete command against
the live engine just before it is applied, so cancels and modifies name live orders, prices
sit on the tick near the current mark and sizes are whole lots of a plausible notional. The
stream has every command kind: deposits and forced L1 requests, oracle prints (several
publishers, small and large moves, "crashes" aimed at the most leveraged positions), limit
and market orders of every time in force, reduce-only, triggers, expiries, client ids,
cancels (by id, client id, all), modifies, leverage and isolated-margin changes, withdrawals,
dead-man switches, time ticks over funding intervals and oracle staleness, agents, builder
approvals and builder-coded orders (fees up to and beyond the approval and the cap), signed
envelopes with fresh, reused and out-of-window nonces, protective mode. A minority of commands
is deliberately wrong (unknown ids, accounts, publishers, markets, agents; off tick, off lot,
zero sizes, bad enums, stale prices, withdrawals beyond the balance, wrong L1 indexes).

Properties, checked after every command:
- conservation: ``total_money() == deposited - withdrawn``, both counted from the events;
- books never crossed, and every engine index agrees with the orders (``check_state``);
- follower: balances, positions, insurance fund and fee pool rebuilt from the events alone
  equal the state (``Follower``: every money movement has an event, builder fees included);
  every trade is at the maker's price, within the taker's limit, between two accounts, with
  the market's fees;
- liquidation: after a mark update no holder of that market is left below maintenance;
- a rejected command emits only its ``Rejected`` event and changes nothing: state root and
  snapshot bytes equal before and after (checked when the timestamp does not move the clock,
  so nothing time-driven runs first), except what the engine spends on purpose: the nonce of
  an authorized signed envelope, and the index of an L1 message (``L1MessageConsumed``);
and over whole streams:
- determinism: the recorded concrete stream on a fresh engine gives the same events, roots
  after every step and final snapshot bytes;
- snapshots: a snapshot at a random step restored and fed the tail gives the same events,
  root and final snapshot bytes as the full stream, and ``snapshot(restore(b)) == b``.

A failure prints the whole concrete stream as ``engine.apply(...)`` lines for a reproduction.
``ASYNCDEX_PROPERTY_SCALE=10`` runs ten times as many examples.
"""

from __future__ import annotations

import os
from bisect import insort
from collections import deque
from enum import IntEnum
from typing import Any, NamedTuple

from hypothesis import HealthCheck, Phase, event, given, note, settings
from hypothesis import strategies as st

from asyncdex.engine.margin import fee_charged, funding_payment, initial_fraction_ppm
from asyncdex.engine.snapshot import restore, snapshot
from asyncdex.engine.state import MarketState, State
from asyncdex.engine.state_root import state_root
from asyncdex.engine.transition import NONCE_FUTURE_MS, NONCE_PAST_MS, NONCES_KEPT, Engine
from asyncdex.messages.codec import COMMAND_TAG
from asyncdex.messages.commands import (
    ALL_MARKETS,
    AdvanceTime,
    ApproveAgent,
    ApproveBuilderFee,
    Batch,
    CancelAll,
    CancelByClientId,
    CancelOrder,
    Command,
    Deposit,
    ForceCancelAll,
    ForceWithdraw,
    ModifyOrder,
    OrderType,
    PlaceBuilderOrder,
    PlaceOrder,
    PublishOraclePrice,
    ScheduleCancel,
    SetLeverage,
    SetProtectiveMode,
    Signed,
    TimeInForce,
    TriggerKind,
    UpdateIsolatedMargin,
    Withdraw,
)
from asyncdex.messages.events import (
    AuctionCleared,
    BatchItem,
    BuilderFeePaid,
    Deposited,
    Event,
    FundingPaid,
    L1MessageConsumed,
    LiquidationSettled,
    LiquidationStarted,
    MarkPriceUpdated,
    OrderAccepted,
    OrderModified,
    OrderTriggered,
    PositionDeleveraged,
    Rejected,
    TradeExecuted,
    Withdrawn,
)
from asyncdex.messages.reasons import Reject
from asyncdex.types.market import EngineConfig, MarketSpec
from asyncdex.types.numeric import PPM

SCALE = float(os.environ.get("ASYNCDEX_PROPERTY_SCALE", "1"))


def engine_settings(examples: int) -> settings:
    return settings(
        max_examples=max(1, int(examples * SCALE)),
        deadline=None,
        # the explain phase replays a failure thousands of times: minutes, for little news
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


PUBLISHERS = tuple(bytes([0xA0 + i]) * 20 for i in range(3))
ROGUE_PUBLISHER = b"\xee" * 20
AGENTS = tuple(bytes([0xC0 + i]) * 20 for i in range(4))
ACCOUNTS = tuple(bytes([0x11 * (i + 1) % 256]) + bytes(18) + bytes([i]) for i in range(12))
STRANGER = b"\x99" * 20  # never deposits
START_TIME = 1_700_000_000_000


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """Pick one of ``choices`` with probability proportional to its weight."""
    total = sum(weight for weight, _ in choices)

    def pick(roll: int) -> st.SearchStrategy[Any]:
        for weight, strategy in choices:
            if roll < weight:
                return strategy
            roll -= weight
        raise AssertionError("unreachable")

    return st.integers(0, total - 1).flatmap(pick)


# ------------------------------------------------------------------ markets

# (sz_decimals, reference price in the market's units, ticks, lots): BTC-, ETH-, SOL- and
# meme-like markets, so price * size stays exact micro-USDC at every scale.
TEMPLATES = (
    (5, 600_000, (1, 10), (1, 10)),  # $60,000 in 0.1 USDC; lot 0.00001 BTC
    (3, 2_500_000, (1, 50), (1, 4)),  # $2,500 in 0.001 USDC
    (2, 300_000, (1, 10, 100), (1, 5, 50)),  # $30 in 0.0001 USDC
    (0, 500_000, (1, 100, 1000), (1, 10, 100)),  # $0.50 in micro-USDC
)


class MarketPlan(NamedTuple):
    spec: MarketSpec
    reference: int  # a price the first oracle prints start from


@st.composite
def market_plans(draw: st.DrawFn) -> list[MarketPlan]:
    chosen = draw(
        st.lists(st.sampled_from(range(len(TEMPLATES))), min_size=2, max_size=3, unique=True)
    )
    plans = []
    for market_id, template in enumerate(chosen):
        sz_decimals, reference, ticks, lots = TEMPLATES[template]
        max_leverage = draw(st.sampled_from((3, 10, 20, 50)))
        initial = -(-PPM // max_leverage)
        # one market in four clears in frequent batch auctions
        interval = draw(weighted((3, st.just(0)), (1, st.sampled_from((500, 2_000)))))
        spec = MarketSpec(
            market_id,
            f"M{market_id}",
            sz_decimals=sz_decimals,
            tick=draw(st.sampled_from(ticks)),
            lot=draw(st.sampled_from(lots)),
            min_order_value=draw(st.sampled_from((1_000_000, 10_000_000))),
            initial_margin_ppm=initial,
            maintenance_margin_ppm=initial // 2,
            max_leverage=max_leverage,
            maker_fee_ppm=draw(st.sampled_from((-20, 0, 150))),
            taker_fee_ppm=draw(st.sampled_from((20, 450))),  # 20: just covers a rebate
            funding_interval_ms=draw(st.sampled_from((30_000, 60_000))),
            premium_sample_ms=draw(st.sampled_from((1_000, 5_000))),
            oracle_staleness_ms=draw(st.sampled_from((10_000, 30_000))),
            ordering="batch_auction" if interval else "continuous",
            auction_interval_ms=interval,
        )
        plans.append(MarketPlan(spec, reference))
    return plans


# ------------------------------------------------------------------ abstract operations
# Every operation carries ``dt``: how far its timestamp is from the engine's clock. Most are
# 0 (same timestamp, so a rejection can be checked for changing nothing); some jump over
# premium samples, oracle staleness and funding intervals; a few go backwards in time.

dts = weighted(
    (55, st.just(0)),
    (25, st.integers(1, 999)),
    (12, st.integers(1_000, 5_000)),
    (2, st.integers(9_001, 150_000)),
    (4, st.integers(-5_000, -1)),
)
who = st.integers(0, 39)  # 39: a stranger with no account; otherwise an account index
market_ref = weighted((30, st.integers(0, 2)), (1, st.sampled_from((-1, 3, 99))))
glitch = weighted((12, st.just(0)), (1, st.integers(1, 8)))  # 0: a well-formed command


class DepositOp(NamedTuple):
    dt: int
    who: int
    usd: int
    glitch: int


class ForceWithdrawOp(NamedTuple):
    """A withdrawal forced through the contract's inbox: an L1 message like a deposit."""

    dt: int
    who: int
    percent: int
    glitch: int


class ForceCancelAllOp(NamedTuple):
    dt: int
    who: int
    glitch: int


class CloseOp(NamedTuple):
    """Close one of the account's positions at once (leaving its other orders resting)."""

    dt: int
    who: int
    pick: int
    reduce_only: bool


class ProtectiveOp(NamedTuple):
    dt: int
    enabled: bool


class WithdrawOp(NamedTuple):
    dt: int
    who: int
    percent: int
    glitch: int


class OracleOp(NamedTuple):
    dt: int
    publisher: int  # 3: a publisher not in the config
    market: int
    move_ppm: int
    everyone: bool  # all publishers print it (so the median moves at once)
    glitch: int


class PlaceOp(NamedTuple):
    dt: int
    who: int
    market: int
    is_buy: bool
    offset_ppm: int  # positive: more aggressive than the mark
    usd: int  # target notional
    gearing: int  # when not 0: the notional is this percentage of the account's buying power
    tif: int
    market_order: bool
    reduce_only: bool
    client_id: int
    expiry_ms: int
    trigger: int
    trigger_offset_ppm: int
    glitch: int
    follow: bool  # trade where the last leverage change was made (so isolated positions open)


class CancelOp(NamedTuple):
    dt: int
    who: int
    pick: int
    mode: int  # 0: own order, 1: any live order, 2: unknown id, 3: wrong market


class CancelCidOp(NamedTuple):
    dt: int
    who: int
    market: int
    client_id: int


class CancelAllOp(NamedTuple):
    dt: int
    who: int
    market: int  # -1: every market


class ModifyOp(NamedTuple):
    dt: int
    who: int
    pick: int
    mode: int
    ticks: int
    size_quarters: int
    glitch: int


class ScheduleOp(NamedTuple):
    dt: int
    who: int
    offset_ms: int  # 0 clears; negative is in the past (invalid)


class LeverageOp(NamedTuple):
    dt: int
    who: int
    market: int
    leverage: int
    isolated: bool


class IsolatedOp(NamedTuple):
    dt: int
    who: int
    market: int
    usd: int
    aim: bool  # pick an account holding an isolated position, when there is one


class CrashOp(NamedTuple):
    """Every publisher prints a price moved against one of the most leveraged positions."""

    dt: int
    pick: int  # which of the three most leveraged positions
    severity_ppm: int


class AdvanceOp(NamedTuple):
    dt: int


class ApproveAgentOp(NamedTuple):
    dt: int
    who: int
    agent: int  # an index into AGENTS; 4: the account itself (refused)
    valid_ms: int  # 0: no end; positive: valid that long; negative: already over (revokes)


class ApproveBuilderOp(NamedTuple):
    dt: int
    who: int
    builder: int  # an account index (some hold less than a builder needs; 39: a stranger)
    max_fee: int  # tenths of a basis point; beyond 0..1000 is refused


class BuilderPlaceOp(NamedTuple):
    """A ``PlaceOp`` carrying a builder: approved, unapproved, above the approval or the cap."""

    dt: int
    place: PlaceOp
    builder: int  # below 30: one the account approved (if any); otherwise an account index
    fee: int


class SignOp(NamedTuple):
    """A user operation inside a ``Signed`` envelope (its own ``dt`` is ignored)."""

    dt: int
    inner: Any
    signer: int  # 0: the account, 1: one of its agents (if any), 2: any agent, 3: another account
    nonce: int  # 0: fresh, 1: the signer's last one again, 2: outside the window, 3: a bit lower
    expires_ms: int  # 0: no deadline; otherwise now + this (negative: already passed)


class BatchOp(NamedTuple):
    """Several user operations under one signature: the first one's account is the batch's,
    so an operation of another account inside is refused on its own."""

    dt: int
    inner: tuple[Any, ...]


Op = (
    DepositOp
    | WithdrawOp
    | OracleOp
    | PlaceOp
    | CancelOp
    | CancelCidOp
    | CancelAllOp
    | ModifyOp
    | ScheduleOp
    | LeverageOp
    | IsolatedOp
    | CrashOp
    | AdvanceOp
    | ApproveAgentOp
    | SignOp
    | ForceWithdrawOp
    | ForceCancelAllOp
    | ProtectiveOp
    | CloseOp
    | BatchOp
    | ApproveBuilderOp
    | BuilderPlaceOp
)

move_ppm = weighted(
    (10, st.integers(-5_000, 5_000)),
    (5, st.integers(-40_000, 40_000)),
    # the mark follows the book within index +-5%: only larger moves drag it along
    (4, st.integers(50_000, 400_000)),
    (4, st.integers(-400_000, -50_000)),
)
offset_ppm = weighted((6, st.integers(-4_000, 4_000)), (3, st.integers(-30_000, 30_000)))
notional_usd = weighted((8, st.integers(5, 3_000)), (2, st.integers(3_000, 60_000)))
tifs = weighted(
    (9, st.just(TimeInForce.GTC)),
    (4, st.just(TimeInForce.IOC)),
    (3, st.just(TimeInForce.ALO)),
    (3, st.just(TimeInForce.FOK)),
)

deposits = st.builds(DepositOp, dts, who, st.integers(1, 20_000), glitch)
advances = st.builds(AdvanceOp, dts)
approvals = st.builds(
    ApproveAgentOp,
    dts,
    who,
    weighted((8, st.integers(0, 3)), (1, st.just(4))),
    weighted((2, st.just(0)), (2, st.integers(1, 60_000)), (2, st.integers(-1_000, -1))),
)
builder_fees = weighted((6, st.integers(0, 100)), (1, st.sampled_from((-1, 101, 1_001))))
place_operations = st.builds(
    PlaceOp,
    dts,
    who,
    market_ref,
    st.booleans(),
    offset_ppm,
    notional_usd,
    weighted((2, st.just(0)), (1, st.integers(30, 110))),
    tifs,
    weighted((3, st.just(False)), (1, st.just(True))),
    weighted((4, st.just(False)), (1, st.just(True))),
    weighted((3, st.just(0)), (2, st.integers(1, 6))),
    weighted((5, st.just(0)), (1, st.integers(1, 40_000))),
    weighted((6, st.just(TriggerKind.NONE)), (1, st.integers(1, 2))),
    st.integers(-30_000, 30_000),
    glitch,
    weighted((2, st.just(False)), (1, st.just(True))),
)
user_operations = weighted(
    (2, st.builds(WithdrawOp, dts, who, st.integers(1, 120), glitch)),
    (30, place_operations),
    (4, st.builds(BuilderPlaceOp, dts, place_operations, who, builder_fees)),
    (3, st.builds(ApproveBuilderOp, dts, who, who, builder_fees)),
    (
        6,
        st.builds(
            CancelOp,
            dts,
            who,
            st.integers(0, 50),
            weighted((8, st.just(0)), (1, st.integers(1, 3))),
        ),
    ),
    (2, st.builds(CancelCidOp, dts, who, market_ref, st.integers(0, 6))),
    (2, st.builds(CancelAllOp, dts, who, weighted((1, st.just(-1)), (2, market_ref)))),
    (
        6,
        st.builds(
            ModifyOp,
            dts,
            who,
            st.integers(0, 50),
            weighted((8, st.just(0)), (1, st.integers(1, 3))),
            weighted((1, st.just(0)), (2, st.integers(-8, 8))),
            st.integers(1, 8),
            glitch,
        ),
    ),
    (1, st.builds(ScheduleOp, dts, who, st.integers(-1_000, 40_000))),
    (
        3,
        st.builds(
            LeverageOp,
            dts,
            who,
            market_ref,
            st.integers(0, 52),
            weighted((1, st.just(False)), (1, st.just(True))),
        ),
    ),
    (
        4,
        st.builds(
            IsolatedOp,
            dts,
            who,
            market_ref,
            weighted((3, st.integers(-100, 300)), (1, st.integers(-3_000, 3_000))),
            weighted((1, st.just(False)), (3, st.just(True))),
        ),
    ),
    (1, approvals),
    (3, st.builds(CloseOp, dts, who, st.integers(0, 3), st.booleans())),
)
batches = st.builds(BatchOp, dts, st.lists(user_operations, min_size=0, max_size=4).map(tuple))
signed_operations = st.builds(
    SignOp,
    dts,
    # deposits and time ticks are system commands: signing one is refused
    weighted((20, user_operations), (3, batches), (2, approvals), (1, deposits), (1, advances)),
    weighted((4, st.just(0)), (3, st.just(1)), (1, st.integers(2, 3))),
    weighted((12, st.just(0)), (1, st.integers(1, 3))),
    weighted((6, st.just(0)), (1, st.integers(-2_000, 60_000))),
)
operations = weighted(
    (3, deposits),
    (1, st.builds(ForceWithdrawOp, dts, who, st.integers(1, 120), glitch)),
    (1, st.builds(ForceCancelAllOp, dts, who, glitch)),
    (1, st.builds(ProtectiveOp, dts, st.booleans())),
    (
        15,
        st.builds(
            OracleOp,
            dts,
            weighted((10, st.integers(0, 2)), (1, st.just(3))),
            market_ref,
            move_ppm,
            st.booleans(),
            glitch,
        ),
    ),
    (56, user_operations),
    (14, signed_operations),
    (
        5,
        st.builds(
            CrashOp,
            dts,
            weighted((3, st.just(0)), (1, st.integers(1, 2))),
            st.integers(50_000, 450_000),
        ),
    ),
    (3, advances),
)


class Scenario(NamedTuple):
    markets: list[MarketPlan]
    funding: list[int]  # genesis deposits in USD, one per account (0: none)
    quotes: int  # genesis book: price levels each of the first two accounts quotes per side
    isolated: list[bool]  # genesis: account i >= 2 trades every market in isolated mode
    ops: list[Op]

    @property
    def config(self) -> EngineConfig:
        return EngineConfig(
            tuple(plan.spec for plan in self.markets),
            oracle_publishers=PUBLISHERS,
            max_open_orders_per_account=12,
        )


scenarios = st.builds(
    Scenario,
    market_plans(),
    st.lists(
        weighted((6, st.integers(20, 1_000)), (6, st.integers(1_000, 50_000)), (1, st.just(0))),
        min_size=3,
        max_size=12,
    ),
    weighted((1, st.just(0)), (4, st.integers(1, 4))),
    st.lists(weighted((2, st.just(False)), (1, st.just(True))), max_size=12),
    # bursts of operations: plain lists of this size would mostly be a handful long
    st.lists(st.lists(operations, min_size=2, max_size=12), min_size=1, max_size=12).map(
        lambda bursts: [op for burst in bursts for op in burst]
    ),
)


# ------------------------------------------------------------------ operation -> command


class Realizer:
    """Turns abstract operations into concrete commands against the engine's current state."""

    def __init__(self, scenario: Scenario, engine: Engine) -> None:
        self.engine = engine
        self.plans = scenario.markets
        self.accounts = ACCOUNTS[: len(scenario.funding)]
        self.printed = [plan.reference for plan in self.plans]
        self.echo: list[Command] = []  # commands the last operation also sends, same time
        self.last_nonce = 0
        self.last_leverage: tuple[bytes, int] | None = None

    @property
    def state(self) -> State:
        return self.engine.state

    def account(self, index: int) -> bytes:
        return STRANGER if index == 39 else self.accounts[index % len(self.accounts)]

    def market(self, index: int) -> int:
        """A market id: valid ids wrap onto the configured markets, invalid ones stay."""
        return index % len(self.plans) if 0 <= index <= 2 else index

    def anchor(self, market: int) -> int:
        state = self.state.markets[market]
        return state.mark_price or state.index_price or self.printed[market]

    def on_tick(self, market: int, price: int) -> int:
        tick = self.plans[market].spec.tick
        return max(tick, (price + tick // 2) // tick * tick)

    def own_orders(self, address: bytes) -> list[int]:
        account = self.state.accounts.get(address)
        if account is None:
            return []
        return sorted(oid for p in account.positions.values() for oid in p.orders)

    def pick_order(self, address: bytes, pick: int, mode: int) -> tuple[int, int]:
        """(market, order id) for a cancel or modify in ``mode`` (see ``CancelOp``)."""
        state = self.state
        candidates = self.own_orders(address) if mode == 0 else sorted(state.orders)
        if mode in (0, 1, 3) and candidates:
            order = state.orders[candidates[pick % len(candidates)]]
            market = order.market
            if mode == 3:
                market = (market + 1) % len(self.plans)
            return market, order.order_id
        return pick % len(self.plans), state.next_order_id + pick

    def realize(self, op: Op, now: int) -> Command:
        state = self.state
        if isinstance(op, BatchOp):
            inner = [self.realize(item, now) for item in op.inner]
            self.echo = []  # an inner oracle move's echo would not be signed: drop it
            account = getattr(inner[0], "account", self.accounts[0]) if inner else self.accounts[0]
            return Batch(account, tuple(inner))
        if isinstance(op, DepositOp):
            address, amount, index = self.account(op.who), op.usd * 1_000_000, state.l1_consumed
            match op.glitch:
                case 1 | 2:
                    index += 1 if op.glitch == 1 else -1
                case 3 | 4:
                    amount = 0 if op.glitch == 3 else -amount
                case 5:
                    address = address[:19]
            return Deposit(address, amount, index)
        if isinstance(op, ForceWithdrawOp | ForceCancelAllOp):
            index = state.l1_consumed + (op.glitch % 3 - 1 if op.glitch else 0)
            if isinstance(op, ForceCancelAllOp):
                return ForceCancelAll(self.account(op.who), index)
            withdraw = self.realize(WithdrawOp(op.dt, op.who, op.percent, op.glitch // 3), now)
            assert isinstance(withdraw, Withdraw)
            return ForceWithdraw(withdraw.account, withdraw.amount, index)
        if isinstance(op, ProtectiveOp):
            return SetProtectiveMode(op.enabled)
        if isinstance(op, CloseOp):
            address = self.account(op.who)
            account = state.accounts.get(address)
            held = [(m, p.size) for m, p in account.positions.items() if p.size] if account else []
            if not held:
                return CancelAll(address, ALL_MARKETS)
            market, size = held[op.pick % len(held)]
            bound = self.on_tick(
                market, self.anchor(market) * (PPM + (20_000 if size < 0 else -20_000)) // PPM
            )
            return PlaceOrder(
                address,
                market,
                size < 0,
                bound,
                abs(size),
                TimeInForce.IOC,
                reduce_only=op.reduce_only,
            )
        if isinstance(op, WithdrawOp):
            address = self.account(op.who)
            account = state.accounts.get(address)
            balance = account.collateral if account is not None else 1_000_000
            amount = max(1, balance * op.percent // 100)
            if op.glitch:
                amount = -amount if op.glitch % 2 else 0
            return Withdraw(address, amount)
        if isinstance(op, OracleOp):
            market = self.market(op.market)
            publisher = PUBLISHERS[op.publisher] if op.publisher < 3 else ROGUE_PUBLISHER
            if not 0 <= market < len(self.plans):
                return PublishOraclePrice(publisher, market, self.printed[0])
            base = state.markets[market].index_price or self.printed[market]
            price = max(1, base * (PPM + op.move_ppm) // PPM)
            if op.glitch:
                price = (0, -price, 10**16)[op.glitch % 3]
            else:
                self.printed[market] = price
                if op.everyone:
                    self.echo = [PublishOraclePrice(p, market, price) for p in PUBLISHERS]
            return PublishOraclePrice(publisher, market, price)
        if isinstance(op, PlaceOp):
            return self.realize_place(op, now)
        if isinstance(op, BuilderPlaceOp):
            placed = self.realize_place(op.place, now)
            builder = self.account(op.builder)
            holder = state.accounts.get(placed.account)
            if op.builder < 30 and holder is not None and holder.builders:
                approved = sorted(holder.builders)
                builder = approved[op.builder % len(approved)]
            return PlaceBuilderOrder(
                placed.account, placed.market, placed.is_buy, placed.price, placed.size,
                builder, op.fee, placed.tif, placed.order_type, placed.reduce_only,
                placed.client_id, placed.expiry, placed.trigger_price, placed.trigger_kind,
            )  # fmt: skip
        if isinstance(op, ApproveBuilderOp):
            return ApproveBuilderFee(self.account(op.who), self.account(op.builder), op.max_fee)
        if isinstance(op, CancelOp):
            market, order_id = self.pick_order(self.account(op.who), op.pick, op.mode)
            return CancelOrder(self.account(op.who), market, order_id)
        if isinstance(op, CancelCidOp):
            return CancelByClientId(self.account(op.who), self.market(op.market), op.client_id)
        if isinstance(op, CancelAllOp):
            market = ALL_MARKETS if op.market == -1 else self.market(op.market)
            return CancelAll(self.account(op.who), market)
        if isinstance(op, ModifyOp):
            return self.realize_modify(op)
        if isinstance(op, ScheduleOp):
            at_time = now + op.offset_ms if op.offset_ms else 0
            return ScheduleCancel(self.account(op.who), at_time)
        if isinstance(op, LeverageOp):
            market = self.market(op.market)
            leverage = op.leverage
            if 0 <= market < len(self.plans) and 1 <= leverage <= 50:
                leverage = 1 + (leverage - 1) % self.plans[market].spec.max_leverage
                self.last_leverage = (self.account(op.who), market)
            return SetLeverage(self.account(op.who), market, leverage, op.isolated)
        if isinstance(op, IsolatedOp):
            address, market = self.account(op.who), self.market(op.market)
            isolated = [
                (address, market_id)
                for address, account in state.accounts.items()
                for market_id, position in account.positions.items()
                if position.isolated and position.size
            ]
            if op.aim and isolated:
                address, market = isolated[op.who % len(isolated)]
            return UpdateIsolatedMargin(address, market, op.usd * 1_000_000)
        if isinstance(op, CrashOp):
            return self.realize_crash(op)
        if isinstance(op, ApproveAgentOp):
            address = self.account(op.who)
            agent = AGENTS[op.agent] if op.agent < len(AGENTS) else address
            valid_until = now + op.valid_ms if op.valid_ms else 0
            return ApproveAgent(address, agent, valid_until)
        if isinstance(op, SignOp):
            return self.realize_signed(op, now)
        return AdvanceTime()

    def realize_signed(self, op: SignOp, now: int) -> Signed:
        state = self.state
        inner = self.realize(op.inner, now)
        self.echo = []
        account = getattr(inner, "account", self.accounts[0])
        agents = sorted(state.accounts[account].agents) if account in state.accounts else []
        if op.signer == 1 and agents:
            signer = agents[op.nonce % len(agents)]
        elif op.signer == 2:
            signer = AGENTS[op.expires_ms % len(AGENTS)]
        elif op.signer == 3:
            signer = self.accounts[0] if account != self.accounts[0] else self.accounts[1]
        else:
            signer = account
        self.last_nonce = max(self.last_nonce + 1, now)
        nonce = self.last_nonce
        kept = state.nonces.get(signer)
        if op.nonce == 1 and kept:
            nonce = kept[-1]
        elif op.nonce == 2:
            nonce = now - NONCE_PAST_MS if op.expires_ms % 2 else now + NONCE_FUTURE_MS
        elif op.nonce == 3:
            nonce -= 1 + op.expires_ms % 20
        expires_after = now + op.expires_ms if op.expires_ms else 0
        return Signed(signer, nonce, expires_after, inner)

    def realize_crash(self, op: CrashOp) -> Command:
        state = self.state
        ranked = []
        for address, account in state.accounts.items():
            equity, _, _ = self.engine.cross_risk(account)
            for market_id, position in account.positions.items():
                if position.size:
                    mark = state.markets[market_id].mark_price
                    balance = position.iso_margin if position.isolated else max(equity, 1)
                    weight = abs(position.size) * mark * PPM // max(balance, 1)
                    ranked.append((-weight, address, market_id, position.size > 0))
        if not ranked:
            return AdvanceTime()
        ranked.sort()
        _, _, market, long = ranked[op.pick % min(3, len(ranked))]
        base = state.markets[market].index_price or self.printed[market]
        move = -op.severity_ppm if long else op.severity_ppm
        price = max(1, base * (PPM + move) // PPM)
        self.printed[market] = price
        self.echo = [PublishOraclePrice(p, market, price) for p in PUBLISHERS[1:]]
        return PublishOraclePrice(PUBLISHERS[0], market, price)

    def realize_place(self, op: PlaceOp, now: int) -> PlaceOrder:
        address = self.account(op.who)
        market = self.market(op.market)
        if op.follow and self.last_leverage is not None:
            address, market = self.last_leverage
        valid_market = 0 <= market < len(self.plans)
        spec = self.plans[market if valid_market else 0].spec
        anchor = self.anchor(market if valid_market else 0)
        is_buy = op.is_buy
        account = self.state.accounts.get(address)
        position = account.positions.get(market) if account is not None else None
        reduce_only = op.reduce_only
        if reduce_only and op.usd % 5:  # mostly a reduce-only order that does reduce
            if position is not None and position.size:
                is_buy = position.size < 0
            else:
                reduce_only = False
        side = 1 if is_buy else -1
        # an order using most of the buying power takes liquidity: that is how accounts get
        # close enough to maintenance margin for price moves to liquidate them
        offset = abs(op.offset_ppm) + 5_000 if op.gearing or op.follow else op.offset_ppm
        price = self.on_tick(market if valid_market else 0, anchor * (PPM + side * offset) // PPM)
        notional = op.usd * 1_000_000
        if op.gearing and account is not None and valid_market:
            leverage = position.leverage if position is not None else spec.max_leverage
            notional = max(0, account.collateral) * leverage * op.gearing // 100
        lots = max(1, -(-notional // (price * spec.lot)))
        size = lots * spec.lot
        if reduce_only and position is not None and position.size and op.usd % 3 == 0:
            size = abs(position.size)
        trigger_price = 0
        trigger_kind = op.trigger
        if op.trigger:
            trigger_price = self.on_tick(
                market if valid_market else 0, anchor * (PPM + op.trigger_offset_ppm) // PPM
            )
        order_type = OrderType.MARKET if op.market_order else OrderType.LIMIT
        tif = op.tif
        if op.market_order and op.offset_ppm % 2 == 0:
            price = 0  # a market order without a worst price
        expiry = now + op.expiry_ms if op.expiry_ms else 0
        match op.glitch:
            case 1:
                price += 1 if spec.tick > 1 else 0
            case 2:
                size += 1 if spec.lot > 1 else 0
            case 3:
                size = 0
            case 4:
                price = -price if op.usd % 2 else spec.max_price + spec.tick
            case 5:
                size = spec.max_order_size + spec.lot
            case 6:
                if op.usd % 2:
                    tif = 7  # no such time in force
                else:
                    order_type, tif = OrderType.MARKET, TimeInForce.ALO  # post-only market
            case 7:
                if not op.trigger:
                    trigger_price = spec.tick  # a trigger price without a trigger kind
                elif op.usd % 2:
                    trigger_kind = 3
                else:
                    trigger_price = -trigger_price
            case 8:
                expiry = now - op.usd % 1_000
        return PlaceOrder(
            address,
            market,
            is_buy,
            price,
            size,
            tif,
            order_type,
            reduce_only,
            op.client_id,
            expiry,
            trigger_price,
            trigger_kind,
        )

    def realize_modify(self, op: ModifyOp) -> ModifyOrder:
        address = self.account(op.who)
        market, order_id = self.pick_order(address, op.pick, op.mode)
        order = self.state.orders.get(order_id)
        spec = self.plans[market].spec
        if order is None:
            return ModifyOrder(address, market, order_id, self.anchor(market), spec.lot * 100)
        price = max(spec.tick, order.price + op.ticks * spec.tick)
        size = max(spec.lot, order.size * op.size_quarters // 4 // spec.lot * spec.lot)
        if op.glitch == 1 and spec.tick > 1:
            price += 1
        elif op.glitch == 2 and spec.lot > 1:
            size += 1
        elif op.glitch == 3:
            size = 0
        elif op.glitch == 4:
            price = 0
        return ModifyOrder(address, market, order_id, price, size)


# ------------------------------------------------------------------ running a stream


class Step(NamedTuple):
    command: Command
    timestamp: int


def genesis(scenario: Scenario, realizer: Realizer) -> list[Step]:
    steps = []
    index = 0
    for address, usd in zip(realizer.accounts, scenario.funding, strict=True):
        if usd:
            steps.append(Step(Deposit(address, usd * 1_000_000, index), START_TIME))
            index += 1
    for market, plan in enumerate(scenario.markets):
        for publisher in PUBLISHERS:
            steps.append(Step(PublishOraclePrice(publisher, market, plan.reference), START_TIME))
    if scenario.quotes:
        for address in realizer.accounts[:2]:
            steps.append(Step(Deposit(address, 200_000_000_000, index), START_TIME))
            index += 1
    for market, plan in enumerate(scenario.markets):
        spec = plan.spec
        for level in range(1, scenario.quotes + 1):
            for address, is_buy in ((realizer.accounts[0], True), (realizer.accounts[1], False)):
                side = -1 if is_buy else 1
                price = realizer.on_tick(
                    market, plan.reference * (PPM + side * 1_000 * level) // PPM
                )
                size = max(1, 25_000_000_000 // (price * spec.lot)) * spec.lot
                steps.append(Step(PlaceOrder(address, market, is_buy, price, size), START_TIME))
    for address, isolated in zip(realizer.accounts[2:], scenario.isolated[2:], strict=False):
        for plan in scenario.markets if isolated else ():
            command = SetLeverage(address, plan.spec.market_id, plan.spec.max_leverage, True)
            steps.append(Step(command, START_TIME))
    # every other account approves the second one as a builder (refused when it holds less
    # than a builder needs), so builder-coded orders find an approval to pay under
    for address in realizer.accounts[2::2]:
        steps.append(Step(ApproveBuilderFee(address, realizer.accounts[1], 50), START_TIME))
    return steps


class Run(NamedTuple):
    steps: list[Step]  # the concrete stream
    events: list[list[Event]]  # per step
    roots: list[bytes]  # the state root after each step
    engine: Engine


class AuctionChecked(Engine):
    """The engine, checking each batch auction as it runs: right after it the market's book
    is not crossed (between auctions it may be), and what it traded is the most a uniform
    price could trade (see ``test_clearing_price_maximizes_volume_over_every_grid_price``
    for the tie rules)."""

    def process_auction(self, market: MarketState, events: list[Event]) -> None:
        first = len(events)
        super().process_auction(market, events)
        market.book.check_invariants()
        cleared = [e for e in events[first:] if type(e) is AuctionCleared]
        traded = sum(e.size for e in events[first:] if type(e) is TradeExecuted)
        assert traded == (cleared[0].volume if cleared else 0), f"{cleared} traded {traded}"


def run_scenario(scenario: Scenario, check: bool = False) -> Run:
    """Realize and apply the scenario; with ``check``, assert every invariant after every step."""
    engine = AuctionChecked(scenario.config) if check else Engine(scenario.config)
    realizer = Realizer(scenario, engine)
    steps: list[Step] = []
    all_events: list[list[Event]] = []
    roots: list[bytes] = []
    deposited = withdrawn = 0
    follower = Follower(scenario.config)
    queue: deque[Step | Op] = deque([*genesis(scenario, realizer), *scenario.ops])
    while queue:
        item = queue.popleft()
        state = engine.state
        if isinstance(item, Step):
            step = item
        else:
            timestamp = max(0, state.time + item.dt)
            step = Step(realizer.realize(item, max(timestamp, state.time)), timestamp)
            queue.extendleft(Step(command, timestamp) for command in reversed(realizer.echo))
            realizer.echo = []
        steps.append(step)
        clock_still = step.timestamp <= state.time
        if check and clock_still:
            before = (
                state_root(state),
                snapshot(state),
                {k: list(v) for k, v in state.nonces.items()},
                state.l1_consumed,
                type(step.command) is Signed
                and engine.check_authorization(*step.command, state.time) is None,
            )
        events = engine.apply(step.command, step.timestamp)
        all_events.append(events)
        roots.append(state_root(engine.state))
        if not check:
            continue
        record_statistics(events)
        for item_event in events:
            if type(item_event) is Deposited:
                deposited += item_event.amount
            elif type(item_event) is Withdrawn:
                withdrawn += item_event.amount
        try:
            # an authorized Batch runs each item alone: one item's rejection leaves the others
            batch_ran = any(type(e) is BatchItem for e in events)
            if clock_still and not batch_ran and any(type(e) is Rejected for e in events):
                check_rejection_changed_nothing(engine.state, step.command, events, before)
            state = engine.state
            assert (state.total_deposited, state.total_withdrawn) == (deposited, withdrawn), (
                "deposit/withdrawal totals disagree with the events"
            )
            assert state.total_money() == deposited - withdrawn, (
                f"money not conserved: {state.total_money()} != {deposited - withdrawn}"
            )
            check_state(state)
            follower.apply(events)
            follower.check(state)
            check_nobody_left_below_maintenance(engine, events)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- the stream ---\n{describe(steps)}") from exc
    return Run(steps, all_events, roots, engine)


def replay(engine: Engine, steps: list[Step]) -> list[list[Event]]:
    return [engine.apply(step.command, step.timestamp) for step in steps]


def plain(command: Any) -> Any:
    """The command with enum fields as plain ints, so its repr is valid Python."""
    if type(command) is tuple:
        return tuple(plain(item) for item in command)
    if isinstance(command, tuple):
        return type(command)(*(plain(field) for field in command))
    return int(command) if isinstance(command, IntEnum) else command


def describe(steps: list[Step]) -> str:
    """The stream as Python statements: a failure can be pasted into a reproduction."""
    return "\n".join(f"engine.apply({plain(step.command)!r}, {step.timestamp})" for step in steps)


# ------------------------------------------------------------------ the invariants


def check_rejection_changed_nothing(
    state: State,
    command: Command,
    events: list[Event],
    before: tuple[bytes, bytes, dict[bytes, list[int]], int, bool],
) -> None:
    """A rejected command emits its one ``Rejected`` event and changes nothing.

    Two exceptions, on purpose: a ``Signed`` envelope that passed authorization spends its
    nonce even when the command inside is rejected (so the intent cannot be replayed later),
    and an L1 message (deposit, forced request) with the expected index is consumed whatever
    its outcome (so a bad message cannot block the inbox), with an ``L1MessageConsumed``.
    """
    root_before, snapshot_before, nonces_before, l1_before, authorized = before
    consumed = [e for e in events if type(e) is L1MessageConsumed]
    assert len(events) == len(consumed) + 1, f"a rejection with other events: {events}"
    assert type(events[-1]) is Rejected, f"the rejection is not the last event: {events}"
    if consumed:
        assert consumed == [
            L1MessageConsumed(command.l1_index, command.account, COMMAND_TAG[type(command)])
        ], f"unexpected {consumed}"
    assert state.l1_consumed == l1_before + len(consumed), "L1 index moved without an event"
    nonces = nonces_before
    if type(command) is Signed and authorized:
        nonces = {k: list(v) for k, v in nonces_before.items()}
        kept = nonces.setdefault(command.signer, [])
        insort(kept, command.nonce)
        del kept[:-NONCES_KEPT]
    assert state.nonces == nonces, f"nonces {state.nonces} != expected {nonces}"
    spent, state.nonces = state.nonces, nonces_before
    state.l1_consumed = l1_before
    try:
        assert state_root(state) == root_before, "rejected command changed the state root"
        assert snapshot(state) == snapshot_before, "rejected command changed the state"
    finally:
        state.nonces = spent
        state.l1_consumed = l1_before + len(consumed)


class Follower:
    """Balances and positions rebuilt from the events alone, as a read-only follower would.

    ``events.py`` promises every money movement has an event: each account's money
    (collateral plus isolated margins), its position sizes, the insurance fund and the fee
    pool must all be derivable from the event stream. On the way, every trade is checked
    against the orders' limits as the events announced them: the taker trades at the resting
    order's price, never beyond its own limit, never with itself, and pays the market's fees
    (a liquidation's protocol order pays none and its fills earn no maker rebate).
    """

    def __init__(self, config: EngineConfig) -> None:
        self.specs = config.markets
        self.money: dict[bytes, int] = {}
        self.sizes: dict[tuple[bytes, int], int] = {}
        self.insurance = 0
        self.fees = 0
        self.limits: dict[int, tuple[bool, int]] = {}  # order id -> (is buy, limit price)
        self.triggered: set[int] = set()  # market triggers get their limit when they fire
        self.protocol: set[int] = set()  # liquidation orders
        self.liquidating = False
        self.auction: AuctionCleared | None = None  # the auction whose trades follow
        self.auction_left = 0  # its volume not yet seen in trades

    def check_auction_trade(self, trade: TradeExecuted) -> None:
        """An auction trade: at the clearing price, within both orders' limits, both sides
        paying the taker fee (a liquidation's order none: a liquidation in a batch-auction
        market clears in an auction run at once); the auction's trades add up to its volume."""
        auction = self.auction
        assert auction is not None and trade.market == auction.market, f"{trade} outside"
        assert trade.price == auction.price, f"{trade} not at the clearing price {auction}"
        self.auction_left -= trade.size
        assert self.auction_left >= 0, f"auction trades exceed its volume {auction}"
        for order_id, is_buy in (
            (trade.taker_order, trade.taker_is_buy),
            (trade.maker_order, not trade.taker_is_buy),
        ):
            side, limit = self.limits[order_id]
            assert side == is_buy, f"{trade}: order {order_id} on the wrong side"
            if order_id not in self.triggered:
                assert trade.price <= limit if is_buy else trade.price >= limit, (
                    f"{trade} beyond order {order_id}'s limit {limit}"
                )
        fee = fee_charged(trade.price * trade.size, self.specs[trade.market].taker_fee_ppm)
        expected = (
            0 if trade.maker_order in self.protocol else fee,
            0 if trade.taker_order in self.protocol else fee,
        )
        assert (trade.maker_fee, trade.taker_fee) == expected, f"{trade}: fees should be {expected}"

    def check_trade(self, trade: TradeExecuted) -> None:
        assert trade.maker != trade.taker, f"self-trade {trade}"
        assert trade.size > 0 and trade.price > 0, f"empty trade {trade}"
        if self.specs[trade.market].auction_interval_ms:
            return self.check_auction_trade(trade)
        maker = self.limits.get(trade.maker_order)
        assert maker is not None, f"maker order {trade.maker_order} was never accepted"
        assert maker == (not trade.taker_is_buy, trade.price), (
            f"{trade} not at the resting order's price {maker}"
        )
        taker = self.limits.get(trade.taker_order)
        assert taker is not None, f"taker order {trade.taker_order} was never accepted"
        assert taker[0] == trade.taker_is_buy
        if trade.taker_order not in self.triggered:
            limit = taker[1]
            assert trade.price <= limit if trade.taker_is_buy else trade.price >= limit, (
                f"{trade} beyond the taker's limit {limit}"
            )
        spec = self.specs[trade.market]
        notional = trade.price * trade.size
        maker_fee = fee_charged(notional, spec.maker_fee_ppm)
        taker_fee = fee_charged(notional, spec.taker_fee_ppm)
        if trade.taker_order in self.protocol:
            maker_fee, taker_fee = max(maker_fee, 0), 0
        assert (trade.maker_fee, trade.taker_fee) == (maker_fee, taker_fee), (
            f"{trade}: fees should be {(maker_fee, taker_fee)}"
        )
        return None

    def move(self, account: bytes, amount: int) -> None:
        self.money[account] = self.money.get(account, 0) + amount

    def trade(self, account: bytes, market: int, is_buy: bool, size: int, price: int) -> None:
        self.move(account, -price * size if is_buy else price * size)
        key = (account, market)
        self.sizes[key] = self.sizes.get(key, 0) + (size if is_buy else -size)

    def apply(self, events: list[Event]) -> None:
        for item in events:
            kind = type(item)
            if self.auction is not None and kind not in (TradeExecuted, BuilderFeePaid):
                assert self.auction_left == 0, f"{self.auction}: {self.auction_left} not traded"
                self.auction = None
            if kind is AuctionCleared:
                assert item.volume == min(item.demand, item.supply) > 0, f"{item}"
                self.auction, self.auction_left = item, item.volume
            elif kind is Deposited:
                self.move(item.account, item.amount)
            elif kind is Withdrawn:
                self.move(item.account, -item.amount)
            elif kind is OrderAccepted:
                self.limits[item.order_id] = (item.is_buy, item.price)
                if self.liquidating:
                    self.protocol.add(item.order_id)
            elif kind is OrderModified:
                self.limits[item.order_id] = (self.limits[item.order_id][0], item.price)
            elif kind is OrderTriggered:
                self.triggered.add(item.order_id)
            elif kind is LiquidationStarted:
                self.liquidating = True
            elif kind is TradeExecuted:
                self.check_trade(item)
                self.trade(item.taker, item.market, item.taker_is_buy, item.size, item.price)
                self.trade(item.maker, item.market, not item.taker_is_buy, item.size, item.price)
                self.move(item.taker, -item.taker_fee)
                self.move(item.maker, -item.maker_fee)
                self.fees += item.taker_fee + item.maker_fee
            elif kind is PositionDeleveraged:
                long = item.counterparty_was_long
                self.trade(item.account, item.market, long, item.size, item.price)
                self.trade(item.counterparty, item.market, not long, item.size, item.price)
            elif kind is FundingPaid:
                paid = 0
                for (account, market), size in self.sizes.items():
                    if market == item.market and size:
                        payment = funding_payment(size, item.rate_ppb, item.index_price)
                        self.move(account, -payment)
                        paid += payment
                assert paid == item.to_insurance, f"funding dust {item.to_insurance} != {paid}"
                self.insurance += paid
            elif kind is BuilderFeePaid:
                assert item.amount > 0, f"an empty builder fee {item}"
                self.move(item.account, -item.amount)
                self.move(item.builder, item.amount)
            elif kind is LiquidationSettled:
                self.liquidating = False
                self.move(item.account, item.insurance_paid - item.fee_to_insurance)
                self.insurance += item.fee_to_insurance - item.insurance_paid
        if self.auction is not None:
            assert self.auction_left == 0, f"{self.auction}: {self.auction_left} not traded"
            self.auction = None

    def check(self, state: State) -> None:
        for address, account in state.accounts.items():
            money = account.collateral + sum(p.iso_margin for p in account.positions.values())
            assert self.money.get(address, 0) == money, (
                f"{address.hex()}: events say {self.money.get(address, 0)}, state has {money}"
            )
            for market_id in range(len(state.markets)):
                position = account.positions.get(market_id)
                size = position.size if position is not None else 0
                assert self.sizes.get((address, market_id), 0) == size, (
                    f"{address.hex()} market {market_id}: events say size "
                    f"{self.sizes.get((address, market_id), 0)}, state has {size}"
                )
        assert set(self.money) <= set(state.accounts), "events moved money of no account"
        assert (self.insurance, self.fees) == (state.insurance_fund, state.fee_pool), (
            f"events say insurance {self.insurance}, fees {self.fees}; state has "
            f"{state.insurance_fund}, {state.fee_pool}"
        )


def check_nobody_left_below_maintenance(engine: Engine, events: list[Event]) -> None:
    """After a mark update, every holder of that market is above maintenance margin.

    Liquidation runs on mark updates and repeats until a pass liquidates nobody, so accounts
    its own fills pushed under (the makers of the liquidation orders) are caught too. A cross
    account is only judged when all its markets have a mark (without one, nothing can be
    liquidated); flat accounts are not judged (a bad debt leaves them below zero, reported).
    """
    state = engine.state
    moved = {e.market for e in events if type(e) is MarkPriceUpdated and e.mark_price}
    if not moved:
        return
    for address, account in state.accounts.items():
        cross = [m for m, p in account.positions.items() if p.size and not p.isolated]
        if moved & set(cross) and all(state.markets[m].mark_price for m in cross):
            equity, _, maintenance = engine.cross_risk(account)
            assert equity >= maintenance, (
                f"{address.hex()} left below maintenance: equity {equity} < {maintenance}"
            )
        for market_id, position in account.positions.items():
            if position.isolated and position.size and market_id in moved:
                equity, _, maintenance = engine.isolated_risk(state.markets[market_id], position)
                assert equity >= maintenance, (
                    f"{address.hex()} isolated in market {market_id} left below maintenance: "
                    f"equity {equity} < {maintenance}"
                )


def check_state(state: State) -> None:
    """Assert the books are sound and every engine index agrees with the orders."""
    listed: dict[int, Any] = {}
    resting: set[int] = set()
    for market_id, market in enumerate(state.markets):
        # a batch-auction book may be crossed between auctions (``AuctionChecked`` checks it
        # right after each one)
        market.book.check_invariants(may_cross=bool(market.auction_interval))
        for order in market.book.orders_in_priority():
            assert order.market == market_id, f"order {order.order_id} on another market's book"
            assert order.order_id not in listed, f"order {order.order_id} listed twice"
            assert order.trigger_kind == TriggerKind.NONE, f"armed trigger {order} on the book"
            resting_tifs: tuple[TimeInForce, ...] = (TimeInForce.GTC, TimeInForce.ALO)
            if market.auction_interval:
                resting_tifs += (TimeInForce.IOC,)  # an IOC waits for the next auction
            assert order.tif in resting_tifs, f"{order} rests with its time in force"
            listed[order.order_id] = order
            resting.add(order.order_id)
        for order_id, order in market.triggers.items():
            assert order.order_id == order_id and order.market == market_id
            assert order.trigger_kind in (TriggerKind.STOP, TriggerKind.TAKE_PROFIT)
            assert order_id not in listed, f"trigger {order_id} also on the book"
            listed[order_id] = order
        if market.mark_price:
            for order in market.triggers.values():
                assert not Engine.trigger_fires(order, market.mark_price), (
                    f"trigger {order.order_id} armed although the mark {market.mark_price} "
                    f"is past its trigger price {order.trigger_price}"
                )
            band = market.index_price * market.spec.mark_band_ppm // PPM
            assert abs(market.mark_price - market.index_price) <= band, "mark outside its band"
        else:
            assert not market.index_price, "an index without a mark"
    assert set(state.orders) == set(listed), (
        f"orders index {sorted(state.orders)} != book + triggers {sorted(listed)}"
    )
    assert state.next_order_id > max(state.orders, default=0)
    expiries = set(state.expiries)
    for order_id, order in state.orders.items():
        assert listed[order_id] is order, f"order {order_id}: two objects"
        assert order.size > 0, f"order {order_id} live with size {order.size}"
        account = state.accounts[order.account]
        position = account.positions.get(order.market)
        assert position is not None and position.orders.get(order_id) is order, (
            f"order {order_id} missing from its position's orders"
        )
        if order.client_id:
            assert account.client_ids.get(order.client_id) == order_id, (
                f"client id {order.client_id} does not map back to order {order_id}"
            )
        if order.expiry:
            assert order.expiry > state.time, f"order {order_id} outlived its expiry"
            assert (order.expiry, order_id) in expiries, f"order {order_id} expiry not scheduled"
            assert state.next_due <= order.expiry
    for address, account in state.accounts.items():
        assert account.address == address
        for client_id, order_id in account.client_ids.items():
            order = state.orders.get(order_id)
            assert order is not None and order.client_id == client_id, (
                f"stale client id {client_id} -> {order_id}"
            )
            assert order.account == address
        if account.scheduled_cancel:
            assert account.scheduled_cancel > state.time, "dead-man switch overdue"
            assert (account.scheduled_cancel, address) in state.scheduled
            assert state.next_due <= account.scheduled_cancel
        for market_id, position in account.positions.items():
            spec = state.markets[market_id].spec
            open_buy = open_sell = 0
            for order_id, order in position.orders.items():
                assert state.orders.get(order_id) is order, f"position lists dead {order_id}"
                assert order.account == address and order.market == market_id
                if order_id in resting and not order.reduce_only:
                    if order.is_buy:
                        open_buy += order.size
                    else:
                        open_sell += order.size
            assert (position.open_buy, position.open_sell) == (open_buy, open_sell), (
                f"{address.hex()} market {market_id}: open ({position.open_buy}, "
                f"{position.open_sell}) != resting ({open_buy}, {open_sell})"
            )
            assert 1 <= position.leverage <= spec.max_leverage
            assert position.imf == initial_fraction_ppm(
                spec.initial_margin_ppm, position.leverage
            ), "cached initial margin fraction is stale"
            assert position.isolated or position.iso_margin == 0, "cross position holds margin"
            assert (
                position.size
                or position.orders
                or position.iso_margin
                or position.isolated
                or position.leverage != spec.max_leverage
            ), f"empty position kept for {address.hex()} market {market_id}"
            if position.size == 0:
                assert position.entry_notional == 0 and position.cum_funding == 0
    for market_id, market in enumerate(state.markets):
        holding = {
            address
            for address, account in state.accounts.items()
            if market_id in account.positions and account.positions[market_id].size
        }
        assert set(market.holders) == holding, f"market {market_id}: holders out of sync"
        total = sum(state.accounts[a].positions[market_id].size for a in holding)
        assert total == 0, f"market {market_id}: positions sum to {total}"
        assert state.next_due <= min(market.next_sample, market.next_funding)
        if market.auction_interval:
            assert state.next_due <= market.next_auction, "an auction overdue"
    assert state.next_due > state.time, "something due was left undone"
    for signer, kept in state.nonces.items():
        assert kept == sorted(set(kept)) and 0 < len(kept) <= NONCES_KEPT, f"nonces of {signer}"
    approved = {
        agent: address for address, account in state.accounts.items() for agent in account.agents
    }
    assert approved == state.agent_master, "agent index out of sync with the accounts' agents"
    assert state.insurance_fund >= 0, f"insurance fund {state.insurance_fund}"
    assert state.fee_pool >= 0, f"fee pool {state.fee_pool}"


def record_statistics(events: list[Event]) -> None:
    kinds = {type(item) for item in events}
    if LiquidationStarted in kinds and AuctionCleared in kinds:
        event("liquidation in a batch-auction market")
    for item in events:
        kind = type(item)
        if kind is Rejected:
            event(f"rejected {Reject(item.reason).name}")
        elif kind in (
            TradeExecuted,
            FundingPaid,
            OrderTriggered,
            LiquidationStarted,
            PositionDeleveraged,
            BuilderFeePaid,
            AuctionCleared,
        ):
            event(kind.__name__)
        elif kind is LiquidationSettled and item.bad_debt:
            event("bad debt")


# ------------------------------------------------------------------ the properties


@engine_settings(examples=400)
@given(scenarios)
def test_every_command_keeps_money_books_and_indexes_consistent(scenario: Scenario) -> None:
    run = run_scenario(scenario, check=True)
    note(describe(run.steps))


@engine_settings(examples=120)
@given(scenarios)
def test_replay_on_a_fresh_engine_gives_the_same_events_and_roots(scenario: Scenario) -> None:
    run = run_scenario(scenario)
    note(describe(run.steps))
    engine = Engine(scenario.config)
    for index, step in enumerate(run.steps):
        assert engine.apply(step.command, step.timestamp) == run.events[index], f"step {index}"
        assert state_root(engine.state) == run.roots[index], f"root after step {index}"
    assert snapshot(engine.state) == snapshot(run.engine.state)


@engine_settings(examples=200)
@given(scenarios, st.integers(0, 1_000))
def test_snapshot_restore_and_tail_replay_match_the_full_stream(
    scenario: Scenario, permille: int
) -> None:
    run = run_scenario(scenario)
    note(describe(run.steps))
    cut = len(run.steps) * permille // 1_000
    head = Engine(scenario.config)
    replay(head, run.steps[:cut])
    data = snapshot(head.state)
    restored = restore(scenario.config, data)
    assert snapshot(restored) == data, "snapshot bytes do not round trip"
    assert state_root(restored) == (run.roots[cut - 1] if cut else state_root(head.state))
    engine = Engine(state=restored)
    tail = replay(engine, run.steps[cut:])
    assert tail == run.events[cut:], f"events differ after restoring at step {cut}"
    assert state_root(engine.state) == run.roots[-1]
    assert snapshot(engine.state) == snapshot(run.engine.state)
